"""What `syndicate status` reports from the state database: recent posts, the mailing
list, the outbox and the last digest. Read-only queries; the CLI only formats them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from syndicate.state.schema import digests_table, outbox_table, posts_table, subscribers_table
from syndicate.state.store import Store, aware_utc

SUBSCRIBER_STATUSES = ("active", "pending", "unsubscribed", "bounced")
OUTBOX_STATES = ("queued", "sending", "deferred", "sent", "bounced", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class RecentPost:
    published_at: datetime
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class DigestSummary:
    key: str
    subject: str
    created_at: datetime
    status: str
    outcomes: dict[str, int]  # outbox state -> rows of this digest
    # recipient domain -> outbox state -> rows of this digest, most rows first
    domains: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MailingStatus:
    subscribers: dict[str, int]  # status -> count, every status listed
    outbox: dict[str, int]  # outbox state -> count, every state listed
    next_retry_at: datetime | None  # the earliest deferred row's next attempt
    last_digest: DigestSummary | None


def recent_posts(store: Store, limit: int = 10) -> list[RecentPost]:
    """The newest posts by when a run first published them (not by their own date)."""
    query = (
        sa.select(posts_table.c.first_published_at, posts_table.c.title, posts_table.c.url)
        .where(posts_table.c.status == "published")
        .where(posts_table.c.first_published_at.is_not(None))
        .order_by(posts_table.c.first_published_at.desc(), posts_table.c.due_at.desc())
        .limit(limit)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [RecentPost(aware_utc(row[0]), row.title, row.url) for row in rows]


def mailing_status(store: Store) -> MailingStatus:
    """Subscribers by status, the outbox by state, and the newest digest's outcome."""
    with store.engine.connect() as conn:
        subscribers = _counts(conn, subscribers_table.c.status, SUBSCRIBER_STATUSES)
        outbox = _counts(conn, outbox_table.c.status, OUTBOX_STATES)
        retry = conn.execute(
            sa.select(sa.func.min(outbox_table.c.next_attempt_at)).where(
                outbox_table.c.status == "deferred"
            )
        ).scalar()
        digest = conn.execute(
            sa.select(digests_table).order_by(digests_table.c.id.desc()).limit(1)
        ).first()
        last = None
        if digest is not None:
            outcomes = _counts(
                conn,
                outbox_table.c.status,
                OUTBOX_STATES,
                outbox_table.c.digest_id == digest.id,
            )
            last = DigestSummary(
                digest.key,
                digest.subject,
                aware_utc(digest.created_at),
                digest.status,
                {state: n for state, n in outcomes.items() if n},
                _domain_outcomes(conn, digest.id),
            )
    return MailingStatus(subscribers, outbox, aware_utc(retry) if retry else None, last)


def _domain_outcomes(conn: sa.Connection, digest_id: int) -> dict[str, dict[str, int]]:
    """A digest's rows by recipient domain and state (counted by the database, on the
    outbox's domain column), most rows first, then by name."""
    o = outbox_table
    query = (
        sa.select(o.c.domain, o.c.status, sa.func.count())
        .where(o.c.digest_id == digest_id)
        .group_by(o.c.domain, o.c.status)
    )
    found: dict[str, dict[str, int]] = {}
    for domain, state, count in conn.execute(query):
        found.setdefault(domain, {})[state] = int(count)
    ranked = sorted(found.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return dict(ranked)


def _counts(
    conn: sa.Connection,
    column: sa.Column[str],
    known: tuple[str, ...],
    *where: sa.ColumnElement[bool],
) -> dict[str, int]:
    """value -> count, with every known value present (0 where none) and any other after."""
    query = sa.select(column, sa.func.count()).group_by(column)
    for clause in where:
        query = query.where(clause)
    found = {value: int(count) for value, count in conn.execute(query).all()}
    counts = {value: found.pop(value, 0) for value in known}
    counts.update(sorted(found.items()))
    return counts
