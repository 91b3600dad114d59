"""Outbox rows for several senders: a lease (who holds the row, until when), and the
recipient's domain (for per-destination outcomes and throttling in SQL), filled in for
the rows already there; an index for finding the open rows of a big outbox quickly.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(128), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("domain", sa.String(255), nullable=False, server_default=""))
    conn = op.get_bind()
    outbox = sa.table("outbox", sa.column("id"), sa.column("email"), sa.column("domain"))
    if conn.dialect.name == "postgresql":  # after the last @, as rpartition does below
        conn.execute(
            sa.update(outbox).values(
                domain=sa.func.lower(sa.func.substring(outbox.c.email, "[^@]*$"))
            )
        )
    else:
        rows = conn.execute(sa.select(outbox.c.id, outbox.c.email)).all()
        update = sa.update(outbox).where(outbox.c.id == sa.bindparam("row_id"))
        for start in range(0, len(rows), BATCH):
            conn.execute(
                update.values(domain=sa.bindparam("row_domain")),
                [
                    {"row_id": row_id, "row_domain": email.rpartition("@")[2].lower()}
                    for row_id, email in rows[start : start + BATCH]
                ],
            )
    op.create_index("ix_outbox_open", "outbox", ["status", "digest_id", "id"])
    meta = sa.table("syndicate_meta", sa.column("key"), sa.column("value"))
    conn.execute(sa.update(meta).where(meta.c.key == "schema_version").values(value="3"))


def downgrade() -> None:
    op.drop_index("ix_outbox_open", "outbox")
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_column("domain")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("claimed_by")
    meta = sa.table("syndicate_meta", sa.column("key"), sa.column("value"))
    conn = op.get_bind()
    conn.execute(sa.update(meta).where(meta.c.key == "schema_version").values(value="2"))
