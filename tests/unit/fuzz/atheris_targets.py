"""Coverage-guided fuzz targets for atheris (libFuzzer), run by test_atheris.py in a subprocess:

    python -m tests.unit.fuzz.atheris_targets TARGET [libFuzzer options] [corpus dirs]

Each target feeds the fuzzer's bytes to a parser that takes client input and fails on anything
but the parser's documented error; atheris reports an uncaught exception as a crash (exit code
non-zero), with the input that caused it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["cheeseboard"]):
    from cheeseboard.archives.artifacts import ArchiveLimits, artifact_metadata
    from cheeseboard.archives.wheels import UnreadableArchive
    from cheeseboard.core.distfiles import is_safe_filename, parse_dist_filename
    from cheeseboard.core.indexconfig import ConfigError, new_index_config
    from cheeseboard.core.metadata import parse_core_metadata
    from cheeseboard.core.ranges import Unsatisfiable, parse_range
    from cheeseboard.core.uploads import (
        FileExists,
        UploadError,
        check_artifact_metadata,
        check_file_upload,
        parse_upload_form,
    )

from tests.unit.fuzz.strategies import ARCHIVE_SUFFIXES

# Small limits keep each run quick; the readers enforce them the same way at any size.
LIMITS = ArchiveLimits(max_metadata_bytes=64 * 1024, max_members=200, max_scanned_bytes=1 << 22)
FORM = parse_upload_form({":action": ["file_upload"], "name": ["pkg"], "version": ["1.0"]})
SCRATCH = Path(os.environ.get("CHEESEBOARD_FUZZ_SCRATCH", ".")) / f"fuzz-{os.getpid()}.bin"


def fuzz_archive(data: bytes) -> None:
    """Uploaded archive bytes: METADATA/PKG-INFO, or UnreadableArchive saying why."""
    if not data:
        return
    suffix = ARCHIVE_SUFFIXES[data[0] % len(ARCHIVE_SUFFIXES)]
    SCRATCH.write_bytes(data[1:])
    try:
        metadata = artifact_metadata(SCRATCH, "pkg-1.0" + suffix, LIMITS)
    except UnreadableArchive as exc:
        assert str(exc) and str(SCRATCH) not in str(exc)  # no server path shown to clients
        return
    assert isinstance(metadata, bytes)
    if suffix != ".whl":
        assert len(metadata) <= LIMITS.max_metadata_bytes


def fuzz_metadata(data: bytes) -> None:
    """METADATA bytes: the parser never raises; the upload check raises only UploadError."""
    fields = parse_core_metadata(data)
    json.dumps(fields, ensure_ascii=False).encode()
    try:
        check_artifact_metadata(FORM, "pkg-1.0.tar.gz", data)
    except UploadError as exc:
        assert not isinstance(exc, FileExists)


def fuzz_range(data: bytes) -> None:
    """A Range header (ASGI gives header values as latin-1) against a file length."""
    provider = atheris.FuzzedDataProvider(data)
    length = provider.ConsumeIntInRange(0, 2**40)
    header = provider.ConsumeBytes(provider.remaining_bytes()).decode("latin-1")
    try:
        parsed = parse_range(header, length)
    except Unsatisfiable:
        return
    assert parsed is None or 0 <= parsed.start <= parsed.end < length


def fuzz_filename(data: bytes) -> None:
    """Upload file names: parsing never raises, the upload check raises only UploadError."""
    filename = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    parse_dist_filename(filename, "pkg")
    parse_dist_filename(filename)
    try:
        check_file_upload(FORM, filename)
    except UploadError:
        return
    assert is_safe_filename(filename) and "/" not in filename and "\\" not in filename


def fuzz_indexconfig(data: bytes) -> None:
    """A PUT body for an index: a config or a ConfigError."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return  # json_body refuses it with a 400 before the config is looked at
    if not isinstance(body, dict):
        return
    try:
        new_index_config("alice", body, lambda name: name == "root/pypi", fullname="alice/dev")
    except ConfigError:
        return


TARGETS: dict[str, Callable[[bytes], None]] = {
    "archive": fuzz_archive,
    "metadata": fuzz_metadata,
    "range": fuzz_range,
    "filename": fuzz_filename,
    "indexconfig": fuzz_indexconfig,
}


def main() -> None:
    target = TARGETS[sys.argv[1]]
    # libFuzzer ends the process itself (no finally, no atexit): the scratch file lives in a
    # directory the caller cleans up.
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
