"""RFC 5005 archived feeds (`feeds.archive`): the chain, page stability, config errors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import feedparser
import pytest
from lxml import etree
from starlette.testclient import TestClient

from syndicate.config import load_config
from syndicate.web.app import create_app

from .conftest import FIXED_NOW, GOLDEN, SITE_CONFIG, Result, Site, post

URL = "https://blog.syndicate.test/"
FH = "{http://purl.org/syndication/history/1.0}archive"
START = date(2024, 1, 1)


def archive_config(size: int = 50, limit: int = 50, per_tag: bool = False, extra: str = "") -> str:
    return SITE_CONFIG + (
        "feeds:\n"
        f"  limit: {limit}\n"
        "  archive: true\n"
        f"  archive_page_size: {size}\n"
        f"  archive_per_tag: {'true' if per_tag else 'false'}\n"
        "  per_category: false\n"
        "  stylesheet: false\n" + extra
    )


def write_posts(site: Site, count: int, first: int = 0) -> None:
    """Posts p000.. one day apart (oldest first), tagged odd/even by number."""
    for n in range(first, first + count):
        day = (START + timedelta(days=n)).isoformat()
        tag = "even" if n % 2 == 0 else "odd"
        site.write_post(f"p{n:03}.md", post(f"Post {n}", day, tags=f"[{tag}]"))


def url_of(n: int) -> str:
    return f"{URL}posts/post-{n}/"


def run_once(invoke: Callable[..., Result], site: Site, now: str = FIXED_NOW) -> Result:
    result = invoke("run", "--once", "--config", site.config, "--now", now, cwd=site.root)
    assert result.exit_code == 0, result.stderr
    return result


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def changed(before: dict[str, tuple[bytes, int]], after: dict[str, tuple[bytes, int]]) -> set[str]:
    """Files created, removed, rewritten (new mtime) or with other bytes."""
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}


def links(parsed: feedparser.FeedParserDict) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in parsed.feed.links}


def walk(public: Path, subscription: str) -> tuple[list[str], list[str]]:
    """Follow prev-archive from a subscription feed as an RFC 5005 client would, checking
    every page on the way. -> (ids in the subscription feed, ids over all archive pages)."""
    parsed = feedparser.parse((public / subscription).read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    current = f"{URL}{subscription}"
    feed_ids = [entry.id for entry in parsed.entries]
    archived: list[str] = []
    newer, href = current, links(parsed).get("prev-archive")
    while href:
        assert href.startswith(URL)
        page = public / href.removeprefix(URL)
        parsed = feedparser.parse(page.read_bytes())
        assert not parsed.bozo, parsed.get("bozo_exception")
        rels = links(parsed)
        assert rels["self"] == href
        assert rels["current"] == current
        assert rels.get("next-archive", current) == newer  # the chain runs both ways
        root = etree.fromstring(page.read_bytes())
        assert len(root.findall(f".//{FH}")) == 1, f"{page}: no <fh:archive/>"
        archived += [entry.id for entry in parsed.entries]
        newer, href = href, rels.get("prev-archive")
    return feed_ids, archived


@pytest.mark.slow
@pytest.mark.parametrize("subscription", ["feed.xml", "atom.xml"])
@pytest.mark.parametrize(("count", "size", "limit"), [(120, 50, 50), (100, 20, 20), (7, 3, 5)])
def test_the_chain_holds_every_post_exactly_once(
    subscription: str,
    count: int,
    size: int,
    limit: int,
    site: Site,
    invoke: Callable[..., Result],
) -> None:
    site.set_config(archive_config(size=size, limit=limit))
    write_posts(site, count)
    run_once(invoke, site)
    feed_ids, archived = walk(site.public, subscription)
    assert feed_ids == [url_of(n) for n in reversed(range(count - limit, count))]
    assert Counter(archived) == Counter(url_of(n) for n in range(count))  # each exactly once
    pages = sorted((site.public / "archive").glob(f"*.{subscription.split('.')[1]}"))
    assert len(pages) == count // size + 1  # full pages, then the newest (never full)


def test_pages_hold_fixed_slices_oldest_first(site: Site, invoke: Callable[..., Result]) -> None:
    site.set_config(archive_config(size=3, limit=5))
    write_posts(site, 7)
    run_once(invoke, site)
    for number, members in ((1, [0, 1, 2]), (2, [3, 4, 5]), (3, [6])):
        for suffix in ("xml", "atom"):
            parsed = feedparser.parse((site.public / f"archive/{number}.{suffix}").read_bytes())
            assert [e.id for e in parsed.entries] == [url_of(n) for n in members]
    assert not list(site.public.glob("archive/*.json"))  # JSON Feed has no archives


@pytest.mark.slow
def test_a_new_post_touches_only_the_subscription_feeds_and_the_newest_page(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(archive_config(size=50, limit=50, per_tag=True))
    write_posts(site, 120)
    run_once(invoke, site)
    before = snapshot(site.public)
    write_posts(site, 1, first=120)  # an even post
    run_once(invoke, site)
    after = snapshot(site.public)
    feeds = {"feed.xml", "atom.xml", "feed.json"}
    assert changed(before, after) == {
        ".syndicate-manifest.json",
        *feeds,
        "archive/3.xml",
        "archive/3.atom",
        *(f"tags/even/{name}" for name in feeds),
        "tags/even/archive/2.xml",
        "tags/even/archive/2.atom",
    }


@pytest.mark.slow
def test_a_page_that_fills_up_never_changes_again(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(archive_config(size=5, limit=5))
    write_posts(site, 9)  # pages: 1 (5), 2 (4)
    run_once(invoke, site)
    page_one = snapshot(site.public)["archive/1.xml"]
    write_posts(site, 1, first=9)  # page 2 fills; page 3 starts empty, linked at once
    run_once(invoke, site)
    filled = snapshot(site.public)
    assert filled["archive/1.xml"] == page_one
    page_three = feedparser.parse(filled["archive/3.atom"][0])
    assert page_three.entries == []
    assert page_three.feed.updated == f"{START + timedelta(days=9)}T00:00:00+00:00"
    write_posts(site, 1, first=10)
    run_once(invoke, site)
    grown = snapshot(site.public)
    feeds = {"feed.xml", "atom.xml", "feed.json"}
    assert changed(filled, grown) == {
        ".syndicate-manifest.json",
        *feeds,
        *(f"tags/even/{name}" for name in feeds),  # post 10 is tagged even
        "archive/3.xml",
        "archive/3.atom",
    }


@pytest.mark.slow
def test_editing_an_old_post_rewrites_only_its_page(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(archive_config(size=50, limit=50, per_tag=True))
    write_posts(site, 120)
    run_once(invoke, site)
    before = snapshot(site.public)
    site.write_post("p010.md", post("Post 10", "2024-01-11", body="Edited.", tags="[even]"))
    assert run_once(invoke, site).stdout.startswith("updated: Post 10")
    assert changed(before, snapshot(site.public)) == {
        ".syndicate-manifest.json",
        "archive/1.xml",
        "archive/1.atom",
        "tags/even/archive/1.xml",
        "tags/even/archive/1.atom",
    }
    page = feedparser.parse((site.public / "archive/1.atom").read_bytes())
    assert "Edited." in next(e for e in page.entries if e.id == url_of(10)).content[0].value


@pytest.mark.slow
@pytest.mark.parametrize("change", ["delete", "back-date"])
def test_removing_or_back_dating_a_post_shifts_the_pages_after_it(
    change: str, site: Site, invoke: Callable[..., Result]
) -> None:
    """Documented: pages are positional, so the pages from the change on are rewritten
    (one post crosses each boundary); the chain still holds every post exactly once."""
    site.set_config(archive_config(size=10, limit=10))
    write_posts(site, 35)  # pages 1-3 full, 4 with 5
    run_once(invoke, site)
    before = snapshot(site.public)
    expected = [url_of(n) for n in range(35)]
    if change == "delete":
        (site.posts / "p015.md").unlink()
        expected.remove(url_of(15))
    else:
        site.write_post("old.md", post("Old", "2024-01-16T12:00:00Z"))
        expected.append(f"{URL}posts/old/")
    run_once(invoke, site)
    after = snapshot(site.public)
    pages = {name for name in changed(before, after) if name.startswith("archive/")}
    assert pages == {f"archive/{n}.{suffix}" for n in (2, 3, 4) for suffix in ("xml", "atom")}
    assert after["archive/1.xml"] == before["archive/1.xml"]
    for subscription in ("feed.xml", "atom.xml"):
        assert Counter(walk(site.public, subscription)[1]) == Counter(expected)


@pytest.mark.slow
def test_no_archive_until_the_history_outgrows_the_limit(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """A family that fits in its feed needs no archive: no pages, no prev-archive link;
    pages appear when it outgrows the limit and go (with the manifest) when switched off."""
    site.set_config(archive_config(size=4, limit=4, per_tag=True))
    write_posts(site, 6)  # 3 even, 3 odd: the tag feeds hold everything
    run_once(invoke, site)
    assert list(site.public.glob("tags/*/archive/*")) == []
    assert "prev-archive" not in links(feedparser.parse(site.public / "tags/odd/feed.xml"))
    assert sorted(p.name for p in (site.public / "archive").iterdir()) == [
        "1.atom",
        "1.xml",
        "2.atom",
        "2.xml",
    ]
    write_posts(site, 4, first=6)  # 5 even, 5 odd
    run_once(invoke, site)
    assert (site.public / "tags/odd/archive/2.atom").is_file()
    feed = feedparser.parse(site.public / "tags/odd/atom.xml")
    assert links(feed)["prev-archive"] == f"{URL}tags/odd/archive/2.atom"

    site.set_config(SITE_CONFIG)
    run_once(invoke, site)
    assert list(site.public.rglob("archive")) == []
    assert "prev-archive" not in links(feedparser.parse(site.public / "feed.xml"))


@pytest.mark.parametrize(
    ("feeds", "message"),
    [
        (
            "  archive: true\n  archive_page_size: 0\n",
            "feeds.archive_page_size: must be from 1 to 1000, got 0",
        ),
        (
            "  archive: true\n  archive_page_size: 60\n",
            "feeds.archive_page_size: must be at most feeds.limit (50), got 60",
        ),
        ("  archive: true\n  archive_page_size: many\n", "feeds.archive_page_size: expected"),
        ("  archive: true\n  formats: [json]\n", "feeds.archive: needs rss or atom"),
        ("  archive_per_tag: true\n", "feeds.archive_per_tag: has no effect without"),
        ("  archive: 'yes'\n", "feeds.archive: expected true or false"),
    ],
)
def test_bad_archive_settings_are_config_errors(
    feeds: str, message: str, site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(SITE_CONFIG + "feeds:\n" + feeds)
    write_posts(site, 2)
    result = invoke("build", "--config", site.config, "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{site.config}:") and ": error: " in first, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not site.public.exists()


ARCHIVE_GOLDEN = [
    "feed.xml",
    "atom.xml",
    *(f"archive/{n}.{s}" for n in (1, 2, 3) for s in ("xml", "atom")),
]


@pytest.mark.parametrize("name", ARCHIVE_GOLDEN)
def test_archive_pages_match_golden_files(
    name: str, site: Site, invoke: Callable[..., Result], update_golden: bool
) -> None:
    site.set_config(archive_config(size=2, limit=2).replace("  stylesheet: false\n", ""))
    write_posts(site, 5)
    result = invoke("build", "--config", site.config, "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 0, result.stderr
    golden = GOLDEN / "archive" / name
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes((site.public / name).read_bytes())
    assert (site.public / name).read_bytes() == golden.read_bytes(), (
        f"{name} differs from {golden}; if the change is intended, run "
        "`pytest --update-golden` and review the diff"
    )


def test_serve_gives_archive_pages_their_feed_types(
    site: Site, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNDICATE_SECRET", "archive-test-secret-" + "x" * 32)
    site.set_config(archive_config(size=2, limit=2))
    write_posts(site, 3)
    run_once(invoke, site)
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    with TestClient(create_app(load_config(site.config))) as client:
        for name, kind in (("1.xml", "application/rss+xml"), ("2.atom", "application/atom+xml")):
            response = client.get(f"/archive/{name}", headers={"Accept": "*/*"})
            assert response.status_code == 200
            assert response.headers["content-type"] == f"{kind}; charset=utf-8"
            shown = client.get(f"/archive/{name}", headers={"Accept": browser})
            assert shown.headers["content-type"] == "application/xml; charset=utf-8"
