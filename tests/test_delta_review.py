"""Review cases for the delta run (syndicate.runs.delta): each one a series of changes
applied to two copies of a site, one run as cron runs it (shortcut, delta, cache), one
with SYNDICATE_NO_CACHE (the full path every time), compared after every run."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from syndicate.content.cache import PostCache
from syndicate.runs import delta
from syndicate.runs.siteindex import SiteIndex

from .conftest import SITE_CONFIG, Result, Site, post
from .twin_sites import outputs, run_twins, spy_delta_runs, state_rows, twin_sites

# Each runs a site through two paths, a few runs each (~0.5 s): the slow tier.
pytestmark = pytest.mark.slow


@dataclass
class Pair:
    """Two copies of one site: `cron` (every path) and `full` (SYNDICATE_NO_CACHE)."""

    cron: Site
    full: Site
    invoke: Callable[..., Result]
    monkeypatch: pytest.MonkeyPatch
    taken: list[bool]

    @property
    def sites(self) -> tuple[Site, Site]:
        return (self.cron, self.full)

    def write(self, name: str, text: str | bytes) -> None:
        for site in self.sites:
            site.write_post(name, text)

    def remove(self, name: str) -> None:
        for site in self.sites:
            (site.posts / name).unlink()

    def config(self, text: str) -> None:
        for site in self.sites:
            site.set_config(text)

    def run(self, now: str, *extra: str, every_run: bool = True) -> bool | None:
        """Run both at `now`, compare (every runs row, or the last one but its id); ->
        whether the delta run answered (None: not asked)."""
        before = len(self.taken)
        args = ("run", "--once", "--now", now, *extra)
        got, want = run_twins(self.invoke, self.monkeypatch, self.cron, self.full, *args)
        assert (got.exit_code, got.stdout, got.stderr) == (
            want.exit_code,
            want.stdout,
            want.stderr,
        )
        assert outputs(self.cron) == outputs(self.full)
        got_rows, want_rows = state_rows(self.cron), state_rows(self.full)
        assert got_rows[:3] == want_rows[:3]
        if every_run:
            assert got_rows[3] == want_rows[3]
        else:
            assert got_rows[3][-1][1:] == want_rows[3][-1][1:]
        return self.taken[-1] if len(self.taken) > before else None


@pytest.fixture
def pair(tmp_path: Path, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> Pair:
    taken = spy_delta_runs(monkeypatch)
    cron, full = twin_sites(tmp_path, SITE_CONFIG)
    return Pair(cron, full, invoke, monkeypatch, taken)


ARCHIVE = SITE_CONFIG + (
    "feeds:\n  limit: 2\n  per_tag: true\n  per_category: true\n  archive: true\n  archive_per_tag: true\n"
    "  archive_page_size: 2\n"
)
NOW = "2025-06-01T00:00:00Z"


def test_the_newest_post_respelling_its_tag_relabels_every_archive_page(pair: Pair) -> None:
    """A tag feed is labelled as its newest post spells the tag, and so are its archive
    pages' titles: all of them change, not only the page the post is on."""
    pair.config(ARCHIVE)
    for day in range(1, 5):
        pair.write(f"p{day}.md", post(f"P{day}", f"2025-05-0{day}", tags="[Python]"))
    pair.write("p5.md", post("P5", "2025-05-05", tags="[Python]", categories="[notes]"))
    for day in range(6, 10):  # the category "notes" has archive pages too
        pair.write(f"n{day}.md", post(f"N{day}", f"2025-04-0{day}", categories="[notes]"))
    pair.run(NOW)
    pair.write("p5.md", post("P5", "2025-05-05", tags="[PYTHON]", categories="[Notes]"))
    assert pair.run(NOW) is True
    pair.write("p5.md", post("P5", "2025-04-05", tags="[PYTHON]", categories="[Notes]"))
    assert pair.run(NOW) is True  # back-dated: P4 is the newest, spelling it "Python"


def test_a_damaged_index_takes_the_full_path(pair: Pair) -> None:
    """The index is disposable: one that opens but cannot be read (a table gone, pages
    garbled by a crash: it is written without fsync) means a full run, not a crash."""
    for day in range(1, 4):
        pair.write(f"p{day}.md", post(f"P{day}", f"2025-05-0{day}"))
    pair.run(NOW)
    with sqlite3.connect(pair.cron.root / "state" / "syndicate.db.cache-index") as db:
        db.execute("DROP TABLE members")
    pair.write("p4.md", post("P4", "2025-05-04"))
    assert pair.run(NOW) is False
    pair.write("p5.md", post("P5", "2025-05-05"))
    assert pair.run(NOW) is True  # the full run wrote a new index


def test_an_index_that_cannot_be_committed_leaves_the_next_run_to_the_full_path(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run is recorded by then: its report stands, and the next run is a full one."""
    for day in range(1, 4):
        pair.write(f"p{day}.md", post(f"P{day}", f"2025-05-0{day}"))
    pair.run(NOW)

    def fail(self: SiteIndex, run_id: int) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with monkeypatch.context() as patch:
        patch.setattr(SiteIndex, "commit", fail)
        pair.write("p4.md", post("P4", "2025-05-04"))
        assert pair.run(NOW) is True
    pair.write("p5.md", post("P5", "2025-05-05"))
    assert pair.run(NOW) is False
    pair.write("p6.md", post("P6", "2025-05-06"))
    assert pair.run(NOW) is True


def test_a_run_that_changed_nothing_leaves_the_delta_path_open(pair: Pair) -> None:
    """Cron runs every 15 minutes; most find nothing changed (the shortcut). The edit
    after one is still a delta run: the index moves on with the record."""
    for day in range(1, 4):
        pair.write(f"p{day}.md", post(f"P{day}", f"2025-05-0{day}"))
    pair.run(NOW)
    assert pair.run(NOW) is None  # the shortcut: nothing changed
    pair.write("p4.md", post("P4", "2025-05-04"))
    assert pair.run(NOW) is True
    assert pair.run("2025-06-01T00:15:00Z") is None
    pair.write("p4.md", post("P4", "2025-05-04", body="Edited."))
    assert pair.run("2025-06-01T00:30:00Z") is True


def test_a_run_without_the_cache_does_not_leave_its_old_entries_to_the_delta_run(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full run that could not open the cache (another command had it locked) still
    writes the record and the index, from posts the cache never saw: the cache's entry of
    a post edited before it is an older version, which the delta run must not build a
    feed from."""
    for day in range(1, 4):
        pair.write(f"p{day}.md", post(f"P{day}", f"2025-05-0{day}", tags="[A]"))
    pair.run(NOW)
    pair.write("p2.md", post("P2", "2025-05-02", body="Edited.", tags="[A]"))
    with monkeypatch.context() as patch:
        patch.setattr(PostCache, "_open", lambda self, path: None)  # "database is locked"
        assert pair.run(NOW) is False
    pair.write("p4.md", post("P4", "2025-05-04", tags="[A]"))
    pair.run(NOW)
    pair.write("p5.md", post("P5", "2025-05-05", tags="[A]"))
    pair.run(NOW)


class Killed(BaseException):
    """A kill -9 between two steps of a delta run, as far as the files are concerned."""


@pytest.mark.parametrize("where", ["write_outputs", "record_run", "ping_changed_feeds", "commit"])
def test_a_delta_run_killed_midway_leaves_the_next_run_to_finish_it(
    pair: Pair, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Killed after writing the feeds, the state, or the index: the next run (the full
    path, as the record no longer matches) leaves the site as a full run would have."""
    for day in range(1, 4):
        pair.write(f"p{day}.md", post(f"P{day}", f"2025-05-0{day}", tags="[A]"))
    pair.run(NOW)
    pair.write("p4.md", post("P4", "2025-05-04", tags="[A, B]"))
    target: object = SiteIndex if where == "commit" else delta
    real = getattr(target, where)

    def then_killed(*args: object, **kwargs: object) -> object:
        real(*args, **kwargs)
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(target, where, then_killed)
        with pytest.raises(Killed):
            pair.invoke("run", "--once", "--now", NOW, cwd=pair.cron.root)
    # The full site ran through; the cron site finishes now, printing what is left (a
    # run killed after the feeds were written counts no file written: they are there).
    pair.monkeypatch.setenv("SYNDICATE_NO_CACHE", "1")
    pair.invoke("run", "--once", "--now", NOW, cwd=pair.full.root)
    pair.monkeypatch.delenv("SYNDICATE_NO_CACHE")
    pair.invoke("run", "--once", "--now", NOW, cwd=pair.cron.root)
    assert pair.taken[-1] is False  # the record no longer matches: a full run
    assert outputs(pair.cron) == outputs(pair.full)
    assert state_rows(pair.cron)[:3] == state_rows(pair.full)[:3]
    pair.write("p5.md", post("P5", "2025-05-05", tags="[B]"))
    assert pair.run("2025-06-02T00:00:00Z", every_run=False) is True


def index_rows(site: Site) -> dict[str, list[tuple[object, ...]]]:
    """The site index's posts and members (its files name the folder, its meta the run)."""
    with sqlite3.connect(site.root / "state" / "syndicate.db.cache-index") as db:
        return {
            table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()  # noqa: S608
            for table in ("posts", "members")
        }


def full_run_index(site: Site, invoke: Callable[..., Result], now: str, tmp_path: Path) -> Site:
    """A copy of `site` whose next run takes the full path (its cache, record and index
    gone), run: its index is the one a full run writes."""
    import shutil

    copy = Site(tmp_path / "again")
    shutil.copytree(site.root, copy.root)
    for leftover in (copy.root / "state").glob("syndicate.db.cache*"):
        leftover.unlink()
    assert (
        invoke("run", "--once", "--now", now, "--config", copy.config, cwd=copy.root).exit_code == 0
    )
    return copy


def test_a_new_post_whose_title_is_taken_is_a_delta_run(
    pair: Pair, invoke: Callable[..., Result], tmp_path: Path
) -> None:
    """Real blogs repeat titles ("Weekly notes"): a post added, edited or deleted in a
    family of slugs gets, on the cron path, the slug a full run gives it (the next free
    `-n`), with the warnings a full run prints, in its order; a change that would move
    another post's slug takes the full path. The index says then what a full run's says
    (slugs, entangled, noted)."""
    pair.config(SITE_CONFIG + "feeds:\n  per_tag: true\n")
    for day in (1, 8, 15):
        pair.write(f"w{day}.md", post("Weekly Notes", f"2025-05-{day:02}", tags="[Notes]"))
    pair.write("other.md", post("Other", "2025-05-20", body="\x01 warned"))
    pair.write("solo.md", post("Solo", "2025-05-02"))
    pair.run(NOW)
    pair.write("w22.md", post("Weekly Notes", "2025-05-22", tags="[Notes]"))
    assert pair.run(NOW) is True  # weekly-notes-4
    assert "weekly-notes-4" in pair.cron.public.joinpath("feed.xml").read_text()
    pair.write("n2.md", post("Weekly Notes 2", "2025-05-23"))  # weekly-notes-2 is taken
    assert pair.run(NOW) is True  # weekly-notes-2-2
    pair.write("solo2.md", post("Solo", "2025-05-24"))  # a family of one until now
    assert pair.run(NOW) is True  # solo-2, and solo.md entangled
    pair.write("w9.md", post("Nine", "2025-05-25", slug="weekly-notes-9"))
    assert pair.run(NOW) is True  # its own slug, entangled with the weekly notes
    pair.write("w22.md", post("Weekly Notes", "2025-05-22", body="Fixed.", tags="[Notes]"))
    assert pair.run(NOW) is True  # the renamed post edited: its warning printed again
    pair.write("pa.md", post("Pair", "2025-05-03"))
    pair.write("pb.md", post("Pair", "2025-05-04"))
    assert pair.run(NOW) is True  # pair-2: its warning among the older ones, by date
    pair.remove("n2.md")
    assert pair.run(NOW) is True  # gone with its warning
    pair.remove("solo2.md")
    assert pair.run(NOW) is True  # solo.md no longer entangled
    assert index_rows(pair.cron) == index_rows(full_run_index(pair.cron, invoke, NOW, tmp_path))
    pair.write("w10.md", post("Weekly Notes", "2025-05-10", tags="[Notes]"))
    assert pair.run(NOW) is False  # older than weekly-notes-3: its slug would move
    pair.write("late.md", post("Other", "2025-05-19"))  # takes "other" from a newer post
    assert pair.run(NOW) is False
    pair.remove("w1.md")
    pair.write("a1.md", post("Weekly Notes", "2025-05-01", tags="[Notes]"))
    assert pair.run(NOW) is False  # the file others' warnings name is another now
    pair.remove("a1.md")
    assert pair.run(NOW) is False  # every other weekly note would move up


def test_two_new_posts_with_one_title_are_given_slugs_in_date_order(pair: Pair) -> None:
    pair.write("a.md", post("First", "2025-05-01"))
    pair.run(NOW)
    pair.write("x.md", post("Twice", "2025-05-11"))
    pair.write("y.md", post("Twice", "2025-05-10"))
    assert pair.run(NOW) is True
    pair.write("z.md", post("Twice 2", "2025-05-12", slug="twice-2"))
    assert pair.run(NOW) is True


@pytest.mark.parametrize(
    "damage",
    [
        {"stderr": []},  # slug lines without their warnings
        {"slugs": [["2025", "posts/b.md", "same"]]},  # a date that is not a number
        {"slugs": "posts/b.md"},
        {"read_noted": [1]},
    ],
)
def test_a_damaged_record_means_a_full_run(pair: Pair, damage: dict[str, object]) -> None:
    """The record is ours, but a file on disk: one damaged (or edited by hand) is no
    record, and the run takes the full path and writes a good one."""
    import json

    pair.write("a.md", post("Same", "2025-05-01"))
    pair.write("b.md", post("Same", "2025-05-02"))
    pair.run(NOW)
    record = pair.cron.root / "state" / "syndicate.db.cache-noop"
    record.write_text(json.dumps({**json.loads(record.read_text()), **damage}))
    pair.write("c.md", post("Other", "2025-05-03"))
    assert pair.run(NOW) is False  # no record: the full path
    pair.write("d.md", post("Same", "2025-05-04"))
    assert pair.run(NOW) is True
