"""The cron path for a few changed posts: `run --once` after one post was added, edited,
renamed or deleted, at the cost of that post, not of the site.

Taken only where the cron shortcut's record (syndicate.runs.shortcut) says everything but
the posts is as the last run left it, and the site index (syndicate.runs.siteindex) is
that run's. Then only the changed files are read; the feeds they are in (the main feed and
their tags' and categories') are planned from the index's newest members, built from the
per-post cache, and written with the same fingerprints a full run computes; the state
gets the same rows, written with sqlite3 (syndicate.state.runlog); and a new record and
index are written for the next run.

Slugs that collide are given as the full run gives them (oldest first, `-2`, `-3` ...),
worked out again for the family of slugs a changed post is in, with the warnings printed in
the full run's order (the record keeps which posts they are about).

Anything out of the ordinary answers None before a file or row is written, and the caller
takes the full path: more than MAX_CHANGED files, a changed file with a diagnostic other
than a slug warning (now or at the last run), a change that would move an unchanged post's
slug, RFC 5005 archive pages renumbered (once every `archive_page_size` posts), a post the
cache lost, a database that is not SQLite or not in step. tests/test_delta.py compares
every outcome with a full run of the same input, byte for byte.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from syndicate.config import Config, sqlite_path
from syndicate.content.cache import PostCache
from syndicate.content.discover import path_namer
from syndicate.content.posts import (
    free_slug,
    open_cache,
    published,
    read_files,
    renamed,
    slug_stems,
    static_image_path,
    with_image_length,
)
from syndicate.errors import Diagnostic
from syndicate.feeds.plan import TERM_FOLDERS, feed_file, feed_formats
from syndicate.feeds.publication import Changes, diff_publication
from syndicate.feeds.registry import build_feed
from syndicate.models import FeedSpec, Post, PostState
from syndicate.output import read_manifest, write_outputs
from syndicate.record import replace
from syndicate.runs.pipeline import (
    CycleReport,
    FeedEntryIdentity,
    feeds_environment,
    fingerprint_of_entries,
    fingerprint_of_feed,
    ping_changed_feeds,
    render_posts,
)
from syndicate.runs.shortcut import (
    DeltaRun,
    Scan,
    file_hash,
    read_record,
    record_path,
    same_setting,
    stat_text,
    write_record,
)
from syndicate.runs.siteindex import (
    IndexedPost,
    SiteIndex,
    SlugHolder,
    families,
    index_path,
    microseconds,
)
from syndicate.state.runlog import RunCounts, expected_state, known_states, record_run

MAX_CHANGED = 20  # more changed files than this: a full run (it reads in parallel)
_KINDS = {folder: kind for kind, folder in TERM_FOLDERS.items()}


@dataclass(frozen=True, slots=True)
class _Delta:
    """The changed files and what they are now."""

    paths: list[str]
    gone: list[str]  # keys of posts whose file is gone (or now another post's key)
    posts: dict[str, Post]  # key -> the post read now (published or not)
    ready: list[Post]  # those of `posts` that are public at `now`, newest first
    read: dict[str, Post]  # changed file that is there -> the post read from it
    slugs: _Slugs  # what giving them their slugs said


@dataclass(frozen=True, slots=True)
class _Run:
    """What one delta run works with: the inputs as scanned, the last run's record (and
    its path), the index, the cache and the state database's file."""

    config: Config
    now: datetime
    scan: Scan
    record: dict[str, Any]
    record_path: Path
    index: SiteIndex
    cache: PostCache
    db: Path


def delta_run(config: Config, now: datetime, scan: Scan) -> DeltaRun | None:
    """Publish what a few changed files changed (call it holding the run lock, after the
    shortcut said no); None: take the full path, nothing was written."""
    path = record_path(config)
    record = read_record(path) if path is not None else None
    db = sqlite_path(config.state_url)
    if path is None or record is None or db is None:
        return None
    if not same_setting(config, now, scan, record):
        return None
    if not expected_state(db, record["run_id"], config.newsletter.enabled):
        return None
    where = index_path(config)
    index = SiteIndex.open(where) if where is not None else None
    if index is None:
        return None
    try:
        if index.run_id != record["run_id"]:
            return None
        with open_cache(config) as cache:
            return _run(_Run(config, now, scan, record, path, index, cache, db))
    finally:
        index.close()


def _run(run: _Run) -> DeltaRun | None:
    """Read, publish, then keep the index and the record in step with the state."""
    index = run.index
    try:
        report, delta = _publish_delta(run)
    except sqlite3.Error:  # a damaged index (read before anything is written): a full run
        index.rollback()
        return None
    except BaseException:
        index.rollback()
        raise
    if report is None or delta is None:
        index.rollback()
        return None
    scan, config = run.scan, run.config
    try:
        index.replace_files(
            [p for p in delta.paths if p not in scan.files],
            {p: (scan.files[p], post.key) for p, post in delta.read.items()},
        )
        index.commit(report.run_id)
    except sqlite3.Error:
        # The run is recorded: its report stands. The record still names the run before,
        # no longer the state's latest, so the next run takes the full path.
        index.rollback()
        where = index_path(config)
        if where is not None:
            where.unlink(missing_ok=True)
        return DeltaRun(report, _stderr(run, delta))
    except BaseException:
        index.rollback()
        raise
    _remember(run, delta, report)
    return DeltaRun(report, _stderr(run, delta))


def _stderr(run: _Run, delta: _Delta) -> tuple[str, ...]:
    """What the full run prints: the other diagnostics as the last run printed them
    (their posts did not change), then the slug warnings."""
    others, _slug_lines = _printed(run.record)
    return (*others, *(line[3] for line in delta.slugs.lines))


def _printed(record: dict[str, Any]) -> tuple[list[str], dict[str, _SlugLine]]:
    """The last run's stderr as (the other diagnostics, key -> its slug warning): the
    warnings are its last lines, one per entry of the record's "slugs"."""
    stderr, slugs = record["stderr"], record["slugs"]
    split = len(stderr) - len(slugs)
    lines = {
        key: (date, key, wanted, line)
        for (date, key, wanted), line in zip(slugs, stderr[split:], strict=True)
    }
    return stderr[:split], lines


def _publish_delta(run: _Run) -> tuple[CycleReport | None, _Delta | None]:
    """The changed files read and published, inside the index's transaction (begun
    here); (None, _) when this is not a case for this path. An index that cannot be read
    raises sqlite3.Error before a file or row is written."""
    config, index = run.config, run.index
    delta = _read_delta(run)
    if delta is None:
        return None, None
    touched = index.families_of([*delta.gone, *delta.posts])
    touched.update(family for post in delta.ready for family, _term in families(post, config))
    changed_keys = [*delta.gone, *delta.posts]
    states = known_states(run.db, changed_keys, [post.id for post in delta.ready])
    if states is None:
        return None, None
    index.begin()
    return _publish(run, delta, touched, states), delta


def _changed_paths(run: _Run, known: dict[str, tuple[str, str]]) -> list[str]:
    """Content files whose stamp differs from the index's (added, removed or changed), and
    recent ones whose bytes differ from what the last run read."""
    recent, found = run.record["recent"], run.scan.files
    return sorted(
        p
        for p in set(known) | set(found)
        if known.get(p, ("",))[0] != found.get(p) or (p in recent and file_hash(p) != recent[p])
    )


def _read_delta(run: _Run) -> _Delta | None:
    """Read the changed files; None when they are not a case for this path."""
    config, index = run.config, run.index
    known = index.files()
    paths = _changed_paths(run, known)
    if not paths or len(paths) > MAX_CHANGED or not run.cache.enabled:
        return None
    present = [p for p in paths if p in run.scan.files]
    read: dict[str, Post] = {}
    for name, (post, diagnostics) in zip(
        present, read_files([Path(p) for p in present], config, run.cache), strict=True
    ):
        if post is None or diagnostics:
            return None
        read[name] = with_image_length(post, config)
    posts = {post.key: post for post in read.values()}
    old_keys = {known[p][1] for p in paths if p in known}
    before = index.posts(old_keys | set(posts))
    if len(posts) < len(present) or old_keys - set(before):
        return None  # two files with one key, or a file that was no post
    _others, slugged = _printed(run.record)
    read_noted = set(run.record["read_noted"])
    if any(key in read_noted or (row.noted and key not in slugged) for key, row in before.items()):
        return None  # its diagnostics are the full path's to print again (or not)
    slugs = _unique_slugs(run, posts, [*old_keys, *posts], before, slugged)
    if slugs is None:
        return None
    posts = slugs.posts
    read = {name: posts[post.key] for name, post in read.items()}
    gone = sorted(old_keys - set(posts))
    return _Delta(paths, gone, posts, published(posts.values(), run.now), read, slugs)


# A slug warning as the record keeps it: (date of its post, key, the slug it asked for,
# the warning as printed); a full run prints them oldest post first, last of all.
_SlugLine = tuple[int, str, str, str]


@dataclass(frozen=True, slots=True)
class _Slugs:
    """The changed posts under the slugs a full run gives them, and what that says."""

    posts: dict[str, Post]
    noted: set[str]  # keys of the changed posts given another slug (their warning)
    entangled: dict[str, bool]  # key -> Catalog.entangled has it, in the families redone
    lines: list[_SlugLine]  # every slug warning after the run, in the full run's order


def _unique_slugs(
    run: _Run,
    posts: dict[str, Post],
    besides: list[str],
    before: dict[str, IndexedPost],
    old: dict[str, _SlugLine],
) -> _Slugs | None:
    """What `assign_unique_slugs` gives the changed posts, worked out again for the
    families of slugs they are in (the posts whose slug has the same root among its
    `slug_stems`: slugs of two families never meet): oldest first, each keeps the slug it
    asks for or gets the first free `-2`, `-3` ... None (the full path) when a post that
    did not change would get another slug than it has: its URL would move. `old`: the
    last run's slug warnings, by post."""
    index = run.index
    asked = {key: line[2] for key, line in old.items()}  # the slug each renamed post asked for
    roots = {_root(post.slug) for post in posts.values()}
    roots.update(_root(asked.get(key, row.slug)) for key, row in before.items())
    done = _Family(run, posts, asked)
    for root in sorted(roots):
        members = [h for h in index.slug_family(root, besides) if root in slug_stems(h.slug)]
        if not done.assign(root, members, old):
            return None
    kept = [line for key, line in old.items() if key not in done.members and key not in besides]
    lines = sorted([*kept, *done.lines], key=lambda line: (line[0], line[1]))
    noted = {key for key, post in posts.items() if done.found[key].slug != post.slug}
    return _Slugs(done.found, noted, done.entangled, lines)


def _root(slug: str) -> str:
    return slug_stems(slug)[-1]


class _Family:
    """Slug assignment, one family at a time, over the index's posts and the changed."""

    def __init__(self, run: _Run, posts: dict[str, Post], asked: dict[str, str]) -> None:
        self.run, self.posts, self.asked = run, posts, asked
        self.found = dict(posts)
        self.entangled: dict[str, bool] = {}
        self.lines: list[_SlugLine] = []
        self.members: set[str] = set()
        self._source_of = path_namer(Path.cwd(), display=True)
        self._sources: dict[str, str | None] = {}

    def assign(self, root: str, indexed: list[SlugHolder], old: dict[str, _SlugLine]) -> bool:
        """Give the family of `root` its slugs; False: an unchanged post's would move."""
        order: list[tuple[int, str, str, SlugHolder | Post]] = [
            (h.date_us, h.key, self.asked.get(h.key, h.slug), h) for h in indexed
        ]
        order += [
            (microseconds(p.date), p.key, p.slug, p)
            for p in self.posts.values()
            if _root(p.slug) == root
        ]
        order.sort(key=lambda member: (member[0], member[1]))
        taken: dict[str, SlugHolder | Post] = {}
        renamed: set[str] = set()
        for date, key, wanted, member in order:
            slug = free_slug(wanted, taken.__contains__) if wanted in taken else wanted
            if isinstance(member, SlugHolder) and slug != member.slug:
                return False
            if slug != wanted:
                renamed.add(wanted)
                line = self._warning(member, slug, self._source(taken[wanted]), old.get(key))
                if line is None:
                    return False
                self.lines.append((date, key, wanted, line))
            taken[slug] = self.found.get(key, member)
        for _date, key, wanted, _member in order:
            self.entangled[key] = bool(renamed & set(slug_stems(wanted)))
            self.members.add(key)
        return True

    def _warning(
        self, member: SlugHolder | Post, slug: str, holder: str | None, old: _SlugLine | None
    ) -> str | None:
        """The warning of a post given `slug`: a changed post's made now, an unchanged
        one's as the last run printed it (None if that named another holder)."""
        if holder is None:
            return None
        if isinstance(member, Post):
            post, warning = renamed(member, slug, holder, self.run.config)
            self.found[post.key] = post
            return warning.format()
        if old is None or f"is already used by {holder}; this post gets '{slug}'" not in old[3]:
            return None
        return old[3]

    def _source(self, holder: SlugHolder | Post) -> str | None:
        """The file a warning names as the holder of a slug (looked up once per post:
        the renamed posts of a family mostly name one)."""
        if isinstance(holder, Post):
            return holder.source
        if holder.key not in self._sources:
            path = self.run.index.file_of(holder.key)
            self._sources[holder.key] = None if path is None else self._source_of(Path(path))
        return self._sources[holder.key]


def _publish(
    run: _Run, delta: _Delta, touched: set[str], states: dict[str, PostState]
) -> CycleReport | None:
    """Inside the index's transaction: the feeds, the state, the run; None: nothing
    written (a post to render is not in the cache, the archive pages would be
    renumbered, or the state is not in step)."""
    config, now, index = run.config, run.now, run.index
    ready_keys = {post.key for post in delta.ready}
    changed_keys = [*delta.gone, *delta.posts]
    archived = _archived(config, touched, index)
    moved = index.ranks(changed_keys) if archived else []  # ranks place archive pages only
    slugs = delta.slugs
    index.replace_posts(
        delta.gone,
        [
            (
                post,
                post.key in ready_keys,
                slugs.entangled.get(post.key, False),
                post.key in slugs.noted,
            )
            for post in delta.posts.values()
        ],
        {k: v for k, v in slugs.entangled.items() if k not in delta.posts},
        config,
    )
    if archived:
        moved += index.ranks(sorted(ready_keys))
    pages = _pages(config, archived, moved, index)
    if pages is None:
        return None
    previous = read_manifest(config.output_dir)
    built = _feeds(config, touched, pages, delta, index, run.cache, previous)
    if built is None:
        return None
    files, feeds, gone_files = built
    fingerprint = fingerprint_of_entries(config, index.ready_identities())
    known = {k: s for k, s in states.items() if k in changed_keys or not _ready(index, k)}
    changes = diff_publication(delta.ready, known, now)
    kept = [n for n in previous["files"] if n not in files and n not in gone_files]
    written, removed = write_outputs(config.output_dir, files, fingerprint, kept, feeds)
    counts = _counts(changes, len(written) + len(removed))
    run_id = record_run(
        run.db, "once", now, run.record["run_id"], config.newsletter.enabled, counts
    )
    if run_id is None:
        return None  # the full path finds the feeds written and records the run
    return CycleReport(
        run_id=run_id,
        changes=changes,
        diagnostics=(),
        written=tuple(written),
        removed=tuple(removed),
        upcoming=(),
        posts=(),
        hub_failures=tuple(ping_changed_feeds(config, written)),
    )


def _ready(index: SiteIndex, key: str) -> bool:
    row = index.posts([key]).get(key)
    return row is not None and row.ready


def _counts(changes: Changes, files_written: int) -> RunCounts:
    return RunCounts(
        published=len(changes.published),
        updated=len(changes.updated),
        withdrawn=len(changes.withdrawn),
        files_written=files_written,
        states=changes.states,
    )


def _archived(config: Config, touched: set[str], index: SiteIndex) -> dict[str, tuple[int, str]]:
    """Touched family -> (how many posts its history had, its label), for those with RFC
    5005 archives on (the main feed, tags and categories with `feeds.archive_per_tag`)."""
    if not config.feeds.archive:
        return {}
    return {
        family: (index.count(family), _label(index, family))
        for family in touched
        if family == "" or config.feeds.archive_per_tag
    }


def _label(index: SiteIndex, family: str) -> str:
    """The term as the family's newest post spells it (every page's title has it)."""
    newest = index.newest(family, 1)
    return newest[0][1] if newest else ""


# family -> (how many archive pages, the first page that may have changed); 0 pages: the
# subscription feed holds the whole history.
_Pages = dict[str, tuple[int, int]]


def _pages(
    config: Config,
    archived: dict[str, tuple[int, str]],
    moved: list[tuple[str, int]],
    index: SiteIndex,
) -> _Pages | None:
    """As `with_archives` numbers them. None: the pages are renumbered or the newest is
    empty (once every `archive_page_size` posts): the full path does that. A family whose
    label changed (its newest post spells the term otherwise) has every page rebuilt."""
    limit, size = config.feeds.limit, config.feeds.archive_page_size
    found: _Pages = {}
    for family, (before, label) in archived.items():
        after = index.count(family)
        if before <= limit and after <= limit:
            found[family] = (0, 0)
            continue
        count = after // size + 1
        if (before <= limit) != (after <= limit) or count != before // size + 1:
            return None
        if after % size == 0:
            return None  # an empty newest page is dated by the family's newest change
        ranks = [rank for name, rank in moved if name == family]
        if _label(index, family) != label:
            ranks.append(0)
        found[family] = (count, min(ranks, default=after) // size + 1)
    return found


def _feeds(
    config: Config,
    touched: set[str],
    pages: _Pages,
    delta: _Delta,
    index: SiteIndex,
    cache: PostCache,
    previous: dict[str, Any],
) -> tuple[dict[str, bytes], dict[str, str], set[str]] | None:
    """(feed files whose fingerprint changed -> bytes, every feed's fingerprint, the files
    of families that are gone); None when a post to build is not in the cache."""
    env = feeds_environment(config)
    feeds: dict[str, str] = dict(previous.get("feeds", {}))
    wanted: list[tuple[FeedSpec, list[str], dict[str, str]]] = []  # spec, keys, fmt -> print
    gone: set[str] = set()
    for spec, entries in _planned(config, touched, pages, index):
        formats = feed_formats(spec, config)
        if not entries and spec.kind != "main" and not spec.page:
            gone.update(feed_file(spec, fmt) for fmt in formats)
            continue
        prints = {fmt: fingerprint_of_feed(env, spec, fmt, entries) for fmt in formats}
        if any(feeds.get(feed_file(spec, fmt)) != value for fmt, value in prints.items()):
            wanted.append((spec, [entry[0] for entry in entries], prints))
    for name in gone:
        feeds.pop(name, None)
    keys = {key for _spec, members, _prints in wanted for key in members}
    posts = _posts(config, keys, delta, index, cache)
    if posts is None:
        return None
    rendered = render_posts(list(posts.values()), config, cache)
    done = {k: post for k, post in rendered.items() if not isinstance(post, Diagnostic)}
    if len(done) < len(rendered):
        return None
    files: dict[str, bytes] = {}
    for spec, members, prints in wanted:
        full = replace(spec, posts=tuple(done[key] for key in members))
        for fmt, value in prints.items():
            files[feed_file(full, fmt)] = build_feed(full, config, fmt)
            feeds[feed_file(full, fmt)] = value
    return files, feeds, gone


def _planned(
    config: Config, touched: set[str], pages: _Pages, index: SiteIndex
) -> list[tuple[FeedSpec, list[FeedEntryIdentity]]]:
    """The touched families' subscription feeds (as `plan_feeds` plans them) and archive
    pages from the first that may have changed, with their posts' identities."""
    limit, size = config.feeds.limit, config.feeds.archive_page_size
    planned = []
    for family in sorted(touched):
        folder, _, key = family.partition("/")
        newest = index.newest(family, limit)
        count, first = pages.get(family, (0, 0))
        spec = FeedSpec(_KINDS.get(folder, "main"), key, newest[0][1] if newest else "", family, ())
        spec = replace(spec, pages=count)
        planned.append((spec, index.identities([k for k, _term in newest])))
        for number in range(first, count + 1) if count else ():
            page = replace(spec, page=number)
            planned.append((page, index.page(family, (number - 1) * size, size)))
    return planned


def _posts(
    config: Config, keys: set[str], delta: _Delta, index: SiteIndex, cache: PostCache
) -> dict[str, Post] | None:
    """key -> the post as a full run would have it (image length, slug, URL and id);
    None when one is not in the cache as the index has it."""
    found = {key: delta.posts[key] for key in keys if key in delta.posts}
    reads = cache.reads(keys - set(found))
    rows = index.posts(keys - set(found))
    for key in keys - set(found):
        entry, row = reads.get(key), rows.get(key)
        if entry is None or row is None:
            return None
        try:
            post, _diagnostics = entry.outcome()
        except Exception:  # a broken entry: the full path reads the file again
            return None
        if post is None or post.content_hash != row.content_hash:
            return None  # an older read (the last run went without the cache): a full run
        post = with_image_length(post, config)
        if (post.slug, post.url, post.id) != (row.slug, row.url, row.id):
            post = replace(post, slug=row.slug, url=row.url, id=row.id)
        found[key] = post
    return found


def _remember(run: _Run, delta: _Delta, report: CycleReport) -> None:
    """The record for the next run: this run's inputs, outputs and window."""
    config, now, scan, record, path = run.config, run.now, run.scan, run.record, run.record_path
    hashes = {
        p: delta.read[p].content_hash if p in delta.read else record["recent"].get(p)
        for p in scan.recent
    }
    images = dict(record["images"])
    for post in delta.posts.values():
        image = static_image_path(post, config)
        if image is not None:
            images[str(image)] = stat_text(image)
    dates = [post.date for post in delta.posts.values() if not post.draft]
    after = max([datetime.fromisoformat(record["after"]), *(d for d in dates if d <= now)])
    upcoming = [d for d in dates if d > now]
    if record["before"] is not None:
        upcoming.append(datetime.fromisoformat(record["before"]))
    if any(value is None for value in hashes.values()):
        path.unlink(missing_ok=True)  # cannot happen (a recent file was recent before)
        return
    write_record(
        path,
        {
            **record,
            "content": scan.content,
            "recent": hashes,
            "images": images,
            "outputs": read_manifest(config.output_dir).get("fingerprint"),
            "run_id": report.run_id,
            "stderr": list(_stderr(run, delta)),
            "slugs": [[date, key, wanted] for date, key, wanted, _line in delta.slugs.lines],
            "after": after.isoformat(),
            "before": min(upcoming).isoformat() if upcoming else None,
        },
    )
