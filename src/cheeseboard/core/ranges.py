"""HTTP Range requests on files (RFC 9110 §14), as pip, uv and poetry use them for lazy wheels."""

from __future__ import annotations

import re
from dataclasses import dataclass

# ASCII digits only: str.isdigit() also accepts "²" (a latin-1 header byte) that int() rejects.
_DIGITS = re.compile(r"[0-9]*")
# Past this many significant digits a position is beyond any file. Python refuses to convert
# strings of more than 4300 digits (CVE-2020-10735): "bytes=0-999…" was a 500, now it is clamped.
_MAX_DIGITS = 20
_BEYOND_ANY_FILE = 10**_MAX_DIGITS


def _position(digits: str) -> int:
    """A byte position from ASCII digits; absurdly long numbers count as "past every file"."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= _MAX_DIGITS else _BEYOND_ANY_FILE


@dataclass(frozen=True, slots=True)
class ByteRange:
    """An inclusive byte range ``start``..``end`` within a file of ``length`` bytes."""

    start: int
    end: int
    length: int

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.length}"


class Unsatisfiable(ValueError):
    """Raised when a valid range lies outside the file: the answer is 416."""


def parse_range(header: str | None, length: int) -> ByteRange | None:
    """The single range to send, or None for the whole file.

    Malformed headers and multi-range requests are ignored (the whole file is sent), which RFC 9110
    allows; a well-formed range past the end raises Unsatisfiable.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not (_DIGITS.fullmatch(first) and _DIGITS.fullmatch(last)):
        return None
    if first == "":
        if last == "":
            return None
        suffix = _position(last)
        if suffix == 0:
            raise Unsatisfiable(header)
        # A suffix longer than the file means the whole file, as a 206.
        start = max(0, length - suffix)
        return ByteRange(start, length - 1, length) if length else None
    start = _position(first)
    if last and _position(last) < start:
        return None  # invalid range-spec: ignored
    if start >= length:
        raise Unsatisfiable(header)
    end = min(_position(last), length - 1) if last else length - 1
    return ByteRange(start, end, length)
