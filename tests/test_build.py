"""End to end through the CLI on real files: the seeds, the bad-input corpus, golden feeds."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from .conftest import (
    BAD_CORPUS,
    FIXED_NOW,
    GOLDEN,
    ROOT,
    SEEDS,
    SITE_CONFIG,
    Result,
    Site,
    post,
    run_subprocess,
)

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
MEDIA = "{http://search.yahoo.com/mrss/}"
DIAGNOSTIC = re.compile(
    r"^(?P<path>[^:\s]+):(?P<line>\d+): (?P<severity>error|warning): (?P<message>.+)$"
)


@pytest.fixture
def seeds_site(site: Site) -> Site:
    for path in SEEDS.iterdir():
        shutil.copy(path, site.posts / path.name)
    shutil.copytree(ROOT / "static", site.root / "static")
    site.set_config(
        site.config.read_text("utf-8").replace("site:\n", "site:\n  static_dir: static\n")
    )
    return site


def build(invoke: Callable[..., Result], site: Site, *extra: str) -> Result:
    return invoke("build", "--config", site.config, "--now", FIXED_NOW, *extra, cwd=site.root)


def test_seeds_build_into_valid_feeds(seeds_site: Site, invoke: Callable[..., Result]) -> None:
    result = build(invoke, seeds_site)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "5 posts published, 0 held back, 0 errors → public/"
    assert result.stderr == ""
    public = seeds_site.public
    for name in ("feed.xml", "atom.xml", "feed.json", "feed.xsl"):
        assert (public / name).is_file()
    rss = feedparser.parse((public / "feed.xml").read_bytes())
    atom = feedparser.parse((public / "atom.xml").read_bytes())
    assert rss.bozo == 0 and atom.bozo == 0
    assert rss.version == "rss20" and atom.version == "atom10"
    titles = [e.title for e in rss.entries]
    assert titles[0] == "AI in Cancer Treatment: 2025 Breakthroughs"  # newest first (2025-08-11)
    assert [e.title for e in atom.entries] == titles
    dates = [e.published_parsed for e in rss.entries]
    assert dates == sorted(dates, reverse=True)
    assert len({e.id for e in rss.entries}) == 5


def test_rss_structure(seeds_site: Site, invoke: Callable[..., Result]) -> None:
    build(invoke, seeds_site)
    data = (seeds_site.public / "feed.xml").read_bytes()
    assert b'<?xml-stylesheet type="text/xsl" href="feed.xsl"?>' in data
    channel = etree.fromstring(data).find("channel")
    assert channel is not None
    assert channel.findtext("link") == "https://blog.syndicate.test/"  # the site, not the feed
    self_link = channel.find(f"{ATOM}link[@rel='self']")
    assert self_link is not None and self_link.get("href") == "https://blog.syndicate.test/feed.xml"
    assert channel.findtext("lastBuildDate") == "Mon, 11 Aug 2025 00:00:00 +0000"
    assert channel.findtext("generator") == "syndicate"  # no library version
    items = channel.findall("item")
    first = items[0]
    assert (
        first.findtext("guid")
        == "https://blog.syndicate.test/posts/ai-in-cancer-treatment-2025-breakthroughs/"
    )
    assert first.find("guid").get("isPermaLink") == "true"  # type: ignore[union-attr]
    assert first.findtext("description", "").startswith(
        "Explore the potential of artificial intelligence &amp; machine"
    )
    encoded = first.findtext(f"{CONTENT}encoded", "")
    assert encoded.startswith("<p>The fight against cancer")
    enclosure = first.find("enclosure")
    assert enclosure is not None
    assert enclosure.get("url") == "https://blog.syndicate.test/images/blog-placeholder-3.svg"
    assert enclosure.get("type") == "image/svg+xml"
    image = ROOT / "static/images/blog-placeholder-3.svg"
    assert enclosure.get("length") == str(image.stat().st_size)  # the real size, never "0"
    media = first.find(f"{MEDIA}content")
    assert media is not None and media.get("url") == enclosure.get("url")
    assert media.get("type") == "image/svg+xml"
    for element in etree.fromstring(data).iter():
        for attr in ("href", "url", "src"):
            value = element.get(attr)
            if value is not None:
                assert value.startswith("https://"), (element.tag, value)


def test_atom_structure(seeds_site: Site, invoke: Callable[..., Result]) -> None:
    build(invoke, seeds_site)
    root = etree.fromstring((seeds_site.public / "atom.xml").read_bytes())
    assert root.findtext(f"{ATOM}updated") == "2025-08-11T00:00:00+00:00"
    rels = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert rels == {
        "self": "https://blog.syndicate.test/atom.xml",
        "alternate": "https://blog.syndicate.test/",
    }
    entry = root.find(f"{ATOM}entry")
    assert entry is not None
    assert entry.findtext(f"{ATOM}published") == "2025-08-11T00:00:00+00:00"
    assert entry.findtext(f"{ATOM}updated") == "2025-08-11T00:00:00+00:00"
    # feedgen 1.0 drops rel on entry links; in Atom a link without rel *is* rel="alternate"
    links = [
        link for link in entry.findall(f"{ATOM}link") if link.get("rel", "alternate") == "alternate"
    ]
    assert [link.get("href") for link in links] == [
        "https://blog.syndicate.test/posts/ai-in-cancer-treatment-2025-breakthroughs/"
    ]
    content = entry.find(f"{ATOM}content")
    assert content is not None and content.get("type") == "xhtml"


def test_json_feed(seeds_site: Site, invoke: Callable[..., Result]) -> None:
    build(invoke, seeds_site)
    feed = json.loads((seeds_site.public / "feed.json").read_text("utf-8"))
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["feed_url"] == "https://blog.syndicate.test/feed.json"
    assert feed["home_page_url"] == "https://blog.syndicate.test/"
    items = feed["items"]
    assert len(items) == 5
    for item in items:
        assert {"id", "url", "title", "content_html", "date_published"} <= set(item)
    assert items[0]["image"] == "https://blog.syndicate.test/images/blog-placeholder-3.svg"
    assert items[0]["tags"][0] == "Future Tech & AI"


def test_per_tag_and_per_category_feeds(seeds_site: Site, invoke: Callable[..., Result]) -> None:
    build(invoke, seeds_site)
    public = seeds_site.public
    tag = feedparser.parse((public / "tags" / "generative-ai" / "feed.xml").read_bytes())
    assert tag.bozo == 0
    assert len(tag.entries) == 3
    assert tag.feed.title == "Syndicate Sample Blog: posts tagged “Generative AI”".replace(
        "Syndicate Sample Blog", "Test Site"
    )
    # "machine learning" and "Machine Learning" share one feed
    machine = feedparser.parse((public / "tags" / "machine-learning" / "atom.xml").read_bytes())
    assert len(machine.entries) == 5
    category = feedparser.parse(
        (public / "categories" / "future-tech-ai" / "feed.xml").read_bytes()
    )
    assert len(category.entries) == 2
    data = (public / "tags" / "generative-ai" / "feed.xml").read_bytes()
    assert b'href="../../feed.xsl"' in data


def test_limit_applies_to_every_feed(site: Site, invoke: Callable[..., Result]) -> None:
    site.set_config(SITE_CONFIG + "feeds:\n  limit: 3\n")
    for day in range(1, 8):
        site.write_post(f"p{day}.md", post(f"Post {day}", f"2025-01-0{day}", tags="[t]"))
    build(invoke, site)
    main = feedparser.parse((site.public / "feed.xml").read_bytes())
    assert [e.title for e in main.entries] == ["Post 7", "Post 6", "Post 5"]
    assert len(json.loads((site.public / "tags" / "t" / "feed.json").read_text())["items"]) == 3


def test_formats_and_content_options(site: Site, invoke: Callable[..., Result]) -> None:
    site.set_config(
        SITE_CONFIG + "feeds:\n  formats: [atom]\n  full_content: false\n  per_tag: false\n"
    )
    site.write_post("a.md", post("A", tags="[x]", description="Short."))
    build(invoke, site)
    assert sorted(p.name for p in site.public.iterdir() if not p.name.startswith(".")) == [
        "atom.xml",
        "feed.xsl",
    ]
    entry = etree.fromstring((site.public / "atom.xml").read_bytes()).find(f"{ATOM}entry")
    assert entry is not None and entry.find(f"{ATOM}content") is None
    assert entry.findtext(f"{ATOM}summary") == "Short."


def test_markup_and_ampersands_are_escaped_exactly_once(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """Titles and summaries are plain text: tags are stripped (as jekyll-feed does), and
    `&` or `<` that is not a tag is escaped exactly once in every format."""
    site.write_post(
        "m.md",
        '---\ntitle: "Fish & Chips <em>fast</em> for a < b"\n'
        'description: "Salt & vinegar <b>only</b>"\n'
        "date: 2025-03-04\n---\nBody: R&D & <b>bold</b>, AT&T.\n",
    )
    result = build(invoke, site)
    assert result.exit_code == 0
    for name in ("feed.xml", "atom.xml", "feed.json"):
        text = (site.public / name).read_text("utf-8")
        assert "&amp;amp;" not in text and "&amp;lt;" not in text, name
    rss = feedparser.parse((site.public / "feed.xml").read_bytes()).entries[0]
    atom = feedparser.parse((site.public / "atom.xml").read_bytes()).entries[0]
    assert rss.title == atom.title == "Fish & Chips fast for a < b"
    assert atom.summary == "Salt & vinegar only"
    # RSS <description> is HTML: the text is HTML-escaped once, inside CDATA.
    assert "<![CDATA[Salt &amp; vinegar only]]>" in (site.public / "feed.xml").read_text()
    item = json.loads((site.public / "feed.json").read_text())["items"][0]
    assert item["title"] == "Fish & Chips fast for a < b"
    assert item["summary"] == "Salt & vinegar only"
    assert "<b>bold</b>" in item["content_html"]  # the body keeps its (harmless) markup


@pytest.mark.slow
def test_bad_corpus_reports_each_bad_post_and_publishes_the_rest(
    tmp_path: Path, invoke: Callable[..., Result]
) -> None:
    site = Site(tmp_path / "site")
    shutil.copytree(BAD_CORPUS, site.posts)
    site.set_config(SITE_CONFIG)
    # a multi-megabyte post, made here rather than committed
    big = "Plain prose that goes on and on for a very long time without much markup at all. " * 12
    site.write_post(
        "huge.md", "---\ntitle: Huge post\ndate: 2025-04-01\n---\n" + (big + "\n\n") * 2200
    )
    result = build(invoke, site)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("  hint: ")]
    parsed = [DIAGNOSTIC.match(line) for line in lines]
    assert all(parsed), [line for line, m in zip(lines, parsed, strict=True) if not m]
    errors = {Path(m["path"]).name: m for m in parsed if m and m["severity"] == "error"}
    assert set(errors) == {
        "empty.md",
        "whitespace-only.md",
        "front-matter-list.md",
        "impossible-date.md",
        "not-a-date.md",
        "invalid-toml.md",
        "invalid-yaml.md",
        "missing-date.md",
        "no-front-matter.md",
        "not-utf8.md",
        "title-list.md",
        "unclosed-front-matter.md",
    }
    assert errors["impossible-date.md"]["line"] == "3"
    assert errors["invalid-yaml.md"]["line"] == "2"
    assert errors["not-utf8.md"]["line"] == "2"
    warnings = {Path(m["path"]).name for m in parsed if m and m["severity"] == "warning"}
    assert warnings == {"title-control-chars.md", "xml-forbidden-body.md", "duplicate-title-two.md"}
    assert "8 posts published, 0 held back, 12 errors" in result.stdout
    rss = feedparser.parse((site.public / "feed.xml").read_bytes())
    assert rss.bozo == 0
    titles = {e.title for e in rss.entries}
    assert titles == {
        "A good post",
        "Bell and break",
        "Fish & Chips fast",  # titles are plain text: tags stripped
        "Control characters in the body",
        "Same Title",
        "BOM and CRLF",
        "Huge post",
    }
    links = sorted(e.link for e in rss.entries if e.title == "Same Title")
    assert links == [
        "https://blog.syndicate.test/posts/same-title-2/",
        "https://blog.syndicate.test/posts/same-title/",
    ]
    for name in ("atom.xml", "feed.xml"):
        assert feedparser.parse((site.public / name).read_bytes()).bozo == 0
    assert "\x07" not in (site.public / "feed.xml").read_text()


def test_strict_writes_nothing_when_any_post_is_bad(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.write_post("good.md", post("Good"))
    site.write_post("bad.md", "---\ntitle: Bad\ndate: 2025-02-30\n---\n")
    result = build(invoke, site, "--strict")
    assert result.exit_code == 1
    assert "posts/bad.md:3: error:" in result.stderr
    assert "nothing written (--strict)" in result.stderr
    assert not site.public.exists()


def test_future_and_draft_posts_are_held_back(site: Site, invoke: Callable[..., Result]) -> None:
    site.write_post("now.md", post("Now", "2025-08-31"))
    site.write_post("later.md", post("Later", "2025-09-02"))
    site.write_post("draft.md", post("Draft", "2025-01-01", draft="true"))
    result = build(invoke, site)
    assert "1 post published, 2 held back, 0 errors" in result.stdout
    result = invoke("build", "--config", site.config, "--now", "2025-09-03", cwd=site.root)
    assert "2 posts published, 1 held back" in result.stdout
    assert [e.title for e in feedparser.parse(str(site.public / "feed.xml")).entries] == [
        "Later",
        "Now",
    ]


def test_rebuild_is_byte_identical_and_touches_nothing(
    seeds_site: Site, invoke: Callable[..., Result]
) -> None:
    build(invoke, seeds_site)
    files = sorted(p for p in seeds_site.public.rglob("*") if p.is_file())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    build(invoke, seeds_site)
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    assert before == after
    # a different clock does not change the output either: dates come from the posts
    invoke(
        "build", "--config", seeds_site.config, "--now", "2026-01-01T00:00:00Z", cwd=seeds_site.root
    )
    assert {p: p.read_bytes() for p in files} == {p: b for p, (b, _) in before.items()}


def test_stale_tag_feeds_are_removed(site: Site, invoke: Callable[..., Result]) -> None:
    site.write_post("a.md", post("A", tags="[keep, drop]"))
    build(invoke, site)
    assert (site.public / "tags" / "drop" / "feed.xml").exists()
    site.write_post("a.md", post("A", tags="[keep]"))
    build(invoke, site)
    assert not (site.public / "tags" / "drop").exists()
    assert (site.public / "tags" / "keep" / "feed.xml").exists()


def write_corpus(site: Site, version: str, count: int = 300) -> None:
    """Long posts in 30 tags: ~100 feed files of up to a megabyte, so writing takes a while
    and a kill can land inside a file."""
    body = "\n\n".join(f"Paragraph {k} of a long post, {version} version. " * 12 for k in range(40))
    for n in range(count):
        site.write_post(
            f"p{n:03}.md",
            post(
                f"Post {n} {version}",
                f"2025-0{1 + n % 8}-{1 + n % 28:02}",
                body=body,
                tags=f"[t{n % 30}]",
            ),
        )


def snapshot_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_build_killed_while_writing_leaves_old_or_new_files_and_recovers(
    site: Site, tmp_path: Path
) -> None:
    """SIGKILL at several moments while the feeds are written: every feed file is the old or
    the new version, complete; temporary files are swept by the next build, which
    completes and leaves exactly the new output."""
    command = [sys.executable, "-m", "syndicate", "build", "--now", FIXED_NOW]
    write_corpus(site, "old")
    assert run_subprocess(*command[3:], cwd=site.root).exit_code == 0
    old = snapshot_files(site.public)
    write_corpus(site, "new")
    reference = tmp_path / "reference"
    assert run_subprocess(*command[3:], "--out", reference, cwd=site.root).exit_code == 0
    new = snapshot_files(reference)
    assert len(new) > 90 and all(
        new[name] != old[name] for name in new if name.endswith(("feed.xml", "atom.xml"))
    )

    kills = 0
    for delay in (0.0, 0.005, 0.05, 0.2):
        out = tmp_path / f"out-{delay}"
        shutil.copytree(site.public, out)  # the old output, as the killed build finds it
        process = subprocess.Popen([*command, "--out", str(out)], cwd=site.root)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            changed = any(
                p.name.endswith(".tmp") or p.read_bytes() != old.get(str(p.relative_to(out)))
                for p in out.rglob("*.xml")
                if p.is_file()
            ) or any(out.rglob(".*.tmp"))
            if changed:  # writing has begun
                time.sleep(delay)
                kills += process.poll() is None
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
        process.wait(timeout=60)
        for name, data in snapshot_files(out).items():
            if name.endswith(".tmp") or name == ".syndicate-manifest.json":
                continue  # a killed write is swept by the next build (checked below)
            assert data in (old.get(name), new.get(name)), name
            if name.endswith(".xml") and "feed.xsl" not in name:
                etree.fromstring(data)  # complete, well-formed
        again = subprocess.run([*command, "--out", str(out)], cwd=site.root, check=False)
        assert again.returncode == 0
        after = snapshot_files(out)
        manifest = after.pop(".syndicate-manifest.json")  # it names the output folder
        assert after == {k: v for k, v in new.items() if k != ".syndicate-manifest.json"}
        assert set(json.loads(manifest)["files"]) == set(after)  # and no temporary file left
    assert kills >= 3  # most trials really killed a build mid-write


def test_content_and_out_override_config(
    seeds_site: Site, invoke: Callable[..., Result], tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere"
    result = invoke(
        "build", "--config", seeds_site.config, "--content", BAD_CORPUS / "good-astro.md",
        "--out", other, "--now", FIXED_NOW,
    )  # fmt: skip
    assert result.exit_code == 0
    assert [e.title for e in feedparser.parse(str(other / "feed.xml")).entries] == ["A good post"]


def test_bad_now_is_a_usage_error(site: Site, invoke: Callable[..., Result]) -> None:
    result = invoke("build", "--config", site.config, "--now", "yesterday")
    assert result.exit_code == 2
    assert "--now" in result.stderr and "ISO 8601" in result.stderr


@pytest.mark.slow
def test_real_process_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    site = Site(tmp_path / "site")
    site.posts.mkdir(parents=True)
    site.set_config(SITE_CONFIG)
    site.write_post("bad.md", b"---\ntitle: \xff\n---\n")
    site.write_post("good.md", post("Good"))
    result = run_subprocess("build", "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 1
    assert result.stderr.startswith("posts/bad.md:2: error: file is not valid UTF-8")
    assert "Traceback" not in result.stderr
    assert (site.public / "feed.xml").exists()


@pytest.mark.parametrize("name", ["feed.xml", "atom.xml", "feed.json"])
def test_seed_feeds_match_golden_files(
    name: str, invoke: Callable[..., Result], tmp_path: Path, update_golden: bool
) -> None:
    out = tmp_path / "out"
    result = invoke("build", "--config", ROOT / "config.yaml", "--out", out, "--now", FIXED_NOW)
    assert result.exit_code == 0, result.stderr
    golden = GOLDEN / "seeds" / name
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes((out / name).read_bytes())
    assert (out / name).read_bytes() == golden.read_bytes(), (
        f"{name} differs from {golden}; if the change is intended, run "
        "`pytest --update-golden` and review the diff"
    )
