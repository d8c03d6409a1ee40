"""The memory-mapped cross-process serial counter."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cheeseboard.store.serial import SerialFile


@contextmanager
def serial_file(path: Path) -> Iterator[SerialFile]:
    """A SerialFile that is closed afterwards."""
    serial = SerialFile(path)
    try:
        yield serial
    finally:
        serial.close()


def test_new_file_starts_at_zero(tmp_path: Path) -> None:
    """A fresh counter reads 0 and its file holds 8 zero bytes."""
    path = tmp_path / "serial"
    with serial_file(path) as serial:
        assert serial.latest() == 0
    assert path.read_bytes() == b"\0" * 8
    assert path.stat().st_mode & 0o777 == 0o600


def test_advance_is_monotonic(tmp_path: Path) -> None:
    """advance() only ever raises the value; smaller or equal serials are ignored."""
    with serial_file(tmp_path / "serial") as serial:
        seen = []
        for value in (5, 3, 5, 9, 0, 8, 2**63):
            serial.advance(value)
            seen.append(serial.latest())
        assert seen == [5, 5, 5, 9, 9, 9, 2**63]


def test_two_objects_share_the_value(tmp_path: Path) -> None:
    """Two SerialFiles on one path (as two processes have) see each other's advances."""
    path = tmp_path / "serial"
    with serial_file(path) as first, serial_file(path) as second:
        first.advance(10)
        assert second.latest() == 10
        second.advance(7)  # behind: ignored
        assert first.latest() == 10
        second.advance(11)
        assert first.latest() == 11


def test_reopening_keeps_the_value(tmp_path: Path) -> None:
    """Opening an existing counter never resets it."""
    path = tmp_path / "serial"
    with serial_file(path) as serial:
        serial.advance(42)
    with serial_file(path) as again:
        assert again.latest() == 42


def test_short_file_is_extended(tmp_path: Path) -> None:
    """A truncated file is zero-extended to 8 bytes, keeping what it held."""
    path = tmp_path / "serial"
    path.write_bytes(b"\x05")
    with serial_file(path) as serial:
        assert serial.latest() == 5
    assert path.stat().st_size == 8


def test_concurrent_advances_keep_the_maximum(tmp_path: Path) -> None:
    """Threads advancing through separate objects end at the largest serial."""
    path = tmp_path / "serial"
    objects = [SerialFile(path) for _ in range(4)]
    try:

        def run(serial: SerialFile, offset: int) -> None:
            for value in range(offset, 400, 4):
                serial.advance(value)

        threads = [threading.Thread(target=run, args=(s, i)) for i, s in enumerate(objects)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert {serial.latest() for serial in objects} == {399}
    finally:
        for serial in objects:
            serial.close()


def test_another_process_sees_advances(tmp_path: Path) -> None:
    """A real second process reads our value and its advance is visible here at once."""
    path = tmp_path / "serial"
    script = (
        "import sys; from pathlib import Path; from cheeseboard.store.serial import SerialFile\n"
        "s = SerialFile(Path(sys.argv[1])); print(s.latest()); s.advance(int(sys.argv[2]))\n"
        "s.close()\n"
    )
    with serial_file(path) as serial:
        serial.advance(17)
        proc = subprocess.run(
            [sys.executable, "-c", script, str(path), "23"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert proc.stdout.strip() == "17"
        assert serial.latest() == 23
