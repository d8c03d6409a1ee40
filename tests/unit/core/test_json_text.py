"""core/json_text.py: a lone UTF-16 surrogate in parsed JSON is found, whether it came as an
escape or as raw bytes; real pairs and plain text pass. The API's JSON bodies and tox results
are refused with it (a stored one made every later answer holding it a 500)."""

from __future__ import annotations

import json

import pytest

from cheeseboard.core.json_text import has_lone_surrogate
from cheeseboard.services.errors import BadRequest
from cheeseboard.services.toxresults import parse


@pytest.mark.parametrize(
    ("raw", "lone"),
    [
        (b'{"title": "plain"}', False),
        (b'{"title": "caf\\u00e9 \\ud83d\\ude00"}', False),  # a real pair: one character
        ('{"title": "café 😀"}'.encode(), False),
        (b'{"title": "\\ud800"}', True),
        (b'{"title": "\\uDFFF"}', True),
        (b'{"\\ud800": 1}', True),  # in a key
        (b'["a", ["b", {"c": "\\udc00"}]]', True),  # deep inside
        (b'{"title": "\xed\xa0\x80"}', True),  # the surrogate's UTF-8 bytes
        (b'{"title": "\\ud83d"}', True),  # half of the pair above
        ('{"title": "\ud800"}'.encode("utf-16", "surrogatepass"), True),  # json detects it
        ('{"title": "\ud800"}'.encode("utf-32-le", "surrogatepass"), True),
        ('{"title": "caf\u00e9"}'.encode("utf-16-le"), False),
    ],
)
def test_lone_surrogates_are_found(raw: bytes, lone: bool) -> None:
    assert has_lone_surrogate(raw, json.loads(raw)) is lone


def test_a_tox_result_with_one_is_refused() -> None:
    with pytest.raises(BadRequest, match="lone UTF-16 surrogate"):
        parse(b'{"testenvs": {"py\\ud800": {}}}')
    parse(b'{"testenvs": {"py312": {}}, "host": "caf\\u00e9"}')
