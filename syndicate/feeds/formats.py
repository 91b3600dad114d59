"""Feeds: RSS 2.0 and Atom 1.0 (with feedgen) and JSON Feed 1.1, as bytes.

The only module that imports feedgen. Output is deterministic: dates come from the
posts, never the clock, and no library version is written, so unchanged input gives
byte-identical files.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol
from xml.sax.saxutils import quoteattr

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree
from slugify import slugify

from syndicate.config import Config
from syndicate.content.markup import html_escape, plain_text
from syndicate.content.posts import summary_text
from syndicate.models import FeedSpec, Image, Post

FILENAMES = {"rss": "feed.xml", "atom": "atom.xml", "json": "feed.json"}
MEDIA_TYPES = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}
# RFC 5005 archive pages: archive/<n>.xml (RSS) and archive/<n>.atom; JSON Feed has none.
ARCHIVE_SUFFIXES = {"rss": "xml", "atom": "atom"}
HISTORY_NS = "http://purl.org/syndication/history/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"
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
    groups: tuple[tuple[str, str, bool, Callable[[Post], tuple[str, ...]]], ...] = (
        ("tag", "tags", config.feeds.per_tag, lambda p: p.tags),
        ("category", "categories", config.feeds.per_category, lambda p: p.categories),
    )
    for kind, folder, enabled, terms_of in groups:
        if not enabled:
            continue
        grouped: dict[str, tuple[str, list[Post]]] = {}
        for post in posts:
            seen: set[str] = set()
            for term in terms_of(post):
                key = term_slug(term)
                if not key or key in seen:
                    continue
                seen.add(key)
                grouped.setdefault(key, (term, []))[1].append(post)
        for key in sorted(grouped):
            label, members = grouped[key]
            specs.append(FeedSpec(kind, key, label, f"{folder}/{key}", tuple(members[:limit])))
    return specs


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


def build_feed(spec: FeedSpec, config: Config, fmt: str) -> bytes:
    """One feed file's bytes in the given format ("rss", "atom" or "json")."""
    if fmt == "json":
        return build_json(spec, config)
    return build_xml(spec, config, fmt)


def build_xml(spec: FeedSpec, config: Config, fmt: str) -> bytes:
    """RSS 2.0 or Atom 1.0 through feedgen; posts in `spec` must be rendered."""
    site = config.site
    fg = FeedGenerator()
    fg.load_extension("media", atom=True, rss=True)
    fg.load_extension("dc", atom=False, rss=True)
    fg.register_extension("enclosures", BaseExtension, _AtomEnclosure, atom=True, rss=False)
    if spec.page or spec.pages:
        fg.register_extension("history", _History, BaseEntryExtension, atom=True, rss=True)
        fg.history.set(history_links(spec, config, fmt), MEDIA_TYPES[fmt], bool(spec.page))
    self_url = feed_url(config, spec, fmt)
    fg.id(self_url)
    fg.title(feed_title(config, spec))
    fg.description(feed_description(config, spec))
    fg.language(site.language)
    fg.generator(GENERATOR)
    # feedgen takes the RSS <channel><link> from the last link() call: self first, home last.
    fg.link(href=self_url, rel="self", type=MEDIA_TYPES[fmt])
    hub = None if spec.page else config.feeds.websub_hub  # archive pages are static
    if hub and fmt == "atom":
        fg.link(href=hub, rel="hub")
    fg.link(href=site.url, rel="alternate", type="text/html")
    if site.author:
        fg.author(_author_dict(site.author.name, site.author.email))
    else:
        fg.author({"name": site.title})
    newest = last_modified(spec.posts) if spec.posts else spec.empty_date or EMPTY_FEED_DATE
    fg.updated(newest)
    fg.lastBuildDate(newest)
    for post in spec.posts:
        _add_entry(fg, post, config, fmt)
    data: bytes = fg.rss_str(pretty=True) if fmt == "rss" else fg.atom_str(pretty=True)
    if fmt == "rss":
        data = _hex_references(data)
    if hub and fmt == "rss":
        data = _with_rss_hub(data, hub)
    if config.feeds.stylesheet:
        data = _with_stylesheet(data, spec)
    return data


def _add_entry(fg: FeedGenerator, post: Post, config: Config, fmt: str) -> None:
    assert post.html is not None, "render posts before building feeds"
    fe = fg.add_entry(order="append")
    fe.id(post.id)
    fe.title(plain_text(post.title))
    summary = summary_text(post)
    fe.link(href=post.url, rel="alternate", type="text/html")
    fe.published(post.date)
    fe.updated(post.modified)
    full = config.feeds.full_content
    if fmt == "rss":
        fe.guid(post.id, permalink=post.id == post.url)
        # CDATA keeps each text escaped exactly once: as HTML, not again as XML.
        if summary:
            fe.description(_cdata(html_escape(summary)))
        if full:
            fe.content(post.html, type="CDATA" if "]]>" not in post.html else None)
        elif not summary:
            fe.description(_cdata(html_escape(plain_text(post.title))))
        if post.author and post.author.email:
            fe.author(_author_dict(post.author.name, post.author.email))
        elif post.author:
            fe.dc.dc_creator(post.author.name)
        if post.image and post.image.type and post.image.length:
            # RSS requires the length; a made-up "0" is what validators flag. An image
            # not found under site.static_dir is still in media:content below.
            fe.enclosure(post.image.url, str(post.image.length), post.image.type)
    else:
        if summary:
            fe.summary(summary)
        if full:
            if post.xhtml is not None:
                fe.content(post.xhtml, type="xhtml")
            else:
                fe.content(post.html, type="html")
        if post.author:
            fe.author(_author_dict(post.author.name, post.author.email))
        if post.image:
            fe.enclosures.add(post.image)
    for term in (*post.categories, *post.tags):
        fe.category(term=term)
    if post.image:
        media: dict[str, str] = {"url": post.image.url, "medium": "image"}
        if post.image.type:
            media["type"] = post.image.type
        fe.media.content(media, group=None)


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


class _History(BaseExtension):  # type: ignore[misc]
    """Feed History (RFC 5005): `<fh:archive/>` on archive pages and the `atom:link`s
    between pages, placed right after the rel="self" link, in RSS and Atom alike."""

    def __init__(self) -> None:
        self.links: list[tuple[str, str]] = []
        self.media_type = ""
        self.archive = False

    def set(self, links: list[tuple[str, str]], media_type: str, archive: bool) -> None:
        self.links, self.media_type, self.archive = links, media_type, archive

    def extend_ns(self) -> dict[str, str]:
        return {"fh": HISTORY_NS} if self.archive else {}

    def extend_rss(self, feed: etree._Element) -> etree._Element:
        self._insert(feed.find("channel"), f"{{{ATOM_NS}}}link")
        return feed

    def extend_atom(self, feed: etree._Element) -> etree._Element:
        self._insert(feed, "link")  # feedgen's Atom elements carry no namespace of their own
        return feed

    def _insert(self, parent: etree._Element | None, link_tag: str) -> None:
        assert parent is not None
        selfs = [el for el in parent.iterchildren(link_tag) if el.get("rel") == "self"]
        at = parent.index(selfs[0]) + 1 if selfs else len(parent)
        added = [
            etree.Element(link_tag, href=href, rel=rel, type=self.media_type)
            for rel, href in self.links
        ]
        if self.archive:
            added.insert(0, etree.Element(f"{{{HISTORY_NS}}}archive"))
        for offset, element in enumerate(added):
            parent.insert(at + offset, element)


class _AtomEnclosure(BaseEntryExtension):  # type: ignore[misc]
    """`<link rel="enclosure">` for Atom entries (the featured image, as sfeed and other
    readers expect). Not through `fe.link()`: feedgen 1.0 drops `rel`, `type` and
    `length` of entry links (a shadowed variable in FeedEntry.atom_entry), which would
    turn the image into the entry's alternate link."""

    def __init__(self) -> None:
        self.images: list[Image] = []

    def add(self, image: Image) -> None:
        self.images.append(image)

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        for image in self.images:
            link = etree.SubElement(entry, "link", rel="enclosure", href=image.url)
            if image.type:
                link.set("type", image.type)
            if image.length:
                link.set("length", str(image.length))
        return entry


_CDATA_SECTION = re.compile(rb"(<!\[CDATA\[.*?\]\]>)", re.DOTALL)


def _hex_references(data: bytes) -> bytes:
    """`&` and `<` in RSS plain text as `&#x26;` and `&#x3C;`: the same characters to an
    XML parser, but RSS never said whether its titles are text or HTML, so `&amp;` is
    ambiguous and the W3C validator warns; hexadecimal references are not. CDATA (the
    HTML of descriptions and content) is left as it is."""
    parts = _CDATA_SECTION.split(data)
    for index in range(0, len(parts), 2):  # even parts are outside CDATA
        parts[index] = parts[index].replace(b"&amp;", b"&#x26;").replace(b"&lt;", b"&#x3C;")
    return b"".join(parts)


def _cdata(text: str) -> etree.CDATA:
    return etree.CDATA(text)


def _author_dict(name: str, email: str | None) -> dict[str, str]:
    author = {"name": name}
    if email:
        author["email"] = email
    return author


def _with_rss_hub(data: bytes, hub: str) -> bytes:
    """feedgen writes no hub link into RSS: add `<atom:link rel="hub">` after rel="self"."""
    marker = b'rel="self" type="application/rss+xml"/>'
    at = data.index(marker) + len(marker)
    link = f'\n    <atom:link href={quoteattr(hub)} rel="hub"/>'.encode()
    return data[:at] + link + data[at:]


def _with_stylesheet(data: bytes, spec: FeedSpec) -> bytes:
    """Insert the xml-stylesheet instruction so a browser shows a readable page."""
    depth = spec.path.count("/") + 1 if spec.path else 0
    depth += 1 if spec.page else 0  # archive/<n>.xml
    href = "../" * depth + STYLESHEET
    declaration_end = data.index(b"?>") + 2
    pi = f'\n<?xml-stylesheet type="text/xsl" href="{href}"?>'.encode()
    return data[:declaration_end] + pi + data[declaration_end:]


def build_json(spec: FeedSpec, config: Config) -> bytes:
    """JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/)."""
    site = config.site
    feed: dict[str, object] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": feed_title(config, spec),
        "home_page_url": site.url,
        "feed_url": feed_url(config, spec, "json"),
        "description": feed_description(config, spec),
        "language": site.language,
    }
    if config.feeds.websub_hub:
        feed["hubs"] = [{"type": "WebSub", "url": config.feeds.websub_hub}]
    if site.author:
        feed["authors"] = [_json_author(site.author.name, site.author.email)]
    items = []
    for post in spec.posts:
        assert post.html is not None, "render posts before building feeds"
        title, summary = plain_text(post.title), summary_text(post)
        item: dict[str, object] = {"id": post.id, "url": post.url, "title": title}
        if config.feeds.full_content:
            item["content_html"] = post.html
        else:
            item["content_text"] = summary or title
        if summary:
            item["summary"] = summary
        if post.image:
            item["image"] = post.image.url
        item["date_published"] = post.date.isoformat()
        if post.modified != post.date:
            item["date_modified"] = post.modified.isoformat()
        if post.author:
            item["authors"] = [_json_author(post.author.name, post.author.email)]
        terms = list(dict.fromkeys((*post.categories, *post.tags)))
        if terms:
            item["tags"] = terms
        items.append(item)
    feed["items"] = items
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _json_author(name: str, email: str | None) -> dict[str, str]:
    author = {"name": name}
    if email:
        author["url"] = f"mailto:{email}"
    return author


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
