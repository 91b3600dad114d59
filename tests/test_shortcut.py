"""The cron shortcut (syndicate.runs.shortcut): a `run --once` that finds nothing changed
reads no post, imports no feed, Markdown or database library and still records its run;
and every change that could alter the output is still picked up (by the full path, or
by the delta run of syndicate.runs.delta)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from syndicate import resources
from syndicate.config import load_config
from syndicate.runs import delta, pipeline, shortcut
from syndicate.runs.shortcut import DeltaRun
from syndicate.state import runlog, schema
from syndicate.state.runs import recent_runs, start_run
from syndicate.state.store import Store

from .conftest import SITE_CONFIG, Result, Site, cli_modules, post

NOW = "2025-06-01T00:00:00Z"
HEAVY = ("feedgen", "lxml", "markdown", "jinja2", "sqlalchemy", "starlette", "mjml", "nh3")
SECRET = "test-secret-0123456789abcdef"  # noqa: S105 - a test key


@pytest.fixture
def full_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The kinds of the cycles run that were not the shortcut: full cycles, and the delta
    runs (syndicate.runs.delta) that answered ("once", as they record themselves)."""
    calls: list[str] = []
    real, real_delta = pipeline.run_cycle, delta.delta_run

    def counted(*args: object, **kwargs: object) -> pipeline.CycleReport:
        calls.append(str(kwargs.get("kind")))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    def counted_delta(*args: object, **kwargs: object) -> DeltaRun | None:
        outcome = real_delta(*args, **kwargs)  # type: ignore[arg-type]
        if outcome is not None:
            calls.append("once")
        return outcome

    monkeypatch.setattr(pipeline, "run_cycle", counted)
    monkeypatch.setattr(delta, "delta_run", counted_delta)
    return calls


def run(invoke: Callable[..., Result], site: Site, now: str = NOW, *extra: str) -> Result:
    return invoke("run", "--once", "--config", site.config, "--now", now, *extra, cwd=site.root)


def quiet(invoke: Callable[..., Result], site: Site, full_runs: list[str], now: str = NOW) -> None:
    """A run the shortcut answers: nothing printed, no full cycle."""
    before = len(full_runs)
    result = run(invoke, site, now)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert len(full_runs) == before, "the shortcut was not taken"


def runs(site: Site) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(site.root / "state" / "syndicate.db") as db:
        return db.execute("SELECT kind, outcome, started_at, finished_at FROM runs").fetchall()


def titles(site: Site, name: str = "feed.xml") -> list[str]:
    return [e.title for e in feedparser.parse((site.public / name).read_bytes()).entries]


@pytest.fixture
def published(site: Site, invoke: Callable[..., Result], full_runs: list[str]) -> Site:
    """A site with two posts published by a full run, then one quiet run."""
    site.write_post("a.md", post("A", "2025-05-01"))
    site.write_post("b.md", post("B", "2025-05-02"))
    first = run(invoke, site)
    assert first.exit_code == 0 and first.stdout.count("published:") == 2, first.stderr
    assert full_runs == ["once"]
    quiet(invoke, site, full_runs)
    return site


def test_a_quiet_run_is_recorded_like_any_run(
    published: Site, invoke: Callable[..., Result]
) -> None:
    """The runs table gets its row (kind, outcome, times as SQLAlchemy reads them), and -v
    names it."""
    verbose = run(invoke, published, "2025-06-02T10:30:00.5Z", "-v")
    assert verbose.stdout.startswith("run 3: nothing changed → public/")
    assert [r[:2] for r in runs(published)] == [("once", "ok")] * 3
    state = Store(f"sqlite:///{published.root / 'state' / 'syndicate.db'}")
    try:
        last = recent_runs(state, 1)[0]
    finally:
        state.close()
    when = datetime(2025, 6, 2, 10, 30, 0, 500000, tzinfo=UTC)
    assert (last.id, last.started_at, last.finished_at, last.files_written) == (3, when, when, 0)


def test_a_quiet_run_imports_no_feed_markdown_or_database_library(
    published: Site,
) -> None:
    """A real process, as cron starts it: nothing heavy is imported, no post is unpickled
    (the pipeline module is not even loaded), and the run is recorded."""
    status, stdout, loaded = cli_modules(["run", "--once", "--now", NOW], published.root)
    assert (status, stdout) == (0, "")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    assert not {"syndicate.runs.pipeline", "syndicate.content.posts"} & loaded
    assert len(runs(published)) == 3


def test_warnings_are_printed_again_by_a_quiet_run(
    site: Site, invoke: Callable[..., Result], full_runs: list[str]
) -> None:
    site.write_post("a.md", post("Same", "2025-05-01"))
    site.write_post("b.md", post("Same", "2025-05-02"))
    first = run(invoke, site)
    assert "warning: slug 'same' is already used" in first.stderr
    again = run(invoke, site)
    assert (again.exit_code, again.stdout, again.stderr) == (0, "", first.stderr)
    assert full_runs == ["once"]


def test_errors_always_take_the_full_path(
    site: Site,
    invoke: Callable[..., Result],
    full_runs: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad post is read (and reported, exit 1) by every run."""
    monkeypatch.setattr(shortcut, "RACY_NS", -(10**12))  # no file is recent: stamps alone
    site.write_post("a.md", post("A"))
    site.write_post("bad.md", "---\ntitle: [unclosed\n---\n")
    assert run(invoke, site).exit_code == 1
    again = run(invoke, site)
    assert again.exit_code == 1 and "posts/bad.md" in again.stderr
    assert full_runs == ["once", "once"]


def edit(site: Site) -> str:
    site.write_post("a.md", post("A", "2025-05-01", body="Edited."))
    return "updated: A"


def add(site: Site) -> str:
    site.write_post("c.md", post("C", "2025-05-03"))
    return "published: C"


def delete(site: Site) -> str:
    (site.posts / "b.md").unlink()
    return "withdrawn: B"


def rename(site: Site) -> str:
    (site.posts / "b.md").rename(site.posts / "b-renamed.md")
    return "updated: B"


def move_into_a_folder(site: Site) -> str:
    (site.posts / "2025").mkdir()
    (site.posts / "b.md").rename(site.posts / "2025" / "b.md")
    return "updated: B"


@pytest.mark.parametrize("change", [edit, add, delete, rename, move_into_a_folder])
@pytest.mark.slow
def test_a_changed_post_is_picked_up_after_quiet_runs(
    published: Site,
    invoke: Callable[..., Result],
    full_runs: list[str],
    change: Callable[[Site], str],
) -> None:
    expected = change(published)
    result = run(invoke, published)
    assert result.exit_code == 0 and result.stdout.startswith(expected), result.stderr
    assert len(full_runs) == 2
    quiet(invoke, published, full_runs)  # and a new record is written


def test_a_touched_post_is_read_again_and_changes_nothing(
    published: Site, invoke: Callable[..., Result], full_runs: list[str]
) -> None:
    before = {p: p.stat().st_mtime_ns for p in published.public.rglob("*")}
    os.utime(published.posts / "a.md")
    result = run(invoke, published)
    assert (result.exit_code, result.stdout) == (0, "")
    assert len(full_runs) == 2
    assert {p: p.stat().st_mtime_ns for p in published.public.rglob("*")} == before


def test_an_edit_in_the_same_clock_tick_is_caught_by_the_hash(
    site: Site,
    invoke: Callable[..., Result],
    full_runs: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Timestamps are coarse: a file rewritten right after it was stamped may keep its
    stamp. Files that recent are remembered by hash; faked here by a scan that does not
    see the edit."""
    monkeypatch.setattr(shortcut, "RACY_NS", 3600 * 10**9)  # however slow the machine
    site.write_post("a.md", post("A", "2025-05-01"))
    assert run(invoke, site).stdout.startswith("published: A")
    quiet(invoke, site, full_runs)
    monkeypatch.chdir(site.root)  # where the runs are: messages name files from there
    stale = shortcut.scan_inputs(load_config(site.config))
    assert stale is not None and stale.recent == (str(site.posts / "a.md"),)
    site.write_post("a.md", post("A", "2025-05-01", body="Edited, same tick."))
    monkeypatch.setattr(shortcut, "scan_inputs", lambda config: stale)
    assert run(invoke, site).stdout.startswith("updated: A")


def test_a_config_change_takes_the_full_path(
    published: Site, invoke: Callable[..., Result], full_runs: list[str]
) -> None:
    published.set_config(SITE_CONFIG.replace("Test Site", "Renamed Site"))
    assert run(invoke, published).exit_code == 0
    assert len(full_runs) == 2
    assert b"Renamed Site" in (published.public / "feed.xml").read_bytes()


def test_a_template_change_takes_the_full_path(
    published: Site,
    invoke: Callable[..., Result],
    full_runs: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(resources.templates_dir(), templates)
    monkeypatch.setattr(resources, "templates_dir", lambda: templates)
    assert run(invoke, published).exit_code == 0  # other templates: a full run
    quiet(invoke, published, full_runs)
    xsl = templates / "feed.xsl"
    xsl.write_bytes(xsl.read_bytes() + b"<!-- edited -->\n")
    assert run(invoke, published).exit_code == 0
    assert (published.public / "feed.xsl").read_bytes().endswith(b"<!-- edited -->\n")


@pytest.mark.parametrize("damage", ["delete", "edit", "manifest"])
def test_a_damaged_output_folder_is_repaired(
    published: Site, invoke: Callable[..., Result], full_runs: list[str], damage: str
) -> None:
    feed = published.public / "feed.xml"
    good = feed.read_bytes()
    if damage == "delete":
        feed.unlink()
    elif damage == "edit":
        feed.write_bytes(good.replace(b"<title>A</title>", b"<title>Vandal</title>"))
    else:
        (published.public / ".syndicate-manifest.json").unlink()
    assert run(invoke, published).exit_code == 0
    assert feed.read_bytes() == good
    assert len(full_runs) == 2


@pytest.mark.slow
def test_a_scheduled_post_is_published_when_its_time_comes(
    site: Site, invoke: Callable[..., Result], full_runs: list[str]
) -> None:
    """The record knows when the next post is due (the newsletter is off here: its slots
    would end the quiet window too)."""
    site.set_config(SITE_CONFIG + "newsletter:\n  enabled: false\n")
    site.write_post("a.md", post("A", "2025-05-01"))
    site.write_post("later.md", post("Later", "2025-07-01T09:00:00Z"))
    assert run(invoke, site).stdout.startswith("published: A")
    quiet(invoke, site, full_runs, "2025-06-20T00:00:00Z")
    quiet(invoke, site, full_runs, "2025-07-01T08:59:59Z")
    due = run(invoke, site, "2025-07-01T09:00:00Z")
    assert due.stdout.startswith("published: Later")
    assert titles(site)[0] == "Later"
    quiet(invoke, site, full_runs, "2025-07-01T09:00:01Z")


def test_going_back_in_time_takes_the_full_path(
    published: Site, invoke: Callable[..., Result], full_runs: list[str]
) -> None:
    """--now before the newest post's date holds it back again."""
    back = run(invoke, published, "2025-05-01T12:00:00Z")
    assert back.stdout.startswith("withdrawn: B")


def test_a_deleted_state_database_republishes(
    published: Site, invoke: Callable[..., Result], full_runs: list[str]
) -> None:
    for path in (published.root / "state").glob("syndicate.db*"):
        if not path.name.startswith("syndicate.db.cache") and not path.name.endswith(".lock"):
            path.unlink()
    assert run(invoke, published).stdout.count("published:") == 2


def test_another_run_in_between_takes_the_full_path(
    published: Site, invoke: Callable[..., Result], full_runs: list[str]
) -> None:
    """A daemon cycle or `send` (a run row the record does not know) may have changed the
    state: the next run checks everything."""
    state = Store(f"sqlite:///{published.root / 'state' / 'syndicate.db'}")
    try:
        start_run(state, "daemon", datetime(2025, 6, 1, tzinfo=UTC))
    finally:
        state.close()
    assert run(invoke, published).exit_code == 0
    assert len(full_runs) == 2
    assert [r[1] for r in runs(published)] == ["ok", "ok", "interrupted", "ok"]


def test_no_shortcut_without_the_cache(
    published: Site,
    invoke: Callable[..., Result],
    full_runs: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SYNDICATE_NO_CACHE", "1")
    assert run(invoke, published).exit_code == 0
    assert len(full_runs) == 2


@pytest.mark.slow
def test_the_newsletter_slot_takes_the_full_path(
    site: Site,
    invoke: Callable[..., Result],
    full_runs: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Quiet runs between slots; at the slot the digest goes out."""
    monkeypatch.setenv("SYNDICATE_SECRET", SECRET)
    site.set_config(
        SITE_CONFIG
        + "newsletter:\n  from: 'Test Site <news@blog.syndicate.test>'\n"
        + "schedule:\n  newsletter: '0 8 * * mon'\n"
    )
    site.write_post("a.md", post("A", "2025-09-02", description="d"))
    assert run(invoke, site, "2025-09-03T09:00:00Z").stdout.startswith("published: A")
    # the slot of Monday 1st was spent by that first run (nobody to send to); A waits
    invoke("subscribers", "add", "r@example.org", "--config", site.config, cwd=site.root)
    quiet(invoke, site, full_runs, "2025-09-05T09:00:00Z")
    quiet(invoke, site, full_runs, "2025-09-08T07:59:59Z")
    slot = run(invoke, site, "2025-09-08T08:15:00Z")
    assert "queued for 1 subscribers" in slot.stdout
    quiet(invoke, site, full_runs, "2025-09-08T08:30:00Z")


def test_mail_waiting_in_the_outbox_takes_the_full_path(
    published: Site, invoke: Callable[..., Result], full_runs: list[str]
) -> None:
    """A queued or deferred message is sent or retried by the full path's newsletter job
    (with the newsletter off, it waits, and the shortcut does not look)."""
    db = published.root / "state" / "syndicate.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO outbox (digest_id, subscriber_id, body_id, email, status) "
            "VALUES (1, 1, 1, 'r@example.org', 'deferred')"
        )
    assert run(invoke, published).exit_code == 0
    assert len(full_runs) == 2
    (last,) = sqlite3.connect(db).execute("SELECT max(id) FROM runs").fetchone()
    now = datetime(2025, 6, 1, tzinfo=UTC)
    assert runlog.record_unchanged_run(db, "once", now, last, check_outbox=True) is None
    assert runlog.record_unchanged_run(db, "once", now, last, check_outbox=False) == last + 1


def test_the_run_writer_knows_the_schema_of_the_store() -> None:
    """runlog writes the runs table without SQLAlchemy; a schema change must reach it."""
    assert {c.name for c in schema.runs_table.columns} == {
        "id", "kind", "started_at", "finished_at", "outcome", "published", "updated",
        "withdrawn", "errors", "files_written", "message",
    }  # fmt: skip


def test_a_record_from_another_format_is_ignored(
    published: Site, invoke: Callable[..., Result], full_runs: list[str]
) -> None:
    record = published.root / "state" / "syndicate.db.cache-noop"
    data = json.loads(record.read_text("utf-8"))
    record.write_text(json.dumps({**data, "format": 0}), "utf-8")
    assert run(invoke, published).exit_code == 0
    assert len(full_runs) == 2


def test_a_site_copied_just_before_its_first_run_is_quiet_the_next_time(
    site: Site,
    invoke: Callable[..., Result],
    full_runs: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A few hundred posts written a moment before the first run are all too recent for
    their stamps to be trusted: they are remembered by hash, and the next run is quiet
    at once (it took the full path while they were more than 100)."""
    monkeypatch.setattr(shortcut, "RACY_NS", 3600 * 10**9)  # recent, however slow the machine
    for number in range(150):
        site.write_post(f"p{number}.md", post(f"P{number}", "2025-05-01"))
    first = run(invoke, site)
    assert first.exit_code == 0 and first.stdout.count("published:") == 150, first.stderr
    record = shortcut.read_record(shortcut.record_path(load_config(site.config)))
    assert record is not None and len(record["recent"]) == 150
    quiet(invoke, site, full_runs)
    assert full_runs == ["once"]
