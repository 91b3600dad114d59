"""The state database: what each run published, and the runs themselves.

SQLAlchemy Core, portable SQL only (SQLite by default; PostgreSQL by changing state.url).
Nothing here is needed to rebuild the feeds from the posts; it records what happened so
a post is announced as new exactly once, and so the newsletter knows what is new.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from syndicate.config import sqlite_path
from syndicate.errors import StateError

SCHEMA_VERSION = 1
# Posts are keyed by their path relative to config.yaml's folder. Databases from before
# carry keys relative to whatever the working directory was; `migrate_post_keys` rewrites
# them once and then sets this flag.
POST_KEYS_FLAG = ("post_keys", "config-relative")

metadata = sa.MetaData()

meta_table = sa.Table(
    "syndicate_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

posts_table = sa.Table(
    "posts",
    metadata,
    sa.Column("source", sa.String(1024), primary_key=True),  # path as given, the stable key
    sa.Column("post_id", sa.String(2048), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),  # the post's date
    sa.Column("first_published_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # published | withdrawn
    sa.Column("tags", sa.Text, nullable=False, server_default=""),  # tab-separated
    sa.Column("categories", sa.Text, nullable=False, server_default=""),
)

runs_table = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # once | daemon
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),  # running | ok | errors | failed
    sa.Column("published", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("withdrawn", sa.Integer, nullable=False, server_default="0"),
    sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
    sa.Column("files_written", sa.Integer, nullable=False, server_default="0"),
    sa.Column("message", sa.Text, nullable=True),
)


digests_table = sa.Table(
    "digests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(255), nullable=False, unique=True),
    sa.Column(
        "posts_hash", sa.String(64), nullable=False, unique=True
    ),  # never twice the same posts
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("post_sources", sa.Text, nullable=False),  # tab-separated
    sa.Column("status", sa.String(16), nullable=False),  # queued | sent
    sa.Column("archive_url", sa.String(2048), nullable=False, server_default=""),
)

subscribers_table = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False),  # as normalised by email-validator
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),  # lower-cased
    sa.Column("name", sa.String(255), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False),  # pending|active|unsubscribed|bounced
    sa.Column("topics", sa.Text, nullable=False, server_default=""),  # tab-separated
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("unsubscribed_at", sa.DateTime(timezone=True), nullable=True),
)

# One body per digest and topic set: rendered (MJML compiled) once, not per subscriber.
bodies_table = sa.Table(
    "digest_bodies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id"), nullable=False),
    sa.Column("variant", sa.String(64), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.UniqueConstraint("digest_id", "variant"),
)

outbox_table = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id"), nullable=False),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("body_id", sa.Integer, sa.ForeignKey("digest_bodies.id"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(255), nullable=False, server_default=""),
    # queued | sending | sent | deferred | bounced | failed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_response", sa.Text, nullable=True),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("digest_id", "subscriber_id"),  # never queued twice for one digest
)


@dataclass(frozen=True, slots=True)
class PostState:
    """What the store remembers of one post."""

    source: str
    post_id: str
    url: str
    title: str
    content_hash: str
    due_at: datetime
    first_published_at: datetime | None
    updated_at: datetime | None
    withdrawn_at: datetime | None
    status: str
    tags: tuple[str, ...]
    categories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    kind: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    published: int
    updated: int
    withdrawn: int
    errors: int
    files_written: int
    message: str | None


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
            self._migrate()
            _open_stores.add(self)
        except (SQLAlchemyError, OSError) as exc:
            raise StateError(
                f"cannot open the state database {safe_url(url)}: "
                f"{_short(exc).replace(url, safe_url(url))}",
                "check state.url in config.yaml and that its folder is writable",
            ) from None

    def _migrate(self) -> None:
        with self.engine.begin() as conn:
            metadata.create_all(conn)
            row = conn.execute(
                sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
            ).first()
            if row is None:
                conn.execute(
                    sa.insert(meta_table).values(key="schema_version", value=str(SCHEMA_VERSION))
                )
                key, value = POST_KEYS_FLAG
                conn.execute(sa.insert(meta_table).values(key=key, value=value))
                return
            version = int(row.value)
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"the state database has schema version {version}, newer than this "
                    f"syndicate understands ({SCHEMA_VERSION})",
                    "upgrade syndicate, or point state.url at a new database",
                )
            # Later releases add their migrations here, one step per version.

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

    # --- posts ---------------------------------------------------------------------

    def migrate_post_keys(self, mapper_factory: Callable[[], Callable[[str], str | None]]) -> int:
        """Once per database: rewrite the keys of the posts table and of the digests' lists of
        announced posts from the old working-directory-relative form. `mapper_factory()`
        gives old key -> new key (None: no such file now; the key is kept). Two old rows
        for one post (the bug this fixes) become one, the published one kept.
        -> how many keys changed."""
        flag_key, flag_value = POST_KEYS_FLAG
        with self.engine.begin() as conn:
            flag = conn.execute(
                sa.select(meta_table.c.value).where(meta_table.c.key == flag_key)
            ).first()
            if flag is not None:
                return 0
            rows = conn.execute(sa.select(posts_table)).mappings().all()
            digests = conn.execute(
                sa.select(digests_table.c.id, digests_table.c.post_sources)
            ).all()
            mapper = mapper_factory() if rows or digests else (lambda old: None)
            cache: dict[str, str] = {}

            def new_key(old: str) -> str:
                if old not in cache:
                    cache[old] = mapper(old) or old
                return cache[old]

            kept: dict[str, dict[str, object]] = {}
            for row in sorted(rows, key=_row_preference):
                kept.setdefault(new_key(row["source"]), {**row, "source": new_key(row["source"])})
            if any(new_key(row["source"]) != row["source"] for row in rows):
                conn.execute(sa.delete(posts_table))
                conn.execute(sa.insert(posts_table), list(kept.values()))
            for digest_id, sources in digests:
                mapped = "\t".join(new_key(x) for x in sources.split("\t") if x)
                if mapped != sources:
                    conn.execute(
                        sa.update(digests_table)
                        .where(digests_table.c.id == digest_id)
                        .values(post_sources=mapped)
                    )
            conn.execute(sa.insert(meta_table).values(key=flag_key, value=flag_value))
        return sum(1 for old, new in cache.items() if old != new)

    def post_states(self) -> dict[str, PostState]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(posts_table)).all()
        return {row.source: _post_state(row) for row in rows}

    def save_post_states(self, conn: Connection, states: Iterable[PostState]) -> None:
        """Insert or replace these rows (portable: delete then insert, in one transaction)."""
        states = list(states)
        if not states:
            return
        sources = [s.source for s in states]
        for chunk in _chunks(sources, 500):
            conn.execute(sa.delete(posts_table).where(posts_table.c.source.in_(chunk)))
        conn.execute(
            sa.insert(posts_table),
            [
                {
                    "source": s.source,
                    "post_id": s.post_id,
                    "url": s.url,
                    "title": s.title,
                    "content_hash": s.content_hash,
                    "due_at": to_utc(s.due_at),
                    "first_published_at": to_utc(s.first_published_at),
                    "updated_at": to_utc(s.updated_at),
                    "withdrawn_at": to_utc(s.withdrawn_at),
                    "status": s.status,
                    "tags": "\t".join(s.tags),
                    "categories": "\t".join(s.categories),
                }
                for s in states
            ],
        )

    # --- digests -------------------------------------------------------------------

    def last_digest_at(self) -> datetime | None:
        """The end of the window of the newest digest recorded, if any."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(digests_table.c.until))).scalar()
        return aware_utc(value) if value else None

    def last_digest_created_at(self) -> datetime | None:
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(digests_table.c.created_at))).scalar()
        return aware_utc(value) if value else None

    def digested_sources(self) -> set[str]:
        """Sources of every post that was in an earlier digest: never announced twice."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(digests_table.c.post_sources)).scalars()
            return {source for row in rows for source in row.split("\t") if source}

    def published_at(self) -> dict[str, datetime]:
        """source -> when a run first published it (the newsletter's notion of "new")."""
        return {
            source: state.first_published_at
            for source, state in self.post_states().items()
            if state.first_published_at is not None and state.status == "published"
        }

    # --- runs ----------------------------------------------------------------------

    def start_run(self, kind: str, started_at: datetime) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.insert(runs_table).values(
                    kind=kind, started_at=to_utc(started_at), outcome="running"
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def finish_run(
        self, conn: Connection, run_id: int, finished_at: datetime, **counts: object
    ) -> None:
        conn.execute(
            sa.update(runs_table)
            .where(runs_table.c.id == run_id)
            .values(finished_at=to_utc(finished_at), **counts)
        )

    def fail_run(self, run_id: int, finished_at: datetime, message: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(runs_table)
                .where(runs_table.c.id == run_id)
                .values(finished_at=to_utc(finished_at), outcome="failed", message=message[:2000])
            )

    def mark_interrupted(self, finished_at: datetime) -> int:
        """Runs still 'running' while we hold the lock died mid-way (kill -9, power loss)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.update(runs_table)
                .where(runs_table.c.outcome == "running")
                .values(outcome="interrupted", finished_at=to_utc(finished_at))
            )
            return int(result.rowcount or 0)

    def recent_runs(self, limit: int = 5) -> list[RunRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(runs_table).order_by(runs_table.c.id.desc()).limit(limit)
            ).all()
        return [
            RunRecord(
                id=row.id,
                kind=row.kind,
                started_at=aware_utc(row.started_at),
                finished_at=aware_utc(row.finished_at) if row.finished_at else None,
                outcome=row.outcome,
                published=row.published,
                updated=row.updated,
                withdrawn=row.withdrawn,
                errors=row.errors,
                files_written=row.files_written,
                message=row.message,
            )
            for row in rows
        ]


def _row_preference(row: sa.RowMapping) -> tuple[bool, datetime]:
    """Of two rows for one post, keep the published one, then the first published."""
    first = row["first_published_at"]
    never = datetime.max
    if first is not None and first.tzinfo is not None:
        first = first.astimezone(UTC).replace(tzinfo=None)
    return (row["status"] != "published", first or never)


def _post_state(row: sa.Row) -> PostState:  # type: ignore[type-arg]
    return PostState(
        source=row.source,
        post_id=row.post_id,
        url=row.url,
        title=row.title,
        content_hash=row.content_hash,
        due_at=aware_utc(row.due_at),
        first_published_at=aware_utc(row.first_published_at) if row.first_published_at else None,
        updated_at=aware_utc(row.updated_at) if row.updated_at else None,
        withdrawn_at=aware_utc(row.withdrawn_at) if row.withdrawn_at else None,
        status=row.status,
        tags=tuple(t for t in row.tags.split("\t") if t),
        categories=tuple(c for c in row.categories.split("\t") if c),
    )


def to_utc(value: datetime | None) -> datetime | None:
    """Every time is stored in UTC: an aware instant on PostgreSQL (timestamptz), the UTC
    wall time on SQLite, which has no time zones (SQLAlchemy drops the tzinfo there)."""
    if value is None:
        return None
    return value.astimezone(UTC)


def aware_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


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
    cursor.close()


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200]
