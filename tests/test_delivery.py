"""Subscribers and delivery against a real SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from syndicate.config import parse_config
from syndicate.delivery.transport import FileTransport, SMTPTransport
from syndicate.errors import DigestExistsError, TokenError
from syndicate.newsletter.compose import MessageTemplate, header_value
from syndicate.newsletter.tokens import sign_token, verify_token
from syndicate.state.digests import queue_digest
from syndicate.state.store import Store

from .conftest import SITE_CONFIG, Result, Site, post, run_subprocess
from .kill_scenario import wait_for_group_gone
from .smtp_sink import Sink, SinkHandler
from .test_postgres import pg_url  # noqa: F401 - the PostgreSQL fixture, for state_url

SECRET = "test-secret-0123456789abcdef"  # noqa: S105 - a test key
NOW = "2025-09-01T09:00:00Z"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNDICATE_SECRET", SECRET)


def smtp_config(port: int, security: str = "none", extra: str = "") -> str:
    return (
        SITE_CONFIG
        + "newsletter:\n  from: 'Test Site <news@blog.syndicate.test>'\n  postal_address: '1 Test Road'\n"
        + "delivery:\n  transport: smtp\n  retry_base_seconds: 60\n  max_attempts: 3\n"
        + f"  smtp:\n    host: 127.0.0.1\n    port: {port}\n    security: {security}\n"
        + "    connections: 2\n    rate_per_second: 0\n    timeout: 10\n"
        + extra
    )


def mail_site(site: Site, port: int, security: str = "none", extra: str = "") -> Site:
    site.set_config(smtp_config(port, security, extra))
    site.write_post(
        "python.md", post("Python news", "2025-08-30", tags="[python]", description="About Python.")
    )
    site.write_post(
        "rust.md", post("Rust news", "2025-08-31", tags="[rust]", description="About Rust.")
    )
    return site


def subscribe(
    invoke: Callable[..., Result], site: Site, *addresses: str, topic: str | None = None
) -> None:
    for address in addresses:
        args = ["subscribers", "add", address, "--config", site.config]
        if topic:
            args += ["--topic", topic]
        result = invoke(*args)
        assert result.exit_code == 0, result.stderr


def send(invoke: Callable[..., Result], site: Site, now: str = NOW, *extra: str) -> Result:
    return invoke("send", "--config", site.config, "--now", now, *extra, cwd=site.root)


def db(site: Site) -> sqlite3.Connection:
    return sqlite3.connect(site.root / "state" / "syndicate.db")


# --- subscribers ------------------------------------------------------------------------


def test_add_list_remove_with_normalised_unique_addresses(
    site: Site, invoke: Callable[..., Result]
) -> None:
    assert (
        invoke(
            "subscribers", "add", "Ada@Example.ORG", "--name", "Ada", "--config", site.config
        ).stdout
        == "added Ada@example.org (active)\n"
    )
    again = invoke("subscribers", "add", "ada@example.org", "--config", site.config)
    assert again.exit_code == 0 and "already a subscriber" in again.stderr
    bad = invoke("subscribers", "add", "not-an-address", "--config", site.config)
    assert bad.exit_code == 2 and "must have an @-sign" in bad.stderr
    invoke(
        "subscribers",
        "add",
        "bob@example.org",
        "--topic",
        "python",
        "--topic",
        "Rust",
        "--pending",
        "--config",
        site.config,
    )
    listed = invoke("subscribers", "list", "--config", site.config)
    assert listed.stdout.splitlines() == [
        "Ada@example.org\tactive\tAda\teverything",
        "bob@example.org\tpending\t\tpython, Rust",
    ]
    assert invoke(
        "subscribers", "list", "--status", "pending", "--config", site.config
    ).stdout.startswith("bob@")
    assert (
        invoke("subscribers", "remove", "ADA@example.org", "--config", site.config).exit_code == 0
    )
    missing = invoke("subscribers", "remove", "nobody@example.org", "--config", site.config)
    assert missing.exit_code == 1 and "is not a subscriber" in missing.stderr


def test_import_skips_bad_rows_with_line_numbers_and_is_idempotent(
    site: Site, invoke: Callable[..., Result], tmp_path: Path
) -> None:
    csv_file = tmp_path / "list.csv"
    csv_file.write_text(
        "email,name,topics,status\n"
        'ada@example.org,Ada,"python, rust",active\n'
        "not an address,Bad,,\n"
        "bob@example.org,Bob,,unsubscribed\n"
        "ADA@example.org,Ada again,,\n"
        "carol@example.org,Carol,,sleeping\n"
        "dave@example.org,,,\n"
    )
    first = invoke("subscribers", "import", csv_file, "--config", site.config)
    assert first.exit_code == 1
    assert first.stdout == "3 added, 0 updated, 0 unchanged, 3 rejected\n"
    errors = first.stderr.splitlines()
    assert errors[0].startswith(f"{csv_file}:3: error: invalid address 'not an address'")
    assert errors[1].startswith(f"{csv_file}:5: error: ADA@example.org already appears on line 2")
    assert errors[2].startswith(f"{csv_file}:6: error: unknown status 'sleeping'")
    before = invoke("subscribers", "export", "-", "--config", site.config).stdout
    second = invoke("subscribers", "import", csv_file, "--config", site.config)
    assert second.stdout == "0 added, 0 updated, 3 unchanged, 3 rejected\n"
    assert invoke("subscribers", "export", "-", "--config", site.config).stdout == before
    assert before.splitlines() == [
        "email,name,topics,status",
        'ada@example.org,Ada,"python, rust",active',
        "bob@example.org,Bob,,unsubscribed",
        "dave@example.org,,,active",
    ]
    # the export imports back to the same list, and never re-activates an unsubscribe
    exported = tmp_path / "export.csv"
    invoke("subscribers", "export", exported, "--config", site.config)
    exported.write_text(exported.read_text().replace("unsubscribed", "active"))
    invoke("subscribers", "import", exported, "--config", site.config)
    assert (
        "bob@example.org\tunsubscribed"
        in invoke("subscribers", "list", "--config", site.config).stdout
    )


# --- sending over SMTP --------------------------------------------------------------------


@pytest.mark.slow
def test_each_subscriber_gets_the_posts_they_follow_with_list_headers(
    site: Site, invoke: Callable[..., Result]
) -> None:
    with Sink() as sink:
        mail_site(site, sink.port)
        subscribe(invoke, site, "all@example.org")
        subscribe(invoke, site, "py@example.org", topic="python")
        subscribe(invoke, site, "go@example.org", topic="go")  # follows nothing new: no mail
        result = send(invoke, site)
        assert result.exit_code == 0, result.stderr
        assert "queued for 2 subscribers (2 versions)" in result.stdout
        assert "sent 2, deferred 0, bounced 0, failed 0" in result.stdout
        received = {item.recipients[0]: item.message for item in sink.handler.received}
    assert set(received) == {"all@example.org", "py@example.org"}
    everything, python = received["all@example.org"], received["py@example.org"]
    assert everything["Subject"] == "Test Site: 2 new posts"
    assert python["Subject"] == "Test Site: 1 new post"
    assert "Rust news" not in python.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for address, message in received.items():
        assert message["From"] == "Test Site <news@blog.syndicate.test>"
        assert message["To"] == address
        assert message["Date"]
        assert message["List-Id"] == "Test Site <newsletter.blog.syndicate.test>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message.get_content_type() == "multipart/alternative"
        # no mailto: nothing reads the From mailbox (newsletter.unsubscribe_mailto unset)
        https = message["List-Unsubscribe"].strip(" <>")
        assert https.startswith("https://blog.syndicate.test/unsubscribe?token=")
        token = https.split("token=")[1]
        subscriber_id = verify_token(SECRET.encode(), token, address, "unsubscribe")
        assert subscriber_id > 0
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert https in text and https in html  # the same link, visible in the body
    ids = {m["Message-ID"] for m in received.values()}
    assert len(ids) == 2


@pytest.mark.slow
def test_a_digest_is_queued_once_and_never_sent_twice(
    site: Site, invoke: Callable[..., Result]
) -> None:
    with Sink() as sink:
        mail_site(site, sink.port)
        subscribe(invoke, site, "a@example.org", "b@example.org")
        assert send(invoke, site).exit_code == 0
        again = send(invoke, site, "2025-09-01T10:00:00Z")
        assert again.exit_code == 0 and again.stdout == "nothing to send\n"
        assert sink.handler.by_recipient() == {"a@example.org": 1, "b@example.org": 1}
    connection = db(site)
    assert connection.execute("select count(*) from digests").fetchone() == (1,)
    assert connection.execute("select status, count(*) from outbox group by status").fetchall() == [
        ("sent", 2)
    ]


def test_the_same_posts_cannot_make_a_second_digest(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    now = datetime(2025, 9, 1, tzinfo=UTC)
    fields = {
        "key": "k",
        "posts_hash": "h",
        "since": now,
        "until": now,
        "subject": "s",
        "post_sources": ["a"],
        "archive_url": "u",
        "bodies": [],
        "recipients": [],
        "now": now,
    }
    queue_digest(store, **fields)  # type: ignore[arg-type]
    with pytest.raises(DigestExistsError):
        queue_digest(store, **{**fields, "key": "k2"})  # type: ignore[arg-type]


@pytest.mark.slow
def test_451_is_deferred_and_retried_550_bounces_and_suppresses(
    site: Site, invoke: Callable[..., Result]
) -> None:
    handler = SinkHandler(tempfail={"later@example.org"}, reject={"gone@example.org"})
    with Sink(handler) as sink:
        mail_site(site, sink.port)
        subscribe(invoke, site, "ok@example.org", "later@example.org", "gone@example.org")
        first = send(invoke, site)
        assert first.exit_code == 1  # something is left deferred
        assert "sent 1, deferred 1, bounced 1, failed 0" in first.stdout
        assert (
            "deferred: later@example.org: 451 4.3.0 Mailbox busy, try again later (retry in 60s)"
            in first.stderr
        )
        assert "bounced: gone@example.org: 550 5.1.1 No such user here" in first.stderr
        assert (
            "gone@example.org\tbounced"
            in invoke("subscribers", "list", "--config", site.config).stdout
        )
        assert "1 deferred, next retry at 2025-09-01 09:01:00 UTC" in first.stdout
        # before the back-off has passed nothing is retried, and send says what waits
        waiting = send(invoke, site, "2025-09-01T09:00:30Z")
        assert waiting.stdout == "1 deferred, next retry at 2025-09-01 09:01:00 UTC\n"
        assert waiting.exit_code == 1
        handler.tempfail.clear()
        retried = send(invoke, site, "2025-09-01T09:01:01Z")
        assert retried.exit_code == 0, retried.stderr
        assert "sent 1, deferred 0" in retried.stdout
        assert sink.handler.by_recipient() == {"ok@example.org": 1, "later@example.org": 1}


@pytest.mark.slow
def test_a_4xx_gives_up_after_max_attempts(site: Site, invoke: Callable[..., Result]) -> None:
    handler = SinkHandler(tempfail={"later@example.org"})
    with Sink(handler) as sink:
        mail_site(site, sink.port)
        subscribe(invoke, site, "later@example.org")
        assert "deferred 1" in send(invoke, site, "2025-09-01T09:00:00Z").stdout
        assert (
            "deferred 1" in send(invoke, site, "2025-09-01T10:00:00Z").stdout
        )  # attempt 2, back-off 120 s
        third = send(invoke, site, "2025-09-01T11:00:00Z")
        assert third.exit_code == 1
        assert (
            "failed: later@example.org: 451 4.3.0 Mailbox busy, try again later (gave up after 3 attempts)"
            in third.stderr
        )
        assert send(invoke, site, "2025-09-02T11:00:00Z").stdout == "nothing to send\n"


@pytest.mark.slow
def test_a_dropped_connection_is_retried_and_nobody_gets_two(
    site: Site, invoke: Callable[..., Result]
) -> None:
    handler = SinkHandler(drop_after=3)
    addresses = [f"r{n}@example.org" for n in range(8)]
    with Sink(handler) as sink:
        mail_site(site, sink.port)
        subscribe(invoke, site, *addresses)
        first = send(invoke, site)
        assert "sent 7, deferred 1" in first.stdout
        assert "connection lost" in first.stderr
        send(invoke, site, "2025-09-01T09:05:00Z")
        assert sink.handler.by_recipient() == dict.fromkeys(addresses, 1)


# --- TLS and AUTH ------------------------------------------------------------------------


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[trustme.CA, Path]]:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    yield ca, ca_file


def server_context(ca: trustme.CA) -> object:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.mark.slow
def test_starttls_with_auth_delivers(
    site: Site,
    invoke: Callable[..., Result],
    tls: tuple[trustme.CA, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca, ca_file = tls
    monkeypatch.setenv("SYNDICATE_SMTP_PASSWORD", "hunter2")
    with Sink(
        tls_context=server_context(ca), credentials=("mailer", "hunter2"), require_starttls=True
    ) as sink:  # type: ignore[arg-type]
        mail_site(site, sink.port, "starttls", f"    username: mailer\n    ca_file: {ca_file}\n")
        subscribe(invoke, site, "a@example.org")
        result = send(invoke, site)
        assert result.exit_code == 0, result.stderr
        assert sink.handler.by_recipient() == {"a@example.org": 1}
    assert "hunter2" not in (site.config.read_text() + result.stdout + result.stderr)


@pytest.mark.slow
def test_wrong_password_stops_delivery_and_keeps_the_queue(
    site: Site,
    invoke: Callable[..., Result],
    tls: tuple[trustme.CA, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca, ca_file = tls
    monkeypatch.setenv("SYNDICATE_SMTP_PASSWORD", "wrong")
    with Sink(
        tls_context=server_context(ca), credentials=("mailer", "hunter2"), require_starttls=True
    ) as sink:  # type: ignore[arg-type]
        mail_site(site, sink.port, "starttls", f"    username: mailer\n    ca_file: {ca_file}\n")
        subscribe(invoke, site, "a@example.org")
        result = send(invoke, site)
        assert result.exit_code == 1
        assert "refused the login for mailer: 535" in result.stderr
        assert "wrong" not in result.stderr
        # what was queued is said even though nothing could be sent
        assert "digest 'Test Site: 2 new posts': queued for 1 subscribers" in result.stdout
        assert sink.handler.received == []
    assert db(site).execute("select status from outbox").fetchall() == [("queued",)]


@pytest.mark.slow
def test_untrusted_certificate_is_refused(
    site: Site, invoke: Callable[..., Result], tls: tuple[trustme.CA, Path]
) -> None:
    ca, _ = tls
    with Sink(tls_context=server_context(ca), require_starttls=True) as sink:  # type: ignore[arg-type]
        mail_site(site, sink.port, "starttls")  # no ca_file: the system store does not know this CA
        subscribe(invoke, site, "a@example.org")
        result = send(invoke, site)
        assert result.exit_code == 1
        assert "TLS certificate of 127.0.0.1" in result.stderr and "not trusted" in result.stderr
        assert sink.handler.received == []
        assert "digest 'Test Site: 2 new posts': queued for 1 subscribers" in result.stdout
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_missing_starttls_is_an_error_not_a_downgrade(
    site: Site, invoke: Callable[..., Result]
) -> None:
    with Sink() as sink:  # a server without STARTTLS
        mail_site(site, sink.port, "starttls")
        subscribe(invoke, site, "a@example.org")
        result = send(invoke, site)
        assert result.exit_code == 1
        assert "does not offer STARTTLS" in result.stderr
        assert sink.handler.received == []


def test_missing_secret_queues_nothing(
    site: Site, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNDICATE_SECRET")
    with Sink() as sink:
        mail_site(site, sink.port)
        subscribe(invoke, site, "a@example.org")
        result = send(invoke, site)
        assert result.exit_code == 1
        assert "SYNDICATE_SECRET is not set" in result.stderr
    assert db(site).execute("select count(*) from digests").fetchone() == (0,)


def test_dry_run_sends_and_queues_nothing(site: Site, invoke: Callable[..., Result]) -> None:
    with Sink() as sink:
        mail_site(site, sink.port)
        subscribe(invoke, site, "a@example.org")
        result = send(invoke, site, NOW, "--dry-run")
        assert result.stdout.startswith(
            "would send 'Test Site: 2 new posts' to 1 subscribers (1 version)"
        )
        assert sink.handler.received == []
    assert db(site).execute("select count(*) from digests").fetchone() == (0,)


# --- crash safety -------------------------------------------------------------------------


SEND_ARGS = [sys.executable, "-m", "syndicate", "send", "--now", NOW]


def send_env() -> dict[str, str]:
    return {**os.environ, "SYNDICATE_SECRET": SECRET}


def start_send(site: Site) -> subprocess.Popen[str]:
    """`syndicate send` as a real process in its own process group, so a test can kill
    the run alone (its pid) or together with its forked sender (the group)."""
    return subprocess.Popen(
        SEND_ARGS,
        cwd=site.root,
        env=send_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def rerun_send(site: Site) -> subprocess.CompletedProcess[str]:
    """The next `send` after a kill, run to the end."""
    return subprocess.run(
        SEND_ARGS,
        cwd=site.root,
        env=send_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_kill_9_mid_send_then_rerun_delivers_each_exactly_once(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """The whole process group (the run and its sender) is killed while the server holds
    message 5 before its answer: the one in-doubt row. One connection, so no other message
    can be between its 250 and our commit (that window, one message per connection, is the
    documented ambiguity)."""
    handler = SinkHandler(pause_at=5)
    addresses = [f"k{n:02d}@example.org" for n in range(12)]
    with Sink(handler) as sink:
        mail_site(site, sink.port)
        site.set_config(site.config.read_text().replace("connections: 2", "connections: 1"))
        subscribe(invoke, site, *addresses)
        victim = start_send(site)
        assert handler.paused.wait(60), "the sender never reached message 5"
        os.killpg(victim.pid, signal.SIGKILL)  # mid-DATA of message 5: the run and its sender
        victim.wait()
        wait_for_group_gone(victim.pid)
        handler.release.set()
        in_doubt = (
            db(site).execute("select count(*) from outbox where status = 'sending'").fetchone()
        )
        assert in_doubt is not None and in_doubt[0] >= 1
        rerun = rerun_send(site)
        assert rerun.returncode == 0, rerun.stderr
        assert sink.handler.by_recipient() == dict.fromkeys(addresses, 1)
    assert db(site).execute("select status, count(*) from outbox group by status").fetchall() == [
        ("sent", 12)
    ]


@pytest.mark.slow
def test_kill_9_after_the_servers_250_before_the_commit_resends_once_with_the_same_id(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """The server said 250 but our `sent` commit never happened: the test holds the state
    database's write lock from before the 250 until after the whole process group (the run
    and its sender) is killed. The next run resends
    the in-doubt rows: at most one duplicate per connection, each with the Message-ID of
    its first copy, and nobody is left out."""
    handler = SinkHandler(pause_at=5, pause_answer="250 2.0.0 Message accepted")
    addresses = [f"k{n:02d}@example.org" for n in range(12)]
    with Sink(handler) as sink:
        mail_site(site, sink.port)  # two connections
        subscribe(invoke, site, *addresses)
        victim = start_send(site)
        assert handler.paused.wait(60), "the sender never reached message 5"
        blocker = sqlite3.connect(site.root / "state" / "syndicate.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # every commit of the sender now waits
        accepted = len(handler.received)
        handler.release.set()  # the server accepts message 5 and answers 250
        deadline = time.monotonic() + 30
        while len(handler.received) <= accepted and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # the 250 reaches the sender, whose `sent` commit is now blocked
        os.killpg(victim.pid, signal.SIGKILL)  # the run and its sender
        victim.wait()
        wait_for_group_gone(victim.pid)
        blocker.execute("ROLLBACK")
        blocker.close()
        in_doubt = db(site).execute("select email from outbox where status = 'sending'").fetchall()
        held = handler.received[accepted].recipients[0]
        assert (held,) in in_doubt  # accepted by the server, not recorded as sent
        rerun = rerun_send(site)
        assert rerun.returncode == 0, rerun.stderr
        counts = sink.handler.by_recipient()
        copies: dict[str, set[str]] = {}
        for item in sink.handler.received:
            copies.setdefault(item.recipients[0], set()).add(item.message["Message-ID"])
    assert set(counts) == set(addresses)  # nothing lost
    duplicated = {address: n for address, n in counts.items() if n > 1}
    assert duplicated[held] == 2
    assert sum(n - 1 for n in duplicated.values()) <= 2  # at most one per connection
    assert all(len(ids) == 1 for ids in copies.values())  # a resend keeps its Message-ID


@pytest.mark.slow
def test_kill_9_of_the_run_lets_its_sender_finish_the_message_and_the_rerun_waits(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """kill -9 of the `send` pid while the server holds message 5: the forked sender finishes
    that transaction (reads the 250, commits `sent`) and starts no other; the next run,
    started at once, waits for it instead of resending the row it left `sending`."""
    handler = SinkHandler(pause_at=5, pause_answer="250 2.0.0 Message accepted")
    addresses = [f"k{n:02d}@example.org" for n in range(12)]
    with Sink(handler) as sink:
        mail_site(site, sink.port)  # two connections
        subscribe(invoke, site, *addresses)
        victim = start_send(site)
        assert handler.paused.wait(60), "the sender never reached message 5"
        victim.send_signal(signal.SIGKILL)  # the run only: its sender lives on
        victim.wait()
        held = len(handler.received)
        rerun = start_send(site)
        time.sleep(0.5)  # the rerun is waiting for the sender's delivery lock by now
        handler.release.set()  # the server accepts message 5: 250
        _out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err
        wait_for_group_gone(victim.pid)
        assert sink.handler.by_recipient() == dict.fromkeys(addresses, 1)  # no duplicate
        assert held < len(addresses)  # the kill did land mid-send
    assert db(site).execute("select status, count(*) from outbox group by status").fetchall() == [
        ("sent", 12)
    ]


@pytest.mark.slow
def test_ctrl_c_stops_the_send_and_the_sender_records_what_it_finished(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """SIGINT to the whole process group (Ctrl-C): the run exits ("interrupted", 130) while
    its sender finishes the messages in flight and records them `sent`, even though the run
    closed its own database connections meanwhile; the rerun sends the rest, nobody twice."""
    handler = SinkHandler(slow=0.2)  # 4 s for all: the run's exit (~0.5 s) stops it midway
    addresses = [f"c{n:02d}@example.org" for n in range(40)]
    with Sink(handler) as sink:
        mail_site(site, sink.port)  # two connections
        subscribe(invoke, site, *addresses)
        victim = start_send(site)
        deadline = time.monotonic() + 60
        while len(handler.received) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(victim.pid, signal.SIGINT)
        _out, err = victim.communicate(timeout=60)
        assert victim.returncode == 130 and "interrupted" in err
        wait_for_group_gone(victim.pid)
        accepted = {item.recipients[0] for item in handler.received}
        assert len(accepted) < len(addresses)  # stopped mid-send
        rows = dict(db(site).execute("select email, status from outbox").fetchall())
        assert {rows[address] for address in accepted} == {"sent"}  # finished and recorded
        assert "sending" not in rows.values()
        rerun = rerun_send(site)
        assert rerun.returncode == 0, rerun.stderr
        assert sink.handler.by_recipient() == dict.fromkeys(addresses, 1)


@pytest.mark.slow
def test_repeated_kill_9_of_the_run_unthrottled_loses_nothing_and_repeats_almost_nothing(
    tmp_path: Path,
) -> None:
    """A smaller run of bench/kill.py: 300 messages over 4 connections as fast as the
    server takes them, the `send` pid killed 4 times at random moments and restarted at
    once: nothing lost, at most 2 duplicates in all (the orphaned sender finishes what
    was in flight; the next run waits for it)."""
    from .kill_scenario import run_scenario

    outcome = run_scenario(tmp_path / "kill", messages=300, kills=4, connections=4, rate=0)
    assert outcome.lost == 0 and outcome.delivered == 300
    assert outcome.duplicated <= 2
    assert outcome.same_message_id


@pytest.mark.slow
def test_repeated_kill_9_of_the_process_group_loses_nothing(tmp_path: Path) -> None:
    """The same with the whole process group killed (the run and its sender): nothing lost,
    at most one duplicate per connection per kill, each with its first copy's Message-ID."""
    from .kill_scenario import run_scenario

    outcome = run_scenario(
        tmp_path / "kill", messages=300, kills=4, connections=4, rate=0, group=True
    )
    assert outcome.lost == 0 and outcome.delivered == 300
    assert all(kill.in_doubt <= 4 and kill.duplicates <= 4 for kill in outcome.kills)
    assert outcome.duplicated <= 4 * 4
    assert outcome.same_message_id


# --- message bytes -------------------------------------------------------------------------


def test_file_transport_writes_the_bytes_smtp_carries(site: Site, tmp_path: Path) -> None:
    with Sink() as sink:
        config = parse_config(smtp_config(sink.port), site.config)
        template = MessageTemplate(
            config,
            "2025-09-01-x",
            "Subject é",
            "<p>Hi __syndicate_token__</p>",
            "Hi __syndicate_token__\n",
            datetime(2025, 9, 1, tzinfo=UTC),
        )
        prepared = template.render(7, "a@example.org", "Ada Ö", "7.unsubscribe.abc")
        smtp = SMTPTransport(config).connect()
        smtp.send(prepared.sender, prepared.recipient, prepared.data)
        smtp.close()
        FileTransport(tmp_path / "outbox").connect().send(
            prepared.sender, prepared.recipient, prepared.data
        )
        over_the_wire = sink.handler.received[0].data
    [written] = (tmp_path / "outbox").iterdir()
    assert written.read_bytes() == prepared.data == over_the_wire
    message = sink.handler.received[0].message
    assert message["Subject"] == "Subject é" and message["To"] == "Ada Ö <a@example.org>"
    assert (
        message.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Hi 7.unsubscribe.abc\n"
    )  # type: ignore[union-attr]


def test_nothing_from_a_post_or_subscriber_can_add_a_header(site: Site) -> None:
    config = parse_config(SITE_CONFIG, site.config)
    assert (
        header_value("Subject", "Hi\r\nBcc: victim@x.test") == b"Subject: Hi Bcc: victim@x.test\r\n"
    )
    template = MessageTemplate(
        config, "k", "Evil\r\nBcc: x@x.test", "<p>x</p>", "x", datetime(2025, 9, 1, tzinfo=UTC)
    )
    data = template.render(1, "a@example.org", "Eve\r\nBcc: y@x.test", "t").data
    head = data.split(b"\r\n\r\n", 1)[0]
    assert not [line for line in head.split(b"\r\n") if line.lower().startswith(b"bcc")]


@pytest.mark.slow
def test_dkim_signature_verifies(site: Site, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    site.set_config(
        SITE_CONFIG
        + f"newsletter:\n  from: 'T <news@blog.syndicate.test>'\ndelivery:\n  transport: file\n  dkim: {{selector: s1, domain: blog.syndicate.test, key_file: {key_file}}}\n"
    )
    site.write_post("a.md", post("A", "2025-08-31", description="d"))
    from click.testing import CliRunner

    from syndicate.cli import cli

    runner = CliRunner()
    runner.invoke(cli, ["subscribers", "add", "a@example.org", "--config", str(site.config)])
    result = runner.invoke(cli, ["send", "--config", str(site.config), "--now", NOW])
    assert result.exit_code == 0, result.output
    [message] = (site.root / "outbox").iterdir()
    data = message.read_bytes()
    assert data.startswith(b"DKIM-Signature:")

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.blog.syndicate.test."
        return record

    assert dkim.verify(data, dnsfunc=dns)
    assert not dkim.verify(data.replace(b"Subject: T", b"Subject: X"), dnsfunc=dns)


def test_tokens_cannot_be_forged_or_reused(site: Site) -> None:
    secret = SECRET.encode()
    token = sign_token(secret, 42, "Ada@Example.org", "unsubscribe")
    assert verify_token(secret, token, "ada@example.org", "unsubscribe") == 42
    with pytest.raises(TokenError):
        verify_token(secret, token, "bob@example.org", "unsubscribe")  # another address
    with pytest.raises(TokenError):
        verify_token(secret, token.replace("42.", "43.", 1), "ada@example.org", "unsubscribe")
    with pytest.raises(TokenError):
        verify_token(secret, token.replace("unsubscribe", "confirm"), "ada@example.org", "confirm")
    with pytest.raises(TokenError):
        verify_token(b"another-secret-0123456789", token, "ada@example.org", "unsubscribe")
    with pytest.raises(TokenError):
        verify_token(secret, "garbage", "ada@example.org", "unsubscribe")


# --- the scheduler sends at schedule.newsletter ----------------------------------------------


@pytest.mark.slow
def test_run_once_sends_the_digest_at_the_newsletter_slot(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(
        SITE_CONFIG
        + "newsletter:\n  from: 'T <news@blog.syndicate.test>'\nschedule:\n  newsletter: '0 8 * * mon'\n"
    )
    site.write_post("a.md", post("A", "2025-08-30", description="d"))
    subscribe(invoke, site, "a@example.org")
    # Monday 2025-09-01 07:00: the week's slot (08:00) has not come; last week's did
    first = invoke(
        "run", "--once", "--config", site.config, "--now", "2025-09-01T07:00:00Z", cwd=site.root
    )
    assert first.exit_code == 0, first.stderr
    assert "queued for 1 subscribers" in first.stdout and "sent 1" in first.stdout
    quiet = invoke(
        "run", "--once", "--config", site.config, "--now", "2025-09-01T07:30:00Z", cwd=site.root
    )
    assert quiet.stdout == ""
    site.write_post("b.md", post("B", "2025-09-01T07:45:00Z", description="d"))
    before_slot = invoke(
        "run", "--once", "--config", site.config, "--now", "2025-09-01T07:50:00Z", cwd=site.root
    )
    assert before_slot.stdout == "published: B <https://blog.syndicate.test/posts/b/>\n"
    at_slot = invoke(
        "run", "--once", "--config", site.config, "--now", "2025-09-01T08:00:00Z", cwd=site.root
    )
    assert "queued for 1 subscribers" in at_slot.stdout
    assert len(list((site.root / "outbox").iterdir())) == 2
    assert (site.public / "newsletter" / "index.html").exists()


# --- regressions found in review ------------------------------------------------------------


@pytest.mark.slow
def test_a_non_ascii_address_fails_alone_and_the_others_get_their_mail(
    site: Site, invoke: Callable[..., Result]
) -> None:
    with Sink() as sink:  # aiosmtpd without SMTPUTF8
        mail_site(site, sink.port)
        site.set_config(site.config.read_text().replace("connections: 2", "connections: 1"))
        subscribe(invoke, site, "a@example.org", "jörg@example.org", "z@example.org")
        result = send(invoke, site)
        assert result.exit_code == 1
        assert "sent 2, deferred 0, bounced 0, failed 1" in result.stdout
        assert "failed: jörg@example.org: the server does not offer SMTPUTF8" in result.stderr
        assert "Traceback" not in result.stderr
        assert sink.handler.by_recipient() == {"a@example.org": 1, "z@example.org": 1}
    assert (
        "jörg@example.org\tactive" in invoke("subscribers", "list", "--config", site.config).stdout
    )


@pytest.mark.slow
def test_a_non_ascii_address_is_written_by_the_file_transport(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(SITE_CONFIG + "newsletter:\n  from: 'Test Site <news@blog.syndicate.test>'\n")
    site.write_post("a.md", post("A", "2025-08-31", description="d"))
    invoke("subscribers", "add", "jörg@example.org", "--name", "Jörg", "--config", site.config)
    result = send(invoke, site)
    assert result.exit_code == 0, result.stderr
    [path] = (site.root / "outbox").iterdir()
    message = email_message(path.read_bytes())
    assert message["To"].addresses[0].addr_spec == "jörg@example.org"
    assert message["To"].addresses[0].display_name == "Jörg"


def email_message(data: bytes):  # type: ignore[no-untyped-def]
    import email
    import email.policy

    # RFC 6532 headers are raw UTF-8: parse the message as text, as a UTF-8 MTA would
    return email.message_from_string(data.decode("utf-8"), policy=email.policy.default)


@pytest.mark.slow
def test_nobody_gets_mail_after_unsubscribing_even_if_it_was_deferred(
    site: Site, invoke: Callable[..., Result]
) -> None:
    from syndicate.config import load_config
    from syndicate.state.subscribers import find_subscriber, set_status

    handler = SinkHandler(tempfail={"later@example.org"})
    with Sink(handler) as sink:
        mail_site(site, sink.port)
        subscribe(invoke, site, "later@example.org")
        assert "deferred 1" in send(invoke, site).stdout
        store = Store(load_config(site.config).state_url)
        found = find_subscriber(store, "later@example.org")
        assert found is not None
        set_status(store, found.id, "unsubscribed", datetime(2025, 9, 1, 9, 0, 30, tzinfo=UTC))
        handler.tempfail.clear()
        retry = send(invoke, site, "2025-09-01T10:00:00Z")
        assert retry.exit_code == 0 and retry.stdout == "nothing to send\n"
        assert sink.handler.received == []
    assert db(site).execute("select status from outbox").fetchall() == [("cancelled",)]
    assert db(site).execute("select status from digests").fetchall() == [("sent",)]


def test_a_non_ascii_site_title_keeps_the_from_address(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(
        SITE_CONFIG.replace('title: "Test Site"', 'title: "Café Ünïcode"').replace(
            "author@", "editor@"
        )
    )
    site.write_post("a.md", post("A", "2025-08-31", description="d"))
    subscribe(invoke, site, "a@example.org")
    assert send(invoke, site).exit_code == 0
    [path] = (site.root / "outbox").iterdir()
    message = email_message(path.read_bytes())
    sender = message["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Café Ünïcode", "editor@blog.syndicate.test")
    assert message["List-Id"] == "Café Ünïcode <newsletter.blog.syndicate.test>"


@pytest.mark.slow
def test_a_post_is_never_announced_in_two_digests(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(
        SITE_CONFIG
        + "newsletter:\n  from: 'T <news@blog.syndicate.test>'\n  first_lookback_days: 30\n"
    )
    site.write_post("a.md", post("A", "2025-08-30", description="d"))
    site.write_post("b.md", post("B", "2025-08-31", description="d"))
    subscribe(invoke, site, "a@example.org")
    assert "sent 1" in send(invoke, site, "2025-09-01T08:00:00Z").stdout  # before any run saw them
    invoke("run", "--once", "--config", site.config, "--now", "2025-09-01T08:01:00Z", cwd=site.root)
    later = send(invoke, site, "2025-09-08T08:00:00Z")
    assert later.stdout == "nothing to send\n"
    assert len(list((site.root / "outbox").iterdir())) == 1


def test_the_database_password_is_never_printed() -> None:
    from syndicate.errors import StateError

    with pytest.raises(StateError) as caught:
        Store("postgresql+psycopg://mailer:S3cret-pw@127.0.0.1:1/syndicate")
    assert "S3cret-pw" not in caught.value.message and "***" in caught.value.message


# --- one composer: previews, confirmations, DKIM, EHLO ----------------------------------------


def dkim_key(tmp_path: Path) -> tuple[Path, Callable[..., bytes]]:
    """A fresh RSA key on disk, and a dnsfunc answering its DKIM record (no DNS here)."""
    import base64

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.blog.syndicate.test."
        return record

    return key_file, dns


def header_names(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    return [line.split(":", 1)[0].lower() for line in head.split("\r\n") if line[:1] not in " \t"]


def with_header(data: bytes, line: bytes) -> bytes:
    """The message with one more header line after the signed ones (as a forger would)."""
    head, body = data.split(b"\r\n\r\n", 1)
    return head + b"\r\n" + line + b"\r\n\r\n" + body


@pytest.mark.slow
def test_every_message_is_signed_and_an_added_header_breaks_the_signature(
    site: Site, invoke: Callable[..., Result], tmp_path: Path
) -> None:
    """Digests, their preview and the confirmation email all carry a DKIM signature that
    verifies; h= names Reply-To, and From, To, Subject and the List-* headers are
    oversigned, so a second one added after signing fails verification."""
    from syndicate.config import load_config
    from syndicate.newsletter.compose import compose_confirmation
    from syndicate.newsletter.render import render_confirmation

    key_file, dns = dkim_key(tmp_path)
    site.set_config(
        SITE_CONFIG
        + "newsletter:\n  from: 'T <news@blog.syndicate.test>'\n  reply_to: 'Ed <ed@blog.syndicate.test>'\n"
        + f"delivery:\n  transport: file\n  dkim: {{selector: s1, domain: blog.syndicate.test, key_file: {key_file}}}\n"
    )
    site.write_post("a.md", post("A", "2025-08-31", description="d"))
    subscribe(invoke, site, "a@example.org")
    out = tmp_path / "preview"
    preview = invoke(
        "digest", "--preview", "--config", site.config, "--now", NOW, "--out", out, cwd=site.root
    )
    assert preview.exit_code == 0, preview.stderr
    assert send(invoke, site).exit_code == 0
    [sent] = (site.root / "outbox").iterdir()
    data = sent.read_bytes()
    assert dkim.verify(data, dnsfunc=dns)
    signature = data.split(b"\r\n\r\n", 1)[0].split(b"; h=", 1)[1].split(b";", 1)[0]
    signed = [h.strip().lower() for h in signature.replace(b"\r\n", b"").split(b":")]
    assert b"reply-to" in signed
    for name in (b"from", b"to", b"subject", b"list-id", b"list-unsubscribe"):
        assert signed.count(name) == 2, name  # oversigned
    for forged in (
        b"From: Mallory <m@evil.test>",
        b"To: victim@example.org",
        b"Subject: Urgent",
        b"List-Unsubscribe: <https://evil.test/x>",
        b"Reply-To: m@evil.test",
    ):
        assert not dkim.verify(with_header(data, forged), dnsfunc=dns), forged
    # the preview is signed the same way
    assert dkim.verify((out / "newsletter" / "preview.eml").read_bytes(), dnsfunc=dns)
    # and so is the confirmation email serve sends
    config = load_config(site.config)
    confirmation = compose_confirmation(
        config,
        render_confirmation(config, "https://blog.syndicate.test/confirm?token=t"),
        "new@example.org",
        "New",
        datetime(2025, 9, 1, tzinfo=UTC),
    )
    assert confirmation.data.startswith(b"DKIM-Signature:")
    assert dkim.verify(confirmation.data, dnsfunc=dns)
    assert not dkim.verify(with_header(confirmation.data, b"Subject: x"), dnsfunc=dns)
    assert "auto-submitted" in header_names(confirmation.data)
    assert "list-unsubscribe" not in header_names(confirmation.data)


@pytest.mark.slow
def test_the_preview_has_the_headers_of_a_sent_digest(
    site: Site, invoke: Callable[..., Result], tmp_path: Path
) -> None:
    site.set_config(
        SITE_CONFIG
        + "newsletter:\n  from: 'T <news@blog.syndicate.test>'\n  reply_to: 'ed@blog.syndicate.test'\n"
    )
    site.write_post("a.md", post("A", "2025-08-31", description="d"))
    subscribe(invoke, site, "a@example.org")
    out = tmp_path / "preview"
    preview = invoke(
        "digest", "--preview", "--config", site.config, "--now", NOW, "--out", out, cwd=site.root
    )
    assert preview.exit_code == 0, preview.stderr
    assert send(invoke, site).exit_code == 0
    [sent] = (site.root / "outbox").iterdir()
    previewed = (out / "newsletter" / "preview.eml").read_bytes()
    assert header_names(previewed) == header_names(sent.read_bytes())
    message = email_message(previewed)
    assert message["List-Id"] == "Test Site <newsletter.blog.syndicate.test>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "unsubscribe?token=preview" in message["List-Unsubscribe"]


@pytest.mark.slow
def test_ehlo_name_is_delivery_smtp_helo_else_this_machines_name(
    site: Site, invoke: Callable[..., Result]
) -> None:
    with Sink() as sink:
        mail_site(site, sink.port)
        subscribe(invoke, site, "a@example.org")
        assert send(invoke, site).exit_code == 0
        [first] = sink.handler.received
        assert not first.helo.startswith("[") and first.helo not in ("", "localhost")
        from syndicate.delivery.transport import default_helo

        assert first.helo == default_helo()
        site.set_config(smtp_config(sink.port, extra="    helo: mail.blog.syndicate.test\n"))
        site.write_post("b.md", post("B", "2025-09-01T10:00:00Z", description="d"))
        assert send(invoke, site, "2025-09-02T09:00:00Z").exit_code == 0
        assert sink.handler.received[-1].helo == "mail.blog.syndicate.test"
    site.set_config(smtp_config(1, extra="    helo: 'bad name!'\n"))
    bad = send(invoke, site)
    assert bad.exit_code == 2 and "delivery.smtp.helo" in bad.stderr


# --- internationalised domains ---------------------------------------------------------------


@pytest.mark.slow
def test_an_idn_domain_goes_as_its_a_label_to_a_server_without_smtputf8(
    site: Site, invoke: Callable[..., Result]
) -> None:
    with Sink() as sink:  # no SMTPUTF8
        mail_site(site, sink.port)
        subscribe(invoke, site, "user@exämple.org", "jörg@exämple.org")
        result = send(invoke, site)
        assert "sent 1, deferred 0, bounced 0, failed 1" in result.stdout
        assert (
            "failed: jörg@exämple.org: the server does not offer SMTPUTF8, needed for an address "
            "whose part before the @ is not ASCII" in result.stderr
        )
        [received] = sink.handler.received
    assert received.recipients == ["user@xn--exmple-cua.org"]
    assert received.message["To"] == "user@xn--exmple-cua.org"
    with Sink(smtputf8=True) as sink:  # a server with SMTPUTF8 takes the address as it is
        mail_site(site, sink.port)
        site.write_post("c.md", post("C", "2025-09-01T10:00:00Z", description="d"))
        assert send(invoke, site, "2025-09-02T09:00:00Z").exit_code == 0
        assert sorted(sink.handler.by_recipient()) == ["jörg@exämple.org", "user@exämple.org"]


# --- nothing is sent after an unsubscribe has returned -----------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, site: Site) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{site.root / 'state' / 'syndicate.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.mark.slow
def test_no_mail_after_an_unsubscribe_returns_even_mid_send(
    site: Site, invoke: Callable[..., Result], tmp_path: Path, state_url: str
) -> None:
    """A real `send` in a subprocess, one connection, held by the server at RCPT TO of
    m-inflight (its row claimed: the message is in flight). Meanwhile z-removed is removed
    with the CLI, y-imported is imported as unsubscribed, and m-inflight unsubscribes through
    the library call serve makes: that call returns only after its message was accepted,
    and the other two get nothing, though the send loaded its rows before they left."""
    import threading
    import time

    from syndicate.config import load_config
    from syndicate.state.subscribers import find_subscriber, set_status

    readers = [f"r{n:02d}@example.org" for n in range(6)]
    gone = ["y-imported@example.org", "z-removed@example.org"]
    handler = SinkHandler(hold_rcpt={"m-inflight@example.org"}, slow=0.01)
    with Sink(handler) as sink:
        mail_site(site, sink.port)
        site.set_config(
            site.config.read_text().replace("connections: 2", "connections: 1")
            + f"state:\n  url: '{state_url}'\n"
        )
        subscribe(invoke, site, *readers, "m-inflight@example.org", *gone)
        sender = start_send(site)
        assert handler.paused.wait(60), "the send never reached m-inflight"
        removed = run_subprocess(
            "subscribers", "remove", "z-removed@example.org", "--config", site.config
        )
        assert removed.exit_code == 0, removed.stderr
        csv_file = tmp_path / "gone.csv"
        csv_file.write_text("email,name,topics,status\ny-imported@example.org,,,unsubscribed\n")
        imported = run_subprocess("subscribers", "import", csv_file, "--config", site.config)
        assert imported.stdout == "0 added, 1 updated, 0 unchanged, 0 rejected\n"
        store = Store(load_config(site.config).state_url)
        found = find_subscriber(store, "m-inflight@example.org")
        assert found is not None
        returned: list[float] = []

        def unsubscribe() -> None:
            set_status(store, found.id, "unsubscribed", datetime.now(UTC))
            returned.append(time.monotonic())

        started = time.monotonic()
        worker = threading.Thread(target=unsubscribe)
        worker.start()
        time.sleep(0.3)  # the server holds the message in flight a while longer
        handler.release.set()
        worker.join(30)
        _, err = sender.communicate(timeout=60)
        assert sender.returncode == 0, err
        store.close()
    counts = sink.handler.by_recipient()
    assert counts == {**dict.fromkeys(readers, 1), "m-inflight@example.org": 1}
    [inflight] = [r for r in sink.handler.received if r.recipients == ["m-inflight@example.org"]]
    assert returned and inflight.accepted_at <= returned[0]
    assert returned[0] - started >= 0.25  # it waited for the message in flight


# --- per-destination throttling -----------------------------------------------------------

THROTTLED_GOOGLE = (
    "  domains:\n    default: {connections: 2}\n"
    "    google: {domains: [gmail.com, googlemail.com], connections: 1}\n"
    "  throttle_pause_seconds: 60\n"
)


@pytest.mark.parametrize("lease", ["", "  lease_batch: 2\n"], ids=["one-lease", "leases-of-2"])
@pytest.mark.slow
def test_a_throttled_domain_is_slowed_alone_and_its_group_with_it(
    site: Site, invoke: Callable[..., Result], lease: str
) -> None:
    """gmail.com's server answers 451 4.7.1 (a rate limit): Google's group (gmail.com and
    googlemail.com, one connection) pauses after that one answer and its other rows are
    deferred without being tried; every other domain is sent in the same run. Once the
    pause is over the next send delivers them, each exactly once. Rows leased two at a
    time keep the pause from one lease to the next."""
    google = [f"g{n}@gmail.com" for n in range(4)] + ["m0@googlemail.com", "m1@googlemail.com"]
    others = [f"o{n}@example.org" for n in range(4)] + [f"n{n}@example.net" for n in range(3)]
    handler = SinkHandler(domain_answers={"gmail.com": "451 4.7.1 Rate limited, try later"})
    with Sink(handler) as sink:
        mail_site(site, sink.port, extra=THROTTLED_GOOGLE + lease)
        subscribe(invoke, site, *google, *others)
        first = send(invoke, site)
        assert first.exit_code == 1
        assert "sent 7, deferred 6, bounced 0, failed 0" in first.stdout
        tried = [a for a in handler.rcpt_seen if a in google]
        assert tried == ["g0@gmail.com"]  # the one answer paused the whole group
        assert sink.handler.by_recipient() == dict.fromkeys(others, 1)
        assert (
            "deferred: g0@gmail.com: 451 4.7.1 Rate limited, try later (retry in 60s)"
            in first.stderr
        )
        held = [line for line in first.stderr.splitlines() if "not tried" in line]
        assert len(held) == 5
        assert all("google is throttled (451 4.7.1 Rate limited" in line for line in held)
        with db(site) as conn:
            rows = dict(
                conn.execute("SELECT email, attempts FROM outbox WHERE status = 'deferred'")
            )
        assert rows == {"g0@gmail.com": 1, **dict.fromkeys(google[1:], 0)}  # never tried: 0

        status = invoke("status", "--config", site.config, "--now", NOW, cwd=site.root)
        assert status.exit_code == 0, status.stderr
        assert "  gmail.com (google): 0 sent, 4 deferred, 0 bounced" in status.stdout
        assert "  googlemail.com (google): 0 sent, 2 deferred, 0 bounced" in status.stdout
        assert "  example.org: 4 sent, 0 deferred, 0 bounced" in status.stdout
        assert "  example.net: 3 sent, 0 deferred, 0 bounced" in status.stdout

        handler.domain_answers.clear()
        later = send(invoke, site, "2025-09-01T09:01:01Z")
        assert later.exit_code == 0, later.stderr
        assert "sent 6, deferred 0" in later.stdout
    assert sink.handler.by_recipient() == dict.fromkeys(google + others, 1)


@pytest.mark.slow
def test_a_421_slows_only_its_domain_and_other_deferrals_keep_their_schedule(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """yahoo.com answers 421 4.7.0 (throttled: one try, the rest held); busy@example.org
    gets an ordinary 451 4.3.0, deferred on today's schedule without slowing example.org."""
    yahoo = [f"y{n}@yahoo.com" for n in range(3)]
    others = [f"o{n}@example.org" for n in range(5)]
    handler = SinkHandler(
        domain_answers={"yahoo.com": "421 4.7.0 Too many messages, slow down"},
        tempfail={"busy@example.org"},
    )
    with Sink(handler) as sink:
        extra = "  domains: {yahoo.com: {connections: 1}}\n  throttle_pause_seconds: 60\n"
        mail_site(site, sink.port, extra=extra)
        subscribe(invoke, site, *yahoo, "busy@example.org", *others)
        first = send(invoke, site)
        assert "sent 5, deferred 4, bounced 0, failed 0" in first.stdout
        assert [a for a in handler.rcpt_seen if a in yahoo] == ["y0@yahoo.com"]
        assert (
            "deferred: busy@example.org: 451 4.3.0 Mailbox busy, try again later (retry in 60s)"
            in first.stderr
        )
        assert (
            sum("not tried: yahoo.com is throttled" in line for line in first.stderr.splitlines())
            == 2
        )
    assert sink.handler.by_recipient() == dict.fromkeys(others, 1)


@pytest.mark.slow
def test_connections_are_reused_from_one_lease_to_the_next(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """Rows come a lease at a time (here 3); the connections stay open across leases, so a
    big list costs one TLS handshake and login per connection, not per lease."""
    readers = [f"r{n}@example.org" for n in range(10)]
    with Sink() as sink:
        mail_site(site, sink.port, extra="  lease_batch: 3\n")
        subscribe(invoke, site, *readers)
        result = send(invoke, site)
        assert result.exit_code == 0, result.stderr
        assert "sent 10, deferred 0" in result.stdout
    assert sink.handler.by_recipient() == dict.fromkeys(readers, 1)
    assert 1 <= sink.handler.sessions <= 2  # delivery.smtp.connections: 2 in these tests
