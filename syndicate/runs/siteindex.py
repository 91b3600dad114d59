"""The site as the last run left it, for the cron path of a few changed posts.

Beside the shortcut's record (`state/syndicate.db.cache-index`), an SQLite file holds what
planning the feeds needs of every post, without the posts: each content file's stamp and
key; each post's date, slug, URL, id, content hash, image length and whether it was
published; and each published post's feed families (main, tags, categories) with the term
as it spells it. `syndicate.runs.delta` reads only the rows of the changed posts and the
newest `feeds.limit` members of the families they are in, so one new post costs the same
at 10,000 posts as at 10.

Written whole after a full run that wrote the record, changed row by row after a delta run,
in one transaction each; `run_id` ties it to the record and the state database. Like the
per-post cache it is disposable: missing, foreign, corrupt or out of step means a full run.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from syndicate.config import Config, sqlite_uri
from syndicate.content.cache import cache_path
from syndicate.record import Record

if TYPE_CHECKING:  # the cron shortcut moves the index on: it must stay light to import
    from syndicate.models import Post
    from syndicate.runs.pipeline import EntryIdentity, FeedEntryIdentity

FORMAT = "2"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TABLES = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)",
    # A path as bytes: a file name that is not UTF-8 is kept as it is (surrogateescape).
    "CREATE TABLE files (path BLOB PRIMARY KEY, stamp TEXT, key TEXT)",
    "CREATE TABLE posts (key TEXT PRIMARY KEY, date_us INTEGER, draft INTEGER, "
    "ready INTEGER, slug TEXT, url TEXT, id TEXT, content_hash TEXT, image_length INTEGER, "
    "image TEXT, entangled INTEGER, noted INTEGER)",
    "CREATE TABLE members (family TEXT, key TEXT, date_us INTEGER, id TEXT, label TEXT, "
    "PRIMARY KEY (family, key))",
)
# Made after the rows are in (sorting once instead of growing five B-trees row by row:
# 0.9 -> 0.4 s for 10,000 posts in 150 tags).
_INDEXES = (
    "CREATE INDEX posts_slug ON posts (slug)",
    "CREATE INDEX members_newest ON members (family, date_us DESC, key)",
    "CREATE INDEX members_key ON members (key)",
)
# Only archive pages are counted from the oldest (`ranks`, `page`): without archives the
# index is not made (a quarter of the file, ~0.07 s of the index's 0.45 s).
_ARCHIVE_INDEX = "CREATE INDEX members_oldest ON members (family, date_us, id, key)"


class IndexedPost(Record):  # a record: this module is on the cron shortcut's path
    """What the index holds of one post."""

    key: str
    ready: bool
    slug: str
    url: str
    id: str
    content_hash: str
    entangled: bool  # its slug collides with another's (Catalog.entangled)
    noted: bool  # the last run printed a diagnostic about it


class SlugHolder(Record):
    """A post of the index as slug assignment sees it (`SiteIndex.slug_family`)."""

    key: str
    slug: str
    date_us: int
    entangled: bool


def index_path(config: Config) -> Path | None:
    """Beside the per-post cache (`rm state/syndicate.db.cache*` clears it too)."""
    cache = cache_path(config)
    return None if cache is None else cache.with_name(cache.name + "-index")


def microseconds(moment: datetime) -> int:
    """An instant as an integer (exact, unlike a float timestamp): equal instants in two
    time zones compare equal, as datetimes do."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def families(post: Post, config: Config) -> list[tuple[str, str]]:
    """(family, the term as the post spells it) for a published post: "" is the main feed,
    else the tag or category feed's folder."""
    from syndicate.feeds.plan import TERM_FOLDERS, post_terms

    found = [("", "")]
    found.extend(
        (f"{TERM_FOLDERS[kind]}/{key}", term) for kind, key, term in post_terms(post, config)
    )
    return found


class SiteIndex:
    """The index file, opened for one run; `None` from `open` means no usable index."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    @classmethod
    def open(cls, path: Path) -> SiteIndex | None:
        try:
            db = sqlite3.connect(sqlite_uri(path, "rw"), uri=True, timeout=5, isolation_level=None)
        except sqlite3.Error:
            return None
        index = cls(db)
        try:
            if index._meta("format") == FORMAT:
                return index
        except sqlite3.Error:
            pass
        index.close()
        return None

    @staticmethod
    def write(
        path: Path,
        run_id: int,
        files: Mapping[str, tuple[str, str]],
        posts: Iterable[tuple[Post, bool, bool, bool]],
        config: Config,
        atomic: bool = True,
    ) -> None:
        """Write the whole index: `files` path -> (stamp, key); `posts` (post, ready,
        entangled, noted). Atomic (a temporary file renamed over the old one), or, for a
        draft that is renamed later, written at `path` itself (replaced if it is there)."""
        if atomic:
            temporary = path.with_name(f".{path.name}.tmp")
            SiteIndex.write(temporary, run_id, files, posts, config, atomic=False)
            temporary.replace(path)
            return
        path.unlink(missing_ok=True)
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")  # like the cache: lost in a crash, a full run
            db.execute("BEGIN")
            for statement in _TABLES:
                db.execute(statement)
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)", [("format", FORMAT), ("run", str(run_id))]
            )
            db.executemany("INSERT INTO files VALUES (?, ?, ?)", _file_rows(files))
            _insert_posts(db, posts, config)
            for statement in (*_INDEXES, *([_ARCHIVE_INDEX] if config.feeds.archive else [])):
                db.execute(statement)
            db.execute("COMMIT")
        finally:
            db.close()

    def _meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    @property
    def run_id(self) -> int | None:
        value = self._meta("run")
        return int(value) if value and value.isdigit() else None

    def files(self) -> dict[str, tuple[str, str]]:
        """path -> (stamp, key) of every content file the last run found."""
        rows = self._db.execute("SELECT path, stamp, key FROM files")
        return {bytes(row[0]).decode("utf-8", "surrogateescape"): (row[1], row[2]) for row in rows}

    def posts(self, keys: Iterable[str]) -> dict[str, IndexedPost]:
        keys = list(keys)
        rows = self._db.execute(
            "SELECT key, ready, slug, url, id, content_hash, entangled, noted "  # noqa: S608
            f"FROM posts WHERE key IN ({_marks(keys)})",
            keys,
        )
        return {
            row[0]: IndexedPost(
                row[0], bool(row[1]), row[2], row[3], row[4], row[5], bool(row[6]), bool(row[7])
            )
            for row in rows
        }

    def slug_family(self, root: str, besides: Sequence[str]) -> list[SlugHolder]:
        """The posts other than `besides` whose slug is `root` or `root-...` (a superset
        of those with `root` among their `slug_stems`: the caller keeps those)."""
        rows = self._db.execute(
            "SELECT key, slug, date_us, entangled FROM posts "  # noqa: S608
            f"WHERE (slug = ? OR (slug >= ? AND slug < ?)) AND key NOT IN ({_marks(besides)})",
            (root, f"{root}-", f"{root}.", *besides),
        )
        return [SlugHolder(row[0], row[1], row[2], bool(row[3])) for row in rows]

    def file_of(self, key: str) -> str | None:
        """The content file (as the scan names it) of the post with this key."""
        row = self._db.execute("SELECT path FROM files WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0]).decode("utf-8", "surrogateescape")

    def families_of(self, keys: Sequence[str]) -> set[str]:
        rows = self._db.execute(
            f"SELECT DISTINCT family FROM members WHERE key IN ({_marks(keys)})",  # noqa: S608
            keys,
        )
        return {row[0] for row in rows}

    def newest(self, family: str, limit: int) -> list[tuple[str, str]]:
        """The family's newest `limit` members, as `plan_feeds` orders them: (key, term)."""
        rows = self._db.execute(
            "SELECT key, label FROM members WHERE family = ? ORDER BY date_us DESC, key LIMIT ?",
            (family, limit),
        )
        return [(row[0], row[1]) for row in rows]

    def count(self, family: str) -> int:
        row = self._db.execute("SELECT count(*) FROM members WHERE family = ?", (family,))
        return int(row.fetchone()[0])

    def ranks(self, keys: Sequence[str]) -> list[tuple[str, int]]:
        """(family, rank) of each of these posts in each family it is in, counted from the
        oldest as `feeds.archive.oldest_first` orders them (date, id, key)."""
        rows = self._db.execute(
            "SELECT m.family, (SELECT count(*) FROM members o WHERE o.family = m.family "  # noqa: S608
            "AND (o.date_us, o.id, o.key) < (m.date_us, m.id, m.key)) FROM members m "
            f"WHERE m.key IN ({_marks(keys)})",
            keys,
        )
        return [(row[0], int(row[1])) for row in rows]

    def page(self, family: str, start: int, size: int) -> list[FeedEntryIdentity]:
        """Members `start` .. `start + size` of the family, oldest first, as identities."""
        rows = self._db.execute(
            "SELECT p.key, p.content_hash, p.url, p.id, p.slug, p.image FROM members m "
            "JOIN posts p ON p.key = m.key WHERE m.family = ? "
            "ORDER BY m.date_us, m.id, m.key LIMIT ? OFFSET ?",
            (family, size, start),
        )
        return [(row[0], row[1], row[2], row[3], row[4], row[5]) for row in rows]

    def identities(self, keys: Sequence[str]) -> list[FeedEntryIdentity]:
        """These posts' feed identities, in this order."""
        rows = self._db.execute(
            "SELECT key, content_hash, url, id, slug, image FROM posts "  # noqa: S608
            f"WHERE key IN ({_marks(keys)})",
            keys,
        )
        found = {row[0]: (row[0], row[1], row[2], row[3], row[4], row[5]) for row in rows}
        return [found[key] for key in keys]

    def ready_identities(self) -> list[EntryIdentity]:
        """Every published post's identity, newest first (for the inputs fingerprint)."""
        rows = self._db.execute(
            "SELECT key, content_hash, url, id, image_length FROM posts WHERE ready "
            "ORDER BY date_us DESC, key"
        )
        return [(row[0], row[1], row[2], row[3], row[4]) for row in rows]

    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def replace_posts(
        self,
        gone: Sequence[str],
        posts: Sequence[tuple[Post, bool, bool, bool]],
        entangled: Mapping[str, bool],
        config: Config,
    ) -> None:
        """Inside `begin`: drop the `gone` keys, insert or replace (post, ready, entangled,
        noted), and set the `entangled` flag of others that stay."""
        keys = [*gone, *(post.key for post, *_flags in posts)]
        for table in ("posts", "members"):
            self._db.execute(f"DELETE FROM {table} WHERE key IN ({_marks(keys)})", keys)  # noqa: S608
        _insert_posts(self._db, posts, config)
        self._db.executemany(
            "UPDATE posts SET entangled = ? WHERE key = ?",
            [(flag, key) for key, flag in entangled.items()],
        )

    def replace_files(self, gone: Sequence[str], found: Mapping[str, tuple[str, str]]) -> None:
        paths = [_path_bytes(name) for name in [*gone, *found]]
        self._db.execute(f"DELETE FROM files WHERE path IN ({_marks(paths)})", paths)  # noqa: S608
        self._db.executemany("INSERT INTO files VALUES (?, ?, ?)", _file_rows(found))

    def commit(self, run_id: int) -> None:
        self._db.execute("UPDATE meta SET value = ? WHERE name = 'run'", (str(run_id),))
        self._db.execute("COMMIT")

    def advance(self, last_run_id: int, run_id: int) -> None:
        """Move on to `run_id` if the index is `last_run_id`'s (a run that changed
        nothing leaves it describing the posts)."""
        self._db.execute(
            "UPDATE meta SET value = ? WHERE name = 'run' AND value = ?",
            (str(run_id), str(last_run_id)),
        )

    def rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()


def _insert_posts(
    db: sqlite3.Connection, posts: Iterable[tuple[Post, bool, bool, bool]], config: Config
) -> None:
    from syndicate.runs.pipeline import entry_identity

    rows: list[tuple[object, ...]] = []
    members: list[tuple[str, str, int, str, str]] = []
    for post, ready, entangled, noted in posts:
        date = microseconds(post.date)
        key, content, url, post_id, length = entry_identity(post)
        row = (key, date, post.draft, ready, post.slug, url, post_id, content, length)
        rows.append((*row, repr(post.image), entangled, noted))
        if ready:
            members.extend(
                (family, key, date, post_id, term) for family, term in families(post, config)
            )
    db.executemany("INSERT INTO posts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.executemany("INSERT OR IGNORE INTO members VALUES (?, ?, ?, ?, ?)", members)


def _file_rows(files: Mapping[str, tuple[str, str]]) -> list[tuple[bytes, str, str]]:
    return [(_path_bytes(name), stamp, key) for name, (stamp, key) in files.items()]


def _path_bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))
