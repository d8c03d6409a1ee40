"""Server processes for the tests: start in a process group, wait for a probe, stop the group.

Every ``ManagedProcess`` that is running is in a registry; ``stop_all()`` stops them. The plugin in
``tests/conftest.py`` calls it at exit and on SIGTERM/SIGHUP, so a killed ``make test`` leaves no
server running (SIGINT goes through pytest's own teardown and then the same exit hook).
Other cleanups (``pg_ctl stop``) join the same registry through ``register_cleanup``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

Probe = Callable[[], bool]

_lock = threading.RLock()  # re-entrant: stop_all() also runs from a signal handler
_running: dict[int, ManagedProcess] = {}
_cleanups: dict[int, Callable[[], None]] = {}


class ManagedProcess:
    """One command in its own session (so its own process group), output appended to a log.

    ``start()`` returns once ``ready()`` is true; when the process exits first or the timeout
    passes, it kills the group and raises ``RuntimeError`` with the log. ``stop()`` sends
    ``stop_signal`` to the leader, which shuts its own workers down as in production (to the
    whole group with ``stop_group``), then SIGKILL to the group after ``stop_timeout`` or once
    the leader is gone; ``kill()`` sends SIGKILL to the group at once (a crash, the OOM killer).
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str,
        log_path: Path,
        ready: Probe | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        stop_timeout: float = 10.0,
        stop_group: bool = False,
    ) -> None:
        self.command = list(command)
        self.name = name
        self.log_path = log_path
        self.ready = ready
        self.env = env
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.stop_group = stop_group  # stop_signal to the whole group, as Ctrl-C in a terminal
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 30.0, interval: float = 0.05) -> None:
        """Start the process and wait until ``ready()`` (if given) says yes."""
        if self.running():
            raise RuntimeError(f"{self.name} is already running")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches every worker
            )
        with _lock:
            _running[id(self)] = self
        if self.ready is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                failure = f"{self.name} exited early:\n{self.log()}"
                break
            if _probe(self.ready):
                return
            time.sleep(interval)
        else:
            failure = f"{self.name} did not become ready in {timeout} s:\n{self.log()}"
        self.kill()  # what it started goes too: a failed start leaves nothing running
        raise RuntimeError(failure)

    def stop(self, timeout: float | None = None) -> bool:
        """``stop_signal`` to the leader (or group), SIGKILL to the group after ``timeout``.

        Returns whether it ended without the SIGKILL; idempotent (True when not running).
        """
        process = self.process
        if process is None:
            return True
        wait = self.stop_timeout if timeout is None else timeout
        polite = True
        if process.poll() is None:
            if self.stop_group:
                _signal_group(process.pid, self.stop_signal)
            else:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(self.stop_signal)
            try:
                process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                polite = False
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        # Workers that outlived their leader are still in the group.
        _signal_group(process.pid, signal.SIGKILL)
        self._forget()
        return polite

    def kill(self) -> None:
        """SIGKILL the whole group at once."""
        process = self.process
        if process is None:
            return
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
        self._forget()

    def _forget(self) -> None:
        self.process = None
        with _lock:
            _running.pop(id(self), None)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _probe(ready: Probe) -> bool:
    try:
        return ready()
    except OSError:  # URLError, ConnectionError and TimeoutError are OSErrors
        return False


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def http_probe(url: str, timeout: float = 1.0) -> Probe:
    """Ready when ``GET url`` answers 2xx."""
    import urllib.request

    def ready() -> bool:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300

    return ready


def register_cleanup(key: object, cleanup: Callable[[], None]) -> None:
    """Run ``cleanup`` in ``stop_all()`` unless ``unregister_cleanup(key)`` came first."""
    with _lock:
        _cleanups[id(key)] = cleanup


def unregister_cleanup(key: object) -> None:
    with _lock:
        _cleanups.pop(id(key), None)


def running_processes() -> list[ManagedProcess]:
    with _lock:
        return list(_running.values())


def stop_all(timeout: float = 3.0) -> None:
    """Stop every running ManagedProcess (quickly) and run every registered cleanup."""
    with _lock:
        processes = list(_running.values())
        cleanups = list(_cleanups.values())
        _cleanups.clear()
    for process in processes:
        with contextlib.suppress(Exception):
            process.stop(timeout=timeout)
    for cleanup in cleanups:
        with contextlib.suppress(Exception):
            cleanup()


_installed = False


def install_cleanup() -> None:
    """Stop every managed process at interpreter exit and on SIGTERM/SIGHUP (main thread only).

    After the cleanup the signal is delivered again with its default action, so the exit status
    still says the run was killed. SIGINT needs nothing extra: pytest turns it into
    KeyboardInterrupt, tears its fixtures down and exits through ``atexit``.
    """
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(stop_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_and_die)


def _stop_and_die(signum: int, frame: object) -> None:
    stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
