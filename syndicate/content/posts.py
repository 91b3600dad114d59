"""All the posts: reading a content tree (`read_posts`, in parallel, through the per-post
cache), rendering them (with a time limit), unique slugs, what is published and what is
scheduled. One file's bytes become a Post in frontmatter.py; a file that cannot be
published is one diagnostic naming its file and line, never a stopped run.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import mimetypes
import os
import pickle
import re
import signal
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from time import time_ns
from urllib.parse import unquote

from syndicate.config import Config
from syndicate.content.cache import (
    CachedRead,
    PostCache,
    Stamp,
    cache_path,
    code_fingerprint,
    file_stamp,
)
from syndicate.content.discover import (
    display_path,
    find_sources,
    path_namer,
    post_key,
    printable,
    read_regular_file,
)
from syndicate.content.frontmatter import content_hash, parse_post, post_url_for
from syndicate.content.markup import (
    clean_line,
    plain_text,
    render_markdown,
)
from syndicate.errors import Diagnostic, PostError, shown
from syndicate.models import Catalog, Post
from syndicate.record import replace
from syndicate.workers import parallel_imap


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
        if post.slug in taken:
            first = taken[post.slug]
            post, warning = renamed(
                post, free_slug(post.slug, taken.__contains__), first.source, config
            )
            warnings.append(warning)
        taken[post.slug] = post
        result[post.key] = post
    return [result[p.key] for p in posts], warnings


def free_slug(slug: str, taken: Callable[[str], bool]) -> str:
    """`slug-2`, `slug-3` ...: the first that is not `taken`."""
    n = 2
    while taken(f"{slug}-{n}"):
        n += 1
    return f"{slug}-{n}"


def renamed(post: Post, new_slug: str, holder: str, config: Config) -> tuple[Post, Diagnostic]:
    """The post under `new_slug` (its URL and, unless given, its id with it), and the
    warning that says so; `holder`: the file of the post that keeps the slug."""
    warning = Diagnostic(
        post.source,
        post.key_lines.get("slug") or post.key_lines.get("title") or 1,
        "warning",
        f"slug '{post.slug}' is already used by {holder}; this post gets '{new_slug}'",
        "give one of the posts its own 'slug:' (or a different title)",
    )
    url = post_url_for(config, new_slug, post.date)
    return replace(post, slug=new_slug, url=url, id=post.id if post.explicit_id else url), warning


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


def read_posts(
    config: Config, progress: ReadProgress | None = None, cache: PostCache | None = None
) -> Catalog:
    """Read and parse every content file; a bad file becomes a diagnostic, never a crash.

    With a `cache`, posts come *without their body* (`body == ""`; `markdown_bodies` fetches
    the bodies of the posts that must be rendered), and a file whose stamp is unchanged
    is not read at all: its Post and diagnostics come from the cache. Slugs are made unique after,
    over all posts, since a new post can change another post's slug."""
    reading = Reading(config, progress, cache)
    try:
        return reading.catalog()
    finally:
        reading.close()


@contextlib.contextmanager
def reading_posts(config: Config) -> Iterator[Reading]:
    """`read_posts` through the cache, begun now: worker processes read the files while
    this process goes on until it asks for `catalog()` (a cold run opens and migrates
    the state database meanwhile: ~0.3 s of imports that left a core idle). The cache
    stays open for the rendering; leaving early stops the workers."""
    with open_cache(config) as cache:
        reading = Reading(config, None, cache)
        try:
            yield reading
        finally:
            reading.close()


class Reading:
    """A `read_posts` under way: the files are being read (in workers, where they pay
    off) from the moment it is made; `catalog()` takes the rest and makes the Catalog."""

    def __init__(
        self, config: Config, progress: ReadProgress | None, cache: PostCache | None
    ) -> None:
        self.config, self.cache = config, cache
        self._diagnostics = [
            Diagnostic(
                display_path(path),
                None,
                "error",
                "content folder does not exist",
                "fix content.paths in config.yaml or pass --content DIR",
            )
            for path in config.content.paths
            if not path.exists()
        ]
        sources = find_sources(config)
        outcomes: list[ReadOutcome | None] = [None] * len(sources)
        todo = list(range(len(sources)))
        if cache is not None and cache.enabled:
            todo = _from_cache(sources, outcomes, config, cache)
        read = functools.partial(
            _read_for_cache,
            config=config,
            for_cache=bool(cache and cache.enabled),
            key_of=path_namer(config.path.resolve().parent),
            source_of=path_namer(Path.cwd(), display=True),
        )
        self._parsed = parallel_imap(read, [sources[i] for i in todo], 64)
        first = list(itertools.islice(self._parsed, 1))  # the workers start at the first step
        fresh = _cached_as_read(itertools.chain(first, self._parsed), cache)
        self._results = _merge(outcomes, todo, fresh)
        if progress is not None:
            self._results = progress(self._results, len(sources))

    def catalog(self) -> Catalog:
        """Every file read (waiting for the workers), the slugs made unique."""
        posts: list[Post] = []
        diagnostics = self._diagnostics
        for post, found in self._results:
            if post is not None:
                posts.append(with_image_length(post, self.config))
            diagnostics.extend(found)
        unique, slug_warnings = assign_unique_slugs(posts, self.config)
        diagnostics.extend(slug_warnings)
        pairs = sorted(
            zip(posts, unique, strict=True), key=lambda pair: (pair[0].date, pair[0].key)
        )
        renamed = tuple((old.key, old.slug) for old, new in pairs if old.slug != new.slug)
        entangled = colliding_slugs(posts, unique)
        return Catalog(tuple(unique), tuple(diagnostics), entangled, renamed)

    def close(self) -> None:
        """Stop reading: what the workers have not begun is dropped, nothing is left."""
        self._parsed.close()


def colliding_slugs(before: list[Post], after: list[Post]) -> frozenset[str]:
    """Keys of the posts `assign_unique_slugs` renamed, of those whose slug they wanted,
    and of those whose own slug looks like a renamed one's (`x-2` beside renamed `x`s)."""
    renamed = {old.slug for old, new in zip(before, after, strict=True) if old.slug != new.slug}
    return frozenset(old.key for old in before if renamed & set(slug_stems(old.slug)))


def slug_stems(slug: str) -> list[str]:
    """The slug and what it is with each `-<n>` suffix taken off: `a-2-3` -> a-2-3, a-2, a."""
    stems = [slug]
    while (match := _NUMBERED.fullmatch(stems[-1])) is not None:
        stems.append(match.group(1))
    return stems


_NUMBERED = re.compile(r"(.+)-[0-9]+")


def read_files(paths: list[Path], config: Config, cache: PostCache) -> list[ReadOutcome]:
    """Read these files now, in this process, storing them in the cache as `read_posts`
    does (the cron path's few changed posts). Posts come without their body (the cache has
    it), without image lengths and with the slugs they ask for."""
    key_of = path_namer(config.path.resolve().parent)
    source_of = path_namer(Path.cwd(), display=True)
    parsed = (_read_for_cache(p, config, cache.enabled, key_of, source_of) for p in paths)
    return list(_cached_as_read(parsed, cache))


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
    if not entries:
        return list(range(len(sources)))  # an empty cache (a cold run): nothing to look up
    todo: list[int] = []
    restamped: list[tuple[str, Stamp, int]] = []
    key_of = path_namer(config.path.resolve().parent)
    source_of = path_namer(Path.cwd(), display=True)
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


# What a worker hands back for one file: (outcome, stamp, read_at, record, body, hash,
# key, source). With the cache on, a cacheable outcome comes back already pickled without
# its body (`record`) and the body as UTF-8 bytes, so the parent neither unpickles a body
# it will not keep nor pickles the post again; else `outcome` is the plain ReadOutcome.
_FreshRead = tuple[ReadOutcome | None, Stamp | None, int, bytes, bytes, str, str, str]


def _read_for_cache(
    path: Path,
    config: Config,
    for_cache: bool,
    key_of: Callable[[Path], str],
    source_of: Callable[[Path], str],
) -> _FreshRead:
    """`read_post` without the image length (it depends on another file), with the stamp
    and the clock taken before reading. `key_of` and `source_of` are `post_key` and
    `display_path` made fast by `path_namer` (one relpath per folder, not per file)."""
    read_at = time_ns()
    stamp = file_stamp(path)
    key, source = key_of(path), source_of(path)
    outcome, cacheable = _read_post(path, config, key, source)
    if not (for_cache and cacheable and stamp is not None):
        return outcome, None, read_at, b"", b"", "", key, source
    post, found = outcome
    record = pickle.dumps((replace(post, body="") if post else None, found), 5)
    if post is None:
        return None, stamp, read_at, record, b"", "", key, source
    return None, stamp, read_at, record, post.body.encode(), post.content_hash, key, source


def _cached_as_read(parsed: Iterator[_FreshRead], cache: PostCache | None) -> Iterator[ReadOutcome]:
    """Pass the fresh outcomes on, storing the cacheable ones (in batches)."""
    batch: list[tuple[str, CachedRead, bytes]] = []
    for outcome, stamp, read_at, record, body, file_hash, key, source in parsed:
        if outcome is not None or stamp is None:
            yield outcome or (None, [])
            continue
        entry = CachedRead(source, stamp, file_hash, record, read_at)
        batch.append((key, entry, body))
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


def _read_post(
    path: Path, config: Config, key: str | None = None, source: str | None = None
) -> tuple[ReadOutcome, bool]:
    """-> (outcome, cacheable): outcomes of unexpected exceptions are not cached. `key` and
    `source` are the file's `post_key` and `display_path` (computed when not given)."""
    source = display_path(path) if source is None else source
    try:
        data = read_regular_file(path, source)
    except PostError as exc:  # the file system's doing: asked again every run
        return (None, [exc.diagnostic()]), False
    try:
        post, found = parse_post(data, source, config, key or post_key(path, config))
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


def with_image_length(post: Post, config: Config) -> Post:
    """Fill the featured image's size in bytes (and type) when it is a file under
    site.static_dir: RSS enclosures need the real length."""
    image, static, local = post.image, config.site.static_dir, static_image_path(post, config)
    if image is None or static is None or local is None:
        return post
    try:  # ValueError: a %00 in the URL (a NUL byte no file name can hold)
        candidate = local.resolve()
        if not candidate.is_relative_to(static.resolve()):
            return post
        info = candidate.stat()
    except (OSError, ValueError):
        return post
    if not stat.S_ISREG(info.st_mode):
        return post
    kind = image.type or mimetypes.guess_type(candidate.name)[0]
    return replace(post, image=replace(image, length=info.st_size, type=kind))


def static_image_path(post: Post, config: Config) -> Path | None:
    """Where the post's featured image would be under site.static_dir (not resolved; None
    for a post without one, an image on another host, or no static_dir)."""
    image, static = post.image, config.site.static_dir
    if image is None or static is None or not image.url.startswith(config.site.url):
        return None
    return static / unquote(image.url[len(config.site.url) :].split("?")[0].split("#")[0])


# --- parsing helpers -------------------------------------------------------------------
