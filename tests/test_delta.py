"""The cron path for a few changed posts (syndicate.runs.delta) against the full path.

Two copies of one site go through the same random series of adds, edits, renames,
deletes, drafts, touches, back-dated and scheduled posts, config changes and template
changes: site A as cron runs it (shortcut, delta run, cache), site B with the cache off
(SYNDICATE_NO_CACHE: every run the full path). After every step both print the same,
write byte-identical feeds, and hold the same state rows; at the end a cold build of A's
posts writes the same feeds again.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syndicate import resources

from .conftest import SITE_CONFIG, Result, Site, cli_modules, post
from .twin_sites import outputs, run_twins, spy_delta_runs, state_rows, twin_sites

TAGS = ["Python", "python", "Rust", "Go Lang", "go-lang", "Writing", "SQLite", "Tools"]
WORDS = ["quiet", "cron", "feeds", "notes", "fast", "small", "sure", "plain", "tidy"]
START = datetime(2025, 6, 1, tzinfo=UTC)


def config_text(limit: int, archive: bool = False) -> str:
    """Small feeds, so that a post moves in and out of them; with `archive`, RFC 5005
    pages of 2 for every family."""
    text = SITE_CONFIG + f"feeds:\n  limit: {limit}\n  per_tag: true\n  per_category: true\n"
    if archive:
        text += "  archive: true\n  archive_per_tag: true\n  archive_page_size: 2\n"
    return text


@dataclass
class Series:
    """One random series of content changes, applied to every site alike."""

    rng: random.Random
    sites: list[Site]
    templates: Path
    posts: dict[str, dict[str, str]] = field(default_factory=dict)  # file name -> fields
    limit: int = 3
    archive: bool = False
    serial: int = 0

    def write(self, name: str) -> None:
        fields = dict(self.posts[name])
        title, date, body = fields.pop("title"), fields.pop("date"), fields.pop("body")
        for site in self.sites:
            site.write_post(name, post(title, date, body, **fields))

    def remove(self, name: str) -> None:
        for site in self.sites:
            (site.posts / name).unlink()

    def new_fields(self, now: datetime) -> dict[str, str]:
        self.serial += 1
        words = " ".join(self.rng.sample(WORDS, 2)).title()
        # Some titles come back (a slug taken: -2, -3 ...), some end like a numbered slug.
        title = self.rng.choice([f"{words} {self.serial}"] * 3 + ["Cron Notes", "Cron Notes 2"])
        offset = self.rng.choice([-400, -30, -2, -1, 0, 1, 3])  # a few scheduled ones
        date = (now + timedelta(days=offset, hours=self.rng.randint(-5, 5))).isoformat()
        tags = ", ".join(self.rng.sample(TAGS, self.rng.randint(0, 3)))
        fields = {"title": title, "date": date, "body": f"Body {self.serial}.", "tags": f"[{tags}]"}
        if self.rng.random() < 0.5:
            fields["categories"] = self.rng.choice(["[notes]", "[essays]", "[notes, essays]"])
        if self.rng.random() < 0.15:  # two files may claim one id
            fields["id"] = f'"urn:syndicate-test:{self.rng.randint(1, 3)}"'
        return fields

    def step(self, now: datetime) -> str:
        """Apply one random change; -> what it was."""
        names = sorted(self.posts)
        edits = ["body", "title", "tags", "date", "rename", "delete", "draft", "touch", "warn"]
        edits.append("clean")
        kind = self.rng.choice(
            ["add"] * 4 + (edits if names else []) + ["config", "template", "nothing"]
        )
        name = self.rng.choice(names) if names else ""
        if kind == "add":
            name = f"p{self.serial + 1}-{self.rng.randint(0, 9)}.md"
            self.posts[name] = self.new_fields(now)
            self.write(name)
        elif kind in ("rename", "delete", "touch"):
            self.move(kind, name)
        elif kind in ("config", "template"):
            self.setting(kind)
        elif kind != "nothing":
            self.posts[name] = self.edited(kind, self.posts[name], now)
            self.write(name)
        return kind

    def edited(self, kind: str, fields: dict[str, str], now: datetime) -> dict[str, str]:
        """A post's fields after one kind of edit (a control character in the body: a
        warning on every run, until it is cleaned)."""
        fields = dict(fields)
        if kind in ("title", "tags", "date"):
            fields[kind] = self.new_fields(now)[kind]
        elif kind == "body":
            fields["body"] += " More."
        elif kind in ("warn", "clean"):
            fields["body"] = fields["body"].replace(" \x01", "") + (" \x01" * (kind == "warn"))
        elif kind == "draft":
            fields["draft"] = "false" if fields.get("draft") == "true" else "true"
        return fields

    def move(self, kind: str, name: str) -> None:
        if kind == "rename":
            self.serial += 1
            fresh = f"moved-{self.serial}-{name}"
            self.posts[fresh] = self.posts.pop(name)
            self.remove(name)
            self.write(fresh)
        elif kind == "delete":
            del self.posts[name]
            self.remove(name)
        else:  # touch: a new stamp, the same bytes
            for site in self.sites:
                path = site.posts / name
                os.utime(path, ns=(path.stat().st_atime_ns, 10**18))

    def setting(self, kind: str) -> None:
        if kind == "config":
            self.limit = 7 - self.limit  # 3 <-> 4
            for site in self.sites:
                site.set_config(config_text(self.limit, self.archive))
        else:
            self.serial += 1
            xsl = self.templates / "feed.xsl"
            xsl.write_bytes(xsl.read_bytes() + f"<!-- {self.serial} -->\n".encode())


@pytest.fixture
def delta_runs(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    return spy_delta_runs(monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "archive"), [(1, False), (2, False), (3, True), (4, True)])
def test_the_cron_path_writes_what_the_full_path_writes(
    seed: int,
    archive: bool,
    tmp_path: Path,
    invoke: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
    delta_runs: list[bool],
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(resources.templates_dir(), templates)
    monkeypatch.setattr(resources, "templates_dir", lambda: templates)
    cron, full = twin_sites(tmp_path, config_text(3, archive))
    series = Series(random.Random(seed), [cron, full], templates, archive=archive)  # noqa: S311
    for _ in range(6):
        series.step(START)
    now = START
    done: list[str] = []
    for step in range(40):
        done.append(series.step(now) if step else "first")
        when = now.isoformat().replace("+00:00", "Z")
        got, want = run_twins(invoke, monkeypatch, cron, full, "run", "--once", "--now", when)
        context = f"seed {seed}, steps {done}"
        assert (got.exit_code, got.stdout, got.stderr) == (
            want.exit_code,
            want.stdout,
            want.stderr,
        ), context
        assert outputs(cron) == outputs(full), context
        assert state_rows(cron) == state_rows(full), context
        now += timedelta(hours=series.rng.choice([0, 1, 20]))
    assert sum(delta_runs) >= 8, f"the delta path was taken {sum(delta_runs)} times: {done}"
    cold = Site(tmp_path / "cold")
    shutil.copytree(cron.posts, cold.posts)
    cold.set_config(config_text(series.limit, archive))
    monkeypatch.setenv("SYNDICATE_NO_CACHE", "1")
    # At the last run's `now` (a later one may publish a scheduled post).
    assert invoke("build", "--config", cold.config, "--now", when, cwd=cold.root).exit_code == 0
    assert outputs(cold) == outputs(cron)


@pytest.mark.slow
def test_one_new_post_is_published_by_the_delta_run(
    site: Site, invoke: Callable[..., Result], delta_runs: list[bool]
) -> None:
    site.set_config(config_text(2))
    for day in range(1, 6):
        site.write_post(f"p{day}.md", post(f"P{day}", f"2025-05-0{day}", tags="[A, B]"))
    args = ("run", "--once", "--config", site.config, "--now", "2025-06-01T00:00:00Z")
    assert invoke(*args, cwd=site.root).exit_code == 0
    site.write_post("new.md", post("New", "2025-05-20", tags="[B, C]"))
    result = invoke(*args, "-v", cwd=site.root)
    assert delta_runs == [False, True] or delta_runs == [True]
    assert result.stdout.splitlines() == [
        "published: New <https://blog.syndicate.test/posts/new/>",
        "run 2: 9 files changed → public/",
    ]
    assert b"New" in (site.public / "tags" / "c" / "feed.xml").read_bytes()
    assert b"<title>P4</title>" in (site.public / "tags" / "a" / "feed.xml").read_bytes()
    assert b"<title>P4</title>" not in (site.public / "tags" / "b" / "feed.xml").read_bytes()


@pytest.mark.slow
def test_a_delta_run_imports_no_database_library(site: Site, invoke: Callable[..., Result]) -> None:
    """As cron starts it: one changed post is published without SQLAlchemy, and `status`
    (which reads the state with it) says what a full run would leave."""
    for day in range(1, 4):
        site.write_post(f"p{day}.md", post(f"P{day}", f"2025-05-0{day}"))
    args = ["run", "--once", "--now", "2025-06-01T00:00:00Z"]
    # Both runs as real processes: the record binds the installed distributions found on
    # sys.path, which in the test process other tests may have changed.
    assert cli_modules(args, site.root)[0] == 0
    site.write_post("p4.md", post("P4", "2025-05-04"))
    status, stdout, loaded = cli_modules(args, site.root)
    assert (status, stdout) == (0, "published: P4 <https://blog.syndicate.test/posts/p4/>\n")
    assert "sqlalchemy" not in {m.split(".")[0] for m in loaded}
    assert "syndicate.runs.delta" in loaded
    status = invoke("status", "--now", "2025-06-01T00:00:00Z", cwd=site.root)
    assert status.exit_code == 0 and "P4" in status.stdout


@pytest.mark.slow
def test_a_file_name_that_is_not_utf8_is_kept_in_the_index(
    site: Site, invoke: Callable[..., Result], delta_runs: list[bool]
) -> None:
    """Its warning is printed by the delta run as by the full one; the new post is
    published without reading it again."""
    odd = os.fsencode(site.posts) + b"/caf\xe9.md"
    Path(os.fsdecode(odd)).write_text(post("Cafe", "2025-05-01"), encoding="utf-8")
    args = ("run", "--once", "--now", "2025-06-01T00:00:00Z")
    first = invoke(*args, cwd=site.root)
    assert first.exit_code == 0 and "not valid UTF-8" in first.stderr
    site.write_post("new.md", post("New", "2025-05-02"))
    second = invoke(*args, cwd=site.root)
    assert delta_runs[-1] is True
    assert (second.exit_code, second.stderr) == (0, first.stderr)
    assert second.stdout == "published: New <https://blog.syndicate.test/posts/new/>\n"
