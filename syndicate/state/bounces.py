"""What bounce processing remembers: each report read from the bounce mailbox, once, with
what it did (bounce_reports), and each processing run (bounce_runs, for `status`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from syndicate.state.outbox import cancel_unsent, wait_in_flight
from syndicate.state.schema import bounce_reports_table, bounce_runs_table, subscribers_table
from syndicate.state.store import Store, aware_utc, chunks, maybe_aware_utc, to_utc

# A subscriber these statuses apply to: an unsubscribed reader is not made `bounced`,
# nor a bounced one `unsubscribed`.
_CHANGEABLE = ("active", "pending")


@dataclass(frozen=True, slots=True)
class ReportRecord:
    """One report as recorded: what it was, whom it concerned, what we did about it."""

    report_id: str
    source: str
    kind: str  # hard | soft | complaint | unsubscribe | other (not a report)
    subscriber_id: int | None
    digest_id: int | None
    address: str
    status: str
    detail: str
    action: str  # bounced | unsubscribed | counted | none (why in the report's line)


@dataclass(frozen=True, slots=True)
class BounceRun:
    started_at: datetime
    finished_at: datetime | None
    mailbox: str
    outcome: str
    messages: int
    new_reports: int
    bounced: int
    unsubscribed: int
    not_reports: int
    message: str | None


def processed(store: Store, report_ids: Iterable[str]) -> set[str]:
    """Which of these reports were recorded before (by an earlier or a killed run)."""
    ids = sorted(set(report_ids))
    found: set[str] = set()
    r = bounce_reports_table
    with store.engine.connect() as conn:
        for chunk in chunks(ids):
            found.update(
                conn.execute(sa.select(r.c.report_id).where(r.c.report_id.in_(chunk))).scalars()
            )
    return found


def soft_bounces(store: Store, subscriber_id: int, since: datetime) -> int:
    """Soft bounces recorded for a subscriber since `since`."""
    r = bounce_reports_table
    query = sa.select(sa.func.count()).where(
        r.c.subscriber_id == subscriber_id, r.c.kind == "soft", r.c.received_at >= to_utc(since)
    )
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def record_report(
    store: Store, record: ReportRecord, now: datetime, new_status: str | None = None
) -> bool:
    """Record a report and, with `new_status` (`bounced`, `unsubscribed`), move its
    subscriber there (from active or pending only), cancelling what is queued for them:
    one transaction, so a run killed at any point has done both or neither. An
    unsubscribe returns once no message to them is in flight (as everywhere).
    -> False if the report was recorded already (another run got there first)."""
    values = {
        "report_id": record.report_id,
        "source": record.source[:512],
        "kind": record.kind,
        "subscriber_id": record.subscriber_id,
        "digest_id": record.digest_id,
        "address": record.address[:320],
        "status": record.status[:32],
        "detail": record.detail[:2000],
        "action": record.action[:64],
        "received_at": to_utc(now),
    }
    s = subscribers_table
    try:
        with store.engine.begin() as conn:
            conn.execute(sa.insert(bounce_reports_table).values(**values))
            if new_status and record.subscriber_id is not None:
                stamp = {"unsubscribed_at": to_utc(now)} if new_status == "unsubscribed" else {}
                conn.execute(
                    sa.update(s)
                    .where(s.c.id == record.subscriber_id, s.c.status.in_(_CHANGEABLE))
                    .values(status=new_status, **stamp)
                )
                cancel_unsent(conn, record.subscriber_id)
    except IntegrityError:
        return False
    if new_status == "unsubscribed" and record.subscriber_id is not None:
        wait_in_flight(store, record.subscriber_id)
    return True


def start_bounce_run(store: Store, mailbox: str, now: datetime) -> int:
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.insert(bounce_runs_table).values(
                started_at=to_utc(now), mailbox=mailbox[:512], outcome="running"
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


def finish_bounce_run(
    store: Store,
    run_id: int,
    now: datetime,
    outcome: str,
    message: str | None = None,
    **counts: int,
) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(bounce_runs_table)
            .where(bounce_runs_table.c.id == run_id)
            .values(finished_at=to_utc(now), outcome=outcome, message=message, **counts)
        )


def last_bounce_run(store: Store) -> BounceRun | None:
    b = bounce_runs_table
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(b).order_by(b.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    return BounceRun(
        started_at=aware_utc(row.started_at),
        finished_at=maybe_aware_utc(row.finished_at),
        mailbox=row.mailbox,
        outcome=row.outcome,
        messages=row.messages,
        new_reports=row.new_reports,
        bounced=row.bounced,
        unsubscribed=row.unsubscribed,
        not_reports=row.not_reports,
        message=row.message,
    )
