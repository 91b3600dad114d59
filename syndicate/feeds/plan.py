"""Which feeds to write and what they are called: the main feed, then one per tag and
per category, each holding its newest `feeds.limit` posts; their files, URLs, titles and
dates. Pure: no feed library is imported here."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from slugify import slugify

from syndicate.config import Config
from syndicate.feeds.registry import ARCHIVE_SUFFIXES, FILENAMES
from syndicate.models import FeedSpec, Post
from syndicate.record import replace

STYLESHEET = "feed.xsl"
GENERATOR = "syndicate"
# An empty feed still needs a date; a fixed one keeps it byte-stable.
EMPTY_FEED_DATE = datetime(1970, 1, 1, tzinfo=UTC)


def plan_feeds(posts: Sequence[Post], config: Config) -> list[FeedSpec]:
    """The feeds to write: the main one, then one per tag and per category (as configured).

    `posts` are the published posts, newest first. Every feed holds its newest
    `feeds.limit` posts. Tags that differ only in case or punctuation share one feed,
    labelled as the newest post spells it.
    """
    limit = config.feeds.limit
    specs = [FeedSpec("main", "", "", "", tuple(posts[:limit]))]
    grouped: dict[str, tuple[str, str, str, list[Post]]] = {}  # path -> kind, key, label, posts
    for post in posts:
        for kind, key, label in post_terms(post, config):
            path = f"{TERM_FOLDERS[kind]}/{key}"
            grouped.setdefault(path, (kind, key, label, []))[3].append(post)
    for kind in ("tag", "category"):
        for path, (_kind, key, label, members) in sorted(
            item for item in grouped.items() if item[1][0] == kind
        ):
            specs.append(FeedSpec(kind, key, label, path, tuple(members[:limit])))
    return specs


TERM_FOLDERS = {"tag": "tags", "category": "categories"}


def post_terms(post: Post, config: Config) -> list[tuple[str, str, str]]:
    """The tag and category feeds a published post is in, as (kind, slug, the term as
    this post spells it), each once: the one rule for `plan_feeds` and the cron path's
    index (syndicate.runs.siteindex)."""
    found: list[tuple[str, str, str]] = []
    groups = (
        ("tag", config.feeds.per_tag, post.tags),
        ("category", config.feeds.per_category, post.categories),
    )
    for kind, enabled, terms in groups:
        if not enabled:
            continue
        seen: set[str] = set()
        for term in terms:
            key = term_slug(term)
            if key and key not in seen:
                seen.add(key)
                found.append((kind, key, term))
    return found


@functools.lru_cache(maxsize=4096)
def term_slug(term: str) -> str:
    """The URL-safe folder name of a tag or category (memoised: a blog has a few hundred
    terms but 10,000 posts name them, and slugify costs ~10 µs a call)."""
    return str(slugify(term, max_length=60, word_boundary=True))


def feed_url(config: Config, spec: FeedSpec, fmt: str) -> str:
    """The absolute URL where a feed file is served."""
    return config.site.url + feed_file(spec, fmt)


def feed_file(spec: FeedSpec, fmt: str) -> str:
    """The feed's path relative to the output folder (an archive page's for `spec.page`)."""
    folder = f"{spec.path}/" if spec.path else ""
    if spec.page:
        return f"{folder}archive/{spec.page}.{ARCHIVE_SUFFIXES[fmt]}"
    return folder + FILENAMES[fmt]


def feed_formats(spec: FeedSpec, config: Config) -> tuple[str, ...]:
    """The formats written for a spec: all configured ones, but no JSON archive pages."""
    if spec.page:
        return tuple(fmt for fmt in config.feeds.formats if fmt in ARCHIVE_SUFFIXES)
    return config.feeds.formats


def feed_title(config: Config, spec: FeedSpec) -> str:
    if spec.page:
        return f"{feed_title(config, replace(spec, page=0))} (archive, page {spec.page})"
    if spec.kind == "tag":
        return f"{config.site.title}: posts tagged “{spec.label}”"
    if spec.kind == "category":
        return f"{config.site.title}: {spec.label}"
    return config.site.title


def feed_description(config: Config, spec: FeedSpec) -> str:
    if spec.kind == "tag":
        return f"Posts tagged “{spec.label}” on {config.site.title}"
    if spec.kind == "category":
        return f"Posts in the category “{spec.label}” on {config.site.title}"
    return config.site.description or config.site.title


def last_modified(posts: Iterable[Post]) -> datetime:
    """The newest change among the posts: the feed's own date, so it moves only with content."""
    return max((p.modified for p in posts), default=EMPTY_FEED_DATE)


def history_links(spec: FeedSpec, config: Config, fmt: str) -> list[tuple[str, str]]:
    """RFC 5005 section 4 links, (rel, href): the subscription feed points at the newest
    archive page; a page at the subscription feed (`current`) and its neighbours."""
    if not spec.page:
        return [("prev-archive", feed_url(config, replace(spec, page=spec.pages), fmt))]
    links = [("current", feed_url(config, replace(spec, page=0), fmt))]
    if spec.page > 1:
        links.append(("prev-archive", feed_url(config, replace(spec, page=spec.page - 1), fmt)))
    if spec.page < spec.pages:
        links.append(("next-archive", feed_url(config, replace(spec, page=spec.page + 1), fmt)))
    return links
