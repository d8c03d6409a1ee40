"""core/constant_time.py: secrets compare equal or not, whatever text a client sent, and no
other module compares secrets its own way (the class of bug behind a 500 for ``Basic é``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cheeseboard
from cheeseboard.core.constant_time import same_secret

SOURCE = Path(cheeseboard.__file__).parent


@pytest.mark.parametrize(
    ("given", "expected", "equal"),
    [
        ("abc", "abc", True),
        (b"abc", b"abc", True),
        ("abc", b"abc", True),
        ("abd", "abc", False),
        ("", "abc", False),
        ("\u00e9", "abc", False),
        ("\u00e9t\u00e9", "\u00e9t\u00e9", True),
        ("\ud800", "abc", False),
        ("\ud800", "\ud800", True),
        ("x" * 10_000, "abc", False),
    ],
)
def test_same_secret_never_raises(given: str | bytes, expected: str | bytes, equal: bool) -> None:
    assert same_secret(given, expected) is equal


def test_nothing_else_calls_compare_digest() -> None:
    """Every comparison of a secret goes through ``same_secret``."""
    callers = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path.name == "constant_time.py" and path.parent.name == "core":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "compare_digest":
                callers.append(f"{path.relative_to(SOURCE)}:{node.lineno}")
            if isinstance(node, ast.alias) and node.name == "compare_digest":
                callers.append(f"{path.relative_to(SOURCE)}:{node.lineno} (imported)")
    assert not callers, callers
    assert (SOURCE / "core" / "constant_time.py").is_file()
