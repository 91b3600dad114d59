"""`syndicate check`: the flaws of real content, found without writing anything."""

from __future__ import annotations

import re
from collections.abc import Callable

from .conftest import BAD_CORPUS, ROOT, SITE_CONFIG, Result, Site, post


def warnings_of(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if ": warning: " in line]


def test_check_finds_the_seeds_flaws_and_writes_nothing(
    invoke: Callable[..., Result], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    result = invoke("check", "--config", ROOT / "config.yaml", "--out", out, cwd=ROOT)
    assert result.exit_code == 0  # warnings only
    assert not out.exists()
    found = warnings_of(result)
    mojibake = [w for w in found if "mojibake" in w]
    assert len(mojibake) == 1
    assert mojibake[0].startswith("seeds/003_c58f98ea54c771e5.txt:15: warning: mojibake")
    assert "'â€“' should probably be '–'" in mojibake[0]
    placeholders = [w for w in found if w.startswith("seeds/004_") and "placeholder text" in w]
    assert len(placeholders) == 7
    assert any("[Insert a relevant article on explainable AI (XAI)]" in w for w in placeholders)
    assert any(
        w.startswith(
            "seeds/002_dc5842f609f345b3.txt:17: warning: link to a placeholder domain: https://www.example.com/researcharticle"
        )
        for w in found
    )
    assert any(
        w.startswith("seeds/002_dc5842f609f345b3.txt:17: warning: placeholder text")
        and "Please replace this" in w
        for w in found
    )
    no_description = sorted(w.split(":")[0] for w in found if "no description" in w)
    assert no_description == [
        "seeds/002_dc5842f609f345b3.txt",
        "seeds/003_c58f98ea54c771e5.txt",
        "seeds/004_a9aff3b6d0730bf3.txt",
    ]
    assert "5 posts checked: 0 errors" in result.stderr
    for line in result.stderr.splitlines():
        assert re.match(r"^(\S+:\d+: (warning|error): |  hint: |\d+ posts checked)", line), line


def test_strict_check_fails_on_warnings(site: Site, invoke: Callable[..., Result]) -> None:
    """The same warnings with and without --strict; only the exit status differs, and a
    clean site passes --strict."""
    site.write_post("clean.md", post("Clean", description="'Fine.'"))
    clean = invoke("check", "--strict", cwd=site.root)
    assert (clean.exit_code, clean.stderr) == (0, "1 posts checked: 0 errors, 0 warnings\n")
    site.write_post(
        "flawed.md",
        "---\ntitle: Flawed\ndate: 2025-05-01\n---\n\nSee [this](https://example.com/p).\n",
    )
    expected = [
        "posts/flawed.md:1: warning: no description: readers and the digest get the first "
        "paragraph instead",
        "  hint: add 'description: ...' (one or two sentences) to the front matter",
        "posts/flawed.md:6: warning: link to a placeholder domain: https://example.com/p",
        "  hint: example.com is reserved for examples (RFC 2606); link to the real page",
        "2 posts checked: 0 errors, 2 warnings",
    ]
    strict = invoke("check", "--strict", cwd=site.root)
    assert strict.exit_code == 1
    assert strict.stderr.splitlines() == expected
    lenient = invoke("check", cwd=site.root)
    assert (lenient.exit_code, lenient.stderr.splitlines()) == (0, expected)


def test_check_exits_1_on_errors(site: Site, invoke: Callable[..., Result]) -> None:
    site.write_post("bad.md", "---\ntitle: x\ndate: 2025-13-01\n---\n")
    result = invoke("check", "--config", site.config, cwd=site.root)
    assert result.exit_code == 1
    assert "posts/bad.md:3: error: 'date'" in result.stderr


def test_placeholder_domain_that_is_the_site_itself_is_fine(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(SITE_CONFIG.replace("https://blog.syndicate.test/", "https://example.com/"))
    site.write_post(
        "a.md",
        post(
            "A",
            description="d",
            body="See [home](https://example.com/about) and [x](http://foo.example.org/).",
        ),
    )
    found = warnings_of(invoke("check", "--config", site.config, cwd=site.root))
    assert len(found) == 1 and "http://foo.example.org/" in found[0]


def test_images_without_alt_text(site: Site, invoke: Callable[..., Result]) -> None:
    site.write_post(
        "a.md",
        "---\ntitle: A\ndescription: d\ndate: 2025-01-01\nimage: /cover.png\n---\n"
        '![](one.png) ![fine](two.png)\n\n<img src="three.png"> <img alt="ok" src="four.png">\n',
    )
    found = warnings_of(invoke("check", "--config", site.config, cwd=site.root))
    assert [w.split(": warning: ")[1] for w in found] == [
        "featured image has no alt text",
        "image without alt text: one.png",
        'image without alt text: <img src="three.png">',
    ]
    assert found[0].startswith("posts/a.md:5:") and found[1].startswith("posts/a.md:7:")


def test_markup_in_titles_is_flagged(invoke: Callable[..., Result]) -> None:
    result = invoke(
        "check",
        "--config",
        ROOT / "config.yaml",
        "--content",
        BAD_CORPUS / "markup-ampersand.md",
        cwd=ROOT,
    )
    found = warnings_of(result)
    assert any("title contains HTML markup ('<em>')" in w for w in found)
