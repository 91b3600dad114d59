"""Content lint for `syndicate check`: flaws a publisher should catch before readers do.

Pure functions over parsed posts. Nothing here stops a build; these are warnings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import ftfy
from ftfy.badness import is_bad

from syndicate.config import Config
from syndicate.content.markup import is_svg
from syndicate.errors import Diagnostic
from syndicate.models import Post

_PLACEHOLDERS = (
    re.compile(r"\[(?:insert|add|placeholder|todo|tbd)\b[^\]\n]*\]", re.IGNORECASE),
    re.compile(r"please replace this[^.)\n]*", re.IGNORECASE),
    re.compile(r"lorem ipsum", re.IGNORECASE),
)
# RFC 2606 / RFC 6761 names reserved for documentation and testing.
_PLACEHOLDER_URL = re.compile(
    r"\bhttps?://((?:[\w-]+\.)*(?:example\.(?:com|net|org)|[\w-]+\.(?:test|example|invalid|localhost)|example|localhost))\b[^\s)\]\"'>]*",
    re.IGNORECASE,
)
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?([^)\s>]*)")
_HTML_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ALT_ATTR = re.compile(r"\balt\s*=\s*(\"[^\"]+\"|'[^']+'|[^\s\"'>]+)", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-f]+|[a-z]+);", re.IGNORECASE)


def lint_post(post: Post, config: Config) -> list[Diagnostic]:
    """Every content warning for one post, in file order."""
    site_host = (urlsplit(config.site.url).hostname or "").lower()
    found = list(_front_matter_warnings(post, config))
    for line_no, line in _body_lines(post):
        found.extend(_line_warnings(post.source, line_no, line, site_host))
    return sorted(found, key=lambda d: d.line or 0)


def _front_matter_warnings(post: Post, config: Config) -> Iterator[Diagnostic]:
    def at(key: str) -> int:
        return post.key_lines.get(key, 1)

    if post.description is None:
        yield Diagnostic(
            post.source,
            1,
            "warning",
            "no description: readers and the digest get the first paragraph instead",
            "add 'description: ...' (one or two sentences) to the front matter",
        )
    for field, value in (("title", post.title), ("description", post.description or "")):
        tag = _TAG.search(value)
        if tag:
            yield Diagnostic(
                post.source,
                at(field),
                "warning",
                f"{field} contains HTML markup ({tag[0]!r}); the feeds drop the tags (plain text)",
                "front matter is plain text: remove the tags",
            )
        entity = _ENTITY.search(value)
        if entity:
            yield Diagnostic(
                post.source,
                at(field),
                "warning",
                f"{field} contains an HTML entity ({entity[0]!r}); it is shown literally",
                "write the character itself, e.g. '&' rather than '&amp;'",
            )
        if is_bad(value):
            yield _mojibake(post.source, at(field), value)
    if post.image and is_svg(post.image.url) and config.newsletter.enabled:
        key = "image" if "image" in post.key_lines else "heroImage"
        yield Diagnostic(
            post.source,
            at(key),
            "warning",
            f"featured image is an SVG ({_clip(post.image.url)}): left out of email digests "
            "(Gmail and Outlook show no SVG)",
            "use a PNG, JPEG or WebP version for the featured image",
        )
    if post.image and not post.image.alt:
        key = "image" if "image" in post.key_lines else "heroImage"
        yield Diagnostic(
            post.source,
            at(key),
            "warning",
            "featured image has no alt text",
            "write it as image: {url: ..., alt: 'what the picture shows'}",
        )


def _body_lines(post: Post) -> Iterator[tuple[int, str]]:
    in_fence = False
    for offset, line in enumerate(post.body.split("\n")):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if not in_fence:
            yield post.body_line + offset, line


def _line_warnings(source: str, line_no: int, line: str, site_host: str) -> Iterator[Diagnostic]:
    if is_bad(line):
        yield _mojibake(source, line_no, line)
    for pattern in _PLACEHOLDERS:
        for match in pattern.finditer(line):
            yield Diagnostic(
                source,
                line_no,
                "warning",
                f"placeholder text left in the post: {_clip(match[0])!r}",
                "replace it with the real text or link, or delete it",
            )
    for match in _PLACEHOLDER_URL.finditer(line):
        host = match[1].lower()
        if host == site_host:
            continue
        yield Diagnostic(
            source,
            line_no,
            "warning",
            f"link to a placeholder domain: {match[0]}",
            f"{host} is reserved for examples (RFC 2606); link to the real page",
        )
    for match in _MD_IMAGE.finditer(line):
        if not match[1].strip():
            yield Diagnostic(
                source,
                line_no,
                "warning",
                f"image without alt text: {match[2] or match[0]}",
                "describe the picture between the brackets: ![a red bicycle](bike.jpg)",
            )
    for match in _HTML_IMG.finditer(line):
        if not _ALT_ATTR.search(match[0]):
            yield Diagnostic(
                source,
                line_no,
                "warning",
                f"image without alt text: {_clip(match[0])}",
                'add alt="what the picture shows" to the <img> tag',
            )


def _mojibake(source: str, line_no: int, text: str) -> Diagnostic:
    fixed = ftfy.fix_text(text)
    sample = _first_difference(text, fixed)
    return Diagnostic(
        source,
        line_no,
        "warning",
        f"mojibake (text decoded with the wrong encoding): {sample}",
        "re-save the source as UTF-8 and retype the garbled characters",
    )


def _first_difference(bad: str, fixed: str) -> str:
    for i, (a, b) in enumerate(zip(bad, fixed, strict=False)):
        if a != b:
            end = i + 3
            while end < len(bad) and not bad[end].isspace():
                end += 1
            fragment = bad[i:end].strip()
            corrected = fixed[i : i + 1 + max(0, len(fixed) - len(bad))].strip()
            return f"{fragment!r} should probably be {corrected!r}" if corrected else repr(fragment)
    return repr(_clip(bad))


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
