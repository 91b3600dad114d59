"""The digest that is due, from the state: the posts that entered the feeds since the
previous digest and that no digest announced yet, rendered (what `send` queues, and what
`digest --preview` and `send --dry-run` show)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from syndicate.config import Config
from syndicate.content.posts import markdown_bodies, open_cache, published, render_or_diagnose
from syndicate.models import Digest, Post, PostState
from syndicate.newsletter.plan import plan_digest
from syndicate.record import replace
from syndicate.state.digests import digested_sources, last_digest_at
from syndicate.state.posts import load_post_states
from syndicate.state.store import Store


def next_digest(
    posts: Sequence[Post],
    store: Store,
    config: Config,
    now: datetime,
    since: datetime | None = None,
) -> Digest | None:
    """The digest that is due: posts that entered the feeds since the last digest, never
    one that an earlier digest already announced (what `send` queues and `digest
    --preview` shows). A post no run has published yet counts as entering the feeds at
    `now`: `send` publishes it first; a preview shows what that would do."""
    announced = digested_sources(store)
    ready = [p for p in published(posts, now) if p.key not in announced]
    entered, last = entered_feeds_at(ready, load_post_states(store), now), last_digest_at(store)
    broken: set[str] = set()  # posts that cannot be rendered (the feeds step reports them)
    while True:
        kept = [p for p in ready if p.key not in broken]
        digest = plan_digest(kept, entered, config, now, last, since)
        if digest is None:
            return None
        bodies = _bodies(digest.posts, config)
        rendered = [_rendered(p, bodies) for p in digest.posts]
        good = [r for r in rendered if r is not None]
        if len(good) == len(rendered):
            return replace(digest, posts=tuple(good))
        broken |= {p.key for p, r in zip(digest.posts, rendered, strict=True) if r is None}


def _bodies(posts: Sequence[Post], config: Config) -> dict[str, str]:
    """The Markdown of the posts that came from the cache without it (a run's posts);
    posts read in full (a preview's) need nothing, and the cache is not even opened."""
    if all(post.body for post in posts):
        return {}
    with open_cache(config) as cache:
        return markdown_bodies(posts, config, cache)


def _rendered(post: Post, bodies: Mapping[str, str]) -> Post | None:
    """The post rendered for the digest, its body fetched if it came from the cache
    without one; None if it cannot be rendered or its file changed since it was read
    (the next digest takes it, as the next run publishes the change)."""
    if post.body == "":
        if post.key not in bodies:
            return None
        post = replace(post, body=bodies[post.key])
    rendered = render_or_diagnose(post)
    return rendered if isinstance(rendered, Post) else None


def entered_feeds_at(
    posts: Sequence[Post], states: Mapping[str, PostState], now: datetime
) -> dict[str, datetime]:
    """key -> when the post entered the feeds: as a run recorded it, else `now`.

    A file renamed since the last run has no state under its new key yet; the run
    will keep its first publication (matched by id, see publication.py), so a preview
    or dry run must count it from then too, not as new."""
    by_id: dict[str, datetime] = {}
    for known in states.values():
        first = known.first_published_at
        if first is not None and (known.post_id not in by_id or first < by_id[known.post_id]):
            by_id[known.post_id] = first
    times = {}
    for post in posts:
        state = states.get(post.key)
        entered = state.first_published_at if state is not None else by_id.get(post.id)
        times[post.key] = entered or now
    return times
