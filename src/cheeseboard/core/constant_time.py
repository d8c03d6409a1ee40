"""Comparing secrets without leaking where they differ, for any text a client sends.

``hmac.compare_digest`` raises TypeError for a ``str`` with a character outside ASCII, and a
header, cookie or form field read as text can hold any: a MAC, token or CSRF value compared that
way turned ``Authorization: Basic __token__:x.é`` into a 500. Every comparison of a secret goes
through ``same_secret`` (a test checks that nothing else calls ``compare_digest``), which
compares the UTF-8 bytes: text that is not ASCII can never equal a value this server made, and
is simply unequal.
"""

from __future__ import annotations

import hmac


def _bytes(value: str | bytes) -> bytes:
    # "surrogatepass": JSON and form decoding can produce lone surrogates; they compare unequal
    # like any other foreign text instead of raising.
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def same_secret(given: str | bytes, expected: str | bytes) -> bool:
    """Whether ``given`` equals ``expected``, in time that does not depend on where they first
    differ; never raises for what a client sent."""
    return hmac.compare_digest(_bytes(given), _bytes(expected))
