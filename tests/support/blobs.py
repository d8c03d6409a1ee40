"""The blob files of a data directory, for tests that compare them before and after something."""

from __future__ import annotations

import time
from pathlib import Path


def blob_files(datadir: Path) -> set[str]:
    """The names (sha256) of the blobs stored under ``datadir``."""
    return {p.name for p in (datadir / "blobs").glob("??/??/*") if p.is_file()}


def settle_blobs(datadir: Path, quiet: float = 0.6, limit: float = 15.0) -> set[str]:
    """The blobs once none has appeared for ``quiet`` seconds (at most ``limit``): a mirror page
    starts background work (the newest wheel's ``.metadata``) that stores a blob a moment after
    the page is answered, so a snapshot taken right away can miss it."""
    deadline = time.monotonic() + limit
    seen, since = blob_files(datadir), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = blob_files(datadir)
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return seen
    raise AssertionError("blobs kept appearing in the data directory")
