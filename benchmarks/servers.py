"""The servers under test, behind one small interface, plus process bookkeeping.

cheeseboard and its peers: nginx serving a static PEP 503 copy of the data set (the
ceiling any Python server can be held against), proxpi and devpi-server (caching
proxies like cheeseboard's mirror).

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
# proxpi is configured through environment variables only; checked with 1.3.1.
PROXPI_REQUIREMENTS = ("proxpi>=1.2,<2", "gunicorn")
NGINX = "/usr/sbin/nginx"


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
    workers, so for multi-process servers this is an upper bound.  The largest single
    process (by VmHWM, and by VmRSS) is what one worker costs.
    """
    pids = _proc_tree(root)
    peaks = [_status_kib(p, "VmHWM") for p in pids]
    rss = [_status_kib(p, "VmRSS") for p in pids]
    return {
        "peak_rss_kib": sum(peaks),
        "rss_kib": sum(rss),
        "max_process_peak_rss_kib": max(peaks, default=0),
        "max_process_rss_kib": max(rss, default=0),
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


def wait_ready(
    url: str,
    proc: subprocess.Popen[Any],
    timeout: float = START_TIMEOUT_S,
    headers: dict[str, str] | None = None,
    interval: float = 0.02,
) -> None:
    """Poll ``url`` every ``interval`` s until it answers 200; fail fast if the process dies."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before it was ready")
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with opener.open(req, timeout=10) as resp:
                resp.read()
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(interval)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s")


# ------------------------------------------------------------------------- servers


class BenchServer(ABC):
    """A server under test: ``init`` a fresh datadir, ``start``, measure, ``stop``."""

    name: str
    # False for the static baseline: it has no empty state to fill from the upstream.
    proxies_upstream = True

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

    def init(self) -> bool:
        """Create a fresh datadir; False when the server has no init step."""
        return False

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
        self.proc = self.procs.spawn(self.command(), log=self.log, **self.spawn_kw())
        wait_ready(self.ready_url(), self.proc)
        elapsed = time.perf_counter() - t0
        self.configure()
        return elapsed

    def restart_to_first_200(self, url: str, headers: dict[str, str]) -> float:
        """Start again on the existing datadir; seconds from launch to a 200 for ``url``.

        The server must have been stopped first.  Polls every 10 ms with ``headers``.
        """
        t0 = time.perf_counter()
        self.proc = self.procs.spawn(self.command(), log=self.log, **self.spawn_kw())
        wait_ready(url, self.proc, headers=headers, interval=0.01)
        return time.perf_counter() - t0

    def spawn_kw(self) -> dict[str, Any]:
        """Extra keyword arguments for :meth:`Processes.spawn` (environment, ...)."""
        return {}

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

    def init(self) -> bool:
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
        return True

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

    def init(self) -> bool:
        # The bytecode a wheel install compiles (pip does; the peers' venvs have it). An
        # editable checkout writes it on first import, unless PYTHONDONTWRITEBYTECODE is set,
        # as on the CI machines: then every start would compile all of cheeseboard again.
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(Path(cheeseboard_package()))],
            check=True,
            capture_output=True,
            timeout=300,
        )
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
        return True

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


class ProxpiServer(BenchServer):
    """proxpi from its own venv, under gunicorn as its Docker image runs it.

    Configured only through environment variables: ``PROXPI_INDEX_URL`` is the local
    upstream, ``PROXPI_CACHE_DIR`` a directory in the run dir (so a restart finds the
    downloaded files again; its index cache lives in memory and starts empty).  The
    command line is the image's entrypoint (``--preload``, access log to stdout, its
    logger class) with ``--threads``: proxpi's README says its caches are not shared
    between processes and asks for threads instead of worker processes.
    """

    name = "proxpi"

    def __init__(
        self,
        workdir: Path,
        procs: Processes,
        upstream_simple: str,
        venv: Path,
        *,
        workers: int = 1,
        threads: int = 2,
    ) -> None:
        super().__init__(workdir, procs, upstream_simple)
        self.venv = venv
        self.workers = workers
        self.threads = threads

    @property
    def index_url(self) -> str:
        return f"{self.base_url}/index/"

    def version(self) -> str:
        out = subprocess.run(
            [
                str(self.venv / "bin" / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('proxpi'))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout.strip() or "unknown"

    def spawn_kw(self) -> dict[str, Any]:
        env = clean_env()
        env["PROXPI_INDEX_URL"] = self.upstream_simple
        env["PROXPI_CACHE_DIR"] = str(self.datadir / "files")
        return {"env": env}

    def command(self) -> list[str]:
        return [
            str(self.venv / "bin" / "gunicorn"),
            "--preload",
            "--access-logfile",
            "-",
            "--access-logformat",
            '%(h)s "%(r)s" %(s)s %(b)s %(M)dms',
            "--logger-class",
            "proxpi.server._GunicornLogger",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "proxpi.server:app",
        ]

    def ready_url(self) -> str:
        return f"{self.base_url}/health"


class NginxServer(BenchServer):
    """nginx serving a static PEP 503 copy of the data set: the baseline.

    Everything it writes (config, pid file, error and access logs, temp directories)
    lives in its run directory, and it runs in the foreground (``daemon off``), so the
    harness owns it like any other server.  Settings are the ones a static mirror
    would use: ``sendfile``, ``tcp_nopush``, ``gzip on`` (for text/html only, nginx's
    default; pip sends ``Accept-Encoding: gzip, deflate``, so pages are compressed on
    the fly), buffered access log.  It never talks to the upstream.
    """

    name = "nginx"
    proxies_upstream = False

    def __init__(
        self, workdir: Path, procs: Processes, upstream_simple: str, www: Path, workers: int
    ) -> None:
        super().__init__(workdir, procs, upstream_simple)
        self.www = www
        self.workers = workers
        self.conf = workdir / "nginx.conf"

    @property
    def index_url(self) -> str:
        return f"{self.base_url}/simple/"

    def version(self) -> str:
        out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, timeout=60)
        return (out.stderr or out.stdout).strip().rsplit("/", 1)[-1]

    def _config(self) -> str:
        run = self.workdir.resolve()
        temps = "\n".join(
            f"    {kind}_temp_path {run / 'tmp' / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root, nginx would switch its workers to "nobody", which may not be able to
        # read the run directory; elsewhere the directive is ignored with a warning.
        user = "user root;\n" if os.geteuid() == 0 else ""
        return f"""{user}worker_processes {self.workers};
daemon off;
pid {run / "nginx.pid"};
error_log {run / "error.log"} warn;
events {{
    worker_connections 4096;
}}
http {{
    types {{
        text/html html;
    }}
    default_type application/octet-stream;
    access_log {run / "access.log"} combined buffer=64k flush=5s;
{temps}
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    gzip on;
    gzip_vary on;
    server {{
        listen 127.0.0.1:{self.port};
        root {self.www.resolve()};
        index index.html;
        location / {{
            try_files $uri $uri/ =404;
        }}
    }}
}}
"""

    def command(self) -> list[str]:
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.workdir / "tmp" / kind).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self._config())
        run = self.workdir.resolve()
        return [NGINX, "-p", str(run), "-e", str(run / "error.log"), "-c", str(self.conf)]

    def ready_url(self) -> str:
        return self.index_url


def cheeseboard_package() -> str:
    """Directory of the cheeseboard package the bench runs (the checkout's src/ when editable)."""
    out = subprocess.run(
        [sys.executable, "-c", "import cheeseboard; print(cheeseboard.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return str(Path(out.stdout.strip()).parent)


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


def _ensure_venv(venv: Path, marker: str, requirements: tuple[str, ...]) -> Path:
    """Create ``venv`` with ``requirements`` once (until ``bin/<marker>`` exists).

    Installing a peer is setup, not measurement, so it uses the normal pip config.
    A failed install leaves no half-made venv behind and raises RuntimeError with the
    tail of pip's output.
    """
    if (venv / "bin" / marker).exists():
        return venv
    print(
        f"[setup] creating {venv} and installing {' '.join(requirements)} ...",
        file=sys.stderr,
        flush=True,
    )
    base = getattr(sys, "_base_executable", sys.executable)
    try:
        subprocess.run(
            [base, "-m", "venv", str(venv)], check=True, timeout=300, capture_output=True, text=True
        )
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *requirements],
            check=True,
            timeout=900,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(venv, ignore_errors=True)
        tail = ""
        if isinstance(exc, subprocess.CalledProcessError):
            tail = ": " + str(exc.stderr or exc.stdout or "").strip()[-500:]
        raise RuntimeError(f"installing {' '.join(requirements)} failed{tail}") from exc
    return venv


def ensure_devpi_venv(venv: Path) -> Path:
    """devpi-server in its own venv (see :func:`_ensure_venv`)."""
    return _ensure_venv(venv, "devpi-server", (DEVPI_REQUIREMENT,))


def ensure_proxpi_venv(venv: Path) -> Path:
    """proxpi and gunicorn in their own venv (see :func:`_ensure_venv`)."""
    return _ensure_venv(venv, "gunicorn", PROXPI_REQUIREMENTS)


def nginx_available() -> str | None:
    """None when nginx can run, else a reason to show the user."""
    if not Path(NGINX).exists():
        return f"{NGINX} not found (apt-get install nginx)"
    return None
