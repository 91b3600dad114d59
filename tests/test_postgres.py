"""The state database on a real PostgreSQL server: the same flows as on SQLite, by
changing only state.url. `make test` starts a throw-away server (tests/postgres.sh)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from syndicate.state.store import Store
from syndicate.state.subscribers import find_subscriber, set_status
from syndicate.web.app import create_app

from .conftest import SITE_CONFIG, Result, Site, post
from .smtp_sink import Sink, SinkHandler
from .test_serve import confirm_path, served_site

SECRET = "pg-secret-0123456789abcdef"  # noqa: S105 - a test key


@pytest.fixture
def pg_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    base = os.environ.get("SYNDICATE_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("needs PostgreSQL: run the suite with `make test`, which starts one")
    monkeypatch.setenv("SYNDICATE_SECRET", SECRET)
    name = f"syndicate_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield base.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def pg_site(site: Site, url: str, extra: str = "") -> Site:
    site.set_config(
        SITE_CONFIG
        + f"state:\n  url: '{url}'\n"
        + "newsletter:\n  from: 'Test Site <news@blog.syndicate.test>'\n"
        + extra
    )
    return site


def run_once(invoke: Callable[..., Result], site: Site, now: str) -> Result:
    return invoke("run", "--once", "--config", site.config, "--now", now, cwd=site.root)


def test_publication_state_on_postgresql(
    site: Site, invoke: Callable[..., Result], pg_url: str
) -> None:
    pg_site(site, pg_url, "schedule:\n  newsletter: '0 8 1 1 *'\n")
    site.write_post("old.md", post("Old", "2025-01-01"))
    site.write_post("future.md", post("Future", "2025-03-01T09:00:00Z"))
    assert (
        run_once(invoke, site, "2025-02-01T00:00:00Z").stdout
        == "published: Old <https://blog.syndicate.test/posts/old/>\n"
    )
    assert run_once(invoke, site, "2025-02-02T00:00:00Z").stdout == ""
    assert run_once(invoke, site, "2025-03-01T09:00:00Z").stdout.startswith("published: Future")
    site.write_post("old.md", post("Old", "2025-01-01", body="Edited."))
    assert run_once(invoke, site, "2025-03-02T00:00:00Z").stdout.startswith("updated: Old")
    (site.posts / "future.md").unlink()
    assert run_once(invoke, site, "2025-03-03T00:00:00Z").stdout.startswith("withdrawn: Future")
    status = invoke(
        "status", "--config", site.config, "--now", "2025-03-03T00:00:00Z", cwd=site.root
    )
    assert "posts: 1 published, 0 scheduled" in status.stdout
    assert "#5 2025-03-03 00:00 UTC once ok: 0 published, 0 updated, 1 withdrawn" in status.stdout


def test_subscribers_and_delivery_on_postgresql(
    site: Site, invoke: Callable[..., Result], pg_url: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    handler = SinkHandler(tempfail={"later@example.org"}, reject={"gone@example.org"})
    with Sink(handler) as sink:
        pg_site(
            site,
            pg_url,
            "delivery:\n  transport: smtp\n  retry_base_seconds: 60\n"
            f"  smtp: {{host: 127.0.0.1, port: {sink.port}, security: none, connections: 2, rate_per_second: 0}}\n",
        )
        site.write_post(
            "py.md", post("Python news", "2025-08-30", tags="[python]", description="d")
        )
        site.write_post("rs.md", post("Rust news", "2025-08-31", tags="[rust]", description="d"))
        csv_file = tmp_path / "list.csv"
        csv_file.write_text(
            "email,name,topics,status\nOK@example.org,Ok,,\npy@example.org,,python,\n"
            "later@example.org,,,\ngone@example.org,,,\nbad address,,,\n"
        )
        first = invoke("subscribers", "import", csv_file, "--config", site.config)
        assert first.stdout == "4 added, 0 updated, 0 unchanged, 1 rejected\n"
        again = invoke("subscribers", "import", csv_file, "--config", site.config)
        assert again.stdout == "0 added, 0 updated, 4 unchanged, 1 rejected\n"
        sent = invoke(
            "send", "--config", site.config, "--now", "2025-09-01T09:00:00Z", cwd=site.root
        )
        assert "queued for 4 subscribers (2 versions)" in sent.stdout
        assert "sent 2, deferred 1, bounced 1, failed 0" in sent.stdout
        handler.tempfail.clear()
        retry = invoke(
            "send", "--config", site.config, "--now", "2025-09-01T09:01:01Z", cwd=site.root
        )
        assert "sent 1, deferred 0" in retry.stdout
        assert (
            invoke(
                "send", "--config", site.config, "--now", "2025-09-01T10:00:00Z", cwd=site.root
            ).stdout
            == "nothing to send\n"
        )
        assert sink.handler.by_recipient() == {
            "OK@example.org": 1,
            "py@example.org": 1,
            "later@example.org": 1,
        }
    listed = invoke("subscribers", "list", "--config", site.config).stdout
    assert "gone@example.org\tbounced" in listed
    assert invoke("subscribers", "remove", "ok@example.org", "--config", site.config).exit_code == 0


def test_confirm_links_on_postgresql(
    site: Site, invoke: Callable[..., Result], pg_url: str
) -> None:
    """The state a confirm link is bound to reads back the same from PostgreSQL."""
    config = served_site(site, invoke, extra=f"state:\n  url: '{pg_url}'\n")
    with TestClient(create_app(config), raise_server_exceptions=False) as pg_client:
        pg_client.post("/subscribe", data={"email": "pg@example.org"})
        first = confirm_path(site)
        assert pg_client.post(first).status_code == 200
        assert pg_client.post(first).status_code == 400
        store = Store(config.state_url)
        subscriber = find_subscriber(store, "pg@example.org")
        assert subscriber is not None and subscriber.status == "active"
        set_status(store, subscriber.id, "unsubscribed", datetime.now(UTC))
        pg_client.post("/subscribe", data={"email": "pg@example.org"})
        assert pg_client.post(first).status_code == 400
        assert pg_client.post(confirm_path(site)).status_code == 200
        assert find_subscriber(store, "pg@example.org").status == "active"  # type: ignore[union-attr]
