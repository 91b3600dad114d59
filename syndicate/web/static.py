"""The output folder over HTTP: feeds with their own media types (XML for a browser, so
the XSL stylesheet renders), ETag and Last-Modified revalidation, no hidden files and
nothing outside the folder."""

from __future__ import annotations

import email.utils
import hashlib
import json
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from syndicate.config import Config
from syndicate.feeds.registry import ARCHIVE_SUFFIXES, FILENAMES, FORMATS, MEDIA_TYPES
from syndicate.output import MANIFEST

FEED_TYPES = {name: MEDIA_TYPES[fmt] for fmt, name in FILENAMES.items()}
OTHER_TYPES = {
    ".xsl": "text/xsl; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".xml": "application/xml; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
CACHE_SECONDS = {".xsl": 86_400}
DEFAULT_CACHE_SECONDS = 300


class StaticFiles:
    """Serves files under `out_dir`; ETags are computed once per (file, mtime, size)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.etags: dict[tuple[Path, int, int], str] = {}

    async def respond(self, request: Request, relative: str) -> Response | None:
        """The file's response (200, 304 or a HEAD), or None when there is no such file."""
        target = self.resolve(relative)
        if target is None:
            return None
        stat = target.stat()
        key = (target, stat.st_mtime_ns, stat.st_size)
        data: bytes | None = None
        etag = self.etags.get(key)
        if etag is None:
            data = await run_in_threadpool(target.read_bytes)
            etag = self.etags[key] = f'W/"{hashlib.sha256(data).hexdigest()[:32]}"'
        headers = _cache_headers(target, etag, stat.st_mtime)
        if not_modified(request, etag, stat.st_mtime):
            return Response(status_code=304, headers=headers)
        if data is None:
            data = await run_in_threadpool(target.read_bytes)
        media_type = content_type(target, request.headers.get("accept", ""))
        if request.method != "HEAD":
            return Response(data, media_type=media_type, headers=headers)
        response = Response(b"", media_type=media_type, headers=headers)
        response.headers["Content-Length"] = str(len(data))
        return response

    def resolve(self, relative: str) -> Path | None:
        """The file a URL path names, or None: hidden files (the manifest), any '..', NUL
        bytes and anything outside the output folder are not served."""
        parts = [p for p in relative.split("/") if p]
        if any(p.startswith(".") or "\0" in p for p in parts):
            return None
        try:
            target = (self.out_dir.joinpath(*parts)).resolve()
        except (OSError, ValueError):
            return None
        if target != self.out_dir and self.out_dir not in target.parents:
            return None
        if target.is_dir():
            target = target / "index.html"
        return target if target.is_file() else None


def _cache_headers(target: Path, etag: str, mtime: float) -> dict[str, str]:
    max_age = CACHE_SECONDS.get(target.suffix, DEFAULT_CACHE_SECONDS)
    return {
        "ETag": etag,
        "Last-Modified": email.utils.formatdate(mtime, usegmt=True),
        "Cache-Control": f"public, max-age={max_age}",
        "Vary": "Accept",  # GZipMiddleware adds Accept-Encoding
        "X-Content-Type-Options": "nosniff",
    }


def not_modified(request: Request, etag: str, mtime: float) -> bool:
    """RFC 9110: If-None-Match wins over If-Modified-Since; weak comparison for ETags."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or etag.removeprefix("W/") in tags
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since:
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError):
            return False
        return int(mtime) <= since
    return False


def _archive_page_type(path: Path) -> str | None:
    """RFC 5005 archive pages (`archive/<n>.xml`, `archive/<n>.atom`) are feeds too."""
    if path.parent.name != "archive" or not path.stem.isdigit():
        return None
    by_suffix = {f".{suffix}": MEDIA_TYPES[fmt] for fmt, suffix in ARCHIVE_SUFFIXES.items()}
    return by_suffix.get(path.suffix)


def content_type(path: Path, accept: str) -> str:
    """Feeds carry their own types, except for a browser: it would download
    application/rss+xml, so it gets XML and renders it through the XSL stylesheet."""
    feed_type = FEED_TYPES.get(path.name) or _archive_page_type(path)
    if feed_type:
        browser = "text/html" in accept and feed_type.split(";")[0] not in accept
        xml = path.suffix in (".xml", ".atom")
        if browser and xml:
            return "application/xml; charset=utf-8"
        return feed_type + ("; charset=utf-8" if xml else "")
    return OTHER_TYPES.get(path.suffix, "application/octet-stream")


def feed_links(config: Config, out_dir: Path) -> list[dict[str, str]]:
    """The main feeds that exist, for the subscribe page's links."""
    links = []
    for fmt in FORMATS.values():
        if (out_dir / fmt.filename).is_file():
            links.append(
                {
                    "title": f"{config.site.title} ({fmt.title})",
                    "url": config.serve.public_url + fmt.filename,
                    "type": fmt.media_type,
                }
            )
    return links


def known_topics(out_dir: Path) -> list[str]:
    """The tags that have feeds (from the output manifest), offered as topics."""
    try:
        entries = json.loads((out_dir / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return []
    names = entries.get("files", {}) if isinstance(entries, dict) else {}
    return sorted({name.split("/")[1] for name in names if name.startswith("tags/")})
