"""The cron path's runs, recorded with the sqlite3 module alone.

The cron shortcut (syndicate.runs.shortcut) and the run of a few changed posts
(syndicate.runs.delta) must record their run as every run is recorded, without the
~0.14 s of importing SQLAlchemy. This is the one place outside the store that writes the
state database: the `runs` row exactly as `Store.start_run` and `finish_run` write it,
and the `posts` rows with their lists exactly as `save_post_states` writes them (times as
SQLAlchemy stores them on SQLite: UTC wall time with microseconds; tests compare the two),
in one transaction that first checks the database is the one the cron path expects.
Anything unexpected (another schema version, another run since, mail waiting in the
outbox, any SQLite error) answers None, and the caller takes the full path, which says
what is wrong.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from syndicate.config import sqlite_uri
from syndicate.models import PostState
from syndicate.state.version import HEAD, POST_KEYS_FLAG

_PENDING_MAIL = ("queued", "sending", "deferred")


def record_unchanged_run(
    db_path: Path, kind: str, now: datetime, last_run_id: int, check_outbox: bool
) -> int | None:
    """Record a finished run that published, updated and withdrew nothing and wrote no
    file, if the latest run in the database is still `last_run_id` (nobody ran since, and
    the database was not replaced) and, with `check_outbox`, no message is queued, in
    doubt or deferred. -> the new run's id, else None (nothing written)."""
    return record_run(db_path, kind, now, last_run_id, check_outbox, RunCounts())


@dataclass(frozen=True, slots=True)
class RunCounts:
    """What a run did, as its `runs` row says it."""

    published: int = 0
    updated: int = 0
    withdrawn: int = 0
    files_written: int = 0
    states: tuple[PostState, ...] = ()  # the posts rows to write with it


def record_run(
    db_path: Path, kind: str, now: datetime, last_run_id: int, check_outbox: bool, counts: RunCounts
) -> int | None:
    """`record_unchanged_run` for a run that did `counts` (with its posts rows)."""
    if not db_path.is_file():
        return None  # never create a database here: the full path does that
    stamp = _stamp(now)
    try:
        db = sqlite3.connect(db_path, timeout=10, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("BEGIN IMMEDIATE")
        if not _expected(db, last_run_id, check_outbox):
            db.execute("ROLLBACK")
            return None
        db.execute(
            "UPDATE runs SET outcome = 'interrupted', finished_at = ? WHERE outcome = 'running'",
            (stamp,),
        )
        save_states(db, counts.states)
        cursor = db.execute(
            "INSERT INTO runs (kind, started_at, finished_at, outcome, published, updated, "
            "withdrawn, errors, files_written) VALUES (?, ?, ?, 'ok', ?, ?, ?, 0, ?)",
            (
                kind,
                stamp,
                stamp,
                counts.published,
                counts.updated,
                counts.withdrawn,
                counts.files_written,
            ),
        )
        db.execute("COMMIT")
        return cursor.lastrowid
    except sqlite3.Error:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        return None
    finally:
        db.close()


def expected_state(db_path: Path, last_run_id: int, check_outbox: bool) -> bool:
    """Would `record_run` write now? (Read only: the cron path asks before its work.)"""
    try:
        db = sqlite3.connect(sqlite_uri(db_path, "ro"), uri=True, timeout=10)
    except sqlite3.Error:
        return False
    try:
        return _expected(db, last_run_id, check_outbox)
    except sqlite3.Error:
        return False
    finally:
        db.close()


# (table, item column) of a post's lists, in PostState's field order (schema.py's).
_LISTS = (("post_tags", "tag"), ("post_categories", "category"))
_STATE_COLUMNS = (
    "source, post_id, url, title, content_hash, due_at, first_published_at, updated_at, "
    "withdrawn_at, status"
)


def known_states(
    db_path: Path, sources: Sequence[str], post_ids: Sequence[str]
) -> dict[str, PostState] | None:
    """The posts rows of these keys and of these post ids, by key (None: unreadable)."""
    try:
        db = sqlite3.connect(sqlite_uri(db_path, "ro"), uri=True, timeout=10)
    except sqlite3.Error:
        return None
    try:
        rows = db.execute(
            f"SELECT {_STATE_COLUMNS} FROM posts WHERE source IN ({_marks(sources)}) "  # noqa: S608
            f"OR post_id IN ({_marks(post_ids)})",
            (*sources, *post_ids),
        ).fetchall()
        lists = [_lists(db, table, item, [row[0] for row in rows]) for table, item in _LISTS]
    except sqlite3.Error:
        return None
    finally:
        db.close()
    return {
        row[0]: PostState(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            _moment(row[5]),
            _time(row[6]),
            _time(row[7]),
            _time(row[8]),
            row[9],
            tuple(lists[0].get(row[0], ())),
            tuple(lists[1].get(row[0], ())),
        )
        for row in rows
    }


def _lists(
    db: sqlite3.Connection, table: str, item: str, sources: list[str]
) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    query = (
        f"SELECT source, {item} FROM {table} WHERE source IN ({_marks(sources)}) "  # noqa: S608
        "ORDER BY source, position"
    )
    for source, value in db.execute(query, sources):
        found.setdefault(source, []).append(value)
    return found


def save_states(db: sqlite3.Connection, states: Iterable[PostState]) -> None:
    """Insert or replace these rows and their lists (delete then insert), inside the
    caller's transaction: `save_post_states` on SQLite, with plain sqlite3. In key order:
    each B-tree then grows at its end (10,000 posts: 0.24 -> 0.19 s, at the end of a run,
    when nothing else runs)."""
    states = sorted(states, key=_source)
    if not states:
        return
    for start in range(0, len(states), 500):  # an IN (...) of at most 500 values
        sources = [s.source for s in states[start : start + 500]]
        for table in (*(table for table, _item in _LISTS), "posts"):
            db.execute(f"DELETE FROM {table} WHERE source IN ({_marks(sources)})", sources)  # noqa: S608
    db.executemany(
        f"INSERT INTO posts ({_STATE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        [
            (
                s.source,
                s.post_id,
                s.url,
                s.title,
                s.content_hash,
                _stamp(s.due_at),
                _stamp(s.first_published_at),
                _stamp(s.updated_at),
                _stamp(s.withdrawn_at),
                s.status,
            )
            for s in states
        ],
    )
    for (table, item), lists in zip(
        _LISTS, ([s.tags for s in states], [s.categories for s in states]), strict=True
    ):
        db.executemany(
            f"INSERT INTO {table} (source, position, {item}) VALUES (?, ?, ?)",  # noqa: S608
            [
                (s.source, n, value)
                for s, values in zip(states, lists, strict=True)
                for n, value in enumerate(values)
            ],
        )


def _source(state: PostState) -> str:
    return state.source


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def _stamp(moment: datetime | None) -> str | None:
    """A time as SQLAlchemy's DateTime stores it on SQLite: naive UTC, microseconds."""
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _time(text: str | None) -> datetime | None:
    return None if text is None else _moment(text)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _expected(db: sqlite3.Connection, last_run_id: int, check_outbox: bool) -> bool:
    # This release's schema (a database an older or later release migrated is left to the
    # full path), its post keys already migrated.
    revision = db.execute("SELECT version_num FROM alembic_version").fetchone()
    meta = dict(db.execute("SELECT key, value FROM syndicate_meta").fetchall())
    flag, migrated = POST_KEYS_FLAG
    if revision != (HEAD,) or meta.get(flag) != migrated:
        return False
    (latest,) = db.execute("SELECT max(id) FROM runs").fetchone()
    if latest != last_run_id:
        return False
    if check_outbox:
        marks = ",".join("?" * len(_PENDING_MAIL))
        waiting = db.execute(
            f"SELECT 1 FROM outbox WHERE status IN ({marks}) LIMIT 1",  # noqa: S608 (marks only)
            _PENDING_MAIL,
        ).fetchone()
        if waiting is not None:
            return False
    return True
