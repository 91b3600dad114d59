"""The state database: one connection pool, opened and migrated on first use.

SQLAlchemy Core, portable SQL only (SQLite by default; PostgreSQL by changing state.url).
Nothing in it is needed to rebuild the feeds from the posts; it records what happened so
a post is announced as new exactly once, and so the newsletter knows what is new. The
queries live beside it, one module per concern: posts.py, runs.py, subscribers.py,
digests.py, outbox.py (and status.py for `syndicate status`); the tables in schema.py.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from syndicate.config import sqlite_path
from syndicate.errors import StateError
from syndicate.state.schema import HEAD


def safe_url(url: str) -> str:
    """The database URL with its password masked, for messages and logs."""
    try:
        return str(sa.engine.make_url(url).render_as_string(hide_password=True))
    except sa.exc.ArgumentError:
        return "(an invalid database URL)"


_open_stores: weakref.WeakSet[Store] = weakref.WeakSet()  # every Store of this process


class Store:
    """The state database, created and migrated on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        path = sqlite_path(url)
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(url, future=True)
            if path is not None:
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            if schema_revision(self.engine) != HEAD:
                from syndicate.state.migrate import upgrade  # Alembic: only when needed

                upgrade(self.engine)
            _open_stores.add(self)
        except (SQLAlchemyError, OSError) as exc:
            raise StateError(
                f"cannot open the state database {safe_url(url)}: "
                f"{_short(exc).replace(url, safe_url(url))}",
                "check state.url in config.yaml and that its folder is writable",
            ) from None

    @property
    def shared(self) -> bool:
        """Can other processes, on other hosts, work on this database at once? PostgreSQL,
        yes: senders lease rows and the run lock is in the database (runs/lock.run_lock).
        SQLite is one host's, serialised by the run lock file beside it."""
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    def prepare_fork(self) -> bool:
        """Close our connections so a forked child opens its own. -> whether a child may
        use the database: for SQLite, only if no other Store of this process has it open
        (the web server's, in the daemon). SQLite's lock bookkeeping is per process and a
        child inherits it: its connections beside the parent's on the same file would not
        really hold their locks, and the parent closing the last of its own could
        checkpoint and delete the WAL under the child."""
        self.engine.dispose()
        url = self.engine.url
        if url.get_backend_name() != "sqlite":
            return True
        if url.database in (None, "", ":memory:"):
            return False
        return not any(
            other is not self and other.url == self.url and _has_connections(other.engine)
            for other in list(_open_stores)
        )


def schema_revision(engine: Engine | Connection) -> str | None:
    """The Alembic revision the database is at (None: no alembic_version table), read
    with one plain query so an up-to-date database never imports Alembic."""
    with _connected(engine) as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        version = sa.table("alembic_version", sa.column("version_num"))
        return conn.execute(sa.select(version.c.version_num)).scalar()


@contextmanager
def _connected(bind: Engine | Connection) -> Iterator[Connection]:
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.connect() as conn:
            yield conn


def to_utc(value: datetime | None) -> datetime | None:
    """Every time is stored in UTC: an aware instant on PostgreSQL (timestamptz), the UTC
    wall time on SQLite, which has no time zones (SQLAlchemy drops the tzinfo there)."""
    if value is None:
        return None
    return value.astimezone(UTC)


def aware_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def maybe_aware_utc(value: datetime | None) -> datetime | None:
    return aware_utc(value) if value else None


def chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    """Slices of a list, small enough for one `IN (...)` on every database."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _has_connections(engine: Engine) -> bool:
    pool = engine.pool
    if isinstance(pool, sa.pool.QueuePool):
        return pool.checkedin() + pool.checkedout() > 0
    return True  # another kind of pool: assume so


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (status) never block the run
    # NORMAL in WAL mode survives a killed process (the WAL is in the OS cache); only a power
    # cut may lose the last commits, and then in-doubt rows are resent (see delivery.py).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # A list row (a post's tag, a subscriber's topic) follows its owner's key and goes
    # with it, as on PostgreSQL; SQLite checks foreign keys only when asked.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200]
