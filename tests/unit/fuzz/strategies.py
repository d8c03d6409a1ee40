"""Hypothesis strategies shared by the fuzz tests: hostile text and valid distribution names."""

from __future__ import annotations

import string

from hypothesis import settings
from hypothesis import strategies as st

# Every fuzz property runs this many examples unless it says otherwise: the whole package stays
# within a few seconds on two cores. No example database: runs must not depend on earlier ones.
FUZZ = settings(database=None, deadline=None, max_examples=300)
FUZZ_SLOW = settings(database=None, deadline=None, max_examples=100)

# Fragments that break parsers and paths: separators, traversal, NUL and control characters,
# percent-encodings, non-ASCII digits and look-alikes (fullwidth dot, one-dot leader, Kelvin sign),
# and numbers past int()'s 4300-digit limit.
HOSTILE_FRAGMENTS = (
    "/",
    "\\",
    "..",
    ".",
    "\0",
    "\r\n",
    "\t",
    "\x7f",
    "%2e%2e",
    "%2f",
    "%5c",
    "%00",
    "\uff0e\uff0e",
    "\u2024",
    "\u212a",
    "²",
    "١٢",
    "-",
    "_",
    "+",
    " ",
    "~",
    "=",
    ",",
    '"',
    "..\\..\\",
    "../../etc/passwd",
    "1" * 4400,
)

hostile_text = st.lists(
    st.one_of(st.sampled_from(HOSTILE_FRAGMENTS), st.text(max_size=12)), max_size=8
).map("".join)
"""Text built from hostile fragments and arbitrary Unicode."""

any_text = st.one_of(st.text(max_size=40), hostile_text)

_ALNUM = string.ascii_letters + string.digits
project_names = st.builds(
    lambda first, middle, last: first + middle + last if middle or last else first,
    st.sampled_from(_ALNUM),
    st.text(_ALNUM + "._-", max_size=20),
    st.sampled_from(["", *_ALNUM]),
).filter(lambda name: len(name) == 1 or name[-1] in _ALNUM)
"""Valid PEP 508 project names (ASCII letters and digits, with '.', '_', '-' inside)."""

versions = st.builds(
    lambda release, pre, post, dev: ".".join(map(str, release)) + pre + post + dev,
    st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
    st.sampled_from(["", "a1", "b2", "rc3"]),
    st.sampled_from(["", ".post1"]),
    st.sampled_from(["", ".dev0"]),
)
"""Canonical PEP 440 versions (no '-', so they can't be confused with a name part)."""

wheel_tags = st.tuples(
    st.sampled_from(["py3", "py2.py3", "cp311", "cp312"]),
    st.sampled_from(["none", "abi3", "cp311"]),
    st.sampled_from(["any", "linux_x86_64", "manylinux_2_17_x86_64", "win_amd64"]),
)

# The first byte of an atheris archive input picks the file name, hence the reader (here, not in
# atheris_targets.py, so the test can import it where atheris is missing).
ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar", ".tar.bz2", ".tar.xz")
