"""The mailing list's SQL: subscribers, queued digests and the outbox (SQLAlchemy Core).

Every query is portable SQL, so PostgreSQL works by changing state.url. The outbox is
written before anything is sent, in one transaction with its digest; each row then moves
queued -> sending -> sent (or deferred / bounced / failed), one commit per step.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from syndicate.errors import DigestExistsError
from syndicate.models import Subscriber
from syndicate.newsletter.subscribers import CSVRow, address_key
from syndicate.state.store import (
    Store,
    aware_utc,
    bodies_table,
    digests_table,
    meta_table,
    outbox_table,
    subscribers_table,
    to_utc,
)

# Outbox row states.
QUEUED, SENDING, SENT, DEFERRED, BOUNCED, FAILED, CANCELLED = (
    "queued", "sending", "sent", "deferred", "bounced", "failed", "cancelled",
)  # fmt: skip


# --- subscribers ------------------------------------------------------------------------


def _subscriber(row: sa.Row) -> Subscriber:  # type: ignore[type-arg]
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        status=row.status,
        topics=tuple(t for t in row.topics.split("\t") if t),
        created_at=aware_utc(row.created_at),
        confirmed_at=aware_utc(row.confirmed_at) if row.confirmed_at else None,
        unsubscribed_at=aware_utc(row.unsubscribed_at) if row.unsubscribed_at else None,
    )


def find_subscriber(store: Store, email: str) -> Subscriber | None:
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(subscribers_table).where(subscribers_table.c.email_key == address_key(email))
        ).first()
    return _subscriber(row) if row else None


def get_subscriber(store: Store, subscriber_id: int) -> Subscriber | None:
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(subscribers_table).where(subscribers_table.c.id == subscriber_id)
        ).first()
    return _subscriber(row) if row else None


def list_subscribers(store: Store, status: str | None = None) -> list[Subscriber]:
    query = sa.select(subscribers_table).order_by(subscribers_table.c.email_key)
    if status:
        query = query.where(subscribers_table.c.status == status)
    with store.engine.connect() as conn:
        return [_subscriber(row) for row in conn.execute(query)]


def add_subscriber(
    store: Store,
    email: str,
    name: str,
    topics: tuple[str, ...],
    status: str,
    now: datetime,
) -> tuple[Subscriber, bool]:
    """Insert a subscriber, or return the existing one unchanged. -> (subscriber, created)."""
    values = {
        "email": email,
        "email_key": address_key(email),
        "name": name,
        "status": status,
        "topics": "\t".join(topics),
        "created_at": to_utc(now),
        "confirmed_at": to_utc(now) if status == "active" else None,
        "unsubscribed_at": to_utc(now) if status == "unsubscribed" else None,
    }
    try:
        with store.engine.begin() as conn:
            conn.execute(sa.insert(subscribers_table).values(**values))
    except IntegrityError:
        existing = find_subscriber(store, email)
        assert existing is not None
        return existing, False
    created = find_subscriber(store, email)
    assert created is not None
    return created, True


# How long an unsubscribe waits for a message to that address already in an SMTP
# transaction (claimed before the request came) to finish: see wait_in_flight.
IN_FLIGHT_WAIT_SECONDS = 10.0


def update_subscriber(store: Store, subscriber_id: int, **values: object) -> None:
    """Change a subscriber. Leaving `active` cancels their unsent outbox rows in the same
    transaction, and an unsubscribe returns only once no message to them is in flight:
    nothing is sent to an address after its unsubscribe has returned."""
    for key in ("confirmed_at", "unsubscribed_at", "created_at"):
        if key in values:
            values[key] = to_utc(values[key])  # type: ignore[arg-type]
    if "topics" in values:
        values["topics"] = "\t".join(values["topics"])  # type: ignore[arg-type]
    status = values.get("status")
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(subscribers_table)
            .where(subscribers_table.c.id == subscriber_id)
            .values(**values)
        )
        if status is not None and status != "active":
            _cancel_unsent(conn, subscriber_id)
    if status == "unsubscribed":
        wait_in_flight(store, subscriber_id)


def _cancel_unsent(conn: sa.Connection, subscriber_id: int) -> None:
    """Queued and deferred rows of this subscriber will never be sent. A row `sending` is
    left alone: it is either in flight (wait_in_flight) or left by a killed run, and then
    claim_row refuses it, since the subscriber is no longer active."""
    o = outbox_table
    conn.execute(
        sa.update(o)
        .where(o.c.subscriber_id == subscriber_id, o.c.status.in_((QUEUED, DEFERRED)))
        .values(status=CANCELLED, last_response="subscriber no longer active")
    )


def wait_in_flight(
    store: Store, subscriber_id: int, timeout: float = IN_FLIGHT_WAIT_SECONDS
) -> bool:
    """Wait until no row of this subscriber is `sending`, at most `timeout` seconds.

    A row claimed before the unsubscribe committed may be mid-transaction with the SMTP
    server; waiting for it means that when an unsubscribe returns, nothing more reaches
    the address. A row left `sending` by a killed run never finishes: the wait gives up
    after `timeout` (that row is never resent: claim_row checks the subscriber).
    -> whether nothing was in flight any more."""
    o = outbox_table
    query = sa.select(sa.func.count()).where(
        o.c.subscriber_id == subscriber_id, o.c.status == SENDING
    )
    deadline = time.monotonic() + timeout
    while True:
        with store.engine.connect() as conn:
            if not conn.execute(query).scalar():
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def set_status(store: Store, subscriber_id: int, status: str, now: datetime) -> None:
    """Move a subscriber to a status, stamping when it happened."""
    values: dict[str, object] = {"status": status}
    if status == "active":
        values["confirmed_at"] = now
    if status == "unsubscribed":
        values["unsubscribed_at"] = now
    update_subscriber(store, subscriber_id, **values)


def confirm_pending(store: Store, subscriber_id: int, now: datetime) -> bool:
    """pending -> active, and nothing else: a confirm link never revives an unsubscribed
    or bounced address. One statement, so it cannot race an unsubscribe. -> whether it did."""
    s = subscribers_table
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.update(s)
            .where(s.c.id == subscriber_id, s.c.status == "pending")
            .values(status="active", confirmed_at=to_utc(now))
        )
    return bool(result.rowcount)


def renew_pending(store: Store, subscriber_id: int, now: datetime) -> Subscriber | None:
    """An unsubscribed or bounced address that subscribes again starts a new pending state
    (`created_at` = now, the moment of this subscription): confirm links made for an
    earlier one are bound to the old state and no longer verify."""
    s = subscribers_table
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(s)
            .where(s.c.id == subscriber_id, s.c.status.in_(("unsubscribed", "bounced")))
            .values(status="pending", created_at=to_utc(now))
        )
    return get_subscriber(store, subscriber_id)


@dataclass(frozen=True, slots=True)
class ImportCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0


def import_subscribers(
    store: Store, rows: Iterable[CSVRow], has_topics: bool, now: datetime
) -> ImportCounts:
    """Merge CSV rows into the list: new addresses are added; for known ones a given name
    or status (never re-activating an unsubscribed or bounced reader) replaces theirs,
    and so do topics when the file has a topics column. Importing twice changes nothing."""
    added = updated = unchanged = 0
    for row in rows:
        found, created = add_subscriber(
            store, row.email, row.name, row.topics, row.status or "active", now
        )
        if created:
            added += 1
            continue
        changes = _import_changes(row, found, has_topics)
        if changes:
            update_subscriber(store, found.id, **changes)
            updated += 1
        else:
            unchanged += 1
    return ImportCounts(added, updated, unchanged)


def _import_changes(row: CSVRow, found: Subscriber, has_topics: bool) -> dict[str, object]:
    changes: dict[str, object] = {}
    if row.name and row.name != found.name:
        changes["name"] = row.name
    if row.topics != found.topics and (row.topics or has_topics):
        changes["topics"] = row.topics
    if (
        row.status
        and row.status != found.status
        and found.status not in ("unsubscribed", "bounced")
    ):
        changes["status"] = row.status
    return changes


def remove_subscriber(store: Store, email: str) -> bool:
    """Delete a subscriber and their outbox history. -> whether there was one."""
    found = find_subscriber(store, email)
    if found is None:
        return False
    # Unsubscribe first (cancel, wait for what is in flight), so no send can claim a row
    # between our look-up and the delete.
    update_subscriber(store, found.id, status="unsubscribed")
    with store.engine.begin() as conn:
        conn.execute(sa.delete(outbox_table).where(outbox_table.c.subscriber_id == found.id))
        conn.execute(sa.delete(subscribers_table).where(subscribers_table.c.id == found.id))
    return True


# --- digests and the outbox -----------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    digest_id: int
    digest_key: str
    subscriber_id: int
    email: str
    name: str
    status: str
    attempts: int
    body_id: int


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
    """Record a digest, its bodies and one outbox row per recipient, all or nothing."""
    try:
        with store.engine.begin() as conn:
            digest_id = conn.execute(
                sa.insert(digests_table).values(
                    key=key,
                    posts_hash=posts_hash,
                    created_at=to_utc(now),
                    since=to_utc(since),
                    until=to_utc(until),
                    subject=subject,
                    post_sources="\t".join(post_sources),
                    status="queued",
                    archive_url=archive_url,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            body_ids: dict[str, int] = {}
            for body in bodies:
                body_ids[body.variant] = conn.execute(
                    sa.insert(bodies_table).values(
                        digest_id=digest_id,
                        variant=body.variant,
                        subject=body.subject,
                        html=body.html,
                        text=body.text,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            rows = [
                {
                    "digest_id": digest_id,
                    "subscriber_id": r.subscriber_id,
                    "body_id": body_ids[r.variant],
                    "email": r.email,
                    "name": r.name,
                    "status": QUEUED,
                    "attempts": 0,
                }
                for r in recipients
            ]
            if rows:
                conn.execute(sa.insert(outbox_table), rows)
    except IntegrityError as exc:
        raise DigestExistsError(str(exc.orig)) from None
    return int(digest_id)


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
        return (
            conn.execute(
                sa.select(digests_table.c.id).where(digests_table.c.posts_hash == posts_hash)
            ).first()
            is not None
        )


def cancel_for_inactive(store: Store) -> int:
    """Unsent rows of subscribers who unsubscribed (or bounced) since they were queued are
    cancelled: nobody gets mail after saying stop."""
    o, s = outbox_table, subscribers_table
    inactive = sa.select(s.c.id).where(s.c.status != "active")
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.update(o)
            .where(o.c.status.in_((QUEUED, SENDING, DEFERRED)), o.c.subscriber_id.in_(inactive))
            .values(status=CANCELLED, last_response="subscriber no longer active")
        )
        return int(result.rowcount or 0)


def due_rows(store: Store, now: datetime) -> list[OutboxRow]:
    """Rows to send now: queued, in doubt (`sending` when we hold the lock), or deferred
    whose retry time has come; oldest digest first."""
    o, d = outbox_table, digests_table
    query = (
        sa.select(o, d.c.key.label("digest_key"))
        .join(d, d.c.id == o.c.digest_id)
        .where(
            sa.or_(
                o.c.status.in_((QUEUED, SENDING)),
                sa.and_(o.c.status == DEFERRED, o.c.next_attempt_at <= to_utc(now)),
            )
        )
        .order_by(o.c.digest_id, o.c.id)
    )
    with store.engine.connect() as conn:
        return [
            OutboxRow(
                id=row.id,
                digest_id=row.digest_id,
                digest_key=row.digest_key,
                subscriber_id=row.subscriber_id,
                email=row.email,
                name=row.name,
                status=row.status,
                attempts=row.attempts,
                body_id=row.body_id,
            )
            for row in conn.execute(query)
        ]


def claim_row(store: Store, row_id: int, attempts: int) -> bool:
    """Mark a row `sending`, in the same statement that checks it is still open and its
    subscriber still active. An unsubscribe either committed before (the row is cancelled
    or its subscriber inactive: not claimed, and cancelled here) or waits for this message
    (wait_in_flight). -> whether the row is ours to send."""
    o, s = outbox_table, subscribers_table
    still_open = o.c.status.in_((QUEUED, SENDING, DEFERRED))
    active = sa.exists(sa.select(s.c.id).where(s.c.id == o.c.subscriber_id, s.c.status == "active"))
    with store.engine.begin() as conn:
        claimed = conn.execute(
            sa.update(o)
            .where(o.c.id == row_id, still_open, active)
            .values(status=SENDING, attempts=attempts)
        ).rowcount
        if claimed:
            return True
        conn.execute(
            sa.update(o)
            .where(o.c.id == row_id, still_open)
            .values(status=CANCELLED, last_response="subscriber no longer active")
        )
    return False


def waiting_rows(store: Store) -> tuple[int, datetime | None]:
    """Deferred rows waiting for their retry: how many, and the earliest retry time."""
    o = outbox_table
    with store.engine.connect() as conn:
        count, first = conn.execute(
            sa.select(sa.func.count(), sa.func.min(o.c.next_attempt_at)).where(
                o.c.status == DEFERRED
            )
        ).one()
    return int(count), aware_utc(first) if first else None


def queued_bodies(store: Store, body_ids: Iterable[int]) -> dict[int, QueuedBody]:
    ids = sorted(set(body_ids))
    if not ids:
        return {}
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(bodies_table).where(bodies_table.c.id.in_(ids))).all()
    return {row.id: QueuedBody(row.variant, row.subject, row.html, row.text) for row in rows}


def mark_row(store: Store, row_id: int, status: str, **values: object) -> None:
    """One state change of one outbox row, committed at once."""
    for key in ("next_attempt_at", "sent_at"):
        if key in values and values[key] is not None:
            values[key] = to_utc(values[key])  # type: ignore[arg-type]
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(outbox_table)
            .where(outbox_table.c.id == row_id)
            .values(status=status, **values)
        )


def finish_digests(store: Store) -> None:
    """A digest whose rows are all final (sent, bounced, failed) is `sent`."""
    o, d = outbox_table, digests_table
    open_rows = sa.select(o.c.id).where(
        o.c.digest_id == d.c.id, o.c.status.in_((QUEUED, SENDING, DEFERRED))
    )
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(d).where(d.c.status == "queued", ~sa.exists(open_rows)).values(status="sent")
        )


# --- the web archive's copy of each digest ------------------------------------------------

ARCHIVE_VARIANT = "archive"  # the body row holding a digest's public archive page


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

NEWSLETTER_SLOT_KEY = "newsletter_slot_handled_at"


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
