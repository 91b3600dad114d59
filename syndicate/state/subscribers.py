"""The mailing list: subscribers, their topics (subscriber_topics, in order) and the
moves between pending, active, unsubscribed and bounced. Leaving `active` cancels what
is still queued for the address, in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from syndicate.models import Subscriber
from syndicate.newsletter.subscribers import CSVRow, address_key
from syndicate.state.outbox import cancel_unsent, wait_in_flight
from syndicate.state.schema import outbox_table, subscriber_topics_table, subscribers_table
from syndicate.state.store import Store, aware_utc, maybe_aware_utc, to_utc

_STAMPS = ("confirmed_at", "unsubscribed_at", "created_at")


def _subscribers(conn: Connection, where: sa.ColumnElement[bool] | None = None) -> list[Subscriber]:
    """The subscribers matching `where` (all when None), ordered by address, with topics."""
    s, t = subscribers_table, subscriber_topics_table
    query = sa.select(s).order_by(s.c.email_key)
    topics_query = sa.select(t.c.subscriber_id, t.c.topic).order_by(t.c.subscriber_id, t.c.position)
    if where is not None:
        query = query.where(where)
        topics_query = topics_query.where(t.c.subscriber_id.in_(sa.select(s.c.id).where(where)))
    topics: dict[int, list[str]] = {}
    for subscriber_id, topic in conn.execute(topics_query):
        topics.setdefault(subscriber_id, []).append(topic)
    return [
        Subscriber(
            id=row.id,
            email=row.email,
            name=row.name,
            status=row.status,
            topics=tuple(topics.get(row.id, ())),
            created_at=aware_utc(row.created_at),
            confirmed_at=maybe_aware_utc(row.confirmed_at),
            unsubscribed_at=maybe_aware_utc(row.unsubscribed_at),
        )
        for row in conn.execute(query)
    ]


def _one(store: Store, where: sa.ColumnElement[bool]) -> Subscriber | None:
    with store.engine.connect() as conn:
        found = _subscribers(conn, where)
    return found[0] if found else None


def find_subscriber(store: Store, email: str) -> Subscriber | None:
    return _one(store, subscribers_table.c.email_key == address_key(email))


def get_subscriber(store: Store, subscriber_id: int) -> Subscriber | None:
    return _one(store, subscribers_table.c.id == subscriber_id)


def list_subscribers(store: Store, status: str | None = None) -> list[Subscriber]:
    with store.engine.connect() as conn:
        return _subscribers(conn, subscribers_table.c.status == status if status else None)


def _set_topics(conn: Connection, subscriber_id: int, topics: Sequence[str]) -> None:
    t = subscriber_topics_table
    conn.execute(sa.delete(t).where(t.c.subscriber_id == subscriber_id))
    if topics:
        conn.execute(
            sa.insert(t),
            [
                {"subscriber_id": subscriber_id, "position": n, "topic": topic}
                for n, topic in enumerate(topics)
            ],
        )


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
        "created_at": to_utc(now),
        "confirmed_at": to_utc(now) if status == "active" else None,
        "unsubscribed_at": to_utc(now) if status == "unsubscribed" else None,
    }
    try:
        with store.engine.begin() as conn:
            result = conn.execute(sa.insert(subscribers_table).values(**values))
            _set_topics(conn, int(result.inserted_primary_key[0]), topics)  # type: ignore[index]
    except IntegrityError:
        existing = find_subscriber(store, email)
        assert existing is not None
        return existing, False
    created = find_subscriber(store, email)
    assert created is not None
    return created, True


def update_subscriber(store: Store, subscriber_id: int, **values: object) -> None:
    """Change a subscriber. Leaving `active` cancels their unsent outbox rows in the same
    transaction, and an unsubscribe returns only once no message to them is in flight:
    nothing is sent to an address after its unsubscribe has returned."""
    for key in _STAMPS:
        if key in values:
            values[key] = to_utc(values[key])  # type: ignore[arg-type]
    topics = values.pop("topics", None)
    status = values.get("status")
    with store.engine.begin() as conn:
        if values:
            conn.execute(
                sa.update(subscribers_table)
                .where(subscribers_table.c.id == subscriber_id)
                .values(**values)
            )
        if topics is not None:
            _set_topics(conn, subscriber_id, topics)  # type: ignore[arg-type]
        if status is not None and status != "active":
            cancel_unsent(conn, subscriber_id)
    if status == "unsubscribed":
        wait_in_flight(store, subscriber_id)


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
    """Delete a subscriber, their topics and their outbox history. -> whether there was one."""
    found = find_subscriber(store, email)
    if found is None:
        return False
    # Unsubscribe first (cancel, wait for what is in flight), so no send can claim a row
    # between our look-up and the delete.
    update_subscriber(store, found.id, status="unsubscribed")
    with store.engine.begin() as conn:
        conn.execute(sa.delete(outbox_table).where(outbox_table.c.subscriber_id == found.id))
        conn.execute(
            sa.delete(subscriber_topics_table).where(
                subscriber_topics_table.c.subscriber_id == found.id
            )
        )
        conn.execute(sa.delete(subscribers_table).where(subscribers_table.c.id == found.id))
    return True
