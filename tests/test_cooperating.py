"""Several hosts on one PostgreSQL state database (issue #13): the run lock lives in the
database, so two hosts' runs never both publish; `send` on several hosts shares one
digest's outbox (leases, FOR UPDATE SKIP LOCKED), and a host killed mid-send leaves rows
another sender takes over when their lease runs out, each recipient getting one copy
(except at most one per connection of the killed host, in flight at the kill)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from syndicate.runs.lock import RUN_LOCK_KEY
from syndicate.state.schema import outbox_table, subscribers_table
from syndicate.state.store import Store

from .conftest import SITE_CONFIG, post
from .kill_scenario import wait_for_group_gone
from .smtp_sink import Sink, SinkHandler
from .test_postgres import pg_url  # noqa: F401 - the fixture

SECRET = "cooperating-secret-0123456789"  # noqa: S105 - a test key
NOW = "2025-09-01T09:00:00Z"
POSTS = [
    ("one.md", "One", "2025-08-28"),
    ("two.md", "Two", "2025-08-29"),
    ("three.md", "Three", "2025-08-30"),
]
DOMAINS = ("alpha.example", "beta.example", "gamma.example", "delta.example", "epsilon.example")

pytestmark = pytest.mark.slow


def make_host(root: Path, name: str, url: str, delivery: str = "") -> Path:
    """One host: its own working directory, posts, output and outbox; only the database
    URL (and the secret) in common with the others."""
    folder = root / name
    (folder / "posts").mkdir(parents=True)
    for file, title, date in POSTS:
        (folder / "posts" / file).write_text(post(title, date), "utf-8")
    config = (
        SITE_CONFIG
        + f"state:\n  url: '{url}'\n"
        + "newsletter:\n  from: 'Test Site <news@blog.syndicate.test>'\n"
        + "  first_lookback_days: 30\n"
        + delivery
    )
    (folder / "config.yaml").write_text(config, "utf-8")
    return folder


def syndicate(folder: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "syndicate", *args, "--now", NOW],
        cwd=folder,
        env={**os.environ, "SYNDICATE_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a lost host is the whole group
    )


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_two_hosts_runs_at_once_never_both_publish(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    hosts = [make_host(tmp_path, name, pg_url) for name in ("host-a", "host-b")]

    # While another host holds the database's run lock, a run waits, then exits 75
    # without touching anything (a lock file beside config.yaml would not have stopped it).
    holder = sa.create_engine(pg_url, poolclass=sa.pool.NullPool).connect()
    holder.execute(sa.select(sa.func.pg_advisory_lock(RUN_LOCK_KEY)))
    code, out, err = finish(syndicate(hosts[1], "run", "--once", "--lock-timeout", "1"))
    assert code == 75, err
    assert out == "" and "holds the run lock of the state database" in err
    assert not (hosts[1] / "public" / "feed.xml").exists()
    holder.close()  # the session ends: the server releases its lock

    # Both at once: one publishes the three posts, the other waits and finds them published.
    procs = [syndicate(folder, "run", "--once", "--lock-timeout", "60") for folder in hosts]
    results = [finish(proc) for proc in procs]
    assert [code for code, _, _ in results] == [0, 0], results
    published = [
        line for _, out, _ in results for line in out.splitlines() if line.startswith("published:")
    ]
    assert sorted(published) == sorted(
        f"published: {title} <https://blog.syndicate.test/posts/{title.lower()}/>"
        for _, title, _ in POSTS
    )
    assert all((folder / "public" / "feed.xml").exists() for folder in hosts)  # each its own output


def add_subscribers(url: str, count: int) -> list[str]:
    addresses = [f"r{n:05d}@{DOMAINS[n % len(DOMAINS)]}" for n in range(count)]
    created = datetime(2025, 8, 1, tzinfo=UTC)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(subscribers_table),
            [
                {"email": a, "email_key": a, "name": "", "status": "active", "created_at": created}
                for a in addresses
            ],
        )
    engine.dispose()
    return addresses


def test_three_senders_share_one_digest_and_survive_a_kill(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    recipients = 5000
    connections = 2
    handler = SinkHandler(slow=0.002)  # a server with some latency, as real ones have
    with Sink(handler) as sink:
        hosts = [
            make_host(
                tmp_path,
                name,
                pg_url,
                "delivery:\n  transport: smtp\n  lease_seconds: 3\n  lease_batch: 50\n"
                f"  smtp: {{host: 127.0.0.1, port: {sink.port}, security: none, helo: {name}.example, "
                f"connections: {connections}, rate_per_second: 0, timeout: 30}}\n",
            )
            for name in ("host-a", "host-b", "host-c")
        ]
        # The first run creates the schema; then the list, as an import would.
        code, _, err = finish(syndicate(hosts[0], "status"))
        assert code == 0, err
        addresses = add_subscribers(pg_url, recipients)

        procs = [syndicate(folder, "send", "--lock-timeout", "120") for folder in hosts]
        victim = procs[1]
        deadline = time.monotonic() + 120
        while sum(1 for r in handler.received if r.helo == "host-b.example") < 300:
            assert time.monotonic() < deadline, "host-b never got going"
            assert victim.poll() is None, finish(victim)
            time.sleep(0.01)
        os.killpg(victim.pid, signal.SIGKILL)  # the host is lost, its sender with it
        victim.wait()
        wait_for_group_gone(victim.pid)
        others = [finish(proc) for proc in (procs[0], procs[2])]
        for code, _out, err in others:
            assert code in (0, 1), err  # 1: rows of the killed host still leased
            assert "Traceback" not in err
        # Once the dead host's leases have run out, the next send takes its rows over.
        time.sleep(3.5)
        code, out, err = finish(syndicate(hosts[0], "send"))
        assert code == 0, (out, err)

    counts = handler.by_recipient()
    missing = [a for a in addresses if a not in counts]
    twice = {a: n for a, n in counts.items() if n > 1}
    assert missing == []
    assert len(twice) <= connections, twice  # only what the killed host had in flight
    assert set(counts) == set(addresses)
    by_host: dict[str, int] = {}
    for item in handler.received:
        by_host[item.helo] = by_host.get(item.helo, 0) + 1
    assert set(by_host) == {"host-a.example", "host-b.example", "host-c.example"}, by_host
    assert all(n >= 100 for n in by_host.values()), by_host  # each did part of the work
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        states = dict(
            conn.execute(
                sa.select(outbox_table.c.status, sa.func.count()).group_by(outbox_table.c.status)
            ).all()
        )
        leased = conn.execute(
            sa.select(sa.func.count()).where(outbox_table.c.claimed_by.is_not(None))
        ).scalar()
    engine.dispose()
    assert states == {"sent": recipients}
    assert leased == 0


def queued_outbox(url: str, rows: int) -> Store:
    """A store with one digest queued for `rows` active subscribers."""
    from syndicate.state.digests import QueuedBody, QueuedRecipient, queue_digest

    store = Store(url)  # the schema first
    add_subscribers(url, rows)
    when = datetime(2025, 9, 1, tzinfo=UTC)
    queue_digest(
        store,
        key="d",
        posts_hash="h",
        since=when,
        until=when,
        subject="s",
        post_sources=["posts/one.md"],
        archive_url="",
        bodies=[QueuedBody("v", "s", "h", "t")],
        recipients=[QueuedRecipient(n + 1, f"r{n:05d}@x.example", "", "v") for n in range(rows)],
        now=when,
    )
    return store


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_leases_share_rows_and_outlive_only_their_time(pg_url: str) -> None:  # noqa: F811
    """The rules under the senders: two leases never get one row; a row is claimed and
    marked only by its holder (another's claim neither sends nor cancels it); a lease that
    ran out (on the wall clock, not `--now`) is taken over."""
    from syndicate.state.outbox import Lease, claim_row, lease_rows, mark_row

    store = queued_outbox(pg_url, 30)
    clock = Clock()
    due = datetime(2025, 9, 1, 1, tzinfo=UTC)  # what `--now` says; leases ignore it
    try:
        first = Lease("host-a:1:aa", 60, True, clock)
        second = Lease("host-b:2:bb", 60, True, clock)
        taken_a = lease_rows(store, first, due, 20)
        taken_b = lease_rows(store, second, due, 20)
        assert len(taken_a) == 20 and len(taken_b) == 10
        assert not {r.id for r in taken_a} & {r.id for r in taken_b}
        assert lease_rows(store, Lease("host-c:3:cc", 60, True, clock), due, 20) == []

        row = taken_a[0]
        assert not claim_row(store, row.id, 1, second)  # not b's: untouched
        mark_row(store, row.id, second, "sent")  # ignored: not b's row
        assert claim_row(store, row.id, 1, first)
        clock.now += timedelta(seconds=61)  # a's lease runs out (a died mid-message)
        taken_c = lease_rows(store, Lease("host-c:3:cc", 60, True, clock), due, 50)
        assert {r.id for r in taken_c} == {r.id for r in taken_a} | {r.id for r in taken_b}
        assert not claim_row(store, row.id, 2, first)  # a is back too late: c holds it now
        mark_row(store, row.id, first, "sent")
        with store.engine.connect() as conn:
            status, holder = conn.execute(
                sa.select(outbox_table.c.status, outbox_table.c.claimed_by).where(
                    outbox_table.c.id == row.id
                )
            ).one()
        assert (status, holder) == ("sending", "host-c:3:cc")  # in doubt, c's to resend
    finally:
        store.close()


def test_an_unreachable_database_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """The run lock is the first thing to reach the database: a server that is down is a
    state error naming the URL (password masked), never an internal error."""
    folder = make_host(tmp_path, "host-a", "postgresql+psycopg://u:s3cret@127.0.0.1:1/db")
    code, out, err = finish(syndicate(folder, "run", "--once"))
    assert code == 1 and out == ""
    assert err.startswith(
        "syndicate: error: cannot take the run lock in the state database "
        "postgresql+psycopg://u:***@127.0.0.1:1/db"
    ), err
    assert "s3cret" not in err and "internal error" not in err
