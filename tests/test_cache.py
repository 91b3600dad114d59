"""The per-post cache and incremental feed writes: never a byte different from a cold build.

The guardian is `test_incremental_runs_match_cold_builds`: a seeded random series of adds,
edits, renames, deletes, touches, config and stylesheet changes; after each step the
output of `run --once` (cache and incremental feeds at work) is compared file by file
with a cold `build` of a copy of the same site into a fresh folder, with a fresh cache.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syndicate import resources
from syndicate.errors import Diagnostic
from syndicate.models import Post
from syndicate.output import MANIFEST

from .conftest import SITE_CONFIG, Result, Site, post

TITLES = ["Hello", "On caching", "Hello", "Feeds at scale", "Notes", "Notes", "A long walk"]
TAGS = ["python", "Web Dev", "web-dev", "rss", "perf", "zürich"]
CATEGORIES = ["blog", "notes"]
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]
START = datetime(2025, 3, 1, tzinfo=UTC)


def random_post(rng: random.Random) -> str:
    """A post with a random title (repeats make duplicate slugs), date (some in the
    future), tags, category, body; now and then a draft, a description or a bad date."""
    date = START + timedelta(days=rng.randint(-20, 12), hours=rng.randint(0, 23))
    fields: dict[str, str] = {}
    if rng.random() < 0.8:
        fields["tags"] = "[" + ", ".join(repr(t) for t in rng.sample(TAGS, rng.randint(0, 3))) + "]"
    if rng.random() < 0.6:
        fields["categories"] = rng.choice(CATEGORIES)
    if rng.random() < 0.1:
        fields["draft"] = "true"
    if rng.random() < 0.3:
        fields["description"] = repr(" ".join(rng.sample(WORDS, 4)))
    paragraphs = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30)))
        + f" [a link](../{rng.choice(WORDS)}/) [a note]({rng.choice(WORDS)}/)"
        for _ in range(rng.randint(1, 4))
    ]
    when = "2025-02-30" if rng.random() < 0.05 else date.isoformat()
    return post(rng.choice(TITLES), when, "\n\n".join(paragraphs), **fields)


def config_text(rng: random.Random) -> str:
    limit = rng.choice([2, 3, 5])
    formats = rng.choice(["[rss, atom, json]", "[rss, atom, json]", "[atom, json]"])
    title = rng.choice(["Test Site", "Renamed Site"])
    per_tag = rng.choice(["true", "true", "false"])
    full = rng.choice(["true", "false"])
    archive = ""
    if rng.random() < 0.5:  # RFC 5005 archive pages: built incrementally like the feeds
        per_tag_archive = rng.choice(["true", "false"])
        archive = (
            f"  archive: true\n  archive_page_size: {rng.randint(1, limit)}\n"
            f"  archive_per_tag: {per_tag_archive}\n"
        )
    return SITE_CONFIG.replace('title: "Test Site"', f'title: "{title}"') + (
        f"feeds:\n  limit: {limit}\n  formats: {formats}\n  per_tag: {per_tag}\n"
        f"  full_content: {full}\n{archive}"
    )


def tree(folder: Path) -> dict[str, bytes]:
    """Every output file but the manifest (it records stats, which differ by nature)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def mutate(rng: random.Random, site: Site, templates: Path, counter: list[int]) -> str:
    """One random change to the site; -> what was done (for the failure message)."""
    files = sorted(p for p in site.posts.rglob("*.md"))
    action = rng.choice(
        ["add", "add", "edit", "edit", "rename", "delete", "touch", "config", "template"]
    )
    if action in ("edit", "rename", "delete", "touch") and not files:
        action = "add"
    if action == "add":
        counter[0] += 1
        site.write_post(f"{rng.choice(['a', 'b/c'])}/post-{counter[0]}.md", random_post(rng))
    elif action == "edit":
        target = rng.choice(files)
        target.write_text(random_post(rng), encoding="utf-8")
        action += f" {target.name}"
    elif action == "rename":
        target = rng.choice(files)
        counter[0] += 1
        target.rename(target.with_name(f"renamed-{counter[0]}.md"))
        action += f" {target.name}"
    elif action == "delete":
        target = rng.choice(files)
        target.unlink()
        action += f" {target.name}"
    elif action == "touch":
        target = rng.choice(files)
        os.utime(target)
        action += f" {target.name}"
    elif action == "config":
        site.set_config(config_text(rng))
    else:
        xsl = templates / "feed.xsl"
        xsl.write_bytes(xsl.read_bytes() + f"<!-- {rng.random()} -->\n".encode())
    return action


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_incremental_runs_match_cold_builds(
    seed: int,
    tmp_path: Path,
    site: Site,
    invoke: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After every step of a random series, `run --once` with its cache and its
    incremental feed writes leaves the same files, byte for byte, as a cold build."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible test series, not a secret)
    templates = tmp_path / "templates"
    shutil.copytree(resources.templates_dir(), templates)
    monkeypatch.setattr(resources, "templates_dir", lambda: templates)
    site.set_config(config_text(rng))
    counter = [0]
    for _ in range(6):
        counter[0] += 1
        site.write_post(f"a/post-{counter[0]}.md", random_post(rng))
    history: list[str] = []
    for step in range(24):
        now = (START + timedelta(days=step)).strftime("%Y-%m-%dT%H:%M:%SZ")
        warm = invoke("run", "--once", "--config", site.config, "--now", now, cwd=site.root)
        assert warm.exit_code in (0, 1), warm.stderr
        cold_root = tmp_path / f"cold-{step}"
        shutil.copytree(site.posts, cold_root / "posts")
        shutil.copy(site.config, cold_root / "config.yaml")
        cold = invoke("build", "--config", cold_root / "config.yaml", "--now", now, cwd=cold_root)
        assert cold.exit_code in (0, 1), cold.stderr
        assert sorted(warm.stderr.splitlines()) == sorted(cold.stderr.splitlines()), history
        warm_files, cold_files = tree(site.public), tree(cold_root / "public")
        assert sorted(warm_files) == sorted(cold_files), history
        for name, data in cold_files.items():
            assert warm_files[name] == data, f"{name} differs after {history}"
        shutil.rmtree(cold_root)
        history.append(mutate(rng, site, templates, counter))


def cache_file(site: Site) -> Path:
    return site.root / "state" / "syndicate.db.cache"


@pytest.mark.slow
def test_unchanged_posts_are_not_parsed_again(
    site: Site, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that finds every file's stamp unchanged parses nothing and renders nothing;
    an edited post is the only one parsed and rendered again."""
    for n in range(5):
        site.write_post(f"p{n}.md", post(f"Post {n}", f"2025-05-0{n + 1}"))
    old = (datetime.now() - timedelta(hours=1)).timestamp()  # out of the racy window
    for path in site.posts.iterdir():
        os.utime(path, (old, old))
    assert invoke("run", "--once", "--config", site.config, cwd=site.root).exit_code == 0
    assert cache_file(site).is_file()

    import syndicate.content.markup
    import syndicate.content.posts

    parsed: list[str] = []
    rendered: list[str] = []
    real_parse, real_render = (
        syndicate.content.posts.parse_post,
        syndicate.content.markup.render_markdown,
    )

    def counting_parse(data: bytes, source: str, *args: object, **kw: object) -> object:
        parsed.append(Path(source).name)
        return real_parse(data, source, *args, **kw)  # type: ignore[arg-type]

    def counting_render(body: str, *args: object, **kw: object) -> object:
        rendered.append(body)
        return real_render(body, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(syndicate.content.posts, "parse_post", counting_parse)
    monkeypatch.setattr(syndicate.content.posts, "render_markdown", counting_render)
    before = (site.public / "feed.xml").stat().st_mtime_ns
    result = invoke("run", "--once", "--config", site.config, cwd=site.root)
    assert result.exit_code == 0 and parsed == [] and rendered == []
    assert (site.public / "feed.xml").stat().st_mtime_ns == before

    site.write_post("p2.md", post("Post 2, edited", "2025-05-03", "New body."))
    result = invoke("run", "--once", "--config", site.config, cwd=site.root)
    assert result.exit_code == 0
    assert parsed == ["p2.md"] and [b.strip() for b in rendered] == ["New body."]
    assert "Post 2, edited" in (site.public / "feed.xml").read_text("utf-8")


@pytest.mark.slow
def test_bad_post_reported_at_every_run_from_the_cache(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """A cached diagnostic is still a diagnostic: exit 1 and the same line every run."""
    site.write_post("good.md", post("Good"))
    site.write_post("bad.md", post("Bad", "2025-02-30"))
    first = invoke("run", "--once", "--config", site.config, cwd=site.root)
    second = invoke("run", "--once", "--config", site.config, cwd=site.root)
    assert first.exit_code == second.exit_code == 1
    assert "bad.md:3: error:" in first.stderr
    assert first.stderr.splitlines()[-2:] == second.stderr.splitlines()[-2:]


@pytest.mark.parametrize("damage", ["garbage", "foreign", "empty"])
def test_broken_cache_means_a_slower_run_never_a_wrong_feed(
    damage: str, tmp_path: Path, site: Site, invoke: Callable[..., Result]
) -> None:
    """A corrupt file, another program's SQLite database or an empty file in the cache's
    place: the run rebuilds it and the feeds come out as from a cold build."""
    site.write_post("one.md", post("One", tags="[a]"))
    assert invoke("run", "--once", "--config", site.config, cwd=site.root).exit_code == 0
    expected = tree(site.public)
    path = cache_file(site)
    path.unlink()
    if damage == "garbage":
        path.write_bytes(b"not a database" * 100)
    elif damage == "foreign":
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE reads (x)")
            db.execute("CREATE TABLE meta (name, value)")
            db.execute("INSERT INTO meta VALUES ('marker', 'someone else')")
    else:
        path.write_bytes(b"")
    shutil.rmtree(site.public)
    result = invoke("build", "--config", site.config, cwd=site.root)
    assert result.exit_code == 0, result.stderr
    assert tree(site.public) == expected
    again = invoke("build", "--config", site.config, "--out", tmp_path / "again", cwd=site.root)
    assert again.exit_code == 0 and tree(tmp_path / "again") == expected


def test_new_post_rewrites_only_the_feeds_it_is_in(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """One new post: the main feeds and those of its tags are written; another tag's
    feeds are not even rebuilt (their files keep their inode and mtime)."""
    site.write_post("a.md", post("A", "2025-05-01", tags="[apples]"))
    site.write_post("b.md", post("B", "2025-05-02", tags="[bananas]"))
    assert invoke("run", "--once", "--config", site.config, cwd=site.root).exit_code == 0
    stamp = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in site.public.rglob("*.*")}
    site.write_post("c.md", post("C", "2025-05-03", tags="[apples]"))
    result = invoke("run", "--once", "--config", site.config, cwd=site.root)
    assert result.exit_code == 0
    changed = sorted(
        str(p.relative_to(site.public))
        for p, before in stamp.items()
        if (p.stat().st_ino, p.stat().st_mtime_ns) != before
    )
    assert changed == [
        MANIFEST,
        "atom.xml",
        "feed.json",
        "feed.xml",
        "tags/apples/atom.xml",
        "tags/apples/feed.json",
        "tags/apples/feed.xml",
    ]


def test_a_post_whose_slug_moves_is_rendered_against_its_new_url(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """Slugs are global: deleting the older of two posts titled alike gives the newer one
    the plain slug, so its URL and its relative links change although its file did not."""
    site.write_post("old.md", post("Hello", "2025-05-01"))
    site.write_post("new.md", post("Hello", "2025-05-02", "See [the notes](notes/)."))
    assert invoke("run", "--once", "--config", site.config, cwd=site.root).exit_code == 0
    first = (site.public / "feed.xml").read_text()
    assert "https://blog.syndicate.test/posts/hello-2/notes/" in first
    (site.posts / "old.md").unlink()
    assert invoke("run", "--once", "--config", site.config, cwd=site.root).exit_code == 0
    feed = (site.public / "feed.xml").read_text()
    assert "https://blog.syndicate.test/posts/hello/" in feed
    assert "https://blog.syndicate.test/posts/hello-2/" not in feed
    assert "https://blog.syndicate.test/posts/hello/notes/" in feed


def test_cached_future_post_becomes_due_without_its_file_changing(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """What is cached is the post, not whether it is due: time alone publishes it."""
    site.write_post("soon.md", post("Soon", "2025-06-01T09:00:00Z"))
    site.write_post("now.md", post("Now", "2025-05-01"))
    early = invoke("run", "--once", "--config", site.config, "--now", "2025-05-15T00:00:00Z")
    assert "Soon" not in (site.public / "feed.xml").read_text() and early.exit_code == 0
    late = invoke("run", "--once", "--config", site.config, "--now", "2025-06-02T00:00:00Z")
    assert late.exit_code == 0 and "published: Soon" in late.stdout
    assert "Soon" in (site.public / "feed.xml").read_text()


def test_odd_files_reported_at_every_run(site: Site, invoke: Callable[..., Result]) -> None:
    """A FIFO is never cached (nor read: no blocking); a file name that is not UTF-8 is
    cached with its warning, which comes back on every run."""
    site.write_post("good.md", post("Good"))
    os.mkfifo(site.posts / "pipe.md")
    (site.posts / os.fsdecode(b"caf\xe9.md")).write_text(post("Cafe"), encoding="utf-8")
    runs = [invoke("run", "--once", "--config", site.config, cwd=site.root) for _ in range(3)]
    for result in runs:
        assert result.exit_code == 1
        assert "pipe.md: error: is a named pipe (FIFO)" in result.stderr
        assert "caf\\xe9.md: warning: the file name is not valid UTF-8" in result.stderr
    assert "Cafe" in (site.public / "feed.xml").read_text()


def test_a_body_that_is_gone_is_never_rendered_from_nothing(site: Site) -> None:
    """Posts come from the cache without their body; if the cache fails before the body is
    fetched and the file has changed meanwhile, the post is skipped with an error (and
    nothing is cached for it), never rendered as an empty post."""
    from syndicate.config import load_config
    from syndicate.content.posts import open_cache, read_posts
    from syndicate.runs.pipeline import render_posts

    site.write_post("a.md", post("A", body="The real body."))
    config = load_config(site.config)
    with open_cache(config) as cache:
        catalog = read_posts(config, cache=cache)
        assert [p.body for p in catalog.posts] == [""]
        site.write_post("a.md", post("A", body="Edited meanwhile."))
        cache.close()  # as after an SQLite error: switched off for the rest of the run
        result = render_posts(list(catalog.posts), config, cache)
    assert isinstance(result["posts/a.md"], Diagnostic)
    assert "changed while it was being published" in result["posts/a.md"].message
    with open_cache(config) as cache:
        post_a = read_posts(config, cache=cache).posts[0]
        rendered = render_posts([post_a], config, cache)["posts/a.md"]
    assert not isinstance(rendered, Diagnostic) and "Edited meanwhile." in (rendered.html or "")


def html_of(rendered: Post | Diagnostic) -> str:
    assert isinstance(rendered, Post), rendered
    return rendered.html or ""


@pytest.mark.slow
def test_forked_workers_take_the_bodies_the_run_read(
    site: Site, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Enough posts to render in forked workers, which fetch each body themselves: from
    the cache file (the body the run read, though the file changed since), else from the
    file if it still has the content read; a body in neither is an error, not cached."""
    from syndicate.config import load_config
    from syndicate.content.posts import open_cache, read_posts
    from syndicate.runs import pipeline

    pids = tmp_path / "pids"
    render = pipeline._render_pickled

    def noted(post: Post, bodies: pipeline.BodySource, sanitize: bool) -> bytes:
        with pids.open("a") as file:
            file.write(f"{os.getpid()}\n")
        return render(post, bodies, sanitize)

    monkeypatch.setattr(pipeline, "_render_pickled", noted)
    count = 240
    for number in range(count):
        site.write_post(f"p{number}.md", post(f"P{number}", body=f"Body {number} as read."))
    config = load_config(site.config)
    with open_cache(config) as cache:
        catalog = read_posts(config, cache=cache)
        for number in range(0, count, 2):  # half edited after the read
            site.write_post(f"p{number}.md", post(f"P{number}", body=f"Edited {number}."))
        result = pipeline.render_posts(list(catalog.posts), config, cache)
    assert all(f"Body {n} as read." in html_of(result[f"posts/p{n}.md"]) for n in range(count))
    if (os.cpu_count() or 1) >= 2:
        assert os.getpid() not in {int(line) for line in pids.read_text().split()}
    with open_cache(config) as cache:
        catalog = read_posts(config, cache=cache)  # the edited files read again
        for number in range(0, count, 2):
            site.write_post(f"p{number}.md", post(f"P{number}", body=f"Again {number}."))
        cache.close()  # as after an SQLite error: the workers read the files
        result = pipeline.render_posts(list(catalog.posts), config, cache)
    for number in range(count):
        rendered = result[f"posts/p{number}.md"]
        if number % 2:
            assert f"Body {number} as read." in html_of(rendered)  # the file as read
        else:
            assert isinstance(rendered, Diagnostic) and rendered.transient
            assert "changed while it was being published" in rendered.message
    with sqlite3.connect(site.root / "state" / "syndicate.db.cache") as db:
        rows = db.execute("SELECT key, record FROM rendered").fetchall()
    records = {key: pickle.loads(record) for key, record in rows}  # noqa: S301 - ours
    assert len(records) == count and not any(isinstance(r, Diagnostic) for r in records.values())


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["plain", "a?b#c%41 d"])
def test_the_workers_open_the_cache_wherever_it_is(
    tmp_path: Path, folder: str, invoke: Callable[..., Result]
) -> None:
    """Each forked worker opens the cache file on its own read-only connection (an SQLite
    `file:` URI): a `?`, `#` or `%` in a folder name is part of the path. The workers get
    the bodies the run read (not the files, edited since), and nothing appears beside."""
    from syndicate.config import load_config
    from syndicate.content.posts import open_cache, read_posts
    from syndicate.runs import pipeline

    site = Site(tmp_path / folder / "site")
    site.posts.mkdir(parents=True)
    site.set_config(SITE_CONFIG)
    for number in range(220):
        site.write_post(f"p{number}.md", post(f"P{number}", body=f"Body {number} as read."))
    config = load_config(site.config)
    with open_cache(config) as cache:
        catalog = read_posts(config, cache=cache)
        for number in range(220):
            site.write_post(f"p{number}.md", post(f"P{number}", body=f"Edited {number}."))
        result = pipeline.render_posts(list(catalog.posts), config, cache)
    assert all(f"Body {n} as read." in html_of(result[f"posts/p{n}.md"]) for n in range(220))
    assert sorted(p.name for p in tmp_path.rglob("*") if p.parent == tmp_path) == [folder]
    assert sorted(p.name for p in (tmp_path / folder).iterdir()) == ["site"]
    # The state's and the index's read-only and read-write URIs too: a delta run.
    assert invoke("run", "--once", "--config", site.config, cwd=site.root).exit_code == 0
    site.write_post("new.md", post("New", "2025-05-02"))
    again = invoke("run", "--once", "--config", site.config, cwd=site.root)
    assert again.exit_code == 0 and again.stdout.startswith("published: New")
    assert sorted(p.name for p in (tmp_path / folder).iterdir()) == ["site"]


@pytest.mark.slow
def test_a_render_time_out_is_not_cached_the_next_run_tries_again(
    site: Site, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time limit is wall-clock: a post that timed out once on a busy machine (or under
    a lower SYNDICATE_RENDER_SECONDS) must be rendered again next run, as a cold build
    would, never left out for good by a cached verdict."""
    monkeypatch.setenv("SYNDICATE_RENDER_SECONDS", "1")
    site.write_post("good.md", post("Good"))
    site.write_post("slow.md", post("Slow", "2025-05-02", body="[a](" * 5_000))
    first = invoke("run", "--once", "--config", site.config, cwd=site.root)
    assert first.exit_code == 1
    assert "posts/slow.md" in first.stderr and "took more than 1 s" in first.stderr
    with sqlite3.connect(site.root / "state" / "syndicate.db.cache") as db:
        cached = {row[0] for row in db.execute("SELECT key FROM rendered")}
    assert "posts/slow.md" not in cached  # a transient verdict: retried next run
    assert "posts/good.md" in cached
    second = invoke("run", "--once", "--config", site.config, cwd=site.root)
    assert "posts/slow.md" in second.stderr and "took more than 1 s" in second.stderr


@pytest.mark.slow
def test_the_digest_at_a_run_reads_no_post_again(
    site: Site, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newsletter job gets the posts the cycle read: a digest due at a run whose
    files are all unchanged parses no file again (the digest's bodies come from the
    cache), and renders only the posts the digest holds."""
    monkeypatch.setenv("SYNDICATE_SECRET", "test-secret-0123456789abcdef")
    site.set_config(
        site.config.read_text("utf-8")
        + "newsletter:\n  from: 'T <news@blog.syndicate.test>'\n"
        + "  max_posts: 2\nschedule:\n  newsletter: '0 8 * * mon'\n"
    )
    subscribe = invoke("subscribers", "add", "a@example.org", "--config", site.config)
    assert subscribe.exit_code == 0, subscribe.stderr
    site.write_post("first.md", post("First", "2025-08-20", "First body."))
    first = invoke("run", "--once", "--config", site.config, "--now", "2025-08-31T09:00:00Z")
    assert "queued for 1 subscribers" in first.stdout, first.stdout  # the first digest
    for n in range(4):
        site.write_post(f"p{n}.md", post(f"Post {n}", f"2025-08-31T1{n}:00:00Z", f"Body {n}."))
    old = (datetime.now() - timedelta(hours=1)).timestamp()
    for path in site.posts.iterdir():
        os.utime(path, (old, old))
    # Monday before the slot: the new posts are published and cached, no digest yet.
    before = invoke("run", "--once", "--config", site.config, "--now", "2025-09-01T07:00:00Z")
    assert before.exit_code == 0 and "queued" not in before.stdout, before.stdout

    import syndicate.content.posts

    parsed: list[str] = []
    real_parse = syndicate.content.posts.parse_post

    def counting_parse(data: bytes, source: str, *args: object, **kw: object) -> object:
        parsed.append(Path(source).name)
        return real_parse(data, source, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(syndicate.content.posts, "parse_post", counting_parse)
    at_slot = invoke("run", "--once", "--config", site.config, "--now", "2025-09-01T08:00:00Z")
    assert at_slot.exit_code == 0, at_slot.stderr
    assert "queued for 1 subscribers" in at_slot.stdout
    assert parsed == []
    (message,) = [m for m in (site.root / "outbox").iterdir() if "Body 3." in m.read_text()]
    text = message.read_text("utf-8")
    assert "Body 2." in text  # the bodies came back from the cache
    assert "Post 1" not in text and "First" not in text  # max_posts: 2


@pytest.mark.slow
def test_publishing_does_not_import_the_newsletter() -> None:
    """`build` and the publishing cycle stand alone: the newsletter is a job the caller
    adds, not something the pipeline imports."""
    code = (
        "import sys, syndicate.runs.pipeline;"
        "print(sorted(m for m in sys.modules if m.startswith(('syndicate.delivery',"
        " 'syndicate.newsletter'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_preview_does_not_create_the_cache(site: Site, invoke: Callable[..., Result]) -> None:
    """`digest --preview` reads posts in full: it has no use for the per-post cache and
    leaves none behind (the digest of a run takes its bodies from the cache)."""
    site.set_config(
        site.config.read_text("utf-8") + "newsletter:\n  from: 'T <news@blog.syndicate.test>'\n"
    )
    site.write_post("a.md", post("A", "2025-05-01", "Body A."))
    result = invoke(
        "digest", "--preview", "--config", site.config, "--now", "2025-05-02", cwd=site.root
    )
    assert result.exit_code == 0, result.stderr
    assert "Body A." in (site.public / "newsletter" / "preview.txt").read_text("utf-8")
    assert not cache_file(site).exists()


@pytest.mark.parametrize("disk", ["writable", "full"])
def test_a_full_run_keeps_rendered_posts_in_the_spool_not_in_memory(
    site: Site, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, disk: str
) -> None:
    """render_posts with a PartsSpool hands back the posts without their HTML (the parent
    holds none of it: 80 MB at 10,000 posts, and the feed workers copied what they
    touched); the feed workers read each post's parts back, so every feed carries every
    body. A temporary file that cannot be written (a full disk) keeps them in memory."""
    import tempfile

    from syndicate.config import load_config
    from syndicate.content.posts import open_cache, read_posts
    from syndicate.runs import pipeline

    if disk == "full":

        def no_space(*args: object, **kwargs: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(tempfile, "TemporaryFile", no_space)
    count = 230  # enough for forked workers, in rendering and in building the feeds
    site.set_config(SITE_CONFIG + "feeds:\n  limit: 300\n")
    for number in range(count):
        site.write_post(f"p{number}.md", post(f"P{number}", body=f"Body {number}, é."))
    config = load_config(site.config)
    with open_cache(config) as cache:
        catalog = read_posts(config, cache=cache)
        spool = pipeline.PartsSpool()
        result = pipeline.render_posts(list(catalog.posts), config, cache, spool)
        plain = pipeline.render_posts(list(catalog.posts), config, cache)
    for key, spooled in result.items():
        assert isinstance(spooled, Post) and spooled.html is None and spool.holds(key)
        assert spool.rendered(spooled) == plain[key]
    assert bool(spool._kept) is (disk == "full")
    spool.close()
    assert invoke("build", "--now", "2026-01-01T00:00:00Z", cwd=site.root).exit_code == 0
    for name in ("feed.xml", "atom.xml", "feed.json"):
        text = (site.public / name).read_text("utf-8")
        assert all(f"Body {number}, é." in text for number in range(count)), name
