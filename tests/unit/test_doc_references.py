"""Citations of Markdown documents in src/, tests/ and the README point at files and sections
that exist.

Comments, docstrings and the README cite the project's reference notes as
``docs/standards.md §1.12`` or ``docs/devpi-protocol.md §2``. A citation of a file outside the
repository (such as the developers' shared notes) or of a section the cited file does not have
fails here, so a new contributor can always follow the reference.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
THIS = Path(__file__).resolve()

# A Markdown file name, optionally followed by section numbers: "§7", "§1 and §2", "§1.2, §4".
_SECTION = r"§\s?\d+(?:\.\d+)*"
_CITATION = re.compile(
    r"(?<![\w./-])(?P<file>(?:\.\.?/)*\w[\w./-]*\.md)\b"
    rf"(?P<sections>(?:[\s#,]*(?:(?:and|or)\s+)?{_SECTION})*)"
)
_SECTION_NUMBER = re.compile(r"§\s?(\d+(?:\.\d+)*)")
# "§N" after a short name instead of a file ("standards §2", "devpi protocol §7"): ambiguous.
_SHORTHAND = re.compile(r"\b(?:standards|devpi(?:[ -]protocol)?)\s+§", re.IGNORECASE)
# Numbered headings: "## 1. Conventions", "### 1.14 HTTP hygiene".
_HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)[.\s]", re.MULTILINE)


def _sources() -> list[Path]:
    files = [*(REPO / "src").rglob("*.py"), *(REPO / "tests").rglob("*.py"), REPO / "README.md"]
    return sorted(path for path in files if path.resolve() != THIS)


def _resolve(name: str, repo: Path) -> Path | None:
    """The cited file: a path from the repository root, or a bare name of a file in docs/; never
    one outside the repository (``../shared/DESIGN.md`` may exist on the author's machine)."""
    for candidate in (repo / name, repo / "docs" / name):
        if candidate.is_file() and candidate.resolve().is_relative_to(repo.resolve()):
            return candidate
    return None


def _sections(doc: Path) -> set[str]:
    return set(_HEADING.findall(doc.read_text(encoding="utf-8")))


def _problems(sources: list[Path], repo: Path) -> list[str]:
    problems = []
    for path in sources:
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(repo)
        for match in _CITATION.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            doc = _resolve(match["file"], repo)
            if doc is None:
                problems.append(f"{where}:{line}: cites {match['file']}, not in the repository")
                continue
            missing = [
                number
                for number in _SECTION_NUMBER.findall(match["sections"])
                if number not in _sections(doc)
            ]
            for number in missing:
                problems.append(f"{where}:{line}: cites {match['file']} §{number}, no such section")
        for match in _SHORTHAND.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            problems.append(f"{where}:{line}: {match[0]!r}: name the file (docs/….md §N)")
    return problems


def test_cited_documents_and_sections_exist() -> None:
    assert _problems(_sources(), REPO) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see docs/standards.md §1.14 here", []),
        ("(docs/devpi-protocol.md §1 and §2)", []),
        ("(docs/standards.md §1.2, and test 2 of §4)", []),
        ("see docs/standards.md §9.9", ["§9.9"]),
        ("(docs/devpi-protocol.md §1 and §99)", ["§99"]),
        ("see elsewhere/NOPE.md §1", ["not in the repository"]),
        ("the design is `../shared/DESIGN.md`", ["not in the repository"]),
        ("PEP 691 (standards §1.6)", ["name the file"]),
        ("RFC 9110 §14 is not a Markdown citation", []),
    ],
)
def test_checker_on_examples(text: str, expected: list[str], tmp_path: Path) -> None:
    """The checker itself, on a one-line source beside copies of the two reference notes."""
    source = tmp_path / "src" / "example.py"
    source.parent.mkdir()
    source.write_text(f"# {text}\n", encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("standards.md", "devpi-protocol.md"):
        docs.joinpath(name).write_text((REPO / "docs" / name).read_text(encoding="utf-8"))
    problems = _problems([source], tmp_path)
    assert len(problems) == len(expected), problems
    for problem, part in zip(problems, expected, strict=True):
        assert part in problem
