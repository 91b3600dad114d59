"""A post's identity (its key in the state and in digests) never depends on the working
directory: runs from anywhere agree, and state written by earlier releases is migrated."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from .conftest import SITE_CONFIG, Result, Site, post
from .test_postgres import pg_site, pg_url  # noqa: F401 - pg_url is a fixture

FIRST = "2025-09-01T00:00:00Z"
NEXT_SLOT = "2025-09-08T09:00:00Z"  # after the Monday 08:00 newsletter slot
SECRET = "0123456789abcdef0123456789"  # noqa: S105 - a test key


@pytest.fixture
def newsletter_site(
    site: Site, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> Site:
    """Two posts and one active subscriber, so every run may queue a digest."""
    monkeypatch.setenv("SYNDICATE_SECRET", SECRET)
    site.write_post("one.md", post("One", "2025-08-20"))
    site.write_post("sub/two.md", post("Two", "2025-08-21"))
    added = invoke("subscribers", "add", "reader@example.org", "--config", site.config)
    assert added.exit_code == 0, added.stderr
    return site


def run_from(invoke: Callable[..., Result], cwd: Path, config: Path | str, now: str) -> Result:
    result = invoke("run", "--once", "--config", config, "--now", now, "-v", cwd=cwd)
    assert result.exit_code == 0, result.stderr
    return result


def db(site: Site) -> sqlite3.Connection:
    return sqlite3.connect(site.root / "state" / "syndicate.db")


def digests(site: Site) -> list[str]:
    """Each digest's announced posts, tab-joined in their order."""
    with db(site) as conn:
        rows = conn.execute(
            "SELECT digest_id, source FROM digest_posts ORDER BY digest_id, position"
        )
        joined: dict[int, list[str]] = {}
        for digest_id, source in rows:
            joined.setdefault(digest_id, []).append(source)
    return ["\t".join(sources) for _, sources in sorted(joined.items())]


def outbox(site: Site) -> list[Path]:
    return sorted((site.root / "outbox").rglob("*.eml"))


def assert_no_churn(result: Result) -> None:
    assert "published:" not in result.stdout and "withdrawn:" not in result.stdout, result.stdout
    assert "updated:" not in result.stdout
    assert "digest" not in result.stdout


def test_runs_from_two_working_directories_agree(
    newsletter_site: Site, invoke: Callable[..., Result], tmp_path: Path
) -> None:
    site = newsletter_site
    first = run_from(invoke, site.root, "config.yaml", FIRST)
    assert first.stdout.count("published:") == 2
    assert len(outbox(site)) == 1 and len(digests(site)) == 1

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = run_from(invoke, elsewhere, site.config.resolve(), NEXT_SLOT)
    assert_no_churn(again)
    assert len(outbox(site)) == 1 and len(digests(site)) == 1  # nobody gets the posts twice
    with db(site) as conn:
        keys = sorted(row[0] for row in conn.execute("SELECT source FROM posts"))
    assert keys == ["posts/one.md", "posts/sub/two.md"]  # relative to config.yaml's folder


@pytest.mark.slow
@pytest.mark.parametrize("old_form", ["cwd-parent", "absolute", "same"])
def test_state_written_with_working_directory_keys_is_migrated(
    newsletter_site: Site, invoke: Callable[..., Result], old_form: str
) -> None:
    """A database made by earlier releases (keys relative to the cwd of the run that wrote
    them, or absolute) keeps working: no withdrawn/published churn, no second digest."""
    site = newsletter_site
    run_from(invoke, site.root, "config.yaml", FIRST)
    # Rewrite the state as an earlier release run from another directory left it.
    old = {
        "cwd-parent": lambda key: f"{site.root.name}/{key}",  # run from the site's parent
        "absolute": lambda key: str(site.root / key),  # run from outside the site
        "same": lambda key: key,  # run from the site folder: keys coincide
    }[old_form]
    with db(site) as conn:
        for (key,) in conn.execute("SELECT source FROM posts").fetchall():
            for table in ("posts", "post_tags", "post_categories", "digest_posts"):
                conn.execute(f"UPDATE {table} SET source = ? WHERE source = ?", (old(key), key))  # noqa: S608 - fixed names
        conn.execute("DELETE FROM syndicate_meta WHERE key = 'post_keys'")

    again = run_from(invoke, site.root, "config.yaml", NEXT_SLOT)
    assert_no_churn(again)
    assert len(outbox(site)) == 1
    assert digests(site) == ["posts/sub/two.md\tposts/one.md"]
    with db(site) as conn:
        rows = sorted(conn.execute("SELECT source, status FROM posts"))
        flag = conn.execute("SELECT value FROM syndicate_meta WHERE key = 'post_keys'").fetchone()
    assert rows == [("posts/one.md", "published"), ("posts/sub/two.md", "published")]
    assert flag == ("config-relative",)

    # a new post after the migration is announced once, on its own
    site.write_post("three.md", post("Three", "2025-09-10"))
    later = run_from(invoke, site.root, "config.yaml", "2025-09-15T09:00:00Z")
    assert later.stdout.count("published:") == 1 and "withdrawn:" not in later.stdout
    assert digests(site)[-1] == "posts/three.md"


def test_duplicate_rows_left_by_the_bug_are_merged(
    newsletter_site: Site, invoke: Callable[..., Result]
) -> None:
    """Runs from two directories under the old code stored each post twice; the migration
    keeps one row per post and later runs report nothing."""
    site = newsletter_site
    run_from(invoke, site.root, "config.yaml", FIRST)
    with db(site) as conn:
        conn.execute(
            "INSERT INTO posts SELECT ? || source, post_id, url, title, content_hash, due_at, "
            "first_published_at, updated_at, withdrawn_at, 'withdrawn' "
            "FROM posts",
            (f"{site.root}/",),
        )
        conn.execute("DELETE FROM syndicate_meta WHERE key = 'post_keys'")
    again = run_from(invoke, site.root, "config.yaml", NEXT_SLOT)
    assert_no_churn(again)
    with db(site) as conn:
        rows = sorted(conn.execute("SELECT source, status FROM posts"))
    assert rows == [("posts/one.md", "published"), ("posts/sub/two.md", "published")]


def test_two_content_folders_with_the_same_file_name(
    site: Site, invoke: Callable[..., Result], tmp_path: Path
) -> None:
    site.set_config(SITE_CONFIG.replace("paths: [posts]", "paths: [posts, more/notes]"))
    site.write_post("hello.md", post("Hello from posts", "2025-05-01"))
    notes = site.root / "more" / "notes"
    notes.mkdir(parents=True)
    (notes / "hello.md").write_text(post("Hello from notes", "2025-05-02"), "utf-8")
    (site.root / "single.md").write_text(post("A single file", "2025-05-03"), "utf-8")

    first = run_from(invoke, site.root, "config.yaml", FIRST)
    assert first.stdout.count("published:") == 2
    again = run_from(invoke, tmp_path, site.config, NEXT_SLOT)
    assert_no_churn(again)
    with db(site) as conn:
        keys = sorted(row[0] for row in conn.execute("SELECT source FROM posts"))
    assert keys == ["more/notes/hello.md", "posts/hello.md"]

    # a single file named in content.paths has a key of its own too
    site.set_config(SITE_CONFIG.replace("paths: [posts]", "paths: [posts, more/notes, single.md]"))
    single = run_from(invoke, tmp_path, site.config, NEXT_SLOT)
    assert single.stdout.startswith("published: A single file")
    assert "withdrawn:" not in single.stdout
    assert_no_churn(run_from(invoke, site.root, "config.yaml", "2025-09-09T00:00:00Z"))
    with db(site) as conn:
        assert conn.execute("SELECT 1 FROM posts WHERE source = 'single.md'").fetchone()


def test_diagnostics_still_name_the_path_as_typed(
    site: Site, invoke: Callable[..., Result], tmp_path: Path
) -> None:
    site.write_post("bad.md", "---\ntitle: [unclosed\n---\n")
    here = invoke("build", "--now", FIRST, cwd=site.root)
    assert here.stderr.startswith("posts/bad.md:3: error:")
    there = invoke("build", "--config", site.config, "--now", FIRST, cwd=tmp_path)
    assert there.stderr.startswith("site/posts/bad.md:3: error:")


def test_migration_on_postgresql(
    site: Site,
    invoke: Callable[..., Result],
    pg_url: str,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """The same migration on a real PostgreSQL server (timestamptz, other dialect)."""
    pg_site(site, pg_url)
    site.write_post("one.md", post("One", "2025-08-20"))
    site.write_post("sub/two.md", post("Two", "2025-08-21"))
    assert invoke("subscribers", "add", "reader@example.org", cwd=site.root).exit_code == 0
    run_from(invoke, site.root, "config.yaml", FIRST)
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:  # as an earlier release run from / left it
        conn.execute(
            sa.text("UPDATE posts SET source = :root || source"), {"root": f"{site.root}/"}
        )
        conn.execute(
            sa.text("UPDATE digest_posts SET source = REPLACE(source, 'posts/', :p)"),
            {"p": f"{str(site.root).lstrip('/')}/posts/"},
        )
        conn.execute(sa.text("DELETE FROM syndicate_meta WHERE key = 'post_keys'"))
    again = run_from(invoke, tmp_path, site.config, NEXT_SLOT)
    assert_no_churn(again)
    with engine.connect() as conn:
        keys = sorted(conn.execute(sa.text("SELECT source FROM posts")).scalars())
        sources = conn.execute(
            sa.text("SELECT source FROM digest_posts ORDER BY digest_id, position")
        ).scalars()
        announced = list(sources)
    engine.dispose()
    assert keys == ["posts/one.md", "posts/sub/two.md"]
    assert announced == ["posts/sub/two.md", "posts/one.md"]


@pytest.mark.slow
@pytest.mark.parametrize("move", ["rename", "new-folder", "content-folder-moved"])
def test_a_renamed_or_moved_post_is_not_announced_again(
    newsletter_site: Site, invoke: Callable[..., Result], move: str
) -> None:
    """A file renamed or moved (same post, same id and URL), or a content folder moved
    with content.paths following it, changes the key but not the post: it keeps its first
    publication, so no `published:` and no second digest of it."""
    site = newsletter_site
    run_from(invoke, site.root, "config.yaml", FIRST)
    assert len(outbox(site)) == 1
    if move == "rename":
        (site.posts / "one.md").rename(site.posts / "one-renamed.md")
    elif move == "new-folder":
        (site.posts / "2025").mkdir()
        (site.posts / "one.md").rename(site.posts / "2025" / "one.md")
    else:
        site.posts.rename(site.root / "articles")
        site.set_config(SITE_CONFIG.replace("paths: [posts]", "paths: [articles]"))
    # A preview before the run that notices the move must not count the post as new either.
    preview = invoke("digest", "--preview", "--now", NEXT_SLOT, cwd=site.root)
    assert preview.exit_code == 0, preview.stderr
    assert "preview.html" not in preview.stdout and "no digest" in preview.stderr
    again = run_from(invoke, site.root, "config.yaml", NEXT_SLOT)
    assert "published:" not in again.stdout and "withdrawn:" not in again.stdout, again.stdout
    assert "digest" not in again.stdout
    assert len(outbox(site)) == 1 and len(digests(site)) == 1
    # and a post that really is new is still announced, once
    (site.root / ("articles" if move == "content-folder-moved" else "posts")).joinpath(
        "three.md"
    ).write_text(post("Three", "2025-09-10"), "utf-8")
    later = run_from(invoke, site.root, "config.yaml", "2025-09-15T09:00:00Z")
    assert later.stdout.count("published:") == 1, later.stdout
    assert len(digests(site)) == 2 and digests(site)[-1].endswith("three.md")
