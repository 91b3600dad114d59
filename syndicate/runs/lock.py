"""One run at a time across processes: a locked file beside the state database, or, for
a database several hosts share (PostgreSQL), a lock in the database itself.

A POSIX record lock (lockf), not flock: the kernel drops it when its process dies, however
it dies, so a lock left by a killed run is never stale; and unlike flock it is not shared
with forked children, so worker processes outliving a killed run cannot keep it held.
The holder's pid is written into the file so a waiting run can say who it waits for.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from syndicate.config import Config, sqlite_path
from syndicate.errors import LockLostError, LockTimeoutError, StateError, SyndicateError

EX_TEMPFAIL = 75


class _Lock:
    """`with lock:` acquires and releases; release() may come earlier, and is idempotent."""

    def acquire(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def check(self) -> None:
        """Raise LockLostError if the lock is no longer held."""

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class RunLock(_Lock):
    """`with RunLock(path, timeout):` waits up to `timeout` seconds for the lock."""

    def __init__(self, path: Path, timeout: float = 60.0, poll: float = 0.1) -> None:
        self.path = path
        self.timeout = timeout
        self.poll = poll
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SyndicateError(
                f"cannot create the run lock {self.path}: {exc.strerror}",
                "it lives beside the SQLite database: check state.url and that folder",
            ) from None
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise LockTimeoutError(
                        f"another syndicate run{holder} holds {self.path}; "
                        f"gave up after waiting {self.timeout:g}s",
                        "it will be retried at the next scheduled run; "
                        "raise --lock-timeout to wait longer",
                    ) from None
                time.sleep(self.poll)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def run_lock(config: Config, timeout: float) -> RunLock | DatabaseLock:
    """One run at a time: a lock file on one host (SQLite, and any database but
    PostgreSQL), or, when several hosts may share the state (PostgreSQL), the database's
    own advisory lock."""
    if config.state_url.split(":", 1)[0].split("+", 1)[0] == "postgresql":
        return DatabaseLock(config.state_url, timeout)
    return RunLock(lock_path(config), timeout)


def lock_path(config: Config) -> Path:
    """The run lock lives beside the SQLite database, else beside config.yaml."""
    db = sqlite_path(config.state_url)
    if db is not None:
        return db.with_name(db.name + ".lock")
    return config.path.resolve().parent / ".syndicate.lock"


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


# pg_advisory_lock key of the run lock: "synd", 2 (migrate.py holds "synd", 1 briefly).
RUN_LOCK_KEY = 0x73796E64_00000002


class DatabaseLock(_Lock):
    """The run lock of a PostgreSQL state database: a session-level advisory lock, held
    on a connection of its own for as long as the run. Two hosts sharing the database
    take the same lock (a lock file is only one host's). The server drops it when the
    connection ends, however the holder ends (kill -9; a lost host once TCP notices)."""

    def __init__(self, url: str, timeout: float = 60.0, poll: float = 0.2) -> None:
        self.url = url
        self.timeout = timeout
        self.poll = poll
        self._engine: Any = None
        self._conn: Any = None

    def acquire(self) -> None:
        import sqlalchemy as sa

        from syndicate.state.store import safe_url

        engine = sa.create_engine(
            self.url,
            poolclass=sa.pool.NullPool,
            connect_args={
                "application_name": f"syndicate run lock, pid {os.getpid()}",
                # A lost host's session (and lock) ends within about a minute, not when
                # the server's TCP gives up after hours.
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
            },
        )
        try:
            conn = engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            first = str(exc).splitlines()[0][:200].replace(self.url, safe_url(self.url))
            raise StateError(
                f"cannot take the run lock in the state database {safe_url(self.url)}: {first}",
                "check state.url in config.yaml and that the database server is up",
            ) from None
        deadline = time.monotonic() + self.timeout
        try:
            while not conn.execute(sa.select(sa.func.pg_try_advisory_lock(RUN_LOCK_KEY))).scalar():
                conn.rollback()  # nothing held open on the server while we wait
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(
                        f"another syndicate run{_pg_holder(conn)} holds the run lock of the "
                        f"state database; gave up after waiting {self.timeout:g}s",
                        "it will be retried at the next scheduled run; "
                        "raise --lock-timeout to wait longer",
                    )
                time.sleep(self.poll)
            conn.commit()
        except BaseException:
            conn.close()
            engine.dispose()
            raise
        self._engine, self._conn = engine, conn

    def check(self) -> None:
        """Raise LockLostError unless this session still holds the lock: a server restart,
        an idle-session timeout or a proxy dropping the connection ends the session, and
        another host may hold the lock by now. Called before a run records anything."""
        import sqlalchemy as sa

        query = sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid() AND (classid::bigint << 32) + objid::bigint = :key"
        )
        try:
            held = self._conn.execute(query, {"key": RUN_LOCK_KEY}).scalar()
            self._conn.rollback()
        except sa.exc.SQLAlchemyError:
            held = 0
        if not held:
            raise LockLostError(
                "the run lock in the state database was lost (its database session ended); "
                "this run stopped before recording anything",
                "the next run does the work; if it happens often, check the connection to "
                "the database server (timeouts, proxies)",
            )

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()  # ends the session: the server releases the lock
            self._engine.dispose()
            self._conn = self._engine = None


def _pg_holder(conn: Any) -> str:
    """` (host, pid N)` of the session holding the run lock, when the server says."""
    import sqlalchemy as sa

    query = sa.text(
        "SELECT a.application_name, a.client_addr FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
        "AND l.granted AND (l.classid::bigint << 32) + l.objid::bigint = :key"
    )
    try:
        row = conn.execute(query, {"key": RUN_LOCK_KEY}).first()
        conn.rollback()
    except Exception:
        return ""
    if row is None:
        return ""
    where = f" at {row.client_addr}" if row.client_addr else ""
    return f" ({row.application_name}{where})" if row.application_name else where
