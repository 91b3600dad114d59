"""`digest --preview`: the next digest as the files a person checks before it goes out
(preview.html, preview.txt and preview.eml, with the headers of a sent digest)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from syndicate.config import Config
from syndicate.models import Post
from syndicate.newsletter.compose import compose_preview
from syndicate.newsletter.due import next_digest
from syndicate.newsletter.render import TOKEN_PLACEHOLDER, render_digest
from syndicate.state.digests import last_digest_at
from syndicate.state.store import Store

PREVIEW_TOKEN = "preview"  # noqa: S105 - stands in for a subscriber's token in previews


@dataclass(frozen=True, slots=True)
class Preview:
    start: datetime  # the digest holds posts that entered the feeds after this
    files: dict[str, bytes] = field(default_factory=dict)  # empty: no digest is due
    notes: tuple[str, ...] = ()  # what the renderer left out and why


def preview_digest(
    config: Config, store: Store, posts: Sequence[Post], now: datetime, since: datetime | None
) -> Preview:
    """The files of the digest that is due now; nothing is published, recorded or sent."""
    planned = next_digest(posts, store, config, now, since)
    if planned is None:
        last = last_digest_at(store)
        lookback = timedelta(days=config.newsletter.first_lookback_days)
        return Preview(since or last or now - lookback)
    rendered = render_digest(planned, config)
    files = {
        "preview.html": rendered.html.replace(TOKEN_PLACEHOLDER, PREVIEW_TOKEN).encode(),
        "preview.txt": rendered.text.replace(TOKEN_PLACEHOLDER, PREVIEW_TOKEN).encode(),
        "preview.eml": compose_preview(rendered, config, now, PREVIEW_TOKEN),
    }
    return Preview(planned.since or now, files, tuple(rendered.notes))
