"""config.yaml validation: every problem named by key path and line, exit 2 from the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from syndicate.config import load_config, parse_config
from syndicate.errors import ConfigError

from .conftest import ROOT, SITE_CONFIG, Result, Site


def problems(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "config.yaml")
    return [d.format() for d in caught.value.diagnostics()]


def test_shipped_config_is_valid() -> None:
    config = load_config(ROOT / "config.yaml")
    assert config.site.url.endswith("/")
    assert config.content.paths == ((ROOT / "seeds").resolve(),)
    assert config.output_dir == (ROOT / "public").resolve()
    assert config.feeds.formats == ("rss", "atom", "json")
    assert config.state_url == f"sqlite:///{(ROOT / 'state' / 'syndicate.db').resolve()}"


def test_defaults_fill_optional_keys(tmp_path: Path) -> None:
    config = parse_config("site: {title: T, url: 'https://x.test'}\n", tmp_path / "config.yaml")
    assert config.site.url == "https://x.test/"
    assert config.site.timezone == "UTC"
    assert config.feeds.limit == 50
    assert config.content.post_url == "/posts/{slug}/"


def test_misspelt_key_gets_a_suggestion_and_its_line(tmp_path: Path) -> None:
    found = problems("site:\n  title: T\n  url: https://x.test\n  titel: oops\n", tmp_path)
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'config.yaml'}:4: error: site.titel: unknown key")
    assert "did you mean 'site.title'?" in found[0]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        "site:\n  title: T\n  url: /relative\n  timezone: Europe/Pariss\n"
        "feeds:\n  limit: many\n  formats: [rss, atomm]\n"
        "content:\n  post_url: '/p/{id}/'\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "config.yaml")
    found = [d.format() for d in caught.value.diagnostics()]
    joined = "\n".join(found)
    # type errors are reported first; semantic checks once the types are right
    assert "feeds.limit: expected a whole number, got 'many'" in joined
    text = text.replace("limit: many", "limit: 5")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "config.yaml")
    joined = "\n".join(d.format() for d in caught.value.diagnostics())
    assert ":3: error: site.url: must be an absolute http(s) URL" in joined
    assert "site.timezone: unknown time zone 'Europe/Pariss'" in joined
    assert "did you mean 'Europe/Paris'?" in joined
    assert "feeds.formats: unknown format 'atomm'" in joined
    assert "content.post_url: unknown placeholder {id}" in joined


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("site: {url: 'https://x.test'}\n", "site.title: is required"),
        ("site: [a, b]\n", "site: expected a mapping"),
        (
            "site: {title: T, url: 'https://x.test'}\nfeeds: {per_tag: 'yes'}\n",
            "feeds.per_tag: expected true or false",
        ),
        (
            "site: {title: T, url: 'https://x.test'}\nfeeds: {limit: 0}\n",
            "feeds.limit: must be at least 1",
        ),
        ("site: {title: T, url: 'ftp://x.test'}\n", "site.url: must be an absolute http(s) URL"),
        (
            "site: {title: T, url: 'https://x.test'}\ncontent: {post_url: '/p/'}\n",
            "must contain {slug}",
        ),
        (
            "site: {title: T, url: 'https://x.test'}\nstate: {url: state.db}\n",
            "state.url: is not a database URL",
        ),
        ("site: {title: T\n", "invalid YAML"),
        ("- a\n- b\n", "must be a mapping"),
    ],
)
def test_bad_configs(text: str, fragment: str, tmp_path: Path) -> None:
    assert any(fragment in line for line in problems(text, tmp_path))


def test_bad_config_exits_2_before_anything_is_written(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(SITE_CONFIG.replace("https://blog.syndicate.test/", "blog.syndicate.test"))
    site.write_post("a.md", "---\ntitle: A\ndate: 2025-01-01\n---\nx\n")
    result = invoke("build", "--config", site.config)
    assert result.exit_code == 2
    assert "site.url: must be an absolute http(s) URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert not site.public.exists()


def test_missing_config_file_exits_2(tmp_path: Path, invoke: Callable[..., Result]) -> None:
    result = invoke("build", "--config", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert "config file not found" in result.stderr


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "site: {title: T, url: 'https://x.test'}\ncontent: {post_url: '/p/{slug!z}/'}\n",
            "content.post_url: is not a valid pattern",
        ),
        (
            "site: {title: T, url: 'https://x.test'}\nnewsletter: {subject: '{count:>{x}}'}\n",
            "newsletter.subject: is not a valid pattern",
        ),
        (
            "site: {title: T, url: 'https://x.test'}\nnewsletter: {first_lookback_days: 1000000000}\n",
            "newsletter.first_lookback_days: must be from 0 to 36500, got 1000000000",
        ),
        (
            "site:\n  title: T\n  url: 'https://x.test'\n  title: Again\n",
            ":4: error: site.title: duplicate key",
        ),
    ],
)
def test_patterns_ranges_and_duplicate_keys_are_checked(
    text: str, fragment: str, tmp_path: Path
) -> None:
    assert any(fragment in line for line in problems(text, tmp_path))


def test_output_dir_that_is_a_file_is_a_clear_error(
    site: Site, invoke: Callable[..., Result]
) -> None:
    site.set_config(SITE_CONFIG.replace("dir: public", "dir: config.yaml"))
    site.write_post("a.md", "---\ntitle: A\ndate: 2025-01-01\n---\nx\n")
    result = invoke("build", "--config", site.config, "--now", "2025-06-01", cwd=site.root)
    assert result.exit_code == 1
    assert "config.yaml" in result.stderr and "internal error" not in result.stderr


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ("serve: {port: 70000}", "serve.port: must be from 1 to 65535, got 70000"),
        (
            "delivery: {smtp: {connections: 0}}",
            "delivery.smtp.connections: must be from 1 to 100, got 0",
        ),
        (
            "delivery: {smtp: {rate_per_second: -1}}",
            "delivery.smtp.rate_per_second: must be at least 0, got -1",
        ),
        (
            "schedule: {lock_timeout_seconds: -5}",
            "schedule.lock_timeout_seconds: must be at least 0, got -5",
        ),
        (
            "newsletter: {summary_length: 10}",
            "newsletter.summary_length: must be at least 40, got 10",
        ),
    ],
)
def test_numbers_out_of_range_name_their_bounds(
    section: str, fragment: str, tmp_path: Path
) -> None:
    text = f"site: {{title: T, url: 'https://x.test'}}\n{section}\n"
    assert any(fragment in line for line in problems(text, tmp_path))


DOMAINS = "site: {title: T, url: 'https://x.test'}\ndelivery:\n  domains:\n"


@pytest.mark.parametrize(
    ("entries", "fragment"),
    [
        (
            "    google:\n      domains: [gmail.com]\n      conections: 2\n",
            ":6: error: delivery.domains.google.conections: unknown key (known keys here:"
            " domains, connections, rate_per_second)\n"
            "  hint: did you mean 'delivery.domains.google.connections'?",
        ),
        (
            "    default: {connections: 0}\n",
            ":4: error: delivery.domains.default.connections: must be from 1 to 100, got 0",
        ),
        (
            "    yahoo.com: {rate_per_second: -1}\n",
            ":4: error: delivery.domains.yahoo.com.rate_per_second: must be at least 0, got -1",
        ),
        (
            "    yahoo.com: {rate_per_second: fast}\n",
            "delivery.domains.yahoo.com.rate_per_second: expected a number, got 'fast'",
        ),
        ("    yahoo.com: 5\n", ":4: error: delivery.domains.yahoo.com: expected a mapping of"),
        (
            "    google: {connections: 2}\n",
            ":4: error: delivery.domains.google: 'google' is neither a domain name nor a group",
        ),
        (
            "    hotmail.com: {domains: [outlook.com]}\n",
            "delivery.domains.hotmail.com: a group's name is a label, not a domain",
        ),
        (
            "    google: {domains: [gmail.com, 'not a domain']}\n",
            "delivery.domains.google.domains: 'not a domain' is not a domain name",
        ),
        ("    google: {domains: []}\n", "delivery.domains.google.domains: must list at least"),
        ("    google: {domains: gmail.com}\n", "delivery.domains.google.domains: expected a list"),
        (
            "    default: {domains: [gmail.com]}\n",
            "delivery.domains.default.domains: default applies to every domain named nowhere",
        ),
        (
            "    google: {domains: [gmail.com, googlemail.com]}\n    GMail.com: {connections: 1}\n",
            ":5: error: delivery.domains.GMail.com: gmail.com is already in"
            " delivery.domains.google",
        ),
    ],
)
def test_bad_delivery_domains_are_named_by_key_path_and_line(
    entries: str, fragment: str, tmp_path: Path
) -> None:
    found = "\n".join(problems(DOMAINS + entries, tmp_path))
    assert fragment in found


def test_delivery_domains_must_be_a_mapping_and_the_pauses_in_order(tmp_path: Path) -> None:
    found = problems(
        "site: {title: T, url: 'https://x.test'}\ndelivery:\n  domains: [gmail.com]\n",
        tmp_path,
    )
    assert found == [
        f"{tmp_path / 'config.yaml'}:3: error: delivery.domains: expected a mapping, got a list"
    ]
    found = problems(
        "site: {title: T, url: 'https://x.test'}\n"
        "delivery: {throttle_pause_seconds: 60, throttle_max_pause_seconds: 10}\n",
        tmp_path,
    )
    assert any(
        "delivery.throttle_max_pause_seconds: must be at least"
        " delivery.throttle_pause_seconds (60), got 10" in line
        for line in found
    )


def test_without_delivery_domains_only_the_overall_limits_apply(tmp_path: Path) -> None:
    config = parse_config("site: {title: T, url: 'https://x.test'}\n", tmp_path / "config.yaml")
    assert config.delivery.domains.named == ()
    assert config.delivery.domains.destination("gmail.com")[1].connections == 0


# Not imported by `from syndicate.config import load_config; load_config(path)`: the cron
# path's import + validate has 30 ms (bench/config_load.py), and these cost ~9 ms of it
# (dataclasses with inspect ~6, typing ~2, difflib for a misspelt key only); APScheduler
# and SQLAlchemy (~35 and ~100 ms) only check what the plain forms cannot.
NOT_ON_THE_CONFIG_PATH = (
    "dataclasses",
    "inspect",
    "typing",
    "difflib",
    "apscheduler",
    "sqlalchemy",
)


@pytest.mark.slow
def test_loading_the_config_imports_no_dataclasses_typing_or_difflib() -> None:
    """A fresh interpreter without site.py (whose .pth files import modules of their own,
    as the editable install's finder does) loads the shipped config.yaml; the records are
    syndicate.record's, the messages' suggestions import difflib when one is needed."""
    import subprocess
    import sys
    import sysconfig

    import syndicate

    probe = (
        "import sys\n"
        "sys.path[:0] = sys.argv[1:3]\n"
        "from syndicate.config import load_config\n"
        "load_config(sys.argv[3])\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    code_root = str(Path(syndicate.__file__).parent.parent)
    libraries = sysconfig.get_paths()["purelib"]
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe, code_root, libraries, str(ROOT / "config.yaml")],
        capture_output=True, text=True, check=True, cwd="/",
    )  # fmt: skip
    loaded = set(result.stdout.split())
    assert {"syndicate.config", "syndicate.record", "yaml"} <= loaded
    assert sorted(m for m in NOT_ON_THE_CONFIG_PATH if m in loaded) == []
