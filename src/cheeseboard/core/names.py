"""Project, user and index names: validation and PEP 503 normalization."""

from __future__ import annotations

import re

_NORMALIZE = re.compile(r"[-_.]+")
# PEP 508 names: ASCII letters and digits, with "-", "_" and "." inside. Spelled out instead of
# re.IGNORECASE, which lets [A-Z] match the Kelvin sign and other non-ASCII letters; matched with
# fullmatch, since "$" also matches before a trailing newline.
_PROJECT_NAME = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")
# devpi's rule for user and index names: no whitespace, control characters or punctuation
# other than "-", ".", "@" and "_"; "+" is reserved for routes such as "+simple".
_SEGMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_MAX_SHOWN = 100  # characters of a rejected name quoted back in a message


def _shown(name: str) -> str:
    """``name`` quoted for a message, cut short: a 1 MB name is not echoed back whole."""
    shown = repr(name[: _MAX_SHOWN + 1])  # escapes make the repr up to 10 times longer
    return shown if len(shown) <= _MAX_SHOWN else shown[:_MAX_SHOWN] + "…"


class InvalidName(ValueError):
    """Raised when a project, user or index name cannot be used; the message says why."""


def normalize_project_name(name: str) -> str:
    """Return the PEP 503 normalized form, the key every lookup uses."""
    return _NORMALIZE.sub("-", name).lower()


def is_valid_project_name(name: str) -> bool:
    """Tell whether ``name`` is a PEP 508 project name."""
    return bool(_PROJECT_NAME.fullmatch(name))


def checked_project_name(name: str) -> str:
    """Return ``name`` normalized, or raise InvalidName for anything that is not a project name."""
    if not is_valid_project_name(name):
        raise InvalidName(f"{_shown(name)} is not a valid project name (PEP 508)")
    return normalize_project_name(name)


def checked_segment_name(kind: str, name: str) -> str:
    """Validate a user or index name (``kind`` names it in the message)."""
    if not _SEGMENT_NAME.fullmatch(name):
        raise InvalidName(
            f"{kind} name {_shown(name)} contains characters that aren't allowed: use letters, "
            "digits and '-', '.', '@', '_' (at most 64, starting with a letter or digit)"
        )
    return name
