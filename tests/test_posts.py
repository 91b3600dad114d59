"""parse_post: every front-matter dialect into one Post, and every way a post can be bad."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from syndicate import record
from syndicate.config import Config, parse_config
from syndicate.content.frontmatter import parse_post
from syndicate.content.posts import assign_unique_slugs, published, render_post
from syndicate.errors import PostError

from .conftest import SEEDS, SITE_CONFIG


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    root = tmp_path_factory.mktemp("cfg")
    return parse_config(SITE_CONFIG.replace('"UTC"', '"Europe/Paris"'), root / "config.yaml")


def parse(text: str | bytes, config: Config, source: str = "posts/x.md"):  # type: ignore[no-untyped-def]
    data = text.encode() if isinstance(text, str) else text
    return parse_post(data, source, config)


def test_astro_dialect_from_the_seeds(config: Config) -> None:
    path = SEEDS / "000_14cad5f44a298dd7.txt"
    post, warnings = parse(path.read_bytes(), config, "seeds/000.txt")
    assert warnings == []
    assert post.title.startswith("Predictive AI in Personalized Oncology")
    assert post.date == datetime(2025, 7, 7, tzinfo=post.date.tzinfo)
    assert post.date.utcoffset() == timedelta(hours=2)  # midnight in Europe/Paris (summer)
    assert post.categories == ("Future Tech & AI",)
    assert "GPT-4o" in post.tags
    assert post.image is not None
    assert post.image.url == "https://blog.syndicate.test/images/blog-placeholder-4.svg"
    assert post.image.type == "image/svg+xml"
    assert post.image.alt and post.image.alt.startswith("Featured image for")
    assert post.author is not None and post.author.name == "TechBrew Daily"
    assert post.description and post.summary == post.description


def test_jekyll_dialect_from_the_seeds(config: Config) -> None:
    post, _ = parse((SEEDS / "002_dc5842f609f345b3.txt").read_bytes(), config, "seeds/002.txt")
    assert post.date.date().isoformat() == "2025-05-14"
    assert post.categories == ("blog",)
    assert "Genomics" in post.tags
    assert post.extra["layout"] == "default"
    assert "precision medicine" in post.extra["keywords"]
    assert post.description is None
    assert post.summary == ""  # no description: the first paragraph, once rendered
    assert render_post(post).summary.startswith(
        "The convergence of generative artificial intelligence"
    )


def test_hugo_toml_front_matter(config: Config) -> None:
    text = '+++\ntitle = "Hugo post"\ndate = 2025-05-14T10:00:00+02:00\nlastmod = 2025-06-01\ntags = ["a", "b"]\ndraft = false\n+++\nHello.\n'
    post, _ = parse(text, config)
    assert post.title == "Hugo post"
    assert post.date == datetime(2025, 5, 14, 8, 0, tzinfo=UTC)
    assert post.updated is not None and post.updated.date().isoformat() == "2025-06-01"
    assert post.tags == ("a", "b")
    assert not post.draft


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-05-13", datetime(2025, 5, 13)),
        ("'Jul 08 2025'", datetime(2025, 7, 8)),
        ("May 13, 2025", datetime(2025, 5, 13)),
        (
            "2025-05-13 10:00:00 +0200",
            datetime(2025, 5, 13, 10, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("2025-05-13T10:00:00Z", datetime(2025, 5, 13, 10, tzinfo=UTC)),
        ("2025-05-13T10:00", datetime(2025, 5, 13, 10)),
    ],
)
def test_date_forms(value: str, expected: datetime, config: Config) -> None:
    post, _ = parse(f"---\ntitle: t\ndate: {value}\n---\nx\n", config)
    if expected.tzinfo is None:
        expected = expected.replace(tzinfo=config.site.tz)
    assert post.date == expected


@pytest.mark.parametrize("key", ["date", "pubDate", "published"])
def test_date_keys(key: str, config: Config) -> None:
    post, _ = parse(f"---\ntitle: t\n{key}: 2025-01-02\n---\nx\n", config)
    assert post.date.date().isoformat() == "2025-01-02"


@pytest.mark.parametrize("key", ["updated", "updatedDate", "lastmod", "last_modified_at"])
def test_updated_keys(key: str, config: Config) -> None:
    post, _ = parse(f"---\ntitle: t\ndate: 2025-01-02\n{key}: 2025-02-03\n---\nx\n", config)
    assert post.updated is not None and post.updated.date().isoformat() == "2025-02-03"
    assert post.modified == post.updated


def test_date_from_jekyll_file_name(config: Config) -> None:
    post, _ = parse("---\ntitle: Named\n---\nx\n", config, "_posts/2024-12-31-new-year.md")
    assert post.date.date().isoformat() == "2024-12-31"
    assert post.slug == "new-year"


@pytest.mark.parametrize(
    ("fields", "tags", "categories"),
    [
        ("tags: a, b ,c\ncategory: News", ("a", "b", "c"), ("News",)),
        ("tags: [x, y, x]\ncategories: [One, Two]", ("x", "y"), ("One", "Two")),
        ("tags: 2025\ncategories: blog", ("2025",), ("blog",)),
        ("tag: solo", ("solo",), ()),
    ],
)
def test_tags_and_categories(
    fields: str, tags: tuple[str, ...], categories: tuple[str, ...], config: Config
) -> None:
    post, _ = parse(f"---\ntitle: t\ndate: 2025-01-02\n{fields}\n---\nx\n", config)
    assert post.tags == tags
    assert post.categories == categories


def test_image_forms(config: Config) -> None:
    plain, _ = parse("---\ntitle: t\ndate: 2025-01-02\nimage: cover.png\n---\nx\n", config)
    assert plain.image is not None
    assert plain.image.url == "https://blog.syndicate.test/posts/t/cover.png"
    assert plain.image.alt is None and plain.image.type == "image/png"
    hero, _ = parse("---\ntitle: t\ndate: 2025-01-02\nheroImage: /hero.jpg\n---\nx\n", config)
    assert hero.image is not None and hero.image.url == "https://blog.syndicate.test/hero.jpg"


def test_author_forms(config: Config) -> None:
    named, _ = parse(
        "---\ntitle: t\ndate: 2025-01-02\nauthor: {name: Ada, email: ada@x.test}\n---\nx\n", config
    )
    assert named.author is not None and (named.author.name, named.author.email) == (
        "Ada",
        "ada@x.test",
    )
    default, _ = parse("---\ntitle: t\ndate: 2025-01-02\n---\nx\n", config)
    assert default.author == config.site.author


@pytest.mark.parametrize("fields", ["draft: true", "published: false", "draft: 'yes'"])
def test_drafts_are_held_back(fields: str, config: Config) -> None:
    post, _ = parse(f"---\ntitle: t\ndate: 2025-01-02\n{fields}\n---\nx\n", config)
    assert post.draft
    assert published([post], datetime(2030, 1, 1, tzinfo=UTC)) == []


def test_future_posts_are_held_back_until_their_time(config: Config) -> None:
    post, _ = parse("---\ntitle: t\ndate: 2025-01-02T12:00:00Z\n---\nx\n", config)
    assert published([post], datetime(2025, 1, 2, 11, 59, tzinfo=UTC)) == []
    assert published([post], datetime(2025, 1, 2, 12, 0, tzinfo=UTC)) == [post]


def test_explicit_slug_and_id(config: Config) -> None:
    post, _ = parse(
        "---\ntitle: T\ndate: 2025-01-02\nslug: chosen\nguid: urn:uuid:1234\n---\nx\n", config
    )
    assert post.slug == "chosen"
    assert post.url == "https://blog.syndicate.test/posts/chosen/"
    assert post.id == "urn:uuid:1234"


def test_id_is_stable_and_defaults_to_permalink(config: Config) -> None:
    text = "---\ntitle: Stable Title\ndate: 2025-01-02\n---\nx\n"
    first, _ = parse(text, config)
    second, _ = parse(text, config)
    assert first.id == second.id == "https://blog.syndicate.test/posts/stable-title/"


def test_title_from_first_heading_is_removed_from_body(config: Config) -> None:
    post, _ = parse("---\ndate: 2025-01-02\n---\n# The Heading\n\nFirst paragraph.\n", config)
    assert post.title == "The Heading"
    assert "The Heading" not in render_post(post).html  # type: ignore[operator]


def test_unknown_keys_go_to_extra(config: Config) -> None:
    post, _ = parse("---\ntitle: t\ndate: 2025-01-02\nlayout: post\nrating: 5\n---\nx\n", config)
    assert dict(post.extra) == {"layout": "post", "rating": 5}
    # Post is a slots dataclass: its attributes are exactly its declared fields, so an
    # unknown key can only live in `extra` (never as an attribute, never dropped).
    fields = {f.name for f in record.fields(post)}
    assert "layout" not in fields and "rating" not in fields
    assert not hasattr(post, "__dict__")
    assert getattr(post, "layout", None) is None and getattr(post, "rating", None) is None
    # known keys never leak into extra
    assert not {"title", "date"} & set(post.extra)


def test_bom_and_crlf(config: Config) -> None:
    data = b"\xef\xbb\xbf---\r\ntitle: CRLF\r\ndate: 2025-01-02\r\n---\r\nLine.\r\n"
    post, _ = parse(data, config)
    assert post.title == "CRLF"
    assert "\r" not in post.body


def test_duplicate_titles_get_distinct_deterministic_slugs(config: Config) -> None:
    older, _ = parse("---\ntitle: Same\ndate: 2025-01-01\n---\nx\n", config, "b.md")
    newer, _ = parse("---\ntitle: Same\ndate: 2025-02-01\n---\nx\n", config, "a.md")
    for order in ([older, newer], [newer, older]):
        posts, warnings = assign_unique_slugs(order, config)
        by_source = {p.source: p for p in posts}
        assert by_source["b.md"].slug == "same"
        assert by_source["a.md"].slug == "same-2"
        assert by_source["a.md"].id.endswith("/posts/same-2/")
        assert len(warnings) == 1 and "same-2" in warnings[0].message


def test_summary_is_the_first_prose_paragraph(config: Config) -> None:
    body = "## Heading\n\n![img](x.png)\n\n- list\n\nThe *first* real paragraph,\nover two lines.\n\nSecond."
    post, _ = parse(f"---\ntitle: t\ndate: 2025-01-02\n---\n{body}\n", config)
    assert render_post(post).summary == "The first real paragraph, over two lines."


def test_relative_links_become_absolute(config: Config) -> None:
    body = '[up](../other/) [root](/about/) ![pic](pic.png) <img src="a.png" srcset="a.png 1x, /b.png 2x"> [ext](https://x.test/) [mail](mailto:a@b.test) [frag](#top)'
    post, _ = parse(f"---\ntitle: Links\ndate: 2025-01-02\n---\n{body}\n", config)
    html = render_post(post).html or ""
    base = "https://blog.syndicate.test/"
    assert f'href="{base}posts/other/"' in html
    assert f'href="{base}about/"' in html
    assert f'src="{base}posts/links/pic.png"' in html
    assert f'srcset="{base}posts/links/a.png 1x, {base}b.png 2x"' in html
    assert 'href="https://x.test/"' in html
    assert 'href="mailto:a@b.test"' in html
    assert f'href="{base}posts/links/#top"' in html


# --- bad input: each raises PostError with a line and a helpful message -------------


@pytest.mark.parametrize(
    ("data", "line", "fragment"),
    [
        (b"", 1, "file is empty"),
        (b"just text\n", 1, "no title"),
        (b"---\ntitle: x\n---\nbody\n", 1, "no date"),
        (b"---\ntitle: x\ndate: 2025-02-30\n---\n", 3, "impossible date"),
        (b"---\ntitle: x\ndate: tomorrow\n---\n", 3, "not a date"),
        (b"---\ntitle: x\ndate: 2025\n---\n", 3, "not a date"),
        (b"---\ntitle: x\ndate: May 2025\n---\n", 3, "not a full date"),
        (b"---\ntitle: 'x\ndate: 2025-01-01\n---\n", 2, "invalid YAML"),
        (b'+++\ntitle = "x\n+++\n', 2, "invalid TOML"),
        (b"---\ntitle: x\n", 1, "never closed"),
        (b"---\n- a\n---\n", 1, "must be a mapping"),
        (b"---\ntitle: [a]\ndate: 2025-01-01\n---\n", 2, "must be text"),
        (b"---\ntitle: caf\xe9\n---\n", 2, "not valid UTF-8"),
        (b"---\ntitle: x\ndate: 2025-01-01\ntags: {a: 1}\n---\n", 4, "'tags' must be a list"),
    ],
)
def test_bad_posts_raise_with_line(data: bytes, line: int, fragment: str, config: Config) -> None:
    with pytest.raises(PostError) as caught:
        parse(data, config, "posts/bad.md")
    assert caught.value.line == line
    assert fragment in caught.value.message
    formatted = caught.value.diagnostic().format()
    assert formatted.startswith(f"posts/bad.md:{line}: error: ")


def test_control_characters_in_title_are_removed_with_a_warning(config: Config) -> None:
    post, warnings = parse(
        '---\ntitle: "Bell\\x07 and\\r\\nbreak"\ndate: 2025-01-02\n---\nx\n', config
    )
    assert post.title == "Bell and break"
    assert [w.line for w in warnings] == [2]


def test_xml_forbidden_characters_in_body_are_removed_with_a_warning(config: Config) -> None:
    post, warnings = parse("---\ntitle: t\ndate: 2025-01-02\n---\nok\nbad \x01 here\n", config)
    assert "\x01" not in post.body
    assert len(warnings) == 1 and warnings[0].line == 6 and "U+0001" in warnings[0].message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ('"2025-01-01T10:00:00+99:00"', "impossible"),
        ('"Jan 1 2025 10:00 +2500"', "impossible time zone offset"),
        ("0001-01-01T00:00:00+05:00", "out of range"),
        ("0999-12-31", "out of range"),
    ],
)
def test_dates_feeds_cannot_carry_are_rejected(value: str, fragment: str, config: Config) -> None:
    with pytest.raises(PostError) as caught:
        parse(f"---\ntitle: t\ndate: {value}\n---\nx\n", config)
    assert fragment in caught.value.message
    assert caught.value.line == 3
