"""Posts: bytes -> Post (pure `parse_post`), and reading a content tree (`read_posts`).

One normalised Post from the front-matter dialects of Jekyll, Hugo and Astro. A post
that cannot be published raises PostError naming its file and line; smaller flaws that
we can repair (control characters, duplicate slugs) come back as warnings.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import hashlib
import mimetypes
import os
import pickle
import re
import signal
import stat
import threading
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, time, tzinfo
from pathlib import Path
from time import time_ns
from typing import Any
from urllib.parse import unquote, urljoin

import yaml
from dateutil import parser as date_parser
from frontmatter.default_handlers import BaseHandler, YAMLHandler
from slugify import slugify

from syndicate.config import Config, YAMLLimitError, load_yaml, sqlite_path
from syndicate.content.cache import CachedRead, PostCache, Stamp, code_fingerprint, file_stamp
from syndicate.content.markup import (
    XML_FORBIDDEN,
    clean_line,
    plain_text,
    render_markdown,
)
from syndicate.errors import Diagnostic, PostError, shown
from syndicate.models import Author, Catalog, Image, Post
from syndicate.workers import parallel_imap

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
        return load_yaml(fm, _PlainYAMLLoader)[1]  # aliases bounded: no "billion laughs"


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
    url = _post_url(config, slug, when)
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


def parse_environment(config: Config) -> str:
    """Everything outside a file that `read_post` reads to make its Post (keep in step with
    `parse_post`): a cached parse made under another environment is not used."""
    site = config.site
    root = config.path.resolve().parent
    return repr((site.tz, site.url, site.author, config.content.post_url, str(root)))


def render_post(post: Post, sanitize: bool = True) -> Post:
    """The post with its HTML rendered (links absolute against its URL; raw HTML sanitised
    unless `sanitize` is False), its XHTML, and a summary from its first paragraph when
    it has no description."""
    if post.html is not None:
        return post
    rendered = render_markdown(post.body, post.url, sanitize)
    return replace(
        post, html=rendered.html, xhtml=rendered.xhtml, summary=post.summary or rendered.lead
    )


def summary_text(post: Post) -> str:
    """The summary as plain text, for feeds and digests. A description is written in front
    matter, where tags are removed (`<b>bold</b>` -> `bold`); a summary taken from the first
    paragraph is already text (entities decoded), so it is not read as markup a second
    time: a post about `&lt;b&gt;` keeps its `<b>`."""
    if post.description:
        return plain_text(post.description)
    return clean_line(post.summary)  # filled by render_post, which callers run first


# Python-Markdown and html5ever (nh3) slow down quadratically on some inputs: 16 KB of
# "[ " takes 13 s, 100,000 nested <div> a minute; a larger file would hold the run lock
# for hours. No real post takes a tenth of this. SYNDICATE_RENDER_SECONDS overrides it.
RENDER_SECONDS = 20


def render_seconds() -> int:
    value = os.environ.get("SYNDICATE_RENDER_SECONDS", "")
    return int(value) if value.isdigit() and int(value) > 0 else RENDER_SECONDS


class _RenderTimeoutError(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    """Raise _RenderTimeoutError in the block after `seconds` (wall clock). Python code is
    interrupted at once; a call into a C/Rust parser when it returns. Signals exist only in
    the main thread (cron runs and build workers); elsewhere (the daemon's job threads)
    there is no limit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise _RenderTimeoutError

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def render_or_diagnose(post: Post, sanitize: bool = True) -> Post | Diagnostic:
    """The rendered post, or why it cannot be rendered. Runs in the forked workers too, so
    any exception (deep recursion, a bug in a Markdown extension) is caught per post."""
    blank = post.body[: len(post.body) - len(post.body.lstrip())]
    line = post.body_line + blank.count("\n")  # where the body's text starts
    limit = render_seconds()
    try:
        with _time_limit(limit):
            return render_post(post, sanitize=sanitize)
    except _RenderTimeoutError:
        return Diagnostic(
            post.source,
            line,
            "error",
            f"the body took more than {limit} s to render (input that makes the "
            "Markdown or HTML parser slow down quadratically, such as thousands of unclosed "
            "'[' or nested tags); the post is skipped",
            "close the brackets or tags, or put such text in a code block",
            transient=True,
        )
    except RecursionError:
        return Diagnostic(
            post.source,
            line,
            "error",
            "the body cannot be rendered: it is nested too deeply (lists or quotes hundreds "
            "of levels deep); the post is skipped",
            "flatten the nesting",
        )
    except Exception as exc:  # one post that breaks the renderer never stops the others
        return Diagnostic(
            post.source,
            line,
            "error",
            f"the body cannot be rendered ({type(exc).__name__}: {shown(str(exc))}); "
            "the post is skipped",
        )


def published(posts: Iterable[Post], now: datetime) -> list[Post]:
    """Posts that are public at `now`, newest first; drafts and future posts held back."""
    ready = [p for p in posts if not p.draft and p.date <= now]
    return sort_newest_first(ready)


def scheduled(posts: Iterable[Post], now: datetime) -> list[Post]:
    """Posts that will become public after `now` (not drafts), soonest first."""
    return sorted((p for p in posts if not p.draft and p.date > now), key=lambda p: p.date)


def sort_newest_first(posts: Iterable[Post]) -> list[Post]:
    """Newest first; ties broken by source path so the order never depends on the disk."""
    ordered = sorted(posts, key=lambda p: p.key)
    return sorted(ordered, key=lambda p: p.date, reverse=True)


def assign_unique_slugs(posts: list[Post], config: Config) -> tuple[list[Post], list[Diagnostic]]:
    """Give every post a distinct slug: the oldest keeps it, later ones get -2, -3 ...

    Oldest-first (then by path) makes the choice deterministic and stable as new posts
    arrive, so a published URL does not move when a newer post reuses a title.
    """
    warnings: list[Diagnostic] = []
    taken: dict[str, Post] = {}
    result: dict[str, Post] = {}
    for post in sorted(posts, key=lambda p: (p.date, p.key)):
        slug = post.slug
        if slug in taken:
            n = 2
            while f"{slug}-{n}" in taken:
                n += 1
            new_slug = f"{slug}-{n}"
            first = taken[slug]
            warnings.append(
                Diagnostic(
                    post.source,
                    post.key_lines.get("slug") or post.key_lines.get("title") or 1,
                    "warning",
                    f"slug '{slug}' is already used by {first.source}; this post gets '{new_slug}'",
                    "give one of the posts its own 'slug:' (or a different title)",
                )
            )
            url = _post_url(config, new_slug, post.date)
            post = replace(post, slug=new_slug, url=url, id=post.id if post.explicit_id else url)
            slug = new_slug
        taken[slug] = post
        result[post.key] = post
    return [result[p.key] for p in posts], warnings


def find_sources(config: Config) -> list[Path]:
    """Every content file under content.paths matching content.patterns, sorted.

    Hidden files and folders (".git", ".obsidian") are skipped.
    """
    found: set[Path] = set()
    # fnmatch.fnmatch, compiled once: one regex for all the patterns
    wanted = re.compile("|".join(fnmatch.translate(p) for p in config.content.patterns) or "(?!)")
    for root in config.content.paths:
        if root.exists() and not root.is_dir():
            found.add(root)  # a file named on its own; read_post says if it is not a regular one
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            base = Path(folder)
            for name in files:
                if not name.startswith(".") and wanted.match(os.path.normcase(name)):
                    found.add(base / name)
    return sorted(found)


ReadOutcome = tuple[Post | None, list[Diagnostic]]
# Wraps the stream of read files (a progress bar counts them as they come).
ReadProgress = Callable[[Iterator[ReadOutcome], int], Iterator[ReadOutcome]]


@contextlib.contextmanager
def open_cache(config: Config) -> Iterator[PostCache]:
    """The per-post cache for this run (see syndicate.content.cache), closed at the end."""
    cache = PostCache(cache_path(config), code_fingerprint() + parse_environment(config))
    try:
        yield cache
    finally:
        cache.close()


def cache_path(config: Config) -> Path | None:
    """Beside the SQLite state database (`state.db` -> `state.db.cache`), else beside
    config.yaml; None (no cache) when SYNDICATE_NO_CACHE is set."""
    if os.environ.get("SYNDICATE_NO_CACHE"):
        return None
    db = sqlite_path(config.state_url)
    if db is not None:
        return db.with_name(db.name + ".cache")
    return config.path.resolve().parent / ".syndicate-cache.sqlite"


def read_posts(
    config: Config, progress: ReadProgress | None = None, cache: PostCache | None = None
) -> Catalog:
    """Read and parse every content file; a bad file becomes a diagnostic, never a crash.

    With a `cache`, posts come *without their body* (`body == ""`; `markdown_bodies` fetches
    the bodies of the posts that must be rendered), and a file whose stamp is unchanged
    is not read at all: its Post and diagnostics come from the cache. Slugs are made unique after,
    over all posts, since a new post can change another post's slug."""
    diagnostics: list[Diagnostic] = []
    missing = [p for p in config.content.paths if not p.exists()]
    for path in missing:
        diagnostics.append(
            Diagnostic(
                display_path(path),
                None,
                "error",
                "content folder does not exist",
                "fix content.paths in config.yaml or pass --content DIR",
            )
        )
    sources = find_sources(config)
    outcomes: list[ReadOutcome | None] = [None] * len(sources)
    todo = list(range(len(sources)))
    if cache is not None and cache.enabled:
        todo = _from_cache(sources, outcomes, config, cache)
    parsed = parallel_imap(
        functools.partial(_read_for_cache, config=config, for_cache=bool(cache and cache.enabled)),
        [sources[i] for i in todo],
        64,
    )
    fresh = _cached_as_read(parsed, [sources[i] for i in todo], config, cache)
    results = _merge(outcomes, todo, fresh)
    if progress is not None:
        results = progress(results, len(sources))
    posts: list[Post] = []
    for post, found in results:
        if post is not None:
            posts.append(with_image_length(post, config))
        diagnostics.extend(found)
    posts, slug_warnings = assign_unique_slugs(posts, config)
    diagnostics.extend(slug_warnings)
    return Catalog(posts=tuple(posts), diagnostics=tuple(diagnostics))


def _merge(
    outcomes: list[ReadOutcome | None], todo: list[int], fresh: Iterator[ReadOutcome]
) -> Iterator[ReadOutcome]:
    """Cached and freshly read outcomes, in the order of the files."""
    pending = set(todo)
    for index, outcome in enumerate(outcomes):
        yield next(fresh) if index in pending else outcome or (None, [])
    yield from fresh  # nothing left, but lets it store its last batch


def _from_cache(
    sources: list[Path], outcomes: list[ReadOutcome | None], config: Config, cache: PostCache
) -> list[int]:
    """Fill `outcomes` from the cache where a file is unchanged; -> indexes left to read.

    Unchanged: the same stamp, read as the same display path, and (for an entry read in
    the same clock tick as the file was written, or a stamp that differs only by time)
    the same content hash."""
    entries = cache.reads()
    todo: list[int] = []
    restamped: list[tuple[str, Stamp, int]] = []
    key_of = _relative_to(config.path.resolve().parent)
    source_of = _relative_to(Path.cwd(), display=True)
    for index, path in enumerate(sources):
        key = key_of(path)
        entry = entries.pop(key, None)
        stamp = file_stamp(path)
        if entry is None or stamp is None or entry.source != source_of(path):
            todo.append(index)
            continue
        if stamp != entry.stamp or entry.racy:
            now = time_ns()
            if stamp[2] != entry.stamp[2] or _hash_file(path) != entry.content_hash:
                todo.append(index)
                continue
            restamped.append((key, stamp, now))
        try:
            post, found = entry.outcome()
        except Exception:  # a broken entry is a miss, never a crash
            todo.append(index)
            continue
        outcomes[index] = (post, list(found))
    cache.restamp(restamped)
    cache.forget_reads(entries)  # files that are gone
    return todo


def _hash_file(path: Path) -> str:
    try:
        return content_hash(read_regular_file(path))
    except PostError:
        return ""


# What a worker hands back for one file: (outcome, stamp, read_at, record, body, hash).
# With the cache on, a cacheable outcome comes back already pickled without its body
# (`record`) and the body as UTF-8 bytes, so the parent neither unpickles a body it will
# not keep nor pickles the post again; else `outcome` is the plain ReadOutcome.
_FreshRead = tuple[ReadOutcome | None, Stamp | None, int, bytes, bytes, str]


def _read_for_cache(path: Path, config: Config, for_cache: bool) -> _FreshRead:
    """`read_post` without the image length (it depends on another file), with the stamp
    and the clock taken before reading."""
    read_at = time_ns()
    stamp = file_stamp(path)
    outcome, cacheable = _read_post(path, config)
    if not (for_cache and cacheable and stamp is not None):
        return outcome, None, read_at, b"", b"", ""
    post, found = outcome
    record = pickle.dumps((replace(post, body="") if post else None, found), 5)
    if post is None:
        return None, stamp, read_at, record, b"", ""
    return None, stamp, read_at, record, post.body.encode(), post.content_hash


def _cached_as_read(
    parsed: Iterator[_FreshRead],
    sources: list[Path],
    config: Config,
    cache: PostCache | None,
) -> Iterator[ReadOutcome]:
    """Pass the fresh outcomes on, storing the cacheable ones (in batches)."""
    batch: list[tuple[str, CachedRead, bytes]] = []
    for path, (outcome, stamp, read_at, record, body, content_hash) in zip(
        sources, parsed, strict=True
    ):
        if outcome is not None or stamp is None:
            yield outcome or (None, [])
            continue
        entry = CachedRead(display_path(path), stamp, content_hash, record, read_at)
        batch.append((post_key(path, config), entry, body))
        if cache is not None and len(batch) >= 500:
            cache.save_reads(batch)
            batch = []
        post, found = entry.outcome()  # without its body: the cache has it
        yield post, list(found)
    if cache is not None and batch:
        cache.save_reads(batch)


def markdown_bodies(
    posts: Iterable[Post], config: Config, cache: PostCache | None
) -> dict[str, str]:
    """key -> Markdown body, for posts that came from the cache without theirs.

    From the cache, else (the cache failed in between) read from the file again, if
    it still has the content the post was parsed from."""
    wanted = [p for p in posts if p.body == ""]
    found = cache.bodies(p.key for p in wanted) if cache is not None else {}
    for post in wanted:
        if post.key in found:
            continue
        try:
            data = read_regular_file(Path(post.source))
        except PostError:
            continue
        if content_hash(data) == post.content_hash:
            try:
                again, _ = parse_post(data, post.source, config, post.key)
            except PostError:
                continue
            found[post.key] = again.body
    return found


def read_post(path: Path, config: Config) -> ReadOutcome:
    """Read and parse one file: the post (None if it cannot be published) and diagnostics.

    Whatever goes wrong with this one file (a FIFO, a dangling link, a bug deep in a
    parser) is one diagnostic about it; the other posts are not affected."""
    (post, found), _ = _read_post(path, config)
    return (with_image_length(post, config) if post is not None else None), found


def _read_post(path: Path, config: Config) -> tuple[ReadOutcome, bool]:
    """-> (outcome, cacheable): outcomes of unexpected exceptions are not cached."""
    source = display_path(path)
    try:
        data = read_regular_file(path)
    except PostError as exc:  # the file system's doing: asked again every run
        return (None, [exc.diagnostic()]), False
    try:
        post, found = parse_post(data, source, config, post_key(path, config))
        if printable(str(path)) != str(path):
            found.append(
                Diagnostic(
                    source,
                    None,
                    "warning",
                    "the file name is not valid UTF-8 (shown with \\x escapes)",
                    "rename the file, e.g. with convmv -f latin1 -t utf-8",
                )
            )
        return (post, found), True
    except PostError as exc:
        return (None, [exc.diagnostic()]), True
    except RecursionError:
        message = "cannot be read: it is nested too deeply (front matter or lists)"
        return (None, [Diagnostic(source, None, "error", message, "flatten the nesting")]), True
    except Exception as exc:  # one bad file never stops the others
        message = f"cannot be read: {type(exc).__name__}: {shown(str(exc))}"
        return (None, [Diagnostic(source, None, "error", message)]), False


_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


def read_regular_file(path: Path) -> bytes:
    """The bytes of a regular file; anything else (FIFO, socket, device, a dangling symbolic
    link) is a PostError rather than a read that blocks forever while holding the run lock.

    Opened without blocking and checked again on the descriptor, so a file swapped for a
    FIFO between the two looks is refused too."""
    source = display_path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(source, info.st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        link = " (a symbolic link to a missing file)" if path.is_symlink() else ""
        raise PostError(source, None, f"cannot read: no such file{link}") from None
    except OSError as exc:
        raise PostError(source, None, f"cannot read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(source, mode)
        return file.read()


def _not_regular(source: str, mode: int) -> PostError:
    kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    return PostError(
        source,
        None,
        f"is {kind}, not a regular file; skipped",
        "move it out of the content folder, or narrow content.patterns",
    )


def post_key(path: Path, config: Config) -> str:
    """The post's identity in the state database: its path relative to the folder of
    config.yaml, with '/' separators. The same file has the same key whatever the working
    directory, whether the folder came from content.paths or --content, and two content
    folders holding the same file name still give two keys."""
    root = config.path.resolve().parent  # content paths are resolved the same way
    return printable(os.path.relpath(path.absolute(), root).replace(os.sep, "/"))


def legacy_key_mapper(config: Config) -> Callable[[str], str | None]:
    """old key -> key, for state written before posts were keyed by `post_key`.

    Old keys were paths relative to the working directory of that run (absolute when
    outside it), which is not known any more. A key is matched against the files there
    are now: the same absolute path, else the one file whose path ends with the old key,
    else (several files end so) the old key itself if it is also a new one, else the old
    key taken from the current working directory. None: no such file."""
    keys = {
        printable(str(path.absolute())): post_key(path, config) for path in find_sources(config)
    }
    by_suffix: dict[tuple[str, ...], list[str]] = {}
    for absolute, key in keys.items():
        parts = tuple(absolute.split("/"))
        for start in range(1, len(parts)):
            by_suffix.setdefault(parts[start:], []).append(key)
    current = set(keys.values())

    def mapper(old: str) -> str | None:
        here = printable(os.path.normpath(Path.cwd() / old))
        if old.startswith("/"):
            return keys.get(os.path.normpath(old))
        candidates = by_suffix.get(tuple(p for p in old.split("/") if p not in ("", ".")), [])
        if len(candidates) == 1:
            return candidates[0]
        if old in current:
            return old
        return keys.get(here)

    return mapper


def _relative_to(root: Path, display: bool = False) -> Callable[[Path], str]:
    """A fast `post_key` (or, with `display`, `display_path`) for many paths: one
    relpath() per folder instead of a resolve() and a relpath() per file."""
    folders: dict[str, str] = {}

    def relative(path: Path) -> str:
        folder, name = os.path.split(path)
        prefix = folders.get(folder)
        if prefix is None:
            prefix = os.path.relpath(folder or ".", root)
            folders[folder] = prefix
        if display and prefix.startswith(".."):
            return printable(str(path))  # as display_path shows a path outside the cwd
        rel = name if prefix == "." else f"{prefix}{os.sep}{name}"
        return printable(rel.replace(os.sep, "/") if not display else rel)

    return relative


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it.
    Bytes that are not UTF-8 in a file name are shown as backslash escapes."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return printable(str(path))
    return printable(str(path) if rel.startswith("..") else rel)


def printable(name: str) -> str:
    """A file name that can be encoded: undecodable bytes (which Python keeps as lone
    surrogates) become `\\xNN`, so messages, keys and hashes never raise UnicodeEncodeError."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def with_image_length(post: Post, config: Config) -> Post:
    """Fill the featured image's size in bytes (and type) when it is a file under
    site.static_dir: RSS enclosures need the real length."""
    image, static = post.image, config.site.static_dir
    if image is None or static is None or not image.url.startswith(config.site.url):
        return post
    relative = unquote(image.url[len(config.site.url) :].split("?")[0].split("#")[0])
    try:  # ValueError: a %00 in the URL (a NUL byte no file name can hold)
        candidate = (static / relative).resolve()
        if not candidate.is_relative_to(static.resolve()):
            return post
        info = candidate.stat()
    except (OSError, ValueError):
        return post
    if not stat.S_ISREG(info.st_mode):
        return post
    kind = image.type or mimetypes.guess_type(candidate.name)[0]
    return replace(post, image=replace(image, length=info.st_size, type=kind))


# --- parsing helpers -------------------------------------------------------------------


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
    found = XML_FORBIDDEN.search(body)
    if not found:
        return body, None
    line = body.count("\n", 0, found.start())
    return XML_FORBIDDEN.sub("", body), (line, f"U+{ord(found.group()):04X}")


def _post_url(config: Config, slug: str, when: datetime) -> str:
    path = config.content.post_url.format(
        slug=slug, year=f"{when.year:04d}", month=f"{when.month:02d}", day=f"{when.day:02d}"
    )
    return config.site.url + path.lstrip("/")


def content_hash(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()
