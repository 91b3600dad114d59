"""RFC 5005 archived feeds: the whole history as numbered pages behind the subscription feeds.

Not the newsletter's web archive (that is `archive.py`). Pages are numbered from the
oldest post: page n holds posts (n-1)*size+1 .. n*size of the family's history in date
order, oldest first. The last page is the only one that is not full (it may be empty),
so a page that is full already links to its successor and never changes again when
posts are added; only the subscription feeds and the last page do.

The assignment is positional and computed from the posts alone, never from the state
database (the feeds must stay rebuildable without it). The price: a post removed from,
or back-dated into, page k shifts one post across each boundary after it, so pages
k..N are rewritten. Editing a post in place (same date) rewrites only its page.

`feeds.archive_page_size` is at most `feeds.limit` (config.py checks it): then a family
with archives has more than one page, and the W3C validator warns about an archive page
with neither a prev-archive nor a next-archive link ("Archive incomplete").
"""

from __future__ import annotations

from collections.abc import Sequence

from syndicate.config import Config
from syndicate.feeds.plan import plan_feeds
from syndicate.models import FeedSpec, Post
from syndicate.record import replace


def with_archives(specs: list[FeedSpec], posts: Sequence[Post], config: Config) -> list[FeedSpec]:
    """`specs` (from `plan_feeds`) plus their archive pages when `feeds.archive` is on.

    `posts` are the same published posts, newest first. The main feed always gets
    archives, tag and category feeds with `feeds.archive_per_tag`, once their history
    outgrows `feeds.limit` (until then the subscription feed is the whole history). Each
    subscription spec learns how many pages its family has (for its prev-archive link).
    """
    if not config.feeds.archive:
        return specs
    histories = {
        spec.path: spec.posts
        for spec in plan_feeds(posts, _unlimited(config, len(posts)))
        if spec.kind == "main" or config.feeds.archive_per_tag
    }
    size = config.feeds.archive_page_size
    planned: list[FeedSpec] = []
    pages: list[FeedSpec] = []
    for spec in specs:
        history = histories.get(spec.path)
        if history is None or len(history) <= config.feeds.limit:  # the feed holds it all
            planned.append(spec)
            continue
        family = paginate(oldest_first(history), size)
        planned.append(replace(spec, pages=len(family)))
        newest = max(p.modified for p in history)
        pages.extend(
            replace(
                spec,
                posts=members,
                page=number,
                pages=len(family),
                empty_date=None if members else newest,
            )
            for number, members in enumerate(family, start=1)
        )
    return planned + pages


def oldest_first(posts: Sequence[Post]) -> list[Post]:
    """Date order with a stable tie-break (id, then key), so two builds agree on pages."""
    return sorted(posts, key=lambda p: (p.date, p.id, p.key))


def paginate(history: Sequence[Post], size: int) -> list[tuple[Post, ...]]:
    """Full pages of `size`, then one page with the rest: never full, possibly empty.

    A page that has just filled up therefore already has a successor to link to
    (`next-archive`), and its bytes stay fixed until a post before it changes.
    """
    count = len(history) // size + 1
    return [tuple(history[i * size : (i + 1) * size]) for i in range(count)]


def _unlimited(config: Config, count: int) -> Config:
    """The config with `feeds.limit` lifted: `plan_feeds` then groups whole histories."""
    return replace(config, feeds=replace(config.feeds, limit=max(count, 1)))
