"""HTTP Range header parsing (RFC 9110 §14) for single byte ranges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheeseboard.core.ranges import ByteRange, Unsatisfiable, parse_range

PROPERTY = settings(database=None, max_examples=300, deadline=None)


@pytest.mark.parametrize(
    ("header", "length", "expected"),
    [
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=2-9", 10, (2, 9)),
        ("bytes=2-100", 10, (2, 9)),  # end past the file is clamped
        ("bytes=9-9", 10, (9, 9)),
        ("bytes=4-", 10, (4, 9)),
        ("bytes=0-", 10, (0, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-10", 10, (0, 9)),
        ("bytes=-11", 10, (0, 9)),  # suffix longer than the file: the whole file
        ("bytes=-99999999999999999999", 10, (0, 9)),
        ("Bytes = 1-2", 10, (1, 2)),
        ("bytes= 1 - 2 ", 10, (1, 2)),
    ],
)
def test_satisfiable_ranges(header: str, length: int, expected: tuple[int, int]) -> None:
    """a-b, a- and -n give the inclusive range within the file."""
    parsed = parse_range(header, length)
    assert parsed == ByteRange(*expected, length)


def test_byte_range_size_and_content_range() -> None:
    """size counts both ends; Content-Range is 'bytes a-b/len'."""
    parsed = parse_range("bytes=2-9", 100)
    assert parsed is not None
    assert parsed.size == 8
    assert parsed.content_range() == "bytes 2-9/100"


@pytest.mark.parametrize(
    ("header", "length"),
    [
        ("bytes=10-", 10),  # first byte just past the end
        ("bytes=10-20", 10),
        ("bytes=100-", 10),
        ("bytes=-0", 10),  # an empty suffix selects nothing
        ("bytes=0-", 0),
        ("bytes=0-0", 0),
    ],
)
def test_unsatisfiable_ranges(header: str, length: int) -> None:
    """A well-formed range starting at or past the end is a 416."""
    with pytest.raises(Unsatisfiable):
        parse_range(header, length)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes",
        "bytes=",
        "bytes=-",
        "bytes=5",
        "bytes=5-3",  # last before first: invalid, ignored
        "bytes=0-1,3-4",  # multi-range: we send the whole file
        "bytes=0-1, 3-4",
        "items=0-1",
        "bytes=a-b",
        "bytes=1-2-3",
        "bytes=--5",
        "bytes=+1-2",
        "bytes=0x1-2",
        "bytes=1.5-2",
        "bytes=\xb2-",  # SUPERSCRIPT TWO: str.isdigit() says yes, int() says no
        "bytes=0-\xb3",
        "bytes=\u0661-\u0662",  # ARABIC-INDIC digits, which int() would accept
    ],
)
def test_malformed_ranges_mean_whole_file(header: str | None) -> None:
    """Malformed and multi-range headers are ignored: None, never an exception."""
    assert parse_range(header, 10) is None


def test_zero_length_file_suffix_range() -> None:
    """On an empty file a suffix range is satisfiable but selects nothing: whole (empty) file."""
    assert parse_range("bytes=-5", 0) is None


@PROPERTY
@given(
    length=st.integers(min_value=0, max_value=1000),
    first=st.none() | st.integers(min_value=0, max_value=1200),
    last=st.none() | st.integers(min_value=0, max_value=1200),
)
def test_single_ranges_follow_rfc9110(length: int, first: int | None, last: int | None) -> None:
    """Every single range lands inside the file, means 'whole file', or is unsatisfiable."""
    header = f"bytes={'' if first is None else first}-{'' if last is None else last}"
    if first is None:  # suffix range "-n"
        if last is None:
            assert parse_range(header, length) is None
        elif last == 0:
            with pytest.raises(Unsatisfiable):
                parse_range(header, length)
        else:
            parsed = parse_range(header, length)
            if length == 0:
                assert parsed is None
            else:
                assert parsed is not None
                assert (parsed.end, parsed.size) == (length - 1, min(last, length))
    elif last is not None and last < first:
        assert parse_range(header, length) is None  # invalid range-spec: ignored
    elif first >= length:
        with pytest.raises(Unsatisfiable):
            parse_range(header, length)
    else:
        end = length - 1 if last is None else min(last, length - 1)
        assert parse_range(header, length) == ByteRange(first, end, length)


@PROPERTY
@given(st.text(max_size=20))
def test_arbitrary_headers_never_crash(header: str) -> None:
    """Whatever a client sends, parse_range answers a range, None or Unsatisfiable."""
    try:
        parsed = parse_range(header, 50)
    except Unsatisfiable:
        return
    assert parsed is None or 0 <= parsed.start <= parsed.end < 50
