"""`syndicate serve`: the app in-process for the protocol cases, then a real server
driven by headless Chromium through subscribe, confirm and one-click unsubscribe."""

from __future__ import annotations

import email
import email.policy
import gzip
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from starlette.testclient import TestClient

from syndicate.config import Config, load_config
from syndicate.newsletter.tokens import sign_confirm_token, sign_token
from syndicate.state.store import Store
from syndicate.state.subscribers import (
    add_subscriber,
    find_subscriber,
    list_subscribers,
    set_status,
)
from syndicate.web.app import create_app

from .conftest import SITE_CONFIG, Result, Site, post
from .smtp_sink import free_port

SECRET = "serve-secret-0123456789abcdef"  # noqa: S105 - a test key


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNDICATE_SECRET", SECRET)


def served_site(
    site: Site,
    invoke: Callable[..., Result],
    extra: str = "",
    public_url: str = "https://blog.syndicate.test/",
) -> Config:
    site.set_config(
        SITE_CONFIG
        + "newsletter:\n  from: 'Test Site <news@blog.syndicate.test>'\n"
        + f"  unsubscribe_url: {public_url}unsubscribe\n"
        + f"serve:\n  public_url: {public_url}\n  subscribe_per_minute: 3\n  max_body_bytes: 2048\n"
        + extra
    )
    site.write_post(
        "a.md", post("Tom & Jerry", "2025-08-30", tags="[python]", description="About <things>.")
    )
    result = invoke("build", "--config", site.config, "--now", "2025-09-01", cwd=site.root)
    assert result.exit_code == 0, result.stderr
    return load_config(site.config)


@pytest.fixture
def client(site: Site, invoke: Callable[..., Result]) -> Iterator[TestClient]:
    config = served_site(site, invoke)
    with TestClient(create_app(config), raise_server_exceptions=False) as test_client:
        yield test_client


def outbox(site: Site) -> list[EmailMessage]:
    folder = site.root / "outbox"
    messages = []
    # In the order written: file names are Message-IDs, which carry a random part.
    paths = (
        sorted(folder.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name))
        if folder.exists()
        else []
    )
    for path in paths:
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        messages.append(parsed)
    return messages


def link_in(message: EmailMessage, path: str) -> str:
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(rf"\S+/{path}\?token=\S+", text)
    assert found, text
    return found[0]


# --- feeds over HTTP -----------------------------------------------------------------------


def test_feeds_have_their_types_etag_last_modified_and_cache_headers(client: TestClient) -> None:
    for name, kind in (
        ("feed.xml", "application/rss+xml"),
        ("atom.xml", "application/atom+xml"),
        ("feed.json", "application/feed+json"),
    ):
        response = client.get(f"/{name}", headers={"Accept": "*/*"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kind)
        assert response.headers["etag"].startswith('W/"')
        assert response.headers["last-modified"].endswith("GMT")
        assert response.headers["cache-control"] == "public, max-age=300"
    assert client.get("/feed.xsl").headers["content-type"].startswith("text/xsl")
    assert client.get("/tags/python/feed.xml").status_code == 200


def test_a_browser_gets_xml_so_the_stylesheet_renders(client: TestClient) -> None:
    browser = client.get(
        "/feed.xml",
        headers={"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
    )
    assert browser.headers["content-type"] == "application/xml; charset=utf-8"
    assert "Accept" in browser.headers["vary"]


def test_conditional_get_answers_304(client: TestClient) -> None:
    first = client.get("/feed.xml")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert client.get("/feed.xml", headers={"If-None-Match": etag}).status_code == 304
    assert (
        client.get("/feed.xml", headers={"If-None-Match": etag.removeprefix("W/")}).status_code
        == 304
    )
    assert client.get("/feed.xml", headers={"If-Modified-Since": modified}).status_code == 304
    assert (
        client.get(
            "/feed.xml", headers={"If-None-Match": '"other"', "If-Modified-Since": modified}
        ).status_code
        == 200
    )
    assert (
        client.get(
            "/feed.xml", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
        ).status_code
        == 200
    )
    assert client.head("/feed.xml").headers["content-length"] == str(len(first.content))


def test_gzip_when_asked(client: TestClient) -> None:
    response = client.get("/feed.xml", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    raw = client.get("/feed.xml", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert response.content == raw.content  # httpx decodes; same bytes
    assert gzip.decompress(gzip.compress(raw.content)) == raw.content


def test_home_page_has_autodiscovery_links_and_a_form(client: TestClient) -> None:
    page = client.get("/").text
    assert (
        '<link rel="alternate" type="application/rss+xml" title="Test Site (RSS)" href="https://blog.syndicate.test/feed.xml">'
        in page
    )
    assert 'type="application/atom+xml"' in page and 'type="application/feed+json"' in page
    assert '<form method="post" action="subscribe">' in page
    assert 'value="python"' in page


def test_unknown_paths_traversal_and_hidden_files_are_404(client: TestClient) -> None:
    for path in (
        "/nope.xml",
        "/../config.yaml",
        "/%2e%2e/config.yaml",
        "/.syndicate-manifest.json",
        "/tags/../../config.yaml",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Traceback" not in response.text


# --- subscribe, confirm, unsubscribe --------------------------------------------------------


def test_subscribe_confirm_and_one_click_unsubscribe_as_gmail_sends_it(
    client: TestClient, site: Site
) -> None:
    response = client.post(
        "/subscribe", data={"email": "Reader@Example.org", "name": "Reader", "topics": "python"}
    )
    assert response.status_code == 202 and "Check your inbox" in response.text
    store = Store(load_config(site.config).state_url)
    subscriber = find_subscriber(store, "reader@example.org")
    assert (
        subscriber is not None
        and subscriber.status == "pending"
        and subscriber.topics == ("python",)
    )
    [message] = outbox(site)
    assert message["To"] == "Reader <Reader@example.org>"
    confirm = link_in(message, "confirm")
    assert confirm.startswith("https://blog.syndicate.test/confirm?token=")
    path = confirm.replace("https://blog.syndicate.test", "")
    shown = client.get(path)  # a GET (a link scanner, a preview) only shows the button
    assert shown.status_code == 200 and 'action="confirm?token=' in shown.text
    assert client.head(path).status_code == 200
    assert find_subscriber(store, "reader@example.org").status == "pending"  # type: ignore[union-attr]
    confirmed = client.post(path)
    assert confirmed.status_code == 200 and "Subscription confirmed" in confirmed.text
    assert find_subscriber(store, "reader@example.org").status == "active"  # type: ignore[union-attr]

    token = sign_token(SECRET.encode(), subscriber.id, subscriber.email, "unsubscribe")
    page = client.get(f"/unsubscribe?token={token}")
    assert page.status_code == 200 and 'action="unsubscribe?token=' in page.text
    assert find_subscriber(store, "reader@example.org").status == "active"  # type: ignore[union-attr]  # GET changes nothing
    for _ in range(2):  # idempotent
        one_click = client.post(
            f"/unsubscribe?token={token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert one_click.status_code == 200
    assert find_subscriber(store, "reader@example.org").status == "unsubscribed"  # type: ignore[union-attr]


def test_json_subscribe_and_answers_that_reveal_nothing(client: TestClient, site: Site) -> None:
    first = client.post("/subscribe", json={"email": "dup@example.org", "topics": ["python"]})
    assert first.status_code == 202 and first.json() == {"status": "confirmation-sent"}
    store = Store(load_config(site.config).state_url)
    subscriber = find_subscriber(store, "dup@example.org")
    assert subscriber is not None
    client.post(link_in(outbox(site)[0], "confirm").replace("https://blog.syndicate.test", ""))
    assert find_subscriber(store, "dup@example.org").status == "active"  # type: ignore[union-attr]
    second = client.post("/subscribe", json={"email": "dup@example.org"})
    assert (second.status_code, second.json()) == (first.status_code, first.json())
    assert len(outbox(site)) == 1  # an active subscriber gets no second confirmation


def test_tampered_tokens_get_a_400_page(client: TestClient, site: Site) -> None:
    client.post("/subscribe", data={"email": "t@example.org"})
    link = link_in(outbox(site)[0], "confirm").replace("https://blog.syndicate.test", "")
    for bad in (
        link[:-2] + "xx",
        link.replace("confirm?token=", "confirm?token=9"),
        "/confirm?token=",
        "/confirm",
    ):
        response = client.get(bad)
        assert response.status_code == 400, bad
        assert "This link is not valid" in response.text and "Traceback" not in response.text
    confirm_token = link.split("token=")[1]
    assert client.post(f"/unsubscribe?token={confirm_token}").status_code == 400  # wrong purpose


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ({"content": b"[1, 2]", "headers": {"Content-Type": "application/json"}}, 400),
        ({"data": {"email": "not an address"}}, 400),
        ({"data": {"name": "no email"}}, 400),
        (
            {
                "content": b"x" * 5000,
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            413,
        ),
        ({"content": b"<xml/>", "headers": {"Content-Type": "application/xml"}}, 415),
        ({"json": {"email": "a@example.org", "topics": [1, 2]}}, 400),
    ],
)
@pytest.mark.slow
def test_bad_requests_get_clear_4xx(
    client: TestClient, kwargs: dict[str, object], status: int
) -> None:
    response = client.post("/subscribe", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    assert "Traceback" not in response.text


def test_subscribe_is_rate_limited_per_client(client: TestClient) -> None:
    codes = [
        client.post("/subscribe", data={"email": f"r{n}@example.org"}).status_code for n in range(5)
    ]
    assert codes == [202, 202, 202, 429, 429]
    limited = client.post("/subscribe", data={"email": "r9@example.org"})
    assert int(limited.headers["retry-after"]) > 0
    assert client.get("/feed.xml").status_code == 200  # reading is never limited


@pytest.mark.slow
def test_a_burst_of_bad_requests_changes_nothing_and_is_rate_limited(
    client: TestClient, site: Site
) -> None:
    """Forged, tampered and malformed requests: every answer a 4xx (never a 5xx), no
    subscriber's state moves, no email goes out, and subscribe requests count against the
    per-client limit whether or not they are well formed."""
    store = Store(load_config(site.config).state_url)
    add_subscriber(store, "kept@example.org", "Kept", (), "active", datetime.now(UTC))
    add_subscriber(store, "waiting@example.org", "", (), "pending", datetime.now(UTC))
    kept = find_subscriber(store, "kept@example.org")
    assert kept is not None
    real = sign_token(SECRET.encode(), kept.id, kept.email, "unsubscribe")
    tampered = real[:-1] + ("A" if real[-1] != "A" else "B")
    other_id = real.replace(f"{kept.id}.", f"{kept.id + 1}.", 1)  # the pending one's id
    forged_confirm = f"{kept.id + 1}.confirm.9999999999.{real.rsplit('.', 1)[1]}"
    before = export(store)
    feed = client.get("/feed.xml").content
    codes: list[int] = []
    for n in range(200):
        codes.append(client.post(f"/unsubscribe?token={tampered}").status_code)
        codes.append(client.post(f"/unsubscribe?token={other_id}").status_code)
        codes.append(client.post(f"/confirm?token={forged_confirm}").status_code)
        codes.append(
            client.post("/unsubscribe?token=garbage", content=b"x" * (n % 3000)).status_code
        )
        codes.append(client.get(f"/no/such/{n}").status_code)
        codes.append(client.request("DELETE", "/feed.xml").status_code)
        codes.append(client.post("/subscribe", content=b"{bad", headers=JSON).status_code)
    assert set(codes) == {400, 404, 405, 429}, sorted(set(codes))
    assert codes.count(400) == 200 * 4 + 3  # the first 3 subscribe posts get to the parser
    assert codes.count(429) == 197  # the rest hit the limit before their body is read
    limited = client.post("/subscribe", data={"email": "new@example.org"})
    assert limited.status_code == 429  # bad requests used up this client's budget
    assert export(store) == before  # nobody subscribed, confirmed or unsubscribed
    assert outbox(site) == []
    assert client.get("/feed.xml").content == feed


def export(store: Store) -> list[tuple[object, ...]]:
    return [
        (s.email, s.status, s.name, s.topics, s.confirmed_at, s.unsubscribed_at)
        for s in list_subscribers(store)
    ]


# --- end to end: a real server, a real browser --------------------------------------------------


@pytest.mark.slow
def test_subscribe_confirm_unsubscribe_in_chromium(
    site: Site, invoke: Callable[..., Result]
) -> None:
    from playwright.sync_api import sync_playwright

    from . import browser

    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    served_site(site, invoke, public_url=base)
    env = {**os.environ, "SYNDICATE_SECRET": SECRET}
    server = subprocess.Popen(
        [sys.executable, "-m", "syndicate", "serve", "--port", str(port)],
        cwd=site.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "feed.xml", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "syndicate serve did not come up"
            time.sleep(0.2)
        binary = browser.chromium()
        assert binary
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=binary, args=browser.FLAGS[1:])
            page = chromium.new_page()
            page.goto(base)
            page.fill("#email", "browser@example.org")
            page.fill("#name", "Browser Reader")
            page.check("input[value=python]")
            page.click("button[type=submit]")
            assert page.locator("h1").inner_text() == "Check your inbox"
            deadline = time.monotonic() + 10
            while not outbox(site) and time.monotonic() < deadline:
                time.sleep(0.1)
            [message] = outbox(site)
            page.goto(link_in(message, "confirm"))
            assert page.locator("h1").inner_text() == "Confirm your subscription?"
            page.click("button[type=submit]")
            assert page.locator("h1").inner_text() == "Subscription confirmed"
            store = Store(load_config(site.config).state_url)
            subscriber = find_subscriber(store, "browser@example.org")
            assert subscriber is not None and subscriber.status == "active"
            token = sign_token(SECRET.encode(), subscriber.id, subscriber.email, "unsubscribe")
            page.goto(f"{base}unsubscribe?token={token}")
            page.click("button[type=submit]")
            assert page.locator("h1").inner_text() == "You are unsubscribed"
            assert find_subscriber(store, "browser@example.org").status == "unsubscribed"  # type: ignore[union-attr]
            page.goto(base + "feed.xml")  # the XSL view of the feed
            assert "Tom & Jerry" in page.content() or "Tom &amp; Jerry" in page.content()
            chromium.close()
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=20)
    assert "Traceback" not in err


@pytest.mark.slow
def test_the_daemon_serves_too_when_enabled(site: Site, invoke: Callable[..., Result]) -> None:
    port = free_port()
    served_site(
        site, invoke, extra=f"  enabled: true\n  port: {port}\nschedule:\n  build: '0 0 1 1 *'\n"
    )
    env = {**os.environ, "SYNDICATE_SECRET": SECRET}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "syndicate", "run"],
        cwd=site.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline and status != 200:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/feed.xml", timeout=2
                ) as response:
                    status = response.status
            except OSError:
                time.sleep(0.2)
        assert status == 200
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert f"serving on http://127.0.0.1:{port}/" in err and "daemon stopped" in err


@pytest.mark.parametrize(
    "token",
    [
        "².unsubscribe.x",
        "1.unsubscribe.é",
        "99999999999999999999999.unsubscribe.x",
        "1.unsubscribe." + "A" * 500,
    ],
)
def test_odd_tokens_get_400_not_500(client: TestClient, token: str) -> None:
    for method in ("GET", "POST"):
        response = client.request(method, "/unsubscribe", params={"token": token})
        assert response.status_code == 400, (method, token)


def test_nul_in_a_path_is_404(client: TestClient) -> None:
    assert client.get("/x%00y").status_code == 404


def test_names_from_the_form_are_cleaned(client: TestClient, site: Site) -> None:
    client.post("/subscribe", json={"email": "n@example.org", "name": "a\r\nBcc: evil@x.test"})
    found = find_subscriber(Store(load_config(site.config).state_url), "n@example.org")
    assert found is not None and found.name == "a Bcc: evil@x.test"


# --- confirm links: expiry, single use, never a revival (issue 10.2) ------------------------


def confirm_path(site: Site, index: int = -1) -> str:
    return link_in(outbox(site)[index], "confirm").replace("https://blog.syndicate.test", "")


def status_of(site: Site, address: str) -> str:
    found = find_subscriber(Store(load_config(site.config).state_url), address)
    assert found is not None
    return found.status


@pytest.mark.slow
def test_an_old_confirm_link_never_resubscribes_after_unsubscribe_or_bounce(
    client: TestClient, site: Site
) -> None:
    client.post("/subscribe", data={"email": "old@example.org"})
    first = confirm_path(site)
    for method in ("GET", "HEAD"):
        assert client.request(method, first).status_code == 200
    assert status_of(site, "old@example.org") == "pending"  # GET and HEAD change nothing
    assert "Subscription confirmed" in client.post(first).text
    assert status_of(site, "old@example.org") == "active"
    used = client.post(first)  # single use
    assert used.status_code == 400 and "A confirmation link works once" in used.text

    store = Store(load_config(site.config).state_url)
    subscriber = find_subscriber(store, "old@example.org")
    assert subscriber is not None
    unsubscribe = sign_token(SECRET.encode(), subscriber.id, subscriber.email, "unsubscribe")
    assert client.post(f"/unsubscribe?token={unsubscribe}").status_code == 200
    for method in ("GET", "HEAD", "POST"):
        assert client.request(method, first).status_code == 400, method
    assert status_of(site, "old@example.org") == "unsubscribed"

    client.post("/subscribe", data={"email": "old@example.org"})  # subscribing again
    second = confirm_path(site)
    assert second != first and len(outbox(site)) == 2
    assert client.post(first).status_code == 400  # still dead
    assert status_of(site, "old@example.org") == "pending"
    assert client.post(second).status_code == 200
    assert status_of(site, "old@example.org") == "active"
    # The unsubscribe link of an email sent before all this still works.
    assert client.post(f"/unsubscribe?token={unsubscribe}").status_code == 200
    assert status_of(site, "old@example.org") == "unsubscribed"


def test_a_pending_link_dies_when_the_address_bounces(client: TestClient, site: Site) -> None:
    client.post("/subscribe", data={"email": "bouncy@example.org"})
    link = confirm_path(site)
    store = Store(load_config(site.config).state_url)
    subscriber = find_subscriber(store, "bouncy@example.org")
    assert subscriber is not None
    set_status(store, subscriber.id, "bounced", datetime.now(UTC))
    assert client.post(link).status_code == 400
    assert status_of(site, "bouncy@example.org") == "bounced"


def test_confirm_links_expire_after_seven_days(client: TestClient, site: Site) -> None:
    client.post("/subscribe", data={"email": "late@example.org"})
    token = confirm_path(site).split("token=")[1]
    expiry = datetime.fromtimestamp(int(token.split(".")[2]), UTC)
    assert timedelta(days=6, hours=23) < expiry - datetime.now(UTC) <= timedelta(days=7)
    store = Store(load_config(site.config).state_url)
    subscriber = find_subscriber(store, "late@example.org")
    assert subscriber is not None
    secret = SECRET.encode()
    stale = sign_confirm_token(secret, subscriber, datetime.now(UTC) - timedelta(days=7, minutes=1))
    for method in ("GET", "POST"):
        response = client.request(method, f"/confirm?token={stale}")
        assert response.status_code == 400 and "expired" in response.text
    assert status_of(site, "late@example.org") == "pending"
    tampered = stale.replace(stale.split(".")[2], str(int(expiry.timestamp()) + 86_400))
    assert client.post(f"/confirm?token={tampered}").status_code == 400  # expiry is signed
    assert status_of(site, "late@example.org") == "pending"
    fresh = sign_confirm_token(secret, subscriber, datetime.now(UTC) - timedelta(days=6))
    assert client.post(f"/confirm?token={fresh}").status_code == 200
    assert status_of(site, "late@example.org") == "active"


# --- malformed bodies are 4xx, never 500 (issue 10.11) -----------------------------------------

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"[" * 1020 + b"]" * 1020, JSON, 400),  # RecursionError in json.loads
        (b'{"email": ' + b"[" * 1015 + b"]" * 1015 + b"}", JSON, 400),
        (b'{"email": "a@example.org", "name": ' + b'{"a":' * 300 + b"1" + b"}" * 301, JSON, 400),
        (b"email[a][b][c][d]=x&email=a@example.org&" + b"x[" * 500 + b"=1", FORM, 202),
        (b'{"email": ["a@example.org"]}', JSON, 400),
        (b'{"email": 42}', JSON, 400),
        (b'{"email": {"$ne": ""}}', JSON, 400),
        (b'{"email": "a@example.org", "name": 7}', JSON, 400),
        (b'{"email": "a@example.org", "name": ["x"]}', JSON, 400),
        (b'{"email": "a@example.org", "topics": {"a": 1}}', JSON, 400),
        (b'{"email": "a@example.org", "topics": [["x"]]}', JSON, 400),
        (b'{"email": "a@example.org", "topics": 5}', JSON, 400),
        (b'{"email": "a@example.org", "topics": [' + b'"t",' * 400 + b'"t"]}', JSON, 400),
        (b"email=a@example.org&" + b"topics=t&" * 150, FORM, 400),
        (b'{"email": "a\\ud800@example.org"}', JSON, 400),  # a lone surrogate
        (b'{"email": "a@example.org", "name": "\\udfff"}', JSON, 400),
        (b'{"email": "a@example.org", "topics": ["\\ud800"]}', JSON, 400),
        ('{"email": "a@example.org"}'.encode("utf-16"), JSON, 400),
        (b'{"email": "caf\xe9@example.org"}', JSON, 400),  # Latin-1, not UTF-8
        (b"email=caf%E9@example.org", FORM, 400),  # a percent-escaped Latin-1 byte
        (b"email=caf\xe9@example.org", FORM, 400),
        (b'{"email": "a@example.org", "name": "' + b"n" * 1500 + b'"}', JSON, 400),
        (b"\x00\x01\x02", JSON, 400),
        (b'{"email": 1e999999}', JSON, 400),
    ],
)
@pytest.mark.slow
def test_malformed_subscribe_bodies_are_a_clear_4xx(
    site: Site, invoke: Callable[..., Result], body: bytes, headers: dict[str, str], status: int
) -> None:
    config = served_site(site, invoke)
    with TestClient(create_app(config), raise_server_exceptions=False) as test_client:
        response = test_client.post("/subscribe", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text and "Something went wrong" not in response.text


# --- security headers (issue 10.14) ---------------------------------------------------------


def test_pages_send_security_headers_and_no_referrer(client: TestClient, site: Site) -> None:
    client.post("/subscribe", data={"email": "h@example.org"})
    token = confirm_path(site).split("token=")[1]
    pages = {
        "/": 200,
        "/subscribe": 200,
        f"/confirm?token={token}": 200,
        "/confirm?token=bad": 400,
        "/unsubscribe?token=bad": 400,
        "/missing": 404,
    }
    for path, status in pages.items():
        response = client.get(path, headers={"Accept": "text/html"})
        assert response.status_code == status, path
        headers = response.headers
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
        assert "script-src" not in csp and "form-action 'self'" in csp, path
        assert headers["x-frame-options"] == "DENY", path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
    json_error = client.post("/subscribe", json={"email": "nope"})
    assert json_error.headers["x-content-type-options"] == "nosniff"
    feed = client.get("/feed.xml")
    assert feed.headers["x-frame-options"] == "DENY"
    assert feed.headers["x-content-type-options"] == "nosniff"


# --- confirmation emails per address (issue 10.9) ---------------------------------------------


def test_confirmation_emails_are_limited_per_address(
    site: Site, invoke: Callable[..., Result]
) -> None:
    config = served_site(site, invoke, extra="  confirmations_per_hour: 2\n")
    with TestClient(create_app(config), raise_server_exceptions=False) as test_client:
        answers = {
            test_client.post("/subscribe", data={"email": email}).status_code
            for email in ("flood@example.org", "FLOOD@example.org", "flood@EXAMPLE.org")
        }
    assert answers == {202}  # the answer never tells
    assert len(outbox(site)) == 2


@pytest.mark.slow
def test_the_confirmation_limit_counts_subaddresses_as_one_inbox(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """`ann+1@`, `ann+2@` ... are new subscribers but one inbox (subaddressing; Gmail also
    ignores dots): the per-address limit holds for the inbox, or a flood walks around it."""
    config = served_site(site, invoke, extra="  confirmations_per_hour: 1\n")
    rounds = [
        ["flood+1@example.org", "flood+2@example.org", "other@example.org"],
        ["f.lood@gmail.com", "fl.ood+x@gmail.com", "flood@gmail.com"],
    ]
    for emails in rounds:  # a new app each round: three requests fit subscribe_per_minute
        with TestClient(create_app(config), raise_server_exceptions=False) as test_client:
            answers = {
                test_client.post("/subscribe", data={"email": e}).status_code for e in emails
            }
        assert answers == {202}
    sent = sorted(m["To"] for m in outbox(site))
    assert sent == ["f.lood@gmail.com", "flood+1@example.org", "other@example.org"]


# --- special-use domains (issue 9.12) -----------------------------------------------------------


def test_http_subscribe_to_special_use_domains_only_when_allowed(
    site: Site, invoke: Callable[..., Result]
) -> None:
    addresses = ("ops@intranet.local", "qa@localhost", "stage@mail.test")
    config = served_site(site, invoke)
    with TestClient(create_app(config), raise_server_exceptions=False) as test_client:
        for address in addresses:
            refused = test_client.post("/subscribe", json={"email": address})
            assert refused.status_code == 400, address
            detail = refused.json()["detail"]
            assert "special-use" in detail or "period" in detail, detail
            assert "allow_special_domains" not in detail  # the visitor gets no admin advice
    config = served_site(site, invoke, extra="subscribers:\n  allow_special_domains: true\n")
    with TestClient(create_app(config), raise_server_exceptions=False) as test_client:
        for address in addresses:
            assert test_client.post("/subscribe", json={"email": address}).status_code == 202
            assert status_of(site, address) == "pending"
    assert sorted(m["To"] for m in outbox(site)) == sorted(addresses)


def test_a_trusted_proxy_that_is_not_an_address_is_a_config_error(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(SITE_CONFIG + "serve:\n  trusted_proxies: ['10.0.0.0/8', 'proxy.local']\n")
    result = invoke("serve", "--config", site.config)
    assert result.exit_code == 2
    assert "serve.trusted_proxies: 'proxy.local' is not an IP address or network" in result.stderr
    assert "hint: e.g. 127.0.0.1" in result.stderr
