"""The newsletter end to end through the CLI: which posts a digest holds and when they are
used up, `send` publishing first, the newsletter switched off, the web archive surviving a
kill -9, and unsubscribe URLs."""

from __future__ import annotations

import email
import email.policy
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from syndicate.config import parse_config

from .conftest import SITE_CONFIG, Result, Site, isolated_seeds_config, post

SECRET = "test-secret-0123456789abcdef"  # noqa: S105 - a test key
FROM = "newsletter:\n  from: 'Test Site <news@blog.syndicate.test>'\n"
SEED_TITLES = (
    "AI in Cancer Treatment: 2025 Breakthroughs",
    "Generative AI's Impact on Personalized Medicine: A Brave New World?",
)


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNDICATE_SECRET", SECRET)


def cli(invoke: Callable[..., Result], config: Path, *args: str) -> Result:
    return invoke(*args, "--config", config, cwd=config.parent)


def send(invoke: Callable[..., Result], config: Path, now: str, *extra: str) -> Result:
    return cli(invoke, config, "send", "--now", now, *extra)


def run_once(invoke: Callable[..., Result], config: Path, now: str) -> Result:
    return cli(invoke, config, "run", "--once", "--now", now)


def outbox(folder: Path) -> list[EmailMessage]:
    box = folder / "outbox"
    if not box.exists():
        return []
    messages = []
    for path in sorted(box.iterdir()):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def rows(folder: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(folder / "state" / "syndicate.db") as db:
        return db.execute(sql).fetchall()


# --- what a digest holds, and when its posts are used up (issue 9, items 5 and 6) ----------


@pytest.mark.slow
def test_the_quickstart_leaves_the_first_digest_for_the_first_reader(
    invoke: Callable[..., Result], tmp_path: Path
) -> None:
    """`make run` with nobody subscribed records no digest and archives nothing; the first
    reader added afterwards gets the posts that entered the feeds at the quickstart."""
    config = isolated_seeds_config(tmp_path / "site")
    site = config.parent
    quickstart = run_once(invoke, config, "2025-09-01T09:00:00Z")  # a Monday after 08:00
    assert quickstart.exit_code == 0, quickstart.stderr
    assert quickstart.stdout.count("published: ") == 5
    assert not (site / "public" / "newsletter").exists()
    assert rows(site, "select count(*) from digests") == [(0,)]

    assert cli(invoke, config, "subscribers", "add", "reader@example.org").exit_code == 0
    first = send(invoke, config, "2025-09-01T10:00:00Z")
    assert first.exit_code == 0, first.stderr
    assert "queued for 1 subscribers" in first.stdout and "sent 1" in first.stdout
    [message] = outbox(site)
    assert message["Subject"] == "Syndicate Sample Blog: 5 new posts"
    for title in SEED_TITLES:
        assert title in html_of(message)
    assert send(invoke, config, "2025-09-01T11:00:00Z").stdout == "nothing to send\n"


@pytest.mark.slow
def test_a_digest_nobody_follows_waits_for_a_reader(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(SITE_CONFIG + FROM)
    site.write_post("py.md", post("Python news", "2025-08-30", tags="[python]", description="d"))
    cli(invoke, site.config, "subscribers", "add", "go@example.org", "--topic", "go")
    waiting = send(invoke, site.config, "2025-09-01T09:00:00Z")
    assert waiting.exit_code == 0, waiting.stderr
    assert waiting.stdout.splitlines() == [
        "published: Python news <https://blog.syndicate.test/posts/python-news/>",
        "nothing to send: no active subscriber follows the 1 new post; "
        "they wait for the next digest",
    ]
    assert rows(site.root, "select count(*) from digests") == [(0,)]
    assert not (site.public / "newsletter").exists()

    cli(invoke, site.config, "subscribers", "add", "py@example.org", "--topic", "python")
    later = send(invoke, site.config, "2025-09-03T09:00:00Z")
    assert "queued for 1 subscribers" in later.stdout
    assert [m["To"] for m in outbox(site.root)] == ["py@example.org"]


@pytest.mark.slow
def test_a_slot_with_nobody_to_send_to_is_spent_the_posts_wait_for_the_next_one(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """A digest nobody receives uses up no post, but it uses up its slot: the digest
    goes out at the next `schedule.newsletter` slot, not at the next 15-minute cycle."""
    site.set_config(SITE_CONFIG + FROM + "schedule:\n  newsletter: '0 8 * * mon'\n")
    cli(invoke, site.config, "subscribers", "add", "py@example.org", "--topic", "python")
    site.write_post("rs.md", post("Rust news", "2025-08-30", tags="[rust]", description="d"))
    monday = run_once(invoke, site.config, "2025-09-01T09:00:00Z")
    assert monday.stdout.startswith("published: Rust news") and "queued" not in monday.stdout
    site.write_post("py.md", post("Python news", "2025-09-03", tags="[python]", description="d"))
    wednesday = run_once(invoke, site.config, "2025-09-03T09:00:00Z")
    assert wednesday.stdout.startswith("published: Python news")
    assert "queued" not in wednesday.stdout  # not before the next slot
    assert outbox(site.root) == []
    next_monday = run_once(invoke, site.config, "2025-09-08T08:15:00Z")
    assert "queued for 1 subscribers" in next_monday.stdout
    [message] = outbox(site.root)
    assert "Python news" in html_of(message) and "Rust news" not in html_of(message)


@pytest.mark.slow
def test_send_publishes_first_and_back_dated_posts_reach_the_next_digest(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """A digest holds what entered the feeds since the previous one, whatever the posts'
    own dates; `send` publishes (feeds, state, `published:` lines) before planning."""
    site.set_config(SITE_CONFIG + FROM + "schedule:\n  newsletter: null\n")
    site.write_post("a.md", post("A", "2025-08-30", description="d"))
    cli(invoke, site.config, "subscribers", "add", "r@example.org")

    first = send(invoke, site.config, "2025-09-01T09:00:00Z")
    assert first.exit_code == 0, first.stderr
    assert first.stdout.splitlines()[0] == "published: A <https://blog.syndicate.test/posts/a/>"
    assert "A" in (site.public / "feed.xml").read_text()
    assert rows(site.root, "select kind, outcome from runs") == [("send", "ok")]

    # added after the digest, dated before it; no run in between: `send` alone sees it
    site.write_post("b.md", post("B", "2025-08-01", description="d"))
    second = send(invoke, site.config, "2025-09-08T09:00:00Z")
    assert second.stdout.splitlines()[0] == "published: B <https://blog.syndicate.test/posts/b/>"
    assert "queued for 1 subscribers" in second.stdout

    # back-dated again, this time published by a run days before the send
    site.write_post("c.md", post("C", "2025-07-01", description="d"))
    assert run_once(invoke, site.config, "2025-09-10T00:00:00Z").stdout.startswith("published: C")
    third = send(invoke, site.config, "2025-09-15T09:00:00Z")
    assert "queued for 1 subscribers" in third.stdout

    announced = [re.findall(r"Read more: (\S+)", text_of(m)) for m in outbox(site.root)]
    assert announced == [[f"https://blog.syndicate.test/posts/{p}/"] for p in "abc"]
    # nothing is ever announced twice
    assert send(invoke, site.config, "2025-09-22T09:00:00Z").stdout == "nothing to send\n"


def test_full_content_is_html_in_the_email_and_the_web_archive(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(SITE_CONFIG + FROM + "  full_content: true\n")
    body = "Fish & chips.\n\n## Part two\n\nMore <b>bold</b> words."
    site.write_post("a.md", post("A & B", "2025-08-30", description="d", body=body))
    cli(invoke, site.config, "subscribers", "add", "r@example.org")
    assert "sent 1" in send(invoke, site.config, "2025-09-01T09:00:00Z").stdout
    [message] = outbox(site.root)
    page = view_in_browser_page(site, message)
    for html in (html_of(message), page.read_text()):
        assert "&lt;p&gt;" not in html and "&lt;h2" not in html and "&lt;b&gt;" not in html
        assert re.search(r"<p[^>]*>Fish &amp; chips\.</p>", html)
        assert re.search(r"<h2[^>]*>Part two</h2>", html)
        assert ">A &amp; B</a>" in html and "&amp;amp;" not in html


def test_preview_shows_what_send_would_publish_without_recording_it(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(SITE_CONFIG + FROM)
    site.write_post("old.md", post("Old", "2025-06-01", description="d"))
    result = cli(invoke, site.config, "digest", "--preview", "--now", "2025-09-01T09:00:00Z")
    assert result.exit_code == 0, result.stderr
    assert "Old" in (site.public / "newsletter" / "preview.html").read_text()
    assert not (site.public / "feed.xml").exists()  # nothing published ...
    assert rows(site.root, "select count(*) from posts") == [(0,)]  # ... or recorded
    assert rows(site.root, "select count(*) from runs") == [(0,)]


def test_dry_run_publishes_and_records_nothing(site: Site, invoke: Callable[..., Result]) -> None:
    site.set_config(SITE_CONFIG + FROM)
    site.write_post("a.md", post("A", "2025-08-30", description="d"))
    cli(invoke, site.config, "subscribers", "add", "r@example.org")
    result = send(invoke, site.config, "2025-09-01T09:00:00Z", "--dry-run")
    assert result.stdout.startswith("would send 'Test Site: 1 new post' to 1 subscribers")
    assert not site.public.exists()
    assert rows(site.root, "select count(*) from posts") == [(0,)]
    assert outbox(site.root) == []


# --- newsletter.enabled and schedule.newsletter: null (issue 9, item 7) ----------------------


def test_a_newsletter_that_is_off_sends_and_archives_nothing(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(SITE_CONFIG + FROM + "  enabled: false\n")
    site.write_post("a.md", post("A", "2025-08-30", description="d"))
    (site.public / "newsletter").mkdir(parents=True)
    old_page = site.public / "newsletter" / "2025-01-01-old.html"
    old_page.write_text("an old digest")  # linked from mail already sent: left alone
    cli(invoke, site.config, "subscribers", "add", "r@example.org")

    ran = run_once(invoke, site.config, "2025-09-01T09:00:00Z")  # the Monday slot has come
    assert ran.exit_code == 0, ran.stderr
    assert ran.stdout == "published: A <https://blog.syndicate.test/posts/a/>\n"
    refused = send(invoke, site.config, "2025-09-01T10:00:00Z")
    assert refused.exit_code == 2
    assert "the newsletter is off (newsletter.enabled: false)" in refused.stderr
    assert "hint: set newsletter.enabled: true" in refused.stderr
    preview = cli(invoke, site.config, "digest", "--preview", "--now", "2025-09-01T10:00:00Z")
    assert preview.exit_code == 2
    assert sorted(p.name for p in (site.public / "newsletter").iterdir()) == [old_page.name]
    assert rows(site.root, "select count(*) from digests") == [(0,)]
    assert outbox(site.root) == []
    status = cli(invoke, site.config, "status", "--now", "2025-09-01T10:00:00Z")
    assert "newsletter:" not in status.stdout


def test_schedule_newsletter_null_means_no_scheduled_digest(
    site: Site, invoke: Callable[..., Result]
) -> None:
    default = parse_config(SITE_CONFIG, site.config).schedule.newsletter
    assert default == "0 8 * * mon"  # left out: the default; written out as null: off
    site.set_config(SITE_CONFIG + FROM + "schedule:\n  newsletter: null\n")
    assert parse_config(site.config.read_text(), site.config).schedule.newsletter is None
    site.write_post("a.md", post("A", "2025-08-30", description="d"))
    cli(invoke, site.config, "subscribers", "add", "r@example.org")
    for now in ("2025-09-01T09:00:00Z", "2025-09-01T12:00:00Z"):  # a Monday after 08:00
        assert "queued" not in run_once(invoke, site.config, now).stdout
    assert outbox(site.root) == []
    status = cli(invoke, site.config, "status", "--now", "2025-09-01T12:00:00Z")
    assert "newsletter:" not in status.stdout
    sent = send(invoke, site.config, "2025-09-01T13:00:00Z")  # by hand it still works
    assert "sent 1" in sent.stdout


# --- the web archive survives a kill -9 (issue 10, item 7) ---------------------------------


def send_process(site: Site, now: str, crash_at: str | None = None) -> int:
    env = {**os.environ, "SYNDICATE_SECRET": SECRET}
    env.pop("SYNDICATE_TEST_CRASH_AT", None)
    if crash_at:
        env["SYNDICATE_TEST_CRASH_AT"] = crash_at
    done = subprocess.run(
        [sys.executable, "-m", "syndicate", "send", "--now", now],
        cwd=site.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode


def view_in_browser_page(site: Site, message: EmailMessage) -> Path:
    """The file behind the email's "view in browser" link."""
    match = re.search(r'href="([^"]+)"[^>]*>View this email in your browser', html_of(message))
    assert match, "no view-in-browser link"
    url = match[1]
    assert url.startswith("https://blog.syndicate.test/newsletter/")
    return site.public / url.removeprefix("https://blog.syndicate.test/")


@pytest.mark.slow
@pytest.mark.parametrize("crash_at", ["archive-page-written", "digest-queued"])
def test_kill_9_while_queueing_never_leaves_a_mail_linking_to_a_missing_page(
    site: Site, invoke: Callable[..., Result], crash_at: str
) -> None:
    site.set_config(SITE_CONFIG + FROM)
    site.write_post("a.md", post("A", "2025-08-30", description="d"))
    cli(invoke, site.config, "subscribers", "add", "r@example.org")
    assert send_process(site, "2025-09-01T09:00:00Z", crash_at) == -9
    # the page came first: whatever was queued has its page
    keys = [k for (k,) in rows(site.root, "select key from digests")]
    for key in keys:
        assert (site.public / "newsletter" / f"{key}.html").exists()
    assert send_process(site, "2025-09-01T09:05:00Z") == 0
    [message] = outbox(site.root)
    page = view_in_browser_page(site, message)
    assert page.exists() and ">A</a>" in page.read_text()
    index = (site.public / "newsletter" / "index.html").read_text()
    assert page.name in index


@pytest.mark.slow
def test_send_restores_a_lost_archive_page_and_its_index_entry(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """kill -9 after queueing but before the index, then the page lost too (the output
    folder wiped, or a digest queued by an older release that wrote the page last)."""
    site.set_config(SITE_CONFIG + FROM)
    site.write_post("a.md", post("A", "2025-08-30", description="d"))
    cli(invoke, site.config, "subscribers", "add", "r@example.org")
    assert send_process(site, "2025-09-01T09:00:00Z", "digest-queued") == -9
    [(key,)] = rows(site.root, "select key from digests")
    (site.public / "newsletter" / f"{key}.html").unlink()
    again = send(invoke, site.config, "2025-09-01T09:05:00Z")
    assert again.exit_code == 0, again.stderr
    assert f"note: restored the archive page of digest {key}" in again.stdout
    [message] = outbox(site.root)
    page = view_in_browser_page(site, message)
    assert page.exists() and ">A</a>" in page.read_text()
    assert "token=" not in page.read_text()  # the public copy, not a subscriber's
    assert page.name in (site.public / "newsletter" / "index.html").read_text()
    page.unlink()  # any later send puts it back
    send(invoke, site.config, "2025-09-02T09:00:00Z")
    assert page.exists()


# --- unsubscribe URLs (issue 9, item 11) ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://news.example.org/unsubscribe", True),
        ("http://localhost:8080/unsubscribe", True),
        ("http://127.0.0.1:8080/unsubscribe", True),
        ("http://[::1]:8080/unsubscribe", True),
        ("http://news.example.org/unsubscribe", False),
        ("http://127.example.org/unsubscribe", False),
    ],
)
def test_an_http_unsubscribe_url_is_a_config_error_off_loopback(
    site: Site, invoke: Callable[..., Result], url: str, ok: bool
) -> None:
    site.set_config(SITE_CONFIG + FROM + f"  unsubscribe_url: '{url}'\n")
    result = cli(invoke, site.config, "build")
    if ok:
        assert result.exit_code == 0, result.stderr
        return
    assert result.exit_code == 2
    line = SITE_CONFIG.count("\n") + 3
    assert result.stderr.splitlines() == [
        f"{site.config}:{line}: error: newsletter.unsubscribe_url: must be https (RFC 8058 "
        f"one-click unsubscribe), got '{url}'",
        "  hint: use an https:// address; plain http only works on localhost or 127.0.0.1, "
        "for testing",
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https://:8443/unsubscribe",  # no host at all
        "https://news.example.org:99999/unsubscribe",  # no such port
        "http://evil.example\\\\@localhost/unsubscribe",  # browsers: host evil.example
        "https://news.example.org/u\\r\\nBcc: victim@example.org",  # header injection
        "https://news.example.org/u>, <https://evil.example/",  # ends List-Unsubscribe's <>
        "https://news.example.org/un subscribe",
    ],
)
def test_a_malformed_unsubscribe_url_is_a_config_error(
    site: Site, invoke: Callable[..., Result], url: str
) -> None:
    """What urlsplit accepts is not always a URL: no host, a bad port, a backslash, line
    breaks (urlsplit drops them silently), spaces or angle brackets are refused at once."""
    site.set_config(SITE_CONFIG + FROM + f'  unsubscribe_url: "{url}"\n')
    result = cli(invoke, site.config, "build")
    assert result.exit_code == 2, result.stderr
    assert "error: newsletter.unsubscribe_url: must be an absolute http(s) URL" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_an_http_site_url_needs_an_https_unsubscribe_url_once_there_is_a_reader(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(SITE_CONFIG.replace("https://blog", "http://blog") + FROM)
    site.write_post("a.md", post("A", "2025-08-30", description="d"))
    assert cli(invoke, site.config, "build").exit_code == 0  # feeds alone are fine on http
    assert send(invoke, site.config, "2025-09-01T09:00:00Z").exit_code == 0  # nobody to send to
    cli(invoke, site.config, "subscribers", "add", "r@example.org")
    site.write_post("b.md", post("B", "2025-08-31", description="d"))
    refused = send(invoke, site.config, "2025-09-01T10:00:00Z")
    assert (refused.exit_code, refused.stdout) == (2, "")  # refused before publishing B
    assert (
        "error: newsletter.unsubscribe_url: defaults to 'http://blog.syndicate.test/unsubscribe' "
        "(from site.url), but one-click unsubscribe (RFC 8058) needs https" in refused.stderr
    )
    assert "hint: set newsletter.unsubscribe_url to an https:// address" in refused.stderr
    assert outbox(site.root) == []
    site.set_config(
        site.config.read_text() + "  unsubscribe_url: 'https://blog.syndicate.test/unsubscribe'\n"
    )
    assert "sent 1" in send(invoke, site.config, "2025-09-01T11:00:00Z").stdout


@pytest.mark.parametrize("mailbox", [None, "unsubscribe@blog.syndicate.test"])
def test_list_unsubscribe_has_a_mailto_only_for_a_mailbox_that_is_read(
    site: Site, invoke: Callable[..., Result], mailbox: str | None
) -> None:
    extra = f"  unsubscribe_mailto: '{mailbox}'\n" if mailbox else ""
    site.set_config(SITE_CONFIG + FROM + extra)
    site.write_post("a.md", post("A", "2025-08-30", description="d"))
    cli(invoke, site.config, "subscribers", "add", "r@example.org")
    assert "sent 1" in send(invoke, site.config, "2025-09-01T09:00:00Z").stdout
    [message] = outbox(site.root)
    links = [link.strip(" <>") for link in message["List-Unsubscribe"].split(",")]
    assert links[0].startswith("https://blog.syndicate.test/unsubscribe?token=")
    token = links[0].split("token=")[1]
    if mailbox is None:
        assert links == [links[0]]  # the From address reads nothing: no mailto
    else:
        assert links[1] == f"mailto:{mailbox}?subject=unsubscribe%20{token}"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_unsubscribe_mailto_must_be_an_address(site: Site, invoke: Callable[..., Result]) -> None:
    site.set_config(SITE_CONFIG + FROM + "  unsubscribe_mailto: 'Unsub <u@x.test>'\n")
    result = cli(invoke, site.config, "build")
    assert result.exit_code == 2
    assert "newsletter.unsubscribe_mailto: must be a plain email address" in result.stderr
    assert "hint: the mailbox your bounce processor reads" in result.stderr


# --- mail hygiene (issue 9, item 10) ---------------------------------------------------------

# Hits that no message written locally can avoid, so the test allows exactly these:
# NO_RECEIVED and NO_RELAYS (informational, score 0): the file transport writes the message
# before any MTA, so it has no Received headers and no relay chain; HTML_MESSAGE
# (informational, score 0): fires on every message that has a text/html part at all.
INHERENT_HITS = {"NO_RECEIVED", "NO_RELAYS", "HTML_MESSAGE"}


def spamassassin_hits(message: Path, home: Path) -> set[str]:
    """Debian's SpamAssassin, offline (-L: local tests only), on one message file."""
    done = subprocess.run(
        ["spamassassin", "-t", "-L"],
        input=message.read_bytes(),
        capture_output=True,
        timeout=120,
        check=False,
        env={**os.environ, "HOME": str(home)},  # its user_prefs go there, not in ~root
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    checked = email.message_from_bytes(done.stdout, policy=email.policy.default)
    status = " ".join(str(checked["X-Spam-Status"]).split())
    match = re.search(r"\btests=(\S*)", status)
    assert match, status
    return {hit for hit in match[1].split(",") if hit and hit != "none"}


@pytest.mark.slow
def test_spamassassin_finds_no_html_mime_or_header_problem_in_the_seed_digest(
    invoke: Callable[..., Result], tmp_path: Path
) -> None:
    config = isolated_seeds_config(tmp_path / "site")
    cli(invoke, config, "subscribers", "add", "reader@example.org", "--name", "A Reader")
    assert "sent 1" in send(invoke, config, "2025-09-01T09:00:00Z").stdout
    [path] = (config.parent / "outbox").iterdir()
    hits = spamassassin_hits(path, tmp_path)
    assert hits - INHERENT_HITS == set()


@pytest.mark.slow
def test_spamassassin_does_see_low_contrast_text(tmp_path: Path) -> None:
    """The check above is only worth something if it can fail: white-on-grey text (the
    old preheader) is reported."""
    message = tmp_path / "contrast.eml"
    message.write_bytes(
        b"From: a@blog.syndicate.test\r\nTo: b@example.org\r\nSubject: x\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b'<html><body style="background-color:#f3f4f6"><div style="color:#ffffff">'
        b"hidden words for the preview line</div><p>Hello there, reader.</p></body></html>\r\n"
    )
    assert "HTML_FONT_LOW_CONTRAST" in spamassassin_hits(message, tmp_path)
