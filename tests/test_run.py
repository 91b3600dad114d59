"""`syndicate run` and `status`: time travel, state, the lock, kill -9, the daemon, WebSub."""

from __future__ import annotations

import http.server
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest

from .conftest import SITE_CONFIG, Result, Site, post, run_subprocess


def run_once(invoke: Callable[..., Result], site: Site, now: str, *extra: str) -> Result:
    return invoke("run", "--once", "--config", site.config, "--now", now, *extra, cwd=site.root)


def titles(site: Site, name: str = "feed.xml") -> list[str]:
    return [e.title for e in feedparser.parse((site.public / name).read_bytes()).entries]


def snapshot(folder: Path) -> dict[Path, tuple[bytes, int]]:
    return {
        p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.slow
def test_time_travel_publish_update_withdraw(site: Site, invoke: Callable[..., Result]) -> None:
    site.write_post("old.md", post("Old", "2025-01-01"))
    site.write_post("future.md", post("Future", "2025-03-01T09:00:00Z"))

    first = run_once(invoke, site, "2025-02-01T00:00:00Z")
    assert first.exit_code == 0, first.stderr
    assert first.stdout == "published: Old <https://blog.syndicate.test/posts/old/>\n"
    assert titles(site) == ["Old"]

    # nothing new: silent, and not one file touched
    before = snapshot(site.public)
    quiet = run_once(invoke, site, "2025-02-15T00:00:00Z")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    assert snapshot(site.public) == before

    # a minute before its date the future post is still held back ...
    assert run_once(invoke, site, "2025-03-01T08:59:00Z").stdout == ""
    # ... and at its date it is published, once
    due = run_once(invoke, site, "2025-03-01T09:00:00Z")
    assert due.stdout == "published: Future <https://blog.syndicate.test/posts/future/>\n"
    assert titles(site) == ["Future", "Old"]
    assert run_once(invoke, site, "2025-03-02T00:00:00Z").stdout == ""

    site.write_post("old.md", post("Old", "2025-01-01", body="Edited body."))
    assert run_once(invoke, site, "2025-03-03T00:00:00Z").stdout == (
        "updated: Old <https://blog.syndicate.test/posts/old/>\n"
    )
    (site.posts / "future.md").unlink()
    assert run_once(invoke, site, "2025-03-04T00:00:00Z").stdout == (
        "withdrawn: Future <https://blog.syndicate.test/posts/future/>\n"
    )
    assert titles(site) == ["Old"]

    db = sqlite3.connect(site.root / "state" / "syndicate.db")
    rows = dict(db.execute("select source, status from posts").fetchall())
    assert rows == {"posts/old.md": "published", "posts/future.md": "withdrawn"}
    outcomes = [r[0] for r in db.execute("select outcome from runs order by id")]
    assert outcomes == ["ok"] * 7


def test_draft_again_is_withdrawn(site: Site, invoke: Callable[..., Result]) -> None:
    site.write_post("a.md", post("A"))
    run_once(invoke, site, "2025-06-01")
    site.write_post("a.md", post("A", draft="true"))
    assert run_once(invoke, site, "2025-06-02").stdout.startswith("withdrawn: A")


def test_output_removed_or_edited_by_hand_is_rebuilt(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.write_post("a.md", post("A"))
    run_once(invoke, site, "2025-06-01")
    original = (site.public / "feed.xml").read_bytes()
    (site.public / "feed.xml").write_text("vandalised")
    (site.public / "atom.xml").unlink()
    result = run_once(invoke, site, "2025-06-02", "-v")
    assert result.exit_code == 0
    assert (site.public / "feed.xml").read_bytes() == original
    assert (site.public / "atom.xml").exists()
    assert "2 files changed" in result.stdout


def test_config_change_rebuilds_the_feeds(site: Site, invoke: Callable[..., Result]) -> None:
    site.write_post("a.md", post("A"))
    run_once(invoke, site, "2025-06-01")
    site.set_config(SITE_CONFIG.replace('title: "Test Site"', 'title: "Renamed Site"'))
    run_once(invoke, site, "2025-06-02")
    assert feedparser.parse(str(site.public / "feed.xml")).feed.title == "Renamed Site"


def test_errors_exit_1_and_good_posts_still_publish(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.write_post("good.md", post("Good"))
    site.write_post("bad.md", "---\ntitle: Bad\ndate: 2025-02-30\n---\n")
    result = run_once(invoke, site, "2025-06-01")
    assert result.exit_code == 1
    assert "posts/bad.md:3: error:" in result.stderr
    assert result.stdout.startswith("published: Good")


def test_status_lists_published_scheduled_and_runs(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.write_post("a.md", post("A", "2025-01-01"))
    site.write_post("b.md", post("Later post", "2025-12-24T18:00:00Z"))
    run_once(invoke, site, "2025-06-01T00:00:00Z")
    result = invoke(
        "status", "--config", site.config, "--now", "2025-06-01T00:00:00Z", cwd=site.root
    )
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "posts: 1 published, 1 scheduled, 0 drafts" in out
    assert "2025-12-24 18:00 UTC  Later post  (posts/b.md)" in out
    assert "#1 2025-06-01 00:00 UTC once ok: 1 published, 0 updated, 0 withdrawn, 0 errors" in out
    assert "build: 2025-06-01 00:00 UTC" in out
    assert "newsletter: 2025-06-02 08:00 UTC" in out  # 2025-06-02 is a Monday


def test_newer_schema_is_refused(site: Site, invoke: Callable[..., Result]) -> None:
    site.write_post("a.md", post("A"))
    run_once(invoke, site, "2025-06-01")
    db = sqlite3.connect(site.root / "state" / "syndicate.db")
    db.execute("update alembic_version set version_num = '0099'")  # as a later release left it
    db.commit()
    result = run_once(invoke, site, "2025-06-02")
    assert result.exit_code == 1
    assert "schema revision 0099, newer than" in result.stderr and "Traceback" not in result.stderr


# --- processes: the lock, kill -9, concurrency ----------------------------------------


def hold_lock(lock: Path, seconds: float) -> subprocess.Popen[bytes]:
    """Another process holding the run lock, as a daemon job in flight would."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    code = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX)\nos.write(fd, str(os.getpid()).encode())\n"
        "print('locked', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
    return holder


@pytest.mark.slow
def test_busy_lock_exits_75_without_touching_state(site: Site) -> None:
    site.write_post("a.md", post("A"))
    holder = hold_lock(site.root / "state" / "syndicate.db.lock", 30)
    try:
        result = run_subprocess(
            "run", "--once", "--lock-timeout", "0.5", "--now", "2025-06-01", cwd=site.root
        )
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 75
    assert f"(pid {holder.pid})" in result.stderr and "gave up after waiting 0.5s" in result.stderr
    assert "Traceback" not in result.stderr
    assert not site.public.exists()
    # the killed holder's lock is gone with it: the next run takes it at once
    result = run_subprocess(
        "run", "--once", "--lock-timeout", "0.5", "--now", "2025-06-01", cwd=site.root
    )
    assert result.exit_code == 0 and result.stdout.startswith("published: A")


@pytest.mark.slow
def test_waiting_run_proceeds_when_the_lock_is_released(site: Site) -> None:
    site.write_post("a.md", post("A"))
    holder = hold_lock(site.root / "state" / "syndicate.db.lock", 1.5)
    result = run_subprocess(
        "run", "--once", "--lock-timeout", "30", "--now", "2025-06-01", cwd=site.root
    )
    holder.wait()
    assert result.exit_code == 0
    assert result.stdout.startswith("published: A")


def many_posts(site: Site, count: int) -> None:
    paragraph = "Some prose for the body of a post, long enough to take a moment to render. " * 30
    for n in range(count):
        site.write_post(
            f"p{n:04d}.md",
            post(f"Post {n}", f"2025-01-{1 + n % 28:02d}", body=paragraph, tags=f"[t{n % 40}]"),
        )


@pytest.mark.slow
def test_concurrent_runs_publish_each_post_once(site: Site) -> None:
    many_posts(site, 300)
    args = [
        sys.executable,
        "-m",
        "syndicate",
        "run",
        "--once",
        "--now",
        "2025-06-01",
        "--lock-timeout",
        "60",
    ]
    procs = [
        subprocess.Popen(
            args, cwd=site.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    published = [
        line for out, _ in outputs for line in out.splitlines() if line.startswith("published:")
    ]
    assert len(published) == 300 and len(set(published)) == 300
    assert len(titles(site)) == 50


@pytest.mark.slow
def test_kill_9_mid_run_then_a_normal_run_recovers(site: Site) -> None:
    many_posts(site, 400)
    run_subprocess("run", "--once", "--now", "2025-01-10", cwd=site.root)  # a previous good state
    for n in range(400):  # now every post changes
        site.write_post(
            f"p{n:04d}.md", post(f"Post {n} v2", f"2025-01-{1 + n % 28:02d}", tags=f"[t{n % 40}]")
        )
    args = [sys.executable, "-m", "syndicate", "run", "--once", "--now", "2025-06-01"]
    for delay in (0.6, 1.2, 1.8):
        victim = subprocess.Popen(
            args, cwd=site.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(delay)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        # whatever moment it died at, every feed file is either the old or a new, valid feed
        for path in site.public.rglob("*.xml"):
            assert feedparser.parse(path.read_bytes()).bozo == 0, path
    result = run_subprocess("run", "--once", "--now", "2025-06-01", cwd=site.root)
    assert result.exit_code == 0, result.stderr
    assert all(t.endswith("v2") for t in titles(site))
    assert not list(site.public.rglob("*.tmp"))  # temp files of the killed runs are swept
    db = sqlite3.connect(site.root / "state" / "syndicate.db")
    assert db.execute("select count(*) from posts where status = 'published'").fetchone() == (400,)
    outcomes = [r[0] for r in db.execute("select outcome from runs order by id")]
    assert outcomes[-1] == "ok" and "running" not in outcomes
    # and one more run finds nothing left to do
    assert run_subprocess("run", "--once", "--now", "2025-06-01", cwd=site.root).stdout == ""


# --- the daemon ------------------------------------------------------------------------


@pytest.mark.slow
def test_daemon_publishes_a_post_at_its_time_and_stops_on_sigterm(site: Site) -> None:
    """The one-off job fires at the post's date: judged by the daemon's own records (when
    the publishing run started, when the post was first published), not by when this test
    happened to look at the feed, so a loaded machine cannot make it flaky."""
    site.set_config(SITE_CONFIG + 'schedule:\n  build: "0 0 1 1 *"\n')  # the poll never fires
    site.write_post("now.md", post("Already out", "2025-01-01"))
    # Far enough ahead that a slow start-up (imports on a busy machine) is long over.
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=10)
    site.write_post("soon.md", post("Due soon", due.strftime("%Y-%m-%dT%H:%M:%SZ")))
    daemon = subprocess.Popen(
        [sys.executable, "-m", "syndicate", "run"],
        cwd=site.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        feed = site.public / "feed.xml"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            feed.exists() and "Already out" in feed.read_text()
        ):
            time.sleep(0.1)
        assert titles(site) == ["Already out"]
        while time.monotonic() < deadline and "Due soon" not in feed.read_text():
            time.sleep(0.1)
        assert titles(site) == ["Due soon", "Already out"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            _, err = daemon.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.send_signal(signal.SIGUSR1)  # the daemon prints every thread's stack
            time.sleep(1)
            daemon.kill()
            _, err = daemon.communicate()
            pytest.fail(f"the daemon did not stop on SIGTERM:\n{err[-6000:]}")
    assert daemon.returncode == 0, err
    assert "published: Due soon" in err
    assert "SIGTERM received" in err and "daemon stopped" in err
    assert "Traceback" not in err

    db = sqlite3.connect(site.root / "state" / "syndicate.db")
    runs = db.execute("select started_at, finished_at, published from runs order by id").fetchall()
    (published_at,) = db.execute(
        "select first_published_at from posts where title = 'Due soon'"
    ).fetchone()
    db.close()

    def utc(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    startup, publishing = runs[0], runs[-1]
    assert len(runs) == 2 and startup[2] == 1 and publishing[2] == 1, runs
    assert utc(startup[1]) < due, "start-up took longer than the lead time: test inconclusive"
    # Never early, and on time: the job started within 3 s of the date (it is planned
    # 50 ms after it), by the daemon's own clock.
    assert due <= utc(publishing[0]) < due + timedelta(seconds=3), (due, publishing)
    assert due <= utc(published_at) < due + timedelta(seconds=3), (due, published_at)


# --- WebSub ----------------------------------------------------------------------------


@pytest.fixture
def hub() -> Iterator[tuple[str, list[bytes]]]:
    """A real HTTP server on 127.0.0.1 standing in for a WebSub hub."""
    received: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hub", received
    server.shutdown()


@pytest.mark.slow
def test_websub_hub_is_linked_and_pinged(
    site: Site, invoke: Callable[..., Result], hub: tuple[str, list[bytes]]
) -> None:
    url, received = hub
    site.set_config(
        SITE_CONFIG + f"feeds:\n  websub_hub: {url}\n  per_tag: false\n  per_category: false\n"
    )
    site.write_post("a.md", post("A"))
    result = run_once(invoke, site, "2025-06-01")
    assert result.exit_code == 0, result.stderr
    assert f'<atom:link href="{url}" rel="hub"/>' in (site.public / "feed.xml").read_text()
    assert sorted(received) == sorted(
        f"hub.mode=publish&hub.url=https%3A%2F%2Fblog.syndicate.test%2F{name}".encode()
        for name in ("atom.xml", "feed.json", "feed.xml")
    )
    received.clear()
    run_once(invoke, site, "2025-06-02")
    assert received == []  # nothing changed, nobody pinged


def test_unreachable_hub_warns_but_does_not_fail_the_run(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(SITE_CONFIG + "feeds:\n  websub_hub: http://127.0.0.1:9/hub\n")
    site.write_post("a.md", post("A"))
    result = run_once(invoke, site, "2025-06-01")
    assert result.exit_code == 0
    assert "WebSub hub http://127.0.0.1:9/hub unreachable" in result.stderr
    assert len([line for line in result.stderr.splitlines() if "WebSub" in line]) == 1
    assert (site.public / "feed.xml").exists()


def test_lock_file_sits_beside_the_database(site: Site, invoke: Callable[..., Result]) -> None:
    site.write_post("a.md", post("A"))
    run_once(invoke, site, "2025-06-01")
    assert (site.root / "state" / "syndicate.db.lock").exists()
    assert (site.root / "state" / "syndicate.db.lock").stat().st_size > 0


def test_a_failing_newsletter_still_reports_what_was_published(
    site: Site, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNDICATE_SECRET", raising=False)
    site.write_post("a.md", post("A", "2025-08-30"))
    invoke("subscribers", "add", "a@example.org", "--config", site.config)
    result = run_once(invoke, site, "2025-09-01T09:00:00Z")
    assert result.exit_code == 1
    assert result.stdout.startswith("published: A <https://blog.syndicate.test/posts/a/>")
    assert "SYNDICATE_SECRET is not set" in result.stderr


@pytest.mark.slow
def test_the_config_path_spelling_does_not_rebuild(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.write_post("a.md", post("A"))
    invoke("run", "--once", "--config", "config.yaml", "--now", "2025-06-01", cwd=site.root)
    before = snapshot(site.public)
    invoke("run", "--once", "--config", "./config.yaml", "--now", "2025-06-02", cwd=site.root)
    assert snapshot(site.public) == before


def test_unusable_state_folder_is_a_clear_error(site: Site, invoke: Callable[..., Result]) -> None:
    site.set_config(SITE_CONFIG + "state:\n  url: 'sqlite:////proc/no/such/syndicate.db'\n")
    site.write_post("a.md", post("A"))
    result = run_once(invoke, site, "2025-06-01")
    assert result.exit_code == 1
    assert "cannot create the run lock /proc/no/such/syndicate.db.lock" in result.stderr
    assert "internal error" not in result.stderr


@pytest.mark.slow
def test_with_the_newsletter_off_a_run_loads_no_delivery_code(site: Site) -> None:
    """`newsletter.enabled: false`: cron's run never imports the delivery side (Jinja,
    MJML, DKIM), which cost every 15-minute run about a tenth of a second for nothing."""
    site.set_config(SITE_CONFIG + "newsletter:\n  enabled: false\n")
    site.write_post("a.md", post("A"))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "syndicate", "run", "--once"],
        cwd=site.root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "published: A" in done.stdout
    imported = [line for line in done.stderr.splitlines() if "import time:" in line]
    assert any("syndicate.runs.pipeline" in line for line in imported)
    assert not [line for line in imported if "syndicate.delivery" in line]


def test_a_run_that_loses_its_lock_before_recording_changes_neither_feeds_nor_state(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """The states are written while the new feeds go to disk, and committed once they are
    in place: a lost lock at that moment leaves the old feeds and the old state, and the
    next run publishes the post (once)."""
    from syndicate.config import load_config
    from syndicate.errors import LockLostError
    from syndicate.runs.pipeline import open_state, run_cycle

    site.write_post("a.md", post("A", "2025-05-01"))
    assert invoke("run", "--once", "--config", site.config).exit_code == 0
    before = (site.public / "feed.xml").read_bytes()
    site.write_post("b.md", post("B", "2025-05-02"))
    config = load_config(site.config)

    def lost() -> None:
        raise LockLostError("the run lock was lost", "run again")

    store = open_state(config)
    try:
        with pytest.raises(LockLostError):
            run_cycle(config, datetime(2025, 6, 1, tzinfo=UTC), store, still_locked=lost)
    finally:
        store.close()
    assert (site.public / "feed.xml").read_bytes() == before
    assert not list(site.public.rglob(".*.tmp"))
    with sqlite3.connect(site.root / "state" / "syndicate.db") as db:
        assert [r[0] for r in db.execute("SELECT source FROM posts")] == ["posts/a.md"]
        assert db.execute("SELECT outcome FROM runs ORDER BY id DESC").fetchone() == ("failed",)
    again = invoke("run", "--once", "--config", site.config)
    assert again.exit_code == 0 and again.stdout.count("published: B") == 1
