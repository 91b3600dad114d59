"""Bounce processing: every report read from the bounce mailbox, once (bounce_reports,
keyed by the report's Message-ID or the hash of its bytes), and each processing run
(bounce_runs), for `status`.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounce_reports",
        sa.Column("report_id", sa.String(255), primary_key=True),
        sa.Column("source", sa.String(512), nullable=False),  # where it was read
        sa.Column("kind", sa.String(16), nullable=False),  # hard|soft|complaint|unsubscribe|other
        sa.Column("subscriber_id", sa.Integer, nullable=True),  # none: nobody of ours
        sa.Column("digest_id", sa.Integer, nullable=True),
        sa.Column("address", sa.String(320), nullable=False, server_default=""),
        sa.Column("status", sa.String(32), nullable=False, server_default=""),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("action", sa.String(64), nullable=False, server_default=""),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_bounce_reports_subscriber", "bounce_reports", ["subscriber_id", "kind", "received_at"]
    )
    op.create_table(
        "bounce_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mailbox", sa.String(512), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),  # running | ok | failed
        sa.Column("messages", sa.Integer, nullable=False, server_default="0"),
        sa.Column("new_reports", sa.Integer, nullable=False, server_default="0"),
        sa.Column("bounced", sa.Integer, nullable=False, server_default="0"),
        sa.Column("unsubscribed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("not_reports", sa.Integer, nullable=False, server_default="0"),
        sa.Column("message", sa.Text, nullable=True),
    )
    meta = sa.table("syndicate_meta", sa.column("key"), sa.column("value"))
    op.get_bind().execute(sa.update(meta).where(meta.c.key == "schema_version").values(value="4"))


def downgrade() -> None:
    op.drop_table("bounce_runs")
    op.drop_index("ix_bounce_reports_subscriber", "bounce_reports")
    op.drop_table("bounce_reports")
    meta = sa.table("syndicate_meta", sa.column("key"), sa.column("value"))
    op.get_bind().execute(sa.update(meta).where(meta.c.key == "schema_version").values(value="3"))
