"""Project search: the FTS5 table of migration 0004, kept by triggers, queried by store/search.py,
paged by services/search.py. Every test runs on a real migrated SQLite store, written through the
store functions the services use, on connections configured as store/db.py configures them."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import delete, insert, text, update
from sqlalchemy.engine import Connection, Engine

from cheeseboard.core.distfiles import canonical_version
from cheeseboard.core.names import normalize_project_name
from cheeseboard.ops.datadir import init_datadir
from cheeseboard.ops.dump.importer import import_dump
from cheeseboard.services.errors import BadRequest
from cheeseboard.services.indexes import IndexRegistry
from cheeseboard.services.search import SearchPage, SearchService
from cheeseboard.store import accounts, project_rows, release_rows
from cheeseboard.store.db import Database, engine_for, migrate
from cheeseboard.store.schema import indexes, projects, releases, users
from cheeseboard.store.search import SearchHit, fts5_match, search_projects, search_terms

# --- a store to search ---------------------------------------------------------------------------


class Store:
    """A migrated SQLite store and helpers that write through the store functions."""

    def __init__(self, url: str, populate: bool = True) -> None:
        self.url = url
        self.engine: Engine = engine_for(url, write=True)  # store/db.py's pragmas
        if not populate:
            return
        with self.engine.begin() as conn:
            self.owner = accounts.create_user(conn, "alice", "not-a-hash")
            self.dev = accounts.create_index(conn, self.owner, "dev", "stage", {"type": "stage"})
            self.pypi = accounts.create_index(conn, self.owner, "pypi", "mirror", {})

    def run(self, fn: Any, *args: Any) -> Any:
        with self.engine.begin() as conn:
            return fn(conn, *args)

    def index(self, name: str, type_: str = "stage") -> int:
        return int(
            self.run(accounts.create_index, self.owner, name, type_, {"type": type_, "bases": []})
        )

    def release(
        self,
        name: str,
        version: str = "1.0",
        index_id: int | None = None,
        **metadata: Any,
    ) -> int:
        """Store a release as an upload does; returns the project id."""
        index_id = self.dev if index_id is None else index_id

        def write(conn: Connection) -> int:
            project_id = project_rows.ensure_stage_project(
                conn, index_id, normalize_project_name(name), name
            )
            release_rows.upsert_release(
                conn,
                project_id,
                version,
                canonical_version(version),
                {"name": name, "version": version, **metadata},
            )
            return project_id

        return int(self.run(write))

    def mirror(self, name: str, found: bool = True, index_id: int | None = None) -> None:
        """Store a mirror page (or upstream's 404) as a mirror refresh does."""
        index_id = self.pypi if index_id is None else index_id
        normalized = normalize_project_name(name)
        if found:
            self.run(
                project_rows.save_mirror_page,
                index_id,
                normalized,
                name,
                [],
                time.time(),
                *[None] * 4,
            )
        else:
            self.run(project_rows.save_mirror_not_found, index_id, normalized, time.time())

    def search(
        self,
        query: str,
        index_ids: Sequence[int] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[SearchHit], int]:
        with self.engine.connect() as conn:
            return search_projects(conn, query, index_ids, limit, offset)

    def names(self, query: str, index_ids: Sequence[int] | None = None) -> list[str]:
        return [hit.project for hit in self.search(query, index_ids)[0]]

    def fts_rows(self) -> int:
        return int(self.run(lambda conn: conn.scalar(text("SELECT count(*) FROM search_fts"))))


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("cheeseboard.store") / "migrations")
    )
    return config


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'cheeseboard.sqlite'}"
    migrate(url)
    made = Store(url)
    yield made
    made.engine.dispose()


# --- query text ----------------------------------------------------------------------------------


def test_terms_split_like_normalized_names() -> None:
    """Letters and digits make terms; "-", "_", "." and everything else separate them."""
    assert search_terms("Foo_Bar.baz-2  qux") == ["foo", "bar", "baz", "2", "qux"]
    assert search_terms('foo" OR name:*') == ["foo", "or", "name"]
    assert search_terms("Crème brûlée") == ["crème", "brûlée"]
    assert search_terms("  *  \"'  ") == []


def test_match_quotes_every_term_as_a_prefix() -> None:
    """Each term is an FTS5 string with a prefix star, all required: no syntax gets through."""
    assert fts5_match(["foo", "or"]) == '"foo"* AND "or"*'
    assert fts5_match(['a"b']) == '"a""b"*'


# --- matching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "query"),
    [
        ({}, "gorgonzola"),  # the name
        ({"summary": "A washed-rind gorgonzola helper"}, "washed"),
        ({"description": "# Usage\n\nPairs well with membrillo."}, "membrillo"),
        ({"keywords": "dairy, blue-veined"}, "veined"),  # a string, as core metadata has it
        ({"keywords": ["dairy", "blue-veined"]}, "veined"),  # a list, as devpi may have it
        ({"classifiers": ["Topic :: Food :: Cheese"]}, "cheese"),
        ({"classifiers": "Topic :: Food :: Cheese"}, "food"),
    ],
)
def test_each_field_matches(store: Store, metadata: dict[str, Any], query: str) -> None:
    store.release("Gorgonzola", **metadata)
    store.release("unrelated", summary="nothing to see")
    hits, total = store.search(query)
    assert [hit.project for hit in hits] == ["gorgonzola"] and total == 1


def test_accents_and_case_are_folded(store: Store) -> None:
    """Non-ASCII text in lists is indexed decoded (not as JSON \\u escapes)."""
    store.release("fromage", keywords=["Crème", "Brûlée"], summary="Tomme de SAVOIE")
    assert store.names("creme brulee") == ["fromage"]
    assert store.names("savoie") == ["fromage"]
    assert store.names("u00e8") == []


def test_all_terms_must_match(store: Store) -> None:
    store.release("stilton", summary="blue cheese from england")
    store.release("roquefort", summary="blue cheese from france")
    store.release("cheddar", summary="hard cheese from england")
    assert sorted(store.names("blue cheese")) == ["roquefort", "stilton"]
    assert store.names("england blue") == ["stilton"]
    assert store.names("blue hard") == []


def test_prefixes_match_for_search_as_you_type(store: Store) -> None:
    store.release("Camembert-Tools", summary="ripening schedules")
    for partial in ("c", "ca", "cam", "camem", "camembert-to", "ripe", "sched"):
        assert store.names(partial) == ["camembert-tools"], partial
    assert store.names("camembertx") == []


@pytest.mark.parametrize(
    "query",
    [
        'foo" OR name:*',
        "NEAR(",
        "NEAR(cheddar brie, 2)",
        "*",
        '"',
        "'",
        "cheddar OR brie",
        "NOT cheddar",
        "cheddar AND",
        "^cheddar",
        "name:cheddar",
        "{name summary}: cheddar",
        "cheddar)",
        "(cheddar",
        "cheddar + brie",
        "-cheddar",
        "cheddar*",
        "\x00cheddar",
        "%_",
    ],
)
def test_fts_syntax_in_the_query_is_text(store: Store, query: str) -> None:
    """Operators, column filters, quotes and stars neither raise nor act as syntax."""
    store.release("cheddar", summary="sharp")
    store.release("brie", summary="soft")
    hits, total = store.search(query)
    names = [hit.project for hit in hits]
    assert total == len(names)
    terms = search_terms(query)
    if terms == ["cheddar"]:
        assert names == ["cheddar"]
    else:  # OR, NOT, NEAR, name are words that no project here has: nothing matches
        assert names == []


def test_blank_query_finds_nothing(store: Store) -> None:
    store.release("cheddar")
    for query in ("", "   ", "-_.", "***"):
        assert store.search(query) == ([], 0)


# --- ranking -------------------------------------------------------------------------------------


def test_ranking_exact_then_prefix_then_name_word_then_text(store: Store) -> None:
    """Exact name, name prefix, a name word, summary only, description only: in that order,
    even when the name matches sit beside long descriptions (bm25 divides by row length)."""
    essay = "Lorem ipsum dolor sit amet. " * 400
    store.release("wine-pairing", description="Try it with a comte. " + essay)
    store.release("aged-comte", description=essay)  # a word of the name
    store.release("fromagerie", summary="Comte and other mountain cheeses")
    store.release("Comte", description=essay)  # exact
    store.release("comte-affinage", description=essay)  # prefix
    assert store.names("comte") == [
        "comte",
        "comte-affinage",
        "aged-comte",
        "fromagerie",
        "wine-pairing",
    ]
    # The whole normalized name, however it is spelled, is an exact match.
    assert store.names("Comte.Affinage")[0] == "comte-affinage"


def test_weights_order_summary_keywords_classifiers_description(store: Store) -> None:
    store.release("d-project", description="tangy")
    store.release("c-project", classifiers=["Topic :: Tangy"])
    store.release("k-project", keywords="tangy")
    store.release("s-project", summary="tangy")
    assert store.names("tangy") == ["s-project", "k-project", "c-project", "d-project"]


# --- paging, grouping, versions ------------------------------------------------------------------


def test_paging_and_total(store: Store) -> None:
    for number in range(25):
        store.release(f"gouda-{number:02}", summary="a gouda")
    pages = [store.search("gouda", limit=10, offset=offset) for offset in (0, 10, 20, 30)]
    assert [len(hits) for hits, _ in pages] == [10, 10, 5, 0]
    assert {total for _, total in pages} == {25}
    seen = [hit.project for hits, _ in pages for hit in hits]
    assert sorted(seen) == [f"gouda-{number:02}" for number in range(25)]
    assert seen == sorted(seen)  # equal scores: by name, so pages never overlap


def test_one_hit_per_project_with_several_releases(store: Store) -> None:
    for version in ("1.0", "1.1", "2.0"):
        store.release("brie", version, summary=f"soft brie {version}")
    hits, total = store.search("brie")
    assert total == 1 and len(hits) == 1 and hits[0].version == "2.0"
    assert store.fts_rows() == 1


def test_version_is_the_highest_not_yanked(store: Store) -> None:
    """PEP 440 order (1.10 > 1.9), yanked releases skipped unless all are yanked; the summary
    is that release's."""
    for version in ("1.0", "1.10", "1.9", "2.0"):
        project_id = store.release("feta", version, summary=f"feta {version}")
    (hit,), _ = store.search("feta")
    assert (hit.version, hit.summary) == ("2.0", "feta 2.0")

    def yank(conn: Connection, versions: Sequence[str]) -> None:
        for version in versions:
            release_id = conn.scalar(
                text("SELECT id FROM releases WHERE project_id = :p AND version = :v"),
                {"p": project_id, "v": version},
            )
            release_rows.set_yanked(conn, release_id, [], "broken")

    store.run(yank, ["2.0"])
    (hit,), _ = store.search("feta")
    assert (hit.version, hit.summary) == ("1.10", "feta 1.10")
    store.run(yank, ["1.0", "1.10", "1.9"])
    (hit,), _ = store.search("feta")
    assert hit.version == "2.0"
    assert hit == SearchHit(store.dev, "feta", "feta", "2.0", "feta 2.0", False)


# --- keeping up with writes ----------------------------------------------------------------------


def test_reupload_with_new_metadata_is_reindexed(store: Store) -> None:
    """A later file of the same release replaces its metadata: the old words stop matching."""
    store.release("halloumi", summary="grilling cheese")
    store.release("halloumi", summary="squeaky cheese")
    assert store.names("grilling") == []
    (hit,), _ = store.search("squeaky")
    assert hit.summary == "squeaky cheese"


def test_the_newest_release_is_indexed(store: Store) -> None:
    """A new version's text replaces the old; removing it brings the previous one back."""
    store.release("paneer", "1.0", summary="first words")
    project_id = store.release("paneer", "2.0", summary="second words")
    assert store.names("first") == [] and store.names("second") == ["paneer"]
    newest = store.run(
        lambda conn: conn.scalar(
            text("SELECT max(id) FROM releases WHERE project_id = :p"), {"p": project_id}
        )
    )
    store.run(release_rows.delete_release_rows, [newest])
    assert store.names("first") == ["paneer"] and store.names("second") == []
    assert store.fts_rows() == 1


def test_deleting_an_older_release_keeps_the_project(store: Store) -> None:
    store.release("ricotta", "1.0", summary="old")
    project_id = store.release("ricotta", "2.0", summary="whey")
    oldest = store.run(
        lambda conn: conn.scalar(
            text("SELECT min(id) FROM releases WHERE project_id = :p"), {"p": project_id}
        )
    )
    store.run(release_rows.delete_release_rows, [oldest])
    assert store.names("whey") == ["ricotta"]


def test_release_and_project_removal(store: Store) -> None:
    """As the release service removes them: release rows, then the project once empty."""
    project_id = store.release("mozzarella", "1.0", summary="fresh")
    store.release("mozzarella", "1.1", summary="fresh")

    def remove(conn: Connection) -> None:
        ids = [row.id for row in conn.execute(text("SELECT id FROM releases"))]
        release_rows.delete_release_rows(conn, ids)
        assert release_rows.delete_project_if_empty(conn, project_id)

    store.run(remove)
    assert store.search("fresh") == ([], 0)
    assert store.fts_rows() == 0


def test_recursive_triggers_are_off_and_cascades_still_fire(store: Store) -> None:
    """SQLite fires the triggers of rows that a foreign-key cascade deletes, with the pragmas
    store/db.py sets (recursive_triggers stays off)."""
    assert store.run(lambda conn: conn.exec_driver_sql("PRAGMA recursive_triggers").scalar()) == 0
    assert store.run(lambda conn: conn.exec_driver_sql("PRAGMA foreign_keys").scalar()) == 1
    project_id = store.release("manchego", "1.0", summary="sheep")
    store.release("manchego", "2.0", summary="sheep")
    store.release("pecorino", summary="sheep")
    # Deleting the project row alone: its releases go by cascade, their triggers run.
    store.run(lambda conn: conn.execute(delete(projects).where(projects.c.id == project_id)))
    assert store.names("sheep") == ["pecorino"]
    assert store.run(lambda conn: conn.scalar(text("SELECT count(*) FROM releases"))) == 1
    assert store.fts_rows() == 1


@pytest.mark.parametrize("how", ["delete_index", "index row", "user row"])
def test_index_removal_cascades(store: Store, how: str) -> None:
    other = store.index("other")
    store.release("emmental", index_id=other, summary="holes")
    store.release("emmental", summary="holes")
    store.mirror("emmental-tools", index_id=store.pypi)
    mirror = store.index("mirror2", "mirror")
    store.mirror("holey", index_id=mirror)
    assert store.fts_rows() == 4

    def remove(conn: Connection) -> None:
        if how == "delete_index":
            accounts.delete_index(conn, other)
            accounts.delete_index(conn, mirror)
        elif how == "index row":  # the foreign key does it all
            conn.execute(delete(indexes).where(indexes.c.id.in_([other, mirror])))
        else:  # user -> indexes -> projects -> releases, all by cascade
            conn.execute(delete(users).where(users.c.id == store.owner))

    store.run(remove)
    if how == "user row":
        assert store.fts_rows() == 0
        return
    assert [(hit.index_id, hit.project) for hit in store.search("holes")[0]] == [
        (store.dev, "emmental")
    ]
    assert store.names("holey") == []
    assert store.fts_rows() == 2


def test_invalid_json_metadata_is_skipped_not_fatal(store: Store) -> None:
    """json.dumps writes NaN, which SQLite's JSON rejects: the write still succeeds."""
    store.release("nanchego", summary=float("nan"))
    assert store.names("nanchego") == []
    store.release("nanchego", "2.0", summary="valid again")
    assert store.names("nanchego") == ["nanchego"]


# --- mirror names --------------------------------------------------------------------------------


def test_mirror_names_are_searchable_while_found(store: Store) -> None:
    store.mirror("Django-Cheese")
    store.mirror("never-existed", found=False)  # upstream's 404: not a name to offer
    (hit,), total = store.search("django")
    assert total == 1
    assert hit == SearchHit(store.pypi, "django-cheese", "Django-Cheese", None, None, True)
    assert store.names("never") == []

    store.mirror("Django-Cheese", found=False)  # gone upstream
    assert store.names("django") == []
    store.mirror("Django-Cheese")  # back
    assert store.names("django") == ["django-cheese"]
    store.mirror("Django_Cheese")  # upstream renamed its display name
    (hit,), _ = store.search("cheese")
    assert hit.display_name == "Django_Cheese"
    assert store.fts_rows() == 1


def test_unchanged_mirror_refresh_leaves_the_index_alone(store: Store) -> None:
    """A refresh rewrites the project row every time; the trigger acts only on a change."""
    store.mirror("gruyere")

    def changes_of_refresh(display_name: str) -> int:
        def refresh(conn: Connection) -> int:
            before = int(conn.scalar(text("SELECT total_changes()")) or 0)
            project_rows.save_mirror_page(
                conn, store.pypi, "gruyere", display_name, [], time.time(), *[None] * 4
            )
            return int(conn.scalar(text("SELECT total_changes()")) or 0) - before

        return int(store.run(refresh))

    assert changes_of_refresh("gruyere") == 1  # the projects row only
    assert changes_of_refresh("Gruyere") > 1  # the index row too
    assert [hit.display_name for hit in store.search("gruyere")[0]] == ["Gruyere"]


def test_a_stage_project_without_releases_is_not_a_mirror_name(store: Store) -> None:
    store.run(project_rows.ensure_stage_project, store.dev, "bare", "bare")
    assert store.names("bare") == []


def test_mirror_names_match_by_name_only(store: Store) -> None:
    """A stage release and a mirror name of the same project are two hits."""
    store.mirror("taleggio")
    store.release("taleggio", summary="washed rind")
    hits, total = store.search("taleggio")
    assert total == 2
    assert {(hit.index_id, hit.mirror, hit.version) for hit in hits} == {
        (store.pypi, True, None),
        (store.dev, False, "1.0"),
    }
    assert store.names("washed") == ["taleggio"]
    assert [hit.mirror for hit in store.search("washed")[0]] == [False]


def test_index_ids_restrict_the_search(store: Store) -> None:
    other = store.index("other")
    store.release("comte", summary="nutty")
    store.release("comte", index_id=other, summary="nutty")
    store.mirror("comte")
    found = {hit.index_id for hit in store.search("comte")[0]}
    assert found == {store.dev, other, store.pypi}
    assert {hit.index_id for hit in store.search("comte", [other])[0]} == {other}
    assert {hit.index_id for hit in store.search("comte", [other, store.pypi])[0]} == {
        other,
        store.pypi,
    }
    assert store.search("comte", []) == ([], 0)
    assert store.search("comte", [other], 10, 5) == ([], 1)  # past the end: total still right


def test_other_dialects_say_search_is_missing() -> None:
    """SQLite and PostgreSQL search (tests/integration/test_postgres.py); others say so."""

    class Dialect:
        name = "mysql"

    class FakeConnection:
        dialect = Dialect()

    with pytest.raises(NotImplementedError, match="not implemented for mysql"):
        search_projects(FakeConnection(), "cheese", None, 10, 0)  # type: ignore[arg-type]


# --- stores that existed before search -----------------------------------------------------------


def test_migration_backfills_existing_rows(tmp_path: Path) -> None:
    """A store at 0003 with releases and mirror names is searchable after the upgrade."""
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = engine_for(url, write=True)
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
    now = time.time()
    with engine.begin() as conn:
        # The users table as 0003 had it (no uid yet: that came with 0005).
        owner = conn.execute(
            text("INSERT INTO users (name, pwhash, created) VALUES ('root', 'x', :now)"),
            {"now": now},
        ).lastrowid
        stage = accounts.create_index(conn, owner, "dev", "stage", {})
        mirror = accounts.create_index(conn, owner, "pypi", "mirror", {})
        rows = [
            (stage, "old-brie", True),
            (mirror, "seen-upstream", True),
            (mirror, "not-upstream", False),
        ]
        ids = {}
        for index_id, name, found in rows:
            ids[name] = conn.execute(
                insert(projects).values(
                    index_id=index_id, name=name, display_name=name, created=now, found=found
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        for version, summary in (("1.0", "first"), ("1.1", "creamy old brie")):
            conn.execute(
                insert(releases).values(
                    project_id=ids["old-brie"],
                    version=version,
                    canonical_version=version,
                    metadata={"name": "old-brie", "summary": summary, "keywords": ["ripe"]},
                    created=now,
                )
            )
    engine.dispose()
    migrate(url)
    store = Store(url, populate=False)
    try:
        assert store.names("creamy ripe") == ["old-brie"]
        assert store.names("first") == []  # the newest release only
        assert [(h.project, h.mirror) for h in store.search("seen")[0]] == [("seen-upstream", True)]
        assert store.names("upstream") == ["seen-upstream"]
        assert store.fts_rows() == 2
        # ... and the triggers work from then on.
        store.run(
            lambda conn: conn.execute(
                update(projects).where(projects.c.name == "not-upstream").values(found=True)
            )
        )
        assert sorted(store.names("upstream")) == ["not-upstream", "seen-upstream"]
    finally:
        store.engine.dispose()


@dataclass
class _Source:
    """A dump source (ops/dump/importer.py's DumpSource) of records held in memory."""

    items: list[dict[str, Any]]
    name: str = "memory"
    serial: int = 7
    blobs: dict[str, Path] = field(default_factory=dict)

    def verify(self) -> None:
        pass

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for number, record in enumerate(self.items, 1):
            yield f"record {number}", record

    def blob_file(self, sha256: str) -> Path:
        return self.blobs[sha256]


ARGON2_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$c29tZWhhc2hzb21laGFzaA"


def test_init_and_import_leave_a_searchable_store(tmp_path: Path) -> None:
    """``init`` creates the (empty) search table; ``import`` fills it through the triggers."""
    fresh = tmp_path / "fresh"
    init_datadir(fresh, "secret", mirror_url="http://127.0.0.1:1/simple/")
    engine = engine_for(f"sqlite:///{fresh / 'cheeseboard.sqlite'}")
    try:
        with engine.connect() as conn:
            assert search_projects(conn, "anything", None, 10, 0) == ([], 0)
    finally:
        engine.dispose()

    metadata = {"name": "Imported.Cheese", "version": "3.0", "summary": "from a dump"}
    source = _Source(
        [
            {"kind": "user", "name": "root", "pwhash": ARGON2_HASH},
            {"kind": "index", "name": "root/pypi", "type": "mirror", "config": {}},
            {"kind": "index", "name": "root/dev", "type": "stage", "config": {}},
            {"kind": "project", "index": "root/pypi", "name": "seen", "display_name": "Seen",
             "found": True},
            {"kind": "project", "index": "root/dev", "name": "imported-cheese",
             "display_name": "Imported.Cheese", "found": True},
            {"kind": "release", "index": "root/dev", "project": "imported-cheese",
             "version": "3.0", "canonical_version": "3", "metadata": metadata},
        ]
    )  # fmt: skip
    imported = tmp_path / "imported"
    import_dump(source, imported)
    engine = engine_for(f"sqlite:///{imported / 'cheeseboard.sqlite'}")
    try:
        with engine.connect() as conn:
            hits, total = search_projects(conn, "dump", None, 10, 0)
            assert total == 1
            assert (hits[0].project, hits[0].version) == ("imported-cheese", "3.0")
            hits, _ = search_projects(conn, "seen", None, 10, 0)
            assert [(hit.project, hit.mirror) for hit in hits] == [("seen", True)]
    finally:
        engine.dispose()


# --- the service ---------------------------------------------------------------------------------


@pytest.fixture
async def service(store: Store) -> Any:
    db = Database(store.url)
    registry = IndexRegistry(db)
    await registry.load()
    yield SearchService(db, registry), registry
    await db.close()


async def test_service_pages_and_names_the_index(store: Store, service: Any) -> None:
    for number in range(45):
        store.release(f"tomme-{number:02}", summary="tomme")
    store.mirror("tomme-mirrored")
    search, _ = service
    pages = [await search.search("tomme", page=number, per_page=20) for number in (1, 2, 3)]
    assert all(isinstance(page, SearchPage) for page in pages)
    assert [(p.total, p.pages, p.page, p.per_page) for p in pages] == [
        (46, 3, 1, 20),
        (46, 3, 2, 20),
        (46, 3, 3, 20),
    ]
    assert [(p.has_prev, p.has_next, len(p.hits)) for p in pages] == [
        (False, True, 20),
        (True, True, 20),
        (True, False, 6),
    ]
    named = {r.hit.project: r.index_fullname for page in pages for r in page.hits}
    assert len(named) == 46
    assert named.pop("tomme-mirrored") == "alice/pypi"
    assert set(named.values()) == {"alice/dev"}
    beyond = await search.search("tomme", page=9, per_page=20)
    assert (beyond.hits, beyond.total, beyond.page, beyond.has_next) == ([], 46, 9, False)


async def test_service_clamps_and_validates(store: Store, service: Any) -> None:
    store.release("tomme")
    search, _ = service
    page = await search.search("tomme", page=-3, per_page=0)
    assert (page.page, page.per_page, len(page.hits)) == (1, 1, 1)
    page = await search.search("tomme", per_page=10_000)
    assert page.per_page == 100
    empty = await search.search("   ")
    assert (empty.hits, empty.total, empty.pages, empty.has_next) == ([], 0, 0, False)
    assert (await search.search("x" * 200)).total == 0
    with pytest.raises(BadRequest, match="at most 200"):
        await search.search("x" * 201)


async def test_service_index_follows_its_resolution_order(store: Store, service: Any) -> None:
    """An index sees its own projects, its bases' and (last) its mirrors', not its siblings'."""
    search, registry = service

    def make(conn: Connection) -> dict[str, int]:
        made = {}
        for name, bases in (("base", ["alice/pypi"]), ("child", ["alice/base"]), ("sib", [])):
            config = {"type": "stage", "bases": bases}
            made[name] = accounts.create_index(conn, store.owner, name, "stage", config)
        return made

    made = store.run(make)
    await registry.load()
    store.release("cheese-child", index_id=made["child"])
    store.release("cheese-base", index_id=made["base"])
    store.release("cheese-sibling", index_id=made["sib"])
    store.mirror("cheese-mirror")
    child = registry.by_name("alice/child")
    found = await search.search("cheese", index=child)
    assert sorted((r.index_fullname, r.hit.project) for r in found.hits) == [
        ("alice/base", "cheese-base"),
        ("alice/child", "cheese-child"),
        ("alice/pypi", "cheese-mirror"),
    ]
    sibling = await search.search("cheese", index=registry.by_name("alice/sib"))
    assert [r.hit.project for r in sibling.hits] == ["cheese-sibling"]
    everywhere = await search.search("cheese")
    assert everywhere.total == 4


async def test_service_searches_the_indexes_it_knows(store: Store, service: Any) -> None:
    """The registry is what the service knows: an index it has not loaded yet is not searched
    (its hits could not be named), and the total agrees with the hits."""
    search, registry = service
    store.release("cheese-known")
    unknown = store.index("unknown")
    store.release("cheese-unknown", index_id=unknown)
    page = await search.search("cheese")
    assert ([r.hit.project for r in page.hits], page.total) == (["cheese-known"], 1)
    await registry.load()
    assert (await search.search("cheese")).total == 2
