"""plan_digest: which posts go into the next newsletter issue (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from slugify import slugify

from syndicate.config import Config
from syndicate.content.markup import clean_line
from syndicate.models import Digest, Post
from syndicate.words import plural

SUBJECT_MAX = 150  # characters; mail clients show ~60, RFC 5322 lines stop at 998


def plan_digest(
    posts: Sequence[Post],
    published_at: Mapping[str, datetime],
    config: Config,
    now: datetime,
    last_digest_at: datetime | None,
    since: datetime | None = None,
) -> Digest | None:
    """The next digest, or None when nothing new was published.

    `posts` are the published posts; `published_at` maps a post's key to when it entered
    the feeds (the publication time, not the post's date: a back-dated post is new when
    it appears; a post missing from the map counts from its own date). Posts that
    entered the feeds after the previous digest (or `since`, or the first-digest
    look-back) and not after `now` are taken, newest first, at most
    `newsletter.max_posts`, optionally only those with one of the configured tags or
    categories.
    """
    n = config.newsletter
    start = since or last_digest_at or now - timedelta(days=n.first_lookback_days)
    chosen = [
        p
        for p in posts
        if start < published_at.get(p.key, p.date) <= now and not p.draft and _matches(p, config)
    ]
    if not chosen:
        return None
    chosen.sort(key=lambda p: p.key)
    chosen.sort(key=lambda p: (published_at.get(p.key, p.date), p.date), reverse=True)
    chosen = chosen[: n.max_posts]
    local = now.astimezone(config.site.tz)
    fields = {
        "site": config.site.title,
        "count": str(len(chosen)),
        "noun": plural(len(chosen), "post"),
        "first_title": chosen[0].title,
        "date": local.strftime("%Y-%m-%d"),
    }
    subject = clean_header(n.subject.format(**fields))
    title_slug = slugify(chosen[0].title, max_length=50, word_boundary=True) or "digest"
    key = f"{local:%Y-%m-%d}-{title_slug}"
    return Digest(
        key=key,
        posts=tuple(chosen),
        since=start,
        until=now,
        subject=subject,
        preheader=clean_header(n.preheader.format(**fields)),
        archive_url=archive_url(config, key),
    )


def archive_url(config: Config, key: str) -> str:
    """The digest's "view in browser" page in the web archive."""
    return f"{config.site.url}newsletter/{key}.html"


def clean_header(text: str, limit: int = SUBJECT_MAX) -> str:
    """Plain one-line text: no control characters or line breaks (no header injection),
    at most `limit` characters, cut at a word."""
    line = clean_line(text)
    if len(line) <= limit:
        return line
    cut = line[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-–—") + "…"


def _matches(post: Post, config: Config) -> bool:
    tags = {t.casefold() for t in config.newsletter.tags}
    categories = {c.casefold() for c in config.newsletter.categories}
    if not tags and not categories:
        return True
    return bool(
        tags & {t.casefold() for t in post.tags}
        or categories & {c.casefold() for c in post.categories}
    )
