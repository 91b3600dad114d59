"""Newsletter digests: which posts, rendering to email HTML and text, previews, archive."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from syndicate.config import Config, load_config, parse_config
from syndicate.content.frontmatter import parse_post
from syndicate.content.posts import published, read_posts
from syndicate.errors import TemplateError
from syndicate.models import Post
from syndicate.newsletter.archive import read_archive, write_archive
from syndicate.newsletter.plan import clean_header, plan_digest
from syndicate.newsletter.render import (
    TOKEN_PLACEHOLDER,
    compile_mjml,
    render_digest,
    sanitize_html,
    template_environment,
)

from . import browser
from .conftest import GOLDEN, ROOT, SITE_CONFIG, Result, Site, isolated_seeds_config, post

NOW = datetime(2025, 9, 1, tzinfo=UTC)
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="module")
def seeds_config() -> Config:
    return load_config(ROOT / "config.yaml")


@pytest.fixture(scope="module")
def seed_posts(seeds_config: Config) -> list[Post]:
    return published(read_posts(seeds_config).posts, NOW)


def make_config(tmp_path: Path, extra: str = "") -> Config:
    return parse_config(SITE_CONFIG + extra, tmp_path / "config.yaml")


def make_post(config: Config, title: str, date: str, **fields: str) -> Post:
    parsed, _ = parse_post(post(title, date, **fields).encode(), f"posts/{title}.md", config)
    return parsed


# --- plan_digest --------------------------------------------------------------------


def test_first_digest_looks_back_seven_days(seed_posts: list[Post], seeds_config: Config) -> None:
    digest = plan_digest(seed_posts, {}, seeds_config, datetime(2025, 8, 12, tzinfo=UTC), None)
    assert digest is not None
    assert [p.title for p in digest.posts] == ["AI in Cancer Treatment: 2025 Breakthroughs"]
    assert digest.since == datetime(2025, 8, 5, tzinfo=UTC)
    assert digest.subject == "Syndicate Sample Blog: 1 new post"


def test_digest_takes_posts_since_the_previous_digest_newest_first(
    seed_posts: list[Post], seeds_config: Config
) -> None:
    digest = plan_digest(seed_posts, {}, seeds_config, NOW, datetime(2025, 5, 14, 12, tzinfo=UTC))
    assert digest is not None
    assert [p.date.date().isoformat() for p in digest.posts] == [
        "2025-08-11",
        "2025-07-07",
        "2025-05-15",
    ]
    assert digest.subject == "Syndicate Sample Blog: 3 new posts"
    assert digest.key == "2025-09-01-ai-in-cancer-treatment-2025-breakthroughs"
    assert (
        digest.archive_url
        == "https://blog.syndicate.test/newsletter/2025-09-01-ai-in-cancer-treatment-2025-breakthroughs.html"
    )


def test_publication_time_from_the_state_counts_not_the_post_date(
    seed_posts: list[Post], seeds_config: Config
) -> None:
    # every seed was first published by a run on 2025-08-31: all of them are new
    published_at = {p.source: datetime(2025, 8, 31, tzinfo=UTC) for p in seed_posts}
    digest = plan_digest(
        seed_posts, published_at, seeds_config, NOW, datetime(2025, 8, 30, tzinfo=UTC)
    )
    assert digest is not None and len(digest.posts) == 5


def test_nothing_new_means_no_digest(seed_posts: list[Post], seeds_config: Config) -> None:
    assert (
        plan_digest(seed_posts, {}, seeds_config, NOW, datetime(2025, 8, 11, 1, tzinfo=UTC)) is None
    )


def test_max_posts_and_topic_filters(tmp_path: Path) -> None:
    config = make_config(tmp_path, "newsletter:\n  max_posts: 2\n  tags: [python]\n")
    posts = [
        make_post(config, f"P{n}", f"2025-08-2{n}", tags="[python]" if n != 3 else "[rust]")
        for n in range(1, 6)
    ]
    digest = plan_digest(
        published(posts, NOW), {}, config, NOW, None, since=NOW - timedelta(days=30)
    )
    assert digest is not None
    assert [p.title for p in digest.posts] == ["P5", "P4"]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Hello\r\nBcc: victim@x.test", "Hello Bcc: victim@x.test"),
        ("Tab\tand\x07bell", "Tab and bell"),
        ("x" * 400, "x" * 149 + "…"),
        ("word " * 60, ("word " * 29).strip() + "…"),
    ],
)
def test_subject_is_one_clean_line(raw: str, clean: str) -> None:
    assert clean_header(raw) == clean


# --- rendering ----------------------------------------------------------------------


def test_seed_digest_renders_every_post_with_links_and_footer(
    seed_posts: list[Post], seeds_config: Config
) -> None:
    digest = plan_digest(
        seed_posts, {}, seeds_config, NOW, None, since=datetime(2025, 1, 1, tzinfo=UTC)
    )
    assert digest is not None
    rendered = render_digest(digest, seeds_config)
    assert rendered.notes == ()
    for p in digest.posts:
        assert p.url in rendered.html and p.url in rendered.text
    assert "<mj-" not in rendered.html
    assert f"https://blog.syndicate.test/unsubscribe?token={TOKEN_PLACEHOLDER}" in rendered.html
    assert (
        f"Unsubscribe: https://blog.syndicate.test/unsubscribe?token={TOKEN_PLACEHOLDER}"
        in rendered.text
    )
    assert "View this email in your browser" in rendered.html
    assert seeds_config.newsletter.postal_address in rendered.html
    assert "August 11, 2025" in rendered.html
    # the seeds' featured images are SVG, which Gmail and Outlook do not show: left out
    assert "<img" not in rendered.html and ".svg" not in rendered.html
    # <mj-style inline="inline"> rules end up in style attributes
    assert 'class="post-title"' in rendered.html and "text-decoration: none" in rendered.html
    assert "<" not in rendered.text.replace("<https", "")


def test_featured_images_keep_styled_alt_text_and_svg_is_left_out(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    png = make_post(config, "Png", "2025-08-30", description="d", image="'/cat.png'")
    svg = make_post(config, "Svg", "2025-08-29", description="d", image="'/logo.SVG?v=2'")
    data = make_post(config, "Data", "2025-08-28", description="d", image="'data:image/svg+xml,x'")
    digest = plan_digest([png, svg, data], {}, config, NOW, None)
    assert digest is not None and len(digest.posts) == 3
    html = render_digest(digest, config).html
    [img] = re.findall(r"<img [^>]*>", html)
    assert 'src="https://blog.syndicate.test/cat.png"' in img and 'alt="Png"' in img
    # shown in place of an image that does not load: grey italic, not the link blue
    assert "color: #57606a" in img and "font-style: italic" in img


def test_svg_featured_image_warns_in_check(site: Site, invoke: Callable[..., Result]) -> None:
    site.write_post("a.md", post("A", "2025-08-30", description="d", image="'/a.svg'"))
    site.write_post("b.md", post("B", "2025-08-30", description="d", image="'/b.png'"))
    found = invoke("check", "--config", site.config, cwd=site.root).stderr
    assert (
        "posts/a.md:5: warning: featured image is an SVG (https://blog.syndicate.test/a.svg): "
        "left out of email digests (Gmail and Outlook show no SVG)" in found
    )
    assert "hint: use a PNG, JPEG or WebP version" in found and "b.png" not in found
    site.set_config(SITE_CONFIG + "newsletter:\n  enabled: false\n")
    assert "SVG" not in invoke("check", "--config", site.config, cwd=site.root).stderr


def test_preheader_is_hidden_without_low_contrast_text(tmp_path: Path) -> None:
    config = make_config(tmp_path, "newsletter:\n  preheader: 'Fresh & new'\n")
    p = make_post(config, "One", "2025-08-30", description="d")
    html = render_digest(plan_digest([p], {}, config, NOW, None), config).html  # type: ignore[arg-type]
    [hidden] = re.findall(r'<div class="preheader" style="([^"]*)">Fresh &amp; new</div>', html)
    assert "display:none" in hidden and "color" not in hidden and "opacity" not in hidden
    assert "#ffffff;line-height:1px" not in html  # <mj-preview>'s white text is gone


def test_hostile_titles_and_summaries_are_escaped_once(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    hostile = make_post(
        config,
        "Fish & Chips <script>alert(1)</script>",
        "2025-08-30",
        description='"Salt & vinegar <img src=x onerror=alert(1)>"',
    )
    digest = plan_digest([hostile], {}, config, NOW, None)
    assert digest is not None
    rendered = render_digest(digest, config)
    assert "<script>" not in rendered.html and "<img src=x" not in rendered.html
    assert "Fish &amp; Chips &lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "Salt &amp; vinegar &lt;img src=x onerror=alert(1)&gt;" in rendered.html
    assert "&amp;amp;" not in rendered.html
    assert "Fish & Chips <script>alert(1)</script>" in rendered.text
    assert "Salt & vinegar <img src=x onerror=alert(1)>" in rendered.text
    assert rendered.subject == "Test Site: 1 new post"


def test_line_breaks_in_a_title_never_reach_the_subject(tmp_path: Path) -> None:
    config = make_config(tmp_path, 'newsletter:\n  subject: "{first_title}"\n')
    evil = make_post(config, "Hi", "2025-08-30")
    from syndicate.record import replace

    evil = replace(evil, title="Hi\r\nBcc: all@x.test")  # as if it slipped past the parser
    digest = plan_digest([evil], {}, config, NOW, None)
    assert digest is not None and digest.subject == "Hi Bcc: all@x.test"


def test_post_html_is_sanitised_in_full_content_mode(tmp_path: Path) -> None:
    config = make_config(tmp_path, "newsletter:\n  full_content: true\n")
    body = '<script>alert(1)</script><iframe src="https://x.test"></iframe><a href="javascript:alert(1)" onclick="x()">click</a> <img src="/a.png" onerror="y()" alt="A">'
    p = make_post(config, "Full", "2025-08-30", description="d", body=body)
    rendered = render_digest(plan_digest([p], {}, config, NOW, None), config)  # type: ignore[arg-type]
    for bad in ("<script", "<iframe", "javascript:", "onclick", "onerror"):
        assert bad not in rendered.html, bad
    assert 'src="https://blog.syndicate.test/a.png"' in rendered.html
    assert sanitize_html('<p onclick="x">ok</p>') == "<p>ok</p>"
    kept = '<p><img src="https://x.test/a.png?v=1&amp;w=2" alt="A"></p>'
    assert sanitize_html(kept) == kept
    assert sanitize_html('<p><img alt="S" src="https://x.test/s.svg?v=1">x</p>') == "<p>x</p>"


def test_full_content_html_is_markup_escaped_once(tmp_path: Path) -> None:
    """The sanitised post HTML is HTML in the email, not `&lt;p&gt;` text; post text in
    titles and summaries is still escaped, and nothing is escaped twice."""
    config = make_config(tmp_path, "newsletter:\n  full_content: true\n")
    body = "Intro & more.\n\n## Section\n\n- one\n- two\n\nSay `a < b` now."
    p = make_post(config, "Fish & Chips <b>", "2025-08-30", description="d", body=body)
    rendered = render_digest(plan_digest([p], {}, config, NOW, None), config)  # type: ignore[arg-type]
    html = rendered.html
    for literal in ("&lt;p&gt;", "&lt;h2", "&lt;li", "&lt;ul", "&lt;code"):
        assert literal not in html, literal
    assert re.search(r"<p[^>]*>Intro &amp; more\.</p>", html)
    assert re.search(r"<h2[^>]*>Section</h2>", html)
    assert len(re.findall(r"<li[^>]*>", html)) == 2
    assert re.search(r"<code[^>]*>a &lt; b</code>", html)
    assert "Fish &amp; Chips &lt;b&gt;" in html  # the title: text, escaped once
    assert "&amp;amp;" not in html and "&amp;lt;" not in html


def test_utm_parameters_go_on_site_links_only(tmp_path: Path) -> None:
    config = make_config(tmp_path, "newsletter:\n  utm: {source: newsletter, medium: email}\n")
    p = make_post(config, "Tagged", "2025-08-30", description="See [other](https://other.test/).")
    rendered = render_digest(plan_digest([p], {}, config, NOW, None), config)  # type: ignore[arg-type]
    assert (
        "https://blog.syndicate.test/posts/tagged/?utm_source=newsletter&amp;utm_medium=email"
        in rendered.html
    )
    assert (
        "https://blog.syndicate.test/posts/tagged/?utm_source=newsletter&utm_medium=email"
        in rendered.text
    )


@pytest.mark.slow
def test_oversized_digest_is_shrunk_below_gmail_clipping(tmp_path: Path) -> None:
    config = make_config(tmp_path, "newsletter:\n  full_content: true\n  max_posts: 10\n")
    big_body = ("A paragraph of the post that goes on for a while. " * 40 + "\n\n") * 10
    posts = [
        make_post(
            config,
            f"Long post {n}",
            f"2025-08-2{n % 10}",
            description="x " * 200,
            image="/i.png",
            body=big_body,
        )
        for n in range(10)
    ]
    digest = plan_digest(
        published(posts, NOW), {}, config, NOW, None, since=NOW - timedelta(days=30)
    )
    assert digest is not None and len(digest.posts) == 10
    rendered = render_digest(digest, config)
    assert len(rendered.html.encode()) <= 100_000
    assert rendered.notes[0].startswith("digest HTML over 100,000 bytes")
    assert "full post content left out" in rendered.notes


def test_ten_post_digest_fits_without_shrinking(tmp_path: Path) -> None:
    config = make_config(tmp_path, "newsletter:\n  max_posts: 10\n")
    posts = [
        make_post(
            config, f"Post {n}", f"2025-08-2{n}", description="A summary. " * 30, image="/i.png"
        )
        for n in range(10)
    ]
    rendered = render_digest(
        plan_digest(published(posts, NOW), {}, config, NOW, None, since=NOW - timedelta(days=30)),
        config,
    )  # type: ignore[arg-type]
    assert rendered.notes == ()
    assert len(rendered.html.encode()) < 102_000


# --- template errors ------------------------------------------------------------------


def user_templates(tmp_path: Path, name: str, text: str) -> Config:
    folder = tmp_path / "mytemplates"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, "utf-8")
    return make_config(tmp_path, "newsletter:\n  templates: mytemplates\n")


def render_one(config: Config) -> None:
    p = make_post(config, "One", "2025-08-30", description="d")
    render_digest(plan_digest([p], {}, config, NOW, None), config)  # type: ignore[arg-type]


def test_user_template_overrides_and_missing_ones_fall_back(tmp_path: Path) -> None:
    config = user_templates(tmp_path, "digest.txt.j2", "CUSTOM {{ posts[0].title }}\n")
    p = make_post(config, "One", "2025-08-30", description="d")
    rendered = render_digest(plan_digest([p], {}, config, NOW, None), config)  # type: ignore[arg-type]
    assert rendered.text == "CUSTOM One\n"
    assert "View this email in your browser" in rendered.html  # shipped MJML template


@pytest.mark.parametrize(
    ("name", "text", "line", "fragment"),
    [
        (
            "digest.txt.j2",
            "line one\n{% for p in posts %}\n{{ p.title }\n",
            3,
            "template syntax error",
        ),
        ("digest.txt.j2", "one\ntwo\n{{ nosuchvar }}\n", 3, "undefined variable"),
        ("digest.txt.j2", "{{ posts[0].nosuchfield }}\n", 1, "undefined variable"),
        (
            "digest.mjml.j2",
            "<mjml><mj-body><mj-section><mj-column><mj-bogus>x</mj-bogus></mj-column></mj-section></mj-body></mjml>",
            None,
            "unknown MJML tag <mj-bogus>",
        ),
        ("digest.mjml.j2", "<mjml><mj-body><mj-section>", None, "MJML compiler rejected"),
    ],
)
def test_template_errors_name_the_file_and_line(
    tmp_path: Path, name: str, text: str, line: int | None, fragment: str
) -> None:
    config = user_templates(tmp_path, name, text)
    with pytest.raises(TemplateError) as caught:
        render_one(config)
    diagnostic = caught.value.diagnostics()[0]
    assert diagnostic.path == str(tmp_path / "mytemplates" / name)
    assert diagnostic.line == line
    assert fragment in diagnostic.message


def test_shipped_template_has_no_bare_zero_padding() -> None:
    text = (ROOT / "templates" / "digest.mjml.j2").read_text()
    assert not re.search(r'padding="[^"]*(?<![\d.])0(?![\d.px%])', text)


def test_compile_rejects_unknown_tags_directly(tmp_path: Path) -> None:
    env = template_environment(make_config(tmp_path))
    with pytest.raises(TemplateError):
        compile_mjml("<mjml><mj-body><mj-sektion></mj-sektion></mj-body></mjml>", env)


# --- the preview command, golden files, the archive ------------------------------------


def preview(invoke: Callable[..., Result], out: Path, *extra: str, full: bool = False) -> Result:
    config = isolated_seeds_config(out / "site")
    if full:
        text = config.read_text("utf-8")
        config.write_text(text.replace("newsletter:\n", "newsletter:\n  full_content: true\n"))
    return invoke(
        "digest", "--preview", "--config", config, "--out", out,
        "--now", "2025-09-01T00:00:00Z", "--since", "2025-01-01T00:00:00Z", *extra,
    )  # fmt: skip


def test_preview_writes_html_text_and_a_complete_message(
    invoke: Callable[..., Result], tmp_path: Path
) -> None:
    result = preview(invoke, tmp_path)
    assert result.exit_code == 0, result.stderr
    folder = tmp_path / "newsletter"
    assert result.stdout.splitlines() == [
        str(folder / n) for n in ("preview.html", "preview.txt", "preview.eml")
    ]
    message = email.message_from_bytes(
        (folder / "preview.eml").read_bytes(), policy=email.policy.default
    )
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "Syndicate Sample Blog: 5 new posts"
    assert message["From"] == "Syndicate Sample Blog <newsletter@blog.syndicate.test>"
    assert message.get_content_type() == "multipart/alternative"
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None and html_part is not None
    # the .eml carries CRLF line ends, as SMTP does
    assert text_part.get_content().replace("\r\n", "\n") == (folder / "preview.txt").read_text()
    assert (
        html_part.get_content().replace("\r\n", "\n").rstrip("\n")
        == (folder / "preview.html").read_text()
    )
    assert "unsubscribe?token=preview" in html_part.get_content()


@pytest.mark.slow
def test_no_digest_when_nothing_is_new(invoke: Callable[..., Result], tmp_path: Path) -> None:
    """The seeds entered the feeds on 2025-08-20 (a run), before the first digest's
    look-back (7 days before 2025-09-01): nothing is new."""
    config = isolated_seeds_config(tmp_path / "site")
    assert invoke("run", "--once", "--config", config, "--now", "2025-08-20").exit_code == 0
    result = invoke(
        "digest", "--preview", "--config", config, "--out", tmp_path, "--now", "2025-09-01T00:00Z"
    )
    assert result.exit_code == 0
    assert "no digest: nothing published since 2025-08-25" in result.stderr
    assert not (tmp_path / "newsletter").exists()


def test_template_error_exits_2_and_writes_nothing(
    site: Site, invoke: Callable[..., Result]
) -> None:
    (site.root / "t").mkdir()
    (site.root / "t" / "digest.txt.j2").write_text("{{ oops }\n")
    site.set_config(SITE_CONFIG + "newsletter:\n  templates: t\n")
    site.write_post("a.md", post("A", "2025-08-30"))
    result = invoke(
        "digest", "--preview", "--config", site.config, "--now", "2025-09-01", cwd=site.root
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"{site.root / 't' / 'digest.txt.j2'}:1: error: template syntax error"
    )
    assert not (site.public / "newsletter").exists()


@pytest.mark.parametrize("full", [False, True], ids=["summaries", "full-content"])
@pytest.mark.parametrize("name", ["preview.html", "preview.txt"])
def test_seed_digest_matches_golden_files(
    invoke: Callable[..., Result], tmp_path: Path, name: str, full: bool, update_golden: bool
) -> None:
    preview(invoke, tmp_path, full=full)
    produced = (tmp_path / "newsletter" / name).read_bytes()
    golden = GOLDEN / ("digest-full" if full else "digest") / name
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(produced)
    assert produced == golden.read_bytes(), (
        f"run `pytest --update-golden` if {name} changed on purpose"
    )


def test_archive_writer_saves_page_index_and_feed(
    seed_posts: list[Post], seeds_config: Config, tmp_path: Path
) -> None:
    import feedparser

    digest = plan_digest(
        seed_posts, {}, seeds_config, NOW, None, since=datetime(2025, 1, 1, tzinfo=UTC)
    )
    assert digest is not None
    rendered = render_digest(digest, seeds_config)
    page = write_archive(tmp_path, digest, rendered, seeds_config)
    assert page == tmp_path / "newsletter" / f"{digest.key}.html"
    html = page.read_text()
    assert TOKEN_PLACEHOLDER not in html
    assert (
        'href="https://blog.syndicate.test/unsubscribe"' in html
    )  # no personal token on a public page
    write_archive(tmp_path, digest, rendered, seeds_config)  # idempotent
    entries = read_archive(tmp_path)
    assert [e.key for e in entries] == [digest.key]
    index = (tmp_path / "newsletter" / "index.html").read_text()
    assert digest.archive_url in index and "Syndicate Sample Blog: 5 new posts" in index
    feed = feedparser.parse((tmp_path / "newsletter" / "feed.xml").read_bytes())
    assert feed.bozo == 0
    assert [e.link for e in feed.entries] == [digest.archive_url]


# --- in a real browser ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("width", [600, 375])
def test_preview_renders_in_chromium(
    invoke: Callable[..., Result], tmp_path: Path, width: int
) -> None:
    preview(invoke, tmp_path)
    page = tmp_path / "newsletter" / "preview.html"
    seen = browser.probe(page, width)
    assert seen["width"] == width
    assert seen["scrollWidth"] <= width, "horizontal overflow"
    text = seen["bodyText"]
    for title in (
        "AI in Cancer Treatment: 2025 Breakthroughs",
        "Generative AI's Impact on Personalized Medicine: A Brave New World?",
    ):
        assert title in text
    assert text.count("Read more") == 5
    assert "Syndicate Sample Blog: 5 new posts" not in text  # <title>, not shown
    assert not any(".svg" in image["src"] for image in seen["images"])
    assert all(image["alt"] for image in seen["images"])
    assert seen["links"] and all(link.startswith("https://") for link in seen["links"])
    browser.screenshot(page, width, ARTIFACTS / f"digest-{width}.png")


@pytest.mark.slow
def test_full_content_digest_shows_html_as_html_in_chromium(
    invoke: Callable[..., Result], tmp_path: Path
) -> None:
    preview(invoke, tmp_path, full=True)
    seen = browser.probe(tmp_path / "newsletter" / "preview.html", 600)
    text = seen["bodyText"]
    for literal in ("<p>", "</p>", "<h2>", "&lt;", "&amp;"):
        assert literal not in text, literal
    assert "The fight against cancer is entering a new era" in text  # the post's own prose
    assert seen["tags"]["p"] >= 20 and seen["tags"]["h2"] >= 10
    assert seen["scrollWidth"] <= 600, "horizontal overflow"


@pytest.mark.slow
def test_browser_probe_can_see_overflow(tmp_path: Path) -> None:
    """The overflow assertion above is only worth something if it can fail."""
    page = tmp_path / "wide.html"
    page.write_text(
        '<html><body><table width="700"><tr><td>wide</td></tr></table><a href="/rel">x</a></body></html>'
    )
    seen = browser.probe(page, 375)
    assert seen["scrollWidth"] > 375
    assert seen["links"] == ["/rel"]


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://x.test/u", "https://x.test/u?token=T"),
        ("https://x.test/u?list=news", "https://x.test/u?list=news&token=T"),
        ("https://x.test/u?", "https://x.test/u?token=T"),
        ("https://x.test/u#bottom", "https://x.test/u?token=T#bottom"),
    ],
)
def test_one_rule_for_the_unsubscribe_link(base: str, expected: str) -> None:
    """The body's link and List-Unsubscribe are the same URL, whatever the base looks
    like (a query, a bare `?`, a fragment)."""
    from syndicate.newsletter.render import link_with_token

    assert link_with_token(base, "T") == expected
