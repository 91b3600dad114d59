"""A run that changed nothing, recorded with the sqlite3 module alone.

The cron shortcut (syndicate.runs.shortcut) must record its run as every run is recorded,
without the ~0.13 s of importing SQLAlchemy. This is the one place outside store.py that
writes the state database: the `runs` row exactly as `Store.start_run` and `finish_run`
write it (times as SQLAlchemy stores them on SQLite: UTC wall time with microseconds), in
one transaction that first checks the database is the one the shortcut expects. Anything
unexpected (another schema version, another run since, mail waiting in the outbox, any
SQLite error) answers None, and the caller takes the full path, which says what is wrong.
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from syndicate.state.version import HEAD, POST_KEYS_FLAG

_PENDING_MAIL = ("queued", "sending", "deferred")


def record_unchanged_run(
    db_path: Path, kind: str, now: datetime, last_run_id: int, check_outbox: bool
) -> int | None:
    """Record a finished run that published, updated and withdrew nothing and wrote no
    file, if the latest run in the database is still `last_run_id` (nobody ran since, and
    the database was not replaced) and, with `check_outbox`, no message is queued, in
    doubt or deferred. -> the new run's id, else None (nothing written)."""
    if not db_path.is_file():
        return None  # never create a database here: the full path does that
    stamp = now.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    try:
        db = sqlite3.connect(db_path, timeout=10, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")
        if not _expected(db, last_run_id, check_outbox):
            db.execute("ROLLBACK")
            return None
        db.execute(
            "UPDATE runs SET outcome = 'interrupted', finished_at = ? WHERE outcome = 'running'",
            (stamp,),
        )
        cursor = db.execute(
            "INSERT INTO runs (kind, started_at, finished_at, outcome, published, updated, "
            "withdrawn, errors, files_written) VALUES (?, ?, ?, 'ok', 0, 0, 0, 0, 0)",
            (kind, stamp, stamp),
        )
        db.execute("COMMIT")
        return cursor.lastrowid
    except sqlite3.Error:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        return None
    finally:
        db.close()


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
