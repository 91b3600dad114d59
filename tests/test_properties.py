"""Property tests (hypothesis) where inputs are open-ended: front matter and dates, config
validation, token signing and parsing, slug uniqueness, and escaping in the three feed
formats. Each property holds for any input; hypothesis looks for one where it does not."""

from __future__ import annotations

import json
import os
import string
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from syndicate import record
from syndicate.config import Config, parse_config
from syndicate.content.frontmatter import parse_post
from syndicate.content.markup import title_text
from syndicate.content.posts import assign_unique_slugs, render_post
from syndicate.errors import ConfigError, PostError, TokenError
from syndicate.feeds.plan import plan_feeds
from syndicate.feeds.registry import build_feed
from syndicate.newsletter.tokens import read_token, sign_token, verify_token

from .conftest import SITE_CONFIG

# 60 examples each keeps the fast tier fast; SYNDICATE_PROPERTY_EXAMPLES=2000 searches harder.
# Locally every run tries new examples (hypothesis keeps failures in .hypothesis/).
SETTINGS = settings(
    max_examples=int(os.environ.get("SYNDICATE_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),  # CI: the same examples every run
)
ATOM = "http://www.w3.org/2005/Atom"
SECRET = b"property-secret-0123456789abcdef"
CONFIG_PATH = Path("/tmp/property-site/config.yaml")  # noqa: S108 - never written: anchors paths


def site_config() -> Config:
    return parse_config(SITE_CONFIG, CONFIG_PATH)


# Any text a person (or a broken export) can put in a file: every plane, controls included.
any_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
printable_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=60
)
yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), any_text
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
front_matter_keys = st.sampled_from(
    ["title", "date", "pubDate", "updated", "tags", "categories", "description", "image",
     "author", "slug", "draft", "id", "keywords", "summary"]
) | any_text  # fmt: skip


# --- front matter and dates -----------------------------------------------------------------


@SETTINGS
@given(st.dictionaries(front_matter_keys, yaml_values, max_size=8), any_text)
def test_any_front_matter_gives_a_post_or_one_error_with_a_line(
    meta: dict[str, object], body: str
) -> None:
    """Whatever the front matter holds, parsing gives a Post or a PostError that names the
    file and a line in it: never another exception."""
    text = "---\n" + yaml.safe_dump(meta, allow_unicode=True) + "---\n" + body
    config = site_config()
    try:
        post, warnings = parse_post(text.encode("utf-8"), "posts/p.md", config)
    except PostError as exc:
        (diagnostic,) = exc.diagnostics()
        assert diagnostic.path == "posts/p.md"
        assert diagnostic.line is None or 1 <= diagnostic.line <= text.count("\n") + 1
        assert diagnostic.message
        return
    assert post.title and post.slug
    assert post.date.tzinfo is not None
    assert all(w.line is None or w.line >= 1 for w in warnings)


@SETTINGS
@given(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9998, 12, 30)))
def test_any_date_written_in_iso_form_is_read_back_exactly(when: datetime) -> None:
    when = when.replace(microsecond=0)
    text = f"---\ntitle: T\ndate: {when.isoformat()}Z\n---\nBody.\n"
    post, _ = parse_post(text.encode(), "posts/p.md", site_config())
    assert post.date == when.replace(tzinfo=UTC)


# --- config validation ------------------------------------------------------------------------


config_sections = st.sampled_from(
    ["site", "content", "output", "feeds", "state", "schedule", "newsletter", "delivery",
     "serve", "subscribers"]
)  # fmt: skip


@SETTINGS
@given(st.dictionaries(config_sections | any_text, yaml_values, max_size=6))
def test_any_config_gives_a_config_or_errors_with_a_key(document: dict[str, object]) -> None:
    """Random keys and values in config.yaml: a Config, or a ConfigError whose every line
    names config.yaml; never a traceback."""
    text = yaml.safe_dump(document, allow_unicode=True)
    try:
        parse_config(text, CONFIG_PATH)
    except ConfigError as exc:
        diagnostics = exc.diagnostics()
        assert diagnostics
        assert all(d.path == str(CONFIG_PATH) and d.message for d in diagnostics)


@SETTINGS
@given(st.integers(min_value=1, max_value=1000), st.sampled_from(["rss", "atom", "json"]))
def test_valid_values_are_taken_as_given(limit: int, fmt: str) -> None:
    text = SITE_CONFIG + f"feeds:\n  limit: {limit}\n  formats: [{fmt}]\n"
    config = parse_config(text, CONFIG_PATH)
    assert config.feeds.limit == limit and config.feeds.formats == (fmt,)


# --- tokens -----------------------------------------------------------------------------------


addresses = st.emails()


@SETTINGS
@given(st.integers(min_value=1, max_value=2**31 - 1), addresses)  # the id column's range
def test_a_signed_token_verifies_for_its_reader_only(subscriber_id: int, email: str) -> None:
    token = sign_token(SECRET, subscriber_id, email, "unsubscribe")
    assert read_token(token) == (subscriber_id, "unsubscribe")
    assert verify_token(SECRET, token, email, "unsubscribe") == subscriber_id
    for other in (email + "x", "someone@else.example"):
        try:
            verify_token(SECRET, token, other, "unsubscribe")
        except TokenError:
            continue
        raise AssertionError(f"a token for {email} verified for {other}")


@SETTINGS
@given(
    st.integers(min_value=1, max_value=2**31),
    addresses,
    st.integers(min_value=0, max_value=200),
    st.text(string.ascii_letters + string.digits + "._-", max_size=3),
)
def test_a_tampered_or_truncated_token_is_refused(
    subscriber_id: int, email: str, cut: int, junk: str
) -> None:
    """Any change to a token (cut short, characters replaced or added) is a TokenError:
    never accepted, never another exception."""
    token = sign_token(SECRET, subscriber_id, email, "unsubscribe")
    changed = token[: cut % (len(token) + 1)] + junk
    if changed == token:
        return
    try:
        verify_token(SECRET, changed, email, "unsubscribe")
    except TokenError:
        return
    raise AssertionError(f"{changed!r} verified")


@SETTINGS
@given(any_text)
def test_any_string_as_a_token_is_a_token_error(text: str) -> None:
    try:
        verify_token(SECRET, text, "a@example.org", "unsubscribe")
    except TokenError:
        return
    raise AssertionError(f"{text!r} verified")


# --- slugs ------------------------------------------------------------------------------------


@SETTINGS
@given(st.lists(any_text, min_size=1, max_size=12))
def test_every_post_gets_its_own_slug(titles: list[str]) -> None:
    """Titles that slugify alike (or to nothing) still give every post a distinct slug."""
    config = site_config()
    posts = []
    for n, title in enumerate(titles):
        text = f"---\ntitle: {json.dumps(title or 'x')}\ndate: 2025-05-0{1 + n % 9}\n---\n"
        try:
            post, _ = parse_post(text.encode(), f"posts/p{n}.md", config, f"posts/p{n}.md")
        except PostError:
            continue
        posts.append(post)
    unique, _ = assign_unique_slugs(posts, config)
    assert len({p.slug for p in unique}) == len(unique) == len(posts)


# --- escaping in the feeds --------------------------------------------------------------------


def as_feedparser_shows(text: str) -> str:
    """feedparser "repairs" UTF-8 text that reads as Latin-1 mojibake (mixin.py: `Â¡` is
    shown as `¡`), whatever the feed says; the XML holds the text as written."""
    try:
        return text.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def read_back(data: bytes, fmt: str) -> tuple[tuple[str, list[str]], tuple[str, list[str]]]:
    """(title, tags) of the first entry as an exact XML reader (lxml) and as feedparser
    read them; for JSON Feed both are the JSON."""
    if fmt == "json":
        item = json.loads(data)["items"][0]
        exact = (item["title"], item.get("tags", []))
        return exact, exact
    root = etree.fromstring(data)
    if fmt == "rss":
        entry = root.find("channel/item")
        assert entry is not None
        exact = (entry.findtext("title") or "", [c.text or "" for c in entry.findall("category")])
    else:
        entry = root.find(f"{{{ATOM}}}entry")
        assert entry is not None
        terms = [c.get("term") or "" for c in entry.findall(f"{{{ATOM}}}category")]
        exact = (entry.findtext(f"{{{ATOM}}}title") or "", terms)
    parsed = feedparser.parse(data).entries[0]
    return exact, (parsed.get("title", ""), [t.term for t in parsed.get("tags", [])])


@SETTINGS
@given(printable_text, printable_text)
def test_any_title_and_tag_read_back_the_same_in_every_format(title: str, tag: str) -> None:
    """Escaped exactly once: a title and a tag read back as the post's text (the title as
    plain text) in RSS, Atom and JSON Feed, by an XML parser and by feedparser alike (no
    `&amp;amp;`, no lost `<`, no entity left over)."""
    config = site_config()
    config = record.replace(config, feeds=record.replace(config.feeds, stylesheet=False))
    text = f"---\ntitle: {json.dumps(title)}\ndate: 2025-05-01\ntags: [{json.dumps(tag)}]\n---\n"
    try:
        post, _ = parse_post(text.encode(), "posts/p.md", config, "posts/p.md")
    except PostError:
        return
    post = render_post(post)
    spec = plan_feeds([post], config)[0]
    expected = (title_text(post.title), list(post.tags))
    for fmt in ("rss", "atom", "json"):
        exact, parsed = read_back(build_feed(spec, config, fmt), fmt)
        assert exact == expected, fmt
        # feedparser's repair applies to XML element text: titles, and RSS <category>;
        # an Atom category's term is an attribute, and JSON Feed is read as JSON.
        shown = expected
        if fmt != "json":
            tags = expected[1] if fmt == "atom" else [as_feedparser_shows(t) for t in expected[1]]
            shown = (as_feedparser_shows(expected[0]), tags)
        assert (parsed[0].strip(), [t.strip() for t in parsed[1]]) == (
            shown[0].strip(),
            [t.strip() for t in shown[1]],
        ), fmt


# --- cron expressions: the check without APScheduler agrees with APScheduler -----------------

cron_numbers = st.one_of(st.integers(0, 6), st.integers(0, 70)).map(str)  # mostly in range
cron_atoms = st.one_of(
    st.just("*"),
    cron_numbers,
    st.sampled_from(["mon", "tue", "fri", "sun", "xyz", "MON", "jan"]),
)
cron_items = st.builds(
    lambda first, last, step: first + (f"-{last}" if last else "") + (f"/{step}" if step else ""),
    cron_atoms,
    st.none() | cron_atoms,
    st.none() | st.integers(min_value=0, max_value=70).map(str),
)
cron_fields = st.lists(cron_items, min_size=1, max_size=3).map(",".join)


@SETTINGS
@given(st.lists(cron_fields, min_size=5, max_size=6).map(" ".join))
def test_the_plain_cron_check_accepts_only_what_apscheduler_accepts(expression: str) -> None:
    """config.yaml is checked without importing APScheduler for plain cron expressions;
    whatever that check accepts, APScheduler must accept too (the rest goes to it)."""
    from apscheduler.triggers.cron import CronTrigger

    from syndicate.config import _plain_cron_ok, cron_trigger_fields

    if _plain_cron_ok(expression):
        CronTrigger(**cron_trigger_fields(expression), timezone="UTC")  # must not raise


@SETTINGS
@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40))
def test_the_plain_sqlite_check_accepts_only_what_sqlalchemy_opens(path: str) -> None:
    """A `sqlite:///path` URL accepted without importing SQLAlchemy is one SQLAlchemy
    parses and has the driver for."""
    from syndicate.config import _plain_sqlite_file, _sqlalchemy_url_error

    url = "sqlite:///" + path
    if _plain_sqlite_file(url):
        assert _sqlalchemy_url_error(url) is None


YAML_TOKENS = [
    *["a", "b", ": ", " ", "\n", "- ", "[", "]", "{", "}", ", ", "? ", "<<", "=", "~", "1"],
    *["!!str ", "!!int ", "!!set ", "!!omap ", "!!binary ", "!!python/name:x ", "0x1F"],
    *["yes", "1.5", ".inf", "null", "'", '"', "  ", "\n  ", "2025-02-30", "|\n  "],
]
yaml_like = st.text(st.sampled_from("ab: -[]{},?!&*'\"\n\t#|>%.9"), max_size=50) | st.lists(
    st.sampled_from(YAML_TOKENS), max_size=24
).map("".join)


@SETTINGS
@given(yaml_like)
def test_front_matter_read_without_the_yaml_checks_is_read_the_same(text: str) -> None:
    """Front matter that skips load_yaml's alias and depth checks (no `*`, `&`, second
    document, or enough indicators to nest deeply) gives the same value, or the same
    error, as with them."""
    from syndicate.config import load_yaml
    from syndicate.content.frontmatter import _YAML, _PlainYAMLLoader

    def outcome(load: Callable[[], object]) -> object:
        try:
            return ("value", load())
        except Exception as exc:  # `!!int ` is an IndexError in PyYAML: the same either way
            return ("error", type(exc), str(exc))

    expected = outcome(lambda: load_yaml(text, _PlainYAMLLoader)[1])
    assert outcome(lambda: _YAML().load(text)) == expected


@SETTINGS
@given(st.lists(st.sampled_from(["<![CDATA[", "]]>", "&amp;", "&lt;", "x", "]", "<!", "&"])))
def test_rss_hex_references_leave_cdata_alone(parts: list[str]) -> None:
    """rss._hex_references finds CDATA sections with `find`; it must agree with the plain
    definition: split on each `<![CDATA[ ... ]]>` (shortest), replace outside them only."""
    import re

    from syndicate.feeds.rss import _hex_references

    data = "".join(parts).encode()
    pieces = re.split(rb"(<!\[CDATA\[.*?\]\]>)", data, flags=re.DOTALL)
    for index in range(0, len(pieces), 2):
        pieces[index] = pieces[index].replace(b"&amp;", b"&#x26;").replace(b"&lt;", b"&#x3C;")
    assert _hex_references(data) == b"".join(pieces)


url_part = st.text(st.sampled_from("aB0./?#:@%[]-_~ \\"), max_size=12)


@SETTINGS
@given(
    st.sampled_from(["https://blog.test/p/", "http://blog.test/", "HTTPS://b.test", "ftp://x/"])
    | st.sampled_from(["https:", "no-scheme", "1x://y/", ":", "", "h ttp://x/"]),
    st.sampled_from(["https://", "http://", "HTTP://", "https:///", "//"]),
    url_part,
)
def test_absolute_links_join_as_urljoin_joins_them(base: str, scheme: str, rest: str) -> None:
    """markup._join keeps what urljoin makes of absolute URLs per page scheme (the same
    links recur in every post): the answer is urljoin's, whatever the page."""
    from urllib.parse import urljoin

    from syndicate.content.markup import _join

    def outcome(join: Callable[[str, str], str], value: str) -> object:
        try:
            return join(base, value)
        except ValueError as exc:  # "https://[" is no URL to either
            return type(exc)

    value = scheme + rest
    assert outcome(_join, value) == outcome(urljoin, value.strip())


page_path = st.lists(
    st.sampled_from(["a", "b.html", ".", "..", "", "x;p=1", "..;p", ".;q", "%2F"]), max_size=5
)


@SETTINGS
@given(
    st.sampled_from(["https://blog.test", "http://b.test:8080", "HTTPS://B.test", "ftp://x"])
    | st.sampled_from(["https:", "no-scheme", "https://", "mailto:a@b", "//blog.test"]),
    page_path.map("/".join),
    st.sampled_from(["", "/", "?q=1", "#top", ";params", "/?q#f"]),
    st.text(st.sampled_from("a./%-_~!$&'()*+,=@:;?#\\ \t"), min_size=1, max_size=14)
    | page_path.map("/".join).filter(bool)
    | page_path.map(lambda segments: "/" + "/".join(segments)),
)
def test_relative_links_join_as_urljoin_joins_them(
    origin: str, path: str, tail: str, value: str
) -> None:
    """markup._join resolves plain relative paths (`../p/`, `/images/1.png`) itself,
    against a page split once: the answer is urljoin's, whatever the page and path."""
    from urllib.parse import urljoin

    from syndicate.content.markup import _join

    base = origin + ("/" + path if path and not path.startswith("/") else path) + tail
    if value.strip().lower().startswith(("javascript:", "data:", "mailto:", "tel:")):
        return
    assert _join(base, value) == urljoin(base, value.strip())


@SETTINGS
@given(
    st.text(st.characters(codec=None), max_size=40)
    | st.text("ab\x00\x01\x09\x0a\x0b\x0d\x1f\x7f\ufffe\uffff\ufffd\ud800é—", max_size=20)
)
def test_the_quick_xml_check_agrees_with_the_regular_expression(text: str) -> None:
    from syndicate.content.markup import XML_FORBIDDEN, has_xml_forbidden

    assert has_xml_forbidden(text) == (XML_FORBIDDEN.search(text) is not None)


html_bits = st.lists(
    st.sampled_from(["<b>", "</b>", "<script>x</script>", "<a href='javascript:x'>", "</a>"])
    | st.sampled_from(["<img src=x onerror=y>", "<!-- c -->", "<p class=k id=i>", "<td>", "&amp;"])
    | st.sampled_from(["<iframe src=//x>", "<video poster=p>", "<ol start=3>", "text", " ", "<"]),
    max_size=20,
).map("".join)


@SETTINGS
@given(html_bits)
def test_the_built_sanitiser_cleans_as_nh3_clean_does(html: str) -> None:
    """markup's nh3.Cleaner, built once, keeps and drops what nh3.clean with the same
    rules does, in this thread and in another (the daemon renders in job threads)."""
    import threading

    import nh3

    from syndicate.content import markup

    want = nh3.clean(html, **markup._FEED_RULES)
    assert markup.sanitize_feed_html(html) == want
    seen: list[str] = []
    thread = threading.Thread(target=lambda: seen.append(markup.sanitize_feed_html(html)))
    thread.start()
    thread.join()
    assert seen == [want]


# Markdown that writes all of its HTML itself, and Markdown that gives the sanitiser work:
# links nh3 drops (schemes, hosts its URL parser refuses), attributes it drops (table
# alignment, attribute lists), entities in URLs and titles, links in links, raw HTML.
markdown_bits = st.lists(
    st.sampled_from(
        [
            "plain words",
            "*em*",
            "**strong**",
            "`code <x> & y`",
            "_under_",
            "a & b < c",
            "[a](https://example.org/x)",
            "[a](javascript:alert(1))",
            "[a](JaVaScRiPt:x)",
            "[a](data:text/html,x)",
            "[a](//evil.example/x)",
            "[a](../rel/)",
            "[a](#frag)",
            "[a](mailto:me@example.org)",
            "[a](tel:123)",
            "[a](http://999.1.1.1/)",
            "[a](http://1.2.3.4/)",
            "[a](https://exa_mple.org/)",
            "[a](https://xn--zz/)",
            "[a](http://host:99999/)",
            "[a](http://host:8080/p)",
            "[a](<https://a b/>)",
            "[a](https://example.org/?a=1&copy;=2)",
            '[a](https://example.org "t &check; t")',
            "[a](C:/x)",
            "[a](java&#x09;script:x)",
            "[a](https:/\\evil.example)",
            "[a <https://inner.example>](https://outer.example)",
            "[x *y <https://inner.example> w* v](https://outer.example)",
            "[x **y <me@example.org>** v](https://o.example)",
            "[a](<java\nscript:alert(1)>)",
            "[a](https://e.org/?x=&#128;)",
            '[a](https://e.org "&#0; &#x80; &notit;")',
            "<https://auto.example/x>",
            "<me@example.org>",
            "![alt &check;](x.png)",
            "![a](javascript:x)",
            '![a](/i.png "title")',
            "[^1]",
            "HTML",
        ]
    )
    | st.sampled_from(
        [
            '{: onclick="x()" }',
            "{: .cls #id }",
            '{: style="color:red" }',
            "{: data-x=1 }",
            "{: lang=fr }",
            "&copy; &check; &#128; &#0;",
            "<b>raw</b>",
            "<!-- c -->",
            "a\x0cb",
            "\n\n",
            "\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n",
            "\n\n| a | b |\n|---|---|\n| 1 | [x](javascript:y) |\n\n",
            "\n\nTerm\n: Definition\n\n",
            "\n\n*[HTML]: Hyper Text\n\n",
            "\n\n[^1]: A note.\n\n",
            '\n\n```{.py #c data-x="y"}\nx < y\n```\n\n',
            "\n\n```\nplain & code\n```\n\n",
            "\n\n> quote\n\n",
            "\n\n- item\n- item\n\n",
            "\n\n3. three\n4. four\n\n",
            "\n\n---\n\n",
            "\n\n# Head\n{: #h }\n\n",
        ]
    ),
    max_size=12,
).map(" ".join)


@SETTINGS
@given(markdown_bits)
def test_markdown_without_raw_html_renders_as_the_sanitiser_would_leave_it(body: str) -> None:
    """Where Markdown wrote all of the HTML, the sanitiser is not run and the tree is
    checked instead for what it would drop: the parts are those the sanitiser gives."""
    from unittest import mock

    from syndicate.content import markup

    base = "https://blog.syndicate.test/posts/p/"
    with mock.patch.object(markup, "_markdown_only", lambda html, author_html: False):
        want = markup.render_markdown(body, base)
    got = markup.render_markdown(body, base)
    assert got == want
    if got.xhtml is not None:  # sanitised: well-formed without parsing it again to see
        etree.fromstring(f"<div>{got.xhtml}</div>")


@SETTINGS
@given(html_bits)
def test_sanitised_raw_html_has_a_well_formed_xhtml_form_or_none(html: str) -> None:
    from syndicate.content import markup

    xhtml = markup.render_markdown(f"Text {html} more", "https://blog.syndicate.test/p/").xhtml
    if xhtml is not None:
        etree.fromstring(f"<div>{xhtml}</div>")


path_parts = st.lists(
    st.text(alphabet="ab-./_ZéÄ0", min_size=1, max_size=4).filter(lambda p: p not in {".", ".."}),
    min_size=1,
    max_size=4,
)


@SETTINGS
@given(st.lists(path_parts, max_size=12))
def test_content_files_are_found_in_the_order_of_their_paths(names: list[list[str]]) -> None:
    """find_sources sorts by path parts without Path.__lt__: the same order ("a/b" before
    "a-c", although "-" sorts before "/" in the whole string)."""
    from syndicate.content.discover import path_order

    paths = {Path("/content", *parts) for parts in names}
    assert sorted(paths, key=path_order) == sorted(paths)


@SETTINGS
@given(
    st.text(st.characters(codec=None), max_size=30)
    | st.text(" a\t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u3000\x00\x7f\x9f\ufffe\uffffé", max_size=12)
)
@example(" a")
@example("a ")
@example("a  b")
@example("a\u00a0b")
def test_clean_line_answers_as_its_regular_expressions_do(text: str) -> None:
    """clean_line passes a text that is one clean line already as it is: for any text,
    the answer is that of the two substitutions it stands for."""
    import re

    from syndicate.content.markup import clean_line

    control = re.compile("[\x00-\x1f\x7f-\x9f\ufffe\uffff]")
    assert clean_line(text) == re.sub(r"\s+", " ", control.sub(" ", text)).strip()
