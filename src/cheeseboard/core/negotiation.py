"""Content negotiation: PEP 691 for simple pages (docs/standards.md §1.6), JSON or text for
errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Representation = Literal["json", "v1html", "html"]

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
V1_HTML_TYPE = "application/vnd.pypi.simple.v1+html"
HTML_TYPE = "text/html"

CONTENT_TYPES: dict[Representation, str] = {
    "json": JSON_TYPE,
    "v1html": V1_HTML_TYPE,
    "html": "text/html; charset=utf-8",
}
# Each representation answers to these media types; "latest" aliases v1 (PEP 691).
_ALIASES: dict[Representation, tuple[str, ...]] = {
    "json": (JSON_TYPE, "application/vnd.pypi.simple.latest+json"),
    "v1html": (V1_HTML_TYPE, "application/vnd.pypi.simple.latest+html"),
    "html": (HTML_TYPE,),
}
# Tie-break order: JSON, then v1+html, then text/html.
_PREFERENCE: tuple[Representation, ...] = ("json", "v1html", "html")


@dataclass(frozen=True, slots=True)
class Choice:
    """The outcome of negotiation: a representation, or None with the reason for a 406."""

    representation: Representation | None
    reason: str = ""


def _parse_accept(header: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for part in header.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        quality = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = max(0.0, min(1.0, float(value)))
                except ValueError:
                    quality = 0.0
        ranges.append((media, quality))
    return ranges


def _match(ranges: list[tuple[str, float]], media_types: tuple[str, ...]) -> tuple[int, float]:
    """(specificity, q) of the most specific range matching one of ``media_types`` (exact 3,
    type/* 2, */* 1; (0, 0.0) when none does)."""
    best = (0, 0.0)
    for media, quality in ranges:
        for candidate in media_types:
            major = candidate.split("/", 1)[0]
            if media == candidate:
                specificity = 3
            elif media == f"{major}/*":
                specificity = 2
            elif media == "*/*":
                specificity = 1
            else:
                continue
            if specificity > best[0]:
                best = (specificity, quality)
    return best


def _quality(ranges: list[tuple[str, float]], media_types: tuple[str, ...]) -> float | None:
    """q for a representation from its most specific matching range (exact > type/* > */*)."""
    specificity, quality = _match(ranges, media_types)
    return quality if specificity else None


def prefers_json(accept: str | None) -> bool:
    """Whether an error answer should be JSON rather than text/plain: JSON (``application/json``
    or any ``…+json`` type named, as devpi-client and PEP 691 installers send) has the higher q,
    or the same q asked for more specifically (``application/json, */*``). A bare ``*/*``, no
    header or a tie keeps plain text, which every client can show."""
    if not accept:
        return False
    ranges = _parse_accept(accept)
    suffixed = [(3, q) for media, q in ranges if media.endswith("+json")]
    json_rank = max([_match(ranges, ("application/json",)), *suffixed])
    text_rank = _match(ranges, ("text/plain",))
    if json_rank[1] <= 0:
        return False
    return (json_rank[1], json_rank[0]) > (text_rank[1], text_rank[0])


def negotiate(accept: str | None, format_param: str | None) -> Choice:
    """Pick the representation for a simple page request."""
    if format_param:
        # An unencoded "+" in a query string decodes to a space ("…v1+json" typed into curl or a
        # browser); media types never contain spaces, so read it back as the "+" it was.
        wanted = format_param.strip().lower().replace(" ", "+")
        for rep in _PREFERENCE:
            if wanted in _ALIASES[rep]:
                return Choice(rep)
        return Choice(None, f"unsupported format {format_param!r}")
    if not accept or not accept.strip():
        return Choice("html")
    ranges = _parse_accept(accept)
    if all(media == "*/*" for media, _ in ranges) and any(q > 0 for _, q in ranges):
        return Choice("html")
    best: tuple[float, Representation] | None = None
    for rep in _PREFERENCE:
        quality = _quality(ranges, _ALIASES[rep])
        if quality is None or quality <= 0:
            continue
        if best is None or quality > best[0]:
            best = (quality, rep)
    if best is None:
        return Choice(None, f"none of the offered types is acceptable: {accept}")
    return Choice(best[1])
