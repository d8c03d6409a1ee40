"""mirror/client.py imports aiohttp on a thread after start, but not beside a restarted
worker's first answers: once the first is out (http/hot.py), or WARM_UP_AFTER seconds after
``start`` if no request comes first."""

from __future__ import annotations

import asyncio

import pytest

from cheeseboard.mirror import client as client_module
from cheeseboard.mirror.client import UpstreamClient


async def test_the_import_starts_a_moment_after_start_if_nothing_asks_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "WARM_UP_AFTER", 0.05)
    client = UpstreamClient(5)
    await client.start()
    try:
        assert not client.warming_up  # not beside the first answers
        await asyncio.sleep(0.3)
        assert client.warming_up
    finally:
        await client.close()
    assert not client.warming_up  # closing waited for the import


async def test_warm_up_starts_the_import_at_once_and_only_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "WARM_UP_AFTER", 3600)
    client = UpstreamClient(5)
    client.warm_up()  # before start: nothing may run yet
    assert not client.warming_up
    await client.start()
    try:
        client.warm_up()
        assert client.warming_up
        started = client._warm_up
        client.warm_up()
        assert client._warm_up is started
    finally:
        await client.close()


async def test_a_closed_client_starts_no_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "WARM_UP_AFTER", 0.05)
    client = UpstreamClient(5)
    await client.start()
    await client.close()
    await asyncio.sleep(0.2)  # the timer was cancelled with the client
    client.warm_up()
    assert not client.warming_up
