"""Plain, frozen data objects passed between pipeline stages."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from syndicate.errors import Diagnostic, count_errors
from syndicate.record import Record, field

TYPE_CHECKING = False  # not typing's: importing it costs ~2 ms of config's 30 (record.py)
if TYPE_CHECKING:
    from typing import Any

# A subscriber's status: the CLI offers these as choices without importing the mail code.
SUBSCRIBER_STATUSES = ("pending", "active", "unsubscribed", "bounced")


class Author(Record):
    """A post's or site's author; RSS wants the email, Atom and JSON Feed the name."""

    name: str
    email: str | None = None


class Image(Record):
    """A featured image: absolute URL, alt text and MIME type (guessed from the name)."""

    url: str
    alt: str | None = None
    type: str | None = None
    length: int | None = None  # bytes, when the file was found under site.static_dir


class Post(Record):
    """One post, normalised from any front-matter dialect.

    `body` is the Markdown source (with the title heading removed when the title came
    from it). `html`, `xhtml` and a `summary` taken from the first paragraph (when there
    is no description) are filled by `render_post`, only for posts that reach a feed or a
    digest, since rendering is the costly step. `body_line` is the file line where the
    body starts, so diagnostics about the body can point at the right line.
    """

    source: str
    title: str
    slug: str
    url: str
    id: str
    date: datetime
    updated: datetime | None
    summary: str
    body: str
    body_line: int
    description: str | None = None
    tags: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    image: Image | None = None
    author: Author | None = None
    draft: bool = False
    explicit_id: bool = False
    explicit_slug: bool = False
    content_hash: str = ""
    html: str | None = None
    xhtml: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    key_lines: Mapping[str, int] = field(default_factory=dict)  # front-matter key -> file line
    # Identity in the state database and digests: the path relative to config.yaml's folder
    # (`source` is the path as the user types it, for messages). Defaults to `source`.
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.source)

    @property
    def modified(self) -> datetime:
        """When the post last changed, for Atom `updated` and JSON `date_modified`."""
        return self.updated if self.updated and self.updated > self.date else self.date


class FeedSpec(Record):
    """One feed family (main, a tag or a category) and the posts in it, newest first."""

    kind: str  # "main" | "tag" | "category"
    key: str  # "" for main, else the tag or category slug
    label: str  # "" for main, else the tag or category as written
    path: str  # output folder relative to the output dir: "" or "tags/<slug>"
    posts: tuple[Post, ...]
    # RFC 5005 archives (feed_archive.py): page 0 is the subscription feed, n >= 1 the
    # archive page archive/<n>.xml; pages = how many archive pages the family has.
    page: int = 0
    pages: int = 0
    # The date of a feed with no posts (an empty newest archive page: the family's newest
    # change); None: 1970-01-01, which validators call implausible but nothing better exists.
    empty_date: datetime | None = None


class Catalog(Record):
    """What reading the content produced: every parsed post plus the diagnostics."""

    posts: tuple[Post, ...]
    diagnostics: tuple[Diagnostic, ...]
    # Keys of posts whose slugs collide (given -2, -3 ... or keeping theirs against one):
    # a change to any of them can move another's URL, so the cron path leaves them to a
    # full run.
    entangled: frozenset[str] = frozenset()
    # (key, the slug it asked for) of each post given another slug, in the order of their
    # warnings, which are the last of `diagnostics`.
    renamed: tuple[tuple[str, str], ...] = ()

    @property
    def errors(self) -> int:
        return count_errors(self.diagnostics)


class Digest(Record):
    """A newsletter issue: the posts published in (since, until], newest first."""

    key: str  # stable id of this issue: "<date>-<slug of the first title>"
    posts: tuple[Post, ...]
    since: datetime
    until: datetime
    subject: str
    preheader: str
    archive_url: str  # the "view in browser" page


class RenderedEmail(Record):
    """A digest rendered once for all recipients; the token placeholder is filled per person."""

    subject: str
    preheader: str
    html: str
    text: str
    notes: tuple[str, ...] = ()  # what the renderer had to do to fit (shortened, dropped images)


class Subscriber(Record):
    """A newsletter subscriber; `topics` empty means every post."""

    id: int
    email: str
    name: str
    status: str  # pending | active | unsubscribed | bounced
    topics: tuple[str, ...]
    created_at: datetime
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None


class ReportLine(Record):
    """One line a command prints; a problem line (a recipient deferred, a job that failed)
    goes to stderr."""

    text: str
    problem: bool = False


class HookResult(Record):
    """What a job run after a publishing cycle has to say: lines to report, failures."""

    lines: tuple[ReportLine, ...] = ()
    failures: int = 0


class PostState(Record):
    """What the state database remembers of one post (plain data: the cron path reads and
    writes it without SQLAlchemy, see syndicate.state.runlog)."""

    source: str
    post_id: str
    url: str
    title: str
    content_hash: str
    due_at: datetime
    first_published_at: datetime | None
    updated_at: datetime | None
    withdrawn_at: datetime | None
    status: str
    tags: tuple[str, ...]
    categories: tuple[str, ...]
