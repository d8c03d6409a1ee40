"""``make bench``: cheeseboard against nginx, proxpi and devpi-server, in one run.

Same machine, same data set, same local HTML-only upstream, one server after the
other.  nginx serves a static PEP 503 copy of the data set (the ceiling); proxpi,
devpi and cheeseboard mirror the upstream.  For each: init and start time, cold
installs (uv, then pip on a second copy of the tree), warm installs (median of N),
cached small/big simple pages, a cached small and a 16 MiB file, memory, and the time
from a restart on the warm datadir to the first 200 of a cached page (median of 3).
With cheeseboard, also the stack floor: a bare ASGI app (``benchmarks/floor_app.py``) on
the same Granian, loaded like the small page and the small file.  The Markdown
table (values, cheeseboard/peer ratios, targets with pass/fail marks) goes to stdout
and ``.bench/results.md``; raw numbers to ``.bench/results.json``.  See
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import functools
import gzip
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urldefrag, urljoin

from benchmarks import dataset, floor_app
from benchmarks.load import PIP_ACCEPT, PIP_ACCEPT_ENCODING, run_load
from benchmarks.servers import (
    ROOT_PASSWORD,
    BenchServer,
    CheeseboardServer,
    DevpiServer,
    NginxServer,
    Processes,
    ProxpiServer,
    cheeseboard_available,
    clean_env,
    ensure_devpi_venv,
    ensure_proxpi_venv,
    free_port,
    nginx_available,
    wait_ready,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"
INSTALL_TIMEOUT_S = 180.0
PEERS = ("nginx", "proxpi", "devpi")
SERVER_ORDER = (*PEERS, "cheeseboard")
# What pip sends when it downloads a file: no compression, any type.
FILE_ACCEPT = "*/*"
FILE_ACCEPT_ENCODING = "identity"


def log(msg: str) -> None:
    """Progress line on stderr, so stdout carries only the final table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ upstream


class Upstream:
    """Handle on the upstream subprocess (see ``benchmarks/upstream_proc.py``)."""

    def __init__(
        self, procs: Processes, dest: Path, mode: str, static_mirror: Path | None = None
    ) -> None:
        self.mode = mode
        with (dest.parent / "upstream.log").open("ab") as errlog:
            command = [sys.executable, "-m", "benchmarks.upstream_proc", "--dest", str(dest)]
            if static_mirror is not None:
                command += ["--static-mirror", str(static_mirror)]
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


# ------------------------------------------------------------------------ pages and files


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(
    url: str,
    accept_encoding: str = PIP_ACCEPT_ENCODING,
    accept: str = PIP_ACCEPT,
    extra_headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One GET with pip's headers: status, type, encoding, wire size, wall time, redirects."""
    req = urllib.request.Request(
        url,
        headers={"Accept": accept, "Accept-Encoding": accept_encoding, **(extra_headers or {})},
    )
    t0 = time.perf_counter()
    try:
        with _opener().open(req, timeout=60) as resp:
            body = resp.read()
            status, rh, final = resp.status, resp.headers, resp.geturl()
    except urllib.error.HTTPError as exc:
        body, status, rh, final = exc.read(), exc.code, exc.headers, url
    return {
        "status": status,
        "content_type": rh.get("Content-Type", "").split(";")[0],
        "content_encoding": rh.get("Content-Encoding", "identity"),
        "bytes": len(body),
        "seconds": round(time.perf_counter() - t0, 4),
        "redirected_to": final if final != url else None,
    }


def file_url(page_url: str, filename: str) -> str:
    """Absolute URL of ``filename`` as the server's own project page links it."""
    headers = {"Accept": PIP_ACCEPT, "Accept-Encoding": PIP_ACCEPT_ENCODING}
    req = urllib.request.Request(page_url, headers=headers)
    with _opener().open(req, timeout=60) as resp:
        raw, encoding = resp.read(), resp.headers.get("Content-Encoding", "")
        final = resp.geturl()
        ctype = resp.headers.get("Content-Type", "")
    if encoding == "gzip":
        raw = gzip.decompress(raw)
    elif encoding == "deflate":
        raw = zlib.decompress(raw)
    text = raw.decode()
    hrefs: list[str]
    if "json" in ctype:  # PEP 691
        hrefs = [f["url"] for f in json.loads(text)["files"] if f["filename"] == filename]
    else:
        hrefs = [h for h in re.findall(r'href="([^"]+)"', text) if filename in h]
    if not hrefs:
        raise RuntimeError(f"{filename} not linked from {page_url}")
    href = str(hrefs[0]).replace("&amp;", "&")
    return str(urldefrag(urljoin(final, href)).url)


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The ``Authorization`` header pip sends with credentials from a URL, netrc or keyring."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def cooldown_index(server: BenchServer) -> str:
    """Make ``root/cooled`` (bases root/pypi, min_release_age 7d) and return its simple URL."""
    body = json.dumps({"bases": "root/pypi", "min_release_age": "7d"}).encode()
    request = urllib.request.Request(
        f"{server.base_url}/root/cooled",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/json", **basic_auth("root", ROOT_PASSWORD)},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        if response.status not in (200, 201):
            raise RuntimeError(f"creating root/cooled answered {response.status}")
    return f"{server.base_url}/root/cooled/+simple/"


def page_throughput(
    server: BenchServer,
    project: str,
    connections: int,
    args: argparse.Namespace,
    extra_headers: dict[str, str] | None = None,
    index_url: str | None = None,
) -> dict[str, Any]:
    """First (cold) fetch, one warm-up fetch, then fixed-duration load with pip's headers
    (and ``extra_headers``: credentials for the authenticated load) on ``index_url``
    (default: the server's mirror index)."""
    url = f"{index_url or server.index_url}{project}/"
    cold = fetch(url, args.accept_encoding, extra_headers=extra_headers)
    warm = fetch(url, args.accept_encoding, extra_headers=extra_headers)
    if warm["status"] != 200:
        raise RuntimeError(f"{url} answers {warm['status']} after its first fetch")
    if extra_headers:
        # Every worker checks the credentials once (argon2, by design slow), then knows them:
        # a one-second burst over all connections lets each worker do that before the
        # measured load, which is then the steady state the target is about.
        run_load(
            url,
            connections=connections,
            duration=1.0,
            accept_encoding=args.accept_encoding,
            tool=args.load_tool,
            extra_headers=extra_headers,
        )
    load = run_load(
        url,
        connections=connections,
        duration=args.duration,
        accept_encoding=args.accept_encoding,
        tool=args.load_tool,
        extra_headers=extra_headers,
    )
    return {"url": url, "first_fetch": cold, "warmup_fetch": warm, "load": load.to_dict()}


def file_throughput(
    server: BenchServer, project: str, filename: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Download ``filename`` once through the server, wait until it is served from the
    server itself (200, no redirect), then load it with pip's download headers."""
    url = file_url(f"{server.index_url}{project}/", filename)
    cold = fetch(url, FILE_ACCEPT_ENCODING, FILE_ACCEPT)
    deadline = time.monotonic() + 30
    while True:
        warm = fetch(url, FILE_ACCEPT_ENCODING, FILE_ACCEPT)
        if warm["status"] == 200 and warm["redirected_to"] is None:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not served directly after 30 s: {warm}")
        time.sleep(0.2)
    load = run_load(
        url,
        connections=args.file_connections,
        duration=args.duration,
        accept=FILE_ACCEPT,
        accept_encoding=FILE_ACCEPT_ENCODING,
        tool=args.load_tool,
    )
    seconds = load.duration_s
    data = load.to_dict()
    data["mib_s"] = round(load.bytes_read / seconds / 2**20, 1) if seconds else None
    return {"url": url, "first_fetch": cold, "warmup_fetch": warm, "load": data}


# ------------------------------------------------------------------------ one server


def _phase(res: dict[str, Any], key: str, server: BenchServer, fn: Callable[[], Any]) -> None:
    """Store ``fn()`` under ``key``; a failure is stored as ``{"error": ...}`` and logged,
    so one broken phase does not hide the others."""
    try:
        res[key] = fn()
    except Exception as exc:
        res[key] = {"error": f"{type(exc).__name__}: {exc}"}
        log(f"{server.name}: {key} FAILED: {res[key]['error']} (log: {server.log})")


def measure(server: BenchServer, upstream: Upstream, args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement for one server, from a fresh datadir to the restart on it."""
    res: dict[str, Any] = {"not_applicable": []}
    scratch = server.workdir / "scratch"
    name = server.name
    try:
        res["version"] = server.version()
        log(f"{name} {res['version']}: init")
        t0 = time.perf_counter()
        if server.init():
            res["init_s"] = round(time.perf_counter() - t0, 3)
        else:
            res["not_applicable"].append("init_s")
        log(f"{name}: start")
        res["start_s"] = round(server.start(), 3)
        log(f"{name}: ready in {res['start_s']}s at {server.index_url}")

        uv_app, pip_app = (dataset.app_name(p) for p in dataset.TREE_PREFIXES)
        if server.proxies_upstream:
            with upstream_delta(upstream, res, "upstream_cold_uv"):
                res["cold_uv"] = install("uv", server.index_url, uv_app, scratch / "cold-uv")
            log(f"{name}: cold uv {res['cold_uv']}")
            with upstream_delta(upstream, res, "upstream_cold_pip"):
                res["cold_pip"] = install("pip", server.index_url, pip_app, scratch / "cold-pip")
            log(f"{name}: cold pip {res['cold_pip']}")
        else:
            res["not_applicable"] += ["cold_uv", "cold_pip"]

        with upstream_delta(upstream, res, "upstream_warm_installs"):
            res["warm_uv"] = repeated(
                lambda i: install("uv", server.index_url, uv_app, scratch / f"warm-uv-{i}"),
                args.repeat,
            )
            log(f"{name}: warm uv {res['warm_uv']['seconds']}")
            res["warm_pip"] = repeated(
                lambda i: install("pip", server.index_url, uv_app, scratch / f"warm-pip-{i}"),
                args.repeat,
            )
            log(f"{name}: warm pip {res['warm_pip']['seconds']}")

        # Includes each page's and file's first, cold fetch; the load itself should add
        # nothing.
        with upstream_delta(upstream, res, "upstream_load"):
            for key, project in (
                ("page_small", dataset.SMALL_PROJECT),
                ("page_large", dataset.LARGE_PROJECT),
            ):
                log(f"{name}: {key}, {args.connections} conns, {args.duration}s")
                _phase(
                    res,
                    key,
                    server,
                    functools.partial(page_throughput, server, project, args.connections, args),
                )
                log(f"{name}: {key} {_get(res, key, 'load', 'ok_rps')} req/s")
            # Only cheeseboard, the same small page (the peers' auth and policies are not what
            # this compares): each request signed in as root (Basic, the password verified
            # once, then known to the server's memory), what signing in costs on the hot path;
            # and through a stage with a 7-day cooldown on what it inherits (issue 21), whose
            # verdicts are kept until one can change.
            variants: tuple[tuple[str, str, dict[str, Any]], ...] = (
                (
                    "page_small_auth",
                    "_auth_ratio",
                    {"extra_headers": basic_auth("root", ROOT_PASSWORD)},
                ),
                ("page_small_cooldown", "_cooldown_ratio", {}),
            )
            for key, ratio_key, options in variants:
                if name != "cheeseboard":
                    res["not_applicable"] += [key, ratio_key]
                    continue
                if key == "page_small_cooldown":
                    options = {"index_url": cooldown_index(server)}
                log(f"{name}: {key}, {args.connections} conns, {args.duration}s")
                load = functools.partial(
                    page_throughput,
                    server,
                    dataset.SMALL_PROJECT,
                    args.connections,
                    args,
                    **options,
                )
                _phase(res, key, server, load)
                log(f"{name}: {key} {_get(res, key, 'load', 'ok_rps')} req/s")
            for key, project, filename in (
                ("file_small", dataset.SMALL_PROJECT, dataset.SMALL_FILE),
                ("file_large", dataset.HUGE_PROJECT, dataset.HUGE_FILE),
            ):
                log(f"{name}: {key}, {args.file_connections} conns, {args.duration}s")
                _phase(
                    res,
                    key,
                    server,
                    functools.partial(file_throughput, server, project, filename, args),
                )
                log(
                    f"{name}: {key} {_get(res, key, 'load', 'ok_rps')} req/s, "
                    f"{_get(res, key, 'load', 'mib_s')} MiB/s"
                )
        res["memory"] = server.memory()
        server.stop()

        # A restart on the datadir it has just filled: launch to the first 200 of a
        # page it has cached (pip's headers).
        page = f"{server.index_url}{dataset.SMALL_PROJECT}/"
        headers = {"Accept": PIP_ACCEPT, "Accept-Encoding": args.accept_encoding}
        # One restart varies by 0.1-0.2 s between runs on a 2-core machine: stop and
        # restart ``--restarts`` times, report the median, keep every run in the JSON.
        log(f"{name}: restart on the warm datadir, {args.restarts} times")
        runs: list[float] = []
        with upstream_delta(upstream, res, "upstream_restart"):
            for i in range(args.restarts):
                if i:
                    server.stop()
                runs.append(round(server.restart_to_first_200(page, headers), 3))
                res["restart_runs"] = runs
        res["restart_s"] = round(statistics.median(runs), 3)
        log(f"{name}: first 200 after restart in {runs} s, median {res['restart_s']}s")
    except Exception as exc:
        res["error"] = f"{type(exc).__name__}: {exc}"
        log(f"{name}: FAILED: {res['error']} (log: {server.log})")
        if server.proc is not None and server.proc.poll() is None and "memory" not in res:
            res["memory"] = server.memory()
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        upstream.dump(server.workdir / "upstream-requests.json")
    return res


# ------------------------------------------------------------------------ stack floor


FLOOR_APP = "benchmarks.floor_app:app"


def granian_version(granian: str) -> str:
    """``granian --version`` without the name, e.g. ``2.8.9``."""
    out = subprocess.run([granian, "--version"], capture_output=True, text=True, timeout=60)
    return (out.stdout or out.stderr).strip().rsplit(" ", 1)[-1] or "unknown"


def measure_floor(
    run_dir: Path, procs: Processes, args: argparse.Namespace, large_file: Path | None = None
) -> dict[str, Any]:
    """The ceiling of any ASGI app on cheeseboard's server stack: a bare ASGI app
    (``benchmarks/floor_app.py``, a fixed body per GET) on Granian with cheeseboard's
    interface, worker count and event loop, loaded exactly like the small page (pip's
    headers, ``--connections``), the small file and, through ``pathsend``, the 16 MiB
    wheel ``large_file`` (pip's download headers, ``--file-connections``)."""
    granian = _exe_beside_python("granian")
    workdir = run_dir / "floor"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {
        "granian_version": granian_version(granian),
        "workers": args.workers,
        "app": FLOOR_APP,
    }
    # Only measured when cheeseboard runs, so cheeseboard is installed here.
    from cheeseboard.server.runner import event_loop

    command = [
        granian,
        "--interface",
        "asgi",
        "--workers",
        str(args.workers),
        "--loop",
        event_loop().value,  # the loop cheeseboard's runner picks (uvloop when installed)
        "--no-access-log",
        "--log-level",
        "error",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--working-dir",
        str(ROOT),
        FLOOR_APP,
    ]
    env = clean_env()
    if large_file is not None:
        env["FLOOR_LARGE_FILE"] = str(large_file)
    proc = procs.spawn(command, log=workdir / "server.log", cwd=ROOT, env=env)
    try:
        wait_ready(f"{base}/page", proc)
        cases = [
            # (key, path, connections, Accept, Accept-Encoding), as the real rows use them
            ("page_small", "/page", args.connections, PIP_ACCEPT, args.accept_encoding),
            ("file_small", "/file", args.file_connections, FILE_ACCEPT, FILE_ACCEPT_ENCODING),
        ]
        if large_file is not None:
            large = ("file_large", "/large", args.file_connections)
            cases.append((*large, FILE_ACCEPT, FILE_ACCEPT_ENCODING))
        for key, path, connections, accept, accept_encoding in cases:
            url = base + path
            warm = fetch(url, accept_encoding, accept)
            if warm["status"] != 200:
                raise RuntimeError(f"{url} answers {warm['status']}")
            log(f"floor: {key}, {connections} conns, {args.duration}s")
            load = run_load(
                url,
                connections=connections,
                duration=args.duration,
                accept=accept,
                accept_encoding=accept_encoding,
                tool=args.load_tool,
            )
            out[key] = {"warmup_fetch": warm, "load": load.to_dict()}
            out[f"{key}_rps"] = round(load.ok_rps, 1)
            if key == "file_large" and load.duration_s:
                out[key]["load"]["mib_s"] = round(load.bytes_read / load.duration_s / 2**20, 1)
            log(f"floor: {key} {out[f'{key}_rps']} req/s")
    finally:
        procs.stop(proc)
    return out


def render_floor(results: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """The extra section under the notes: the bare app's req/s, its ratio to nginx, and
    cheeseboard as a share of it."""
    floor: dict[str, Any] | None = results.get("floor")
    if not floor:
        return []
    servers: dict[str, Any] = results["servers"]
    if floor.get("error"):
        return ["", "## Stack floor", "", f"**Not measured**: {floor['error']}"]
    has_nginx = "nginx" in servers
    lines = [
        "",
        f"## Stack floor: a bare ASGI app on Granian {floor['granian_version']} "
        f"({floor['workers']} workers)",
        "",
    ]
    header = ["measure", "bare ASGI app (req/s)"]
    if has_nginx:
        header.append("bare/nginx")
    header += ["cheeseboard (req/s)", "cheeseboard/bare"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for key, label in (
        ("page_small", f"small page, c{args.connections}, pip headers"),
        ("file_small", f"small file (~1 KB), c{args.file_connections}"),
    ):
        bare = floor.get(f"{key}_rps")
        cells = [label, _fmt(bare)]
        if has_nginx:
            cells.append(_fmt_ratio(ratio(bare, _get(servers["nginx"], key, "load", "ok_rps"))))
        cb = _get(servers.get("cheeseboard"), key, "load", "ok_rps")
        cells += [_fmt(cb), _fmt_ratio(ratio(cb, bare))]
        lines.append("| " + " | ".join(cells) + " |")
    if floor.get("file_large"):
        lines += ["", *_floor_large_rows(floor, servers, args)]
    lines += [
        "",
        f"The bare app (`benchmarks/floor_app.py`) answers every GET with a fixed "
        f"{len(floor_app.PAGE_BODY)}-byte JSON page or {len(floor_app.FILE_BODY)}-byte file "
        "and does nothing else, on the same Granian, workers, event loop and load as "
        "cheeseboard: a target above the bare app's ratio to nginx cannot be met by any "
        "ASGI app on this server. It runs once, after the servers: on a shared machine "
        "cheeseboard/bare can come out slightly above 1.",
    ]
    if load := floor.get("loadavg_before_after"):
        lines[-1] += f" Machine load average (1 min) {load[0][0]} before, {load[1][0]} after."
    return lines


def _floor_large_rows(
    floor: dict[str, Any], servers: dict[str, Any], args: argparse.Namespace
) -> list[str]:
    """The 16 MiB wheel through ``pathsend`` on the bare app beside cheeseboard and nginx:
    whether a latency tail is the stack's or cheeseboard's."""
    peers = [name for name in ("cheeseboard", "nginx") if name in servers]
    header = ["16 MiB wheel, c" + str(args.file_connections), "bare ASGI app", *peers]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, path in (("MiB/s", ("mib_s",)), ("p99 ms", ("latency_ms", "p99"))):
        cells = [label, _fmt(_get(floor, "file_large", "load", *path))]
        cells += [_fmt(_get(servers[name], "file_large", "load", *path)) for name in peers]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# ------------------------------------------------------------------------ report


def _get(d: dict[str, Any] | None, *path: str) -> Any:
    cur: Any = d
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


@dataclass(frozen=True)
class Target:
    """A goal for cheeseboard's value: absolute (``peer`` None) or as a ratio to a peer."""

    op: str  # "<", "<=", ">="
    bound: float
    peer: str | None = None

    def text(self, unit: str) -> str:
        """Human form, e.g. ``≥ 0.4x nginx`` or ``< 10 ms``."""
        sym = {"<": "<", "<=": "≤", ">=": "≥"}[self.op]
        return f"{sym} {self.bound:g}x {self.peer}" if self.peer else f"{sym} {self.bound:g} {unit}"

    def met(self, value: float) -> bool:
        """Whether ``value`` (cheeseboard's value or its ratio to the peer) meets it."""
        if self.op == "<":
            return value < self.bound
        if self.op == "<=":
            return value <= self.bound
        return value >= self.bound


@dataclass(frozen=True)
class Row:
    """One line of the table: where the value lives in a server's results."""

    label: str
    path: tuple[str, ...]
    unit: str
    ratio: bool = True
    target: Target | None = None


def rows(args: argparse.Namespace) -> list[Row]:
    """The table, in order (labels carry the concurrency actually used)."""
    c, fc = args.connections, args.file_connections
    return [
        Row(
            f"cached small page, c{c}, pip headers",
            ("page_small", "load", "ok_rps"),
            "req/s",
            target=Target(">=", 0.4, "nginx"),
        ),
        Row("cached small page p50", ("page_small", "load", "latency_ms", "p50"), "ms"),
        Row(
            f"cached small page, c{c}, Basic auth (root)",
            ("page_small_auth", "load", "ok_rps"),
            "req/s",
        ),
        Row(
            "cached small page p99, Basic auth (root)",
            ("page_small_auth", "load", "latency_ms", "p99"),
            "ms",
        ),
        Row(
            "authenticated ÷ anonymous small page req/s",
            ("_auth_ratio",),
            "",
            ratio=False,
            target=Target(">=", 0.9),
        ),
        Row(
            "cached small page p99",
            ("page_small", "load", "latency_ms", "p99"),
            "ms",
            target=Target("<", 10),
        ),
        Row(
            f"cached small page, c{c}, through a 7-day cooldown",
            ("page_small_cooldown", "load", "ok_rps"),
            "req/s",
        ),
        Row(
            "cooldown ÷ plain small page req/s",
            ("_cooldown_ratio",),
            "",
            ratio=False,
            target=Target(">=", 0.9),
        ),
        Row(
            f"cached small file (~1 KB wheel), c{fc}",
            ("file_small", "load", "ok_rps"),
            "req/s",
            target=Target(">=", 0.4, "nginx"),
        ),
        Row("cached small file p99", ("file_small", "load", "latency_ms", "p99"), "ms"),
        Row(
            f"cached 16 MiB wheel, c{fc}",
            ("file_large", "load", "mib_s"),
            "MiB/s",
            target=Target(">=", 0.9, "nginx"),
        ),
        Row(
            "cached 16 MiB wheel p99",
            ("file_large", "load", "latency_ms", "p99"),
            "ms",
            target=Target("<=", 2, "nginx"),
        ),
        Row(f"cached big page (2,000 files), c{c}", ("page_large", "load", "ok_rps"), "req/s"),
        Row("cached big page p99", ("page_large", "load", "latency_ms", "p99"), "ms"),
        Row("big page first (cold) fetch", ("page_large", "first_fetch", "seconds"), "s"),
        Row("load errors (non-2xx / socket), all loads", ("_load_errors",), "", ratio=False),
        Row(
            "warm `uv pip install`, 15 projects, median",
            ("warm_uv", "seconds"),
            "s",
            target=Target("<=", 1.05, "nginx"),
        ),
        Row(
            "warm `pip install`, 15 projects, median",
            ("warm_pip", "seconds"),
            "s",
            target=Target("<=", 0.8, "devpi"),
        ),
        Row(
            "cold `uv pip install` (empty server)",
            ("cold_uv", "seconds"),
            "s",
            target=Target("<=", 1.0, "proxpi"),
        ),
        Row(
            "cold `pip install` (empty server)",
            ("cold_pip", "seconds"),
            "s",
            target=Target("<=", 1.0, "proxpi"),
        ),
        Row("init", ("init_s",), "s", target=Target("<", 1)),
        Row("start → ready, fresh datadir", ("start_s",), "s"),
        Row(
            f"restart → first 200 of a cached page, warm datadir, median of {args.restarts}",
            ("restart_s",),
            "s",
            target=Target("<", 0.5),
        ),
        Row("peak RSS, process tree (sum)", ("memory", "peak_rss_mib"), "MiB"),
        Row(
            "peak RSS, largest single process",
            ("memory", "max_process_peak_rss_mib"),
            "MiB",
            target=Target("<", 150),
        ),
        Row("RSS at end of load, largest single process", ("memory", "max_process_rss_mib"), "MiB"),
    ]


def _decorate(res: dict[str, Any]) -> None:
    """Derived fields the table shows (error counts, MiB)."""
    non_2xx = errors = 0
    seen = False
    for key in LOAD_KEYS:
        load = _get(res, key, "load")
        if load:
            seen = True
            non_2xx += load["non_200"]
            errors += load["errors"]
    if seen:
        res["_load_errors"] = f"{non_2xx} / {errors}"
    signed_in, anonymous = (
        _get(res, k, "load", "ok_rps") for k in ("page_small_auth", "page_small")
    )
    if isinstance(signed_in, int | float) and isinstance(anonymous, int | float) and anonymous:
        res["_auth_ratio"] = round(signed_in / anonymous, 3)
    cooled = _get(res, "page_small_cooldown", "load", "ok_rps")
    if isinstance(cooled, int | float) and isinstance(anonymous, int | float) and anonymous:
        res["_cooldown_ratio"] = round(cooled / anonymous, 3)
    mem = res.get("memory")
    if mem:
        for key in ("peak_rss", "rss", "max_process_peak_rss", "max_process_rss"):
            if f"{key}_kib" in mem:
                mem[f"{key}_mib"] = round(mem[f"{key}_kib"] / 1024, 1)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value < 10:
            return f"{value:.3g}"
        return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cell(res: dict[str, Any] | None, row: Row) -> tuple[Any, str]:
    """(numeric value or None, what the table shows) for one server and row."""
    if res is None:
        return None, "n/a"
    if row.path[0] in res.get("not_applicable", ()):
        return None, "—"
    if row.path[0].startswith(("cold", "warm")) and _get(res, row.path[0], "ok") is False:
        return None, "fails"  # any failed install: the error is listed under the table
    value = _get(res, *row.path)
    if value is not None:
        return value, _fmt(value)
    return None, "n/a"


def ratio(cb: Any, peer: Any) -> float | None:
    """cheeseboard ÷ peer, or None when either is missing."""
    if not isinstance(cb, int | float) or not isinstance(peer, int | float) or not peer:
        return None
    return cb / peer


def _fmt_ratio(r: float | None) -> str:
    if r is None:
        return "n/a"
    return f"{r:.3f}x" if r < 0.1 else f"{r:.2f}x"


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    """The Markdown report."""
    servers: dict[str, Any] = results["servers"]
    names = [n for n in SERVER_ORDER if n in servers]
    for res in servers.values():
        _decorate(res)
    has_cb = "cheeseboard" in servers
    peers = [n for n in PEERS if n in servers] if has_cb else []
    meta = results["meta"]
    lines = [
        f"# cheeseboard vs nginx, proxpi, devpi ({meta['date']})",
        "",
        f"Machine: {meta['cpus']} CPUs, {meta['platform']}, Python {meta['python']}. "
        f"Load: {meta['load_tool']}, {meta['duration']}s per measure, pages with pip's "
        f"Accept header and Accept-Encoding: {meta['accept_encoding']}, files with "
        f"pip's download headers (Accept-Encoding: identity). "
        f"cheeseboard --workers {meta['cheeseboard_workers']}, nginx "
        f"{meta['nginx_workers']} workers, proxpi gunicorn {meta['proxpi_workers']} "
        f"process x {meta['proxpi_threads']} threads, devpi defaults. "
        f"Upstream: {meta['upstream']['files']} files "
        f"({meta['upstream']['bytes'] / 1e6:.1f} MB), "
        f"{'PEP 691 JSON' if meta['upstream'].get('mode') == 'json' else 'HTML only'}, "
        "separate process. Total run "
        f"{meta.get('total_s', 0):.0f} s.",
        "",
    ]
    header = ["measure", *(f"{n} {_fmt(servers[n].get('version'))}" for n in names)]
    header += [f"cb/{p}" for p in peers]
    if has_cb:
        header.append("target")
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    targets: dict[str, Any] = {}
    for row in rows(args):
        cells = [row.label + (f" ({row.unit})" if row.unit else "")]
        values: dict[str, Any] = {}
        for n in names:
            values[n], text = _cell(servers[n], row)
            cells.append(text)
        for p in peers:
            if not row.ratio:
                cells.append("")
            elif _cell(servers[p], row)[1] == "—":
                cells.append("—")
            else:
                cells.append(_fmt_ratio(ratio(values.get("cheeseboard"), values[p])))
        if has_cb:
            cells.append(_target_cell(row, values, targets))
        lines.append("| " + " | ".join(cells) + " |")
    results["targets"] = targets
    lines.append("")
    if has_cb:
        met = sum(1 for t in targets.values() if t["met"] is True)
        lines.append(
            f"Targets met: {met} of {len(targets)} "
            f"({sum(1 for t in targets.values() if t['met'] is None)} not measurable in this "
            "run). Ratios are cheeseboard's value divided by the peer's: above 1 is better "
            "for throughput, below 1 is better for times, latencies and memory. "
            "— = not applicable (nginx has no empty state to fill, nothing to init)."
        )
        lines.append("")
    for n in names:
        lines.append(f"- {n}: " + "; ".join(_notes(servers[n])))
    lines += render_floor(results, args)
    return "\n".join(lines) + "\n"


def _target_cell(row: Row, values: dict[str, Any], into: dict[str, Any]) -> str:
    """Target text with ✓/✗ for cheeseboard, recorded in ``into`` for the JSON."""
    target = row.target
    if target is None:
        return ""
    cb = values.get("cheeseboard")
    measured = ratio(cb, values.get(target.peer)) if target.peer else cb
    met = target.met(measured) if isinstance(measured, int | float) else None
    into[row.label] = {"target": target.text(row.unit), "value": measured, "met": met}
    mark = {True: "✓", False: "✗", None: "?"}[met]
    return f"{target.text(row.unit)} {mark}"


def _notes(res: dict[str, Any]) -> list[str]:
    """What each server answered, what it fetched upstream, what failed."""
    notes = []
    for key in LOAD_KEYS:
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
        "upstream_load",
        "upstream_restart",
    ):
        up = res.get(key)
        if up:
            kinds = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in up.items())
            notes.append(f"{key.removeprefix('upstream_')} fetched upstream: {kinds}")
    mem = res.get("memory")
    if mem:
        notes.append(f"{mem['processes']} process(es)")
    if load := res.get("loadavg_before_after"):
        notes.append(f"machine load average (1 min) {load[0][0]} before, {load[1][0]} after")
    for key in ("cold_uv", "cold_pip", "warm_uv", "warm_pip", *LOAD_KEYS):
        err = _get(res, key, "error")
        if err:
            notes.append(f"**{key} failed**: {err}")
    if res.get("error"):
        notes.append(f"**error**: {res['error']}")
    return notes


LOAD_KEYS = (
    "page_small",
    "page_small_auth",
    "page_small_cooldown",
    "page_large",
    "file_small",
    "file_large",
)


# ------------------------------------------------------------------------ main


def _server_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVER_ORDER]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma list of {','.join(SERVER_ORDER)}; got {text!r}"
        )
    return [n for n in SERVER_ORDER if n in names]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (``make bench BENCH_ARGS='...'``)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    ap.add_argument(
        "--only",
        type=_server_list,
        default=list(SERVER_ORDER),
        help="comma list of servers to run (default: nginx,proxpi,devpi,cheeseboard)",
    )
    ap.add_argument(
        "--peers",
        choices=["optional", "required"],
        default="optional",
        help="optional: a peer that cannot be installed or fails shows n/a with its error "
        "and the exit status ignores it; required: such a failure also makes the exit "
        "status 1 (the other servers still run)",
    )
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per load measure")
    ap.add_argument("--connections", type=int, default=64, help="connections for page loads")
    ap.add_argument("--file-connections", type=int, default=16, help="connections for file loads")
    ap.add_argument("--workers", type=int, default=2, help="cheeseboard serve --workers")
    ap.add_argument("--nginx-workers", type=int, default=2, help="nginx worker_processes")
    ap.add_argument(
        "--proxpi-workers",
        type=int,
        default=1,
        help="gunicorn processes for proxpi (its README asks for threads, not processes)",
    )
    ap.add_argument("--proxpi-threads", type=int, default=2, help="gunicorn threads for proxpi")
    ap.add_argument("--repeat", type=int, default=3, help="warm installs per installer")
    ap.add_argument(
        "--restarts",
        type=int,
        default=3,
        help="stop+restart cycles on the warm datadir; the median is reported",
    )
    ap.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the stack floor (a bare ASGI app on Granian, measured with cheeseboard)",
    )
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
    ap.add_argument(
        "--proxpi-venv", type=Path, default=BENCH_DIR / "venv-proxpi", help="reused between runs"
    )
    args = ap.parse_args(argv)
    if args.restarts < 1:
        ap.error("--restarts must be at least 1")
    return args


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _setup_peer(name: str, args: argparse.Namespace) -> str | None:
    """Install/check one peer; the error text when it cannot run."""
    try:
        if name == "devpi":
            ensure_devpi_venv(args.devpi_venv)
        elif name == "proxpi":
            ensure_proxpi_venv(args.proxpi_venv)
        elif name == "nginx":
            return nginx_available()
    except Exception as exc:
        return f"setup failed: {type(exc).__name__}: {exc}"
    return None


def _make_server(
    name: str, run_dir: Path, procs: Processes, upstream: Upstream, args: argparse.Namespace
) -> BenchServer:
    if name == "nginx":
        return NginxServer(
            run_dir / name,
            procs,
            upstream.simple_url,
            run_dir / "static-mirror",
            args.nginx_workers,
        )
    if name == "proxpi":
        return ProxpiServer(
            run_dir / name,
            procs,
            upstream.simple_url,
            args.proxpi_venv,
            workers=args.proxpi_workers,
            threads=args.proxpi_threads,
        )
    if name == "devpi":
        return DevpiServer(run_dir / name, procs, upstream.simple_url, args.devpi_venv)
    return CheeseboardServer(run_dir / name, procs, upstream.simple_url, args.workers)


def main(argv: list[str] | None = None) -> int:
    """Run the whole comparison; non-zero if cheeseboard (or a required peer) failed."""
    args = parse_args(argv)
    os.chdir(ROOT)
    wanted: list[str] = args.only
    if "cheeseboard" in wanted and (reason := cheeseboard_available()):
        print(
            f"cheeseboard-server is not usable: {reason}\n"
            "Run with --only nginx,proxpi,devpi to benchmark the peers alone.",
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
        setup_errors = {n: e for n in wanted if n in PEERS and (e := _setup_peer(n, args))}
        for name, err in setup_errors.items():
            log(f"{name}: {err}")
            results["servers"][name] = {"error": err, "not_applicable": []}
        log("building data set and starting upstream")
        upstream = Upstream(
            procs,
            run_dir / "upstream-data",
            args.upstream_mode,
            static_mirror=run_dir / "static-mirror" if "nginx" in wanted else None,
        )
        log(f"upstream {upstream.simple_url}: {upstream.info}")
        results["meta"] |= {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cpus": os.cpu_count(),
            "platform": platform.platform(terse=True),
            "python": platform.python_version(),
            "load_tool": load_tool,
            "connections": args.connections,
            "file_connections": args.file_connections,
            "duration": args.duration,
            "accept_encoding": args.accept_encoding,
            "repeat": args.repeat,
            "restarts": args.restarts,
            "cheeseboard_workers": args.workers,
            "nginx_workers": args.nginx_workers,
            "proxpi_workers": args.proxpi_workers,
            "proxpi_threads": args.proxpi_threads,
            "upstream": {**upstream.info, "mode": upstream.mode},
        }
        for name in wanted:
            if name in setup_errors:
                continue
            server = _make_server(name, run_dir, procs, upstream, args)
            load_before = [round(x, 2) for x in os.getloadavg()]
            results["servers"][name] = measure(server, upstream, args)
            # The machine may be shared: record how busy it was around each server.
            results["servers"][name]["loadavg_before_after"] = [
                load_before,
                [round(x, 2) for x in os.getloadavg()],
            ]
        if args.floor and "cheeseboard" in wanted:
            log("stack floor: a bare ASGI app on Granian")
            load_before = [round(x, 2) for x in os.getloadavg()]
            try:
                huge = next((run_dir / "upstream-data").rglob(dataset.HUGE_FILE), None)
                results["floor"] = measure_floor(run_dir, procs, args, huge)
                results["floor"]["loadavg_before_after"] = [
                    load_before,
                    [round(x, 2) for x in os.getloadavg()],
                ]
            except Exception as exc:
                results["floor"] = {"error": f"{type(exc).__name__}: {exc}"}
                log(f"stack floor FAILED: {results['floor']['error']} (log: {run_dir}/floor)")
    finally:
        procs.kill_all()
    results["meta"]["total_s"] = round(time.perf_counter() - t_start, 1)

    report = render(results, args)
    print(report)
    (BENCH_DIR / "results.md").write_text(report)
    (BENCH_DIR / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    log(f"done in {results['meta']['total_s']}s; wrote .bench/results.md and .bench/results.json")
    failed = [n for n, r in results["servers"].items() if r.get("error") or _phase_failed(r)]
    if "cheeseboard" in failed:
        return 1
    if args.peers == "required" and any(n in PEERS for n in failed):
        return 1
    return 0


def _phase_failed(res: dict[str, Any]) -> bool:
    keys = ("cold_uv", "cold_pip", "warm_uv", "warm_pip", *LOAD_KEYS)
    return any(_get(res, k, "error") for k in keys)


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        log("interrupted; all benchmark processes were stopped")
        raise SystemExit(130) from None
