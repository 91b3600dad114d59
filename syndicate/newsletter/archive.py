"""The newsletter's web archive: one page per digest sent, an index page and a feed.

Each digest is saved as `<out>/newsletter/<key>.html` (the "view in browser" page), listed
in `newsletter/index.html` and in the archive feed `newsletter/feed.xml`. The list itself
lives in `newsletter/archive.json`, so the index can be rebuilt from it at any time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from syndicate.config import Config
from syndicate.feeds.rss import build_archive_feed
from syndicate.models import Digest, RenderedEmail
from syndicate.newsletter.render import (
    TOKEN_PLACEHOLDER,
    render_template,
    site_context,
    template_environment,
)
from syndicate.output import write_atomic

ARCHIVE_DIR = "newsletter"
INDEX_TEMPLATE = "archive.html.j2"


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    key: str
    subject: str
    preheader: str
    date: str  # ISO 8601
    url: str
    titles: tuple[str, ...]


def archive_entry(digest: Digest) -> ArchiveEntry:
    return ArchiveEntry(
        key=digest.key,
        subject=digest.subject,
        preheader=digest.preheader,
        date=digest.until.isoformat(),
        url=digest.archive_url,
        titles=tuple(p.title for p in digest.posts),
    )


def archive_page(rendered: RenderedEmail, config: Config) -> str:
    """The digest as a public page: the personal unsubscribe link becomes the plain one."""
    token_url = f"token={TOKEN_PLACEHOLDER}"
    html = rendered.html.replace(f"?{token_url}", "").replace(f"&amp;{token_url}", "")
    return html.replace(TOKEN_PLACEHOLDER, "")


def write_archive(out_dir: Path, digest: Digest, rendered: RenderedEmail, config: Config) -> Path:
    """Save one digest and refresh the index page and feed. Idempotent per digest key."""
    page = write_archive_page(out_dir, digest.key, archive_page(rendered, config))
    add_archive_entry(out_dir, archive_entry(digest), config)
    return page


def archive_page_path(out_dir: Path, key: str) -> Path:
    return out_dir / ARCHIVE_DIR / f"{key}.html"


def write_archive_page(out_dir: Path, key: str, html: str) -> Path:
    """The "view in browser" page alone (atomically): written before the digest is queued,
    so no email ever links to a page that does not exist."""
    page = archive_page_path(out_dir, key)
    write_atomic(page, html.encode())
    return page


def add_archive_entry(out_dir: Path, entry: ArchiveEntry, config: Config) -> None:
    """List one digest in archive.json, the index page and the feed (replacing its entry)."""
    folder = out_dir / ARCHIVE_DIR
    entries = [e for e in read_archive(out_dir) if e.key != entry.key]
    entries.append(entry)
    entries.sort(key=lambda e: (e.date, e.key), reverse=True)
    write_atomic(
        folder / "archive.json",
        (json.dumps([asdict(e) for e in entries], ensure_ascii=False, indent=1) + "\n").encode(),
    )
    env = template_environment(config)
    index = render_template(
        env,
        INDEX_TEMPLATE,
        {
            "site": site_context(config),
            "entries": [
                {
                    **asdict(e),
                    "day": datetime.fromisoformat(e.date)
                    .astimezone(config.site.tz)
                    .strftime("%Y-%m-%d"),
                }
                for e in entries
            ],
            "feed_url": f"{config.site.url}{ARCHIVE_DIR}/feed.xml",
        },
    )
    write_atomic(folder / "index.html", index.encode())
    write_atomic(folder / "feed.xml", build_archive_feed(entries, config))


def entry_json(entry: ArchiveEntry) -> str:
    return json.dumps(asdict(entry), ensure_ascii=False)


def entry_from_json(text: str) -> ArchiveEntry | None:
    try:
        item = json.loads(text)
        return ArchiveEntry(**{**item, "titles": tuple(item["titles"])})
    except (ValueError, TypeError, KeyError):
        return None


def read_archive(out_dir: Path) -> list[ArchiveEntry]:
    try:
        raw = json.loads((out_dir / ARCHIVE_DIR / "archive.json").read_text("utf-8"))
    except (OSError, ValueError):
        return []
    entries = []
    for item in raw if isinstance(raw, list) else []:
        try:
            entries.append(ArchiveEntry(**{**item, "titles": tuple(item["titles"])}))
        except (TypeError, KeyError):
            continue
    return entries
