"""Bringing a state database to this release's schema: Alembic's revisions in
migrations/versions/, run in one transaction that holds the database's write lock.

Two processes opening an old (or new, empty) database at once, a cron run beside the
daemon or `serve`, must not both migrate it: on PostgreSQL the transaction takes an
advisory lock (and DDL is transactional, so a killed upgrade leaves the old schema);
on SQLite it is a `BEGIN IMMEDIATE` transaction, which SQLite's Python driver would
otherwise not start before DDL. The second process waits, then finds the work done.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from syndicate.errors import StateError
from syndicate.state.schema import HEAD
from syndicate.state.store import schema_revision

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"  # the first release's schema, which had no alembic_version table
MIGRATION_LOCK = 0x73796E64_00000001  # pg_advisory_xact_lock key: "synd", 1


def upgrade(engine: Engine) -> None:
    """Migrate the database behind `engine` to HEAD (a new one from nothing)."""
    with _locked(engine) as conn:
        current = schema_revision(conn)
        if current == HEAD:
            return  # another process did it while we waited for the lock
        config = alembic_config(conn)
        if current is None:
            if _first_release_schema(conn):
                command.stamp(config, BASELINE)
        elif not _known(config, current):
            raise StateError(
                f"the state database is at schema revision {current}, newer than this "
                f"syndicate understands ({HEAD})",
                "upgrade syndicate, or point state.url at a new database",
            )
        command.upgrade(config, "head")


def downgrade(engine: Engine, revision: str) -> None:
    """Back to an earlier revision (for tests of the migrations themselves)."""
    with _locked(engine) as conn:
        command.downgrade(alembic_config(conn), revision)


def alembic_config(conn: Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def _known(config: AlembicConfig, revision: str) -> bool:
    return any(r.revision == revision for r in ScriptDirectory.from_config(config).walk_revisions())


def _first_release_schema(conn: Connection) -> bool:
    """A database made before Alembic: its tables, and schema_version 1 (the only one)."""
    inspector = sa.inspect(conn)
    if not inspector.has_table("posts"):
        return False
    if inspector.has_table("syndicate_meta"):
        meta = sa.table("syndicate_meta", sa.column("key"), sa.column("value"))
        version = conn.execute(
            sa.select(meta.c.value).where(meta.c.key == "schema_version")
        ).scalar()
        if version not in (None, "1"):
            raise StateError(
                f"the state database has schema version {version}, which no release of "
                "syndicate wrote without an alembic_version table",
                "point state.url at a new database, or restore a backup of this one",
            )
    return True


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that no other migrating process can share."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            yield conn
        return
    immediate = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    sa.event.listen(immediate, "connect", _driver_autocommit)
    sa.event.listen(immediate, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    try:
        with immediate.begin() as conn:
            yield conn
    finally:
        immediate.dispose()


def _driver_autocommit(dbapi_connection: object, _record: object) -> None:
    """Let our `BEGIN IMMEDIATE` be the transaction (SQLAlchemy's pysqlite recipe): the
    driver's own implicit BEGIN comes only before DML, so DDL would run outside it."""
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA busy_timeout=10000")  # wait for the other migrating process
    cursor.close()
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
