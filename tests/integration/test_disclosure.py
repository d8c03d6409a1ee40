"""What the server tells about its host: ``/+status`` keeps the data directory, pid and listening
address for root; anyone else gets devpi's status shape without them (issue 17)."""

from __future__ import annotations

from typing import Any

from tests.support.api import call
from tests.support.server import ROOT_PASSWORD, CheeseboardServer

HOST_DETAILS = {"serverdir", "pid", "host", "port"}


def _status(server: CheeseboardServer, auth: tuple[str, str] | None = None) -> dict[str, Any]:
    status, body = call(server.url, "GET", "/+status", auth=auth)
    assert status == 200, body
    assert body["type"] == "status"
    result: dict[str, Any] = body["result"]
    return result


def test_status_hides_host_details_from_all_but_root(mirror_server: CheeseboardServer) -> None:
    """Anonymous, a wrong password and a plain user see no serverdir/pid/host/port; root does."""
    created = call(
        mirror_server.url, "PUT", "/alice", {"password": "alice-pw"}, auth=("root", ROOT_PASSWORD)
    )
    assert created[0] == 201, created
    for auth in (None, ("root", "wrong-password"), ("alice", "alice-pw")):
        result = _status(mirror_server, auth)
        assert not HOST_DETAILS & set(result), (auth, result)
        assert result["role"] == "MASTER" and result["uuid"] and result["serial"] > 0
        assert str(mirror_server.datadir) not in repr(result)
    root = _status(mirror_server, ("root", ROOT_PASSWORD))
    assert root["serverdir"] == str(mirror_server.datadir)
    assert isinstance(root["pid"], int) and root["port"] == mirror_server.port
