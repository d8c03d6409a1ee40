"""Run a command on a real pseudo-terminal: answer its prompts, capture what it drew.

The child gets the pty as stdin, stdout and stderr, so ``isatty()`` is true everywhere (rich
draws progress bars, click prompts with hidden input). Its peak RSS is ``VmHWM`` read from
``/proc`` while it runs: ``wait4``'s ``ru_maxrss`` would count the pages of the forked test
process from before ``exec``.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@dataclass(frozen=True)
class TerminalRun:
    returncode: int
    raw: str  # everything the child wrote, escape sequences included
    max_rss_kib: int  # VmHWM as last seen, 0 if never read

    @property
    def text(self) -> str:
        """The output without terminal escape sequences."""
        return _ANSI.sub("", self.raw)


def _peak_rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def run_on_pty(
    argv: Sequence[str],
    env: Mapping[str, str],
    answers: Sequence[tuple[str, str]] = (),
    timeout: float = 120.0,
    columns: int = 120,
) -> TerminalRun:
    """Run ``argv``; each ``(prompt, reply)`` is typed once ``prompt`` has appeared."""
    master, slave = pty.openpty()
    env = {**env, "COLUMNS": str(columns), "LINES": "40", "TERM": "xterm-256color"}
    proc = subprocess.Popen(
        list(argv), stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    pending = list(answers)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    peak = 0
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.02)
            peak = max(peak, _peak_rss_kib(proc.pid))
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
            seen = b"".join(chunks).decode(errors="replace")
            if pending and pending[0][0] in seen[-400:]:
                os.write(master, pending.pop(0)[1].encode() + b"\n")
        else:
            proc.kill()
            raise TimeoutError(f"{argv} did not finish in {timeout} s")
    finally:
        os.close(master)
    proc.wait(timeout=30)
    return TerminalRun(proc.returncode, b"".join(chunks).decode(errors="replace"), peak)
