"""Project search: stage projects' metadata and the mirror names seen so far.

On SQLite the index lives in the database (migration 0004: an FTS5 table with a row per project,
kept current by triggers); PostgreSQL builds the same documents at query time. Either way every
write path updates it in its own transaction and a search reads one consistent snapshot.
Functions take the connection to use, like store/project_rows.py, and dispatch on its dialect.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter

from cheeseboard.core.distfiles import version_sort_key
from cheeseboard.store.schema import releases

# Letters and digits; everything else separates terms, as "-", "_" and "." separate the words
# of a normalized project name. FTS5's unicode61 tokenizer splits the indexed text the same way.
_TERM = re.compile(r"[^\W_]+")
# A pasted paragraph is not a search: terms past this many are ignored, which bounds the cost.
MAX_TERMS = 16
# bm25 weights, one per search_fts column in order: name >> summary > keywords > classifiers >
# description. "name >>" is also enforced by the tiers of _SQLITE_QUERY.
_WEIGHTS = (20.0, 6.0, 3.0, 2.0, 1.0)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One project on one index that matches a query."""

    index_id: int
    project: str  # normalized
    display_name: str
    version: str | None  # highest non-yanked release, else highest; None for mirror names
    summary: str | None  # of that release
    mirror: bool


def search_terms(query: str) -> list[str]:
    """The lowercased terms of ``query``, in order (at most MAX_TERMS)."""
    return _TERM.findall(query.lower())[:MAX_TERMS]


def fts5_match(terms: Sequence[str]) -> str:
    """An FTS5 query requiring every term, each as a prefix.

    Each term is an FTS5 string ("..." with quotes doubled), so nothing in it is syntax:
    OR, NEAR, column filters and stars are just text. A trailing * outside the quotes makes it
    a prefix query, for search as you type.
    """
    return " AND ".join('"' + term.replace('"', '""') + '"*' for term in terms)


def search_projects(
    conn: Connection, query: str, index_ids: Sequence[int] | None, limit: int, offset: int
) -> tuple[list[SearchHit], int]:
    """A page of the projects matching every term of ``query`` (as prefixes), best first, and
    how many projects match in all; ``index_ids`` None searches every index.

    Order: the exact normalized name, then names that start with the query, then names that
    hold every term, then the rest; within each group by bm25 (name >> summary > keywords >
    classifiers > description), then by name. A stage project is matched on the metadata of
    its newest upload and matches once, however many releases it has; its hit shows the
    version and summary of its highest release that is not yanked. Mirror projects match by
    name only.
    """
    terms = search_terms(query)
    if not terms or limit <= 0 or (index_ids is not None and not index_ids):
        return [], 0
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return _search_postgresql(conn, terms, index_ids, limit, max(offset, 0))
    if dialect != "sqlite":  # settings accept SQLite and PostgreSQL URLs only
        raise NotImplementedError(f"project search is not implemented for {dialect}")
    return _search_sqlite(conn, terms, index_ids, limit, max(offset, 0))


# One FTS5 scan finds the matching projects (a row per project, rowid = projects.id). They are
# ranked in tiers computed on the normalized name: 0 the name is the query, 1 it starts with it,
# 2 every term starts one of its words, 3 the rest; within a tier by bm25. The tiers keep a name
# match above text matches even when a long description dilutes bm25 (FTS5 normalizes by the
# length of the whole row, and weights multiply term frequencies, whose effect saturates).
_SQLITE_QUERY = """
WITH matched AS MATERIALIZED (
    SELECT rowid AS project_id, bm25(search_fts, {weights}) AS score
    FROM search_fts
    WHERE search_fts MATCH :match
),
ranked AS (
    SELECT
        projects.id AS project_id,
        projects.index_id,
        projects.name,
        projects.display_name,
        indexes.type = 'mirror' AS mirror,
        matched.score,
        CASE
            WHEN projects.name = :exact THEN 0
            WHEN substr(projects.name, 1, length(:exact)) = :exact THEN 1
            WHEN {all_in_name} THEN 2
            ELSE 3
        END AS tier
    FROM matched
    JOIN projects ON projects.id = matched.project_id
    JOIN indexes ON indexes.id = projects.index_id
    {where}
)
SELECT project_id, index_id, name, display_name, mirror
FROM ranked
ORDER BY tier, score, name, index_id
LIMIT :limit OFFSET :offset
"""

_SQLITE_COUNT = """
SELECT count(*)
FROM search_fts JOIN projects ON projects.id = search_fts.rowid
WHERE search_fts MATCH :match {also}
"""


def _search_sqlite(
    conn: Connection, terms: list[str], index_ids: Sequence[int] | None, limit: int, offset: int
) -> tuple[list[SearchHit], int]:
    distinct = list(dict.fromkeys(terms))
    params: dict[str, Any] = {
        "match": fts5_match(distinct),
        "exact": "-".join(terms),
        "limit": limit,
        "offset": offset,
    }
    # Term i starts a word of the name: the name's words are separated by "-" once normalized.
    word_starts = []
    for number, term in enumerate(distinct):
        params[f"term{number}"] = "-" + term
        word_starts.append(f"instr('-' || projects.name, :term{number}) > 0")
    where = ""
    binds: list[BindParameter[Any]] = []
    if index_ids is not None:
        params["index_ids"] = list(index_ids)
        binds.append(bindparam("index_ids", expanding=True))
        where = "WHERE projects.index_id IN :index_ids"
    sql = _SQLITE_QUERY.format(
        weights=", ".join(str(w) for w in _WEIGHTS),
        all_in_name=" AND ".join(word_starts),
        where=where,
    )
    rows = conn.execute(text(sql).bindparams(*binds), params).all()
    if offset == 0 and len(rows) < limit:
        total = len(rows)  # all of them fit on the first page
    else:  # a separate count costs ~1 ms where count(*) OVER () cost ~6 ms at 10,000 matches
        also = "AND projects.index_id IN :index_ids" if index_ids is not None else ""
        count = text(_SQLITE_COUNT.format(also=also)).bindparams(*binds)
        total = int(conn.scalar(count, params) or 0)
    return _hits(conn, rows), total


# PostgreSQL: the same documents and tiers as SQLite's search_fts, built at query time from the
# newest release of each project (no search table yet, so no triggers to keep in step; a full
# scan; not yet measured at scale). The 'simple' configuration lowercases
# and does not stem, like unicode61; unlike it, it keeps accents. Weights A..D stand for name >
# summary > keywords and classifiers > description; ts_rank's array lists them as {D,C,B,A}.
_PG_DOCS = """
WITH newest AS (
    SELECT DISTINCT ON (project_id) project_id, metadata
    FROM releases
    ORDER BY project_id, id DESC
),
docs AS (
    SELECT
        projects.id AS project_id,
        projects.index_id,
        projects.name,
        projects.display_name,
        indexes.type = 'mirror' AS mirror,
        CASE WHEN indexes.type = 'mirror' THEN
            setweight(to_tsvector('simple', translate(projects.name, '-_.', '   ')), 'A')
        ELSE
            setweight(to_tsvector('simple', translate(
                coalesce(newest.metadata->>'name', projects.name), '-_.', '   ')), 'A')
            || setweight(to_tsvector('simple', coalesce(newest.metadata->>'summary', '')), 'B')
            || setweight(to_tsvector('simple', {keywords} || ' ' || {classifiers}), 'C')
            || setweight(to_tsvector('simple', coalesce(newest.metadata->>'description', '')), 'D')
        END AS doc
    FROM projects
    JOIN indexes ON indexes.id = projects.index_id
    LEFT JOIN newest ON newest.project_id = projects.id
    WHERE (
        (indexes.type = 'mirror' AND projects.found)
        OR (indexes.type <> 'mirror' AND newest.project_id IS NOT NULL)
    ) {also}
)
"""

_PG_LIST = """
SELECT coalesce(CASE json_typeof(newest.metadata->'{key}')
    WHEN 'array' THEN (
        SELECT string_agg(value, ' ') FROM json_array_elements_text(newest.metadata->'{key}')
    )
    WHEN 'string' THEN newest.metadata->>'{key}'
END, '')
"""

_PG_QUERY = """
SELECT project_id, index_id, name, display_name, mirror,
    CASE
        WHEN name = :exact THEN 0
        WHEN left(name, length(:exact)) = :exact THEN 1
        WHEN {all_in_name} THEN 2
        ELSE 3
    END AS tier
FROM docs
WHERE doc @@ to_tsquery('simple', :match)
ORDER BY tier, ts_rank('{{0.1, 0.3, 0.6, 1.0}}'::float4[], doc, to_tsquery('simple', :match)) DESC,
    name, index_id
LIMIT :limit OFFSET :offset
"""


_PG_COUNT = "SELECT count(*) FROM docs WHERE doc @@ to_tsquery('simple', :match)"


def _search_postgresql(
    conn: Connection, terms: list[str], index_ids: Sequence[int] | None, limit: int, offset: int
) -> tuple[list[SearchHit], int]:
    distinct = list(dict.fromkeys(terms))
    # Terms are letters and digits only (search_terms), quoted all the same: no tsquery syntax.
    params: dict[str, Any] = {
        "match": " & ".join(f"'{term}':*" for term in distinct),
        "exact": "-".join(terms),
        "limit": limit,
        "offset": offset,
    }
    word_starts = []
    for number, term in enumerate(distinct):
        params[f"term{number}"] = "-" + term
        word_starts.append(f"strpos('-' || name, :term{number}) > 0")
    binds: list[BindParameter[Any]] = []
    also = ""
    if index_ids is not None:
        params["index_ids"] = list(index_ids)
        binds.append(bindparam("index_ids", expanding=True))
        also = "AND projects.index_id IN :index_ids"
    docs = _PG_DOCS.format(
        keywords="(" + _PG_LIST.format(key="keywords") + ")",
        classifiers="(" + _PG_LIST.format(key="classifiers") + ")",
        also=also,
    )
    query = docs + _PG_QUERY.format(all_in_name=" AND ".join(word_starts))
    rows = conn.execute(text(query).bindparams(*binds), params).all()
    if offset == 0 and len(rows) < limit:
        total = len(rows)
    else:
        count = text(docs + _PG_COUNT).bindparams(*binds)
        total = int(conn.scalar(count, params) or 0)
    return _hits(conn, rows), total


def _hits(conn: Connection, rows: Sequence[Any]) -> list[SearchHit]:
    """Ranked rows (project_id, index_id, name, display_name, mirror) as hits with versions."""
    versions = best_versions(conn, [row.project_id for row in rows if not row.mirror])
    hits = []
    for row in rows:
        version, summary = versions.get(row.project_id, (None, None))
        hits.append(
            SearchHit(
                index_id=int(row.index_id),
                project=str(row.name),
                display_name=str(row.display_name),
                version=version,
                summary=summary,
                mirror=bool(row.mirror),
            )
        )
    return hits


def best_versions(
    conn: Connection, project_ids: Sequence[int]
) -> dict[int, tuple[str, str | None]]:
    """Per project: the highest non-yanked release (PEP 440 order; the highest yanked one when
    all are yanked) and its summary. Versions are ordered here, not in SQL, which cannot."""
    if not project_ids:
        return {}
    rows = conn.execute(
        select(releases.c.id, releases.c.project_id, releases.c.version, releases.c.yanked).where(
            releases.c.project_id.in_(project_ids)
        )
    )
    found: dict[int, list[tuple[int, str, bool]]] = {}
    for release_id, project_id, version, yanked in rows:
        found.setdefault(int(project_id), []).append(
            (int(release_id), str(version), yanked is None)
        )
    chosen: dict[int, tuple[int, str]] = {}
    for project_id, candidates in found.items():
        pool = [c for c in candidates if c[2]] or candidates
        release_id, version, _ = max(pool, key=lambda c: version_sort_key(c[1]))
        chosen[project_id] = (release_id, version)
    # Only the chosen releases' summaries, and none from metadata SQLite cannot parse.
    if conn.dialect.name == "sqlite":
        valid = func.json_valid(releases.c.metadata)
        summary: Any = case(
            (valid, func.json_extract(releases.c.metadata, "$.summary")), else_=None
        )
    else:  # PostgreSQL's json type only holds valid JSON
        summary = releases.c.metadata["summary"].as_string()
    summary_rows = conn.execute(
        select(releases.c.id, summary).where(
            releases.c.id.in_([release_id for release_id, _ in chosen.values()])
        )
    )
    summaries = {int(release_id): value for release_id, value in summary_rows}
    best: dict[int, tuple[str, str | None]] = {}
    for project_id, (release_id, version) in chosen.items():
        text_ = summaries.get(release_id)
        best[project_id] = (version, text_ if isinstance(text_, str) else None)
    return best
