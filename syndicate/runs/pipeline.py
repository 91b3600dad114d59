"""The one place where pure steps and I/O are put in order.

load config -> read posts -> published(now) -> plan feeds -> render -> build -> write.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from syndicate import __version__
from syndicate.config import Config
from syndicate.content.cache import PostCache, code_fingerprint
from syndicate.content.discover import legacy_key_mapper
from syndicate.content.posts import (
    Reading,
    ReadProgress,
    markdown_bodies,
    open_cache,
    published,
    read_posts,
    reading_posts,
    render_or_diagnose,
    scheduled,
)
from syndicate.errors import Diagnostic, SyndicateError, count_errors
from syndicate.feeds.archive import with_archives
from syndicate.feeds.plan import STYLESHEET, feed_file, feed_formats, plan_feeds
from syndicate.feeds.publication import Changes, diff_publication
from syndicate.feeds.registry import build_feed
from syndicate.models import Catalog, FeedSpec, HookResult, Post, ReportLine
from syndicate.output import Staged, current_feeds, outputs_intact, stage_file, write_outputs
from syndicate.record import replace
from syndicate.resources import read_template
from syndicate.workers import parallel_imap, parallel_map

T = TypeVar("T")

if TYPE_CHECKING:  # the state modules import SQLAlchemy (~0.14 s): only where a run needs them
    from sqlalchemy.engine import Connection

    from syndicate.state.store import Store


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What a build did, for the CLI's summary line and for tests."""

    published: int
    held_back: int
    diagnostics: tuple[Diagnostic, ...]
    written: tuple[str, ...]
    removed: tuple[str, ...]
    out_dir: Path
    aborted: bool = False

    @property
    def errors(self) -> int:
        return count_errors(self.diagnostics)


def build_site(
    config: Config, now: datetime, strict: bool = False, progress: ReadProgress | None = None
) -> BuildReport:
    """Read the posts and write every feed; bad posts are reported and skipped.

    With `strict`, any error aborts the build before a single file is written.
    """
    with open_cache(config) as cache:
        catalog = read_posts(config, progress, cache)
        ready = published(catalog.posts, now)
        held_back = len(catalog.posts) - len(ready)
        if strict and catalog.errors:
            return BuildReport(0, held_back, catalog.diagnostics, (), (), config.output_dir, True)
        written, removed, failures = update_feeds(ready, config, cache=cache)
    return BuildReport(
        published=len(ready) - len(failures),
        held_back=held_back,
        diagnostics=catalog.diagnostics + tuple(failures.values()),
        written=tuple(written),
        removed=tuple(removed),
        out_dir=config.output_dir,
    )


RenderFailures = dict[str, Diagnostic]  # post key -> why it could not be rendered


def update_feeds(
    ready: list[Post],
    config: Config,
    force: bool = False,
    cache: PostCache | None = None,
    meanwhile: Callable[[RenderFailures], None] | None = None,
    built: Callable[[], None] | None = None,
) -> tuple[list[str], list[str], RenderFailures]:
    """Build and write the feeds unless the output folder already holds exactly what these
    inputs make (or `force`). -> (files written, files removed, posts left out because
    they could not be rendered).

    Only the feeds whose inputs changed since the last build are built again (see
    `feed_fingerprint`); the others are left as they are on disk.

    With a post left out, the fingerprint written is that of the posts that made it, so
    the next run does not take the output as current: it tries again and reports again.

    `meanwhile(failures)` is called once the new files are staged, while they go to disk
    and before they are renamed into place (not at all when the output is current).
    `built()` is called once every feed is built, before they go to disk: no worker or
    thread of ours runs then (not at all when the output is current).
    """
    fingerprint = inputs_fingerprint(config, ready)
    if not force and outputs_intact(config.output_dir, fingerprint):
        return [], [], {}
    previous = current_feeds(config.output_dir)
    files, failures, kept, feeds = build_files(ready, config, cache, previous)
    if failures:
        fingerprint = inputs_fingerprint(config, [p for p in ready if p.key not in failures])
    then = None if meanwhile is None else functools.partial(meanwhile, failures)
    files = _and_then(files, built)
    written, removed = write_outputs(config.output_dir, files, fingerprint, kept, feeds, then)
    return written, removed, failures


def _and_then(items: Iterable[T], then: Callable[[], None] | None) -> Iterator[T]:
    """`items`, then `then()` once the last is taken (the workers making them are gone)."""
    yield from items
    if then is not None:
        then()


def build_files(
    ready: list[Post],
    config: Config,
    cache: PostCache | None = None,
    previous: Mapping[str, str] | None = None,
) -> tuple[Iterable[tuple[str, bytes | Staged]], RenderFailures, list[str], dict[str, str]]:
    """Every output file (a stream of (path relative to the output folder, bytes), each
    feed built as it is asked for, so they are never all in memory; a feed built by a
    worker comes `Staged`: written already beside its target, for write_outputs to rename)
    for these posts, the posts that could not be rendered (left out of every feed), the
    feed files kept as they are (their fingerprint is in `previous`: file -> fingerprint
    of the feeds on disk, intact) and the fingerprint of every feed."""
    spool = PartsSpool()
    try:
        specs, failures, feeds = render_specs(ready, config, cache, previous or {}, spool)
    except BaseException:
        spool.close()
        raise
    jobs = [
        (spec, fmt)
        for spec in specs
        for fmt in feed_formats(spec, config)
        if (previous or {}).get(feed_file(spec, fmt)) != feeds[feed_file(spec, fmt)]
    ]
    kept = sorted(set(feeds) - {feed_file(spec, fmt) for spec, fmt in jobs})
    # Biggest first, one at a time: the workers then finish together, not one of them
    # still on a 400 KB home feed while the other has nothing left (the files are renamed
    # into place together at the end, in whatever order they come).
    jobs.sort(key=functools.partial(_job_size, spool=spool), reverse=True)
    job = functools.partial(_build_job, config=config, spool=spool)
    files: dict[str, bytes | Staged] = {}
    if config.feeds.stylesheet and ({"rss", "atom"} & set(config.feeds.formats)):
        files[STYLESHEET] = read_template(STYLESHEET)
    return itertools.chain(files.items(), _built(jobs, job, spool)), failures, kept, feeds


def _built(
    jobs: list[tuple[FeedSpec, str]],
    job: Callable[[tuple[FeedSpec, str]], Staged],
    spool: PartsSpool,
) -> Iterator[tuple[str, Staged]]:
    """(feed file, staged) for each job, built by the workers; the spool is closed once
    they are all built, or the stream is dropped."""
    try:
        built = parallel_imap(job, jobs, chunksize=1)
        for (spec, fmt), data in zip(jobs, built, strict=True):
            yield feed_file(spec, fmt), data
    finally:
        spool.close()


def _job_size(job: tuple[FeedSpec, str], spool: PartsSpool) -> int:
    """About how long a feed takes to build: the HTML it carries."""
    return sum(spool.size(post) + 1000 for post in job[0].posts)


def _build_job(job: tuple[FeedSpec, str], config: Config, spool: PartsSpool) -> Staged:
    """One feed, built and written where it is built: its bytes (~400 KB each, 180 MB
    for 10,000 posts) are never pickled back to the parent, which only renames it. Its
    posts' parts are read from the spool here (the worker's share only)."""
    spec, fmt = job
    spec = replace(spec, posts=tuple(spool.rendered(post) for post in spec.posts))
    name = feed_file(spec, fmt)
    return stage_file(config.output_dir, name, build_feed(spec, config, fmt))


class PartsSpool:
    """The rendered parts of a full run's posts, pickled, in an unlinked temporary file,
    instead of on the posts in memory: the parent held every rendered post's HTML and
    XHTML (80 MB at 10,000 posts), and each feed worker copied the pages of those it
    touched (COW: ~60 MB each). A feed worker reads the parts of its feed's posts
    (`os.pread`: no file position shared across the fork). When the file cannot be
    written (a full disk), the parts stay in memory, pickled."""

    def __init__(self) -> None:
        self._file: BinaryIO | None = None
        self._where: dict[str, tuple[int, int]] = {}
        self._kept: dict[str, bytes] = {}
        self._broken = False

    def put(self, key: str, pickled: bytes) -> None:
        """Keep the pickled parts of the post with this key."""
        self._kept.pop(key, None)
        if not self._broken:
            try:
                if self._file is None:
                    self._file = tempfile.TemporaryFile(  # noqa: SIM115 - closed by close()
                        prefix="syndicate-parts-", buffering=0
                    )
                offset = self._file.tell()
                if self._file.write(pickled) == len(pickled):
                    self._where[key] = (offset, len(pickled))
                    return
            except OSError:
                pass
            self._broken = True  # what was written stays readable; the rest is kept here
        self._where.pop(key, None)
        self._kept[key] = pickled

    def holds(self, key: str) -> bool:
        return key in self._where or key in self._kept

    def size(self, post: Post) -> int:
        """About the size of a post's parts (its HTML when it is not spooled)."""
        where = self._where.get(post.key)
        if where is not None:
            return where[1]
        kept = self._kept.get(post.key)
        return len(kept) if kept is not None else len(post.html or "")

    def rendered(self, post: Post) -> Post:
        """The post with its parts, if they are here (else as it is)."""
        where = self._where.get(post.key)
        if where is not None:
            assert self._file is not None
            data = os.pread(self._file.fileno(), where[1], where[0])
            if len(data) != where[1]:
                raise OSError(f"the temporary file of rendered posts ended at {post.key}")
        elif post.key in self._kept:
            data = self._kept[post.key]
        else:
            return post
        rendered = _with_parts(post, pickle.loads(data))  # noqa: S301 - written by this run
        assert isinstance(rendered, Post), "the spool keeps no diagnostics"
        return rendered

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._where, self._kept = None, {}, {}


def render_specs(
    ready: list[Post],
    config: Config,
    cache: PostCache | None = None,
    previous: Mapping[str, str] | None = None,
    spool: PartsSpool | None = None,
) -> tuple[list[FeedSpec], RenderFailures, dict[str, str]]:
    """Plan the feeds and render each post that appears in a feed to be built, once,
    however many feeds it is in. A post that cannot be rendered is left out and the
    feeds planned again (so the next post moves up), until every planned post is
    rendered. -> (specs, failures, feed file -> fingerprint).

    A feed whose fingerprint is in `previous` is on disk as it would be built: its posts
    rendered fine then, so they need no rendering now (their entries stay unrendered)."""
    rendered: dict[str, Post] = {}
    failures: RenderFailures = {}
    env = feeds_environment(config)
    while True:
        kept = [p for p in ready if p.key not in failures]
        specs = with_archives(plan_feeds(kept, config), kept, config)
        feeds = {
            feed_file(spec, fmt): feed_fingerprint(env, spec, fmt)
            for spec in specs
            for fmt in feed_formats(spec, config)
        }
        todo = {
            p.key: p
            for spec in specs
            if any(
                (previous or {}).get(feed_file(spec, f)) != feeds[feed_file(spec, f)]
                for f in feed_formats(spec, config)
            )
            for p in spec.posts
            if p.key not in rendered
        }
        if not todo:
            break
        failed = len(failures)
        for key, result in render_posts(list(todo.values()), config, cache, spool).items():
            if isinstance(result, Diagnostic):
                failures[key] = result
            else:
                rendered[key] = result
        if len(failures) == failed:
            break  # every planned post rendered: planning again would give the same feeds
    specs = [
        replace(spec, posts=tuple(rendered.get(p.key, p) for p in spec.posts)) for spec in specs
    ]
    return specs, failures, feeds


def render_posts(
    posts: list[Post], config: Config, cache: PostCache | None, spool: PartsSpool | None = None
) -> dict[str, Post | Diagnostic]:
    """key -> the rendered post, or why it cannot be rendered: from the cache when the
    post's source, content, URL and the sanitising are those it was rendered with.

    The workers (forked: they have the posts) fetch each body themselves, from the cache
    file or the post's file, and send back the result pickled as the cache stores it:
    neither the bodies nor the posts are pickled here, and nothing twice. Each result is
    stored in the cache as it comes back, while the workers render the next ones.

    With a `spool`, a rendered post comes as it was given (no HTML): its parts are in
    the spool, where `PartsSpool.rendered` finds them."""
    sanitize = not config.feeds.allow_raw_html
    wanted = {p.key: render_fingerprint(p, sanitize) for p in posts}
    found = cache.rendered(wanted) if cache is not None else {}
    if spool is not None:
        for key, parts in list(found.items()):
            if not isinstance(parts, Diagnostic):
                spool.put(key, pickle.dumps(parts, 5))
                del found[key]
    todo = [p for p in posts if p.key not in found and not (spool and spool.holds(p.key))]
    bodies = BodySource(config, cache)
    fresh = parallel_imap(
        functools.partial(_render_pickled, bodies=bodies, sanitize=sanitize), todo
    )

    def fresh_rows() -> Iterator[tuple[str, str, bytes]]:
        for post, pickled in zip(todo, fresh, strict=True):
            parts = pickle.loads(pickled)  # noqa: S301 - made by our worker
            if spool is not None and not isinstance(parts, Diagnostic):
                spool.put(post.key, pickled)  # the parent keeps no HTML
            else:
                found[post.key] = parts
            if not (isinstance(parts, Diagnostic) and parts.transient):
                yield post.key, wanted[post.key], pickled  # a transient failure: retried next run

    rows = fresh_rows()
    try:
        if cache is not None:
            cache.save_rendered(rows)
        for _ in rows:  # what the cache did not take (it is off, or failed meanwhile)
            pass
    finally:
        fresh.close()  # stopped early (an exception here): no worker goes on rendering
    return {
        post.key: post if post.key not in found else _with_parts(post, found[post.key])
        for post in posts
    }


class BodySource:
    """The Markdown bodies of posts read through the cache (which come without theirs),
    for the process that renders them: a forked worker opens the cache file for itself
    (a connection is never shared across a fork)."""

    def __init__(self, config: Config, cache: PostCache | None) -> None:
        self.config, self.cache, self._pid = config, cache, os.getpid()

    def body(self, post: Post) -> str | None:
        """The post's body, or None when it is gone (the file changed meanwhile)."""
        if post.body != "":
            return post.body
        if self.cache is not None and self._pid != os.getpid():
            self.cache, self._pid = self.cache.reopened(), os.getpid()
        return markdown_bodies([post], self.config, self.cache).get(post.key)


def _render_pickled(post: Post, bodies: BodySource, sanitize: bool) -> bytes:
    """A worker's part: the post's body fetched, rendered, pickled for the cache."""
    body = bodies.body(post)
    if body is None:
        parts: RenderedParts | Diagnostic = _changed_meanwhile(post)
    else:
        parts = _render_parts(replace(post, body=body), sanitize)
    return pickle.dumps(parts, 5)


def _with_parts(post: Post, parts: RenderedParts | Diagnostic) -> Post | Diagnostic:
    if isinstance(parts, Diagnostic):
        return parts
    html, xhtml, summary = parts
    return replace(post, html=html, xhtml=xhtml, summary=summary)


def _changed_meanwhile(post: Post) -> Diagnostic:
    """A post whose body is neither in the cache nor in its file any more (edited during
    the run, with the cache unusable): never rendered from nothing, and tried again by the
    next run (transient: not cached)."""
    return Diagnostic(
        post.source,
        None,
        "error",
        "the file changed while it was being published; the post is skipped",
        "run again: the next run publishes the new version",
        transient=True,
    )


# (HTML, XHTML or None when the HTML has no XHTML form (Atom then carries the HTML),
# summary): what rendering adds to a post.
RenderedParts = tuple[str, str | None, str]


def _render_parts(post: Post | Diagnostic, sanitize: bool) -> RenderedParts | Diagnostic:
    """What rendering adds to a post; a worker sends back only this, not the whole post.
    (A post whose body is lost comes as its diagnostic, and goes back as it came.)"""
    if isinstance(post, Diagnostic):
        return post
    result = render_or_diagnose(post, sanitize)
    if isinstance(result, Diagnostic):
        return result
    return result.html or "", result.xhtml, result.summary


def render_fingerprint(post: Post, sanitize: bool) -> str:
    """What a post's rendering depends on besides the code (in the cache's environment)."""
    text = f"{post.source}\0{post.content_hash}\0{post.url}\0{sanitize}"
    return hashlib.sha256(text.encode()).hexdigest()


def feeds_environment(config: Config) -> str:
    """What every feed depends on besides its posts: config, stylesheet, the code."""
    digest = hashlib.sha256(f"{__version__}\0{code_fingerprint()}".encode())
    digest.update(repr(replace(config, path=Path())).encode())
    if config.feeds.stylesheet:
        digest.update(read_template(STYLESHEET))
    return digest.hexdigest()


def feed_fingerprint(env: str, spec: FeedSpec, fmt: str) -> str:
    """Everything one feed file is made from: equal fingerprints, identical bytes."""
    return fingerprint_of_feed(env, spec, fmt, (feed_entry_identity(p) for p in spec.posts))


# What of a post in a feed its fingerprint covers: key, content hash, URL, id, slug, image.
FeedEntryIdentity = tuple[str, str, str, str, str, str]


def feed_entry_identity(post: Post) -> FeedEntryIdentity:
    return (post.key, post.content_hash, post.url, post.id, post.slug, repr(post.image))


def fingerprint_of_feed(
    env: str, spec: FeedSpec, fmt: str, entries: Iterable[FeedEntryIdentity]
) -> str:
    """`feed_fingerprint` from the identities of the spec's posts (the cron path has them
    from its index for archive pages it need not build)."""
    digest = hashlib.sha256(f"{env}\0{fmt}\0{spec.kind}\0{spec.key}\0{spec.label}".encode())
    # An archive page links its neighbours; an empty one is dated by the family's newest.
    digest.update(f"\0{spec.path}\0{spec.page}\0{spec.pages}\0{spec.empty_date}".encode())
    for key, content, url, post_id, slug, image in entries:
        digest.update(f"\0{key}\0{content}\0{url}\0{post_id}\0{slug}".encode())
        digest.update(f"\0{image}".encode())
    return digest.hexdigest()


def check_site(config: Config, progress: ReadProgress | None = None) -> Catalog:
    """Every build diagnostic (bodies that cannot be rendered included) plus the content
    warnings of `lint_post`; writes nothing."""
    from syndicate.content.lint import lint_post

    catalog = read_posts(config, progress)  # no cache: lint reads every body
    diagnostics = list(catalog.diagnostics)
    render = functools.partial(render_or_diagnose, sanitize=not config.feeds.allow_raw_html)
    for post, rendered in zip(catalog.posts, parallel_map(render, catalog.posts), strict=True):
        if isinstance(rendered, Diagnostic):
            diagnostics.append(rendered)
        diagnostics.extend(lint_post(post, config))
    diagnostics.sort(key=lambda d: (d.path, d.line or 0))  # stable: same-line order kept
    return Catalog(catalog.posts, tuple(diagnostics))


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What one scheduler cycle (`run --once`, or a daemon job) did."""

    run_id: int
    changes: Changes
    diagnostics: tuple[Diagnostic, ...]
    written: tuple[str, ...]
    removed: tuple[str, ...]
    upcoming: tuple[Post, ...]  # future-dated, not drafts: the daemon plans a job for each
    posts: tuple[Post, ...]  # every post read (bodies may be empty: see CycleHook)
    entangled: frozenset[str] = frozenset()  # Catalog.entangled
    renamed: tuple[tuple[str, str], ...] = ()  # Catalog.renamed
    hub_failures: tuple[str, ...] = ()
    hook_results: tuple[HookResult, ...] = ()

    @property
    def errors(self) -> int:
        return count_errors(self.diagnostics)


# A job run after each cycle, given the posts the cycle read (bodies may be empty: they
# came from the cache; content.posts.markdown_bodies fetches them). The caller chooses the
# jobs (`run` and the daemon pass the newsletter's), so publishing needs no newsletter.
CycleHook = Callable[[Config, datetime, "Store", Sequence[Post]], HookResult]


def run_cycle(
    config: Config,
    now: datetime,
    store: Store,
    kind: str = "once",
    hooks: Sequence[CycleHook] = (),
    still_locked: Callable[[], None] = lambda: None,
    on_built: Callable[[int, Catalog], None] | None = None,
    reading: Reading | None = None,
) -> CycleReport:
    """Publish what is due, rebuild the feeds if anything changed, record it all, then
    ping the WebSub hub and run the `hooks` (the newsletter job, for `run` and the daemon).
    `on_built(run_id, catalog)` is called once the posts are read and the feeds built,
    before the files go to disk, when no worker or thread of ours runs (a child may be
    forked there); `reading`: the posts' reading, if the caller began it (`reading_posts`),
    else begun here.

    Order matters for crash safety: the feeds are written (atomically) before the state
    records them as published. A run killed in between is simply redone by the next run,
    which finds the same changes and rewrites identical bytes.
    """
    from syndicate.state.runs import fail_run, mark_interrupted, start_run

    mark_interrupted(store, now)
    run_id = start_run(store, kind, now)
    try:
        report = _publish(config, now, store, run_id, still_locked, on_built, reading)
    except BaseException as exc:
        fail_run(store, run_id, now, f"{type(exc).__name__}: {exc}")
        raise
    posts = report.posts
    return replace(
        report,
        hub_failures=tuple(ping_changed_feeds(config, report.written)),
        hook_results=tuple(_run_hook(hook, config, now, store, posts) for hook in hooks),
    )


def _publish(
    config: Config,
    now: datetime,
    store: Store,
    run_id: int,
    still_locked: Callable[[], None],
    on_built: Callable[[int, Catalog], None] | None = None,
    begun: Reading | None = None,
) -> CycleReport:
    """Read, diff against the state, write the feeds, record the run (one transaction),
    once `still_locked()` has said the run lock is still ours."""
    from syndicate.state.posts import load_post_states, save_post_states

    with contextlib.ExitStack() as transaction:
        recorded: list[tuple[Changes, Connection]] = []
        with contextlib.nullcontext(begun) if begun else reading_posts(config) as reading:
            cache, catalog = reading.cache, reading.catalog()
            built = _once(functools.partial(on_built, run_id, catalog) if on_built else None)
            ready = published(catalog.posts, now)
            known = load_post_states(store)
            changes = diff_publication(ready, known, now)

            def record(failures: RenderFailures) -> None:
                """The posts' states, in the transaction that ends the run, committed
                only after the feeds are in place (written while they go to disk)."""
                kept = [p for p in ready if p.key not in failures]  # left out: not published
                final = diff_publication(kept, known, now) if failures else changes
                still_locked()
                conn = transaction.enter_context(store.transaction())
                save_post_states(conn, final.states)
                recorded.append((final, conn))

            written, removed, failures = update_feeds(
                ready, config, changes.any, cache, record, built
            )
            built()  # the output was current: no feed was built
        if not recorded:
            record(failures)
        changes, conn = recorded[0]
        diagnostics = catalog.diagnostics + tuple(failures.values())
        _finish(conn, run_id, now, changes, diagnostics, len(written) + len(removed))
    return CycleReport(
        run_id=run_id,
        changes=changes,
        diagnostics=diagnostics,
        written=tuple(written),
        removed=tuple(removed),
        upcoming=tuple(scheduled(catalog.posts, now)),
        posts=catalog.posts,
        entangled=catalog.entangled,
        renamed=catalog.renamed,
    )


def _finish(
    conn: Connection,
    run_id: int,
    now: datetime,
    changes: Changes,
    diagnostics: tuple[Diagnostic, ...],
    files_written: int,
) -> None:
    """The run's row: what it published, updated, withdrew and wrote, and its outcome."""
    from syndicate.state.runs import finish_run

    errors = count_errors(diagnostics)
    finish_run(
        conn,
        run_id,
        now,
        outcome="errors" if errors else "ok",
        published=len(changes.published),
        updated=len(changes.updated),
        withdrawn=len(changes.withdrawn),
        errors=errors,
        files_written=files_written,
    )


def _once(func: Callable[[], None] | None) -> Callable[[], None]:
    """`func` (if any), run the first time the result is called only."""
    calls: list[None] = []

    def first() -> None:
        if func is not None and not calls:
            calls.append(None)
            func()

    return first


def ping_changed_feeds(config: Config, written: Sequence[str]) -> list[str]:
    """Tell the WebSub hub which feeds changed; -> the failures (the run's work stands)."""
    changed_feeds = [name for name in written if name.endswith(FEED_FILE_SUFFIXES)]
    if not config.feeds.websub_hub or not changed_feeds:
        return []
    from syndicate.feeds.websub import ping_hub  # urllib.request: ~8 ms, only with a hub

    return ping_hub(config.feeds.websub_hub, [config.site.url + name for name in changed_feeds])


def newsletter_hook(
    config: Config, now: datetime, store: Store, posts: Sequence[Post]
) -> HookResult:
    """The newsletter job as `run` and the daemon add it: with the newsletter off, the
    delivery code (Jinja, MJML, DKIM: ~0.4 s of imports) is not even loaded. On a shared
    database it only queues: delivery comes after the run lock (deliver_after_lock)."""
    if not config.newsletter.enabled:
        return HookResult()
    from syndicate.delivery.outbox import newsletter_job

    return newsletter_job(config, now, store, posts, deliver=not store.shared)


def deliver_after_lock(
    config: Config, now: datetime, store: Store, report: CycleReport
) -> CycleReport:
    """On a shared database (PostgreSQL), once the run lock is released: send the
    outbox's due rows beside the other hosts' senders (each leases its own)."""
    if not (config.newsletter.enabled and store.shared):
        return report

    def delivery(config: Config, now: datetime, store: Store, _posts: Sequence[Post]) -> HookResult:
        from syndicate.delivery.outbox import delivery_job

        return delivery_job(config, now, store)

    result = _run_hook(delivery, config, now, store, ())
    return replace(report, hook_results=(*report.hook_results, result))


def _run_hook(
    hook: CycleHook, config: Config, now: datetime, store: Store, posts: Sequence[Post]
) -> HookResult:
    """A failing job (no SMTP server, no secret) is reported; the cycle's work stands."""
    try:
        return hook(config, now, store, posts)
    except SyndicateError as exc:
        lines = [ReportLine(d.format(), problem=True) for d in exc.diagnostics()]
        return HookResult(tuple(lines), failures=1)


FEED_FILE_SUFFIXES = ("feed.xml", "atom.xml", "feed.json")


def inputs_fingerprint(config: Config, ready: Sequence[Post]) -> str:
    """A hash of everything the feeds are made from: the published posts (by content), the
    config, the stylesheet and syndicate's version.

    When the output folder's manifest carries the same fingerprint and its files are
    intact, the feeds would come out byte-identical, so rendering is skipped altogether;
    editing config.yaml (a new title, another limit) changes it and rebuilds.
    """
    return fingerprint_of_entries(config, (entry_identity(post) for post in ready))


# What of a published post the inputs fingerprint covers: key, content hash, URL, id and
# the featured image's length (a resized image changes the enclosure).
EntryIdentity = tuple[str, str, str, str, int | None]


def entry_identity(post: Post) -> EntryIdentity:
    length = post.image.length if post.image else None
    return (post.key, post.content_hash, post.url, post.id, length)


def fingerprint_of_entries(config: Config, entries: Iterable[EntryIdentity]) -> str:
    """`inputs_fingerprint` from the published posts' identities, newest first (the cron
    path has them from its index, without the posts)."""
    digest = hashlib.sha256(__version__.encode())
    digest.update(repr(replace(config, path=Path())).encode())  # not how --config was spelt
    if config.feeds.stylesheet:
        digest.update(read_template(STYLESHEET))
    for key, content, url, post_id, length in entries:
        digest.update(f"\0{key}\0{content}\0{url}\0{post_id}".encode())
        digest.update(f"\0{length}".encode())
    return digest.hexdigest()


def open_state(config: Config) -> Store:
    """The state database, its post keys migrated to the current form (once)."""
    from syndicate.state.posts import migrate_post_keys
    from syndicate.state.store import Store

    store = Store(config.state_url)
    try:
        migrate_post_keys(store, lambda: legacy_key_mapper(config))
    except BaseException:
        store.close()
        raise
    return store
