"""A disposable per-post cache: parse results and rendered HTML, kept between runs.

A run that finds a file with the same (mtime, ctime, size, inode, device) as last time
takes its parsed Post and diagnostics from here instead of reading and parsing it again,
and a post whose body, URL and renderer are unchanged takes its HTML from here instead of
rendering it again. Every entry also carries a fingerprint of what else shapes it (the
config keys parsing reads, the code of the modules that parse and render, library
versions), so a changed config or a new syndicate quietly misses.

The cache is an SQLite file beside the state database. It is never needed: a missing,
corrupt, locked or foreign file means a slower run that parses everything, never a wrong
feed. Runs are serialised by the run lock; SQLite's own locking covers the rest.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
import sqlite3
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syndicate import __version__
from syndicate.config import Config, sqlite_path, sqlite_uri

SCHEMA = 3  # 3: a rendering's XHTML may be None (it was '' when there is none)
RACY_NS = 2_000_000_000
_MARKER = "syndicate-post-cache"
# Paths under the syndicate package: a folder stands for every module in it, so a module
# split or added there still misses the cache.
_CODE = ("content", "feeds", "models.py", "errors.py")
_LIBRARIES = ("Markdown", "nh3", "lxml", "PyYAML", "python-frontmatter", "python-slugify")

# (st_mtime_ns, st_ctime_ns, st_size, st_ino, st_dev): a file whose stamp is unchanged is
# taken as unchanged (ctime too, so `touch -m` back to an old time still counts as a change).
Stamp = tuple[int, int, int, int, int]


def file_stamp(path: Path) -> Stamp | None:
    """The stamp of a regular file (None for anything else: FIFOs are never cached)."""
    try:
        info = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino, info.st_dev)


@functools.cache
def code_fingerprint() -> str:
    """Syndicate's version, the source of the modules whose output is cached, and the
    versions of the libraries they call: any change misses every entry."""
    from importlib import metadata  # ~10 ms: not for the cron shortcut, which never calls this

    digest = hashlib.sha256(f"{SCHEMA}\0{__version__}".encode())
    package = Path(__file__).parent.parent
    for name in _CODE:
        path = package / name
        for module in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            try:
                digest.update(module.read_bytes())
            except OSError:
                digest.update(name.encode())
    for library in _LIBRARIES:
        try:
            digest.update(f"\0{library}={metadata.version(library)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"\0{library}=?".encode())
    return digest.hexdigest()


def cache_path(config: Config) -> Path | None:
    """Beside the SQLite state database (`state.db` -> `state.db.cache`), else beside
    config.yaml; None (no cache) when SYNDICATE_NO_CACHE is set."""
    if os.environ.get("SYNDICATE_NO_CACHE"):
        return None
    db = sqlite_path(config.state_url)
    if db is not None:
        return db.with_name(db.name + ".cache")
    return config.path.resolve().parent / ".syndicate-cache.sqlite"


@dataclass(frozen=True, slots=True)
class CachedRead:
    """One file's cached parse: the display path it was read as, its stamp, its content
    hash, and the pickled (Post without body, diagnostics)."""

    source: str
    stamp: Stamp
    content_hash: str
    record: bytes
    read_at: int  # time.time_ns() when the file was read

    @property
    def racy(self) -> bool:
        """Changed in the same clock tick as it was read? Timestamps are coarse (a few
        ms), so a file written again right after being read may keep its stamp: such an
        entry is checked against the file's hash before it is trusted (as git does)."""
        mtime, ctime = self.stamp[0], self.stamp[1]
        return max(mtime, ctime) >= self.read_at - RACY_NS

    def outcome(self) -> Any:
        """The cached (Post without its body, diagnostics)."""
        return _unpickle(self.record)


class PostCache:
    """The cache file, opened once per run. Every method swallows SQLite errors: after
    one, the cache is switched off for the rest of the run."""

    def __init__(self, path: Path | None, environment: str) -> None:
        self.path = path
        self.environment = environment
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = self._open(path)

    def _open(self, path: Path) -> sqlite3.Connection | None:
        for attempt in range(2):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(path, timeout=5, isolation_level=None)
                try:
                    self._prepare(db)
                except BaseException:
                    db.close()
                    raise
                return db
            except sqlite3.OperationalError as exc:
                if attempt or "locked" in str(exc) or "busy" in str(exc) or not path.exists():
                    return None  # in use by another command, or cannot be created: go without
                _remove(path)
            except (sqlite3.Error, OSError, ValueError):
                if attempt:
                    return None
                _remove(path)  # corrupt or foreign: start again from an empty file
        return None

    def _prepare(self, db: sqlite3.Connection) -> None:
        # Posts of 4-10 KB: on 16 KB pages (a new file's; an old one keeps its own) most
        # rows need no overflow chain, and a cold run writes its ~120 MB a third faster.
        db.execute("PRAGMA page_size=16384")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")  # a cache lost in a crash is only slower
        db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        found = dict(db.execute("SELECT name, value FROM meta").fetchall())
        wanted = {"marker": _MARKER, "environment": self.environment}
        if found != wanted:
            if found and found.get("marker") != _MARKER:
                raise ValueError("not a syndicate cache")
            db.execute("DROP TABLE IF EXISTS reads")
            db.execute("DROP TABLE IF EXISTS rendered")
            db.execute("DELETE FROM meta")
            db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(wanted.items()))
        db.execute(
            "CREATE TABLE IF NOT EXISTS reads (key TEXT PRIMARY KEY, source TEXT, "
            "mtime INTEGER, ctime INTEGER, size INTEGER, ino INTEGER, dev INTEGER, "
            "content_hash TEXT, record BLOB, read_at INTEGER, body BLOB)"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS rendered (key TEXT PRIMARY KEY, fingerprint TEXT, "
            "record BLOB)"
        )

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def _fail(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None

    def reads(self, keys: Iterable[str] | None = None) -> dict[str, CachedRead]:
        """Every cached parse (or those of these `keys`), by post key."""
        if self._db is None:
            return {}
        query = (
            "SELECT key, source, mtime, ctime, size, ino, dev, content_hash, record, "
            "read_at FROM reads"
        )
        wanted = [] if keys is None else list(keys)
        if keys is not None:
            query += f" WHERE key IN ({','.join('?' * len(wanted))})"
        try:
            rows = self._db.execute(query, wanted).fetchall()
        except sqlite3.Error:
            self._fail()
            return {}
        return {
            row[0]: CachedRead(
                row[1], (row[2], row[3], row[4], row[5], row[6]), row[7], row[8], row[9]
            )
            for row in rows
        }

    def save_reads(self, entries: Iterable[tuple[str, CachedRead, bytes]]) -> None:
        """Store (key, parse, body as UTF-8) entries, replacing older ones. Bytes, since
        binding a str makes Python keep a UTF-8 copy inside every non-ASCII body."""
        rows = [
            (key, e.source, *e.stamp, e.content_hash, e.record, e.read_at, body)
            for key, e, body in entries
        ]
        self._write("INSERT OR REPLACE INTO reads VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)

    def restamp(self, entries: Iterable[tuple[str, Stamp, int]]) -> None:
        """A file found unchanged by its hash (touched, checked out again): new stamp."""
        rows = [(*stamp, read_at, key) for key, stamp, read_at in entries]
        self._write(
            "UPDATE reads SET mtime=?, ctime=?, size=?, ino=?, dev=?, read_at=? WHERE key=?", rows
        )

    def forget_reads(self, keys: Iterable[str]) -> None:
        """Drop the entries of files that are gone (or no longer cacheable)."""
        self._write("DELETE FROM reads WHERE key = ?", [(k,) for k in keys])

    def bodies(self, keys: Iterable[str]) -> dict[str, str]:
        """The Markdown bodies of these posts, for the ones that must be rendered."""
        if self._db is None:
            return {}
        found: dict[str, str] = {}
        try:
            for key in keys:
                row = self._db.execute("SELECT body FROM reads WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    found[key] = bytes(row[0]).decode()
        except sqlite3.Error:
            self._fail()
        return found

    def rendered(self, wanted: Mapping[str, str]) -> dict[str, Any]:
        """key -> unpickled render result, for entries whose fingerprint is `wanted[key]`."""
        if self._db is None or not wanted:
            return {}
        found: dict[str, Any] = {}
        try:
            for key, fingerprint in wanted.items():
                row = self._db.execute(
                    "SELECT fingerprint, record FROM rendered WHERE key = ?", (key,)
                ).fetchone()
                if row is not None and row[0] == fingerprint:
                    found[key] = _unpickle(row[1])
        except (sqlite3.Error, pickle.UnpicklingError, EOFError, AttributeError, TypeError):
            self._fail()
            return {}
        return found

    def save_rendered(self, entries: Iterable[tuple[str, str, bytes]]) -> None:
        """Store (key, fingerprint, pickled render result) entries."""
        self._write("INSERT OR REPLACE INTO rendered VALUES (?,?,?)", entries)

    def reopened(self) -> PostCache:
        """The same file, on a connection of this process's own, for reading (a forked
        worker's; SQLite connections must not cross a fork). Off if this one is off."""
        copy = PostCache(None, self.environment)
        if self._db is not None and self.path is not None:
            with contextlib.suppress(sqlite3.Error):
                copy.path = self.path
                copy._db = sqlite3.connect(
                    sqlite_uri(self.path, "ro"), uri=True, timeout=5, isolation_level=None
                )
        return copy

    def _write(self, sql: str, rows: Iterable[Any]) -> None:
        """One transaction; `rows` may be a generator, so big records are made one by one."""
        if self._db is None or (isinstance(rows, list) and not rows):
            return
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(sql, rows)
        except sqlite3.Error:
            self._fail()

    def close(self) -> None:
        """Close the file (the cache stays on disk)."""
        self._fail()


def _remove(path: Path) -> None:
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):
            name.unlink()


def _unpickle(data: bytes) -> Any:
    # Only syndicate writes this file, beside the state database: whoever can write it
    # can already change config.yaml, so unpickling it gives them nothing new.
    return pickle.loads(data)  # noqa: S301
