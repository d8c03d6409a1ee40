"""Full-text search over stage projects and the mirror project names seen (SQLite FTS5).

``search_fts`` has one row per project, its rowid the project's id, so a search costs what the
number of projects costs however many releases they have, and yields each project once:

- a stage project: name, summary, keywords, classifiers and description from the metadata of
  its newest release (the last uploaded: what the project says about itself now);
- a project of a mirror index while ``found``: its name only. Only the names the server has
  seen are indexed, never upstream's whole list.

Triggers keep the table in step with every write, whatever code path makes it (uploads,
removals, imports, mirror refreshes), so no service has to remember search. Foreign-key
cascades (user -> indexes -> projects -> releases) fire them too: SQLite runs the triggers of
rows a cascade deletes although ``recursive_triggers`` is off, as store/db.py connects
(tests/unit/store/test_search.py checks it).

The triggers on ``releases`` read ``releases``; those on ``projects`` read ``indexes.type``.
A later migration that rebuilds one of these tables (Alembic batch mode copies, drops and
renames it) loses the triggers of the dropped table, and SQLite refuses the rename while a
trigger names a table that is missing: drop these triggers first, then create them again (as
``_TRIGGERS`` below does) and repeat the backfill.

On PostgreSQL this revision does nothing: store/search.py builds the same documents there at
query time (tsvector), so no table or trigger needs keeping in step.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Columns in bm25 weight order (store/search.py passes one weight per column, in this order).
# unicode61 splits words at anything but letters and digits ("-", "_", "." included, as name
# normalization does) and folds case and accents. The prefix indexes serve the first letters of
# search-as-you-type: without them a 2-letter prefix merges the lists of every word it starts
# (10,000 projects: "lo"* 30 ms -> 13 ms, for an index 2.3 times as large).
_CREATE = """
CREATE VIRTUAL TABLE search_fts USING fts5(
    name, summary, keywords, classifiers, description,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
)
"""

# The SQL is spelled out in full, as a migration is frozen text. Each release trigger indexes
# the project anew from its newest release (the highest id: releases are never given ids, so
# the last inserted), or removes it when no release is left. Keywords and classifiers are lists
# (core metadata) or strings (devpi, old uploads): json_each yields a list's elements or the
# string itself, decoded (json_extract returns a list as JSON text with its "\u00e9" escapes).
# Metadata that is not valid JSON (json.dumps writes NaN, which SQLite rejects) is skipped
# rather than failing the write that stores it.
_TRIGGERS = (
    """
    CREATE TRIGGER search_release_insert AFTER INSERT ON releases BEGIN
        DELETE FROM search_fts WHERE rowid = NEW.project_id;
        INSERT INTO search_fts(rowid, name, summary, keywords, classifiers, description)
        SELECT
            releases.project_id,
            json_extract(releases.metadata, '$.name'),
            json_extract(releases.metadata, '$.summary'),
            (SELECT group_concat(value, ' ') FROM json_each(releases.metadata, '$.keywords')),
            (SELECT group_concat(value, ' ') FROM json_each(releases.metadata, '$.classifiers')),
            json_extract(releases.metadata, '$.description')
        FROM releases
        WHERE releases.project_id = NEW.project_id AND json_valid(releases.metadata)
        ORDER BY releases.id DESC
        LIMIT 1;
    END
    """,
    """
    CREATE TRIGGER search_release_update AFTER UPDATE OF metadata, project_id ON releases BEGIN
        DELETE FROM search_fts WHERE rowid = OLD.project_id;
        INSERT INTO search_fts(rowid, name, summary, keywords, classifiers, description)
        SELECT
            releases.project_id,
            json_extract(releases.metadata, '$.name'),
            json_extract(releases.metadata, '$.summary'),
            (SELECT group_concat(value, ' ') FROM json_each(releases.metadata, '$.keywords')),
            (SELECT group_concat(value, ' ') FROM json_each(releases.metadata, '$.classifiers')),
            json_extract(releases.metadata, '$.description')
        FROM releases
        WHERE releases.project_id = OLD.project_id AND json_valid(releases.metadata)
        ORDER BY releases.id DESC
        LIMIT 1;
        DELETE FROM search_fts WHERE rowid = NEW.project_id;
        INSERT INTO search_fts(rowid, name, summary, keywords, classifiers, description)
        SELECT
            releases.project_id,
            json_extract(releases.metadata, '$.name'),
            json_extract(releases.metadata, '$.summary'),
            (SELECT group_concat(value, ' ') FROM json_each(releases.metadata, '$.keywords')),
            (SELECT group_concat(value, ' ') FROM json_each(releases.metadata, '$.classifiers')),
            json_extract(releases.metadata, '$.description')
        FROM releases
        WHERE releases.project_id = NEW.project_id AND json_valid(releases.metadata)
        ORDER BY releases.id DESC
        LIMIT 1;
    END
    """,
    # Only the newest release is indexed: deleting an older one changes nothing.
    """
    CREATE TRIGGER search_release_delete AFTER DELETE ON releases
    WHEN NOT EXISTS (
        SELECT 1 FROM releases WHERE releases.project_id = OLD.project_id AND releases.id > OLD.id
    )
    BEGIN
        DELETE FROM search_fts WHERE rowid = OLD.project_id;
        INSERT INTO search_fts(rowid, name, summary, keywords, classifiers, description)
        SELECT
            releases.project_id,
            json_extract(releases.metadata, '$.name'),
            json_extract(releases.metadata, '$.summary'),
            (SELECT group_concat(value, ' ') FROM json_each(releases.metadata, '$.keywords')),
            (SELECT group_concat(value, ' ') FROM json_each(releases.metadata, '$.classifiers')),
            json_extract(releases.metadata, '$.description')
        FROM releases
        WHERE releases.project_id = OLD.project_id AND json_valid(releases.metadata)
        ORDER BY releases.id DESC
        LIMIT 1;
    END
    """,
    """
    CREATE TRIGGER search_project_insert AFTER INSERT ON projects
    WHEN NEW.found AND (SELECT type FROM indexes WHERE indexes.id = NEW.index_id) = 'mirror'
    BEGIN
        INSERT INTO search_fts(rowid, name) VALUES (NEW.id, NEW.display_name);
    END
    """,
    # A mirror refresh writes found and display_name every time: act only when they change.
    """
    CREATE TRIGGER search_project_update AFTER UPDATE OF found, display_name ON projects
    WHEN (OLD.found IS NOT NEW.found OR OLD.display_name IS NOT NEW.display_name)
        AND (SELECT type FROM indexes WHERE indexes.id = NEW.index_id) = 'mirror'
    BEGIN
        DELETE FROM search_fts WHERE rowid = OLD.id;
        INSERT INTO search_fts(rowid, name) SELECT NEW.id, NEW.display_name WHERE NEW.found;
    END
    """,
    """
    CREATE TRIGGER search_project_delete AFTER DELETE ON projects BEGIN
        DELETE FROM search_fts WHERE rowid = OLD.id;
    END
    """,
)

_BACKFILL = (
    """
    INSERT INTO search_fts(rowid, name, summary, keywords, classifiers, description)
    SELECT
        releases.project_id,
        json_extract(releases.metadata, '$.name'),
        json_extract(releases.metadata, '$.summary'),
        (SELECT group_concat(value, ' ') FROM json_each(releases.metadata, '$.keywords')),
        (SELECT group_concat(value, ' ') FROM json_each(releases.metadata, '$.classifiers')),
        json_extract(releases.metadata, '$.description')
    FROM releases
    WHERE releases.id = (
        SELECT max(newest.id) FROM releases AS newest
        WHERE newest.project_id = releases.project_id AND json_valid(newest.metadata)
    )
    """,
    """
    INSERT INTO search_fts(rowid, name)
    SELECT projects.id, projects.display_name
    FROM projects JOIN indexes ON indexes.id = projects.index_id
    WHERE indexes.type = 'mirror' AND projects.found
    """,
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        # PostgreSQL full-text search comes with its own revision in a later issue.
        return
    op.execute(_CREATE)
    for statement in _TRIGGERS:
        op.execute(statement)
    for statement in _BACKFILL:
        op.execute(statement)
