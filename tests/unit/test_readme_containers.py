"""The README's Containers section is enough to build and run the images (issue 23): every
``make`` target and variable it names exists in the Makefile, and it names each build knob."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KNOBS = {"BASE", "ALPINE_BASE", "CA", "DOCKER", "REGISTRY"}
_MAKE_CALL = re.compile(
    r"\bmake\s+(?P<target>[\w.-]+)(?P<args>(?:\s+\[?[A-Z][A-Z0-9_]*=[^\s\]`|]*\]?)*)"
)
_ASSIGNMENT = re.compile(r"([A-Z][A-Z0-9_]*)=")


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _containers() -> str:
    return _section((REPO / "README.md").read_text(encoding="utf-8"), "Containers")


def _calls(section: str) -> list[tuple[str, set[str]]]:
    return [
        (match["target"], set(_ASSIGNMENT.findall(match["args"])))
        for match in _MAKE_CALL.finditer(section)
    ]


def test_readme_make_calls_name_real_targets_and_variables() -> None:
    """Each ``make TARGET VAR=…`` of the section: TARGET is a Makefile rule, VAR a variable the
    Makefile reads (``$(VAR)``) or sets (``VAR ?=``)."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    calls = _calls(_containers())
    assert calls, "the Containers section names no make command"
    problems = []
    for target, variables in calls:
        if not re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE):
            problems.append(f"make {target}: no such rule in the Makefile")
        for variable in variables:
            used = re.search(rf"\$\({variable}\)|^{variable}\s*[?:]?=", makefile, re.MULTILINE)
            if not used:
                problems.append(f"make {target} {variable}=…: the Makefile never reads {variable}")
    assert not problems, "\n".join(problems)


def test_readme_names_every_build_knob_with_an_example() -> None:
    """BASE, ALPINE_BASE, CA, DOCKER and REGISTRY each appear in a ``make`` example."""
    named = set().union(*(variables for _, variables in _calls(_containers())))
    assert named >= KNOBS, f"no make example sets {sorted(KNOBS - named)}"


def test_readme_shows_the_runtime_ca_bundle() -> None:
    """The run example mounts a CA bundle and names it with CHEESEBOARD_CA_BUNDLE."""
    section = _containers()
    assert ":/etc/cheeseboard/ca.pem:ro" in section
    assert "CHEESEBOARD_CA_BUNDLE=/etc/cheeseboard/ca.pem" in section


def test_the_dockerfiles_take_the_base_argument() -> None:
    """``BASE`` and ``ALPINE_BASE`` reach the Dockerfiles as ``ARG BASE``."""
    for dockerfile in sorted((REPO / "docker").glob("*/Dockerfile*")):
        assert re.search(r"^ARG BASE=", dockerfile.read_text(), re.MULTILINE), dockerfile
