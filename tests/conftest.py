"""Shared fixtures: sites on disk, the CLI in-process and as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from syndicate.cli import cli

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
BAD_CORPUS = Path(__file__).resolve().parent / "corpus" / "bad"
GOLDEN = Path(__file__).resolve().parent / "golden"
FIXED_NOW = "2025-09-01T00:00:00Z"

SITE_CONFIG = """\
site:
  title: "Test Site"
  url: "https://blog.syndicate.test/"
  description: "A site for tests"
  language: en
  timezone: "UTC"
  author: {name: "Test Author", email: "author@blog.syndicate.test"}
content:
  paths: [posts]
output:
  dir: public
"""


def isolated_seeds_config(folder: Path) -> Path:
    """The shipped config.yaml, copied into `folder` with the seeds as content, so state,
    output and outbox live in `folder` and never in the repository."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "config.yaml").read_text("utf-8").replace("paths: [seeds]", f"paths: [{SEEDS}]")
    path = folder / "config.yaml"
    path.write_text(text, "utf-8")
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test on the PostgreSQL server (only `make test` starts one) is in the slow tier,
    so `make test-fast` leaves it out rather than skipping it."""
    for item in items:
        params = getattr(item, "callspec", None)
        on_postgres = "pg_url" in getattr(item, "fixturenames", ()) or (
            params is not None and "postgres" in str(params.params.values())
        )
        if on_postgres:
            item.add_marker(pytest.mark.slow)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/ from the current output (review the diff!)",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


@dataclass
class Site:
    """A site folder under tmp_path: config.yaml, posts/ and (after a build) public/."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def posts(self) -> Path:
        return self.root / "posts"

    @property
    def public(self) -> Path:
        return self.root / "public"

    def write_post(self, name: str, content: str | bytes) -> Path:
        path = self.posts / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        return path

    def set_config(self, text: str) -> None:
        self.config.write_text(text, encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path) -> Site:
    made = Site(tmp_path / "site")
    made.posts.mkdir(parents=True)
    made.set_config(SITE_CONFIG)
    return made


def post(title: str, date: str = "2025-05-01", body: str = "Body text.", **fields: str) -> str:
    """A YAML-front-matter post as text."""
    lines = [
        "---",
        f"title: {title!r}" if "'" not in title else f'title: "{title}"',
        f"date: {date}",
    ]
    lines += [f"{key}: {value}" for key, value in fields.items()]
    return "\n".join([*lines, "---", "", body, ""])


@pytest.fixture
def invoke() -> Callable[..., Result]:
    """Run the CLI in-process (fast); stderr and stdout kept apart."""

    def run(*args: str | Path, cwd: Path | None = None) -> Result:
        runner = CliRunner()
        old = Path.cwd()
        if cwd is not None:
            os.chdir(cwd)
        try:
            outcome = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
        finally:
            os.chdir(old)
        return Result(outcome.exit_code, outcome.stdout, outcome.stderr)

    return run


def run_subprocess(*args: str | Path, cwd: Path | None = None, timeout: float = 120) -> Result:
    """Run `python -m syndicate` as a real process, as cron would."""
    completed = subprocess.run(
        [sys.executable, "-m", "syndicate", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


def cli_modules(args: list[str], cwd: Path) -> tuple[int, str, set[str]]:
    """Run `syndicate ARGS` in a fresh interpreter, as cron starts it: -> (exit status,
    stdout, the modules it had imported when it exited)."""
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(sorted(sys.modules), file=sys.stderr))\n"
        "from syndicate.cli import main\n"
        f"sys.argv = ['syndicate', *{args!r}]\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "[]"
    return done.returncode, done.stdout, {name.strip("'") for name in last[1:-1].split(", ")}
