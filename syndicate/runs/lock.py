"""One run at a time across processes: a locked file beside the state database.

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

from syndicate.config import Config, sqlite_path
from syndicate.errors import LockTimeoutError, SyndicateError

EX_TEMPFAIL = 75


class RunLock:
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

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


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
