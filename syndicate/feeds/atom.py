"""Atom 1.0 (through feedgen): the subscription feeds and their archive pages."""

from __future__ import annotations

from feedgen.entry import FeedEntry

from syndicate.config import Config
from syndicate.content.posts import summary_text
from syndicate.feeds.feedgen_xml import add_entries, author_dict, new_feed, with_stylesheet
from syndicate.models import FeedSpec, Post


def build(spec: FeedSpec, config: Config) -> bytes:
    """Atom 1.0; posts in `spec` must be rendered."""
    fg = new_feed(spec, config, "atom")
    add_entries(fg, spec, config, _entry)
    data: bytes = fg.atom_str(pretty=True)
    if config.feeds.stylesheet:
        data = with_stylesheet(data, spec)
    return data


def _entry(fe: FeedEntry, post: Post, config: Config) -> None:
    summary = summary_text(post)
    if summary:
        fe.summary(summary)
    if config.feeds.full_content:
        if post.xhtml is not None:
            fe.content(post.xhtml, type="xhtml")
        else:
            fe.content(post.html, type="html")
    if post.author:
        fe.author(author_dict(post.author.name, post.author.email))
    if post.image:
        fe.enclosures.add(post.image)
