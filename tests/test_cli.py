"""The CLI as users meet it: an installed wheel, exit codes, and `status`."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import syndicate.runs.pipeline
from syndicate.resources import CHECKOUT_TEMPLATES

from .conftest import ROOT, Result, Site, isolated_seeds_config, post


@pytest.mark.slow
def test_a_wheel_installed_outside_the_checkout_builds_and_previews(tmp_path: Path) -> None:
    """The wheel carries the templates: `build` (feed.xsl) and `digest --preview` (MJML and
    text templates) work from `/` with an absolute --config and no checkout in sight."""
    source = tmp_path / "source"  # setuptools writes build/ beside pyproject.toml
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "syndicate", "templates"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, source],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("syndicate-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", wheel],
        check=True,
        capture_output=True,
    )
    config = isolated_seeds_config(tmp_path / "site")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def syndicate(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [venv / "bin" / "syndicate", *map(str, args), "--config", config],
            cwd="/",
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    where = subprocess.run(
        [venv / "bin" / "python", "-c", "import syndicate; print(syndicate.__file__)"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(venv)), "the test must run the installed copy"

    built = syndicate("build", "--now", "2025-09-01T00:00:00Z")
    assert built.returncode == 0, built.stderr
    public = tmp_path / "site" / "public"
    assert (public / "feed.xsl").read_bytes() == (CHECKOUT_TEMPLATES / "feed.xsl").read_bytes()
    assert b"<rss" in (public / "feed.xml").read_bytes()

    preview = syndicate(
        "digest", "--preview", "--now", "2025-09-01T00:00:00Z", "--since", "2025-01-01"
    )
    assert preview.returncode == 0, preview.stderr
    html = (public / "newsletter" / "preview.html").read_text("utf-8")
    assert "<html" in html and "AI in Cancer Treatment" in html
    assert "AI in Cancer Treatment" in (public / "newsletter" / "preview.txt").read_text("utf-8")


def test_an_internal_error_exits_70_with_one_line(
    site: Site, invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug (here injected: no real input produces one on purpose) is exit 70, EX_SOFTWARE,
    never 1 (content errors), and says so in one line plus a hint; no traceback."""

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("something inside broke\nacross two lines " + "x" * 2000)

    monkeypatch.setattr(syndicate.runs.pipeline, "build_site", broken)
    site.write_post("a.md", post("A"))
    result = invoke("build", "--config", site.config, cwd=site.root)
    assert result.exit_code == 70
    first, hint = result.stderr.splitlines()
    assert first.startswith("syndicate: internal error: RuntimeError: something inside broke ")
    assert len(first) < 400
    assert hint == "  hint: run again with --debug for the traceback, and report it"
    assert "Traceback" not in result.stderr


def test_content_errors_still_exit_1(site: Site, invoke: Callable[..., Result]) -> None:
    site.write_post("good.md", post("Good"))
    site.write_post("bad.md", "---\ntitle: Bad\ndate: tomorrow\n---\nBody\n")
    result = invoke("build", "--config", site.config, cwd=site.root)
    assert result.exit_code == 1
    assert "bad.md:3: error:" in result.stderr


def test_status_lists_recent_posts_the_mailing_list_the_outbox_and_the_last_digest(
    site: Site, invoke: Callable[..., Result]
) -> None:
    for day in range(1, 13):
        site.write_post(f"p{day:02d}.md", post(f"Post {day:02d}", f"2025-05-{day:02d}"))
    assert (
        invoke(
            "run", "--once", "--config", site.config, "--now", "2025-05-20", cwd=site.root
        ).exit_code
        == 0
    )

    db = sqlite3.connect(site.root / "state" / "syndicate.db")
    with db:
        db.execute(
            "insert into subscribers (id, email, email_key, name, status, created_at) values "
            "(1, 'a@x.org','a@x.org','','active','2025-05-01'),"
            "(2, 'b@x.org','b@x.org','','active','2025-05-01'),"
            "(3, 'c@x.org','c@x.org','','pending','2025-05-01'),"
            "(4, 'd@x.org','d@x.org','','bounced','2025-05-01')"
        )
        db.execute(
            "insert into digests (id, key, posts_hash, created_at, since, until, subject, "
            "status) values (100, '2025-05-21-post-12','h','2025-05-21 08:00:00',"
            "'2025-05-14','2025-05-21','Test Site: 12 new posts','queued')"
        )
        db.execute(
            "insert into digest_bodies (id, digest_id, variant, subject, html, text) "
            "values (100, 100, 'v', 's', 'h', 't')"
        )
        db.execute(
            "insert into outbox (digest_id, subscriber_id, body_id, email, domain, status, "
            "next_attempt_at) values (100, 1, 100, 'a@x.org', 'x.org', 'sent', null),"
            "(100, 2, 100, 'b@x.org', 'x.org', 'deferred', '2025-05-21 09:30:00'),"
            "(100, 4, 100, 'd@x.org', 'x.org', 'failed', null)"
        )
    db.close()

    result = invoke(
        "status", "--config", site.config, "--now", "2025-05-21T10:00:00Z", cwd=site.root
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    recent = lines[lines.index("recently published:") + 1 :][:10]
    assert all(line.startswith("  2025-05-20 00:00 UTC  Post ") for line in recent)
    assert len({line.split("  Post ")[1] for line in recent}) == 10  # ten distinct posts
    assert "  2025-05-20 00:00 UTC  Post 12  <https://blog.syndicate.test/posts/post-12/>" in recent
    assert "subscribers: 2 active, 1 pending, 0 unsubscribed, 1 bounced" in lines
    assert "outbox: 1 deferred (next retry 2025-05-21 09:30 UTC), 1 sent, 1 failed" in lines
    assert (
        "last digest: 'Test Site: 12 new posts' (2025-05-21-post-12), queued "
        "2025-05-21 08:00 UTC: 1 deferred, 1 sent, 1 failed" in lines
    )
    assert "  x.org: 1 sent, 1 deferred, 0 bounced, 1 failed" in lines  # per recipient domain


def test_status_lists_the_ten_busiest_domains_of_the_last_digest_and_names_groups() -> None:
    from syndicate.config import DomainLimit, DomainLimits
    from syndicate.runs.overview import domain_lines

    domains = {"GMail.com": {"deferred": 4, "queued": 1}}
    domains |= {f"d{n:02d}.org": {"sent": 20 - n} for n in range(12)}
    google = DomainLimits(named=(DomainLimit("google", ("gmail.com", "googlemail.com")),))
    lines = domain_lines(domains, google)
    assert lines[0] == "  GMail.com (google): 0 sent, 4 deferred, 0 bounced, 1 queued"
    assert lines[1] == "  d00.org: 20 sent, 0 deferred, 0 bounced"
    assert len(lines) == 11
    assert lines[-1] == "  and 3 more domains (30 messages)"


@pytest.mark.slow
def test_status_of_a_new_install(site: Site, invoke: Callable[..., Result]) -> None:
    result = invoke(
        "status", "--config", site.config, "--now", "2025-05-21T10:00:00Z", cwd=site.root
    )
    assert result.exit_code == 0, result.stderr
    assert "recently published:" not in result.stdout
    assert "subscribers: 0 active, 0 pending, 0 unsubscribed, 0 bounced" in result.stdout
    assert "outbox: empty" in result.stdout
    assert "last digest: none yet" in result.stdout


HEAVY_MODULES = (
    "sqlalchemy", "starlette", "uvicorn", "feedgen", "lxml", "jinja2", "mjml", "markdown",
    "nh3", "apscheduler", "email_validator", "dkim", "frontmatter", "ftfy",
)  # fmt: skip


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["send", "--help"]])
def test_help_and_version_import_no_heavy_library(argv: list[str]) -> None:
    """`--help` and `--version` answer in well under 0.15 s (bench/compare.py times it)
    because the CLI imports the libraries a command needs only when it runs."""
    probe = (
        "import sys\n"
        "from syndicate.cli import main\n"
        f"sys.argv = ['syndicate', *{argv!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd="/"
    )
    assert result.stdout.splitlines()[-1] == "[]", result.stdout
