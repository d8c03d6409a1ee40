"""Keyed single-flight locks across tasks and (simulated) worker processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from cheeseboard.services.locks import LockTimeout, SharedLocks

LONG = 5.0


def distinct_bucket_keys(locks: SharedLocks) -> tuple[str, str]:
    """Two keys whose lock files differ, so they never wait for each other."""
    first = "page:1:alpha"
    for n in range(100):
        other = f"page:1:beta{n}"
        if locks._bucket_path(other) != locks._bucket_path(first):
            return first, other
    raise AssertionError("no distinct bucket found")


async def test_same_key_serialises(tmp_path: Path) -> None:
    """A second task waits until the first holder of the key is done."""
    locks = SharedLocks.in_directory(tmp_path / "locks")
    events: list[str] = []
    inside = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with locks.hold("k", LONG):
            events.append("first in")
            inside.set()
            await release.wait()
            events.append("first out")

    async def second() -> None:
        await inside.wait()
        async with locks.hold("k", LONG):
            events.append("second in")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await inside.wait()
    await asyncio.sleep(0.05)
    assert events == ["first in"]  # second is still waiting
    release.set()
    await asyncio.gather(*tasks)
    assert events == ["first in", "first out", "second in"]


async def test_many_tasks_never_overlap(tmp_path: Path) -> None:
    """Under contention at most one task is inside the key at a time, and all get in."""
    locks = SharedLocks.in_directory(tmp_path)
    inside = 0
    peak = 0
    done = 0

    async def worker() -> None:
        nonlocal inside, peak, done
        async with locks.hold("k", LONG):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.002)
            inside -= 1
            done += 1

    await asyncio.gather(*(worker() for _ in range(20)))
    assert (peak, done) == (1, 20)
    assert locks._local == {} and locks._waiters == {}


async def test_different_keys_run_concurrently(tmp_path: Path) -> None:
    """Holders of keys in different buckets do not wait for each other."""
    locks = SharedLocks.in_directory(tmp_path)
    key_a, key_b = distinct_bucket_keys(locks)
    both_inside = asyncio.Event()
    count = 0

    async def holder(key: str) -> None:
        nonlocal count
        async with locks.hold(key, 1.0):
            count += 1
            if count == 2:
                both_inside.set()
            await asyncio.wait_for(both_inside.wait(), 1.0)

    await asyncio.gather(holder(key_a), holder(key_b))
    assert both_inside.is_set()


async def test_timeout_raises_lock_timeout(tmp_path: Path) -> None:
    """Waiting longer than the timeout for a held key raises LockTimeout naming the key."""
    locks = SharedLocks.in_directory(tmp_path)
    async with locks.hold("busy", LONG):
        start = time.monotonic()
        with pytest.raises(LockTimeout, match="busy"):
            async with locks.hold("busy", 0.1):
                pytest.fail("acquired a held lock")
        assert 0.09 <= time.monotonic() - start < 1.0
    # The waiter's bookkeeping is gone and the key is free again.
    async with locks.hold("busy", 0.1):
        pass
    assert locks._local == {} and locks._waiters == {}


def test_lock_timeout_is_a_timeout_error() -> None:
    """Callers catching TimeoutError also catch LockTimeout."""
    assert issubclass(LockTimeout, TimeoutError)


async def test_exception_in_body_releases(tmp_path: Path) -> None:
    """An exception inside the block releases the key for the next holder."""
    locks = SharedLocks.in_directory(tmp_path)
    with pytest.raises(RuntimeError):
        async with locks.hold("k", LONG):
            raise RuntimeError("boom")
    async with locks.hold("k", 0.1):
        pass


async def test_cancelled_waiter_leaves_no_trace(tmp_path: Path) -> None:
    """Cancelling a task waiting for a key keeps the lock usable and the tables clean."""
    locks = SharedLocks.in_directory(tmp_path)
    async with locks.hold("k", LONG):

        async def waiter() -> None:
            async with locks.hold("k", LONG):
                pytest.fail("acquired a held lock")

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    async with locks.hold("k", 0.1):
        pass
    assert locks._local == {} and locks._waiters == {}


async def test_two_instances_exclude_each_other(tmp_path: Path) -> None:
    """SharedLocks objects over one directory (as in two processes) exclude each other."""
    one, two = SharedLocks.in_directory(tmp_path), SharedLocks.in_directory(tmp_path)
    async with one.hold("file:1:x.whl", LONG):
        with pytest.raises(LockTimeout):
            async with two.hold("file:1:x.whl", 0.1):
                pytest.fail("both processes hold the key")
    async with two.hold("file:1:x.whl", 0.1):
        pass


async def test_other_instance_waits_then_gets_in(tmp_path: Path) -> None:
    """A holder in another 'process' gets the key once the first releases it."""
    one, two = SharedLocks.in_directory(tmp_path), SharedLocks.in_directory(tmp_path)
    order: list[str] = []
    holding = asyncio.Event()

    async def first() -> None:
        async with one.hold("k", LONG):
            order.append("one in")
            holding.set()
            await asyncio.sleep(0.1)
            order.append("one out")

    async def second() -> None:
        await holding.wait()
        async with two.hold("k", LONG):
            order.append("two in")

    await asyncio.gather(first(), second())
    assert order == ["one in", "one out", "two in"]


async def test_timeout_covers_both_waits(tmp_path: Path) -> None:
    """The timeout is one deadline for the in-process and the cross-process wait together."""
    other_process, locks = SharedLocks.in_directory(tmp_path), SharedLocks.in_directory(tmp_path)
    async with other_process.hold("k", LONG):

        async def queued_behind_local_holder() -> float:
            start = time.monotonic()
            with pytest.raises(LockTimeout):
                async with locks.hold("k", 0.5):
                    pytest.fail("acquired a held lock")
            return time.monotonic() - start

        async def local_holder() -> None:
            # Holds the in-process lock for 0.3 s while it waits for the file lock in vain.
            with pytest.raises(LockTimeout):
                async with locks.hold("k", 0.3):
                    pytest.fail("acquired a held lock")

        local = asyncio.create_task(local_holder())
        await asyncio.sleep(0)
        waited = await queued_behind_local_holder()
        await local
    assert 0.45 <= waited < 0.75  # not 0.3 + 0.5


async def test_lock_files_are_bucketed(tmp_path: Path) -> None:
    """Keys map to a bounded set of lock files inside the directory."""
    locks = SharedLocks.in_directory(tmp_path / "new" / "dir")
    paths = {locks._bucket_path(f"key{n}") for n in range(3000)}
    assert len(paths) <= 1024
    assert all(p.parent == tmp_path / "new" / "dir" and p.suffix == ".lock" for p in paths)
    async with locks.hold("key0", 0.1):
        assert locks._bucket_path("key0").exists()
