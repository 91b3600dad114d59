"""Post HTML in the feeds is sanitised (feeds.allow_raw_html opts out), titles and
summaries are plain text, and image enclosures carry their real length and type."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import feedparser
import lxml.html
import pytest
from lxml import etree

from .conftest import FIXED_NOW, SITE_CONFIG, Result, Site, post

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
FORBIDDEN_ELEMENTS = {"script", "iframe", "object", "embed", "style", "form", "base", "link"}
URL_ATTRIBUTES = ("href", "src", "poster", "action", "formaction", "xlink:href", "cite")

HOSTILE_BODY = """\
Intro with <b onclick="steal()">bold</b> and <a href="javascript:alert(1)">a link</a>.

<script>alert('xss')</script>
<iframe src="https://evil.example.net/frame"></iframe>
<object data="https://evil.example.net/x.swf"></object><embed src="https://evil.example.net/x.swf">
<style>body { display: none }</style>
<img src="x.png" onerror="alert(1)" alt="broken">
<img src="data:text/html;base64,PHNjcmlwdD4=" alt="data">
<a href="vbscript:msgbox(1)">vb</a> <a href=" JaVaScRiPt:alert(2)">mixed case</a>
<svg onload="alert(1)"><circle r="1"/></svg>
<form action="https://evil.example.net/"><input name="q"></form>
<div style="position:fixed" onmouseover="x()">styled</div>

| a | b |
|---|---|
| 1 & 2 | <code>x</code> |

```python
if a < b and c & d:
    pass
```

<figure><img src="/images/fig.png" alt="A figure"><figcaption>Caption</figcaption></figure>
<details><summary>More</summary>Hidden text</details>
"""


def hostile_site(site: Site, extra_config: str = "") -> None:
    site.set_config(SITE_CONFIG + extra_config)
    site.write_post(
        "hostile.md",
        post(
            '<b>bold</b> writers & <i onmouseover="x()">co</i>',
            body=HOSTILE_BODY,
            description="'A <em>summary</em> with R&D'",
        ),
    )


def build(invoke: Callable[..., Result], site: Site) -> None:
    result = invoke("build", "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 0, result.stderr


def html_fragments(site: Site) -> Iterator[tuple[str, etree._Element]]:
    """Every post body in every feed, as an element tree."""
    rss = etree.fromstring((site.public / "feed.xml").read_bytes())
    for encoded in rss.iter(f"{CONTENT}encoded"):
        yield "rss", lxml.html.fragment_fromstring(encoded.text, create_parent="div")
    atom = etree.fromstring((site.public / "atom.xml").read_bytes())
    for content in atom.iter(f"{ATOM}content"):
        yield "atom", content
    for item in json.loads((site.public / "feed.json").read_text("utf-8"))["items"]:
        yield "json", lxml.html.fragment_fromstring(item["content_html"], create_parent="div")


def local(tag: object) -> str:
    return etree.QName(tag).localname.lower() if isinstance(tag, str) else ""


def test_raw_html_is_sanitised_in_every_format(site: Site, invoke: Callable[..., Result]) -> None:
    hostile_site(site)
    build(invoke, site)
    seen = set()
    for fmt, root in html_fragments(site):
        seen.add(fmt)
        tags = {local(e.tag) for e in root.iter()}
        assert not tags & FORBIDDEN_ELEMENTS, (fmt, tags & FORBIDDEN_ELEMENTS)
        assert "svg" not in tags and "input" not in tags
        for element in root.iter():
            if not isinstance(element.tag, str):
                continue
            for name, value in element.attrib.items():
                assert not local(name).startswith("on"), (fmt, name)
                assert local(name) != "style", fmt
                if local(name) in URL_ATTRIBUTES or name in URL_ATTRIBUTES:
                    scheme = urlsplit(value.strip()).scheme.lower()
                    assert scheme in ("http", "https", "mailto"), (fmt, name, value)
        text = etree.tostring(root, encoding="unicode")
        assert "alert" not in text and "steal" not in text and "display: none" not in text
        # what readers show is kept
        assert {"table", "pre", "code", "figure", "figcaption", "details", "summary"} <= tags
        assert {"b", "a", "img"} <= tags
    assert seen == {"rss", "atom", "json"}


def test_titles_and_summaries_are_plain_text_escaped_once(
    site: Site, invoke: Callable[..., Result]
) -> None:
    hostile_site(site)
    build(invoke, site)
    for name in ("feed.xml", "atom.xml", "feed.json"):
        text = (site.public / name).read_text("utf-8")
        assert "&amp;amp;" not in text and "&amp;lt;" not in text
    for name, summary in (
        ("feed.xml", "A summary with R&amp;D"),
        ("atom.xml", "A summary with R&D"),
    ):
        entry = feedparser.parse((site.public / name).read_bytes()).entries[0]
        assert entry.title == "bold writers & co"
        assert entry.summary == summary  # RSS <description> is HTML: escaped once
    item = json.loads((site.public / "feed.json").read_text("utf-8"))["items"][0]
    assert (item["title"], item["summary"]) == ("bold writers & co", "A summary with R&D")
    # `check` still tells the author that front matter is plain text
    check = invoke("check", "--now", FIXED_NOW, cwd=site.root)
    assert (
        "posts/hostile.md:2: warning: title contains HTML markup ('<b>'); the feeds drop"
        in check.stderr
    )


def test_a_summary_from_the_first_paragraph_keeps_text_that_looks_like_markup(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """A post about HTML writes `&lt;b&gt;` to show `<b>`: the summary taken from its first
    paragraph is text already, so it is not stripped of "tags" a second time; every feed
    (and the digest) shows `<b>` as the author wrote it, escaped once."""
    site.write_post(
        "about-html.md",
        post("About HTML", body="Wrap it in &lt;b&gt; tags, then <em>close</em> it: `</b>`."),
    )
    build(invoke, site)
    wanted = "Wrap it in <b> tags, then close it: </b>."
    for name in ("feed.xml", "atom.xml"):
        entry = feedparser.parse((site.public / name).read_bytes()).entries[0]
        shown = entry.summary
        if name == "feed.xml":  # RSS <description> is HTML: what a reader shows is its text
            shown = lxml.html.fragment_fromstring(shown, create_parent="div").text_content()
        assert shown == wanted, name
    item = json.loads((site.public / "feed.json").read_text("utf-8"))["items"][0]
    assert item["summary"] == wanted
    preview = invoke(
        "digest", "--preview", "--now", FIXED_NOW, "--out", str(site.root / "p"), cwd=site.root
    )
    assert preview.exit_code == 0, preview.stderr
    text = (site.root / "p" / "newsletter" / "preview.txt").read_text("utf-8")
    assert wanted in " ".join(text.split())


def test_allow_raw_html_opts_out(site: Site, invoke: Callable[..., Result]) -> None:
    hostile_site(site, "feeds:\n  allow_raw_html: true\n")
    build(invoke, site)
    rss = etree.fromstring((site.public / "feed.xml").read_bytes())
    encoded = next(rss.iter(f"{CONTENT}encoded")).text or ""
    assert "<script>alert('xss')</script>" in encoded and 'onclick="steal()"' in encoded
    item = json.loads((site.public / "feed.json").read_text("utf-8"))["items"][0]
    assert "<iframe" in item["content_html"]
    assert item["title"] == "bold writers & co"  # titles are plain text either way


@pytest.mark.parametrize("cached", [False, True])
def test_html_that_is_no_xhtml_is_html_content_in_atom(
    site: Site, invoke: Callable[..., Result], cached: bool
) -> None:
    """Raw HTML with a comment XML forbids ('--' inside) has no XHTML form: Atom carries it
    as type="html". Before: an empty type="xhtml" content, so readers showed no post."""
    site.set_config(SITE_CONFIG + "feeds:\n  allow_raw_html: true\n")
    site.write_post("odd.md", post("Odd", "2025-05-01", body="Hi <!-- a -- b --> there."))
    build(invoke, site)
    if cached:  # the second build renders from the per-post cache
        (site.public / "atom.xml").unlink()
        build(invoke, site)
    entry = feedparser.parse((site.public / "atom.xml").read_bytes()).entries[0]
    assert entry.content[0].type == "text/html"
    assert "Hi" in entry.content[0].value and "there." in entry.content[0].value


XHTML_BODIES = {
    "One": "Just one paragraph, é and 😀.",  # no text between elements at the top
    "Code": "Text.\n\n```\nif a < b && c:\n    x = '&#233;'\n```\n\nAnd &#233; typed, &amp; too.",
    "Raw": 'Hi <abbr title="a\nb">ab</abbr> <!-- a note --> there.',
    "<!--syndicate-xhtml-0-->": "Placeholder-looking title: <!--syndicate-xhtml-1--> here.",
    "Empty": "",  # was `<content type="xhtml"/>`: the W3C validator's "should not be blank"
}


@pytest.mark.parametrize("raw", [False, True])
def test_atom_carries_each_posts_xhtml_as_it_was_rendered(
    site: Site, invoke: Callable[..., Result], raw: bool
) -> None:
    """The Atom writer puts each post's XHTML into the document itself (feedgen gets a
    placeholder): the content is the rendered XHTML exactly, with no whitespace added
    inside (lxml's pretty-printing once indented a lone paragraph), other characters as
    UTF-8, and text that looks like a placeholder stays text. An empty body is an empty
    div (RFC 4287: xhtml content is one div), no longer an empty content element."""
    from syndicate.content.markup import render_markdown

    site.set_config(SITE_CONFIG + ("feeds:\n  allow_raw_html: true\n" if raw else ""))
    for number, (title, body) in enumerate(XHTML_BODIES.items()):
        site.write_post(f"x{number}.md", post(title, f"2025-05-0{number + 1}", body=body))
    build(invoke, site)
    data = (site.public / "atom.xml").read_bytes()
    assert "<p>Just one paragraph, é and 😀.</p></div>".encode() in data
    assert b"&#233; and" not in data and b"&#128512;" not in data
    entries = etree.fromstring(data).findall(f"{ATOM}entry")
    assert sorted(e.findtext(f"{ATOM}title") for e in entries) == sorted(XHTML_BODIES)
    for entry in entries:
        title = entry.findtext(f"{ATOM}title")
        link = entry.find(f"{ATOM}link")  # feedgen writes entry links without rel
        assert link is not None
        expected = render_markdown(XHTML_BODIES[title], link.get("href"), sanitize=not raw)
        content = entry.find(f"{ATOM}content")
        assert content is not None and content.get("type") == "xhtml" and len(content) == 1
        wrapped = etree.fromstring(
            f'<div xmlns="http://www.w3.org/1999/xhtml">{expected.xhtml}</div>'
        )
        assert etree.tostring(content[0], method="c14n", exclusive=True) == etree.tostring(
            wrapped, method="c14n", exclusive=True
        )
        if expected.xhtml:  # as rendered, byte for byte (lxml writes an empty div `<div/>`)
            assert etree.tostring(wrapped, encoding="utf-8") in data
    parsed = {e.title: e for e in feedparser.parse(data).entries}
    assert "title:  here." in parsed["<!--syndicate-xhtml-0-->"].content[0].value
    assert (b"<!--syndicate-xhtml-1-->" in data) is raw  # the author's comment, kept as such
    assert "if a &lt; b &amp;&amp; c:" in parsed["Code"].content[0].value


# --- enclosures ------------------------------------------------------------------------


@pytest.fixture
def image_site(site: Site) -> Site:
    site.set_config(SITE_CONFIG.replace("site:\n", "site:\n  static_dir: static\n"))
    images = site.root / "static" / "images"
    images.mkdir(parents=True)
    (images / "cover image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 1234)
    site.write_post("found.md", post("Found", "2025-05-03", image="'/images/cover%20image.png'"))
    site.write_post("missing.md", post("Missing", "2025-05-02", image="/images/none.jpg"))
    site.write_post("away.md", post("Away", "2025-05-01", image="https://cdn.example.net/a.gif"))
    site.write_post("escape.md", post("Escape", "2025-04-30", image="/../config.yaml"))
    return site


def test_enclosures_have_the_real_length_and_type(
    image_site: Site, invoke: Callable[..., Result]
) -> None:
    build(invoke, image_site)
    size = str(len(b"\x89PNG\r\n\x1a\n") + 1234)
    url = "https://blog.syndicate.test/images/cover%20image.png"
    rss = feedparser.parse((image_site.public / "feed.xml").read_bytes())
    atom = feedparser.parse((image_site.public / "atom.xml").read_bytes())
    for feed in (rss, atom):
        entries = {e.title: e for e in feed.entries}
        found = entries["Found"].enclosures
        assert [(e.href, e.length, e.type) for e in found] == [(url, size, "image/png")]
        assert entries["Found"].link == "https://blog.syndicate.test/posts/found/"
    # Not found under static_dir: RSS, which requires a length, gets no enclosure (a
    # made-up "0" is what validators flag), the image stays in media:content; Atom,
    # where the length is optional, links it without one.
    rss_entries = {e.title: e for e in rss.entries}
    atom_entries = {e.title: e for e in atom.entries}
    for title, href in (
        ("Missing", "https://blog.syndicate.test/images/none.jpg"),
        ("Away", "https://cdn.example.net/a.gif"),
    ):
        assert rss_entries[title].enclosures == []
        assert rss_entries[title].media_content[0]["url"] == href
        (enclosure,) = atom_entries[title].enclosures
        assert enclosure.href == href and "length" not in enclosure
    assert 'length="0"' not in (image_site.public / "feed.xml").read_text("utf-8")
    # a path that climbs out of static_dir is never measured
    assert rss_entries["Escape"].enclosures == []


@pytest.mark.parametrize(
    "image",
    ["/images/%00.png", "/images/cover%20image.png%00", "/images/" + "a" * 5000 + ".png"],
)
def test_an_image_url_no_file_can_match_still_publishes_the_post(
    image_site: Site, invoke: Callable[..., Result], image: str
) -> None:
    """A NUL byte (%00) or a name too long for the file system in the image URL is simply
    not a file under static_dir: the post publishes without an enclosure length (it was
    "cannot be read: ValueError: embedded null byte", the post skipped)."""
    image_site.write_post("odd.md", post("Odd", "2025-05-04", image=f"'{image}'"))
    result = invoke("build", "--now", FIXED_NOW, cwd=image_site.root)
    assert (result.exit_code, result.stderr) == (0, "")
    entry = feedparser.parse((image_site.public / "feed.xml").read_bytes()).entries[0]
    assert entry.title == "Odd" and not entry.get("enclosures")


def test_a_resized_image_rebuilds_the_feeds(
    image_site: Site, invoke: Callable[..., Result]
) -> None:
    build(invoke, image_site)
    (image_site.root / "static" / "images" / "cover image.png").write_bytes(b"\x89PNG" + b"1" * 99)
    build(invoke, image_site)
    entry = feedparser.parse((image_site.public / "feed.xml").read_bytes()).entries[0]
    assert entry.enclosures[0].length == "103"


@pytest.mark.parametrize("title", ["<?>", "<b></b>", "<!-- draft -->", "<br>"])
def test_a_title_that_is_all_markup_publishes_with_its_text(
    title: str, site: Site, invoke: Callable[..., Result]
) -> None:
    """A title that strips to nothing (found by the property tests: `<?>` crashed every
    feed with feedgen's "Required fields not set", exit 70) keeps its text as written,
    escaped once, and the other posts publish as ever."""
    site.write_post("odd.md", post(title, "2025-05-02"))
    site.write_post("fine.md", post("Fine", "2025-05-01"))
    result = invoke("build", "--config", site.config, "--now", FIXED_NOW, cwd=site.root)
    assert result.exit_code == 0, result.stderr
    for name in ("feed.xml", "atom.xml"):
        titles = [e.title for e in feedparser.parse(site.public / name).entries]
        assert titles == [title, "Fine"], name
    items = json.loads((site.public / "feed.json").read_text("utf-8"))["items"]
    assert [item["title"] for item in items] == [title, "Fine"]


# --- the sanitiser where Markdown wrote all the HTML --------------------------------------


@pytest.mark.parametrize(
    ("body", "sanitiser_runs"),
    [
        ("Plain *Markdown*, [a link](../x/) and `code <y>`.\n\n```\na < b && c\n```", False),
        ("A | table\n--|--\n1 | 2\n\nTerm\n: Definition\n\nNote[^1]\n\n[^1]: The note.", False),
        ("Raw <b>HTML</b> of the author's.", True),
        ("An entity &check; of the author's.", True),
        ("[A script](javascript:alert(1)) Markdown wrote.", True),
        ('An attribute list.\n{: onclick="steal()" }', True),
        ("A | aligned table\n:-|-:\n1 | 2", True),
        ("[x *y <https://inner.example> w* v](https://outer.example)", True),
    ],
)
def test_the_sanitiser_runs_only_where_it_may_change_something(
    body: str, sanitiser_runs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Markdown's own HTML is checked for what nh3 would drop instead of going through it
    (a tenth of rendering a post); the author's raw HTML, and anything Markdown wrote that
    nh3 would change, still goes through it, and comes out as nh3 leaves it."""
    from syndicate.content import markup

    calls: list[str] = []
    real = markup.sanitize_feed_html
    monkeypatch.setattr(markup, "sanitize_feed_html", lambda html: calls.append(html) or real(html))
    base = "https://blog.syndicate.test/posts/p/"
    got = markup.render_markdown(body, base)
    assert bool(calls) == sanitiser_runs
    monkeypatch.setattr(markup, "_markdown_only", lambda html, author_html: False)
    assert got == markup.render_markdown(body, base)


@pytest.mark.parametrize(
    ("html", "author_html", "only"),
    [
        ('<p>a &amp; b &lt; c &quot;d&quot; <a href="x">e</a><a href="y">f</a></p>', False, True),
        (
            '<p><sup id="fnref:1"><a href="#fn:1">1</a></sup> &#160;<a href="#fnref:1">&#8617;</a></p>',
            False,
            True,
        ),
        ("<p>a</p>", True, False),  # raw HTML stashed: the author's
        ('<p><a title="&copy;">a</a></p>', False, False),  # an entity in a title
        ('<p><a href="&#106;avascript:x">a</a></p>', False, False),
        ("<p>a\x0cb</p>", False, False),  # a character XML forbids
        ("<p><svg></svg></p>", False, False),  # an element nh3 drops
        ('<p><a href="o"><em><a href="i">x</a></em></a></p>', False, False),  # a link in a link
    ],
)
def test_what_counts_as_markdowns_own_html(html: str, author_html: bool, only: bool) -> None:
    from syndicate.content.markup import _markdown_only

    assert _markdown_only(html, author_html) is only


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://example.org/a?b=c#d", True),
        ("http://example.org:8080/", True),
        ("../relative/", True),
        ("#fragment", True),
        ("//other.example/x", True),  # scheme-relative: nh3 keeps it too
        ("mailto:me@example.org", True),
        ("javascript:alert(1)", False),
        ("JavaScript:alert(1)", False),
        ("java\nscript:alert(1)", False),  # URL parsers drop the newline: javascript:
        (" javascript:alert(1)", False),
        ("data:text/html,x", False),
        ("C:/Windows", False),
        ("http://999.1.1.1/", False),  # read as an IPv4 address, which it is not
        ("https://exa_mple.org/", False),
        ("https://xn--zz/", False),
        ("http://example.org:99999/", False),
        ("https:/\\evil.example", False),
        ("https://user@example.org/", False),
    ],
)
def test_a_url_is_kept_without_the_sanitiser_only_when_it_surely_would_be(
    url: str, kept: bool
) -> None:
    """False means "ask nh3": for every URL here that nh3 drops, the check says False."""
    import nh3

    from syndicate.content.markup import _FEED_RULES, _kept_url

    assert _kept_url(url) is kept
    if kept:
        assert nh3.clean(f'<a href="{url}">x</a>', **_FEED_RULES) == f'<a href="{url}">x</a>'
