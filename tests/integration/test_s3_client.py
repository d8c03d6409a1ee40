"""The S3 client against a real S3: SeaweedFS ``weed mini`` (tests/support/seaweed.py).

Each test gets a fresh bucket (``s3_url``) and a client on its ``cb`` prefix.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cheeseboard.store.s3 import (
    CHUNK_SIZE,
    MIN_PART_SIZE,
    S3Client,
    S3Error,
    S3Location,
    S3NotFound,
    S3Unavailable,
)
from tests.support.seaweed import SeaweedServer
from tests.support.server import free_port

MiB = 1024 * 1024


@pytest.fixture
def location(s3_url: str) -> S3Location:
    return S3Location.from_url(s3_url)  # credentials: the AWS_* variables s3_url set


@pytest.fixture
async def client(location: S3Location) -> AsyncIterator[S3Client]:
    async with S3Client(location, timeout=10) as client:
        yield client


def write_file(path: Path, size: int) -> tuple[Path, str]:
    """A file of ``size`` incompressible bytes, and its sha256."""
    data = os.urandom(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def read_all(client: S3Client, name: str, start: int = 0, end: int | None = None) -> bytes:
    async with client.get(name, start, end) as obj:
        return b"".join([chunk async for chunk in obj.chunks])


class RecordingClient(S3Client):
    """An S3Client that notes the operation of every request it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.operations: list[str] = []

    async def _send(self, operation: str, *args: Any, **kwargs: Any) -> aiohttp.ClientResponse:
        self.operations.append(operation)
        return await super()._send(operation, *args, **kwargs)


async def multipart_uploads(client: S3Client) -> list[str]:
    """Keys with an unfinished multipart upload in the bucket (ListMultipartUploads)."""
    root = await client._call_xml("ListMultipartUploads", "GET", None, query=[("uploads", "")])
    return [key.text or "" for key in root.iterfind("{*}Upload/{*}Key")]


async def test_put_file_head_and_ranged_gets(client: S3Client, tmp_path: Path) -> None:
    size = 3 * CHUNK_SIZE + 12345
    path, sha256 = write_file(tmp_path / "blob", size)
    data = path.read_bytes()
    assert await client.head("blob") is None
    await client.put_file("blob", path, size, sha256)
    assert await client.head("blob") == size

    async with client.get("blob") as obj:
        assert (obj.size, obj.total) == (size, size)
        chunks = [chunk async for chunk in obj.chunks]
    assert b"".join(chunks) == data
    assert max(len(chunk) for chunk in chunks) <= CHUNK_SIZE

    for start, end in [(0, 0), (1000, 300_000), (size - 1, size - 1), (size - 10, None), (5, None)]:
        async with client.get("blob", start, end) as obj:
            expected = data[start : (end + 1 if end is not None else None)]
            assert (obj.size, obj.total) == (len(expected), size)
            assert b"".join([chunk async for chunk in obj.chunks]) == expected
    # A range running past the end is cut to the object, as HTTP says.
    assert await read_all(client, "blob", size - 2, size + 100) == data[-2:]
    # Leaving early is fine (the connection is dropped, not reused half read).
    async with client.get("blob") as obj:
        assert len(await anext(obj.chunks)) > 0
    assert await client.get_bytes("blob") == data


async def test_compressible_bytes_come_back_verbatim(client: S3Client) -> None:
    """We send stored bytes on as they are: no transparent compression on the way."""
    text = b"Metadata-Version: 2.1\nName: x\n" * 20_000
    await client.put_bytes("x-1.0.whl.metadata", text)
    async with client.get("x-1.0.whl.metadata") as obj:
        assert obj.size == len(text)
        assert b"".join([chunk async for chunk in obj.chunks]) == text


async def test_multipart_upload(location: S3Location, tmp_path: Path) -> None:
    size = 12 * MiB + 4321  # parts of 5 + 5 + 2 MiB
    path, sha256 = write_file(tmp_path / "big", size)
    async with RecordingClient(
        location, multipart_threshold=6 * MiB, part_size=MIN_PART_SIZE
    ) as client:
        await client.put_file("big", path, size, sha256)
        assert client.operations == [
            "CreateMultipartUpload",
            "UploadPart",
            "UploadPart",
            "UploadPart",
            "CompleteMultipartUpload",
        ]
        assert await client.head("big") == size
        digest = hashlib.sha256()
        async with client.get("big") as obj:
            assert obj.total == size
            async for chunk in obj.chunks:
                digest.update(chunk)
        assert digest.hexdigest() == sha256
        assert await multipart_uploads(client) == []


async def test_failed_multipart_upload_is_aborted(location: S3Location, tmp_path: Path) -> None:
    """The file does not have the sha256 we were told: found before the last part goes out."""
    size = 11 * MiB
    path, _ = write_file(tmp_path / "big", size)
    async with S3Client(location, multipart_threshold=6 * MiB, part_size=MIN_PART_SIZE) as client:
        with pytest.raises(ValueError, match="does not have the sha256"):
            await client.put_file("big", path, size, "0" * 64)
        assert await client.head("big") is None
        assert await multipart_uploads(client) == []
        assert [name async for name in client.list()] == []


async def test_file_changed_while_uploading(client: S3Client, tmp_path: Path) -> None:
    """Single PUT: the last chunk is held back until the bytes sent have the right sha256."""
    size = 2 * CHUNK_SIZE + 10
    path, sha256 = write_file(tmp_path / "blob", size)
    path.write_bytes(os.urandom(size))  # same size, other bytes: as if rewritten meanwhile
    with pytest.raises(ValueError, match="changed while uploading"):
        await client.put_file("blob", path, size, sha256)
    assert await client.head("blob") is None
    # The client is still usable after the aborted request.
    path, sha256 = write_file(tmp_path / "blob", size)
    await client.put_file("blob", path, size, sha256)
    assert await client.head("blob") == size


async def test_put_file_checks_its_arguments(client: S3Client, tmp_path: Path) -> None:
    path, sha256 = write_file(tmp_path / "blob", 100)
    with pytest.raises(ValueError, match="has 100 bytes, not the 101"):
        await client.put_file("blob", path, 101, sha256)
    with pytest.raises(ValueError, match="not a sha256"):
        await client.put_file("blob", path, 100, "abc")
    assert await client.head("blob") is None
    empty, empty_sha = write_file(tmp_path / "empty", 0)
    await client.put_file("empty", empty, 0, empty_sha)
    assert await client.head("empty") == 0
    assert await client.get_bytes("empty") == b""


async def test_put_bytes_get_bytes_and_delete(client: S3Client) -> None:
    await client.put_bytes("small", b"hello")
    assert await client.get_bytes("small") == b"hello"
    assert await client.head("small") == 5
    await client.put_bytes("small", b"replaced")
    assert await client.get_bytes("small") == b"replaced"
    await client.delete("small")
    assert await client.head("small") is None
    await client.delete("small")  # already gone: fine
    await client.delete("never-existed")
    with pytest.raises(S3NotFound) as missing:
        await client.get_bytes("small")
    assert missing.value.status == 404
    assert "GET" in str(missing.value)
    assert f"s3://{client.location.bucket}/cb/small" in str(missing.value)
    with pytest.raises(S3NotFound):
        async with client.get("small", 1, 2):
            pass


async def test_list_pages_and_prefix_isolation(location: S3Location) -> None:
    neighbours = {
        "cbx/outside": dataclasses.replace(location, prefix="cbx"),
        "top-level": dataclasses.replace(location, prefix=""),
        "other/cb/deep": dataclasses.replace(location, prefix="other/cb"),
    }
    for name, place in neighbours.items():
        async with S3Client(place) as other:
            await other.put_bytes(name.rsplit("/", 1)[-1], b"not ours")
    names = [f"{letter}{i}" for letter in "ab" for i in range(3)] + ["sub/one", "sub/two"]
    started = time.time()
    async with RecordingClient(location) as client:
        for i, name in enumerate(names):
            await client.put_bytes(name, b"x" * i)
        client.operations.clear()
        listed = [item async for item in client.list(page_size=3)]
        assert client.operations == ["ListObjectsV2"] * 3  # 8 objects, 3 a page
        assert [name for name, _, _ in listed] == sorted(names)
        assert {name: size for name, size, _ in listed} == {n: i for i, n in enumerate(names)}
        for _, _, modified in listed:
            assert started - 5 <= modified <= time.time() + 5
        sub = [name async for name, _, _ in client.list("sub/", page_size=1)]
        assert sub == ["sub/one", "sub/two"]
        assert [name async for name, _, _ in client.list("a")] == ["a0", "a1", "a2"]
        assert [name async for name, _, _ in client.list("nothing")] == []
    async with S3Client(dataclasses.replace(location, prefix="")) as whole:
        everything = {name async for name, _, _ in whole.list()}
    assert everything == {f"cb/{n}" for n in names} | set(neighbours)


async def test_list_big_pages(client: S3Client) -> None:
    """Pages of a few hundred KiB of XML, read whole across several network reads."""
    names = [f"{'long-name-' * 20}{i:04d}" for i in range(600)]
    await asyncio.gather(*(client.put_bytes(name, b"") for name in names))
    listed = [name async for name, _, _ in client.list(page_size=500)]
    assert listed == names


NAMES = [
    "with space/and é ü.whl",
    "a+b=c&d;e,f@g$h!i'j(k)l*m.tar.gz",
    "百科/文件 名.txt",
    "percent%20literal~tilde",
    "hash#question?colon:semi.zip",
]


@pytest.mark.parametrize("name", NAMES)
async def test_names_needing_encoding_round_trip(client: S3Client, name: str) -> None:
    data = name.encode() * 3
    await client.put_bytes(name, data)
    assert await client.head(name) == len(data)
    assert await client.get_bytes(name) == data
    assert await read_all(client, name, 1, 4) == data[1:5]
    assert [item[0] async for item in client.list()] == [name]
    async with aiohttp.ClientSession() as session, session.get(client.presign_get(name)) as got:
        assert got.status == 200
        assert await got.read() == data
    await client.delete(name)
    assert await client.head(name) is None


async def test_presigned_urls(client: S3Client) -> None:
    await client.put_bytes("sha/abc", b"wheel bytes")
    url = client.presign_get("sha/abc", expires=60, filename="pkg-1.0-py3-none-any.whl")
    async with aiohttp.ClientSession() as session:  # no credentials at all
        async with session.get(url) as response:
            assert response.status == 200
            assert await response.read() == b"wheel bytes"
            assert response.headers["Content-Disposition"] == (
                'attachment; filename="pkg-1.0-py3-none-any.whl"'
            )
        # Any change to what was signed is refused.
        parts = urllib.parse.urlsplit(url)
        tampered = [
            url.replace("X-Amz-Expires=60", "X-Amz-Expires=6000"),
            url.replace("pkg-1.0", "evil-1.0"),
            urllib.parse.urlunsplit(parts._replace(path=parts.path + "x")),
            url[:-1] + ("0" if url[-1] != "0" else "1"),  # the signature itself
        ]
        for bad in tampered:
            async with session.get(bad) as response:
                assert response.status == 403, bad
                assert b"wheel bytes" not in await response.read()
        # And without any signature the object is not public.
        async with session.get(urllib.parse.urlunsplit(parts._replace(query=""))) as response:
            assert response.status == 403
            assert b"wheel bytes" not in await response.read()


async def test_wrong_secret_key_is_refused(location: S3Location) -> None:
    wrong = "not-the-secret-key-1234"
    async with S3Client(dataclasses.replace(location, secret_key=wrong)) as client:
        with pytest.raises(S3Error) as refused:
            await client.put_bytes("x", b"data")
        assert refused.value.status == 403
        assert refused.value.code  # e.g. SignatureDoesNotMatch
        for text in (str(refused.value), repr(refused.value)):
            assert wrong not in text
            assert location.secret_key not in text
        assert "PUT" in str(refused.value)
        with pytest.raises(S3Error) as head_refused:  # HEAD answers have no body to read
            await client.head("x")
        assert head_refused.value.status == 403
        with pytest.raises(S3Error, match="403"):
            await client.get_bytes("x")
        with pytest.raises(S3Error, match="403"):
            [item async for item in client.list()]
        async with (
            aiohttp.ClientSession() as session,
            session.get(client.presign_get("x")) as response,
        ):
            assert response.status == 403
    async with S3Client(location) as client:
        assert await client.head("x") is None


async def test_dead_endpoint_is_unavailable_quickly(location: S3Location) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    async with S3Client(dataclasses.replace(location, endpoint=endpoint), timeout=3) as client:
        for call in (client.head("x"), client.put_bytes("x", b"1"), client.get_bytes("x")):
            with pytest.raises(S3Unavailable) as unavailable:
                await call
            assert endpoint in str(unavailable.value)
            assert unavailable.value.status is None
    assert time.monotonic() - started < 5


async def test_stalled_endpoint_times_out(location: S3Location) -> None:
    """An endpoint that takes the connection but never answers: S3Unavailable after ``timeout``."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel completes handshakes; nobody ever reads or answers
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        async with S3Client(dataclasses.replace(location, endpoint=endpoint), timeout=1) as client:
            with pytest.raises(S3Unavailable, match="timed out") as stalled:
                await client.get_bytes("x")
        assert endpoint in str(stalled.value)
        assert time.monotonic() - started < 5


async def test_create_bucket_is_idempotent(s3_server: SeaweedServer, location: S3Location) -> None:
    async with S3Client(location) as client:
        await client.create_bucket()  # the fixture created it already
        await client.put_bytes("kept", b"1")
        await client.create_bucket()
        assert await client.get_bytes("kept") == b"1"
    fresh = dataclasses.replace(location, bucket=location.bucket + "-new")
    async with S3Client(fresh) as client:
        with pytest.raises(S3NotFound) as missing:
            await client.put_bytes("x", b"1")
        assert missing.value.code == "NoSuchBucket"
        with pytest.raises(S3NotFound):  # a missing object is fine, a missing bucket is not
            await client.delete("x")
        await client.create_bucket()
        await client.put_bytes("x", b"1")
        assert await client.head("x") == 1
    assert s3_server.endpoint == location.endpoint
