"""The runs table: one row per publishing cycle, so `status` can say what happened and
a run that died mid-way (kill -9, power loss) is found and marked `interrupted`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syndicate.state.schema import runs_table
from syndicate.state.store import Store, aware_utc, maybe_aware_utc, to_utc


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


def start_run(store: Store, kind: str, started_at: datetime) -> int:
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.insert(runs_table).values(
                kind=kind, started_at=to_utc(started_at), outcome="running"
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


def finish_run(conn: Connection, run_id: int, finished_at: datetime, **counts: object) -> None:
    """Record the outcome, in the transaction that records what the run published."""
    conn.execute(
        sa.update(runs_table)
        .where(runs_table.c.id == run_id)
        .values(finished_at=to_utc(finished_at), **counts)
    )


def fail_run(store: Store, run_id: int, finished_at: datetime, message: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(runs_table)
            .where(runs_table.c.id == run_id)
            .values(finished_at=to_utc(finished_at), outcome="failed", message=message[:2000])
        )


def mark_interrupted(store: Store, finished_at: datetime) -> int:
    """Runs still 'running' while we hold the lock died mid-way (kill -9, power loss)."""
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.update(runs_table)
            .where(runs_table.c.outcome == "running")
            .values(outcome="interrupted", finished_at=to_utc(finished_at))
        )
        return int(result.rowcount or 0)


def recent_runs(store: Store, limit: int = 5) -> list[RunRecord]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(runs_table).order_by(runs_table.c.id.desc()).limit(limit)
        ).all()
    return [
        RunRecord(
            id=row.id,
            kind=row.kind,
            started_at=aware_utc(row.started_at),
            finished_at=maybe_aware_utc(row.finished_at),
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
