"""Run the fake upstream PyPI in its own process for the benchmark.

The upstream (``tests.support.upstream.UpstreamServer``) is a threaded stdlib server.
Kept in the benchmark process, its threads would share one GIL with the harness (and
with the Python load generator when wrk is missing), so cold-install times would
partly measure our own contention.  In a separate process it only competes for CPU
like any other program, equally for both servers.

With ``--static-mirror DIR`` it also writes the same files as a static PEP 503 tree
into DIR (see :func:`benchmarks.dataset.write_static_mirror`) before it serves.

Protocol: prints one JSON line ``{"simple_url": ..., ...}`` on stdout when serving;
then reads commands from stdin, one per line: ``count SUBSTRING`` answers with the
number of upstream requests whose path contains SUBSTRING so far; ``dump FILE`` writes
the request log (method, path, Range header, time) to FILE as JSON, forgets it and
answers ``ok``.  EOF stops it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks import dataset
from tests.support.upstream import UpstreamServer


def main(argv: list[str] | None = None) -> int:
    """Build the data set into ``--dest``, serve it, answer ``count`` until EOF."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dest", type=Path, required=True)
    ap.add_argument(
        "--mode",
        choices=["html", "json"],
        default="html",
        help="html: like the HTML-only PyPI mirror CI reaches; json: PEP 691 like pypi.org",
    )
    ap.add_argument(
        "--static-mirror",
        type=Path,
        default=None,
        help="also lay the data set out here as a static PEP 503 tree (for nginx)",
    )
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    items = dataset.build(args.dest)
    if args.static_mirror is not None:
        dataset.write_static_mirror(items, args.static_mirror)
    build_s = time.perf_counter() - t0

    upstream = UpstreamServer(mode=args.mode)
    for item in items:
        upstream.add(item.dist, upload_time=item.upload_time, yanked=item.yanked)
    upstream.start()
    try:
        ready = {
            "simple_url": upstream.simple_url,
            "files": len(items),
            "bytes": sum(i.dist.size for i in items),
            "build_s": round(build_s, 2),
        }
        print(json.dumps(ready), flush=True)
        for line in sys.stdin:
            cmd, _, arg = line.strip().partition(" ")
            if cmd == "count":
                print(upstream.count(arg), flush=True)
            elif cmd == "dump":
                log = [
                    {
                        "method": r.method,
                        "path": r.path,
                        "range": r.headers.get("Range"),
                        "time": r.time,
                    }
                    for r in upstream.requests
                ]
                Path(arg).write_text(json.dumps(log, indent=1) + "\n")
                upstream.clear_requests()
                print("ok", flush=True)
            elif cmd:
                print(f"error: unknown command {cmd!r}", flush=True)
    finally:
        upstream.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
