"""`syndicate bounces` end to end (issue #13, item 4): a Maildir of real bounces (Postfix's,
tests/fixtures/bounces/), a complaint and an unsubscribe request, read through the CLI:
who becomes bounced or unsubscribed, that reading again changes nothing, that a run
killed mid-mailbox counts nothing twice, and that nothing is ever deleted."""

from __future__ import annotations

import mailbox
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from syndicate.state.schema import bounce_reports_table, subscribers_table
from syndicate.state.store import Store

from .conftest import SITE_CONFIG, Result, Site
from .test_bounces import (
    FIXTURE_MAILTO,
    FIXTURE_RETURN_PATH,
    FIXTURE_SECRET,
    FIXTURES,
    complaint_about,
)

# The subscribers the fixtures' VERP and unsubscribe tokens name (fixtures/bounces/README.md).
SUBSCRIBERS = {
    7: "nosuchuser@syndicate.test",  # postfix-unknown-user: hard 5.1.1
    8: "full@syndicate.test",  # postfix-mailbox-full: soft 5.2.2
    9: "reader@slow.test",  # postfix-delayed: soft 4.4.1
    10: "someone@reject.test",  # postfix-remote-550: hard 5.1.1
    11: "reader@syndicate.test",  # unsubscribe-request, with its signed token
    12: "complainer@syndicate.test",  # the complaint about digest 3 (VERP names 12)
    13: "bystander@syndicate.test",  # nothing comes back for them
}
FILES = (
    "postfix-unknown-user.eml",
    "postfix-mailbox-full.eml",
    "postfix-delayed.eml",
    "postfix-remote-550.eml",
    "unsubscribe-request.eml",
    "reply-not-a-bounce.eml",
    "postfix-delivered-dsn.eml",
    "flufl-exim_01.eml",  # a real bounce for an address not on our list
)


def bounce_site(site: Site) -> Site:
    site.set_config(
        SITE_CONFIG
        + "newsletter:\n  from: 'Syndicate Fixtures <newsletter@syndicate.test>'\n"
        + f"  unsubscribe_mailto: '{FIXTURE_MAILTO}'\n"
        + f"delivery:\n  return_path: '{FIXTURE_RETURN_PATH}'\n"
        + "bounces:\n  maildir: bounces\n"
    )
    store = Store(f"sqlite:///{site.root / 'state' / 'syndicate.db'}")
    created = datetime(2025, 8, 1, tzinfo=UTC)
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(subscribers_table),
            [
                {"id": n, "email": a, "email_key": a, "status": "active", "created_at": created}
                for n, a in SUBSCRIBERS.items()
            ],
        )
    store.close()
    box = mailbox.Maildir(site.root / "bounces", create=True)
    for name in FILES:
        box.add((FIXTURES / name).read_bytes())
    box.add(complaint_about((FIXTURES / "postfix-delivered-digest.eml").read_bytes()))
    return site


def statuses(site: Site) -> dict[str, str]:
    store = Store(f"sqlite:///{site.root / 'state' / 'syndicate.db'}")
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(subscribers_table.c.email, subscribers_table.c.status))
            return dict(rows.all())
    finally:
        store.close()


def mailbox_files(site: Site) -> list[str]:
    return sorted(p.name for sub in ("new", "cur") for p in (site.root / "bounces" / sub).iterdir())


@pytest.fixture
def bounces(
    invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    monkeypatch.setenv("SYNDICATE_SECRET", FIXTURE_SECRET.decode())

    def run(site: Site, *args: str, now: str = "2025-09-01T10:00:00Z") -> Result:
        return invoke("bounces", "--config", site.config, "--now", now, *args, cwd=site.root)

    return run


@pytest.mark.slow
def test_bounces_complaints_and_requests_change_the_right_subscribers(
    site: Site, bounces: Callable[..., Result], invoke: Callable[..., Result]
) -> None:
    bounce_site(site)
    before = mailbox_files(site)
    result = bounces(site)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "bounced: nosuchuser@syndicate.test (5.1.1" in out
    assert "bounced: someone@reject.test (5.1.1" in out
    assert "soft bounce 1 of 3: full@syndicate.test (5.2.2" in out
    assert "soft bounce 1 of 3: reader@slow.test (4.4.1" in out
    assert "unsubscribed: reader@syndicate.test (asked by email)" in out
    assert "unsubscribed: complainer@syndicate.test (a spam complaint)" in out
    assert out.rstrip().endswith(
        f"maildir:{site.root / 'bounces'}: 9 messages, 9 new: 2 bounced, 2 unsubscribed, "
        "2 not reports"
    )
    # left for a human: the reply and the success notice; the exim bounce is nobody's
    assert result.stderr.count("not a bounce, complaint or unsubscribe request") == 2
    assert "not on the list" in result.stderr
    assert statuses(site) == {
        "nosuchuser@syndicate.test": "bounced",
        "someone@reject.test": "bounced",
        "full@syndicate.test": "active",
        "reader@slow.test": "active",
        "reader@syndicate.test": "unsubscribed",
        "complainer@syndicate.test": "unsubscribed",
        "bystander@syndicate.test": "active",
    }
    assert mailbox_files(site) == before  # nothing deleted, moved or renamed

    again = bounces(site, now="2025-09-02T10:00:00Z")
    assert again.exit_code == 0 and again.stderr == ""
    assert again.stdout.strip().endswith(
        "9 messages, 0 new: 0 bounced, 0 unsubscribed, 0 not reports"
    )

    status = invoke(
        "status", "--config", site.config, "--now", "2025-09-02T11:00:00Z", cwd=site.root
    )
    assert "bounces: last read 2025-09-02 10:00 UTC from maildir:" in status.stdout
    assert ", ok: 9 messages, 0 new: 0 bounced" in status.stdout


def soft_report(n: int) -> bytes:
    """The real mailbox-full bounce, as the n-th of its kind (its own Message-ID)."""
    data = (FIXTURES / "postfix-mailbox-full.eml").read_bytes()
    head, sep, body = data.partition(b"\n\n")
    lines = [line for line in head.split(b"\n") if not line.lower().startswith(b"message-id:")]
    return b"\n".join([*lines, f"Message-ID: <soft-{n}@mx.syndicate.test>".encode()]) + sep + body


def test_three_soft_bounces_in_30_days_make_a_subscriber_bounced(
    site: Site, bounces: Callable[..., Result]
) -> None:
    bounce_site(site)
    shutil.rmtree(site.root / "bounces")
    box = mailbox.Maildir(site.root / "bounces", create=True)
    box.add(soft_report(1))
    first = bounces(site, now="2025-08-01T10:00:00Z")
    assert "soft bounce 1 of 3: full@syndicate.test" in first.stdout
    box.add(soft_report(2))
    second = bounces(site, now="2025-09-10T10:00:00Z")  # 40 days on: the first no longer counts
    assert "soft bounce 1 of 3: full@syndicate.test" in second.stdout
    box.add(soft_report(3))
    box.add(soft_report(4))
    third = bounces(site, now="2025-09-20T10:00:00Z")
    assert "soft bounce 2 of 3: full@syndicate.test" in third.stdout
    assert (
        "bounced: full@syndicate.test (3 soft bounces in 30 days; the last: 5.2.2" in third.stdout
    )
    assert statuses(site)["full@syndicate.test"] == "bounced"


@pytest.mark.slow
def test_a_run_killed_mid_mailbox_counts_nothing_twice(site: Site) -> None:
    """kill -9 right after the first report is recorded; the next run does the rest, and
    the first report (and what it did) is not done again."""
    bounce_site(site)
    env = {**os.environ, "SYNDICATE_SECRET": FIXTURE_SECRET.decode()}
    args = [sys.executable, "-m", "syndicate", "bounces", "--now", "2025-09-01T10:00:00Z"]
    killed = subprocess.run(
        args, cwd=site.root, env={**env, "SYNDICATE_TEST_CRASH_AT": "bounce-recorded"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert killed.returncode == -9
    rest = subprocess.run(
        args, cwd=site.root, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert rest.returncode == 0, rest.stderr
    assert ": 9 messages, 8 new: " in rest.stdout  # the first was done, and only once
    store = Store(f"sqlite:///{site.root / 'state' / 'syndicate.db'}")
    try:
        with store.engine.connect() as conn:
            recorded = conn.execute(
                sa.select(sa.func.count()).select_from(bounce_reports_table)
            ).scalar()
    finally:
        store.close()
    assert recorded == 9  # each message once
    assert statuses(site)["nosuchuser@syndicate.test"] == "bounced"
    assert statuses(site)["someone@reject.test"] == "bounced"


def test_no_mailbox_is_a_usage_error(site: Site, bounces: Callable[..., Result]) -> None:
    result = bounces(site)
    assert result.exit_code == 2
    assert "no bounce mailbox: pass --maildir, --mbox or --imap" in result.stderr


def test_a_missing_maildir_is_an_error_with_a_hint(
    site: Site, bounces: Callable[..., Result]
) -> None:
    result = bounces(site, "--maildir", str(site.root / "nowhere"))
    assert result.exit_code == 1
    assert "not a Maildir" in result.stderr and "Traceback" not in result.stderr


def test_an_mbox_given_on_the_command_line_is_read(
    site: Site, bounces: Callable[..., Result]
) -> None:
    bounce_site(site)
    box = mailbox.mbox(site.root / "bounces.mbox")
    box.add((FIXTURES / "postfix-unknown-user.eml").read_bytes())
    box.close()
    result = bounces(site, "--mbox", str(site.root / "bounces.mbox"))
    assert result.exit_code == 0, result.stderr
    assert "bounced: nosuchuser@syndicate.test" in result.stdout
    assert "1 message, 1 new: 1 bounced" in result.stdout


def test_the_daemon_reads_the_bounce_mailbox_on_its_schedule(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syndicate.config import load_config
    from syndicate.runs.schedule import Daemon, next_fire_times

    monkeypatch.setenv("SYNDICATE_SECRET", FIXTURE_SECRET.decode())
    bounce_site(site)
    site.set_config(site.config.read_text("utf-8") + "schedule:\n  bounces: '*/30 * * * *'\n")
    config = load_config(site.config)
    now = datetime(2025, 9, 1, 10, 5, tzinfo=UTC)
    assert next_fire_times(config, now)["bounces"] == datetime(2025, 9, 1, 10, 30, tzinfo=UTC)
    daemon = Daemon(config, clock=lambda: now)
    try:
        daemon.read_bounces()  # what the scheduler's job calls
    finally:
        daemon.store.close()
    assert statuses(site)["nosuchuser@syndicate.test"] == "bounced"
    assert statuses(site)["complainer@syndicate.test"] == "unsubscribed"


def test_a_password_in_the_imap_url_is_refused_before_anything_is_read(
    site: Site, bounces: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNDICATE_IMAP_PASSWORD", raising=False)
    result = bounces(site, "--imap", "imaps://u:s3cret@127.0.0.1:1/INBOX")
    assert result.exit_code == 1
    assert "the IMAP URL holds a password" in result.stderr and "s3cret" not in result.stderr
