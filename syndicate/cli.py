"""The command-line interface: a thin click layer over the pipeline.

It parses arguments, reads the clock, calls the pipeline, formats diagnostics and sets
exit codes: 0 ok, 1 errors in the content, 2 usage or configuration errors. A Python
traceback is shown only with --debug.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from syndicate import __version__
from syndicate.config import Config, load_config, with_overrides
from syndicate.errors import ConfigError, Diagnostic, SyndicateError
from syndicate.pipeline import build_site, check_site
from syndicate.posts import display_path

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2
PROGRESS_THRESHOLD = 500

F = TypeVar("F", bound=Callable[..., Any])


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="syndicate")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syndicate")
def cli() -> None:
    """Publish Markdown posts as RSS, Atom and JSON feeds, and email digests."""


def content_options(func: F) -> F:
    """The options every content command shares."""
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(path_type=Path, dir_okay=False),
            default="config.yaml",
            show_default=True,
            help="The configuration file.",
        ),
        click.option(
            "--content",
            type=click.Path(path_type=Path),
            multiple=True,
            help="Content folder (repeatable); replaces content.paths.",
        ),
        click.option(
            "--out",
            type=click.Path(path_type=Path, file_okay=False),
            help="Output folder; replaces output.dir.",
        ),
        click.option(
            "--now",
            "now_text",
            metavar="ISO8601",
            help="Pretend the time is this (naive = site time zone).",
        ),
        click.option(
            "--strict", is_flag=True, help="Treat any error (check: any warning) as fatal."
        ),
        click.option("--debug", is_flag=True, help="Show Python tracebacks."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def guarded(func: F) -> F:
    """Turn SyndicateErrors into diagnostics and exit codes; tracebacks only with --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug"))
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            if debug:
                raise
            emit(exc.diagnostics())
            sys.exit(EXIT_USAGE)
        except SyndicateError as exc:
            if debug:
                raise
            emit(exc.diagnostics())
            sys.exit(EXIT_ERRORS)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            if debug:
                raise
            click.echo(
                f"syndicate: internal error: {type(exc).__name__}: {exc}\n"
                "  hint: run again with --debug for the traceback, and report it",
                err=True,
            )
            sys.exit(EXIT_ERRORS)

    return wrapper  # type: ignore[return-value]


def emit(diagnostics: Iterable[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        click.echo(diagnostic.format(), err=True)


def prepare(
    config_path: Path, content: tuple[Path, ...], out: Path | None, now_text: str | None
) -> tuple[Config, datetime]:
    config = with_overrides(load_config(config_path), content=content or None, out=out)
    return config, parse_now(now_text, config)


def parse_now(text: str | None, config: Config) -> datetime:
    """--now as a tz-aware datetime; naive times are in the site's time zone."""
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 date or date-time (e.g. 2025-08-12T09:00:00Z)",
            param_hint="--now",
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=config.site.tz)


def progress_for(
    count_hint: int | None = None,
) -> Callable[[Iterable[Path]], Iterable[Path]] | None:
    """A progress bar on stderr when it is a terminal; None (silence) under cron."""
    if not sys.stderr.isatty() or os.environ.get("CI"):
        return None

    def wrap(items: Iterable[Path]) -> Iterator[Path]:
        paths = list(items)
        if len(paths) < PROGRESS_THRESHOLD:
            yield from paths
            return
        with click.progressbar(paths, label="Reading posts", file=sys.stderr) as bar:
            yield from bar

    return wrap


@cli.command()
@content_options
@guarded
def build(
    config_path: Path,
    content: tuple[Path, ...],
    out: Path | None,
    now_text: str | None,
    strict: bool,
    debug: bool,
) -> None:
    """Build the feeds from the posts.

    A bad post is reported (path:line: error: ...) and skipped; the rest are written
    and the exit status is 1. With --strict nothing is written if any post is bad.
    """
    config, now = prepare(config_path, content, out, now_text)
    report = build_site(config, now, strict=strict, progress=progress_for())
    emit(report.diagnostics)
    errors = report.errors
    if report.aborted:
        click.echo(f"{errors} error{'s' * (errors != 1)}; nothing written (--strict)", err=True)
        sys.exit(EXIT_ERRORS)
    noun = "post" if report.published == 1 else "posts"
    click.echo(
        f"{report.published} {noun} published, {report.held_back} held back, "
        f"{errors} error{'s' * (errors != 1)} → {display_path(report.out_dir)}/"
    )
    sys.exit(EXIT_ERRORS if errors else EXIT_OK)


@cli.command()
@content_options
@guarded
def check(
    config_path: Path,
    content: tuple[Path, ...],
    out: Path | None,
    now_text: str | None,
    strict: bool,
    debug: bool,
) -> None:
    """Lint the posts without writing anything.

    Reports every build error plus content warnings: mojibake, placeholder text and
    links, missing descriptions, images without alt text. Exit 1 on errors, 0 on
    warnings only (1 with --strict).
    """
    config, _ = prepare(config_path, content, out, now_text)
    catalog = check_site(config, progress=progress_for())
    emit(catalog.diagnostics)
    errors = catalog.errors
    warnings = len(catalog.diagnostics) - errors
    click.echo(
        f"{len(catalog.posts)} posts checked: {errors} error{'s' * (errors != 1)}, "
        f"{warnings} warning{'s' * (warnings != 1)}",
        err=True,
    )
    sys.exit(EXIT_ERRORS if errors or (strict and warnings) else EXIT_OK)
