"""Migration from devpi: a real devpi-server's ``devpi-export`` imports into cheeseboard.

One devpi-server 6.x per module, filled through the real devpi client: users alice and bob, the
chain alice/dev -> alice/stable -> root/pypi (a mirror of a local upstream) with a whitelist,
wheels and an sdist, a doc zip, a tox result, and a file devpi cached from its mirror. It is
stopped and exported once (``devpi-export --include-mirrored-files``); the export is imported
with ``cheeseboard-server import`` into a new data directory and a cheeseboard server started on
it. The tests then check what users see: old passwords, installs through the bases, the same
``+f`` URLs and hashes, the doc zip, the index configs. Damaged copies of the export are refused
with a message naming the problem, and leave no data directory behind.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import installed, pip_install
from tests.support.devpi import DevpiClient
from tests.support.devpi_server import DEVPI_ROOT_PASSWORD, DevpiServer
from tests.support.packages import Dist, build_sdist, build_wheel
from tests.support.server import CheeseboardServer, free_port, server_command
from tests.support.upstream import UpstreamServer

ALICE_PASSWORD = "alice-old-pw"
BOB_PASSWORD = "bob-old-pw"
RELEASES = ("alice/stable/lib-a/1.0", "alice/dev/app/2.0")
DEVPI_EXPORT = str(Path(sys.executable).with_name("devpi-export"))
SIX = "six-1.17.0-py3-none-any.whl"


@dataclass
class Migration:
    """The devpi side as it was before the export, and cheeseboard serving the import."""

    export: Path
    devpi_url: str
    devpi_configs: dict[str, dict[str, Any]]  # index -> devpi's ixconfig
    devpi_versions: dict[str, dict[str, Any]]  # "alice/dev/app/2.0" -> devpi's versiondata
    devpi_six_href: str  # the +f URL devpi's root/pypi page gave for the cached six wheel
    six_fetches: int  # upstream GETs of the six wheel once devpi had cached it
    imported: subprocess.CompletedProcess[str]
    server: CheeseboardServer
    upstream: UpstreamServer
    dists: dict[str, Dist]

    @property
    def url(self) -> str:
        return self.server.url


def _get(url: str, accept: str = "application/json") -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        body: bytes = response.read()
        return body


def _json(url: str) -> Any:
    return json.loads(_get(url))["result"]


def _doc_zip(dest: Path, name: str, version: str) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        info = zipfile.ZipInfo("index.html", date_time=(1980, 1, 1, 0, 0, 0))
        archive.writestr(info, f"<h1>{name} {version}</h1>\n")
    path = dest / f"{name}-{version}.doc.zip"
    path.write_bytes(buf.getvalue())
    return path


def _post_toxresult(devpi_url: str, wheel: Dist) -> None:
    """A tox result for lib-a's wheel, as ``devpi test`` posts it (which would need tox)."""
    h = wheel.sha256
    url = f"{devpi_url}alice/stable/+f/{h[:3]}/{h[3:16]}/{wheel.filename}"
    auth = base64.b64encode(f"alice:{ALICE_PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        url,
        data=json.dumps({"reportversion": "1", "testenvs": {}}).encode(),
        method="POST",
        headers={"X-Devpi-Auth": auth, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def _fill_devpi(devpi: DevpiServer, base: Path) -> dict[str, Dist]:
    client = DevpiClient(base / "devpi-client")
    client.use(devpi.url)
    client.login("root", DEVPI_ROOT_PASSWORD)
    client.ok("user", "-c", "alice", f"password={ALICE_PASSWORD}", "email=alice@example.org")
    client.ok("user", "-c", "bob", f"password={BOB_PASSWORD}")
    client.login("alice", ALICE_PASSWORD)
    client.ok("index", "-c", "stable", "bases=root/pypi", "volatile=False", "mirror_whitelist=six")
    client.ok("index", "-c", "dev", "bases=alice/stable", "title=Alice dev", "acl_upload=alice,bob")
    stable, dev = base / "dist-stable", base / "dist-dev"
    dists = {
        "lib-a-wheel": build_wheel(stable, "lib-a", "1.0", requires_dist=["six"]),
        "lib-a-sdist": build_sdist(stable, "lib-a", "1.0", requires_dist=["six"]),
        "app-wheel": build_wheel(dev, "app", "2.0", requires_dist=["lib-a"]),
    }
    doc = _doc_zip(dev, "app", "2.0")
    client.ok("use", "alice/stable")
    client.ok("upload", "--from-dir", stable)
    client.ok("use", "alice/dev")
    out = client.ok("upload", "--from-dir", dev)
    assert f"doc_upload of {doc.name}" in out, out
    _post_toxresult(devpi.url, dists["lib-a-wheel"])
    return dists


@pytest.fixture(scope="module")
def migration(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Migration]:
    base = tmp_path_factory.mktemp("devpi-import")
    with UpstreamServer(mode="html") as upstream:
        upstream.add(build_wheel(base / "public", "six", "1.17.0"))
        with DevpiServer(base, upstream.simple_url) as devpi:
            six_href = _cache_on_devpi(devpi.url)
            dists = _fill_devpi(devpi, base)
            configs = {name: _json(devpi.url + name) for name in ("alice/dev", "alice/stable")}
            configs["root/pypi"] = _json(devpi.url + "root/pypi")
            versions = {name: _json(devpi.url + name) for name in RELEASES}
            _wait_cached(six_href, upstream)
        export = base / "export"
        subprocess.run(
            [DEVPI_EXPORT, "--include-mirrored-files", "--serverdir", str(devpi.serverdir), export],
            check=True,
            capture_output=True,
            timeout=120,
        )
        datadir = base / "cheeseboard"
        imported = _import(export, datadir)
        assert imported.returncode == 0, imported.stdout + imported.stderr
        server = CheeseboardServer(datadir, free_port(), [])
        server.start()
        try:
            yield Migration(
                export=export,
                devpi_url=devpi.url,
                devpi_configs=configs,
                devpi_versions=versions,
                devpi_six_href=six_href,
                six_fetches=upstream.count(f"/files/{SIX}", "GET"),
                imported=imported,
                server=server,
                upstream=upstream,
                dists=dists,
            )
        finally:
            server.stop()


def _cache_on_devpi(devpi_url: str) -> str:
    """Have devpi's root/pypi fetch the six wheel, so the export holds a mirrored file too."""
    page_url = f"{devpi_url}root/pypi/+simple/six/"
    page = json.loads(_get(page_url, "application/vnd.pypi.simple.v1+json"))
    (six,) = page["files"]
    href = urllib.request.urljoin(page_url, six["url"]).partition("#")[0]
    _get(href, "*/*")
    return href


def _wait_cached(href: str, upstream: UpstreamServer, timeout: float = 10.0) -> None:
    """devpi stores a mirrored file after serving it: wait until it serves its own copy."""
    deadline = time.monotonic() + timeout
    while True:
        before = upstream.count(f"/files/{SIX}", "GET")
        _get(href, "*/*")
        if upstream.count(f"/files/{SIX}", "GET") == before:
            return
        assert time.monotonic() < deadline, "devpi did not cache the six wheel"
        time.sleep(0.2)


def _import(source: Path, datadir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHEESEBOARD_")}
    return subprocess.run(
        server_command("import", "--datadir", str(datadir), str(source)),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


# --- the migrated server -----------------------------------------------------------------------


def test_import_summary_with_toxresults(migration: Migration) -> None:
    out = migration.imported.stdout
    assert "3 user(s)" in out and "3 index(s)" in out and "5 file(s)" in out, out
    assert "1 toxresult(s)" in out, out
    assert "tox result" not in migration.imported.stderr


def test_devpi_login_with_old_passwords(migration: Migration, tmp_path: Path) -> None:
    client = DevpiClient(tmp_path, server_log=migration.server.log)
    client.use(migration.url + "alice/dev")
    assert "logged in 'alice'" in client.login("alice", ALICE_PASSWORD)
    assert "logged in 'bob'" in client.login("bob", BOB_PASSWORD)
    assert "logged in 'root'" in client.login("root", DEVPI_ROOT_PASSWORD)
    refused = client.fails("login", "alice", "--password", "not-her-password")
    assert "401" in refused or "could not be authenticated" in refused


def test_pip_installs_private_packages_through_the_bases(
    migration: Migration, tmp_path: Path
) -> None:
    """app (alice/dev) needs lib-a (alice/stable), which needs six (root/pypi)."""
    result = pip_install(migration.url + "alice/dev/+simple/", tmp_path / "target", "app")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path / "target") == {"app", "lib_a", "six"}


def test_file_urls_and_hashes_are_devpis(migration: Migration) -> None:
    """Every +links href devpi gave is served by cheeseboard at the same path with the same
    bytes, and cheeseboard's version data lists exactly those links (doc zip and tox result
    included)."""
    for name, devpi_data in migration.devpi_versions.items():
        ours = _json(migration.url + name)
        devpi_links = {
            (link["rel"], link["href"].removeprefix(migration.devpi_url), link["hashes"]["sha256"])
            for link in devpi_data["+links"]
        }
        our_links = {
            (link["rel"], link["href"].removeprefix(migration.url), link["hashes"]["sha256"])
            for link in ours["+links"]
        }
        assert our_links == devpi_links, name
        for _rel, path, sha256 in devpi_links:
            body = _get(migration.url + path, "*/*")
            assert hashlib.sha256(body).hexdigest() == sha256, path
        assert ours["requires_dist"] == devpi_data["requires_dist"]
        assert ours["summary"] == devpi_data["summary"]


def test_wheel_metadata_advertised_and_served(migration: Migration) -> None:
    """As after an upload, pages advertise each wheel's METADATA (PEP 658) and serve it."""
    wheel = migration.dists["app-wheel"]
    page = json.loads(
        _get(migration.url + "alice/dev/+simple/app/", "application/vnd.pypi.simple.v1+json")
    )
    (entry,) = [f for f in page["files"] if f["filename"] == wheel.filename]
    assert entry["core-metadata"] == {"sha256": hashlib.sha256(wheel.metadata).hexdigest()}
    url = urllib.request.urljoin(migration.url + "alice/dev/+simple/app/", entry["url"])
    assert _get(url.partition("#")[0] + ".metadata", "*/*") == wheel.metadata


def test_doc_zip_carried_over(migration: Migration) -> None:
    ours = _json(migration.url + "alice/dev/app/2.0")
    (doc,) = [link for link in ours["+links"] if link["rel"] == "doczip"]
    assert doc["href"].endswith("/app-2.0.doc.zip")
    with zipfile.ZipFile(io.BytesIO(_get(doc["href"], "*/*"))) as archive:
        assert archive.read("index.html") == b"<h1>app 2.0</h1>\n"
    simple = _get(migration.url + "alice/dev/+simple/app/", "text/html").decode()
    assert ".doc.zip" not in simple


def test_index_configs_match(migration: Migration) -> None:
    for name in ("alice/dev", "alice/stable"):
        devpi, ours = migration.devpi_configs[name], _json(migration.url + name)
        for key in (
            "type",
            "bases",
            "volatile",
            "acl_upload",
            "acl_toxresult_upload",
            "mirror_whitelist",
            "mirror_whitelist_inheritance",
        ):
            assert ours[key] == devpi[key], (name, key, ours, devpi)
    assert _json(migration.url + "alice/dev")["title"] == "Alice dev"
    assert _json(migration.url + "alice/stable")["mirror_whitelist"] == ["six"]
    pypi, devpi_pypi = _json(migration.url + "root/pypi"), migration.devpi_configs["root/pypi"]
    assert (pypi["type"], pypi["mirror_url"]) == ("mirror", migration.upstream.simple_url)
    assert pypi["volatile"] == devpi_pypi["volatile"]


def test_mirrored_file_comes_from_the_export(migration: Migration) -> None:
    """devpi's cached six wheel is served at devpi's +f URL without asking upstream for it."""
    path = migration.devpi_six_href.removeprefix(migration.devpi_url)
    assert path.startswith("root/pypi/+f/"), path
    digest = hashlib.sha256(_get(migration.url + path, "*/*")).hexdigest()
    assert path.split("/")[3:] == [digest[:3], digest[3:16], SIX]
    assert migration.upstream.count(f"/files/{SIX}", "GET") == migration.six_fetches


# --- damaged exports -------------------------------------------------------------------------


def _copy(migration: Migration, tmp_path: Path) -> Path:
    copy = tmp_path / "export"
    shutil.copytree(migration.export, copy)
    return copy


def _edit_index(export: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = export / "dataindex.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _missing_file(export: Path) -> None:
    (export / "alice/stable/lib-a/1.0/lib_a-1.0.tar.gz").unlink()


def _truncated_index(export: Path) -> None:
    path = export / "dataindex.json"
    path.write_bytes(path.read_bytes()[:2000])


def _changed_byte(export: Path) -> None:
    path = export / "alice/dev/app/2.0/app-2.0-py3-none-any.whl"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _future_dumpversion(export: Path) -> None:
    _edit_index(export, lambda data: data.update(dumpversion="3"))


def _unknown_password_hash(export: Path) -> None:
    _edit_index(export, lambda data: data["users"]["bob"].update(pwhash="plaintext"))


def _costly_password_hash(export: Path) -> None:
    """An argon2 hash asking for 1 GiB per check: every login for bob would run it."""
    costly = "$argon2id$v=19$m=1048576,t=4,p=1$c29tZXNhbHQ$c29tZWhhc2hzb21laGFzaA"
    _edit_index(export, lambda data: data["users"]["bob"].update(pwhash=costly))


def _plugin_index_type(export: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["indexes"]["alice/dev"]["indexconfig"]["type"] = "constrained"

    _edit_index(export, change)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (
            _missing_file,
            "dataindex.json: index alice/stable: file lib_a-1.0.tar.gz: "
            "alice/stable/lib-a/1.0/lib_a-1.0.tar.gz is missing from the export",
        ),
        (_truncated_index, "dataindex.json is not valid JSON"),
        (_changed_byte, "alice/dev/app/2.0/app-2.0-py3-none-any.whl is damaged"),
        (_future_dumpversion, "dumpversion '3' is not supported"),
        (_unknown_password_hash, "user bob: a password hash cheeseboard cannot check"),
        (_costly_password_hash, "user bob: pwhash memory cost m=1048576 exceeds the bound"),
        (_plugin_index_type, "index alice/dev: index type 'constrained'"),
    ],
    ids=[
        "missing-file",
        "truncated-json",
        "changed-byte",
        "dumpversion-3",
        "pwhash",
        "costly-pwhash",
        "type",
    ],
)
def test_damaged_export_is_refused(
    migration: Migration, tmp_path: Path, damage: Callable[[Path], None], expected: str
) -> None:
    export = _copy(migration, tmp_path)
    damage(export)
    target = tmp_path / "target"
    result = _import(export, target)
    assert result.returncode == 2, result.stdout + result.stderr
    error = result.stderr.splitlines()[-1]  # after any warnings
    assert error.startswith("cheeseboard-server: error: "), result.stderr
    assert expected in error, result.stderr
    assert "Traceback" not in result.stderr
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no staging directory left


# --- links ---------------------------------------------------------------------------------

SDIST = "alice/stable/lib-a/1.0/lib_a-1.0.tar.gz"


def _unhashed(export: Path) -> None:
    """The sdist's entry without hashes, as in old exports: the importer hashes what it finds,
    so a link's target would come in with its own (correct) hash."""

    def change(data: dict[str, Any]) -> None:
        for desc in data["indexes"]["alice/stable"]["files"]:
            if desc["relpath"] == SDIST:
                desc["entrymapping"] = {}

    _edit_index(export, change)


def _absolute_link(export: Path, secret: Path) -> None:
    (export / SDIST).unlink()
    (export / SDIST).symlink_to(secret)


def _relative_link(export: Path, secret: Path) -> None:
    (export / SDIST).unlink()
    depth = len(Path(SDIST).parts) - 1
    (export / SDIST).symlink_to(Path(*[".."] * (depth + 1), secret.name))


def _linked_directory(export: Path, secret: Path) -> None:
    """A directory on the way is a link to one outside, holding the secret under the name."""
    outside = secret.parent / "outside-version"
    outside.mkdir()
    (outside / Path(SDIST).name).write_bytes(secret.read_bytes())
    shutil.rmtree(export / Path(SDIST).parent)
    (export / Path(SDIST).parent).symlink_to(outside)


def _link_inside(export: Path, secret: Path) -> None:
    """Even a link to another file of the export is refused: an export holds files."""
    (export / SDIST).unlink()
    (export / SDIST).symlink_to(export / "alice/dev/app/2.0/app-2.0-py3-none-any.whl")


@pytest.mark.parametrize("link", [_absolute_link, _relative_link, _linked_directory, _link_inside])
def test_links_in_the_export_are_refused(
    migration: Migration, tmp_path: Path, link: Callable[[Path, Path], None]
) -> None:
    """A symlink (to a file or a directory, in or out of the export) is never imported: a link
    to the data directory's secret would otherwise be served as a release file."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"server secret that must never be served\n")
    export = _copy(migration, tmp_path)
    _unhashed(export)
    link(export, secret)
    target = tmp_path / "target"
    result = _import(export, target)
    assert result.returncode == 2, result.stdout + result.stderr
    error = result.stderr.splitlines()[-1]
    assert "alice/stable/lib-a/1.0/lib_a-1.0" in error and "is a link" in error, result.stderr
    assert "refused" in error and "Traceback" not in result.stderr
    assert not target.exists()


# --- older exports ---------------------------------------------------------------------------


def test_legacy_salted_password_logs_in(migration: Migration, tmp_path: Path) -> None:
    """A user devpi never moved to argon2 (``pwsalt`` + sha256) keeps the password."""
    salt = base64.b64encode(b"0123456789abcdef").decode()  # 16 bytes, as devpi made them
    pwhash = hashlib.sha256(salt.encode() + "old-sécret".encode()).hexdigest()
    export = _copy(migration, tmp_path)
    user = {
        "pwsalt": salt,
        "pwhash": pwhash,
        "username": "carol",
        "created": "2014-05-06T07:08:09Z",
    }
    _edit_index(export, lambda data: data["users"].update(carol=user))
    result = _import(export, tmp_path / "data")
    assert result.returncode == 0, result.stdout + result.stderr
    server = CheeseboardServer(tmp_path / "data", free_port(), [])
    server.start()
    try:
        client = DevpiClient(tmp_path / "client", server_log=server.log)
        client.use(server.url)
        assert "logged in 'carol'" in client.login("carol", "old-sécret")
        client.fails("login", "carol", "--password", "old-secret")
        client.fails("login", "carol", "--password", pwhash)
        assert "logged in 'alice'" in client.login("alice", ALICE_PASSWORD)
    finally:
        server.stop()


def _as_dumpversion_1(data: dict[str, Any], export: Path) -> None:
    """The export as an old devpi-server wrote it: no file versions, md5 instead of sha256,
    pypi_whitelist, no mirror_whitelist_inheritance (which then meant union)."""
    data["dumpversion"] = "1"
    for index in data["indexes"].values():
        config = index["indexconfig"]
        if "mirror_whitelist" in config:
            config["pypi_whitelist"] = config.pop("mirror_whitelist")
        config.pop("mirror_whitelist_inheritance", None)
        for desc in index.get("files", []):
            desc.pop("version", None)
            body = (export / desc["relpath"]).read_bytes()
            md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
            desc["entrymapping"] = {"md5": md5, "last_modified": "Tue, 02 Jan 2024 03:04:05 GMT"}


def test_dumpversion_1_export(migration: Migration, tmp_path: Path) -> None:
    from cheeseboard.ops.dump.devpi import DevpiExport
    from cheeseboard.ops.dump.format import DumpError

    export = _copy(migration, tmp_path)
    _edit_index(export, lambda data: _as_dumpversion_1(data, export))
    warnings: list[str] = []
    records = list(DevpiExport(export, warn=warnings.append).records())
    files = {r["filename"]: r for _, r in records if r["kind"] == "file"}
    for dist in migration.dists.values():
        assert (files[dist.filename]["sha256"], files[dist.filename]["version"]) == (
            dist.sha256,
            dist.version,
        )
    assert files["app-2.0.doc.zip"]["version"] == "2.0"
    assert files["app-2.0.doc.zip"]["packagetype"] == "doczip"
    configs = {r["name"]: r["config"] for _, r in records if r["kind"] == "index"}
    assert configs["alice/stable"]["mirror_whitelist"] == ["six"]
    assert configs["alice/stable"]["mirror_whitelist_inheritance"] == "union"
    tox = [r for _, r in records if r["kind"] == "toxresult"]
    assert [r["filename"] for r in tox] == [migration.dists["lib-a-wheel"].filename]
    assert not any("tox result" in warning for warning in warnings)

    # The md5 is checked when there is no sha256 to check the copy against.
    _changed_byte(export)
    with pytest.raises(DumpError, match=r"app-2\.0-py3-none-any\.whl is damaged: its md5"):
        DevpiExport(export, warn=warnings.append).verify()


def test_a_tox_result_cheeseboard_cannot_keep_is_skipped(
    migration: Migration, tmp_path: Path
) -> None:
    """Not a JSON object (or over 1 MiB): skipped with a warning; the rest imports."""
    from cheeseboard.ops.dump.devpi import DevpiExport

    export = _copy(migration, tmp_path)
    data = json.loads((export / "dataindex.json").read_text())
    tox = [
        desc
        for index in data["indexes"].values()
        for desc in index.get("files", [])
        if desc["type"] == "toxresult"
    ]
    assert len(tox) == 1
    (export / tox[0]["relpath"]).write_text("[1, 2]")
    warnings: list[str] = []
    records = list(DevpiExport(export, warn=warnings.append).records())
    assert not [r for _, r in records if r["kind"] == "toxresult"]
    assert any("skipped 1 tox result file(s)" in warning for warning in warnings), warnings
