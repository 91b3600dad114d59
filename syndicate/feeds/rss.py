"""RSS 2.0 (through feedgen): the subscription feeds, their archive pages, and the
newsletter archive's feed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from xml.sax.saxutils import quoteattr

from feedgen.entry import FeedEntry
from feedgen.feed import FeedGenerator
from lxml import etree

from syndicate.config import Config
from syndicate.content.markup import html_escape, title_text
from syndicate.content.posts import summary_text
from syndicate.feeds.feedgen_xml import (
    add_entries,
    author_dict,
    new_feed,
    websub_hub,
    with_stylesheet,
)
from syndicate.feeds.plan import EMPTY_FEED_DATE, GENERATOR
from syndicate.feeds.registry import MEDIA_TYPES
from syndicate.models import FeedSpec, Post


def build(spec: FeedSpec, config: Config) -> bytes:
    """RSS 2.0; posts in `spec` must be rendered."""
    fg = new_feed(spec, config, "rss")
    add_entries(fg, spec, config, _entry)
    data = _hex_references(fg.rss_str(pretty=True))
    hub = websub_hub(spec, config)
    if hub:
        data = _with_rss_hub(data, hub)
    if config.feeds.stylesheet:
        data = with_stylesheet(data, spec)
    return data


def _entry(fe: FeedEntry, post: Post, config: Config) -> None:
    assert post.html is not None
    summary = summary_text(post)
    fe.guid(post.id, permalink=post.id == post.url)
    # CDATA keeps each text escaped exactly once: as HTML, not again as XML.
    if summary:
        fe.description(_cdata(html_escape(summary)))
    if config.feeds.full_content:
        fe.content(post.html, type="CDATA" if "]]>" not in post.html else None)
    elif not summary:
        fe.description(_cdata(html_escape(title_text(post.title))))
    if post.author and post.author.email:
        fe.author(author_dict(post.author.name, post.author.email))
    elif post.author:
        fe.dc.dc_creator(post.author.name)
    if post.image and post.image.type and post.image.length:
        # RSS requires the length; a made-up "0" is what validators flag. An image
        # not found under site.static_dir is still in media:content.
        fe.enclosure(post.image.url, str(post.image.length), post.image.type)


def _hex_references(data: bytes) -> bytes:
    """`&` and `<` in RSS plain text as `&#x26;` and `&#x3C;`: the same characters to an
    XML parser, but RSS never said whether its titles are text or HTML, so `&amp;` is
    ambiguous and the W3C validator warns; hexadecimal references are not. CDATA (the
    HTML of descriptions and content) is left as it is: found with `find`, since a lazy
    regular expression over every byte of the posts' HTML took a fifth of building RSS."""
    parts: list[bytes] = []
    start = 0
    while (opening := data.find(b"<![CDATA[", start)) >= 0:
        closing = data.find(b"]]>", opening + len(b"<![CDATA["))
        if closing < 0:
            break
        end = closing + len(b"]]>")
        parts += (_outside_cdata(data[start:opening]), data[opening:end])
        start = end
    parts.append(_outside_cdata(data[start:]))
    return b"".join(parts)


def _outside_cdata(text: bytes) -> bytes:
    return text.replace(b"&amp;", b"&#x26;").replace(b"&lt;", b"&#x3C;")


def _cdata(text: str) -> etree.CDATA:
    return etree.CDATA(text)


def _with_rss_hub(data: bytes, hub: str) -> bytes:
    """feedgen writes no hub link into RSS: add `<atom:link rel="hub">` after rel="self"."""
    marker = b'rel="self" type="application/rss+xml"/>'
    at = data.index(marker) + len(marker)
    link = f'\n    <atom:link href={quoteattr(hub)} rel="hub"/>'.encode()
    return data[:at] + link + data[at:]


def build_archive_feed(entries: Sequence[ArchiveEntryLike], config: Config) -> bytes:
    """RSS 2.0 of the newsletter archive: one item per digest sent."""
    site = config.site
    fg = FeedGenerator()
    self_url = f"{site.url}newsletter/feed.xml"
    fg.id(self_url)
    fg.title(f"{site.title}: newsletter archive")
    fg.description(f"Every newsletter digest of {site.title}")
    fg.language(site.language)
    fg.generator(GENERATOR)
    fg.link(href=self_url, rel="self", type=MEDIA_TYPES["rss"])
    fg.link(href=f"{site.url}newsletter/", rel="alternate", type="text/html")
    dates = [datetime.fromisoformat(e.date) for e in entries]
    fg.lastBuildDate(max(dates, default=EMPTY_FEED_DATE))
    for entry, when in zip(entries, dates, strict=True):
        fe = fg.add_entry(order="append")
        fe.id(entry.url)
        fe.guid(entry.url, permalink=True)
        fe.title(entry.subject)
        fe.link(href=entry.url)
        fe.published(when)
        fe.description(_cdata(html_escape(" · ".join(entry.titles))))
    data: bytes = fg.rss_str(pretty=True)
    return data


class ArchiveEntryLike(Protocol):
    @property
    def subject(self) -> str: ...
    @property
    def date(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def titles(self) -> tuple[str, ...]: ...
