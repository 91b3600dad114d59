"""The command-line interface: a thin click layer over the pipeline.

It parses arguments, reads the clock, calls the pipeline, formats diagnostics and sets
exit codes: 0 ok, 1 errors in the content, 2 usage or configuration errors. A Python
traceback is shown only with --debug.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from syndicate import __version__
from syndicate.config import Config, load_config, with_overrides
from syndicate.errors import (
    ConfigError,
    Diagnostic,
    LockTimeoutError,
    SyndicateError,
    TemplateError,
)
from syndicate.models import SUBSCRIBER_STATUSES, ReportLine
from syndicate.runs.lock import EX_TEMPFAIL, DatabaseLock, RunLock, run_lock
from syndicate.words import counted, plural

if TYPE_CHECKING:  # the heavy modules are imported where a command needs them
    from syndicate.content.posts import ReadOutcome, ReadProgress
    from syndicate.delivery.dispatch import SendReport
    from syndicate.runs.pipeline import CycleReport
    from syndicate.runs.shortcut import DeltaRun, QuietRun
    from syndicate.state.store import Store

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2
EX_SOFTWARE = 70  # sysexits.h: an internal error, never to be mistaken for content errors
PROGRESS_THRESHOLD = 500

F = TypeVar("F", bound=Callable[..., Any])

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default="config.yaml",
    show_default=True,
    help="The configuration file.",
)
debug_option = click.option("--debug", is_flag=True, help="Show Python tracebacks.")
lock_timeout_option = click.option(
    "--lock-timeout",
    type=float,
    metavar="SECONDS",
    help="How long to wait for another run to finish (default schedule.lock_timeout_seconds).",
)


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
        config_option,
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
        debug_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def guarded(func: F) -> F:
    """Turn SyndicateErrors into diagnostics and exit codes; tracebacks only with --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # `syndicate subscribers list | head`: the reader left; say nothing more.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_ERRORS)
        except Exception as exc:
            if kwargs.get("debug") and not isinstance(exc, LockTimeoutError):
                raise
            sys.exit(report_error(exc))

    return wrapper  # type: ignore[return-value]


def report_error(exc: Exception) -> int:
    """Say what went wrong on stderr; -> the exit code: 75 for a lock held too long (cron
    tries again), 2 for config and template errors, 1 for other errors we know, 70 for a
    bug (one line, with how to get the traceback)."""
    if isinstance(exc, SyndicateError):
        emit(exc.diagnostics())
        if isinstance(exc, LockTimeoutError):
            return EX_TEMPFAIL
        return EXIT_USAGE if isinstance(exc, ConfigError | TemplateError) else EXIT_ERRORS
    click.echo(internal_error_line(exc), err=True)
    click.echo("  hint: run again with --debug for the traceback, and report it", err=True)
    return EX_SOFTWARE


def internal_error_line(exc: BaseException, limit: int = 300) -> str:
    """One line, however long or multi-line the exception's text: cron mails it."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"syndicate: internal error: {type(exc).__name__}: {text}"


@contextlib.contextmanager
def state_store(config: Config) -> Iterator[Store]:
    """The state database (its post keys migrated once), closed at the end."""
    from syndicate.runs.pipeline import open_state

    store = open_state(config)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def locked_store(
    config: Config, lock_timeout: float | None
) -> Iterator[tuple[Store, RunLock | DatabaseLock]]:
    """The run lock (one run at a time), then the state database; the caller may release
    the lock before the end (delivery on a shared database needs no run lock)."""
    timeout = config.schedule.lock_timeout_seconds if lock_timeout is None else lock_timeout
    lock = run_lock(config, timeout)
    with lock, state_store(config) as store:
        yield store, lock


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


def interactive() -> bool:
    """A person watches stderr (a terminal, not cron or CI): progress bars are welcome."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress_for() -> ReadProgress | None:
    """A progress bar on stderr when it is a terminal; None (silence) under cron."""
    if not interactive():
        return None

    def wrap(outcomes: Iterator[ReadOutcome], total: int) -> Iterator[ReadOutcome]:
        if total < PROGRESS_THRESHOLD:
            yield from outcomes
            return
        with click.progressbar(
            outcomes, length=total, label="Reading posts", file=sys.stderr
        ) as bar:
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
    from syndicate.content.discover import display_path
    from syndicate.runs.pipeline import build_site

    config, now = prepare(config_path, content, out, now_text)
    report = build_site(config, now, strict=strict, progress=progress_for())
    emit(report.diagnostics)
    errors = report.errors
    if report.aborted:
        click.echo(f"{counted(errors, 'error')}; nothing written (--strict)", err=True)
        sys.exit(EXIT_ERRORS)
    noun = plural(report.published, "post")
    click.echo(
        f"{report.published} {noun} published, {report.held_back} held back, "
        f"{counted(errors, 'error')} → {display_path(report.out_dir)}/"
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
    from syndicate.runs.pipeline import check_site

    config, _ = prepare(config_path, content, out, now_text)
    catalog = check_site(config, progress=progress_for())
    emit(catalog.diagnostics)
    errors = catalog.errors
    warnings = len(catalog.diagnostics) - errors
    click.echo(
        f"{len(catalog.posts)} posts checked: {counted(errors, 'error')}, "
        f"{counted(warnings, 'warning')}",
        err=True,
    )
    sys.exit(EXIT_ERRORS if errors or (strict and warnings) else EXIT_OK)


@cli.command()
@config_option
@click.option("--once", is_flag=True, help="One cycle and exit (for cron); else run as a daemon.")
@click.option("--now", "now_text", metavar="ISO8601", help="With --once: pretend the time is this.")
@lock_timeout_option
@click.option("-v", "--verbose", is_flag=True, help="Say so even when nothing changed.")
@debug_option
@guarded
def run(
    config_path: Path,
    once: bool,
    now_text: str | None,
    lock_timeout: float | None,
    verbose: bool,
    debug: bool,
) -> None:
    """Publish what is due and rebuild what changed: once (cron) or as a daemon.

    With --once: quiet when nothing happened, one line per post published, updated or
    withdrawn otherwise; exit 1 on errors, 75 if another run holds the lock too long.
    Without: an APScheduler daemon on schedule.build, plus a job at the exact date of
    every future post; SIGTERM or SIGINT stop it after the job in flight.
    """
    from syndicate.content.discover import display_path
    from syndicate.runs.shortcut import DeltaRun, QuietRun

    config = load_config(config_path)
    if not once:
        from syndicate.runs.schedule import Daemon

        if now_text:
            raise click.UsageError("--now only works with --once")
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        logging.getLogger("apscheduler").setLevel(logging.WARNING)  # we log our own jobs
        Daemon(config).run()
        return
    now = parse_now(now_text, config)
    outcome = run_once(config, now, lock_timeout)
    if isinstance(outcome, DeltaRun):
        echo_lines(ReportLine(line, problem=True) for line in outcome.stderr)
        outcome = outcome.report
    if isinstance(outcome, QuietRun):
        echo_lines(ReportLine(line, problem=True) for line in outcome.stderr)
        if verbose:
            click.echo(
                f"run {outcome.run_id}: nothing changed → {display_path(config.output_dir)}/"
            )
        return
    report = outcome
    echo_cycle(report)
    hook_failures = 0
    for result in report.hook_results:
        echo_lines(result.lines)
        hook_failures += result.failures
    if verbose:
        changed = report.changes.any or report.written or report.removed
        what = (
            f"{len(report.written) + len(report.removed)} files changed"
            if changed
            else "nothing changed"
        )
        click.echo(f"run {report.run_id}: {what} → {display_path(config.output_dir)}/")
    sys.exit(EXIT_ERRORS if report.errors or hook_failures else EXIT_OK)


def run_once(
    config: Config, now: datetime, lock_timeout: float | None
) -> CycleReport | QuietRun | DeltaRun:
    """One cycle under the run lock: the cron shortcut when nothing can have changed
    (syndicate.runs.shortcut: no post read, no heavy library imported), the delta run
    when a few posts changed (syndicate.runs.delta: only those read), else the full
    cycle, after which the shortcut's record and the site index are written."""
    from syndicate.runs.shortcut import IndexDraft, quiet_run, remember_run, scan_inputs

    timeout = config.schedule.lock_timeout_seconds if lock_timeout is None else lock_timeout
    lock = run_lock(config, timeout)
    with lock:
        scan = scan_inputs(config)
        quiet = quiet_run(config, now, scan) if scan is not None else None
        if quiet is not None:
            return quiet
        if scan is not None:
            from syndicate.runs.delta import delta_run

            delta = delta_run(config, now, scan)
            if delta is not None:
                return delta
        from syndicate.content.posts import reading_posts
        from syndicate.runs.pipeline import deliver_after_lock, newsletter_hook, run_cycle

        draft = IndexDraft(config, now, scan)
        # The workers read the posts while the state database opens (imports, migrations).
        with reading_posts(config) as reading, state_store(config) as store:
            try:
                report = run_cycle(
                    config,
                    now,
                    store,
                    kind="once",
                    hooks=(newsletter_hook,),
                    still_locked=lock.check,
                    on_built=draft.start,
                    reading=reading,
                )
                remember_run(config, now, scan, report, store, draft)
            finally:
                draft.discard()
            if reading.cache is not None:
                reading.cache.close()  # not kept open while the newsletter is delivered
            lock.release()  # a shared database's senders deliver without it
            report = deliver_after_lock(config, now, store, report)
    return report


def echo_cycle(report: CycleReport) -> None:
    """What a publishing cycle did, as `run --once` (and `send`, which runs one) print it."""
    emit(report.diagnostics)
    for failure in report.hub_failures:
        click.echo(f"syndicate: warning: {failure}", err=True)
    for post in report.changes.published:
        click.echo(f"published: {post.title} <{post.url}>")
    for post in report.changes.updated:
        click.echo(f"updated: {post.title} <{post.url}>")
    for state in report.changes.withdrawn:
        click.echo(f"withdrawn: {state.title} <{state.url}>")


@cli.command()
@config_option
@click.option("--now", "now_text", metavar="ISO8601", help="Pretend the time is this.")
@debug_option
@guarded
def status(config_path: Path, now_text: str | None, debug: bool) -> None:
    """Posts (recent, scheduled), the mailing list and outbox, the last digest, runs, jobs."""
    from syndicate.runs.overview import status_lines

    config = load_config(config_path)
    now = parse_now(now_text, config)
    with state_store(config) as store:
        lines = status_lines(config, store, now)
    for line in lines:
        click.echo(line)


@cli.command()
@config_option
@click.option("--preview", is_flag=True, help="Render the next digest to files; send nothing.")
@click.option("--now", "now_text", metavar="ISO8601", help="Pretend the time is this.")
@click.option(
    "--since",
    "since_text",
    metavar="ISO8601",
    help="Take posts published after this (default: the previous digest).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for newsletter/preview.* (default output.dir).",
)
@debug_option
@guarded
def digest(
    config_path: Path,
    preview: bool,
    now_text: str | None,
    since_text: str | None,
    out: Path | None,
    debug: bool,
) -> None:
    """Render the next newsletter digest: preview.html, preview.txt and preview.eml.

    The digest holds the posts that entered the feeds since the previous digest (the
    first one looks back newsletter.first_lookback_days), newest first; posts a run would
    publish now count as entering now, but nothing is published, recorded or sent.
    """
    from syndicate.content.discover import display_path
    from syndicate.content.posts import read_posts
    from syndicate.newsletter.preview import preview_digest
    from syndicate.output import write_atomic

    if not preview:
        raise click.UsageError(
            "use --preview to render the digest (sending is not part of this command)"
        )
    config = load_config(config_path)
    require_newsletter(config)
    now = parse_now(now_text, config)
    since = parse_now(since_text, config) if since_text else None
    catalog = read_posts(config)
    emit(catalog.diagnostics)
    with state_store(config) as store:
        previewed = preview_digest(config, store, catalog.posts, now, since)
    if not previewed.files:
        click.echo(f"no digest: nothing published since {previewed.start.isoformat()}", err=True)
        sys.exit(EXIT_ERRORS if catalog.errors else EXIT_OK)
    for note in previewed.notes:
        click.echo(f"syndicate: warning: {note}", err=True)
    folder = (out.resolve() if out else config.output_dir) / "newsletter"
    for name, data in previewed.files.items():
        write_atomic(folder / name, data)
        click.echo(display_path(folder / name))
    sys.exit(EXIT_ERRORS if catalog.errors else EXIT_OK)


# --- subscribers and sending --------------------------------------------------------------


@cli.group()
def subscribers() -> None:
    """Manage the newsletter's subscribers (stored in the state database)."""


@subscribers.command("add")
@click.argument("address")
@click.option("--name", default="", help="The subscriber's name.")
@click.option(
    "--topic",
    "topics",
    multiple=True,
    help="A tag or category to follow (repeatable); none = everything.",
)
@click.option(
    "--pending", is_flag=True, help="Add as pending (awaiting confirmation) instead of active."
)
@config_option
@debug_option
@guarded
def subscribers_add(
    address: str, name: str, topics: tuple[str, ...], pending: bool, config_path: Path, debug: bool
) -> None:
    """Add ADDRESS (validated and normalised); an existing address is left as it is."""
    from syndicate.content.markup import clean_line
    from syndicate.newsletter.subscribers import parse_topics
    from syndicate.state.subscribers import add_subscriber

    config = load_config(config_path)
    email = checked_address(address, config.subscribers.allow_special_domains)
    with state_store(config) as store:
        status = "pending" if pending else "active"
        found, created = add_subscriber(
            store, email, clean_line(name), parse_topics(list(topics)), status, datetime.now(UTC)
        )
    if created:
        click.echo(f"added {found.email} ({found.status})")
    else:
        click.echo(
            f"{found.email} is already a subscriber ({found.status}); nothing changed", err=True
        )


@subscribers.command("remove")
@click.argument("address")
@config_option
@debug_option
@guarded
def subscribers_remove(address: str, config_path: Path, debug: bool) -> None:
    """Delete ADDRESS and its delivery history."""
    from syndicate.state.subscribers import remove_subscriber

    with state_store(load_config(config_path)) as store:
        if not remove_subscriber(store, address.strip()):
            raise SyndicateError(
                f"{address.strip()} is not a subscriber", "see `syndicate subscribers list`"
            )
    click.echo(f"removed {address.strip()}")


@subscribers.command("list")
@click.option(
    "--status", type=click.Choice(SUBSCRIBER_STATUSES), help="Only subscribers with this status."
)
@config_option
@debug_option
@guarded
def subscribers_list(status: str | None, config_path: Path, debug: bool) -> None:
    """One line per subscriber: address, status, name, topics."""
    from syndicate.state.subscribers import list_subscribers

    with state_store(load_config(config_path)) as store:
        found = list_subscribers(store, status)
    for s in found:
        topics = ", ".join(s.topics) or "everything"
        click.echo(f"{s.email}\t{s.status}\t{s.name}\t{topics}")
    click.echo(counted(len(found), "subscriber"), err=True)


@subscribers.command("import")
@click.argument("csv_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@config_option
@debug_option
@guarded
def subscribers_import(csv_file: Path, config_path: Path, debug: bool) -> None:
    """Import FILE.csv (header email,name,topics,status). Bad rows are reported and skipped;
    importing the same file again changes nothing; unsubscribed and bounced addresses are
    never re-activated by an import."""
    from syndicate.newsletter.subscribers import parse_subscriber_csv
    from syndicate.state.subscribers import import_subscribers

    try:
        text = csv_file.read_text("utf-8-sig")
    except UnicodeDecodeError:
        raise SyndicateError(f"{csv_file}: not UTF-8", "save the CSV as UTF-8") from None
    config = load_config(config_path)
    rows, problems = parse_subscriber_csv(text, config.subscribers.allow_special_domains)
    for problem in problems:
        click.echo(
            Diagnostic(str(csv_file), problem.line, "error", problem.message).format(), err=True
        )
    has_topics = "topics" in text.splitlines()[0] if text else False
    with state_store(config) as store:
        counts = import_subscribers(store, rows, has_topics, datetime.now(UTC))
    click.echo(
        f"{counts.added} added, {counts.updated} updated, {counts.unchanged} unchanged, "
        f"{len(problems)} rejected"
    )
    sys.exit(EXIT_ERRORS if problems else EXIT_OK)


@subscribers.command("export")
@click.argument("csv_file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@config_option
@debug_option
@guarded
def subscribers_export(csv_file: Path, config_path: Path, debug: bool) -> None:
    """Write every subscriber to FILE.csv ('-' for standard output)."""
    from syndicate.newsletter.subscribers import format_subscriber_csv
    from syndicate.output import write_atomic
    from syndicate.state.subscribers import list_subscribers

    with state_store(load_config(config_path)) as store:
        text = format_subscriber_csv(list_subscribers(store))
    if str(csv_file) == "-":
        click.echo(text, nl=False)
    else:
        write_atomic(csv_file, text.encode())


def checked_address(address: str, allow_special: bool) -> str:
    from syndicate.errors import AddressError
    from syndicate.newsletter.subscribers import normalize_address

    try:
        return normalize_address(address, allow_special)
    except AddressError as exc:
        raise click.BadParameter(exc.with_hint(), param_hint="ADDRESS") from None


@cli.command()
@config_option
@click.option("--now", "now_text", metavar="ISO8601", help="Pretend the time is this.")
@click.option("--dry-run", is_flag=True, help="Say what would be sent; queue and send nothing.")
@lock_timeout_option
@debug_option
@guarded
def send(
    config_path: Path, now_text: str | None, dry_run: bool, lock_timeout: float | None, debug: bool
) -> None:
    """Publish what is due (as `run --once` does), then send the due digest to every
    active subscriber who follows one of its posts, and retry deferred messages whose
    time has come.

    The digest is queued in the outbox first (once), then sent; a run killed at any
    point is finished by the next one. A digest nobody would receive is not recorded:
    its posts wait for the next one. Exit 1 if anything is left deferred or failed (or
    a post has errors), 2 if the newsletter is off.
    """
    from syndicate.content.posts import read_posts
    from syndicate.delivery.outbox import (
        check_unsubscribe_url,
        queue_newsletter,
        send_newsletter,
        summary_lines,
    )
    from syndicate.runs.pipeline import run_cycle
    from syndicate.state.subscribers import list_subscribers

    config = load_config(config_path)
    require_newsletter(config)
    now = parse_now(now_text, config)
    with locked_store(config, lock_timeout) as (store, lock):
        if dry_run:
            posts = read_posts(config).posts
            report = send_newsletter(config, store, now, posts, dry_run=True)
        else:
            if list_subscribers(store, "active"):
                check_unsubscribe_url(config)  # a config error: before publishing anything
            cycle = run_cycle(config, now, store, kind="send", still_locked=lock.check)
            echo_cycle(cycle)
            planned = queue_newsletter(config, store, now, cycle.posts)
            if store.shared:  # other hosts' senders share the outbox: no lock to send
                lock.release()
            report = deliver_with_progress(config, store, now, planned)
    if dry_run:
        echo_dry_run(report)
        return
    lines = summary_lines(report)
    if not lines or report.unclaimed:
        lines.insert(0, ReportLine(nothing_to_send(report, retries=bool(lines))))
    echo_lines(lines)
    failed = report.deferred or report.waiting or report.failed or cycle.errors
    sys.exit(EXIT_ERRORS if failed else EXIT_OK)


def deliver_with_progress(
    config: Config, store: Store, now: datetime, planned: SendReport
) -> SendReport:
    """The outbox's due rows, with a progress bar on a terminal; when delivery stops,
    what was queued (and sent) before it is printed, then the error."""
    from syndicate.delivery.outbox import deliver_queued, summary_lines
    from syndicate.errors import DeliveryStoppedError

    bar = ProgressReporter() if interactive() else None
    try:
        return deliver_queued(config, store, now, planned, progress=bar.update if bar else None)
    except DeliveryStoppedError as stopped:
        if bar:
            bar.finish()
            bar = None
        echo_lines(summary_lines(stopped.report))
        raise
    finally:
        if bar:
            bar.finish()


@cli.command()
@config_option
@click.option("--maildir", metavar="PATH", help="Read this Maildir (instead of bounces.*).")
@click.option("--mbox", metavar="PATH", help="Read this mbox file.")
@click.option("--imap", metavar="URL", help="Read this IMAP folder: imaps://USER@HOST/FOLDER.")
@click.option("--now", "now_text", metavar="ISO8601", help="Pretend the time is this.")
@debug_option
@guarded
def bounces(
    config_path: Path,
    maildir: str | None,
    mbox: str | None,
    imap: str | None,
    now_text: str | None,
    debug: bool,
) -> None:
    """Read the bounce mailbox and act on what came back by email: hard bounces (the
    subscriber is `bounced`), soft ones (bounces.soft_limit in soft_window_days: `bounced`),
    spam complaints and unsubscribe requests (`unsubscribed`). Each message is acted on
    once, however often it is read; nothing is deleted. One line per subscriber changed
    or counted, one warning per message left for a human, then a summary per mailbox."""
    from syndicate.delivery.feedback import mailbox_sources, process_mailbox

    config = load_config(config_path)
    sources = mailbox_sources(config, maildir, mbox, imap)
    if not sources:
        raise click.UsageError(
            "no bounce mailbox: pass --maildir, --mbox or --imap, or set bounces.maildir,"
            " bounces.mbox or bounces.imap in config.yaml"
        )
    now = parse_now(now_text, config)
    with state_store(config) as store:
        for source in sources:
            report = process_mailbox(config, store, source, now)
            echo_lines(ReportLine(line) for line in report.lines)
            echo_lines(ReportLine(f"warning: {line}", problem=True) for line in report.warnings)
            click.echo(
                f"{source}: {counted(report.messages, 'message')}, {report.new_reports} new: "
                f"{report.bounced} bounced, {report.unsubscribed} unsubscribed, "
                f"{report.not_reports} not reports"
            )


def echo_lines(lines: Iterable[ReportLine]) -> None:
    """Problem lines to stderr, the others to stdout."""
    for line in lines:
        click.echo(line.text, err=line.problem)


def require_newsletter(config: Config) -> None:
    """`send` and `digest` refuse to work when newsletter.enabled is false (exit 2)."""
    if not config.newsletter.enabled:
        raise ConfigError.one(
            str(config.path),
            "the newsletter is off (newsletter.enabled: false): no digest is "
            "planned, previewed or sent",
            "set newsletter.enabled: true to send digests",
        )


def nothing_to_send(report: SendReport, retries: bool = False) -> str:
    """Why no digest was queued; `retries`: earlier messages were (re)sent all the same."""
    if report.digest is None or not report.unclaimed:
        return "nothing to send"
    count = len(report.digest.posts)
    posts = counted(count, "new post")
    return (
        f"{'no new digest' if retries else 'nothing to send'}: no active subscriber "
        f"follows the {posts}; they wait for the next digest"
    )


def echo_dry_run(report: SendReport) -> None:
    if report.digest is None:
        click.echo("nothing to send: no new posts since the last digest")
    elif report.unclaimed:
        click.echo(nothing_to_send(report))
    else:
        click.echo(
            f"would send {report.digest.subject!r} to {report.queued} subscribers "
            f"({counted(report.variants, 'version')}); nothing queued or sent"
        )
    for note in report.notes:
        click.echo(f"note: {note}")


class ProgressReporter:
    """A progress bar for sends on a terminal (updated from the sending threads)."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def update(self, n: int, total: int) -> None:
        with self.lock:
            self.count += n
            filled = 30 * self.count // max(total, 1)
            bar = "#" * filled + "-" * (30 - filled)
            click.echo(f"\rsending [{bar}] {self.count}/{total}", nl=False, err=True)

    def finish(self) -> None:
        if self.count:
            click.echo("", err=True)


@cli.command()
@config_option
@click.option("--host", help="Address to listen on (default serve.host, 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default serve.port, 8080).")
@debug_option
@guarded
def serve(config_path: Path, host: str | None, port: int | None, debug: bool) -> None:
    """Serve the output folder (feeds with ETag, Last-Modified, gzip) and the subscribe,
    confirm and one-click unsubscribe endpoints. Needs SYNDICATE_SECRET."""
    from syndicate.web.app import serve_forever

    config = load_config(config_path)
    serve_forever(config, host or config.serve.host, port or config.serve.port)
