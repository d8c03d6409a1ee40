"""The two servers under test, behind one small interface, plus process bookkeeping.

Every child process goes through :class:`Processes`, which starts it in its own
session (so a server's worker processes form one group we can measure and kill) and
guarantees that everything is killed on exit, Ctrl-C or an exception.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO, Any

ROOT_PASSWORD = "bench-root-password"
START_TIMEOUT_S = 90.0

# Pinned to the major version whose HTTP API the setup recipe below was checked with.
DEVPI_REQUIREMENT = "devpi-server>=6,<7"


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (tiny race, fine on a private benchmark box)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """Environment for servers and installers: no pip/uv config, no proxies.

    The machine's global pip config points at local wheel directories; a server or
    installer that saw it could succeed without going through the server under test.
    """
    drop = ("PIP_", "UV_", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    for key in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env.pop(key, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["UV_NO_CONFIG"] = "1"
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return env


class Processes:
    """Registry of long-running children; :meth:`kill_all` is safe to call repeatedly."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[Any]] = []

    def spawn(self, cmd: list[str], *, log: Path | None = None, **kw: Any) -> subprocess.Popen[Any]:
        """Start ``cmd`` in a new session; output goes to ``log`` (never an unread pipe)."""
        out: IO[Any] | int = subprocess.DEVNULL
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = log.open("ab")
        kw.setdefault("stdout", out)
        kw.setdefault("stderr", subprocess.STDOUT if log is not None else subprocess.DEVNULL)
        try:
            proc = subprocess.Popen(
                cmd, start_new_session=True, env=kw.pop("env", clean_env()), **kw
            )
        finally:
            if not isinstance(out, int):
                out.close()  # the child holds its own copy
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after ``timeout``."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        # Workers may outlive their parent; the group id is still the leader's pid.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc in self._procs:
            self._procs.remove(proc)

    def kill_all(self) -> None:
        """Stop every child still registered, newest first."""
        for proc in reversed(list(self._procs)):
            self.stop(proc, timeout=5.0)


# ------------------------------------------------------------------------- /proc


def _proc_tree(root: int) -> set[int]:
    """``root`` plus all descendants and everything in its session (workers included)."""
    parents: dict[int, int] = {}
    session: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        pid, ppid, sid = int(entry), int(fields[1]), int(fields[3])
        parents[pid] = ppid
        if sid == root:
            session.add(pid)
    tree = {root} | session
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    return {p for p in tree if p in parents}


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory_kib(root: int) -> dict[str, int]:
    """Sum of VmHWM (peak RSS) and VmRSS over the process tree, plus process count.

    Summing per-process peaks over-counts pages shared between a parent and forked
    workers, so for multi-process servers this is an upper bound.
    """
    pids = _proc_tree(root)
    return {
        "peak_rss_kib": sum(_status_kib(p, "VmHWM") for p in pids),
        "rss_kib": sum(_status_kib(p, "VmRSS") for p in pids),
        "processes": len(pids),
    }


# ------------------------------------------------------------------------- HTTP


def http_json(
    method: str, url: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """Small JSON request helper for setup calls (stdlib, no proxies)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_ready(url: str, proc: subprocess.Popen[Any], timeout: float = START_TIMEOUT_S) -> None:
    """Poll ``url`` every 20 ms until it answers 200; fail fast if the process dies."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before it was ready")
        try:
            with opener.open(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s")


# ------------------------------------------------------------------------- servers


class BenchServer(ABC):
    """A server under test: ``init`` a fresh datadir, ``start``, measure, ``stop``."""

    name: str

    def __init__(self, workdir: Path, procs: Processes, upstream_simple: str) -> None:
        self.workdir = workdir
        self.datadir = workdir / "data"
        self.log = workdir / "server.log"
        self.procs = procs
        self.upstream_simple = upstream_simple
        self.port = free_port()
        self.proc: subprocess.Popen[Any] | None = None

    @property
    def base_url(self) -> str:
        """Root URL of the running server."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def index_url(self) -> str:
        """Simple index of the PyPI mirror, what pip and uv get as ``--index-url``."""
        return f"{self.base_url}/root/pypi/+simple/"

    @abstractmethod
    def version(self) -> str:
        """Version string of the server software, for the report."""

    @abstractmethod
    def init(self) -> None:
        """Create a fresh datadir with root password and (if possible) the mirror URL."""

    @abstractmethod
    def command(self) -> list[str]:
        """The serve command line."""

    @abstractmethod
    def ready_url(self) -> str:
        """URL that answers 200 once the server can take requests."""

    def configure(self) -> None:
        """Post-start setup (devpi needs the mirror URL set over HTTP)."""
        return None

    def start(self) -> float:
        """Launch and wait until ready; returns launch-to-ready seconds."""
        t0 = time.perf_counter()
        self.proc = self.procs.spawn(self.command(), log=self.log)
        wait_ready(self.ready_url(), self.proc)
        elapsed = time.perf_counter() - t0
        self.configure()
        return elapsed

    def memory(self) -> dict[str, int]:
        """Peak and current RSS of the server's whole process tree."""
        assert self.proc is not None
        return tree_memory_kib(self.proc.pid)

    def stop(self) -> None:
        """Terminate the server and its workers."""
        if self.proc is not None:
            self.procs.stop(self.proc)
            self.proc = None


class DevpiServer(BenchServer):
    """devpi-server 6.x from its own venv, with root/pypi mirroring the local upstream.

    Initialised with ``--no-root-pypi`` and root/pypi created over HTTP, so devpi never
    tries to reach pypi.org (which would only time out here and skew the numbers).
    """

    name = "devpi"

    def __init__(self, workdir: Path, procs: Processes, upstream_simple: str, venv: Path) -> None:
        super().__init__(workdir, procs, upstream_simple)
        self.venv = venv

    def _bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def version(self) -> str:
        out = subprocess.run(
            [self._bin("devpi-server"), "--version"], capture_output=True, text=True, timeout=60
        )
        return (out.stdout or out.stderr).strip().splitlines()[-1]

    def init(self) -> None:
        subprocess.run(
            [
                self._bin("devpi-init"),
                "--serverdir",
                str(self.datadir),
                "--root-passwd",
                ROOT_PASSWORD,
                "--no-root-pypi",
            ],
            check=True,
            capture_output=True,
            timeout=120,
            env=clean_env(),
        )

    def command(self) -> list[str]:
        return [
            self._bin("devpi-server"),
            "--serverdir",
            str(self.datadir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]

    def ready_url(self) -> str:
        return f"{self.base_url}/+api"

    def configure(self) -> None:
        status, body = http_json(
            "POST", f"{self.base_url}/+login", {"user": "root", "password": ROOT_PASSWORD}
        )
        if status != 200:
            raise RuntimeError(f"devpi login failed: {status} {body}")
        token = body["result"]["password"]
        auth = base64.b64encode(f"root:{token}".encode()).decode()
        status, body = http_json(
            "PUT",
            f"{self.base_url}/root/pypi",
            {"type": "mirror", "mirror_url": self.upstream_simple},
            headers={"X-Devpi-Auth": auth},
        )
        if status not in (200, 201):
            raise RuntimeError(f"devpi: creating root/pypi failed: {status} {body}")


class CheeseboardServer(BenchServer):
    """cheeseboard-server from the project venv; the mirror URL is set at init time."""

    name = "cheeseboard"

    def __init__(
        self, workdir: Path, procs: Processes, upstream_simple: str, workers: int | None
    ) -> None:
        super().__init__(workdir, procs, upstream_simple)
        self.workers = workers
        self.exe = cheeseboard_exe()

    def version(self) -> str:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import importlib.metadata as m; print(m.version('cheeseboard'))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout.strip() or "unknown"

    def init(self) -> None:
        subprocess.run(
            [
                self.exe,
                "init",
                "--datadir",
                str(self.datadir),
                "--root-password",
                ROOT_PASSWORD,
                "--mirror-url",
                self.upstream_simple,
            ],
            check=True,
            capture_output=True,
            timeout=120,
            env=clean_env(),
        )

    def command(self) -> list[str]:
        cmd = [
            self.exe,
            "serve",
            "--datadir",
            str(self.datadir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.workers is not None:
            cmd += ["--workers", str(self.workers)]
        return cmd

    def ready_url(self) -> str:
        return f"{self.base_url}/-/health"


def cheeseboard_exe() -> str:
    """Path of the ``cheeseboard-server`` console script (venv first, then PATH)."""
    beside = Path(sys.executable).parent / "cheeseboard-server"
    if beside.exists():
        return str(beside)
    return shutil.which("cheeseboard-server") or str(beside)


def cheeseboard_available() -> str | None:
    """None when the CLI runs, else a reason to show the user."""
    exe = cheeseboard_exe()
    if not Path(exe).exists():
        return f"{exe} not found (pip install -e . ?)"
    try:
        proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{exe} --help failed: {exc}"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"{exe} --help exited {proc.returncode}: {tail[0]}"
    return None


def ensure_devpi_venv(venv: Path) -> Path:
    """Create ``venv`` with devpi-server once; later runs reuse it as is.

    Installing devpi is setup, not measurement, so it uses the normal pip config.
    """
    if (venv / "bin" / "devpi-server").exists():
        return venv
    print(f"[setup] creating {venv} and installing {DEVPI_REQUIREMENT} ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", DEVPI_REQUIREMENT],
        check=True,
        timeout=900,
    )
    return venv
