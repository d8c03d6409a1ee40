"""``make bench``: cheeseboard vs devpi-server, same machine, same upstream, same run.

For each server: fresh datadir, start time, cold installs (uv, then pip on a second
copy of the package tree), warm installs (median of N), simple-page throughput for a
2,000-file and a 3-file project, and peak RSS of the server's process tree.  Writes
a Markdown table to stdout and ``.bench/results.md`` and raw numbers to
``.bench/results.json``.  See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks import dataset
from benchmarks.load import PIP_ACCEPT, PIP_ACCEPT_ENCODING, run_load
from benchmarks.servers import (
    BenchServer,
    CheeseboardServer,
    DevpiServer,
    Processes,
    cheeseboard_available,
    clean_env,
    ensure_devpi_venv,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"
INSTALL_TIMEOUT_S = 300.0
SERVER_ORDER = ("devpi", "cheeseboard")


def log(msg: str) -> None:
    """Progress line on stderr, so stdout carries only the final table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ upstream


class Upstream:
    """Handle on the upstream subprocess (see ``benchmarks/upstream_proc.py``)."""

    def __init__(self, procs: Processes, dest: Path, mode: str) -> None:
        self.mode = mode
        with (dest.parent / "upstream.log").open("ab") as errlog:
            command = [sys.executable, "-m", "benchmarks.upstream_proc", "--dest", str(dest)]
            self.proc = procs.spawn(
                [*command, "--mode", mode],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errlog,
                text=True,
                cwd=ROOT,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("upstream process died; see .bench/run/upstream.log")
        self.info: dict[str, Any] = json.loads(line)
        self.simple_url: str = self.info["simple_url"]

    def count(self, substring: str) -> int:
        """Upstream requests so far whose path contains ``substring``."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"count {substring}\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def dump(self, path: Path) -> None:
        """Save the upstream request log to ``path`` and start a new one."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"dump {path}\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()

    def counters(self) -> dict[str, int]:
        """Snapshot of upstream fetches by kind, to diff around a phase."""
        metadata = self.count(".metadata")
        return {
            "pages": self.count("/simple/"),
            "json_api": self.count("/pypi/"),
            "metadata": metadata,
            "files": self.count("/files/") - metadata,
        }


@contextlib.contextmanager
def upstream_delta(upstream: Upstream, into: dict[str, Any], key: str) -> Iterator[None]:
    """Record how many upstream pages/files the server fetched during the block."""
    before = upstream.counters()
    try:
        yield
    finally:
        after = upstream.counters()
        into[key] = {k: after[k] - before[k] for k in after}


# ------------------------------------------------------------------------ installs


def _exe_beside_python(name: str) -> str:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def install(tool: str, index_url: str, project: str, scratch: Path) -> dict[str, Any]:
    """Time one install of ``project`` into an empty target with an empty client cache."""
    scratch.mkdir(parents=True, exist_ok=True)
    target, cache = scratch / "target", scratch / "cache"
    if tool == "uv":
        cmd = [
            _exe_beside_python("uv"),
            "pip",
            "install",
            "--quiet",
            "--no-progress",
            "--target",
            str(target),
            "--index-url",
            index_url,
            "--cache-dir",
            str(cache),
            "--python",
            sys.executable,
            "--link-mode",
            "copy",
            project,
        ]
    elif tool == "pip":
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--isolated",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--target",
            str(target),
            "--index-url",
            index_url,
            project,
        ]
    else:
        raise ValueError(tool)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=clean_env()
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(scratch, ignore_errors=True)
        return {"ok": False, "seconds": None, "error": f"timeout after {INSTALL_TIMEOUT_S}s"}
    seconds = time.perf_counter() - t0
    installed = sorted(p.name for p in target.glob("*.dist-info")) if target.exists() else []
    shutil.rmtree(scratch, ignore_errors=True)
    expected = len(dataset.TREE)
    if proc.returncode != 0 or len(installed) != expected:
        err = (proc.stderr or proc.stdout).strip()[-800:]
        return {
            "ok": False,
            "seconds": round(seconds, 3),
            "error": f"exit {proc.returncode}, {len(installed)}/{expected} installed: {err}",
        }
    return {"ok": True, "seconds": round(seconds, 3)}


def repeated(fn: Callable[[int], dict[str, Any]], n: int) -> dict[str, Any]:
    """Run ``fn`` n times; median of the successful runs, all runs kept for the JSON."""
    runs = [fn(i) for i in range(n)]
    good = [r["seconds"] for r in runs if r["ok"]]
    out: dict[str, Any] = {"runs": runs, "ok": len(good) == n}
    out["seconds"] = round(statistics.median(good), 3) if good else None
    if len(good) != n:
        out["error"] = next(r.get("error") for r in runs if not r["ok"])
    return out


# ------------------------------------------------------------------------ pages


def fetch(url: str, accept_encoding: str = PIP_ACCEPT_ENCODING) -> dict[str, Any]:
    """One GET with pip's headers: status, type, encoding, wire size and wall time."""
    headers = {"Accept": PIP_ACCEPT, "Accept-Encoding": accept_encoding}
    req = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    t0 = time.perf_counter()
    try:
        with opener.open(req, timeout=60) as resp:
            body = resp.read()
            status, rh = resp.status, resp.headers
    except urllib.error.HTTPError as exc:
        body, status, rh = exc.read(), exc.code, exc.headers
    return {
        "status": status,
        "content_type": rh.get("Content-Type", "").split(";")[0],
        "content_encoding": rh.get("Content-Encoding", "identity"),
        "bytes": len(body),
        "seconds": round(time.perf_counter() - t0, 4),
    }


def page_throughput(server: BenchServer, project: str, args: argparse.Namespace) -> dict[str, Any]:
    """First (cold) fetch, one warm-up fetch, then fixed-duration load."""
    url = f"{server.index_url}{project}/"
    cold = fetch(url, args.accept_encoding)
    warm = fetch(url, args.accept_encoding)
    load = run_load(
        url,
        connections=args.connections,
        duration=args.duration,
        accept_encoding=args.accept_encoding,
        tool=args.load_tool,
    )
    return {"url": url, "first_fetch": cold, "warmup_fetch": warm, "load": load.to_dict()}


# ------------------------------------------------------------------------ one server


def measure(server: BenchServer, upstream: Upstream, args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement for one server, from a fresh datadir to stop."""
    res: dict[str, Any] = {}
    scratch = server.workdir / "scratch"
    try:
        res["version"] = server.version()
        log(f"{server.name}: init")
        t0 = time.perf_counter()
        server.init()
        res["init_s"] = round(time.perf_counter() - t0, 3)
        log(f"{server.name}: start")
        res["start_s"] = round(server.start(), 3)
        log(f"{server.name}: ready in {res['start_s']}s at {server.index_url}")

        uv_app, pip_app = (dataset.app_name(p) for p in dataset.TREE_PREFIXES)
        with upstream_delta(upstream, res, "upstream_cold_uv"):
            res["cold_uv"] = install("uv", server.index_url, uv_app, scratch / "cold-uv")
        log(f"{server.name}: cold uv {res['cold_uv']}")
        with upstream_delta(upstream, res, "upstream_cold_pip"):
            res["cold_pip"] = install("pip", server.index_url, pip_app, scratch / "cold-pip")
        log(f"{server.name}: cold pip {res['cold_pip']}")

        with upstream_delta(upstream, res, "upstream_warm_installs"):
            res["warm_uv"] = repeated(
                lambda i: install("uv", server.index_url, uv_app, scratch / f"warm-uv-{i}"),
                args.repeat,
            )
            log(f"{server.name}: warm uv {res['warm_uv']['seconds']}")
            res["warm_pip"] = repeated(
                lambda i: install("pip", server.index_url, uv_app, scratch / f"warm-pip-{i}"),
                args.repeat,
            )
            log(f"{server.name}: warm pip {res['warm_pip']['seconds']}")

        pages = (("small", dataset.SMALL_PROJECT), ("large", dataset.LARGE_PROJECT))
        # Includes each page's first, cold fetch; the load itself should add nothing.
        with upstream_delta(upstream, res, "upstream_page_load"):
            for key, project in pages:
                log(f"{server.name}: {key} page, {args.connections} conns, {args.duration}s")
                res[f"page_{key}"] = page_throughput(server, project, args)
                lr = res[f"page_{key}"]["load"]
                log(f"{server.name}: {key} page {lr['ok_rps']} req/s, non200={lr['non_200']}")
        res["memory"] = server.memory()
    except Exception as exc:
        res["error"] = f"{type(exc).__name__}: {exc}"
        log(f"{server.name}: FAILED: {res['error']} (log: {server.log})")
        if server.proc is not None and server.proc.poll() is None:
            res["memory"] = server.memory()
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        upstream.dump(server.workdir / "upstream-requests.json")
    return res


# ------------------------------------------------------------------------ report


def _get(d: dict[str, Any] | None, *path: str) -> Any:
    cur: Any = d
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


# (label, path into a server's result, unit, higher_is_better)
ROWS: list[tuple[str, tuple[str, ...], str, bool]] = [
    ("small page throughput", ("page_small", "load", "ok_rps"), "req/s", True),
    ("small page latency p50", ("page_small", "load", "latency_ms", "p50"), "ms", False),
    ("small page latency p99", ("page_small", "load", "latency_ms", "p99"), "ms", False),
    ("small page non-200 / socket errors", ("page_small", "load", "_errs"), "", False),
    ("large page throughput", ("page_large", "load", "ok_rps"), "req/s", True),
    ("large page latency p50", ("page_large", "load", "latency_ms", "p50"), "ms", False),
    ("large page latency p99", ("page_large", "load", "latency_ms", "p99"), "ms", False),
    ("large page non-200 / socket errors", ("page_large", "load", "_errs"), "", False),
    ("large page first (cold) fetch", ("page_large", "first_fetch", "seconds"), "s", False),
    ("cold install, uv", ("cold_uv", "seconds"), "s", False),
    ("cold install, pip", ("cold_pip", "seconds"), "s", False),
    ("warm install, uv (median)", ("warm_uv", "seconds"), "s", False),
    ("warm install, pip (median)", ("warm_pip", "seconds"), "s", False),
    ("peak RSS, process tree", ("memory", "peak_rss_mib"), "MiB", False),
    ("RSS at end of run, process tree", ("memory", "rss_mib"), "MiB", False),
    ("start time (launch to ready)", ("start_s",), "s", False),
    ("init time (not in start time)", ("init_s",), "s", False),
]


def _decorate(res: dict[str, Any]) -> None:
    """Derived fields the table shows (errors pair, MiB)."""
    for key in ("page_small", "page_large"):
        load = _get(res, key, "load")
        if load:
            load["_errs"] = f"{load['non_200']} / {load['errors']}"
    mem = res.get("memory")
    if mem:
        mem["peak_rss_mib"] = round(mem["peak_rss_kib"] / 1024, 1)
        mem["rss_mib"] = round(mem["rss_kib"] / 1024, 1)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
    return str(value)


def ratio(devpi: Any, cb: Any, higher_is_better: bool) -> float | None:
    """>1 means cheeseboard is better: cb/devpi for rates, devpi/cb for costs."""
    if not isinstance(devpi, int | float) or not isinstance(cb, int | float):
        return None
    num, den = (cb, devpi) if higher_is_better else (devpi, cb)
    return round(num / den, 2) if den else None


def render(results: dict[str, Any]) -> str:
    """The Markdown report."""
    servers: dict[str, Any] = results["servers"]
    names = [n for n in SERVER_ORDER if n in servers]
    for res in servers.values():
        _decorate(res)
    both = len(names) == 2
    meta = results["meta"]
    lines = [
        f"# cheeseboard vs devpi-server ({meta['date']})",
        "",
        f"Machine: {meta['cpus']} CPUs, {meta['platform']}, Python {meta['python']}. "
        f"Load: {meta['load_tool']}, {meta['connections']} connections, "
        f"{meta['duration']}s per page, pip's Accept header, "
        f"Accept-Encoding: {meta['accept_encoding']}. "
        f"Upstream: {meta['upstream']['files']} files "
        f"({meta['upstream']['bytes'] / 1e6:.1f} MB), "
        f"{'PEP 691 JSON' if meta['upstream'].get('mode') == 'json' else 'HTML only'}, "
        "separate process.",
        "",
    ]
    header = ["metric", *(f"{n} {_fmt(servers[n].get('version'))}" for n in names)]
    if both:
        header.append("ratio (>1 = cheeseboard better)")
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    ratios: dict[str, float | None] = {}
    for label, path, unit, higher in ROWS:
        values = [_get(servers[n], *path) for n in names]
        cells = [label + (f" ({unit})" if unit else "")]
        cells += [_fmt(v) for v in values]
        if both:
            r = ratio(values[0], values[1], higher) if unit else None
            ratios[label] = r
            cells.append("" if not unit else (f"{r:.2f}x" if r is not None else "n/a"))
        lines.append("| " + " | ".join(cells) + " |")
    results["ratios"] = ratios
    lines.append("")
    lines.append(
        "Ratios: throughput is cheeseboard/devpi; times, latencies and memory are "
        "devpi/cheeseboard. Either way >1 means cheeseboard is better."
    )
    lines.append("")
    for n in names:
        res = servers[n]
        notes = []
        for key in ("page_small", "page_large"):
            ff = _get(res, key, "warmup_fetch")
            if ff:
                notes.append(
                    f"{key} answers {ff['status']} {ff['content_type']}, "
                    f"{ff['content_encoding']} ({ff['bytes']:,} B on the wire)"
                )
        for key in (
            "upstream_cold_uv",
            "upstream_cold_pip",
            "upstream_warm_installs",
            "upstream_page_load",
        ):
            up = res.get(key)
            if up:
                kinds = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in up.items())
                notes.append(f"{key.removeprefix('upstream_')} fetched upstream: {kinds}")
        mem = res.get("memory")
        if mem:
            notes.append(f"{mem['processes']} process(es)")
        for key in ("cold_uv", "cold_pip", "warm_uv", "warm_pip"):
            err = _get(res, key, "error")
            if err:
                notes.append(f"**{key} failed**: {err}")
        if res.get("error"):
            notes.append(f"**error**: {res['error']}")
        lines.append(f"- {n}: " + "; ".join(notes))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (``make bench BENCH_ARGS='...'``)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    ap.add_argument("--only", choices=SERVER_ORDER, help="benchmark just one server")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per page load test")
    ap.add_argument("--connections", type=int, default=64, help="concurrent connections")
    ap.add_argument("--workers", type=int, default=None, help="cheeseboard serve --workers")
    ap.add_argument("--repeat", type=int, default=3, help="warm installs per installer")
    ap.add_argument(
        "--upstream-mode",
        choices=["html", "json"],
        default="html",
        help="html-only upstream (like the PyPI mirror CI reaches) or PEP 691 JSON (like pypi.org)",
    )
    ap.add_argument(
        "--load-tool",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="auto = wrk if on PATH, else the aiohttp fallback",
    )
    ap.add_argument(
        "--accept-encoding",
        default=PIP_ACCEPT_ENCODING,
        help="Accept-Encoding of the page load (pip's by default; 'identity' = none)",
    )
    ap.add_argument(
        "--devpi-venv", type=Path, default=BENCH_DIR / "venv-devpi", help="reused between runs"
    )
    return ap.parse_args(argv)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the whole comparison; returns non-zero if any server failed."""
    args = parse_args(argv)
    os.chdir(ROOT)
    wanted = [args.only] if args.only else list(SERVER_ORDER)
    if "cheeseboard" in wanted and (reason := cheeseboard_available()):
        print(
            f"cheeseboard-server is not usable: {reason}\n"
            "Run with --only devpi to benchmark devpi alone.",
            file=sys.stderr,
        )
        return 2
    if args.load_tool == "auto" and not shutil.which("wrk"):
        log("wrk not found; using the Python (aiohttp) load generator")
    load_tool = (
        args.load_tool if args.load_tool != "auto" else ("wrk" if shutil.which("wrk") else "python")
    )

    run_dir = BENCH_DIR / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    procs = Processes()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)

    t_start = time.perf_counter()
    results: dict[str, Any] = {"meta": {}, "servers": {}}
    try:
        if "devpi" in wanted:
            ensure_devpi_venv(args.devpi_venv)
        log("building data set and starting upstream")
        upstream = Upstream(procs, run_dir / "upstream-data", args.upstream_mode)
        log(f"upstream {upstream.simple_url}: {upstream.info}")
        results["meta"] |= {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cpus": os.cpu_count(),
            "platform": platform.platform(terse=True),
            "python": platform.python_version(),
            "load_tool": load_tool,
            "connections": args.connections,
            "duration": args.duration,
            "accept_encoding": args.accept_encoding,
            "repeat": args.repeat,
            "cheeseboard_workers": args.workers,
            "upstream": {**upstream.info, "mode": upstream.mode},
        }
        for name in wanted:
            server: BenchServer
            if name == "devpi":
                server = DevpiServer(run_dir / name, procs, upstream.simple_url, args.devpi_venv)
            else:
                server = CheeseboardServer(run_dir / name, procs, upstream.simple_url, args.workers)
            results["servers"][name] = measure(server, upstream, args)
    finally:
        procs.kill_all()
    results["meta"]["total_s"] = round(time.perf_counter() - t_start, 1)

    report = render(results)
    print(report)
    (BENCH_DIR / "results.md").write_text(report)
    (BENCH_DIR / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    log(f"done in {results['meta']['total_s']}s; wrote .bench/results.md and .bench/results.json")
    return 1 if any("error" in r for r in results["servers"].values()) else 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        log("interrupted; all benchmark processes were stopped")
        raise SystemExit(130) from None
