"""The feed formats syndicate writes, one line each. A new format is one module with a
`build(spec, config) -> bytes` function plus one line here (and its name in
feeds.formats of config.yaml). Pure data: importing it loads no feed library."""

from __future__ import annotations

import importlib

from syndicate.record import Record

TYPE_CHECKING = False  # not typing's: importing it costs ~2 ms of config's 30 (record.py)
if TYPE_CHECKING:
    from syndicate.config import Config
    from syndicate.models import FeedSpec


class FeedFormat(Record):
    name: str  # as in feeds.formats
    filename: str  # of the subscription feed, in the output folder and each tag folder
    media_type: str
    title: str  # for people: the subscribe page's feed links
    archive_suffix: str | None  # RFC 5005 archive pages archive/<n>.<suffix>; None: none
    module: str  # the module whose build(spec, config) writes it (imported when used)

    def build(self, spec: FeedSpec, config: Config) -> bytes:
        data: bytes = importlib.import_module(self.module).build(spec, config)
        return data


_FEEDS = "syndicate.feeds."
FORMATS = {
    f.name: f
    for f in (
        FeedFormat("rss", "feed.xml", "application/rss+xml", "RSS", "xml", _FEEDS + "rss"),
        FeedFormat("atom", "atom.xml", "application/atom+xml", "Atom", "atom", _FEEDS + "atom"),
        FeedFormat(
            "json", "feed.json", "application/feed+json", "JSON Feed", None, _FEEDS + "jsonfeed"
        ),
    )
}
FILENAMES = {name: f.filename for name, f in FORMATS.items()}
MEDIA_TYPES = {name: f.media_type for name, f in FORMATS.items()}
ARCHIVE_SUFFIXES = {name: f.archive_suffix for name, f in FORMATS.items() if f.archive_suffix}


def build_feed(spec: FeedSpec, config: Config, fmt: str) -> bytes:
    """One feed file's bytes in the format named `fmt`; posts in `spec` must be rendered."""
    return FORMATS[fmt].build(spec, config)
