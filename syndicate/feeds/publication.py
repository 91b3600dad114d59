"""What changed since the last run: newly published, updated and withdrawn posts (pure).

A post is *newly published* when its date has come, it is not a draft and no earlier
run published it (under any file name: a renamed file with the same id is the same
post); *updated* when its content hash changed since (or its file was renamed);
*withdrawn* when an earlier run published it and it is gone, a draft again, or dated in
the future again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from syndicate.models import Post, PostState
from syndicate.record import replace


@dataclass(frozen=True, slots=True)
class Changes:
    published: tuple[Post, ...]
    updated: tuple[Post, ...]
    withdrawn: tuple[PostState, ...]
    states: tuple[PostState, ...]  # rows to write for the changes above

    @property
    def any(self) -> bool:
        return bool(self.published or self.updated or self.withdrawn)


def diff_publication(
    ready: Sequence[Post], known: Mapping[str, PostState], now: datetime
) -> Changes:
    """Compare the posts public at `now` with what the store says was published."""
    published: list[Post] = []
    updated: list[Post] = []
    states: list[PostState] = []
    present = {post.key for post in ready}
    moved_from = _vanished_by_id(known, present)
    moved: set[str] = set()
    for post in ready:
        state = known.get(post.key)
        if state is None and post.id in moved_from:  # a renamed or moved file: same post
            state = moved_from.pop(post.id)
            moved.add(state.source)
            updated.append(post)
            first = state.first_published_at or now  # never None: _vanished_by_id keeps those
            states.append(_state(post, now, first_published_at=first, updated_at=now))
        elif state is None or state.first_published_at is None:
            published.append(post)
            states.append(_state(post, now, first_published_at=now, updated_at=None))
        elif state.status != "published" or state.content_hash != post.content_hash:
            updated.append(post)
            states.append(
                _state(post, now, first_published_at=state.first_published_at, updated_at=now)
            )
    gone = [
        state
        for source, state in sorted(known.items())
        if state.status == "published" and source not in present
    ]
    states.extend(replace(s, status="withdrawn", withdrawn_at=now) for s in gone)
    withdrawn = [s for s in gone if s.source not in moved]
    return Changes(tuple(published), tuple(updated), tuple(withdrawn), tuple(states))


def _vanished_by_id(known: Mapping[str, PostState], present: set[str]) -> dict[str, PostState]:
    """post id -> the earliest-published state of a file that is gone now. A post whose
    file was renamed or moved (or whose key changed with a content folder that moved)
    keeps its id, its first publication and so its place in the digests: readers never
    get it twice."""
    found: dict[str, PostState] = {}
    for source, state in sorted(known.items()):
        first = state.first_published_at
        if source in present or first is None:
            continue
        earlier = found.get(state.post_id)
        if earlier is None or (earlier.first_published_at or first) > first:
            found[state.post_id] = state
    return found


def _state(
    post: Post, now: datetime, first_published_at: datetime, updated_at: datetime | None
) -> PostState:
    return PostState(
        source=post.key,
        post_id=post.id,
        url=post.url,
        title=post.title,
        content_hash=post.content_hash,
        due_at=post.date,
        first_published_at=first_published_at,
        updated_at=updated_at,
        withdrawn_at=None,
        status="published",
        tags=post.tags,
        categories=post.categories,
    )
