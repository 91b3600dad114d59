"""The site index drafted by a child process while a full `run --once` renders
(syndicate.runs.shortcut.IndexDraft, syndicate.workers.in_background): the run takes the
draft only when it is the index the run itself would have written, else writes it."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from syndicate import workers
from syndicate.runs import shortcut

from .conftest import SITE_CONFIG, Result, Site, post

NOW = "2025-06-01T00:00:00Z"


def index_file(site: Site) -> Path:
    return site.root / "state" / "syndicate.db.cache-index"


def index_rows(site: Site) -> dict[str, list[tuple[object, ...]]]:
    """Every table of the index, sorted, and its schema; a file's path relative to the
    site and without its stamp (the two sites' files differ in both)."""
    with sqlite3.connect(index_file(site)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = {name: sorted(db.execute(f"SELECT * FROM [{name}]")) for name in tables}  # noqa: S608
        rows["schema"] = sorted(db.execute("SELECT type, name, sql FROM sqlite_master"))
    root = str(site.root).encode()
    rows["files"] = sorted(
        (bytes(path).replace(root, b""), key) for path, _stamp, key in rows["files"]
    )
    return rows


def fill(site: Site) -> None:
    """Posts of every kind the index tells apart: tagged, categorised, a draft, one that
    is scheduled, two whose slugs collide, one with a warning."""
    site.posts.mkdir(parents=True, exist_ok=True)
    site.set_config(SITE_CONFIG + "feeds:\n  per_tag: true\n  per_category: true\n")
    site.write_post("a.md", post("Alpha", "2025-05-01", tags="[Python, SQL]"))
    site.write_post("b.md", post("Beta", "2025-05-02", categories="[notes]"))
    site.write_post("c.md", post("Alpha", "2025-05-03"))  # the slug of a.md
    site.write_post("d.md", post("Draft", "2025-05-04", draft="true"))
    site.write_post("e.md", post("Later", "2025-07-01"))
    site.write_post("f.md", post("Warned", "2025-05-05", body="Bad \x01 byte."))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the draft is written on a second core")
def test_the_draft_taken_is_the_index_the_run_writes_itself(
    tmp_path: Path, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    drafted, written = Site(tmp_path / "drafted"), Site(tmp_path / "written")
    taken: list[bool] = []
    real_take = shortcut.IndexDraft.take

    def spy(self: shortcut.IndexDraft, report: object, target: Path) -> bool:
        outcome = real_take(self, report, target)  # type: ignore[arg-type]
        taken.append(outcome)
        return outcome

    monkeypatch.setattr(shortcut.IndexDraft, "take", spy)
    for site in (drafted, written):
        fill(site)
    stale = drafted.root / "state" / ".syndicate.db.cache-index.99999.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by a killed run")
    first = invoke("run", "--once", "--now", NOW, "--config", drafted.config)
    assert taken == [True]
    monkeypatch.setattr(shortcut.IndexDraft, "start", lambda self, run_id, catalog: None)
    second = invoke("run", "--once", "--now", NOW, "--config", written.config)
    assert taken == [True, False]  # nothing drafted: written at the end, as before
    assert first.exit_code == second.exit_code == 0
    assert "warning" in first.stderr
    assert index_rows(drafted) == index_rows(written)
    assert not list(drafted.root.glob("state/.*.tmp"))  # the stale draft swept too


def test_a_draft_whose_run_ended_otherwise_is_dropped(
    tmp_path: Path, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A post that cannot be rendered (raw HTML nested too deep) adds a diagnostic the
    draft did not know of: a run with an error writes no record and no index, and the
    draft's file is gone with its child."""
    site = Site(tmp_path / "site")
    fill(site)
    site.write_post("deep.md", post("Deep", "2025-05-06", body="<div>" * 1000))
    outcome = invoke("run", "--once", "--now", NOW, "--config", site.config)
    assert outcome.exit_code == 1
    assert "deep.md" in outcome.stderr and "nested" in outcome.stderr
    assert not index_file(site).exists()
    assert not list(site.root.glob("state/.*.tmp"))


def test_take_refuses_a_draft_of_another_run_or_other_diagnostics(tmp_path: Path) -> None:
    target = tmp_path / "index"
    draft = shortcut.IndexDraft.__new__(shortcut.IndexDraft)
    for run_id, paths in ((2, ()), (1, ("posts/x.md",))):
        draft.path = tmp_path / ".index.1.tmp"
        draft.path.write_bytes(b"draft")
        draft.basis = (1, frozenset())
        draft.job = workers.in_background(lambda: None)
        report = SimpleNamespace(
            run_id=run_id, diagnostics=[SimpleNamespace(path=p) for p in paths]
        )
        assert draft.take(report, target) is False  # type: ignore[arg-type]
        assert not target.exists() and not draft.path.exists()
        assert draft.job is None


def test_in_background_runs_the_function_in_another_process(tmp_path: Path) -> None:
    mark = tmp_path / "pid"
    job = workers.in_background(lambda: mark.write_text(str(os.getpid())))
    if (os.cpu_count() or 1) < 2:
        assert job.pid is None and job.wait() is False
        return
    assert job.wait() is True
    assert int(mark.read_text()) not in (os.getpid(), 0)
    assert job.wait() is False  # reaped once


def test_in_background_reports_a_failure_and_can_be_stopped() -> None:
    def fail() -> None:
        raise ValueError("no")

    failing = workers.in_background(fail)
    assert failing.wait() is False
    sleeping = workers.in_background(lambda: time.sleep(60))
    started = time.monotonic()
    sleeping.cancel()
    assert time.monotonic() - started < 10
    assert sleeping.pid is None


def test_in_background_does_not_fork_beside_other_threads() -> None:
    """The daemon runs a scheduler thread: forking there is unsafe, so the caller is told
    to do the work itself."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        job = workers.in_background(lambda: None)
        assert job.pid is None and job.wait() is False
    finally:
        stop.set()
        thread.join()
