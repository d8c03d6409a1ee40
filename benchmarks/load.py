"""HTTP load generation: wrk when installed, else a multi-process aiohttp fallback.

Both report the same :class:`LoadResult`, so the report does not care which tool ran.
The fallback splits the connections over several worker processes because one Python
process cannot keep 64 keep-alive connections busy against a fast server on its own.

Run as ``python -m benchmarks.load URL --connections N --duration S`` to try it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
# What pip (requests/urllib3) sends; servers that keep pages gzipped get credit for it,
# as they would with real clients.  "identity" measures uncompressed serving.
PIP_ACCEPT_ENCODING = "gzip, deflate"

# Headers beyond Accept and Accept-Encoding (``Authorization`` for the authenticated page
# load) reach the fallback's worker processes in this variable, as JSON: not on their command
# lines, where ``ps`` would show a password.
HEADERS_ENV = "BENCH_LOAD_HEADERS"

# Never let a hung server hang the benchmark: generous per-request timeout, hard cap
# on the whole run well above the requested duration.
REQUEST_TIMEOUT_S = 30.0


@dataclass
class LoadResult:
    """Outcome of one fixed-duration load run against one URL."""

    tool: str
    url: str
    connections: int
    duration_s: float
    requests: int = 0
    ok: int = 0
    non_200: int = 0
    errors: int = 0
    bytes_read: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok_rps(self) -> float:
        """Successful (HTTP 200) responses per second, the headline throughput number."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, including the derived rate."""
        data = asdict(self)
        data["ok_rps"] = round(self.ok_rps, 1)
        return data


def run_load(
    url: str,
    *,
    connections: int,
    duration: float,
    accept: str = PIP_ACCEPT,
    accept_encoding: str = PIP_ACCEPT_ENCODING,
    tool: str = "auto",
    extra_headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """Drive ``url`` with ``connections`` keep-alive connections for ``duration`` seconds,
    every request with ``extra_headers`` too (e.g. ``Authorization``)."""
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    headers = {"Accept": accept, "Accept-Encoding": accept_encoding, **(extra_headers or {})}
    if tool == "wrk":
        return _run_wrk(url, connections=connections, duration=duration, headers=headers)
    if tool == "python":
        return _run_python(url, connections=connections, duration=duration, headers=headers)
    raise ValueError(f"unknown load tool {tool!r}")


# --------------------------------------------------------------------------- wrk


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}

# wrk's own counter: responses with status >= 400 ("Non-2xx or 3xx responses"). A Lua
# ``response`` hook could count exact 200s, but it makes wrk buffer every body, which
# slows it down on the 2,000-file page; the warm-up request checks for a plain 200.


def _wrk_latency(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return math.nan
    return float(m.group(1)) * _WRK_UNITS[m.group(2)]


def parse_wrk(output: str, *, url: str, connections: int, duration: float) -> LoadResult:
    """Turn wrk's text report into a :class:`LoadResult`."""
    res = LoadResult(tool="wrk", url=url, connections=connections, duration_s=duration)
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)([KMGT]?B) read", output)
    if m:
        res.requests = int(m.group(1))
        res.duration_s = _wrk_latency(m.group(2) + m.group(3)) / 1000.0
        res.bytes_read = int(float(m.group(4)) * _SIZE_UNITS[m.group(5)])
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if m:
        res.errors = sum(int(g) for g in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    res.non_200 = int(m.group(1)) if m else 0
    res.ok = max(res.requests - res.non_200, 0)
    for pct, value in re.findall(r"^\s+(50|90|99)(?:\.0+)?%\s+(\S+)", output, re.M):
        res.latency_ms[f"p{pct}"] = round(_wrk_latency(value), 2)
    return res


def _run_wrk(url: str, *, connections: int, duration: float, headers: dict[str, str]) -> LoadResult:
    # One wrk thread is plenty for Python servers and leaves the second core to them.
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={int(REQUEST_TIMEOUT_S)}s",
        "--latency",
        *(arg for key, value in headers.items() for arg in ("-H", f"{key}: {value}")),
        url,
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + REQUEST_TIMEOUT_S + 30
    )
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()}")
    return parse_wrk(proc.stdout, url=url, connections=connections, duration=duration)


# --------------------------------------------------------------------- python fallback


def _run_python(
    url: str, *, connections: int, duration: float, headers: dict[str, str]
) -> LoadResult:
    """Fan out over one worker process per core, each with its share of connections."""
    procs_n = max(1, min(os.cpu_count() or 1, connections))
    shares = [
        connections // procs_n + (1 if i < connections % procs_n else 0) for i in range(procs_n)
    ]
    start_at = time.time() + 1.0  # every worker starts the clock together
    extra = {k: v for k, v in headers.items() if k not in ("Accept", "Accept-Encoding")}
    env = {**os.environ, HEADERS_ENV: json.dumps(extra)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.load",
                "--worker",
                url,
                "--connections",
                str(share),
                "--duration",
                str(duration),
                "--accept",
                headers["Accept"],
                "--accept-encoding",
                headers["Accept-Encoding"],
                "--start-at",
                repr(start_at),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for share in shares
    ]
    total = LoadResult(tool="python", url=url, connections=connections, duration_s=duration)
    latencies: list[float] = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=duration + REQUEST_TIMEOUT_S + 30)
            if p.returncode != 0:
                raise RuntimeError(f"load worker failed with exit code {p.returncode}")
            part = json.loads(out)
            total.requests += part["requests"]
            total.ok += part["ok"]
            total.non_200 += part["non_200"]
            total.errors += part["errors"]
            total.bytes_read += part["bytes_read"]
            latencies.extend(part["latencies"])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    total.latency_ms = percentiles(latencies)
    return total


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99 (nearest rank) of latencies in milliseconds."""
    if not values:
        return {}
    ordered = sorted(values)
    out = {}
    for pct in (50, 90, 99):
        idx = min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))
        out[f"p{pct}"] = round(ordered[idx], 2)
    return out


async def _worker(
    url: str, connections: int, duration: float, headers: dict[str, str], start_at: float
) -> dict[str, object]:
    import aiohttp  # only the fallback needs it; it is in the server extra

    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + duration
    stats = {"requests": 0, "ok": 0, "non_200": 0, "errors": 0, "bytes_read": 0}
    latencies: list[float] = []
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)

    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    ) as session:

        async def loop() -> None:
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                try:
                    async with session.get(url, headers=headers, allow_redirects=False) as resp:
                        body = await resp.read()
                except (aiohttp.ClientError, TimeoutError):
                    if time.monotonic() < deadline:
                        stats["errors"] += 1
                    continue
                if time.monotonic() >= deadline:
                    break  # finished after the window closed: not counted (as in wrk)
                latencies.append((time.perf_counter() - t0) * 1000.0)
                stats["requests"] += 1
                stats["bytes_read"] += len(body)
                if resp.status == 200:
                    stats["ok"] += 1
                else:
                    stats["non_200"] += 1

        # Like wrk, stop at the deadline: requests still in flight are dropped, not
        # waited for, or slow pages would be counted over a longer window than measured.
        tasks = [asyncio.create_task(loop()) for _ in range(connections)]
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return {**stats, "latencies": [round(x, 3) for x in latencies]}


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--worker`` mode prints raw JSON for the parent; otherwise a summary."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("url")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--accept", default=PIP_ACCEPT)
    ap.add_argument("--accept-encoding", default=PIP_ACCEPT_ENCODING)
    ap.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="another request header (repeatable)",
    )
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        result = asyncio.run(
            _worker(
                args.url,
                args.connections,
                args.duration,
                {
                    "Accept": args.accept,
                    "Accept-Encoding": args.accept_encoding,
                    **json.loads(os.environ.get(HEADERS_ENV) or "{}"),
                },
                args.start_at,
            )
        )
        json.dump(result, sys.stdout)
        return 0
    res = run_load(
        args.url,
        connections=args.connections,
        duration=args.duration,
        accept=args.accept,
        accept_encoding=args.accept_encoding,
        tool=args.tool,
        extra_headers=dict(
            (name.strip(), value.strip())
            for name, _, value in (header.partition(":") for header in args.header)
        ),
    )
    print(json.dumps(res.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
