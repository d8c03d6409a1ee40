"""Fuzzing Range headers: within the file, the whole file, or a clean 416 (Unsatisfiable)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cheeseboard.core.ranges import ByteRange, Unsatisfiable, parse_range
from tests.unit.fuzz.counting import counted
from tests.unit.fuzz.strategies import FUZZ, hostile_text

numbers = st.one_of(
    st.integers(0, 2**70).map(str),
    st.integers(0, 5).map(lambda zeros: "0" * zeros + "7"),  # leading zeros
    st.integers(4290, 6000).map(lambda n: "9" * n),  # past int()'s 4300-digit limit
    st.sampled_from(["", "\u00b2", "\u0661", "-1", "+1", "1e3", "0x10", " 1 ", "1_000"]),
)
range_headers = st.one_of(
    hostile_text,
    st.builds(
        lambda unit, eq, first, dash, last, tail: f"{unit}{eq}{first}{dash}{last}{tail}",
        st.sampled_from(["bytes", "Bytes", " bytes ", "items", "", "bytes\t"]),
        st.sampled_from(["=", "", "==", " = "]),
        numbers,
        st.sampled_from(["-", "", "--", " - "]),
        numbers,
        st.sampled_from(["", ",0-1", ", ", "\0", ";x"]),
    ),
)
lengths = st.one_of(st.integers(0, 1000), st.integers(0, 2**63 - 1))


@FUZZ
@given(st.one_of(st.none(), range_headers), lengths)
@counted("ranges: parse_range (arbitrary headers)")
def test_range_is_in_bounds_or_unsatisfiable(header: str | None, length: int) -> None:
    """Any header against any file length: a range inside the file, None (send it all), or
    Unsatisfiable (416); never another exception."""
    try:
        parsed = parse_range(header, length)
    except Unsatisfiable:
        assert header  # a missing header is never a 416
        return
    if parsed is not None:
        assert parsed.length == length
        assert 0 <= parsed.start <= parsed.end < length
        assert parsed.size == parsed.end - parsed.start + 1 <= length
        assert parsed.content_range() == f"bytes {parsed.start}-{parsed.end}/{length}"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-" + "9" * 5000, ByteRange(0, 99, 100)),  # end past any file: clamped
        ("bytes=-" + "9" * 5000, ByteRange(0, 99, 100)),  # suffix past any file: all of it
        ("bytes=00-00", ByteRange(0, 0, 100)),
        ("bytes=" + "0" * 5000 + "5-6", ByteRange(5, 6, 100)),
    ],
)
def test_huge_positions(header: str, expected: ByteRange) -> None:
    """Positions with thousands of digits are read as positions, not as a server error."""
    assert parse_range(header, 100) == expected


def test_huge_first_position_is_unsatisfiable() -> None:
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=" + "1" * 5000 + "-", 100)
