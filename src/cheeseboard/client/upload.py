"""Streaming multipart bodies for the legacy upload API (``:action=file_upload``)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cheeseboard.client.http import ClientError

CHUNK = 256 * 1024
SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz")
DOC_SUFFIXES = (".doc.zip", ".docs.zip")


@dataclass(frozen=True)
class Artifact:
    """A distribution file with what the upload form needs."""

    path: Path
    name: str
    version: str
    filetype: str
    pyversion: str


def parse_filename(path: Path) -> Artifact:
    """Name, version and kind from a wheel, sdist or ``name-version.doc.zip`` filename."""
    filename = path.name
    for suffix in DOC_SUFFIXES:
        if filename.endswith(suffix):
            name, sep, version = filename[: -len(suffix)].rpartition("-")
            if sep and name and version:
                return Artifact(path, name, version, "doc", "")
            raise ClientError(f"a doc zip is named NAME-VERSION.doc.zip, not {filename}")
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        if len(parts) not in (5, 6):
            raise ClientError(f"not a valid wheel filename: {filename}")
        return Artifact(path, parts[0], parts[1], "bdist_wheel", parts[-3])
    for suffix in SDIST_SUFFIXES:
        if filename.endswith(suffix):
            name, sep, version = filename[: -len(suffix)].rpartition("-")
            if sep and name and version:
                return Artifact(path, name, version, "sdist", "source")
    raise ClientError(
        f"cannot upload {filename}", "only wheels (.whl) and sdists (.tar.gz, .zip) are uploaded"
    )


def collect(paths: list[Path]) -> list[Artifact]:
    """Artifacts from files and directories (a directory contributes its distributions)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.iterdir())
                if p.is_file() and p.name.endswith((".whl", *SDIST_SUFFIXES))
            )
        elif path.is_file():
            found.append(path)
        else:
            raise ClientError(f"no such file or directory: {path}")
    if not found:
        raise ClientError("nothing to upload", "pass wheel/sdist files or a dist/ directory")
    return [parse_filename(p) for p in found]


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class MultipartBody:
    """A ``multipart/form-data`` body that streams its file part from disk.

    ``len(body)`` is known up front, so urllib can send it with a Content-Length;
    ``on_chunk`` is called with the size of every file chunk sent (for progress bars).
    """

    def __init__(
        self,
        fields: list[tuple[str, str]],
        file_field: str,
        path: Path,
        on_chunk: Callable[[int], None] | None = None,
    ) -> None:
        self.boundary = uuid.uuid4().hex
        self.path = path
        self.on_chunk = on_chunk
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
            for key, value in fields
        )
        self.head = (
            head
            + (
                f"--{self.boundary}\r\nContent-Disposition: form-data; "
                f'name="{file_field}"; filename="{path.name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
        )
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.size = path.stat().st_size

    @property
    def content_type(self) -> str:
        """The Content-Type header value, with the boundary."""
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        with self.path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                if self.on_chunk is not None:
                    self.on_chunk(len(chunk))
                yield chunk
        yield self.tail


def upload_form(artifact: Artifact, digest: str) -> list[tuple[str, str]]:
    """The form fields of one ``file_upload`` (or ``doc_upload`` for a doc zip)."""
    if artifact.filetype == "doc":
        return [
            (":action", "doc_upload"),
            ("protocol_version", "1"),
            ("name", artifact.name),
            ("version", artifact.version),
        ]
    return [
        (":action", "file_upload"),
        ("protocol_version", "1"),
        ("name", artifact.name),
        ("version", artifact.version),
        ("filetype", artifact.filetype),
        ("pyversion", artifact.pyversion),
        ("sha256_digest", digest),
    ]
