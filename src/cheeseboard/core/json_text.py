"""Whether parsed JSON holds text that is not Unicode.

JSON lets a string hold half of a UTF-16 pair (``"\\ud800"``, or its bytes in UTF-8, -16 or
-32, which Python's ``json`` detects and reads with "surrogatepass"). That is not text: stored
(an index config, a tox result) it made every later answer that holds it a 500, since it cannot
be encoded. Every JSON body a client sends is checked here before it is used or stored.
"""

from __future__ import annotations

import json
from typing import Any


def has_lone_surrogate(raw: bytes, parsed: Any) -> bool:
    """Whether ``parsed`` (what ``json.loads(raw)`` gave) holds a lone surrogate. Only a body
    that could hold one (a ``\\u`` escape, or any byte above ASCII: a surrogate in UTF-8, -16
    or -32 has one) is encoded to find out; a real pair parses to one character and passes."""
    if b"\\u" not in raw and raw.isascii():
        return False
    try:
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return True
    return False
