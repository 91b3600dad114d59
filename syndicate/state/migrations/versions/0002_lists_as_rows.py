"""Lists become rows: a post's tags and categories, a digest's announced posts and a
subscriber's topics move from tab-joined TEXT columns into tables of their own
(post_tags, post_categories, digest_posts, subscriber_topics), in their order.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BATCH = 5000  # rows per INSERT while copying: a million subscribers fit in little memory

# (owner table, its key, the joined column, the new table, the new table's key, item column)
LISTS = (
    ("posts", "source", "tags", "post_tags", "source", "tag"),
    ("posts", "source", "categories", "post_categories", "source", "category"),
    ("digests", "id", "post_sources", "digest_posts", "digest_id", "source"),
    ("subscribers", "id", "topics", "subscriber_topics", "subscriber_id", "topic"),
)
JOINED = (
    ("posts", ("tags", "categories")),
    ("digests", ("post_sources",)),
    ("subscribers", ("topics",)),
)


def _create_tables() -> None:
    for owner, owner_key, item in (
        ("post_tags", ("source", sa.String(1024), "posts.source"), "tag"),
        ("post_categories", ("source", sa.String(1024), "posts.source"), "category"),
        ("subscriber_topics", ("subscriber_id", sa.Integer(), "subscribers.id"), "topic"),
    ):
        name, kind, target = owner_key
        op.create_table(
            owner,
            sa.Column(
                name,
                kind,
                sa.ForeignKey(target, ondelete="CASCADE", onupdate="CASCADE"),
                primary_key=True,
            ),
            sa.Column("position", sa.Integer, primary_key=True),
            sa.Column(item, sa.Text, nullable=False),
        )
    op.create_table(
        "digest_posts",
        sa.Column(
            "digest_id",
            sa.Integer,
            sa.ForeignKey("digests.id", ondelete="CASCADE", onupdate="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("source", sa.String(1024), nullable=False),
    )
    op.create_index("ix_digest_posts_source", "digest_posts", ["source"])


def _split_rows(
    conn: sa.Connection, owner: str, owner_key: str, column: str, key: str, item: str
) -> Iterator[list[dict[str, object]]]:
    table = sa.table(owner, sa.column(owner_key), sa.column(column))
    query = sa.select(table.c[owner_key], table.c[column]).where(table.c[column] != "")
    batch: list[dict[str, object]] = []
    for owner_id, joined in conn.execute(query):
        items = [x for x in joined.split("\t") if x]
        batch.extend({key: owner_id, "position": n, item: x} for n, x in enumerate(items))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def upgrade() -> None:
    _create_tables()
    conn = op.get_bind()
    for owner, owner_key, column, target, key, item in LISTS:
        table = sa.table(target, sa.column(key), sa.column("position"), sa.column(item))
        for batch in _split_rows(conn, owner, owner_key, column, key, item):
            conn.execute(sa.insert(table), batch)
    for owner, columns in JOINED:
        with op.batch_alter_table(owner) as batch_op:
            for column in columns:
                batch_op.drop_column(column)
    _set_schema_version(conn, "2")


def downgrade() -> None:
    conn = op.get_bind()
    for owner, columns in JOINED:
        with op.batch_alter_table(owner) as batch_op:
            for column in columns:
                batch_op.add_column(sa.Column(column, sa.Text, nullable=False, server_default=""))
    for owner, owner_key, column, target, key, item in LISTS:
        source = sa.table(target, sa.column(key), sa.column("position"), sa.column(item))
        rows = conn.execute(
            sa.select(source.c[key], source.c[item]).order_by(source.c[key], source.c.position)
        ).all()
        joined: dict[object, list[str]] = {}
        for owner_id, value in rows:
            joined.setdefault(owner_id, []).append(value)
        table = sa.table(owner, sa.column(owner_key), sa.column(column))
        for owner_id, values in joined.items():
            conn.execute(
                sa.update(table)
                .where(table.c[owner_key] == owner_id)
                .values({column: "\t".join(values)})
            )
    op.drop_index("ix_digest_posts_source", "digest_posts")
    for target in ("digest_posts", "subscriber_topics", "post_categories", "post_tags"):
        op.drop_table(target)
    _set_schema_version(conn, "1")


def _set_schema_version(conn: sa.Connection, version: str) -> None:
    """Kept beside alembic_version for releases before Alembic: they read this key and
    refuse a database newer than they understand, instead of writing to it."""
    meta = sa.table("syndicate_meta", sa.column("key"), sa.column("value"))
    conn.execute(sa.update(meta).where(meta.c.key == "schema_version").values(value=version))
