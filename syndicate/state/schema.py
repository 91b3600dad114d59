"""The state database's tables as this release uses them (SQLAlchemy Core).

The history of how they came to be is in `migrations/versions/`, one Alembic revision
per step; `HEAD` names the newest, and a test checks that migrating an empty database to
it gives exactly these tables. A list (a post's tags, a digest's posts, a subscriber's
topics) is rows of its own table with a position, never a joined string, so a query can
find "every digest that announced this post" without reading every digest.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from syndicate.state.version import HEAD, POST_KEYS_FLAG

__all__ = ["HEAD", "POST_KEYS_FLAG"]  # this release's revision, and the key flag

metadata = sa.MetaData()

meta_table = sa.Table(
    "syndicate_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

posts_table = sa.Table(
    "posts",
    metadata,
    sa.Column("source", sa.String(1024), primary_key=True),  # the post's key
    sa.Column("post_id", sa.String(2048), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),  # the post's date
    sa.Column("first_published_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # published | withdrawn
)


def _list_table(name: str, key: sa.Column[Any], item: sa.Column[Any]) -> sa.Table:
    """One kind of list: a row per item with its position (the order given), keyed by its
    owner's key (`key`, a foreign key), and gone with the owner, or renamed with it."""
    return sa.Table(name, metadata, key, sa.Column("position", sa.Integer, primary_key=True), item)


def _owner(name: str, kind: sa.types.TypeEngine[Any], target: str) -> sa.Column[Any]:
    cascade = sa.ForeignKey(target, ondelete="CASCADE", onupdate="CASCADE")
    return sa.Column(name, kind, cascade, primary_key=True)


post_tags_table = _list_table(
    "post_tags",
    _owner("source", sa.String(1024), "posts.source"),
    sa.Column("tag", sa.Text, nullable=False),  # in the order of the front matter
)
post_categories_table = _list_table(
    "post_categories",
    _owner("source", sa.String(1024), "posts.source"),
    sa.Column("category", sa.Text, nullable=False),
)

runs_table = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # once | daemon
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),  # running | ok | errors | failed
    sa.Column("published", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("withdrawn", sa.Integer, nullable=False, server_default="0"),
    sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
    sa.Column("files_written", sa.Integer, nullable=False, server_default="0"),
    sa.Column("message", sa.Text, nullable=True),
)

digests_table = sa.Table(
    "digests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(255), nullable=False, unique=True),
    sa.Column("posts_hash", sa.String(64), nullable=False, unique=True),  # never twice
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # queued | sent
    sa.Column("archive_url", sa.String(2048), nullable=False, server_default=""),
)

# The posts a digest announced (their keys): a post is never announced twice.
digest_posts_table = _list_table(
    "digest_posts",
    _owner("digest_id", sa.Integer(), "digests.id"),
    sa.Column("source", sa.String(1024), nullable=False, index=True),
)

subscribers_table = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False),  # as normalised by email-validator
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),  # lower-cased
    sa.Column("name", sa.String(255), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False),  # pending|active|unsubscribed|bounced
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("unsubscribed_at", sa.DateTime(timezone=True), nullable=True),
)

# The tags and categories a subscriber follows; none means every post.
subscriber_topics_table = _list_table(
    "subscriber_topics",
    _owner("subscriber_id", sa.Integer(), "subscribers.id"),
    sa.Column("topic", sa.Text, nullable=False),
)

# One body per digest and topic set: rendered (MJML compiled) once, not per subscriber.
bodies_table = sa.Table(
    "digest_bodies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id"), nullable=False),
    sa.Column("variant", sa.String(64), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.UniqueConstraint("digest_id", "variant"),
)

outbox_table = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("digest_id", sa.Integer, sa.ForeignKey("digests.id"), nullable=False),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("body_id", sa.Integer, sa.ForeignKey("digest_bodies.id"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(255), nullable=False, server_default=""),
    # queued | sending | sent | deferred | bounced | failed | cancelled
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_response", sa.Text, nullable=True),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    # Which sender holds the row, and until when (several senders on PostgreSQL).
    sa.Column("claimed_by", sa.String(128), nullable=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("domain", sa.String(255), nullable=False, server_default=""),  # lower-cased
    sa.UniqueConstraint("digest_id", "subscriber_id"),  # never queued twice for one digest
    sa.Index("ix_outbox_open", "status", "digest_id", "id"),  # the open rows of a big outbox
)

# Every report read from the bounce mailbox, once: a run killed mid-mailbox counts none
# twice (the row and what it did to the subscriber commit together).
bounce_reports_table = sa.Table(
    "bounce_reports",
    metadata,
    sa.Column("report_id", sa.String(255), primary_key=True),  # Message-ID, else sha256:
    sa.Column("source", sa.String(512), nullable=False),  # where it was read
    sa.Column("kind", sa.String(16), nullable=False),  # hard|soft|complaint|unsubscribe|other
    sa.Column("subscriber_id", sa.Integer, nullable=True),  # none: nobody of ours
    sa.Column("digest_id", sa.Integer, nullable=True),
    sa.Column("address", sa.String(320), nullable=False, server_default=""),
    sa.Column("status", sa.String(32), nullable=False, server_default=""),  # 5.1.1, abuse
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Column("action", sa.String(64), nullable=False, server_default=""),  # what we did
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_bounce_reports_subscriber", "subscriber_id", "kind", "received_at"),
)

bounce_runs_table = sa.Table(
    "bounce_runs",
    metadata,
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
