"""The one place where pure steps and I/O are put in order.

load config -> read posts -> published(now) -> plan feeds -> render -> build -> write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from syndicate.config import Config
from syndicate.errors import Diagnostic
from syndicate.feeds import STYLESHEET, build_feed, feed_file, plan_feeds
from syndicate.lint import lint_post
from syndicate.models import Catalog, FeedSpec, Post
from syndicate.output import write_outputs
from syndicate.posts import published, read_posts, render_post
from syndicate.resources import read_template

Progress = Callable[[Iterable[Path]], Iterable[Path]]


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What a build did, for the CLI's summary line and for tests."""

    published: int
    held_back: int
    diagnostics: tuple[Diagnostic, ...]
    written: tuple[str, ...]
    removed: tuple[str, ...]
    out_dir: Path
    aborted: bool = False

    @property
    def errors(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity == "error")


def build_site(
    config: Config, now: datetime, strict: bool = False, progress: Progress | None = None
) -> BuildReport:
    """Read the posts and write every feed; bad posts are reported and skipped.

    With `strict`, any error aborts the build before a single file is written.
    """
    catalog = read_posts(config, progress)
    ready = published(catalog.posts, now)
    held_back = len(catalog.posts) - len(ready)
    if strict and catalog.errors:
        return BuildReport(0, held_back, catalog.diagnostics, (), (), config.output_dir, True)
    files = build_files(ready, config)
    written, removed = write_outputs(config.output_dir, files)
    return BuildReport(
        published=len(ready),
        held_back=held_back,
        diagnostics=catalog.diagnostics,
        written=tuple(written),
        removed=tuple(removed),
        out_dir=config.output_dir,
    )


def build_files(ready: list[Post], config: Config) -> dict[str, bytes]:
    """Every output file (path relative to the output folder -> bytes) for these posts."""
    specs = render_specs(plan_feeds(ready, config))
    files: dict[str, bytes] = {}
    for spec in specs:
        for fmt in config.feeds.formats:
            files[feed_file(spec, fmt)] = build_feed(spec, config, fmt)
    if config.feeds.stylesheet and ({"rss", "atom"} & set(config.feeds.formats)):
        files[STYLESHEET] = read_template(STYLESHEET)
    return files


def render_specs(specs: list[FeedSpec]) -> list[FeedSpec]:
    """Render each post that appears in some feed, once, however many feeds it is in."""
    rendered: dict[str, Post] = {}
    result = []
    for spec in specs:
        posts = []
        for post in spec.posts:
            if post.source not in rendered:
                rendered[post.source] = render_post(post)
            posts.append(rendered[post.source])
        result.append(replace(spec, posts=tuple(posts)))
    return result


def check_site(config: Config, progress: Progress | None = None) -> Catalog:
    """Every build diagnostic plus the content warnings of `lint_post`; writes nothing."""
    catalog = read_posts(config, progress)
    diagnostics = list(catalog.diagnostics)
    for post in catalog.posts:
        diagnostics.extend(lint_post(post, config))
    diagnostics.sort(key=lambda d: (d.path, d.line or 0))  # stable: same-line order kept
    return Catalog(catalog.posts, tuple(diagnostics))
