"""What the state remembers of each post: its key, id, URL, content hash, dates and
status, with its tags and categories as rows (post_tags, post_categories)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syndicate.models import PostState
from syndicate.record import replace
from syndicate.state.schema import (
    POST_KEYS_FLAG,
    digest_posts_table,
    meta_table,
    post_categories_table,
    post_tags_table,
    posts_table,
)
from syndicate.state.store import Store, aware_utc, chunks, maybe_aware_utc, to_utc

# (table, its item column) for each list a post has, in PostState's field order.
_LISTS = ((post_tags_table, "tag"), (post_categories_table, "category"))


def load_post_states(store: Store) -> dict[str, PostState]:
    """Every post the state knows, by key."""
    with store.engine.connect() as conn:
        return _load(conn)


def _load(conn: Connection) -> dict[str, PostState]:
    rows = conn.execute(sa.select(posts_table)).all()
    tags, categories = (_lists(conn, table, item) for table, item in _LISTS)
    return {
        row.source: PostState(
            source=row.source,
            post_id=row.post_id,
            url=row.url,
            title=row.title,
            content_hash=row.content_hash,
            due_at=aware_utc(row.due_at),
            first_published_at=maybe_aware_utc(row.first_published_at),
            updated_at=maybe_aware_utc(row.updated_at),
            withdrawn_at=maybe_aware_utc(row.withdrawn_at),
            status=row.status,
            tags=tuple(tags.get(row.source, ())),
            categories=tuple(categories.get(row.source, ())),
        )
        for row in rows
    }


def _lists(conn: Connection, table: sa.Table, item: str) -> dict[str, list[str]]:
    """source -> its items in order, from one list table."""
    found: dict[str, list[str]] = {}
    query = sa.select(table.c.source, table.c[item]).order_by(table.c.source, table.c.position)
    for source, value in conn.execute(query):
        found.setdefault(source, []).append(value)
    return found


def save_post_states(conn: Connection, states: Iterable[PostState]) -> None:
    """Insert or replace these rows and their lists (portable: delete then insert, in the
    caller's transaction)."""
    states = list(states)
    if not states:
        return
    if conn.dialect.name == "sqlite":  # the same rows, without SQLAlchemy's per-row work
        from syndicate.state.runlog import save_states  # (10,000 posts: 0.28 -> 0.14 s)

        save_states(cast(sqlite3.Connection, conn.connection.driver_connection), states)
    else:
        save_portably(conn, states)


def save_portably(conn: Connection, states: list[PostState]) -> None:
    """`save_post_states` through SQLAlchemy, as on PostgreSQL."""
    _delete(conn, [s.source for s in states])
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
            }
            for s in states
        ],
    )
    for (table, item), lists in zip(
        _LISTS, ([s.tags for s in states], [s.categories for s in states]), strict=True
    ):
        rows = [
            {"source": s.source, "position": n, item: value}
            for s, values in zip(states, lists, strict=True)
            for n, value in enumerate(values)
        ]
        if rows:
            conn.execute(sa.insert(table), rows)


def _delete(conn: Connection, sources: list[str]) -> None:
    for chunk in chunks(sources):
        for table, _item in _LISTS:
            conn.execute(sa.delete(table).where(table.c.source.in_(chunk)))
        conn.execute(sa.delete(posts_table).where(posts_table.c.source.in_(chunk)))


def migrate_post_keys(
    store: Store, mapper_factory: Callable[[], Callable[[str], str | None]]
) -> int:
    """Once per database: rewrite the keys of the posts and of the digests' announced
    posts from the old working-directory-relative form. `mapper_factory()` gives old key
    -> new key (None: no such file now; the key is kept). Two old rows for one post (the
    bug this fixes) become one, the published one kept. -> how many keys changed."""
    flag_key, flag_value = POST_KEYS_FLAG
    with store.engine.begin() as conn:
        flag = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.key == flag_key)
        ).first()
        if flag is not None:
            return 0
        states = _load(conn)
        announced = conn.execute(sa.select(digest_posts_table.c.source).distinct()).scalars().all()
        mapper = mapper_factory() if states or announced else (lambda old: None)
        renamed = {old: new for old in {*states, *announced} if (new := mapper(old)) and new != old}
        if renamed:
            kept: dict[str, PostState] = {}
            for state in sorted(states.values(), key=_preference):
                key = renamed.get(state.source, state.source)
                kept.setdefault(key, replace(state, source=key))
            _delete(conn, list(states))
            save_post_states(conn, kept.values())
            for old, new in renamed.items():
                conn.execute(
                    sa.update(digest_posts_table)
                    .where(digest_posts_table.c.source == old)
                    .values(source=new)
                )
        conn.execute(sa.insert(meta_table).values(key=flag_key, value=flag_value))
    return len(renamed)


def _preference(state: PostState) -> tuple[bool, datetime]:
    """Of two rows for one post, keep the published one, then the first published."""
    never = datetime.max.replace(tzinfo=UTC)
    return (state.status != "published", state.first_published_at or never)
