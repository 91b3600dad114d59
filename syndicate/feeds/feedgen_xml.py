"""What RSS 2.0 and Atom 1.0 share, through feedgen: the channel, the entries' common
elements, RFC 5005 history links, Atom enclosures and the XSL stylesheet instruction.

The only module (with rss.py and atom.py) that imports feedgen. Output is deterministic:
dates come from the posts, never the clock, and no library version is written, so
unchanged input gives byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from syndicate.config import Config
from syndicate.content.markup import title_text
from syndicate.feeds.plan import (
    EMPTY_FEED_DATE,
    GENERATOR,
    STYLESHEET,
    feed_description,
    feed_title,
    feed_url,
    history_links,
    last_modified,
)
from syndicate.feeds.registry import MEDIA_TYPES
from syndicate.models import FeedSpec, Image, Post

HISTORY_NS = "http://purl.org/syndication/history/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"
EntryWriter = Callable[[FeedEntry, Post, Config], None]  # the format's own entry elements


def new_feed(spec: FeedSpec, config: Config, fmt: str) -> FeedGenerator:
    """The channel of an RSS or Atom feed, without entries."""
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
    hub = websub_hub(spec, config)
    if hub and fmt == "atom":
        fg.link(href=hub, rel="hub")
    fg.link(href=site.url, rel="alternate", type="text/html")
    if site.author:
        fg.author(author_dict(site.author.name, site.author.email))
    else:
        fg.author({"name": site.title})
    newest = last_modified(spec.posts) if spec.posts else spec.empty_date or EMPTY_FEED_DATE
    fg.updated(newest)
    fg.lastBuildDate(newest)
    return fg


def websub_hub(spec: FeedSpec, config: Config) -> str | None:
    """The hub a feed names; none for archive pages, which never change."""
    return None if spec.page else config.feeds.websub_hub


def add_entries(fg: FeedGenerator, spec: FeedSpec, config: Config, own: EntryWriter) -> None:
    """The posts as entries: the elements both formats share, then the format's own."""
    for post in spec.posts:
        assert post.html is not None, "render posts before building feeds"
        fe = fg.add_entry(order="append")
        fe.id(post.id)
        fe.title(title_text(post.title))
        fe.link(href=post.url, rel="alternate", type="text/html")
        fe.published(post.date)
        fe.updated(post.modified)
        own(fe, post, config)
        terms = (*post.categories, *post.tags)
        if terms:  # in one call: feedgen maps every category to RSS again at each call
            fe.category([{"term": term} for term in terms])
        if post.image:
            media: dict[str, str] = {"url": post.image.url, "medium": "image"}
            if post.image.type:
                media["type"] = post.image.type
            fe.media.content(media, group=None)


def author_dict(name: str, email: str | None) -> dict[str, str]:
    author = {"name": name}
    if email:
        author["email"] = email
    return author


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


def with_stylesheet(data: bytes, spec: FeedSpec) -> bytes:
    """Insert the xml-stylesheet instruction so a browser shows a readable page."""
    depth = spec.path.count("/") + 1 if spec.path else 0
    depth += 1 if spec.page else 0  # archive/<n>.xml
    href = "../" * depth + STYLESHEET
    declaration_end = data.index(b"?>") + 2
    pi = f'\n<?xml-stylesheet type="text/xsl" href="{href}"?>'.encode()
    return data[:declaration_end] + pi + data[declaration_end:]
