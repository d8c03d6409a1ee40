"""Bounded atheris (libFuzzer) runs of the targets in atheris_targets.py, inside the normal suite.

Each target runs in a subprocess for a fixed number of runs with a fixed seed (seconds, not
minutes), starting from a small corpus of valid inputs so the mutations reach deep into the
parsers. A crash (an exception other than the parser's documented error) fails the test with the
fuzzer's report and the crashing input.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from importlib.util import find_spec
from pathlib import Path

import pytest

from tests.support.services import service_missing
from tests.unit.fuzz.counting import add
from tests.unit.fuzz.strategies import ARCHIVE_SUFFIXES

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _atheris_installed() -> None:
    """The dev extra installs atheris where it has wheels (x86_64 glibc Linux, as CI is): a
    missing atheris there is a broken install, which CI must not pass as a skip."""
    if find_spec("atheris") is None:
        service_missing("atheris is not installed (wheels exist for x86_64 glibc Linux only)")


METADATA = b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\nSummary: s\n\ndescription\n"


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tar(members: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode, format=tarfile.PAX_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _archive_corpus(directory: Path) -> None:
    """One valid archive per reader, behind the byte that selects it (see fuzz_archive)."""
    sdist = {"pkg-1.0/PKG-INFO": METADATA, "pkg-1.0/setup.py": b"", "pkg-1.0/pkg/__init__.py": b""}
    seeds = {
        ".whl": _zip({"pkg/__init__.py": b"", "pkg-1.0.dist-info/METADATA": METADATA}),
        ".tar.gz": gzip.compress(_tar(sdist, "w"), mtime=0),
        ".zip": _zip(sdist),
        ".tar": _tar(sdist, "w"),
        ".tar.bz2": _tar(sdist, "w:bz2"),
        ".tar.xz": _tar(sdist, "w:xz"),
    }
    for suffix, data in seeds.items():
        (directory / suffix.strip(".")).write_bytes(bytes([ARCHIVE_SUFFIXES.index(suffix)]) + data)


def _corpus(target: str, directory: Path) -> None:
    seeds: dict[str, list[bytes]] = {
        "metadata": [
            METADATA,
            b"Metadata-Version: 2.1\r\nName: x\r\nContent-Type: multipart/x\r\n",
        ],
        "range": [b"\x00\x00\x00\x10bytes=0-5", b"\x00\x00\x10\x00bytes=-100"],
        "filename": [b"pkg-1.0-py3-none-any.whl", b"pkg-1.0.tar.gz", b"../pkg-1.0.zip"],
        "indexconfig": [
            b'{"bases": "root/pypi", "volatile": "False", "acl_upload": ["alice", ":x"]}',
            b'{"type": "mirror", "mirror_url": "https://x/s/", "mirror_cache_expiry": 60}',
        ],
    }
    if target == "archive":
        _archive_corpus(directory)
        return
    for number, seed in enumerate(seeds[target]):
        (directory / str(number)).write_bytes(seed)


@pytest.mark.parametrize(
    ("target", "runs"),
    [
        ("archive", 10000),
        ("metadata", 20000),
        ("range", 20000),
        ("filename", 20000),
        ("indexconfig", 20000),
    ],
)
def test_atheris_target(target: str, runs: int, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _corpus(target, corpus)
    command = [
        sys.executable,
        "-m",
        "tests.unit.fuzz.atheris_targets",
        target,
        f"-runs={runs}",
        "-seed=1",
        "-max_len=8192",
        "-rss_limit_mb=1024",
        f"-artifact_prefix={tmp_path}/",
        str(corpus),
    ]
    result = subprocess.run(
        command,
        cwd=ROOT,
        # A fixed hash seed too: set and dict order steer coverage, hence which inputs follow.
        env={**os.environ, "CHEESEBOARD_FUZZ_SCRATCH": str(tmp_path), "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = result.stdout + result.stderr
    crashes = sorted(path.name for path in tmp_path.glob("crash-*"))
    assert result.returncode == 0, f"{target} crashed; inputs {crashes}:\n{report[-4000:]}"
    done = re.search(r"Done (\d+) runs", report)
    assert done is not None, report[-2000:]
    assert int(done.group(1)) >= runs
    add(f"atheris: {target} (libFuzzer runs)", int(done.group(1)))
