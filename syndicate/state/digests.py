"""Digests: each one recorded once with the posts it announced (digest_posts), its
rendered bodies (one per topic set, and the web archive's page) and its outbox rows,
all in one transaction; and when the scheduled digest was last considered."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from syndicate.errors import DigestExistsError
from syndicate.newsletter.subscribers import recipient_domain
from syndicate.state.outbox import QUEUED
from syndicate.state.schema import (
    bodies_table,
    digest_posts_table,
    digests_table,
    meta_table,
    outbox_table,
    subscribers_table,
)
from syndicate.state.store import Store, maybe_aware_utc, to_utc

ARCHIVE_VARIANT = "archive"  # the body row holding a digest's public archive page
NEWSLETTER_SLOT_KEY = "newsletter_slot_handled_at"


@dataclass(frozen=True, slots=True)
class QueuedBody:
    variant: str
    subject: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class QueuedRecipient:
    subscriber_id: int
    email: str
    name: str
    variant: str


def queue_digest(
    store: Store,
    *,
    key: str,
    posts_hash: str,
    since: datetime,
    until: datetime,
    subject: str,
    post_sources: Sequence[str],
    archive_url: str,
    bodies: Iterable[QueuedBody],
    recipients: Iterable[QueuedRecipient],
    now: datetime,
) -> int:
    """Record a digest, its posts, its bodies and one outbox row per recipient, all or
    nothing."""
    digest = {
        "key": key,
        "posts_hash": posts_hash,
        "created_at": to_utc(now),
        "since": to_utc(since),
        "until": to_utc(until),
        "subject": subject,
        "status": "queued",
        "archive_url": archive_url,
    }
    try:
        with store.engine.begin() as conn:
            inserted = conn.execute(sa.insert(digests_table).values(**digest))
            digest_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]
            _insert_list(conn, digest_id, post_sources)
            body_ids = {body.variant: _insert_body(conn, digest_id, body) for body in bodies}
            recipients = list(recipients)
            present = _present(conn, [r.subscriber_id for r in recipients])
            rows = [
                {
                    "digest_id": digest_id,
                    "subscriber_id": r.subscriber_id,
                    "body_id": body_ids[r.variant],
                    "email": r.email,
                    "domain": recipient_domain(r.email),
                    "name": r.name,
                    "status": QUEUED,
                    "attempts": 0,
                }
                for r in recipients
                if r.subscriber_id in present
            ]
            if rows:
                conn.execute(sa.insert(outbox_table), rows)
    except IntegrityError as exc:  # the unique key or posts_hash: queued before
        raise DigestExistsError(str(exc.orig)) from None
    return digest_id


def _present(conn: sa.Connection, subscriber_ids: list[int]) -> set[int]:
    """Which of these subscribers still exist: one removed since the recipients were
    chosen gets no row (its foreign key would fail the whole digest). On PostgreSQL the
    rows are locked against deletion (FOR KEY SHARE) until the digest is committed; on
    SQLite the digest's insert already holds the write lock."""
    s = subscribers_table
    found: set[int] = set()
    for start in range(0, len(subscriber_ids), 500):
        chunk = subscriber_ids[start : start + 500]
        query = (
            sa.select(s.c.id).where(s.c.id.in_(chunk)).with_for_update(read=True, key_share=True)
        )
        found.update(conn.execute(query).scalars())
    return found


def _insert_list(conn: sa.Connection, digest_id: int, post_sources: Sequence[str]) -> None:
    if post_sources:
        conn.execute(
            sa.insert(digest_posts_table),
            [
                {"digest_id": digest_id, "position": n, "source": source}
                for n, source in enumerate(post_sources)
            ],
        )


def _insert_body(conn: sa.Connection, digest_id: int, body: QueuedBody) -> int:
    inserted = conn.execute(
        sa.insert(bodies_table).values(
            digest_id=digest_id,
            variant=body.variant,
            subject=body.subject,
            html=body.html,
            text=body.text,
        )
    )
    return int(inserted.inserted_primary_key[0])  # type: ignore[index]


def unique_digest_key(store: Store, key: str) -> str:
    """`key`, or `key-2`, `key-3` ... when an earlier digest (same day, same first title)
    already has it: archive pages are named by key."""
    with store.engine.connect() as conn:
        taken = set(
            conn.execute(
                sa.select(digests_table.c.key).where(digests_table.c.key.like(f"{key}%"))
            ).scalars()
        )
    if key not in taken:
        return key
    n = 2
    while f"{key}-{n}" in taken:
        n += 1
    return f"{key}-{n}"


def digest_exists(store: Store, posts_hash: str) -> bool:
    with store.engine.connect() as conn:
        found = conn.execute(
            sa.select(digests_table.c.id).where(digests_table.c.posts_hash == posts_hash)
        ).first()
    return found is not None


def digested_sources(store: Store) -> set[str]:
    """Keys of every post that was in an earlier digest: never announced twice."""
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(digest_posts_table.c.source).distinct()).scalars())


def last_digest_at(store: Store) -> datetime | None:
    """The end of the window of the newest digest recorded, if any."""
    with store.engine.connect() as conn:
        return maybe_aware_utc(conn.execute(sa.select(sa.func.max(digests_table.c.until))).scalar())


def last_digest_created_at(store: Store) -> datetime | None:
    with store.engine.connect() as conn:
        return maybe_aware_utc(
            conn.execute(sa.select(sa.func.max(digests_table.c.created_at))).scalar()
        )


def queued_bodies(store: Store, body_ids: Iterable[int]) -> dict[int, QueuedBody]:
    ids = sorted(set(body_ids))
    if not ids:
        return {}
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(bodies_table).where(bodies_table.c.id.in_(ids))).all()
    return {row.id: QueuedBody(row.variant, row.subject, row.html, row.text) for row in rows}


# --- the web archive's copy of each digest ------------------------------------------------


def archived_digest_keys(store: Store) -> list[str]:
    """Keys of the digests whose archive page is kept in the database (so it can be
    restored), oldest first."""
    d, b = digests_table, bodies_table
    query = (
        sa.select(d.c.key)
        .join(b, b.c.digest_id == d.c.id)
        .where(b.c.variant == ARCHIVE_VARIANT)
        .order_by(d.c.id)
    )
    with store.engine.connect() as conn:
        return list(conn.execute(query).scalars())


def load_archive_body(store: Store, key: str) -> QueuedBody | None:
    """A digest's archive page (`html`) and its archive entry as JSON (`text`)."""
    d, b = digests_table, bodies_table
    query = (
        sa.select(b)
        .join(d, b.c.digest_id == d.c.id)
        .where(d.c.key == key, b.c.variant == ARCHIVE_VARIANT)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return QueuedBody(row.variant, row.subject, row.html, row.text) if row else None


# --- when the scheduled digest was last considered -----------------------------------------


def slot_handled_at(store: Store) -> datetime | None:
    """When `run` last handled a `schedule.newsletter` slot, digest or not (a digest
    nobody receives is not recorded, but its slot is spent all the same)."""
    with store.engine.connect() as conn:
        value = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.key == NEWSLETTER_SLOT_KEY)
        ).scalar()
    return datetime.fromisoformat(value) if value else None


def set_slot_handled_at(store: Store, when: datetime) -> None:
    value = to_utc(when).isoformat()  # type: ignore[union-attr]
    with store.engine.begin() as conn:
        updated = conn.execute(
            sa.update(meta_table).where(meta_table.c.key == NEWSLETTER_SLOT_KEY).values(value=value)
        )
        if not updated.rowcount:
            conn.execute(sa.insert(meta_table).values(key=NEWSLETTER_SLOT_KEY, value=value))
