"""Two copies of one site, run as cron runs it (shortcut, delta run, cache) and with the
cache off (SYNDICATE_NO_CACHE: the full path every time), and what to compare them by:
shared by tests/test_delta.py and tests/test_delta_review.py."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from syndicate.runs import delta
from syndicate.runs.shortcut import DeltaRun

from .conftest import Result, Site


def twin_sites(tmp_path: Path, config: str) -> tuple[Site, Site]:
    """(cron, full): two empty sites with this config.yaml."""
    made = []
    for name in ("cron", "full"):
        site = Site(tmp_path / name)
        site.posts.mkdir(parents=True)
        site.set_config(config)
        made.append(site)
    return made[0], made[1]


def run_twins(
    invoke: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
    cron: Site,
    full: Site,
    *args: str,
) -> tuple[Result, Result]:
    """`syndicate ARGS --config <site>/config.yaml` in each site's folder: (cron, full)."""
    got = invoke(*args, "--config", cron.config, cwd=cron.root)
    monkeypatch.setenv("SYNDICATE_NO_CACHE", "1")
    want = invoke(*args, "--config", full.config, cwd=full.root)
    monkeypatch.delenv("SYNDICATE_NO_CACHE")
    return got, want


def spy_delta_runs(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each `run --once` that reached the delta path was answered by it."""
    taken: list[bool] = []
    real = delta.delta_run

    def spy(*args: object, **kwargs: object) -> DeltaRun | None:
        outcome = real(*args, **kwargs)  # type: ignore[arg-type]
        taken.append(outcome is not None)
        return outcome

    monkeypatch.setattr(delta, "delta_run", spy)
    return taken


def outputs(site: Site) -> dict[str, object]:
    """Every file of public/; of the manifest, its files' hashes and which feeds it has
    (its fingerprints cover the config, which names the site's own folder)."""
    found: dict[str, object] = {}
    for path in sorted(site.public.rglob("*")):
        if not path.is_file():
            continue
        name = str(path.relative_to(site.public))
        if path.name == ".syndicate-manifest.json":
            manifest = json.loads(path.read_bytes())
            found[name] = (manifest["files"], sorted(manifest["feeds"]))
        else:
            found[name] = path.read_bytes()
    return found


def state_rows(site: Site) -> list[list[tuple[object, ...]]]:
    """The posts, post_tags, post_categories and runs rows."""
    with sqlite3.connect(site.root / "state" / "syndicate.db") as db:
        return [
            db.execute("SELECT * FROM posts ORDER BY source").fetchall(),
            db.execute("SELECT * FROM post_tags ORDER BY source, position").fetchall(),
            db.execute("SELECT * FROM post_categories ORDER BY source, position").fetchall(),
            db.execute(
                "SELECT id, kind, started_at, finished_at, outcome, published, updated, "
                "withdrawn, errors, files_written, message FROM runs ORDER BY id"
            ).fetchall(),
        ]
