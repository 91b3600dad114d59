"""Bounce processing, the parsing and mailbox half: VERP return paths, the report parser
on bounces made by real MTAs (tests/fixtures/bounces/README.md says how each was made),
and the Maildir and mbox readers."""

from __future__ import annotations

import email
import mailbox
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import pytest
import trustme

from syndicate.config import parse_config
from syndicate.delivery.bounces import (
    COMPLAINT,
    HARD,
    SOFT,
    UNSUBSCRIBE,
    BounceReport,
    parse_report,
    scan_mailbox,
)
from syndicate.delivery.mailboxes import (
    imap_password,
    parse_imap_url,
    read_imap,
    read_maildir,
    read_mbox,
)
from syndicate.delivery.verp import read_return_path, return_path_for
from syndicate.errors import ConfigError, SyndicateError, TokenError
from syndicate.newsletter.tokens import sign_bounce_token, sign_token, verify_bounce_token
from syndicate.newsletter.tokens import verify_token as verify_link_token

from .conftest import Result, Site
from .smtp_sink import Sink, free_port
from .test_delivery import SECRET, db, mail_site, send, subscribe

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bounces"
# What the postfix fixtures were made with (fixtures/bounces/README.md).
FIXTURE_SECRET = b"fixture-secret-not-for-production"
FIXTURE_RETURN_PATH = "bounces+{token}@syndicate.test"
FIXTURE_MAILTO = "unsubscribe@syndicate.test"
TEMPLATE = "bounces+{token}@example.org"
KEY = b"a-test-secret-of-enough-bytes"


def parse_fixture(name: str, mailto: str | None = FIXTURE_MAILTO) -> BounceReport | None:
    data = (FIXTURES / name).read_bytes()
    return parse_report(data, FIXTURE_RETURN_PATH, FIXTURE_SECRET, mailto)


# --- VERP return paths --------------------------------------------------------------


def test_a_return_path_names_the_subscriber_and_the_digest() -> None:
    address = return_path_for(TEMPLATE, 12, 34, KEY)
    assert address.startswith("bounces+12.34.") and address.endswith("@example.org")
    assert address == address.lower()
    assert len(address.partition("@")[0]) <= 64
    assert read_return_path(address, TEMPLATE, KEY) == (12, 34)
    assert read_return_path(f"<{address}>", TEMPLATE, KEY) == (12, 34)


def test_a_return_path_survives_a_server_that_changes_its_case() -> None:
    address = return_path_for(TEMPLATE, 7, 3, KEY)
    assert read_return_path(address.lower(), TEMPLATE, KEY) == (7, 3)
    assert read_return_path(address.upper(), TEMPLATE, KEY) == (7, 3)
    assert read_return_path(address, TEMPLATE.upper(), KEY) == (7, 3)


def test_a_tampered_return_path_is_refused() -> None:
    address = return_path_for(TEMPLATE, 7, 3, KEY)
    local, _, domain = address.partition("@")
    last = local[-1]
    forged = [
        local[:-1] + ("a" if last != "a" else "b") + "@" + domain,  # the MAC
        address.replace("bounces+7.3.", "bounces+8.3."),  # another subscriber
        address.replace("bounces+7.3.", "bounces+7.4."),  # another digest
        address.replace("@example.org", "@example.net"),  # not our template
        "bounces+@example.org",
        "bounces@example.org",
        "",
    ]
    for candidate in forged:
        assert read_return_path(candidate, TEMPLATE, KEY) is None, candidate
    assert read_return_path(address, TEMPLATE, b"another-secret-entirely") is None


def test_an_unsubscribe_token_is_no_bounce_token_and_the_other_way_round() -> None:
    unsubscribe = sign_token(KEY, 7, "reader@example.org", "unsubscribe")
    assert read_return_path(TEMPLATE.replace("{token}", unsubscribe), TEMPLATE, KEY) is None
    with pytest.raises(TokenError):
        verify_bounce_token(KEY, unsubscribe)
    bounce = sign_bounce_token(KEY, 7, 3)
    with pytest.raises(TokenError):
        verify_link_token(KEY, bounce, "reader@example.org", "unsubscribe")
    assert verify_bounce_token(KEY, bounce) == (7, 3)


def config_with(return_path: str) -> str:
    return (
        "site:\n  title: T\n  url: https://example.org/\n"
        f"delivery:\n  transport: file\n  return_path: {return_path!r}\n"
    )


def test_return_path_config_takes_an_address_with_one_token() -> None:
    config = parse_config(config_with(TEMPLATE), Path("/site/config.yaml"))
    assert config.delivery.return_path == TEMPLATE
    default = parse_config("site:\n  title: T\n  url: https://example.org/\n", Path("/c.yaml"))
    assert default.delivery.return_path is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("bounces@example.org", "must contain {token} once"),
        ("{token}.{token}@example.org", "must contain {token} once"),
        ("bounces@{token}.example.org", "{token} must be in the part before the @"),
        ("bounces+{token}", "{token} must be in the part before the @"),
        ("b ounces+{token}@example.org", "is not a valid address"),
        ("a-very-long-mailbox-name-for-bounces+{token}@example.org", "too long before the @"),
    ],
)
def test_a_bad_return_path_is_a_config_error_at_its_line(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config_with(value), Path("/site/config.yaml"))
    [problem] = caught.value.problems
    assert problem.line == 6  # the return_path line
    assert problem.message.startswith("delivery.return_path: ")
    assert message in problem.message
    assert problem.hint == "e.g. bounces+{token}@example.org"


@pytest.mark.slow
def test_digests_go_out_with_the_verp_return_path_and_the_same_from(
    site: Site, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """MAIL FROM is the subscriber's own return path; From: is unchanged."""
    monkeypatch.setenv("SYNDICATE_SECRET", SECRET)
    template = "bounces+{token}@blog.syndicate.test"
    with Sink() as sink:
        mail_site(site, sink.port, extra=f"  return_path: '{template}'\n")
        subscribe(invoke, site, "one@example.org", "two@example.org")
        result = send(invoke, site)
        assert result.exit_code == 0, result.stderr
        received = list(sink.handler.received)
    with db(site) as conn:
        ids = dict(conn.execute("SELECT email, id FROM subscribers").fetchall())
        [(digest_id,)] = conn.execute("SELECT id FROM digests").fetchall()
    assert len(received) == 2
    for item in received:
        [recipient] = item.recipients
        assert read_return_path(item.sender, template, SECRET.encode()) == (
            ids[recipient],
            digest_id,
        )
        assert item.message["From"] == "Test Site <news@blog.syndicate.test>"


# --- reports made by real MTAs --------------------------------------------------------

# name -> kind, the addresses reported, (subscriber id, digest id) from VERP, status
EXPECTED: dict[str, tuple[str, tuple[str, ...], tuple[int, int] | None, str]] = {
    # Postfix 3.7.11 (Debian 12), see the README
    "postfix-unknown-user.eml": (HARD, ("nosuchuser@syndicate.test",), (7, 3), "5.1.1"),
    "postfix-remote-550.eml": (HARD, ("someone@reject.test",), (10, 3), "5.1.1"),
    "postfix-mailbox-full.eml": (SOFT, ("full@syndicate.test",), (8, 4), "5.2.2"),
    "postfix-delayed.eml": (SOFT, ("reader@slow.test",), (9, 3), "4.4.1"),
    "unsubscribe-request.eml": (UNSUBSCRIBE, ("reader@syndicate.test",), None, ""),
    # flufl.bounce's test data (Apache-2.0), from other MTAs
    "flufl-dsn_01.eml": (HARD, ("userx@example.com",), None, "5.0.0"),
    "flufl-dsn_05.eml": (SOFT, ("userx@example.cz",), None, "4.4.1"),
    "flufl-exim_01.eml": (HARD, ("userx@its.example.nl",), None, ""),
    "flufl-qmail_01.eml": (HARD, ("userx@example.de",), None, ""),
    "flufl-postfix_01.eml": (HARD, ("xxxxx@local.ie",), None, ""),
    "flufl-microsoft_01.eml": (HARD, ("userx@example.COM",), None, ""),
    "flufl-groupwise_01.eml": (HARD, ("userx@example.EDU",), None, ""),
    "flufl-yahoo_01.eml": (HARD, ("userx@example.com",), None, ""),
    "flufl-simple_03.eml": (SOFT, ("userx@example.za",), None, ""),
    # RFC 5965's example
    "rfc5965-b2-arf-abuse.eml": (COMPLAINT, ("user@example.com",), None, "abuse"),
}


def test_every_fixture_is_listed_here() -> None:
    listed = set(EXPECTED) | set(NOT_REPORTS)
    assert {path.name for path in FIXTURES.glob("*.eml")} == listed


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_parses_to_its_kind_and_recipient(name: str) -> None:
    kind, addresses, verp, status = EXPECTED[name]
    report = parse_fixture(name)
    assert report is not None
    assert (report.kind, report.addresses, report.status) == (kind, addresses, status)
    assert (report.subscriber_id, report.digest_id) == (verp or (None, None))
    message_id = email.message_from_bytes((FIXTURES / name).read_bytes())["Message-ID"]
    if message_id is None:
        assert report.report_id.startswith("sha256:")
    else:
        assert report.report_id == " ".join(message_id.split())


def test_a_postfix_bounce_carries_the_diagnostic_and_the_returned_unsubscribe_token() -> None:
    report = parse_fixture("postfix-remote-550.eml")
    assert report is not None
    assert report.detail.startswith("smtp; 550 5.1.1 <someone@reject.test>: Recipient address")
    assert report.unsubscribe_token is not None  # from the returned List-Unsubscribe
    subscriber_id = verify_link_token(
        FIXTURE_SECRET, report.unsubscribe_token, "someone@reject.test", "unsubscribe"
    )
    assert subscriber_id == 10


def test_a_bounce_without_verp_still_names_the_failed_address() -> None:
    data = (FIXTURES / "postfix-unknown-user.eml").read_bytes()
    report = parse_report(data, None, FIXTURE_SECRET)
    assert report is not None
    assert (report.kind, report.addresses) == (HARD, ("nosuchuser@syndicate.test",))
    assert report.subscriber_id is None
    # the wrong secret: the token does not verify, the address is still there
    forged = parse_report(data, FIXTURE_RETURN_PATH, b"not-the-secret-it-was-made-with")
    assert forged is not None and forged.subscriber_id is None and forged.addresses


def test_an_unsubscribe_request_gives_the_sender_and_the_token_of_its_subject() -> None:
    report = parse_fixture("unsubscribe-request.eml")
    assert report is not None and report.kind == UNSUBSCRIBE
    assert report.unsubscribe_token is not None
    assert (
        verify_link_token(
            FIXTURE_SECRET, report.unsubscribe_token, "reader@syndicate.test", "unsubscribe"
        )
        == 11
    )
    assert report.report_id == "<unsubscribe-request-1@syndicate.test>"
    # without newsletter.unsubscribe_mailto nothing reads that mailbox as requests
    assert parse_fixture("unsubscribe-request.eml", mailto=None) is None


def complaint_about(original: bytes, feedback_type: str = "abuse") -> bytes:
    """An ARF report (RFC 5965 section 2) around `original`, the way a mailbox provider's
    feedback loop sends one: built here, since no MTA at hand makes them."""
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "<fbl@isp.example>"
    report["To"] = "<abuse@syndicate.test>"
    report["Subject"] = "FW: Syndicate Fixtures: 1 new post"
    report["Message-ID"] = "<fbl-1@isp.example>"
    report.attach(MIMEText("This is an email abuse report.\n"))
    fields = MIMEBase("message", "feedback-report")
    fields.set_payload(f"Feedback-Type: {feedback_type}\nUser-Agent: Test/1.0\nVersion: 1\n")
    report.attach(fields)
    returned = MIMEBase("message", "rfc822")
    returned.set_payload([email.message_from_bytes(original)])
    report.attach(returned)
    return report.as_bytes()


def test_a_complaint_about_a_digest_names_its_subscriber_by_the_returned_return_path() -> None:
    """The complaint's original is the digest as Postfix delivered it (Return-Path added)."""
    original = (FIXTURES / "postfix-delivered-digest.eml").read_bytes()
    data = complaint_about(original)
    report = parse_report(data, FIXTURE_RETURN_PATH, FIXTURE_SECRET)
    assert report is not None
    assert report.kind == COMPLAINT and report.status == "abuse"
    assert (report.subscriber_id, report.digest_id) == (12, 3)
    assert report.addresses == ("reader@syndicate.test",)  # the original's To
    assert report.report_id == "<fbl-1@isp.example>"
    assert parse_report(complaint_about(original, "not-spam"), None, FIXTURE_SECRET) is None


NOT_REPORTS = {
    "postfix-delivered-dsn.eml": "a DSN that says delivered (NOTIFY=SUCCESS)",
    "postfix-delivered-digest.eml": "a digest, as delivered",
    "reply-not-a-bounce.eml": "a reader's reply to the bounce address, 'unknown' in it",
}


@pytest.mark.parametrize("name", sorted(NOT_REPORTS))
def test_a_normal_email_or_a_success_dsn_is_not_a_report(name: str) -> None:
    assert parse_fixture(name) is None


GARBAGE = [
    b"",
    b"\x00\xff\xfe" * 1000,
    b"not an email at all",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n",
    b"Content-Type: multipart/report; report-type=feedback-report\n\nno boundary",
    b"From: MAILER-DAEMON@x\nContent-Type: message/delivery-status\n\nAction: failed\n",
    b"Return-Path: <>\nContent-Type: text/plain; charset=nonsense-42\n\n\xff\xfe",
    b"Subject: =?utf-8?b?!!!?=\nFrom: =?x?q?=ZZ?= <@>\n\n" + b"A" * 100_000,
    ("From: postmaster@x\nSubject: " + "é" * 500 + "\n\nuser unknown").encode("utf-8"),
]


@pytest.mark.parametrize("data", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_is_not_a_report_and_never_an_exception(data: bytes) -> None:
    report = parse_report(data, TEMPLATE, KEY, "unsubscribe@example.org")
    assert report is None or report.kind in (HARD, SOFT)  # a daemon's "user unknown"


def test_a_report_without_message_id_is_known_by_the_hash_of_its_bytes() -> None:
    data = (FIXTURES / "rfc5965-b2-arf-abuse.eml").read_bytes()
    first, again = parse_report(data, None, KEY), parse_report(data, None, KEY)
    assert first is not None and again is not None
    assert first.report_id == again.report_id and first.report_id.startswith("sha256:")
    other = parse_report(data + b"\n", None, KEY)
    assert other is not None and other.report_id != first.report_id


def test_scan_mailbox_reports_each_report_once_with_its_source() -> None:
    names = ["postfix-unknown-user.eml", "reply-not-a-bounce.eml", "postfix-delayed.eml"]
    messages = [(name, (FIXTURES / name).read_bytes()) for name in names]
    messages.append(("copy", messages[0][1]))  # the same report in a second mailbox
    reports = scan_mailbox(messages, FIXTURE_RETURN_PATH, FIXTURE_SECRET)
    assert [(r.source, r.kind, r.subscriber_id) for r in reports] == [
        ("postfix-unknown-user.eml", HARD, 7),
        ("postfix-delayed.eml", SOFT, 9),
    ]


# --- mailboxes --------------------------------------------------------------------------


def fixture_messages() -> list[bytes]:
    names = [name for name in sorted(EXPECTED) if name.startswith("postfix-")]
    return [(FIXTURES / name).read_bytes() for name in names]


def test_maildir_reader_gives_every_message_with_a_stable_id_and_deletes_nothing(
    tmp_path: Path,
) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    keys = [box.add(data) for data in fixture_messages()]
    box.close()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    first = list(read_maildir(tmp_path / "Maildir"))
    # a mail client moves one from new/ to cur/: its id stays the same
    moved = mailbox.Maildir(tmp_path / "Maildir", create=False)
    message = moved[keys[0]]
    message.set_subdir("cur")
    moved[keys[0]] = message
    second = list(read_maildir(tmp_path / "Maildir"))
    assert [i for i, _ in first] == [i for i, _ in second] == [f"maildir:{k}" for k in sorted(keys)]
    assert sorted(d for _, d in first) == sorted(fixture_messages())
    assert len(list(read_maildir(tmp_path / "Maildir"))) == 4
    assert len(before) == len(sorted(tmp_path.rglob("*")))  # nothing removed
    reports = scan_mailbox(first, FIXTURE_RETURN_PATH, FIXTURE_SECRET)
    assert len(reports) == 4 and all(r.source.startswith("maildir:") for r in reports)


def test_mbox_reader_gives_every_message_and_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(path, create=True)
    for data in fixture_messages():
        box.add(data)
    box.close()
    before = path.read_bytes()
    first, second = list(read_mbox(path)), list(read_mbox(path))
    assert first == second and len(first) == 4
    assert len({i for i, _ in first}) == 4 and all(i.startswith("mbox:") for i, _ in first)
    assert [m.replace(b"\r\n", b"\n") for _, m in first] == [
        m.replace(b"\r\n", b"\n") for m in fixture_messages()
    ]
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.lock"))


def test_a_missing_mailbox_is_an_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(SyndicateError, match="not a Maildir") as caught:
        list(read_maildir(tmp_path / "nowhere"))
    assert caught.value.hint
    with pytest.raises(SyndicateError, match="no such mbox file"):
        list(read_mbox(tmp_path / "nowhere.mbox"))
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "nowhere.mbox").exists()


def test_imap_urls_are_imaps_with_a_user_and_no_password() -> None:
    where = parse_imap_url("imaps://bounces%40example.org@mail.example.org:1993/Bounces%20In")
    assert (where.user, where.host, where.port, where.folder) == (
        "bounces@example.org",
        "mail.example.org",
        1993,
        "Bounces In",
    )
    assert parse_imap_url("imaps://u@h/").port == 993
    assert parse_imap_url("imaps://u@h").folder == "INBOX"
    for bad in ("imap://u@h/INBOX", "imaps://h/INBOX", "imaps://u:pw@h/INBOX", "imaps://u@h:x/"):
        with pytest.raises(SyndicateError):
            parse_imap_url(bad)


def test_the_imap_password_comes_from_the_environment() -> None:
    assert imap_password({"SYNDICATE_IMAP_PASSWORD": "pw"}) == "pw"
    with pytest.raises(SyndicateError, match="SYNDICATE_IMAP_PASSWORD is not set"):
        imap_password({})


def test_an_unreachable_imap_server_is_an_error_not_a_traceback() -> None:
    with pytest.raises(SyndicateError, match="cannot connect"):
        list(read_imap("imaps://u@127.0.0.1:9/INBOX", "pw"))


# --- IMAP, against Debian's Dovecot on 127.0.0.1 ------------------------------------------

DOVECOT = "/usr/sbin/dovecot"
IMAP_PASSWORD = "imap-test-password"  # noqa: S105 - a test server's


def dovecot_config(folder: Path, port: int) -> str:
    return f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
ssl = required
ssl_cert = <{folder}/cert.pem
ssl_key = <{folder}/key.pem
auth_mechanisms = plain
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {folder}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={folder}/home
}}
mail_location = maildir:{folder}/Maildir
"""


@pytest.fixture
def dovecot() -> Iterator[tuple[str, ssl.SSLContext, Path]]:
    """A Dovecot IMAPS server on 127.0.0.1 with a trustme certificate, serving a Maildir
    of two fixtures as user `bounces`. -> (URL, a client context trusting it, Maildir)."""
    if not Path(DOVECOT).exists() or os.geteuid() != 0:
        pytest.skip("needs Debian's dovecot-imapd, run as root (it serves as `nobody`)")
    folder = Path(tempfile.mkdtemp(prefix="syndicate-dovecot-"))  # others may enter it
    folder.chmod(0o755)
    try:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        (folder / "key.pem").write_bytes(cert.private_key_pem.bytes())
        (folder / "cert.pem").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
        (folder / "users").write_text(f"bounces:{{PLAIN}}{IMAP_PASSWORD}\n")
        for sub in ("run", "state", "home"):
            (folder / sub).mkdir()
        box = mailbox.Maildir(folder / "Maildir", create=True)
        for name in ("postfix-unknown-user.eml", "postfix-delayed.eml"):
            box.add((FIXTURES / name).read_bytes())
        subprocess.run(["chown", "-R", "nobody:nogroup", folder / "Maildir", folder / "home"])
        port = free_port()
        (folder / "dovecot.conf").write_text(dovecot_config(folder, port))
        server = subprocess.Popen([DOVECOT, "-F", "-c", folder / "dovecot.conf"])
        try:
            wait_for_port(port)
            context = ssl.create_default_context()
            ca.configure_trust(context)
            yield f"imaps://bounces@127.0.0.1:{port}/INBOX", context, folder / "Maildir"
        finally:
            server.terminate()
            server.wait(10)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def messages_in(maildir: Path) -> list[str]:
    return sorted(
        f"{p.parent.name}/{p.name}" for sub in ("new", "cur") for p in (maildir / sub).iterdir()
    )


def wait_for_port(port: int) -> None:
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"dovecot did not listen on {port}")


@pytest.mark.slow
def test_imap_reader_reads_every_message_and_changes_nothing(
    dovecot: tuple[str, ssl.SSLContext, Path],
) -> None:
    url, context, maildir = dovecot
    before = messages_in(maildir)
    first = list(read_imap(url, IMAP_PASSWORD, context))
    second = list(read_imap(url, IMAP_PASSWORD, context))
    assert [i for i, _ in first] == [i for i, _ in second]
    assert len(first) == 2 and all(i.startswith("imap:") for i, _ in first)
    assert len({i for i, _ in first}) == 2
    reports = scan_mailbox(first, FIXTURE_RETURN_PATH, FIXTURE_SECRET)
    assert sorted((r.kind, r.subscriber_id) for r in reports) == [(HARD, 7), (SOFT, 9)]
    # EXAMINE and BODY.PEEK: still unread, still in new/, nothing removed
    assert messages_in(maildir) == before  # (Dovecot adds its index files beside them)
    assert len(list((maildir / "new").iterdir())) == 2


@pytest.mark.slow
def test_imap_refuses_a_wrong_password_and_an_untrusted_certificate(
    dovecot: tuple[str, ssl.SSLContext, Path],
) -> None:
    url, context, _ = dovecot
    with pytest.raises(SyndicateError, match="login as bounces refused") as caught:
        list(read_imap(url, "not-the-password", context))
    assert caught.value.hint == "check SYNDICATE_IMAP_PASSWORD"
    with pytest.raises(SyndicateError, match="CERTIFICATE_VERIFY_FAILED"):
        list(read_imap(url, IMAP_PASSWORD))  # the system's CAs do not know trustme's
