"""syndicate.state.posts: on SQLite the post states are written with plain sqlite3
(state/runlog.save_states); the rows must be those SQLAlchemy writes (save_portably, the
PostgreSQL path), for every value a state can hold."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from syndicate.models import PostState
from syndicate.state import posts
from syndicate.state.store import Store

PARIS = timezone(timedelta(hours=2))


def states(version: int) -> list[PostState]:
    """1,200 states (more than one IN (...) of 500), of every shape: times in other zones
    and with microseconds, None times, no tags, repeated and non-ASCII tags."""
    made = []
    for n in range(1200):
        due = datetime(2025, 5, 1, 12, 30, tzinfo=PARIS) - timedelta(hours=n, microseconds=n)
        made.append(
            PostState(
                source=f"posts/{n:04}-é.md",
                post_id=f"https://blog.test/p/{n}/",
                url=f"https://blog.test/p/{n}/",
                title=f"Post {n} – “{version}”",
                content_hash=f"{n:064x}",
                due_at=due,
                first_published_at=None if n % 3 else due.astimezone(UTC),
                updated_at=due + timedelta(days=version) if n % 2 else None,
                withdrawn_at=due if n % 7 == 0 else None,
                status="withdrawn" if n % 7 == 0 else "published",
                tags=tuple(f"tag-{(n + version) % k}" for k in range(1, n % 5 + 1)),
                categories=("Notes", "Café")[: (n + version) % 3],
            )
        )
    return made


def saved(path: Path, fast: bool) -> tuple[list[object], dict[str, PostState]]:
    """Two saves (the second replaces every row, lists included): the raw rows and what
    load_post_states reads back."""
    store = Store(f"sqlite:///{path}")
    try:
        for version in (1, 2):
            with store.transaction() as conn:
                if fast:
                    posts.save_post_states(conn, states(version))
                else:
                    posts.save_portably(conn, states(version))
        loaded = posts.load_post_states(store)
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        rows = [
            db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()  # noqa: S608
            for table in ("posts", "post_tags", "post_categories")
        ]
    return rows, loaded


def test_the_sqlite_rows_are_those_sqlalchemy_writes(tmp_path: Path) -> None:
    fast_rows, fast_loaded = saved(tmp_path / "fast.db", fast=True)
    portable_rows, portable_loaded = saved(tmp_path / "portable.db", fast=False)
    assert fast_rows == portable_rows
    assert fast_loaded == portable_loaded
    assert len(fast_loaded) == 1200
    assert fast_loaded["posts/0001-é.md"].due_at.tzinfo is not None
    assert fast_loaded["posts/0004-é.md"].tags == tuple(f"tag-{6 % k}" for k in range(1, 5))
