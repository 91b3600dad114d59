"""One file's bytes -> a Post: front matter (YAML as Jekyll and Astro write it, TOML as Hugo
does) in its dialects, dates, terms, images and authors, every problem on its line."""

from __future__ import annotations

import hashlib
import mimetypes
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, time, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import yaml
from dateutil import parser as date_parser
from frontmatter.default_handlers import BaseHandler, YAMLHandler
from slugify import slugify

from syndicate.config import MAX_YAML_DEPTH, Config, YAMLLimitError, load_yaml
from syndicate.content.markup import (
    XML_FORBIDDEN,
    clean_line,
    has_xml_forbidden,
)
from syndicate.errors import Diagnostic, PostError, shown
from syndicate.models import Author, Image, Post

DATE_KEYS = ("date", "pubDate", "published", "publishDate", "pubdate")


UPDATED_KEYS = ("updated", "updatedDate", "lastmod", "last_modified_at", "modified")


SUMMARY_KEYS = ("description", "summary", "excerpt")


IMAGE_KEYS = ("image", "heroImage")


KNOWN_KEYS = frozenset(
    {
        "title", "slug", "id", "guid", "draft", "author", "tags", "tag", "category",
        "categories", "heroImageAlt", *DATE_KEYS, *UPDATED_KEYS, *SUMMARY_KEYS, *IMAGE_KEYS,
    }
)  # fmt: skip


DATE_HINT = "use YYYY-MM-DD or an ISO 8601 date-time such as 2025-05-13T08:00:00+02:00"


JEKYLL_NAME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-(.+)$")


_HEADING = re.compile(r"^#[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


_KEY_LINE = re.compile(r"^[\"']?([A-Za-z_][\w-]*)[\"']?\s*[:=]", re.MULTILINE)


MAX_FRONT_MATTER = 128 * 1024  # bytes of front matter; real ones are well under 4 KB
MIN_YEAR, MAX_YEAR = 1900, 9998  # RFC 822 dates have four-digit years; keep a margin for UTC


_BEFORE_DATE = datetime(1, 1, 1)


_AFTER_DATE = datetime(2, 2, 2)


# LibYAML's parser when PyYAML was built with it: front matter parsing is ~8x faster.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _PlainYAMLLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that leaves dates as strings: we parse them ourselves, with line numbers,
    so `2025-02-30` is a diagnostic instead of an exception deep inside PyYAML."""


_PlainYAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _YAML(YAMLHandler):
    def load(self, fm: str, **kwargs: object) -> Any:
        if _may_need_checks(fm):
            return load_yaml(fm, _PlainYAMLLoader)[1]  # aliases bounded: no "billion laughs"
        parser = _PlainYAMLLoader(fm)
        try:
            node = parser.get_single_node()
            return None if node is None else _construct(parser, node)
        finally:
            parser.dispose()


_STR, _SEQ, _MAP = (f"tag:yaml.org,2002:{name}" for name in ("str", "seq", "map"))


def _construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """`loader.construct_document(node)` for a graph without aliases (`_may_need_checks`
    said so): strings, lists and dicts with string keys, nearly all of front matter, are
    built here (the library's generator-based constructors took a fifth of reading a
    post); any other node, and a mapping with any other key (`<<` and `=` among them,
    which the library rewrites), go to the library, which builds them (or raises) as it
    would have."""
    tag = node.tag
    if tag == _STR and isinstance(node, yaml.ScalarNode):
        return node.value
    if tag == _SEQ and isinstance(node, yaml.SequenceNode):
        return [_construct(loader, child) for child in node.value]
    if tag == _MAP and isinstance(node, yaml.MappingNode):
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag != _STR or not isinstance(key_node, yaml.ScalarNode):
                return loader.construct_document(node)
            mapping[key_node.value] = _construct(loader, value_node)
        return mapping
    return loader.construct_document(node)


def _may_need_checks(text: str) -> bool:
    """Whether `load_yaml`'s checks could find anything in this text: they cost a third of
    reading a post. Without them the text must give the same value and the same errors,
    so it must have no alias or anchor (`*`, `&`), no second document (`---`, `...`: the
    depth check reads the whole stream, the composer stops after the first document), and
    too few indicators (each collection starts with one of `[{-:?`) to nest deeper than
    MAX_YAML_DEPTH."""
    if "*" in text or "&" in text or "---" in text or "..." in text:
        return True
    return sum(map(text.count, "[{-:?")) > MAX_YAML_DEPTH


class _TOML(BaseHandler):
    """Hugo's `+++` front matter, read with the standard library's tomllib."""

    FM_BOUNDARY = re.compile(r"^\+{3,}\s*$", re.MULTILINE)
    START_DELIMITER = END_DELIMITER = "+++"

    def load(self, fm: str, **kwargs: object) -> Any:
        return tomllib.loads(fm)


# (delimiter line, handler, name): YAML "---" as Jekyll and Astro write it, TOML "+++" (Hugo).
# python-frontmatter gives the handlers' interface, but not its `loads()`: that returns
# neither the line where the front matter starts nor where the body starts (every
# diagnostic needs `path:line`), turns YAML dates into datetimes before we can report
# `2025-02-30` on its line, lets PyYAML's errors and aliases through unbounded, and
# accepts no blank lines before the opening delimiter, which real posts have.
_FRONT_MATTER: tuple[tuple[re.Pattern[str], BaseHandler, str], ...] = (
    (re.compile(r"^-{3,}[ \t]*$", re.MULTILINE), _YAML(), "YAML"),
    (re.compile(r"^\+{3,}[ \t]*$", re.MULTILINE), _TOML(), "TOML"),
)


class _FrontMatter:
    """One file's parsed front matter, with the line of each key, so every message about
    a key points at its line."""

    def __init__(self, source: str, meta: dict[str, Any], fm_line: int, fm_text: str) -> None:
        self.source = source
        self.meta = meta
        self.line = fm_line or 1
        self.key_lines = {
            m.group(1): fm_line + fm_text.count("\n", 0, m.start())
            for m in _KEY_LINE.finditer(fm_text)
        }
        self.warnings: list[Diagnostic] = []

    def fail(self, key: str | None, message: str, hint: str | None = None) -> PostError:
        return PostError(self.source, self.key_lines.get(key or "", self.line), message, hint, key)

    def warn(self, key: str | None, message: str, hint: str | None = None) -> None:
        line = self.key_lines.get(key or "", self.line)
        self.warnings.append(Diagnostic(self.source, line, "warning", message, hint))

    def first(self, keys: Iterable[str]) -> str | None:
        """The first of `keys` with a value (not missing, null or empty)."""
        return next((k for k in keys if self.meta.get(k) not in (None, "")), None)


def parse_post(
    data: bytes, source: str, config: Config, key: str | None = None
) -> tuple[Post, list[Diagnostic]]:
    """Parse one file's bytes into a Post; raise PostError if it cannot be published.

    `source` names the file in messages; `key` identifies the post in the state (its path
    relative to the config file, see `post_key`), `source` when not given."""
    text = _decode(data, source)
    if not text.strip():
        raise PostError(
            source, 1, "file is empty", "add front matter with a title and a date, or delete it"
        )
    meta, fm_line, fm_text, body, body_line, kind = _split(text, source)
    fm = _FrontMatter(source, meta, fm_line, fm_text)
    jekyll = JEKYLL_NAME.match(Path(source).stem)
    title, body = _title(meta, body, fm.fail, fm.warn, kind)
    when, updated = _dates(fm, jekyll, config.site.tz)
    slug_key = fm.first(["slug"])
    slug_source = str(meta["slug"]) if slug_key else (jekyll[4] if jekyll else title)
    slug = (
        slugify(slug_source, max_length=80, word_boundary=True)
        or "post-" + content_hash(key or source)[:8]
    )
    body = _without_forbidden(body, body_line, fm)
    description = _description(fm)
    url = post_url_for(config, slug, when)
    id_key = fm.first(("id", "guid"))
    explicit_id = str(meta[id_key]).strip() if id_key else ""
    image = _image(meta, url, fm.fail)
    post = Post(
        source=source,
        key=key or source,
        title=title,
        slug=slug,
        url=url,
        id=explicit_id or url,
        date=when,
        updated=updated,
        summary=description or "",  # else the first paragraph, filled in by render_post
        body=body,
        body_line=body_line,
        description=description,
        tags=_terms(meta, ("tags", "tag"), fm.fail),
        categories=_terms(meta, ("categories", "category"), fm.fail),
        image=image,
        author=_author(meta.get("author"), fm.fail) or config.site.author,
        draft=_is_draft(meta, source),
        explicit_id=bool(explicit_id),
        explicit_slug=slug_key is not None,
        content_hash=content_hash(data),
        extra={k: v for k, v in meta.items() if k not in KNOWN_KEYS},
        key_lines=fm.key_lines,
    )
    return post, fm.warnings


def _is_draft(meta: Mapping[str, Any], source: str) -> bool:
    """`draft: true`, Jekyll's `published: false`, or a file in a `_drafts` folder."""
    return (
        _flag(meta.get("draft"))
        or meta.get("published") is False
        or Path(source).parent.name == "_drafts"
    )


def _dates(
    fm: _FrontMatter, jekyll: re.Match[str] | None, tz: tzinfo
) -> tuple[datetime, datetime | None]:
    """The publication date (front matter, else a Jekyll file name) and the update date."""
    meta = fm.meta
    date_key = next((k for k in DATE_KEYS if _is_date_value(meta.get(k))), None)
    if date_key is not None:
        when = _parse_date(meta[date_key], tz, lambda m, h: fm.fail(date_key, m, h), date_key)
    elif jekyll:
        try:
            when = datetime(int(jekyll[1]), int(jekyll[2]), int(jekyll[3]), tzinfo=tz)
        except ValueError as exc:
            raise PostError(
                fm.source, None, f"file name date is impossible: {exc}", DATE_HINT
            ) from None
    else:
        raise fm.fail(None, "no date: add 'date:' to the front matter", DATE_HINT)
    updated_key = fm.first(UPDATED_KEYS)
    if updated_key is None:
        return when, None
    fail = lambda m, h: fm.fail(updated_key, m, h)  # noqa: E731
    return when, _parse_date(meta[updated_key], tz, fail, updated_key)


def _without_forbidden(body: str, body_line: int, fm: _FrontMatter) -> str:
    """The body without the characters XML 1.0 forbids (one warning if there were any)."""
    body, removed = _strip_forbidden(body)
    if removed:
        line, char = removed
        fm.warnings.append(
            Diagnostic(
                fm.source,
                body_line + line,
                "warning",
                f"body contains characters that XML 1.0 forbids (first {char}); they were removed",
                "delete the control characters from the file",
            )
        )
    return body


def _description(fm: _FrontMatter) -> str | None:
    """The author's summary (description, summary, excerpt ...) as one line of text."""
    key = fm.first(SUMMARY_KEYS)
    if key is None:
        return None
    description = fm.meta[key]
    if not isinstance(description, str | int | float):
        raise fm.fail(_present(fm.meta, SUMMARY_KEYS), "the description must be text")
    return clean_line(str(description))


def _decode(data: bytes, source: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise PostError(
            source,
            line,
            f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {column})",
            "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _split(text: str, source: str) -> tuple[dict[str, Any], int, str, str, int, str]:
    """-> (metadata, front-matter first line, front-matter text, body, body line, kind)."""
    lead = len(text) - len(text.lstrip())
    for boundary, handler, kind in _FRONT_MATTER:
        start = boundary.match(text, lead)
        if not start:
            continue
        end = boundary.search(text, start.end())
        open_line = text.count("\n", 0, start.start()) + 1
        if not end:
            raise PostError(
                source,
                open_line,
                f"{kind} front matter is never closed",
                f"add a line '{start.group().strip()}' after the front matter",
            )
        fm_text = text[start.end() : end.start()]
        if len(fm_text) > MAX_FRONT_MATTER:
            raise PostError(
                source,
                open_line,
                f"{kind} front matter is {len(fm_text) // 1024} KB, more than the "
                f"{MAX_FRONT_MATTER // 1024} KB allowed",
                "keep front matter to metadata; long text belongs in the body",
            )
        meta = _load_front_matter(handler, fm_text, kind, source, open_line)
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise PostError(
                source,
                open_line,
                f"front matter must be a mapping of keys, got a {type(meta).__name__}",
                "write 'key: value' lines, e.g. 'title: My post'",
            )
        meta = {str(k): v for k, v in meta.items()}
        body_line = text.count("\n", 0, end.end()) + 1
        return meta, open_line, fm_text, text[end.end() :], body_line, kind
    return {}, 0, "", text, 1, "none"


def _load_front_matter(
    handler: BaseHandler, fm_text: str, kind: str, source: str, open_line: int
) -> Any:
    """The front matter's value; its syntax errors as a PostError on the right line."""
    try:
        return handler.load(fm_text)
    except RecursionError:
        raise PostError(source, open_line, f"{kind} front matter is nested too deeply") from None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source, open_line) from None
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        last_line = open_line + fm_text.count("\n") - 1
        line = open_line + int(found[1]) - 1 if found else last_line
        reason = re.sub(r"\s*\(at .*\)$", "", str(exc))
        raise PostError(
            source,
            line,
            f"invalid TOML front matter: {reason}",
            'check the quotes and brackets; strings are written "like this"',
        ) from None


def _yaml_error(exc: yaml.YAMLError, source: str, open_line: int) -> PostError:
    """Point at where the problem started: an unclosed quote is reported at its opening
    line, not at the end of the front matter where PyYAML noticed it."""
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or "syntax error"
    context = getattr(exc, "context", None)
    mark = problem_mark
    if context_mark is not None and ("end of stream" in problem or "<stream end>" in problem):
        mark = context_mark
    line = open_line + mark.line if mark is not None else open_line
    message = f"{context}: {problem}" if context else problem
    hint = "quote values that contain ': ' or '#', and close every quote and bracket"
    if isinstance(exc, YAMLLimitError) and "nested" in message:
        hint = "front matter is metadata: a few levels of lists and mappings at most"
    elif isinstance(exc, YAMLLimitError):
        hint = "an alias (*name) may repeat a value, not multiply it: write the values out"
    return PostError(source, line, f"invalid YAML front matter: {message}", hint)


def _title(
    meta: Mapping[str, Any],
    body: str,
    fail: Callable[..., PostError],
    warn: Callable[..., None],
    kind: str,
) -> tuple[str, str]:
    raw = meta.get("title")
    if raw is None or raw == "":
        heading = _HEADING.search(body)
        if not heading:
            if kind == "none":
                raise fail(
                    None,
                    "no front matter and no '# ' heading, so the post has no title",
                    "start the file with '---', 'title: ...', 'date: ...', '---'",
                )
            raise fail(None, "no title: add 'title:' to the front matter or a '# ' heading")
        raw = heading[1]
        if not body[: heading.start()].strip():
            body = body[heading.end() :]  # the title heading would repeat the title
    if isinstance(raw, list | dict):
        raise fail("title", "'title' must be text, not a list or mapping", "title: My post")
    raw = str(raw)
    title = clean_line(XML_FORBIDDEN.sub("", raw))
    if not title:
        raise fail("title", "'title' is empty", "title: My post")
    if re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]", raw):
        warn("title", "title contains control characters; they were removed")
    elif re.search(r"[\r\n]", raw.strip()):
        warn("title", "title contains a line break; it was folded into one line")
    return title, body


def _is_date_value(value: Any) -> bool:
    return value is not None and value != "" and not isinstance(value, bool)


def _parse_date(
    value: Any, tz: tzinfo, fail: Callable[[str, str | None], PostError], key: str
) -> datetime:
    """A tz-aware datetime from YAML/TOML values or the forms real posts use."""
    if isinstance(value, datetime):
        parsed = value if value.tzinfo else value.replace(tzinfo=tz)
    elif isinstance(value, date):
        parsed = datetime.combine(value, time(), tz)
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            if "out of range" in str(exc) or "must be in" in str(exc):
                raise fail(
                    f"'{key}' is an impossible date ({shown(text)}: {exc})", DATE_HINT
                ) from None
            parsed = _parse_human_date(text, fail, key)
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
    else:
        raise fail(f"'{key}' is not a date (got {shown(value)})", DATE_HINT)
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise fail(
            f"'{key}' is out of range ({parsed.year}): "
            f"feeds need a year from {MIN_YEAR} to {MAX_YEAR}",
            DATE_HINT,
        )
    try:
        parsed.utcoffset()  # dateutil accepts offsets such as +99:00 that datetime cannot use
        parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise fail(
            f"'{key}' has an impossible time zone offset ({shown(value)})", DATE_HINT
        ) from None
    return parsed


def _parse_human_date(
    text: str, fail: Callable[[str, str | None], PostError], key: str
) -> datetime:
    """'Jul 08 2025', 'May 13, 2025', '2025-05-13 10:00:00 +0200' and the like.

    dateutil fills missing parts from a default; parsing with two different defaults
    and comparing tells us when the text lacked a year, month or day.
    """
    try:
        first = date_parser.parse(text, default=_BEFORE_DATE)
        second = date_parser.parse(text, default=_AFTER_DATE)
    except (ValueError, OverflowError) as exc:
        reason = str(exc).split(":")[0]
        if "out of range" in reason:
            raise fail(
                f"'{key}' is an impossible date ({shown(text)}: {reason})", DATE_HINT
            ) from None
        raise fail(f"'{key}' is not a date (got {shown(text)})", DATE_HINT) from None
    if first.date() != second.date():
        raise fail(
            f"'{key}' is not a full date (got {shown(text)}): it needs a year, month and day",
            DATE_HINT,
        )
    return first


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return bool(value)


def _present(meta: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    return next((k for k in keys if k in meta), None)


def _terms(
    meta: Mapping[str, Any], keys: tuple[str, ...], fail: Callable[..., PostError]
) -> tuple[str, ...]:
    """Tags or categories from a list or a comma-separated string, de-duplicated in order."""
    terms: dict[str, None] = {}
    for key in keys:
        value = meta.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, str):
            items: list[Any] = value.split(",")
        elif isinstance(value, list | tuple):
            items = list(value)
        elif isinstance(value, int | float):
            items = [value]
        else:
            raise fail(key, f"'{key}' must be a list or a comma-separated string", f"{key}: [a, b]")
        for item in items:
            if isinstance(item, dict | list):
                raise fail(key, f"'{key}' items must be text, got {shown(item)}", f"{key}: [a, b]")
            term = clean_line(str(item))
            if term:
                terms.setdefault(term)
    return tuple(terms)


def _image(meta: Mapping[str, Any], base: str, fail: Callable[..., PostError]) -> Image | None:
    key = _present(meta, IMAGE_KEYS)
    value = meta.get(key) if key else None
    if value is None or value == "":
        return None
    alt: Any = meta.get("heroImageAlt")
    if isinstance(value, dict):
        url = value.get("url") or value.get("src")
        alt = value.get("alt", alt)
    else:
        url = value
    if not isinstance(url, str) or not url.strip():
        raise fail(key, f"'{key}' needs a URL", f"{key}: {{url: /images/cover.png, alt: ...}}")
    absolute = urljoin(base, url.strip())
    mime, _ = mimetypes.guess_type(absolute.split("?")[0])
    alt_text = clean_line(str(alt)) if alt not in (None, "") else None
    return Image(url=absolute, alt=alt_text, type=mime)


def _author(value: Any, fail: Callable[..., PostError]) -> Author | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        name = clean_line(str(value.get("name") or ""))
        email = value.get("email")
        if not name:
            raise fail(
                "author", "'author' needs a name", "author: {name: Ada, email: ada@example.org}"
            )
        return Author(name, clean_line(str(email)) if email else None)
    return Author(clean_line(str(value)))


def _strip_forbidden(body: str) -> tuple[str, tuple[int, str] | None]:
    found = XML_FORBIDDEN.search(body) if has_xml_forbidden(body) else None
    if not found:
        return body, None
    line = body.count("\n", 0, found.start())
    return XML_FORBIDDEN.sub("", body), (line, f"U+{ord(found.group()):04X}")


def post_url_for(config: Config, slug: str, when: datetime) -> str:
    path = config.content.post_url.format(
        slug=slug, year=f"{when.year:04d}", month=f"{when.month:02d}", day=f"{when.day:02d}"
    )
    return config.site.url + path.lstrip("/")


def content_hash(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()
