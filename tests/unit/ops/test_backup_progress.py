"""Progress lines of ``cheeseboard-server backup`` when stderr is not a terminal."""

from __future__ import annotations

import io

from cheeseboard.ops.backup import LineProgress


def test_a_line_at_the_start_then_one_per_interval() -> None:
    stream = io.StringIO()
    progress = LineProgress(stream, interval=3600)
    progress.begin(3, 3_500_000)
    for _ in range(3):
        progress.advance(1_000_000, 1)
    assert stream.getvalue() == "backup: copying 3 blobs (3.5 MB)\n"  # the interval never passed

    stream = io.StringIO()
    progress = LineProgress(stream, interval=0)
    progress.begin(2, 2048)
    progress.advance(1024)
    progress.advance(1024, 1)
    assert stream.getvalue().splitlines() == [
        "backup: copying 2 blobs (2.0 kB)",
        "backup: 0/2 blobs, 1.0 kB of 2.0 kB",
        "backup: 1/2 blobs, 2.0 kB of 2.0 kB",
    ]
