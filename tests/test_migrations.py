"""The state database's migrations (Alembic, syndicate/state/migrations/): a database made
by the first release is upgraded with nothing lost, on SQLite and on PostgreSQL; a new
database migrated from nothing is exactly the tables the code uses; two processes opening
one old database at once migrate it once; an up-to-date database never imports Alembic."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from syndicate.state.digests import digested_sources
from syndicate.state.outbox import Lease, lease_rows
from syndicate.state.posts import load_post_states
from syndicate.state.runs import recent_runs
from syndicate.state.schema import HEAD, metadata
from syndicate.state.store import Store, schema_revision
from syndicate.state.subscribers import list_subscribers

from .conftest import ROOT, SEEDS, Result
from .test_postgres import pg_url  # noqa: F401 - the fixture

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "state-v1"


def v1_copy(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "syndicate.db"
    shutil.copyfile(FIXTURE / "syndicate.db", path)
    return path


def v1_contents(path: Path) -> dict[str, object]:
    """What the first release's database holds, read with plain SQL from its own columns
    (lists split at the tabs), in the shapes the new store returns."""
    with sqlite3.connect(path) as db:
        posts = {
            source: (
                status,
                tuple(t for t in tags.split("\t") if t),
                tuple(c for c in cats.split("\t") if c),
            )
            for source, status, tags, cats in db.execute(
                "SELECT source, status, tags, categories FROM posts"
            )
        }
        subscribers = {
            email: (status, name, tuple(t for t in topics.split("\t") if t))
            for email, status, name, topics in db.execute(
                "SELECT email, status, name, topics FROM subscribers"
            )
        }
        announced = {
            s
            for (joined,) in db.execute("SELECT post_sources FROM digests")
            for s in joined.split("\t")
        }
        outbox = sorted(db.execute("SELECT id, digest_id, subscriber_id, status FROM outbox"))
        runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    return {
        "posts": posts,
        "subscribers": subscribers,
        "announced": announced,
        "outbox": outbox,
        "runs": runs,
    }


def store_contents(store: Store) -> dict[str, object]:
    """The same facts, through the store's API."""
    with store.engine.connect() as conn:
        outbox = sorted(
            tuple(row)
            for row in conn.execute(
                sa.text("SELECT id, digest_id, subscriber_id, status FROM outbox")
            )
        )
    return {
        "posts": {
            s.source: (s.status, s.tags, s.categories) for s in load_post_states(store).values()
        },
        "subscribers": {s.email: (s.status, s.name, s.topics) for s in list_subscribers(store)},
        "announced": digested_sources(store),
        "outbox": outbox,
        "runs": len(recent_runs(store, 1000)),
    }


def test_the_fixture_is_what_the_first_release_wrote() -> None:
    """Guards the test below: the fixture has lists in every table and rows in every state."""
    before = v1_contents(FIXTURE / "syndicate.db")
    assert len(before["posts"]) == 6 and all(tags for _, tags, _ in before["posts"].values())  # type: ignore[attr-defined]
    assert before["subscribers"]["bob@example.org"] == ("active", "Bob", ("AI", "Medicine"))  # type: ignore[index]
    assert len(before["announced"]) == 6  # type: ignore[arg-type]
    assert [row[3] for row in before["outbox"]] == ["sent", "deferred", "deferred"]  # type: ignore[attr-defined]


def test_a_first_release_database_is_upgraded_with_nothing_lost(tmp_path: Path) -> None:
    path = v1_copy(tmp_path)
    before = v1_contents(path)
    store = Store(f"sqlite:///{path}")
    try:
        assert schema_revision(store.engine) == HEAD
        assert store_contents(store) == before
        # the deferred rows are still due for their retry, and only they
        due = lease_rows(
            store, Lease("test", 60, False), datetime(2025, 9, 3, 0, 15, tzinfo=UTC), 10
        )
        assert [(r.id, r.email) for r in due] == [(3, "ann@example.org"), (4, "bob@example.org")]
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(posts)")}
        version = db.execute(
            "SELECT value FROM syndicate_meta WHERE key = 'schema_version'"
        ).fetchone()
    assert "tags" not in columns and "categories" not in columns
    assert version == (str(int(HEAD)),)  # a first-release syndicate reads it and refuses


@pytest.mark.slow
def test_an_upgraded_site_runs_on_without_churn(
    tmp_path: Path, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the CLI, on the upgraded database: nothing is published again, nobody gets a
    digest twice, and the two deferred messages are sent on their retry."""
    site = tmp_path / "site"
    shutil.copytree(SEEDS, site / "seeds")
    shutil.copyfile(FIXTURE / "005_later.md", site / "seeds" / "005_later.md")
    shutil.copytree(ROOT / "static", site / "static")
    config = (FIXTURE / "config.yaml").read_text("utf-8")
    config = config.replace("transport: smtp", "transport: file")
    (site / "config.yaml").write_text(config, "utf-8")
    v1_copy(site / "state")
    monkeypatch.setenv("SYNDICATE_SECRET", "fixture-secret-0123456789abcdef")

    result = invoke(
        "send", "--config", site / "config.yaml", "--now", "2025-09-03T00:20:00Z", cwd=tmp_path
    )
    assert result.exit_code == 0, result.stderr
    assert "published:" not in result.stdout and "updated:" not in result.stdout
    assert "queued" not in result.stdout  # no new digest: both were recorded before
    assert "sent 2, deferred 0, bounced 0, failed 0" in result.stdout
    sent = sorted(p.name for p in (site / "outbox").glob("*.eml"))
    assert len(sent) == 2 and all(name.startswith("2025-09-03-a-later-post") for name in sent)
    status = invoke(
        "status", "--config", site / "config.yaml", "--now", "2025-09-03T00:20:00Z", cwd=tmp_path
    )
    assert status.exit_code == 0 and "6 published" in status.stdout, status.stdout


def test_a_new_database_is_exactly_the_tables_the_code_uses(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = Store(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        store.close()


def test_head_is_the_newest_revision() -> None:
    from alembic.script import ScriptDirectory

    from syndicate.state.migrate import MIGRATIONS, alembic_config

    config = alembic_config(None)  # type: ignore[arg-type]
    assert config.get_main_option("script_location") == str(MIGRATIONS)
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD]


@pytest.mark.slow
def test_downgrade_and_upgrade_again_keep_the_lists(tmp_path: Path) -> None:
    from syndicate.state.migrate import downgrade

    path = v1_copy(tmp_path)
    before = v1_contents(path)
    Store(f"sqlite:///{path}").close()
    engine = sa.create_engine(f"sqlite:///{path}")
    downgrade(engine, "0001")
    engine.dispose()
    assert v1_contents(path) == before  # the joined columns are back, in order
    store = Store(f"sqlite:///{path}")
    try:
        assert store_contents(store) == before
    finally:
        store.close()


MIGRATE_ONE = """
import sys
from syndicate.state.store import Store
Store(sys.argv[1]).close()
"""


@pytest.mark.slow
def test_processes_opening_an_old_database_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = v1_copy(tmp_path)
    before = v1_contents(path)
    url = f"sqlite:///{path}"
    procs = [
        subprocess.Popen([sys.executable, "-c", MIGRATE_ONE, url], stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    store = Store(url)
    try:
        assert store_contents(store) == before  # each tag once, not once per process
    finally:
        store.close()


@pytest.mark.slow
def test_an_up_to_date_database_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    Store(url).close()
    code = MIGRATE_ONE + "print(sorted(m for m in sys.modules if m.startswith('alembic')))\n"
    out = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_a_database_of_unknown_revision_is_refused(tmp_path: Path) -> None:
    from syndicate.errors import StateError

    url = f"sqlite:///{tmp_path / 'state.db'}"
    Store(url).close()
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffff'")
    with pytest.raises(StateError, match="schema revision ffff, newer than this syndicate"):
        Store(url)


def test_a_first_release_database_is_upgraded_on_postgresql(
    tmp_path: Path,
    pg_url: str,  # noqa: F811 - the fixture imported above
) -> None:
    """The same rows, copied into a PostgreSQL database made by the baseline revision (the
    first release's schema), then upgraded by opening it."""
    from alembic import command

    from syndicate.state.migrate import alembic_config

    path = v1_copy(tmp_path)
    before = v1_contents(path)
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        _copy_rows(sa.create_engine(f"sqlite:///{path}"), conn)
    engine.dispose()
    store = Store(pg_url)
    try:
        assert schema_revision(store.engine) == HEAD
        assert store_contents(store) == before
        with store.engine.connect() as conn:
            from alembic.autogenerate import compare_metadata
            from alembic.migration import MigrationContext

            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        store.close()


def _copy_rows(source: sa.Engine, conn: sa.Connection) -> None:
    """Every row of the first release's tables, ids kept (and the sequences moved past
    them, as on a database that made those ids itself)."""
    tables = (
        "syndicate_meta",
        "posts",
        "runs",
        "digests",
        "subscribers",
        "digest_bodies",
        "outbox",
    )
    old = sa.MetaData()
    old.reflect(source, only=tables)
    new = sa.MetaData()
    new.reflect(conn, only=tables)
    with source.connect() as src:
        for name in tables:
            rows = [dict(row._mapping) for row in src.execute(sa.select(old.tables[name]))]
            conn.execute(sa.delete(new.tables[name]))
            if rows:
                conn.execute(sa.insert(new.tables[name]), rows)
            if "id" in new.tables[name].c:
                conn.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "  # noqa: S608 - fixed names
                        f"(SELECT coalesce(max(id), 1) FROM {name}))"
                    )
                )
    source.dispose()
