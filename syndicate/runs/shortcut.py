"""The cron shortcut: a `run --once` that finds nothing changed, told from file stamps
alone, before a single post is unpickled or a feed, Markdown or database library imported.

After a full run that left the feeds and the state in step with the posts (no error, no
post left out, no newsletter job failing), `remember_run` writes a record beside the
per-post cache (`state/syndicate.db.cache-noop`): a digest of every content file's stamp
(path, mtime, ctime, size, inode, device, mode: any edit, touch, addition, removal or
rename changes it), the environment (the whole config, the working directory, the
stamps of syndicate's code and templates and of the newsletter templates, the installed
distributions), the output manifest's fingerprint (checked with `outputs_intact`, as the
full path does), the featured images under site.static_dir, the window of time in which
the same posts are public (from the newest published post to the next scheduled one,
and the next newsletter slot), the id of the run, and the warnings it printed.

The next `run --once` (`quiet_run`) compares; only when every part is the same, the
state database's latest run is still that one and no mail waits in the outbox, it records
a run that changed nothing, prints the same warnings, and stops. Anything else (a missing,
stale or unreadable record included) takes the full path, which writes a new record.
A file changed in the same clock tick as the stamps were taken may keep its stamp: such
files are remembered by content hash and read again every time (as git does).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syndicate import __version__, record, resources
from syndicate.config import Config, sqlite_path
from syndicate.content.cache import RACY_NS, cache_path
from syndicate.content.discover import name_pattern, path_namer
from syndicate.output import outputs_intact, read_manifest
from syndicate.runs.siteindex import SiteIndex, index_path, microseconds
from syndicate.state.runlog import record_unchanged_run

if TYPE_CHECKING:
    from syndicate.errors import Diagnostic
    from syndicate.models import Catalog, Post
    from syndicate.runs.pipeline import CycleReport
    from syndicate.state.store import Store
    from syndicate.workers import Background

FORMAT = 3  # 3: the slug warnings' posts ("slugs") and the other noted posts
# Files remembered by hash (changed within RACY_NS of the run: a copy or checkout just
# before it); with more, no record (the next run writes one). Each quiet run hashes them
# again until they are older: ~40 µs a file, so 1,000 cost ~40 ms of the 0.3 s.
MAX_RECENT = 1000
_PACKAGE = Path(__file__).resolve().parent.parent
_LONG_AGO = datetime(1, 1, 2, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Scan:
    """The inputs' stamps, taken before a run reads any of them."""

    environment: str
    content: str
    recent: tuple[str, ...]  # files changed too recently for their stamp to be trusted
    files: dict[str, str]  # content file -> its stamp (for the run of a few changed posts)


@dataclass(frozen=True, slots=True)
class QuietRun:
    """A run the shortcut recorded: its id and the warnings to print again."""

    run_id: int
    stderr: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeltaRun:
    """A run of a few changed posts (syndicate.runs.delta): what it did, and the warnings
    the last full run printed (about other posts: a changed one with a diagnostic takes
    the full path). Defined here, where `run` can name it without importing the delta."""

    report: CycleReport
    stderr: tuple[str, ...]


def record_path(config: Config) -> Path | None:
    """Beside the per-post cache (so `rm state/syndicate.db.cache*` clears both); None, no
    shortcut, without the cache (SYNDICATE_NO_CACHE) or with a state database that is not
    SQLite (the run would need SQLAlchemy to record itself anyway)."""
    cache = cache_path(config)
    if cache is None or sqlite_path(config.state_url) is None:
        return None
    return cache.with_name(cache.name + "-noop")


def scan_inputs(config: Config) -> Scan | None:
    """Stamp the inputs now (None: no shortcut for this config). Cheap: one os.scandir walk
    and one stat per content file."""
    if record_path(config) is None:
        return None
    since = time.time_ns() - RACY_NS
    files: dict[str, str] = {}
    recent: list[str] = []
    wanted = name_pattern(config)
    for root in config.content.paths:
        _scan_root(str(root), wanted.match, files, recent, since)
    lines = "".join(f"{path}\0{files[path]}\n" for path in sorted(files))
    content = hashlib.sha256(lines.encode("utf-8", "surrogateescape")).hexdigest()
    return Scan(_environment(config), content, tuple(sorted(recent)), files)


def _scan_root(
    root: str, wanted: Any, files: dict[str, str], recent: list[str], since: int
) -> None:
    """The files `find_sources` finds under `root`: hidden names skipped, folders walked
    unless they are symbolic links (as os.walk does), a root that is a file taken as is."""
    path = Path(root)
    if path.is_dir():
        _scan_folder(root, wanted, files, recent, since)
    elif path.is_symlink() or path.exists():
        _stamp_line(root, path.stat, files, recent, since)
    else:
        files[root] = "missing"


def _scan_folder(
    folder: str, wanted: Any, files: dict[str, str], recent: list[str], since: int
) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        files[folder] = "unreadable"
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if not entry.is_symlink():
                _scan_folder(entry.path, wanted, files, recent, since)
        elif wanted(os.path.normcase(entry.name)):
            _stamp_line(entry.path, entry.stat, files, recent, since)


def _stamp_line(
    path: str,
    stat_of: Callable[[], os.stat_result],
    files: dict[str, str],
    recent: list[str],
    since: int,
) -> None:
    try:
        info = stat_of()  # follows symbolic links, as reading the post does
    except OSError:
        files[path] = "gone"
        return
    files[path] = (
        f"{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_size}:{info.st_ino}"
        f":{info.st_dev}:{info.st_mode}"
    )
    if max(info.st_mtime_ns, info.st_ctime_ns) >= since:
        recent.append(path)


def _environment(config: Config) -> str:
    """Everything besides the posts that a run's outcome depends on (or might)."""
    digest = hashlib.sha256(f"{FORMAT}\0{__version__}\0{sys.version}\0{Path.cwd()}".encode())
    digest.update(repr(record.replace(config, path=config.path.resolve())).encode())  # not as spelt
    folders = [_PACKAGE, resources.templates_dir()]  # feed.xsl is among the shipped templates
    if config.newsletter.templates is not None:
        folders.append(config.newsletter.templates)
    for folder in folders:
        digest.update(_tree_stamps(str(folder)).encode("utf-8", "surrogateescape"))
    digest.update("\0".join(_distributions()).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _distributions() -> list[str]:
    """The installed distributions as their dist-info folders name them (with the version:
    an upgraded library shows as a renamed folder). Not the sys.path entries themselves,
    which differ between `python -m syndicate` and the `syndicate` script."""
    names: set[str] = set()
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as found:
                names.update(e.name for e in found if e.name.endswith(".dist-info"))
        except OSError:
            continue
    return sorted(names)


def _tree_stamps(root: str) -> str:
    """The stamps of every file under `root` (byte-compiled files left out)."""
    lines: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        lines.extend(f"{folder}/{name}\0{stat_text(Path(folder, name))}" for name in files)
    return "\n".join(sorted(lines))


def stat_text(path: Path | str) -> str:
    try:
        info = Path(path).stat()
    except (OSError, ValueError):  # ValueError: a NUL byte in a path from a URL
        return "-"
    kind = "f" if stat.S_ISREG(info.st_mode) else "o"
    return f"{kind}{info.st_size}:{info.st_mtime_ns}:{info.st_ino}:{info.st_dev}"


# --- the shortcut --------------------------------------------------------------------


def quiet_run(config: Config, now: datetime, scan: Scan) -> QuietRun | None:
    """Record a run that changed nothing, if nothing could have changed since the record
    was written (call it holding the run lock); None: take the full path."""
    path = record_path(config)
    record = read_record(path) if path is not None else None
    if path is None or record is None or not _unchanged(config, now, scan, record):
        return None
    db = sqlite_path(config.state_url)
    assert db is not None  # record_path() said so
    run_id = record_unchanged_run(
        db, "once", now, record["run_id"], check_outbox=config.newsletter.enabled
    )
    if run_id is None:
        return None
    # A file checked by its hash just now and changed long enough ago keeps its stamp
    # trustworthy from now on: a later edit would come in a later clock tick.
    since = time.time_ns() - RACY_NS
    recent = {p: h for p, h in record["recent"].items() if _changed_since(p, since)}
    _advance_index(config, record["run_id"], run_id)
    write_record(path, {**record, "run_id": run_id, "recent": recent})
    return QuietRun(run_id, tuple(record["stderr"]))


def _advance_index(config: Config, last_run_id: int, run_id: int) -> None:
    """A run that changed nothing leaves the site index describing the posts: it moves on
    to the new run with the record, if it was the last run's (else the next run of a few
    changed posts would find it a run behind, and take the full path)."""
    path = index_path(config)
    index = SiteIndex.open(path) if path is not None else None
    if index is None:
        return  # no index, or not one of ours: the next full run writes one
    try:
        index.advance(last_run_id, run_id)
    except sqlite3.Error:
        pass
    finally:
        index.close()


def _changed_since(path: str, since: int) -> bool:
    try:
        info = Path(path).stat()
    except OSError:
        return True
    return max(info.st_mtime_ns, info.st_ctime_ns) >= since


def _unchanged(config: Config, now: datetime, scan: Scan, record: dict[str, Any]) -> bool:
    """The record's inputs are those of now, and `now` is inside its window."""
    return (
        record["content"] == scan.content
        and same_setting(config, now, scan, record)
        and all(file_hash(p) == h for p, h in record["recent"].items())
    )


def same_setting(config: Config, now: datetime, scan: Scan, record: dict[str, Any]) -> bool:
    """Everything but the posts is as the record says (environment, featured images, the
    output folder), and `now` is inside its window: no scheduled post or newsletter slot
    has come."""
    before = record["before"]
    return (
        record["environment"] == scan.environment
        and datetime.fromisoformat(record["after"]) <= now
        and (before is None or now < datetime.fromisoformat(before))
        and all(stat_text(p) == s for p, s in record["images"].items())
        and outputs_intact(config.output_dir, record["outputs"])
    )


def file_hash(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    keys = {"format", "environment", "content", "after", "before", "recent", "images"}
    keys |= {"outputs", "run_id", "stderr", "slugs", "read_noted"}
    if not isinstance(record, dict) or set(record) != keys or record["format"] != FORMAT:
        return None
    return record if _slug_lines_fit(record) else None


def _slug_lines_fit(record: dict[str, Any]) -> bool:
    """The slug warnings' posts are as `_slug_lines` writes them, one per last stderr line
    (a damaged or hand-edited record means a full run, which writes a new one)."""
    slugs, stderr, noted = record["slugs"], record["stderr"], record["read_noted"]
    if not (isinstance(slugs, list) and isinstance(stderr, list) and isinstance(noted, list)):
        return False
    shapes = [int, str, str]
    return (
        len(slugs) <= len(stderr)
        and all(isinstance(line, str) for line in stderr)
        and all(isinstance(key, str) for key in noted)
        and all(
            isinstance(entry, list)
            and len(entry) == 3
            and all(type(v) is t for v, t in zip(entry, shapes, strict=True))
            for entry in slugs
        )
    )


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Atomic, never fsynced: a record lost in a crash only costs one full run."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
        temporary.replace(path)
    except OSError:
        temporary.unlink(missing_ok=True)


def forget_record(config: Config) -> None:
    """No shortcut until the next full run that can write a record."""
    path = record_path(config)
    if path is not None:
        path.unlink(missing_ok=True)


# --- after a full run ----------------------------------------------------------------


def remember_run(
    config: Config,
    now: datetime,
    scan: Scan | None,
    report: CycleReport,
    store: Store,
    draft: IndexDraft | None = None,
) -> None:
    """After a full `run --once` (holding the lock): write the record the next run
    compares with, if this run left the feeds and the state in step with the posts;
    else remove it. `scan` must have been taken before the run read the posts. `draft`:
    the site index as a child process wrote it while the run went on, if it did."""
    record = _record_for(config, now, scan, report, store) if scan is not None else None
    path = record_path(config)
    if path is None:
        return
    if record is None or scan is None:
        forget_record(config)
    else:
        write_record(path, record)
        _write_index(config, now, scan, report, draft)


def _write_index(
    config: Config, now: datetime, scan: Scan, report: CycleReport, draft: IndexDraft | None
) -> None:
    """The site index the run of a few changed posts starts from (syndicate.runs.delta)."""
    target = index_path(config)
    if target is None or (draft is not None and draft.take(report, target)):
        return
    noted = _noted(report.diagnostics)
    try:
        files, posts = _index_rows(config, now, scan, report.posts, report.entangled, noted)
        SiteIndex.write(target, report.run_id, files, posts, config)
    except (sqlite3.Error, OSError, ValueError):  # UnicodeError is a ValueError
        target.unlink(missing_ok=True)  # no delta run until the next full one


def _noted(diagnostics: Iterable[Diagnostic]) -> frozenset[str]:
    """The files the run has something to say about (the index marks their posts)."""
    return frozenset(d.path for d in diagnostics)


def _index_rows(
    config: Config,
    now: datetime,
    scan: Scan,
    posts: Sequence[Post],
    entangled: frozenset[str],
    noted: frozenset[str],
) -> tuple[dict[str, tuple[str, str]], Iterator[tuple[Post, bool, bool, bool]]]:
    """What `SiteIndex.write` is given: the files, and (post, ready, entangled, noted)."""
    from syndicate.content.posts import published

    key_of = path_namer(config.path.resolve().parent)
    files = {name: (stamp, key_of(Path(name))) for name, stamp in scan.files.items()}
    ready = {post.key for post in published(posts, now)}
    rows = ((p, p.key in ready, p.key in entangled, p.source in noted) for p in posts)
    return files, rows


class IndexDraft:
    """The site index of a full run, written by a forked child from the posts as read,
    started once the feeds are built: while the run puts them on disk and saves the
    posts' states (~0.4 s at 10,000 posts with a core idle), the child's 0.46 s of work
    runs on that core instead of slowing the rendering. `remember_run` takes it if the
    run ended as the draft assumed (the same run, no post with a diagnostic the draft did
    not know of), else writes the index itself; a run that fails or writes no record
    drops it."""

    def __init__(self, config: Config, now: datetime, scan: Scan | None) -> None:
        self.config, self.now, self.scan = config, now, scan
        self.path: Path | None = None
        self.basis: tuple[int, frozenset[str]] | None = None
        self.job: Background | None = None

    def start(self, run_id: int, catalog: Catalog) -> None:
        """The pipeline's `on_built` hook."""
        from syndicate.workers import in_background

        target = index_path(self.config)
        if target is None or self.scan is None or self.job is not None:
            return
        for leftover in target.parent.glob(f".{target.name}.*.tmp"):  # from a killed run
            leftover.unlink(missing_ok=True)
        path = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        noted = _noted(catalog.diagnostics)
        scan, posts, entangled = self.scan, catalog.posts, catalog.entangled

        def write() -> None:
            files, rows = _index_rows(self.config, self.now, scan, posts, entangled, noted)
            SiteIndex.write(path, run_id, files, rows, self.config, atomic=False)

        self.path, self.basis, self.job = path, (run_id, noted), in_background(write)

    def take(self, report: CycleReport, target: Path) -> bool:
        """Put the draft in place if it is this report's index; -> whether it was."""
        job, self.job = self.job, None
        if job is None or self.path is None:
            return False
        noted = _noted(report.diagnostics)
        if self.basis == (report.run_id, noted) and job.wait():
            try:
                self.path.replace(target)
                return True
            except OSError:
                pass
        job.cancel()
        self.path.unlink(missing_ok=True)
        return False

    def discard(self) -> None:
        """Stop the child and remove its file, unless `take` has put it in place."""
        if self.job is not None:
            self.job.cancel()
            self.job = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _record_for(
    config: Config, now: datetime, scan: Scan, report: CycleReport, store: Store
) -> dict[str, Any] | None:
    from syndicate.content.posts import published
    from syndicate.runs.pipeline import inputs_fingerprint

    failed = sum(result.failures for result in report.hook_results)
    if report.errors or failed:
        return None  # reported again (or retried) by every run: the full path does that
    fingerprint = inputs_fingerprint(config, published(report.posts, now))
    manifest = read_manifest(config.output_dir)
    if manifest.get("fingerprint") != fingerprint or not outputs_intact(
        config.output_dir, fingerprint
    ):
        return None  # a post left out of the feeds: the next run tries it again
    recent = _recent_hashes(config, scan, report)
    window = _window(config, now, report, store)
    if recent is None or len(recent) > MAX_RECENT or window is None:
        return None  # a fresh checkout: hashing every file would cost more than a run
    return {
        "format": FORMAT,
        "environment": scan.environment,
        "content": scan.content,
        "after": window[0].isoformat(),
        "before": window[1].isoformat() if window[1] else None,
        "recent": recent,
        "images": _image_stamps(config, report),
        "outputs": fingerprint,
        "run_id": report.run_id,
        "stderr": [d.format() for d in report.diagnostics],
        **_slug_lines(report),
    }


def _slug_lines(report: CycleReport) -> dict[str, list[Any]]:
    """What the delta run needs to print what a full run prints when slugs collide: for
    each slug warning (the last lines of stderr, oldest post first) its post's date, key
    and the slug it asked for; and the keys of the posts with any other diagnostic."""
    dates = {post.key: microseconds(post.date) for post in report.posts}
    others = report.diagnostics[: len(report.diagnostics) - len(report.renamed)]
    sources = {d.path for d in others}
    return {
        "slugs": [[dates[key], key, wanted] for key, wanted in report.renamed],
        "read_noted": sorted(post.key for post in report.posts if post.source in sources),
    }


def _recent_hashes(config: Config, scan: Scan, report: CycleReport) -> dict[str, str] | None:
    """path -> the content hash of the post the run made from it, for the files changed
    too recently for their stamp to be trusted (None: a recent file the run did not make
    a post of, or one that changed since; no record).

    A file that was recent when the scan was taken but is no longer recent now, and still
    has the scanned stamp and the bytes the run read, can be trusted by its stamp from now
    on (a later edit comes in a later clock tick), as git re-hashes "racily clean" files
    when it writes its index: so the first run after a checkout or a copy, which finds
    every file recent, still leaves a record."""
    hashes = {post.key: post.content_hash for post in report.posts}
    since = time.time_ns() - RACY_NS
    key_of = path_namer(config.path.resolve().parent)
    found = {}
    for path in scan.recent:
        content = hashes.get(key_of(Path(path)))
        if content is None:
            return None
        if not _changed_since(path, since) and _stamp_text(path) == scan.files.get(path):
            if file_hash(path) != content:
                return None
            continue
        found[path] = content
    return found


def _stamp_text(path: str) -> str | None:
    """The stamp `scan_inputs` takes of a content file, taken again now."""
    found: dict[str, str] = {}
    _stamp_line(path, Path(path).stat, found, [], 0)
    return found.get(path)


def _window(
    config: Config, now: datetime, report: CycleReport, store: Store
) -> tuple[datetime, datetime | None] | None:
    """From the newest public post (a --now before it would hold it back again) to the
    first scheduled one or the next newsletter slot, whichever comes first. None: the
    newsletter is due again already (its job did not run through)."""
    dates = [post.date for post in report.posts if not post.draft]
    after = max((d for d in dates if d <= now), default=_LONG_AGO)
    before = min((d for d in dates if d > now), default=None)
    if config.newsletter.enabled and config.schedule.newsletter:
        from syndicate.delivery.outbox import next_newsletter_slot

        slot = next_newsletter_slot(config, store, now)
        if slot is not None and slot <= now:
            return None
        after = max(after, now)  # a first slot is looked for in the week before `now`
        if slot is not None and (before is None or slot < before):
            before = slot
    return after, before


def _image_stamps(config: Config, report: CycleReport) -> dict[str, str]:
    """The featured images found under site.static_dir (or looked for there): a resized
    image changes the RSS enclosure."""
    from syndicate.content.posts import static_image_path

    paths = {static_image_path(post, config) for post in report.posts}
    return {str(p): stat_text(p) for p in paths if p is not None}
