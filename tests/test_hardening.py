"""One bad file, one bad value, one bad URL: a clear diagnostic, never a hang, a crash or
gigabytes of output; the other posts still publish."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import feedparser
import pytest

from .conftest import FIXED_NOW, SITE_CONFIG, Result, Site, post, run_subprocess

# Nesting Python-Markdown recurses on until it fails. (Lists 400 levels deep did until
# Markdown 3.11, which caps lists at ~225 levels and quotes at ~300.)
DEEP_LIST = '<div markdown="1">\n' * 700 + "x\n" + "</div>\n" * 700


def bounded_run(*args: str | Path, cwd: Path, timeout: float = 20) -> Result:
    """The CLI as cron runs it, killed if it takes longer than `timeout` (a hang fails the
    test instead of hanging the suite), its output read up to 1 MB."""
    process = subprocess.Popen(
        [sys.executable, "-m", "syndicate", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"syndicate {' '.join(map(str, args))} took more than {timeout} s")
    assert len(out) + len(err) < 1_000_000, f"{len(out) + len(err)} bytes of output"
    return Result(process.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def feed_titles(site: Site) -> set[str]:
    return {e.title for e in feedparser.parse((site.public / "feed.xml").read_bytes()).entries}


# --- files that are not posts --------------------------------------------------------


@pytest.mark.slow
def test_fifo_socket_device_and_dangling_link_are_diagnostics_not_hangs(site: Site) -> None:
    site.write_post("good.md", post("Good"))
    os.mkfifo(site.posts / "pipe.md")
    (site.posts / "dangling.md").symlink_to(site.posts / "nowhere.md")
    (site.posts / "zero.md").symlink_to("/dev/zero")
    server = socket.socket(socket.AF_UNIX)
    short = Path(tempfile.mkdtemp(prefix="syn-", dir="/tmp"))  # AF_UNIX paths are short
    try:
        server.bind(str(short / "sock.md"))
        site.set_config(SITE_CONFIG.replace("paths: [posts]", f"paths: [posts, {short}]"))
        for command in (("run", "--once"), ("status",), ("build",), ("check",)):
            result = bounded_run(*command, "--now", FIXED_NOW, cwd=site.root)
            assert "Traceback" not in result.stderr and "internal error" not in result.stderr
            if command == ("status",):
                continue
            assert result.exit_code == 1, (command, result.stderr)
            lines = sorted(line for line in result.stderr.splitlines() if ": error: " in line)
            assert lines == [
                f"{short}/sock.md: error: is a socket, not a regular file; skipped",
                "posts/dangling.md: error: cannot read: no such file "
                "(a symbolic link to a missing file)",
                "posts/pipe.md: error: is a named pipe (FIFO), not a regular file; skipped",
                "posts/zero.md: error: is a character device, not a regular file; skipped",
            ], command
        assert feed_titles(site) == {"Good"}
    finally:
        server.close()
        (short / "sock.md").unlink(missing_ok=True)
        short.rmdir()


@pytest.mark.slow
def test_a_content_path_that_is_a_fifo_is_a_diagnostic(site: Site) -> None:
    os.mkfifo(site.root / "pipe.md")
    result = bounded_run("build", "--content", "pipe.md", "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 1
    assert "pipe.md: error: is a named pipe (FIFO)" in result.stderr


@pytest.mark.slow
def test_file_name_that_is_not_utf8_is_published_with_a_warning(site: Site) -> None:
    """Before: 'internal error: UnicodeEncodeError ... surrogates', at every later run too."""
    site.write_post("good.md", post("Good"))
    name = os.fsencode(site.posts) + b"/caf\xe9.md"
    with open(name, "wb") as file:  # noqa: PTH123 - a bytes path
        file.write(post("Latin-1 name", "2025-05-02").encode())
    for now in (FIXED_NOW, "2025-09-02T00:00:00Z"):  # the next run works too
        result = bounded_run("run", "--once", "--now", now, cwd=site.root)
        assert result.exit_code == 0, result.stderr
        assert result.stderr.startswith(
            "posts/caf\\xe9.md: warning: the file name is not valid UTF-8 (shown with \\x escapes)"
        )
        assert "Traceback" not in result.stderr
    assert feed_titles(site) == {"Good", "Latin-1 name"}
    status = bounded_run("status", "--now", FIXED_NOW, cwd=site.root)
    assert status.exit_code == 0 and "posts: 2 published" in status.stdout


# --- posts that cannot be rendered ---------------------------------------------------


@pytest.mark.slow
def test_a_post_that_cannot_be_rendered_is_skipped_with_its_reason(site: Site) -> None:
    site.write_post("good.md", post("Good"))
    site.write_post("deep.md", post("Deep", "2025-05-02", body=DEEP_LIST))
    result = bounded_run("run", "--once", "-v", "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 1
    assert result.stderr.startswith("posts/deep.md:6: error: the body cannot be rendered: it is")
    assert "published: Good" in result.stdout and "Deep" not in result.stdout
    assert feed_titles(site) == {"Good"}
    # reported again by the next run (not taken as published), and again by build
    again = bounded_run("run", "--once", "--now", "2025-09-02T00:00:00Z", cwd=site.root)
    assert (again.exit_code, again.stdout) == (1, "")
    assert "posts/deep.md:6: error: the body cannot be rendered" in again.stderr
    build = bounded_run("build", "--now", FIXED_NOW, cwd=site.root)
    assert build.exit_code == 1 and "posts/deep.md:6: error" in build.stderr
    assert "1 post published" in build.stdout
    check = bounded_run("check", "--now", FIXED_NOW, cwd=site.root)
    assert check.exit_code == 1 and "posts/deep.md:6: error: the body cannot" in check.stderr


@pytest.mark.slow
def test_a_post_that_cannot_be_rendered_makes_room_for_the_next(site: Site) -> None:
    """feeds.limit counts published posts: a newest post that fails leaves its place to
    the next one, and so does that one if it fails too (the feeds planned again)."""
    site.set_config(SITE_CONFIG + "feeds:\n  limit: 2\n")
    for day, title in enumerate(("Oldest", "Older", "Old"), start=1):
        site.write_post(f"{title.lower()}.md", post(title, f"2025-05-0{day}"))
    site.write_post("deep.md", post("Deep", "2025-05-08", body=DEEP_LIST))
    site.write_post("deeper.md", post("Deeper", "2025-05-07", body=DEEP_LIST))
    result = bounded_run("run", "--once", "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 1 and result.stderr.count("cannot be rendered") == 2
    assert feed_titles(site) == {"Old", "Older"}
    site.write_post("deeper.md", post("Deeper", "2025-05-07"))  # fixed: in, Older out
    again = bounded_run("run", "--once", "--now", FIXED_NOW, cwd=site.root)
    assert again.exit_code == 1 and again.stderr.count("cannot be rendered") == 1
    assert feed_titles(site) == {"Deeper", "Old"}


@pytest.mark.slow
def test_a_state_database_that_cannot_open_stops_the_reading_begun_meanwhile(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """`run --once` begins reading the posts (in forked workers) while the state database
    opens: when it cannot, the run ends with the error, no worker left behind; once the
    database is fixed, the next run publishes every post."""
    import multiprocessing

    for number in range(260):  # enough for worker processes
        site.write_post(f"p{number}.md", post(f"P{number}", "2025-05-01"))
    (site.root / "state").mkdir()
    (site.root / "state" / "syndicate.db").write_bytes(b"not a database" * 300)
    failed = invoke("run", "--once", "--now", FIXED_NOW, cwd=site.root)
    assert failed.exit_code == 1 and failed.stdout == ""
    assert failed.stderr.startswith("syndicate: error: cannot open the state database")
    assert "Traceback" not in failed.stderr
    assert multiprocessing.active_children() == []
    (site.root / "state" / "syndicate.db").unlink()
    again = invoke("run", "--once", "--now", FIXED_NOW, cwd=site.root)
    assert again.exit_code == 0 and again.stdout.count("published: ") == 260


@pytest.mark.slow
def test_a_failure_while_the_workers_run_leaves_no_worker_and_no_temporary_file(
    site: Site, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug that stops the run while forked workers render or build feeds: the workers
    stop with it (none left rendering once the lock is gone) and the feed files they had
    written beside their targets are swept; the next run publishes everything."""
    import multiprocessing

    from syndicate import workers
    from syndicate.content.cache import PostCache
    from syndicate.runs import pipeline

    monkeypatch.setattr(workers, "MIN_ITEMS", 2)
    for number in range(40):
        site.write_post(f"p{number}.md", post(f"P{number}", tags=f"[t{number % 7}]"))
    site.set_config(SITE_CONFIG + "feeds:\n  per_tag: true\n")
    real_save, real_build = PostCache.save_rendered, pipeline.build_feed

    def save_some(self: PostCache, rows: Any) -> None:
        for number, _row in enumerate(rows):
            if number == 3:
                raise RuntimeError("a bug while the workers render")

    def build_or_fail(spec: Any, config: Any, fmt: str) -> bytes:
        if spec.path == "tags/t3":
            raise RuntimeError("a bug in one feed")
        return real_build(spec, config, fmt)

    for where, broken in (
        (PostCache, ("save_rendered", save_some)),
        (pipeline, ("build_feed", build_or_fail)),
    ):
        with monkeypatch.context() as patch:
            patch.setattr(where, *broken)
            failed = invoke("run", "--once", "--now", FIXED_NOW, cwd=site.root)
        assert failed.exit_code == 70 and "internal error" in failed.stderr, failed.stderr
        assert multiprocessing.active_children() == []
        assert list(site.root.rglob(".*.tmp")) == []
    assert PostCache.save_rendered is real_save
    again = invoke("run", "--once", "--now", FIXED_NOW, cwd=site.root)
    assert again.exit_code == 0 and again.stdout.count("published: ") == 40


@pytest.mark.slow
def test_render_failures_are_caught_in_the_forked_workers(site: Site) -> None:
    """Over 200 posts to render: rendering runs in forked worker processes."""
    site.set_config(SITE_CONFIG + "feeds:\n  limit: 500\n")
    for n in range(230):
        site.write_post(f"p{n:03}.md", post(f"Post {n}", f"2025-0{1 + n % 8}-{1 + n % 28:02}"))
    site.write_post("deep.md", post("Deep", "2025-05-02", body=DEEP_LIST))
    result = bounded_run("build", "--now", FIXED_NOW, cwd=site.root, timeout=60)
    assert result.exit_code == 1, result.stderr
    assert result.stderr.startswith("posts/deep.md:6: error: the body cannot be rendered")
    assert len(feed_titles(site)) == 230 and "Deep" not in feed_titles(site)


@pytest.mark.slow
def test_the_render_time_limit_holds_in_the_forked_workers(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over 200 posts to render, each sent to a worker with its body: SIGALRM still cuts
    the slow one there, and the others publish."""
    monkeypatch.setenv("SYNDICATE_RENDER_SECONDS", "1")
    site.set_config(SITE_CONFIG + "feeds:\n  limit: 500\n")
    for n in range(230):
        site.write_post(f"p{n:03}.md", post(f"Post {n}", f"2025-0{1 + n % 8}-{1 + n % 28:02}"))
    site.write_post("slow.md", post("Slow", "2025-05-02", body="[a](" * 5_000))
    started = time.monotonic()
    result = bounded_run("run", "--once", "--now", FIXED_NOW, cwd=site.root, timeout=60)
    assert time.monotonic() - started < 30
    assert result.exit_code == 1, result.stderr
    assert result.stderr.startswith("posts/slow.md:6: error: the body took more than 1 s")
    assert len(feed_titles(site)) == 230 and "Slow" not in feed_titles(site)


def test_a_crash_inside_the_markdown_renderer_skips_only_that_post(
    site: Site, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a Markdown extension (injected: no real post triggers one) is one
    diagnostic, not an internal error."""
    import syndicate.content.markup

    real = syndicate.content.markup.render_markdown

    def flaky(body: str, base_url: str, sanitize: bool = True) -> syndicate.content.markup.Rendered:
        if "TRIGGER" in body:
            raise IndexError("list index out of range")
        return real(body, base_url, sanitize)

    monkeypatch.setattr("syndicate.content.posts.render_markdown", flaky)
    site.write_post("good.md", post("Good"))
    site.write_post("buggy.md", post("Buggy", body="TRIGGER"))
    result = invoke("build", "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 1
    assert result.stderr == (
        "posts/buggy.md:6: error: the body cannot be rendered "
        "(IndexError: 'list index out of range'); the post is skipped\n"
    )
    assert feed_titles(site) == {"Good"}


# --- YAML alias bombs and sizes --------------------------------------------------------

BOMB = "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


@pytest.mark.slow
def test_alias_bomb_in_config_is_refused_fast(site: Site) -> None:
    text = SITE_CONFIG + "x-bomb:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    text += "".join("  " + line for line in BOMB.splitlines(keepends=True))
    site.set_config(text)
    assert len(site.config.read_bytes()) < 1024
    started = time.monotonic()
    result = bounded_run("run", "--once", "--now", FIXED_NOW, cwd=site.root)
    assert time.monotonic() - started < 20
    assert result.exit_code == 2
    assert result.stderr.startswith("config.yaml:")
    assert "error: invalid YAML: aliases expand to more than 10,000 values" in result.stderr
    assert len(result.stderr) < 1000


@pytest.mark.slow
def test_alias_bomb_in_a_post_is_one_error_and_the_others_publish(site: Site) -> None:
    site.write_post("good.md", post("Good"))
    bomb = "---\ntitle: Bomb\ndate: 2025-05-01\na: &a [lol, lol, lol, lol, lol, lol, lol, lol]\n"
    site.write_post("bomb.md", bomb + BOMB + "tags: *i\n---\nBody\n")
    result = bounded_run("build", "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert errors[0].startswith("posts/bomb.md:")
    assert "invalid YAML front matter: aliases expand to more than 10,000 values" in errors[0]
    assert len(result.stderr) < 1000
    assert feed_titles(site) == {"Good"}


def test_modest_aliases_still_work(site: Site, invoke: Callable[..., Result]) -> None:
    site.write_post("a.md", "---\ntitle: A\ndate: 2025-05-01\nt: &t [x, y]\ntags: *t\n---\nB\n")
    result = invoke("build", "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 0, result.stderr


@pytest.mark.slow
def test_recursive_alias_is_an_error(site: Site) -> None:
    site.write_post("good.md", post("Good"))
    site.write_post("loop.md", "---\ntitle: Loop\ndate: 2025-05-01\nx: &x [1, *x]\n---\nB\n")
    result = bounded_run("build", "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 1
    assert "posts/loop.md:4: error: invalid YAML front matter: an alias refers to" in result.stderr


@pytest.mark.slow
def test_every_value_quoted_in_a_message_is_capped(site: Site) -> None:
    """A huge value is shown in at most ~200 characters, whatever message quotes it."""
    site.write_post("good.md", post("Good"))
    site.write_post("d.md", f"---\ntitle: D\ndate: {'x' * 100_000}\n---\nB\n")
    site.write_post("t.md", f"---\ntitle: T\ndate: 2025-05-01\ntags: [[{'y' * 100_000}]]\n---\nB\n")
    result = bounded_run("build", "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 4 and all(len(line) < 700 for line in lines), lines
    site.set_config(SITE_CONFIG + f"feeds:\n  limit: [{'z' * 100_000}]\n")
    config = bounded_run("build", "--now", FIXED_NOW, cwd=site.root)
    assert config.exit_code == 2
    line = SITE_CONFIG.count("\n") + 2
    assert config.stderr.startswith(f"config.yaml:{line}: error: feeds.limit: expected a whole")
    assert len(config.stderr) < 700


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["yaml", "toml"])
def test_oversized_front_matter_is_refused(site: Site, kind: str) -> None:
    site.write_post("good.md", post("Good"))
    filler = "x" * 200_000
    if kind == "yaml":
        text = f"---\ntitle: Big\ndate: 2025-05-01\nnotes: {filler}\n---\nB\n"
    else:
        text = f'+++\ntitle = "Big"\ndate = 2025-05-01\nnotes = "{filler}"\n+++\nB\n'
    site.write_post("big.md", text)
    result = bounded_run("build", "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"posts/big.md:1: error: {kind.upper()} front matter is 195 KB, more than the 128 KB allowed"
    )
    assert feed_titles(site) == {"Good"}


@pytest.mark.slow
def test_oversized_config_is_refused(site: Site) -> None:
    site.set_config(SITE_CONFIG + "# " + "x" * 2_000_000 + "\n")
    result = bounded_run("build", "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 2
    assert result.stderr.startswith("config.yaml: error: config file is larger than 1024 KB")


# --- state.url -------------------------------------------------------------------------

STATE_LINE = SITE_CONFIG.count("\n") + 2  # the line of "url:" under "state:"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://syn:s3cret-pw@db.internal:54x32/syn", "is not a valid database URL"),
        ("postgresql://syn:s3cret-pw@db.internal:99999/syn", "port 99999 is not 1-65535"),
        ("postgresql://syn:s3cret-pw@[::1/syn", "is not a valid database URL"),
        ("nosuchdb://syn:s3cret-pw@db.internal/syn", "unknown database 'nosuchdb'"),
        ("postgresql+asyncpg://syn:s3cret-pw@db/syn", "driver for 'postgresql+asyncpg'"),
        ("just garbage s3cret-pw", "is not a database URL"),
        # in memory: every run would start empty and announce every post again
        ("sqlite://", "is an in-memory database"),
        ("sqlite:///:memory:", "is an in-memory database"),
        ("sqlite:///state.db?mode=memory", "is an in-memory database"),
    ],
)
def test_unusable_state_url_is_a_config_error(
    site: Site, invoke: Callable[..., Result], url: str, message: str
) -> None:
    site.set_config(SITE_CONFIG + f"state:\n  url: '{url}'\n")
    for command in (
        ("run", "--once"),
        ("status",),
        ("send", "--dry-run"),
        ("digest", "--preview"),
        ("subscribers", "list"),
    ):
        result = invoke(*command, cwd=site.root)
        assert result.exit_code == 2, (command, result.stderr)
        assert result.stderr.startswith(f"config.yaml:{STATE_LINE}: error: state.url: "), (
            result.stderr
        )
        assert message in result.stderr and "\n  hint: " in result.stderr
        assert "s3cret-pw" not in result.stderr + result.stdout
        assert "internal error" not in result.stderr


@pytest.mark.slow
def test_bad_state_url_exits_2_through_a_real_process(site: Site) -> None:
    site.set_config(SITE_CONFIG + "state:\n  url: 'postgresql://u:pw@h:bad/db'\n")
    result = run_subprocess("run", "--once", cwd=site.root)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"config.yaml:{STATE_LINE}: error: state.url: is not a valid database URL"
    )


@pytest.mark.slow
def test_a_post_that_cannot_be_rendered_stays_out_of_the_digest(
    site: Site, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNDICATE_SECRET", "0123456789abcdef0123456789")
    site.set_config(SITE_CONFIG + "newsletter:\n  full_content: true\n")
    site.write_post("good.md", post("Good", "2025-08-30"))
    site.write_post("deep.md", post("Deep", "2025-08-30", body=DEEP_LIST))
    assert invoke("subscribers", "add", "reader@example.org", cwd=site.root).exit_code == 0
    preview = invoke("digest", "--preview", "--now", "2025-09-01T09:00:00Z", cwd=site.root)
    assert preview.exit_code == 0, preview.stderr
    result = invoke("run", "--once", "-v", "--now", "2025-09-01T09:00:00Z", cwd=site.root)
    assert result.exit_code == 1
    assert "digest 'Test Site: 1 new post': queued for 1 subscribers" in result.stdout
    (message,) = (site.root / "outbox").rglob("*.eml")
    assert b"Good" in message.read_bytes() and b"Deep" not in message.read_bytes()


@pytest.mark.slow
def test_posts_rendered_after_a_failure_come_out_right() -> None:
    """A failed conversion must not poison the Markdown renderer shared by the posts after
    it (one process renders for ever in the daemon). Where the RecursionError strikes
    depends on how deep the stack already is, so try it at many depths."""
    from syndicate.content.markup import render_markdown

    def at_depth(depth: int) -> None:
        if depth:
            at_depth(depth - 1)
            return
        with pytest.raises(RecursionError):
            render_markdown(DEEP_LIST, "https://blog.syndicate.test/posts/deep/")

    for depth in range(10):
        at_depth(depth)
        html = render_markdown("A [link](../x/) here.", "https://blog.syndicate.test/posts/p/").html
        assert html == '<p>A <a href="https://blog.syndicate.test/posts/x/">link</a> here.</p>', (
            depth
        )


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        # Python-Markdown: quadratic in unclosed links (3.11 made "[ " * 12_000 fast, not this)
        ("markdown", "[a](" * 5_000),
        ("html", "<div>" * 150_000),  # html5ever (nh3): quadratic in nesting
        ("html-self-closing", "<div/>" * 150_000),  # html: <div/> opens a div
    ],
)
@pytest.mark.slow
def test_a_post_that_renders_for_too_long_is_skipped_and_the_others_publish(
    site: Site, monkeypatch: pytest.MonkeyPatch, kind: str, body: str
) -> None:
    """Some inputs make the parsers slow down quadratically (a 24 KB post of '[ ' took a
    minute; a bigger one holds the run lock for hours). Past SYNDICATE_RENDER_SECONDS
    (20 by default) the post is one diagnostic and the others publish. Deeply nested raw
    HTML, which slows the Rust sanitiser where no time limit reaches, is refused by depth."""
    monkeypatch.setenv("SYNDICATE_RENDER_SECONDS", "1")
    site.write_post("good.md", post("Good"))
    site.write_post("slow.md", post("Slow", "2025-05-02", body=body))
    started = time.monotonic()
    result = bounded_run("run", "--once", "-v", "--now", FIXED_NOW, cwd=site.root, timeout=30)
    assert time.monotonic() - started < 20
    assert result.exit_code == 1, result.stderr
    reason = "took more than 1 s to render" if kind == "markdown" else "cannot be rendered: it is"
    assert result.stderr.startswith(f"posts/slow.md:6: error: the body {reason}"), result.stderr
    assert "published: Good" in result.stdout and "Slow" not in result.stdout
    assert feed_titles(site) == {"Good"}


@pytest.mark.parametrize(
    "nesting",
    [
        "x: " + "[" * 50_000 + "]" * 50_000,  # flow collections
        "x:\n" + "- " * 30_000 + "a",  # block sequences on one line
        "? " * 30_000 + "a",  # complex keys
        "x: " + "{a: " * 20_000 + "1" + "}" * 20_000,
    ],
)
@pytest.mark.slow
def test_deeply_nested_front_matter_is_one_error_not_a_crash(site: Site, nesting: str) -> None:
    """libyaml's composer recurses once per level: 60 KB of nesting (under the size cap,
    no alias) overflowed the C stack and killed every run with SIGSEGV, no message at all.
    Nesting is counted on the event stream first."""
    site.write_post("good.md", post("Good"))
    site.write_post("nested.md", f"---\ntitle: Nested\ndate: 2025-05-02\n{nesting}\n---\nx\n")
    result = bounded_run("run", "--once", "-v", "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 1, (result.exit_code, result.stderr[:500])
    first, hint = result.stderr.splitlines()[:2]
    assert first.startswith("posts/nested.md:")
    assert first.endswith(
        "error: invalid YAML front matter: values nested more than 100 levels deep"
    )
    assert hint == "  hint: front matter is metadata: a few levels of lists and mappings at most"
    assert "published: Good" in result.stdout
    assert feed_titles(site) == {"Good"}
