"""The outbox: one row per digest and recipient, written before anything is sent; each
row then moves queued -> sending -> sent (or deferred / bounced / failed / cancelled),
one commit per step (see delivery/outbox.py for why that order is crash-safe)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from syndicate.state.schema import digests_table, outbox_table, subscribers_table
from syndicate.state.store import Store, aware_utc, to_utc

# Outbox row states.
QUEUED, SENDING, SENT, DEFERRED, BOUNCED, FAILED, CANCELLED = (
    "queued", "sending", "sent", "deferred", "bounced", "failed", "cancelled",
)  # fmt: skip
OPEN = (QUEUED, SENDING, DEFERRED)  # not final: may still be sent

# How long an unsubscribe waits for a message to that address already in an SMTP
# transaction (claimed before the request came) to finish: see wait_in_flight.
IN_FLIGHT_WAIT_SECONDS = 10.0


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


def cancel_unsent(conn: sa.Connection, subscriber_id: int) -> None:
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


def cancel_for_inactive(store: Store) -> int:
    """Unsent rows of subscribers who unsubscribed (or bounced) since they were queued are
    cancelled: nobody gets mail after saying stop. Not a row `sending` under a live lease
    of another sender (PostgreSQL): that message may be in its SMTP transaction, and the
    unsubscribe waits for it (wait_in_flight); the row is cancelled when it is taken over."""
    o, s = outbox_table, subscribers_table
    inactive = sa.select(s.c.id).where(s.c.status != "active")
    unsent: sa.ColumnElement[bool] = o.c.status.in_((QUEUED, DEFERRED))
    if store.shared:
        unsent = sa.or_(unsent, sa.and_(o.c.status == SENDING, _unleased(sa.func.now())))
    else:
        unsent = o.c.status.in_(OPEN)  # one sender, under the run lock: none is in flight
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.update(o)
            .where(unsent, o.c.subscriber_id.in_(inactive))
            .values(status=CANCELLED, last_response="subscriber no longer active")
        )
        return int(result.rowcount or 0)


def _due(now: datetime) -> sa.ColumnElement[bool]:
    """Rows to send now: queued, in doubt (`sending`), or deferred whose time has come."""
    o = outbox_table
    return sa.or_(
        o.c.status.in_((QUEUED, SENDING)),
        sa.and_(o.c.status == DEFERRED, o.c.next_attempt_at <= to_utc(now)),
    )


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _unleased(at: Any) -> sa.ColumnElement[bool]:
    """Not leased by a live sender at `at` (a time, or the database's `now()`): never
    leased, or the lease has run out."""
    o = outbox_table
    return sa.or_(o.c.lease_until.is_(None), o.c.lease_until <= at)


@dataclass(frozen=True, slots=True)
class Lease:
    """Who leases outbox rows (a sender process: host, pid, a random part) and for how
    long; `shared`: other senders may work the same outbox (PostgreSQL), so their live
    leases are respected. On SQLite one sender at a time holds the run lock, and a row
    left `sending` under a lease is a killed run's: in doubt, sent again at once.

    A lease is about whether its holder is still alive, so it runs on a real clock, never
    on a run's `--now` (which only says what is due): on a shared database the database
    server's (`now()`), the one clock every host agrees on; `clock` replaces it in tests.
    A live sender renews its leases (renew_leases) long before they run out."""

    holder: str
    seconds: float
    shared: bool
    clock: Callable[[], datetime] | None = None

    def _now(self) -> Any:
        if self.clock is not None:
            return to_utc(self.clock())
        return sa.func.now() if self.shared else to_utc(_wall_clock())

    def until(self) -> Any:
        """When a lease taken now runs out (a value, or an SQL expression)."""
        return self._now() + timedelta(seconds=self.seconds)

    def free(self) -> sa.ColumnElement[bool]:
        """Not leased by a live sender: never leased, or its lease has run out."""
        return _unleased(self._now())


def lease_rows(
    store: Store, lease: Lease, now: datetime, limit: int, after: int = 0
) -> list[OutboxRow]:
    """Take up to `limit` due rows for this sender, oldest first (by id: a digest's rows
    come after an older digest's). On PostgreSQL the pick is `FOR UPDATE SKIP LOCKED`:
    senders picking at once get different rows, and none waits for another's pick. On
    SQLite `after` (the last id taken) makes each pick start where the last ended, so a
    delivery reads the outbox once, not once per lease."""
    o, d = outbox_table, digests_table
    pick = sa.select(o.c.id).where(_due(now)).order_by(o.c.id).limit(limit)
    if lease.shared:
        pick = pick.where(lease.free()).with_for_update(skip_locked=True)
    else:
        pick = pick.where(o.c.id > after)
    with store.engine.begin() as conn:
        ids = list(conn.execute(pick).scalars())
        if not ids:
            return []
        conn.execute(
            sa.update(o)
            .where(o.c.id.in_(ids))
            .values(claimed_by=lease.holder, lease_until=lease.until())
        )
        query = (
            sa.select(o, d.c.key.label("digest_key"))
            .join(d, d.c.id == o.c.digest_id)
            .where(o.c.id.in_(ids))
            .order_by(o.c.id)
        )
        return [_outbox_row(row) for row in conn.execute(query)]


def renew_leases(store: Store, lease: Lease) -> int:
    """The heartbeat of a live sender: every open row it holds gets a fresh lease, so a
    message slower than the lease (a server that takes its time) is never taken over.
    -> how many rows it holds."""
    o = outbox_table
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.update(o)
            .where(o.c.claimed_by == lease.holder, o.c.status.in_(OPEN))
            .values(lease_until=lease.until())
        )
        return int(result.rowcount or 0)


def release_leases(store: Store, lease: Lease) -> int:
    """A sender that stops (done, a fatal error, its run killed) gives back the rows it
    leased but never started, so another sender need not wait for the lease to run out.
    A row `sending` stays leased: it may be in flight, and is in doubt once the lease ends."""
    o = outbox_table
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.update(o)
            .where(o.c.claimed_by == lease.holder, o.c.status.in_((QUEUED, DEFERRED)))
            .values(claimed_by=None, lease_until=None)
        )
        return int(result.rowcount or 0)


def _outbox_row(row: sa.Row[Any]) -> OutboxRow:
    return OutboxRow(
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


def due_count(store: Store, now: datetime, shared: bool) -> int:
    """How many rows are due and not leased by another live sender."""
    o = outbox_table
    query = sa.select(sa.func.count()).select_from(o).where(_due(now))
    if shared:
        query = query.where(_unleased(sa.func.now()))
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def claim_row(store: Store, row_id: int, attempts: int, lease: Lease) -> bool:
    """Mark a row `sending` (its lease renewed), in the statement that checks it is still
    open, still ours, and its subscriber still active. An unsubscribe either committed
    before (the row is cancelled or its subscriber inactive: not claimed, and cancelled
    here) or waits for this message (wait_in_flight). A row whose lease ran out and that
    another sender took is left to it. -> whether the row is ours to send."""
    o, s = outbox_table, subscribers_table
    still_open = o.c.status.in_(OPEN)
    ours = o.c.claimed_by == lease.holder
    active = sa.exists(sa.select(s.c.id).where(s.c.id == o.c.subscriber_id, s.c.status == "active"))
    with store.engine.begin() as conn:
        claimed = conn.execute(
            sa.update(o)
            .where(o.c.id == row_id, still_open, ours, active)
            .values(status=SENDING, attempts=attempts, lease_until=lease.until())
        ).rowcount
        if claimed:
            return True
        conn.execute(
            sa.update(o)
            .where(o.c.id == row_id, still_open, ours, ~active)
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


def leased_elsewhere(store: Store, lease: Lease) -> tuple[int, datetime | None]:
    """Open rows another sender holds a live lease on: how many, and until when."""
    o = outbox_table
    query = sa.select(sa.func.count(), sa.func.max(o.c.lease_until)).where(
        o.c.status.in_(OPEN), o.c.claimed_by != lease.holder, ~lease.free()
    )
    with store.engine.connect() as conn:
        count, until = conn.execute(query).one()
    return int(count), aware_utc(until) if until else None


def mark_row(store: Store, row_id: int, lease: Lease, status: str, **values: object) -> None:
    """One state change of one of our rows, committed at once; the lease is given up. A
    row another sender took over (our lease ran out) is not ours to mark."""
    for key in ("next_attempt_at", "sent_at"):
        if key in values and values[key] is not None:
            values[key] = to_utc(values[key])  # type: ignore[arg-type]
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(outbox_table)
            .where(outbox_table.c.id == row_id, outbox_table.c.claimed_by == lease.holder)
            .values(status=status, claimed_by=None, lease_until=None, **values)
        )


def finish_digests(store: Store) -> None:
    """A digest whose rows are all final (sent, bounced, failed) is `sent`."""
    o, d = outbox_table, digests_table
    open_rows = sa.select(o.c.id).where(o.c.digest_id == d.c.id, o.c.status.in_(OPEN))
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(d).where(d.c.status == "queued", ~sa.exists(open_rows)).values(status="sent")
        )
