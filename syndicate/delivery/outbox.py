"""Sending digests: plan, queue in the outbox (once), then work through the outbox.

Crash safety. Each row is claimed (`sending`, committed) just before its SMTP transaction,
in the statement that checks its subscriber is still active, and marked `sent` right after
the server's 250. The transactions run in a forked sender process (sender.py): when the
run is killed, the sender finishes the transactions in flight and records their outcome,
and the next run waits for it (the delivery lock) before it resends anything, so a kill of
the run repeats nothing (bench/kill.py: 0 duplicates in 10 kills, unthrottled). When the
sender dies too (the process group killed), rows it left `sending` are sent again by the
next run, with the same Message-ID, so nothing is ever lost; the resend is a duplicate
only if the server had accepted the message (our final dot had left, the `sent` commit
had not happened): at most one per connection, about one per kill unthrottled against a
local server, and none while the rate limiter waits (a row is claimed after the wait).
"""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from syndicate.config import Config, secure_unsubscribe_url
from syndicate.content.posts import published, read_posts, render_or_diagnose
from syndicate.delivery.sender import can_fork, delivery_lock_path, run_in_sender, wait_for_orphans
from syndicate.delivery.transport import (
    Connection,
    DeliveryError,
    PermanentFailure,
    RateLimiter,
    TransientFailure,
    Transport,
    UnsupportedRecipient,
    make_transport,
)
from syndicate.errors import ConfigError
from syndicate.models import Digest, HookResult, Post
from syndicate.newsletter.archive import (
    add_archive_entry,
    archive_entry,
    archive_page,
    archive_page_path,
    entry_from_json,
    entry_json,
    read_archive,
    write_archive_page,
)
from syndicate.newsletter.compose import MessageTemplate, Prepared, ascii_address, dkim_signer
from syndicate.newsletter.plan import archive_url, plan_digest
from syndicate.newsletter.render import render_digest
from syndicate.newsletter.subscribers import wants
from syndicate.newsletter.tokens import load_secret, sign_token
from syndicate.state.mail import (
    ARCHIVE_VARIANT,
    BOUNCED,
    DEFERRED,
    FAILED,
    SENT,
    DigestExistsError,
    OutboxRow,
    QueuedBody,
    QueuedRecipient,
    archived_digest_keys,
    cancel_for_inactive,
    claim_row,
    digest_exists,
    due_rows,
    finish_digests,
    list_subscribers,
    load_archive_body,
    load_bodies,
    mark_row,
    queue_digest,
    set_slot_handled_at,
    set_status,
    slot_handled_at,
    unique_digest_key,
    waiting_rows,
)
from syndicate.state.store import PostState, Store

Progress = Callable[[int, int], None]  # (messages just finished, total)


@dataclass
class SendReport:
    """What `syndicate send` (or the newsletter job) did."""

    digest: Digest | None = None
    queued: int = 0  # outbox rows created for a new digest
    archived: bool = False  # a new digest was recorded (and saved in the web archive)
    unclaimed: bool = False  # a digest was due but nobody follows its posts: nothing recorded
    variants: int = 0  # distinct bodies rendered (topic sets)
    sent: int = 0
    deferred: int = 0
    bounced: int = 0
    failed: int = 0
    notes: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # one per deferred/bounced/failed recipient
    waiting: int = 0  # deferred rows left in the outbox after this run, waiting for a retry
    next_retry: datetime | None = None  # the earliest of their retry times

    @property
    def left_deferred(self) -> bool:
        return self.deferred > 0 or self.waiting > 0


def posts_hash(posts: Sequence[Post]) -> str:
    """Identity of a digest's content: the same posts never make a second digest."""
    return hashlib.sha256("\0".join(sorted(p.key for p in posts)).encode()).hexdigest()


# Tests set this to a step name to kill -9 the process there (crash-safety tests only).
CRASH_AT_ENV = "SYNDICATE_TEST_CRASH_AT"


def _crash_point(step: str) -> None:
    if os.environ.get(CRASH_AT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def plan_and_queue(
    config: Config,
    store: Store,
    now: datetime,
    dry_run: bool = False,
    since: datetime | None = None,
) -> SendReport:
    """Plan the due digest and queue it: one outbox row per active subscriber who follows at
    least one of its posts, each with the posts they follow, rendered once per topic set.

    A digest nobody would receive is not recorded: its posts wait for the next digest.
    Order, for crash safety: the archive page is written (atomically) before the digest is
    queued, so no email links to a missing page; the index and feed follow."""
    report = SendReport()
    digest = next_digest(read_posts(config).posts, store, config, now, since)
    if digest is None:
        return report
    report.digest = digest
    if digest_exists(store, posts_hash(digest.posts)):
        report.notes.append("a digest of these posts was queued before; not queued again")
        return report
    recipients, variants = _recipients(store, digest)
    if not recipients:
        report.unclaimed = True
        return report
    check_unsubscribe_url(config)
    key = unique_digest_key(store, digest.key)
    digest = replace(digest, key=key, archive_url=archive_url(config, key))
    report.digest = digest
    bodies = []
    for variant, chosen in variants.items():
        part = _variant_digest(digest, chosen, config, now)
        rendered = render_digest(part, config)
        report.notes.extend(rendered.notes)
        bodies.append(QueuedBody(variant, rendered.subject, rendered.html, rendered.text))
    report.variants = len(bodies)
    report.queued = len(recipients)
    if dry_run:
        return report
    load_secret(config.delivery.secret_env)  # fail before queueing what cannot be signed
    return _queue_with_archive(config, store, digest, bodies, recipients, now, report)


def _queue_with_archive(
    config: Config,
    store: Store,
    digest: Digest,
    bodies: list[QueuedBody],
    recipients: list[QueuedRecipient],
    now: datetime,
    report: SendReport,
) -> SendReport:
    """Archive page, then the digest in the outbox (with the page's copy), then the index."""
    key = digest.key
    page = archive_page(render_digest(digest, config), config)
    entry = archive_entry(digest)
    write_archive_page(config.output_dir, key, page)
    _crash_point("archive-page-written")
    # The archive copy is kept with the digest, so a lost page can always be restored.
    bodies.append(QueuedBody(ARCHIVE_VARIANT, digest.subject, page, entry_json(entry)))
    try:
        queue_digest(
            store,
            key=key,
            posts_hash=posts_hash(digest.posts),
            since=digest.since,
            until=digest.until,
            subject=digest.subject,
            post_sources=[p.key for p in digest.posts],
            archive_url=digest.archive_url,
            bodies=bodies,
            recipients=recipients,
            now=now,
        )
    except DigestExistsError:
        report.notes.append("a digest of these posts was queued before; not queued again")
        report.queued = 0
        return report
    _crash_point("digest-queued")
    add_archive_entry(config.output_dir, entry, config)
    report.archived = True
    return report


def _recipients(
    store: Store, digest: Digest
) -> tuple[list[QueuedRecipient], dict[str, tuple[Post, ...]]]:
    """Every active subscriber who follows one of the digest's posts, and the distinct
    sets of posts they follow (one rendered body each)."""
    variants: dict[str, tuple[Post, ...]] = {}
    recipients: list[QueuedRecipient] = []
    for subscriber in list_subscribers(store, "active"):
        chosen = tuple(p for p in digest.posts if wants(subscriber.topics, p))
        if not chosen:
            continue
        variant = posts_hash(chosen)[:16]
        variants.setdefault(variant, chosen)
        recipients.append(
            QueuedRecipient(subscriber.id, subscriber.email, subscriber.name, variant)
        )
    return recipients, variants


def check_unsubscribe_url(config: Config) -> None:
    """RFC 8058 one-click unsubscribe needs https. An explicit http URL is refused when the
    config is loaded; one that defaults from an http site.url is refused here, when there
    is somebody to send to (a feeds-only site on http is fine)."""
    url = config.newsletter.unsubscribe_url
    if secure_unsubscribe_url(url):
        return
    raise ConfigError.one(
        str(config.path),
        f"newsletter.unsubscribe_url: defaults to {url!r} (from site.url), but "
        "one-click unsubscribe (RFC 8058) needs https",
        "set newsletter.unsubscribe_url to an https:// address that reaches "
        "`syndicate serve` (or make site.url https)",
    )


def restore_archive(config: Config, store: Store) -> list[str]:
    """Rewrite the archive page, and the index entry, of every recorded digest that lacks
    them (a run killed between two steps, an output folder wiped). -> keys restored."""
    out = config.output_dir
    keys = archived_digest_keys(store)
    if not keys:
        return []
    listed = {e.key for e in read_archive(out)}
    restored = []
    for key in keys:
        page_missing = not archive_page_path(out, key).exists()
        if not page_missing and key in listed:
            continue
        body = load_archive_body(store, key)
        if body is None:
            continue
        if page_missing:
            write_archive_page(out, key, body.html)
        entry = entry_from_json(body.text)
        if key not in listed and entry is not None:
            add_archive_entry(out, entry, config)
        restored.append(key)
    return restored


def next_digest(
    posts: Sequence[Post],
    store: Store,
    config: Config,
    now: datetime,
    since: datetime | None = None,
) -> Digest | None:
    """The digest that is due: posts that entered the feeds since the last digest, never
    one that an earlier digest already announced (what `send` queues and `digest
    --preview` shows). A post no run has published yet counts as entering the feeds at
    `now`: `send` publishes it first; a preview shows what that would do."""
    announced = store.digested_sources()
    ready = [p for p in published(posts, now) if p.key not in announced]
    entered, last = entered_feeds_at(ready, store.post_states(), now), store.last_digest_at()
    broken: set[str] = set()  # posts that cannot be rendered (the feeds step reports them)
    while True:
        kept = [p for p in ready if p.key not in broken]
        digest = plan_digest(kept, entered, config, now, last, since)
        if digest is None:
            return None
        rendered = [render_or_diagnose(p) for p in digest.posts]
        good = [r for r in rendered if isinstance(r, Post)]
        if len(good) == len(rendered):
            return replace(digest, posts=tuple(good))
        broken |= {
            p.key for p, r in zip(digest.posts, rendered, strict=True) if not isinstance(r, Post)
        }


def entered_feeds_at(
    posts: Sequence[Post], states: Mapping[str, PostState], now: datetime
) -> dict[str, datetime]:
    """key -> when the post entered the feeds: as a run recorded it, else `now`.

    A file renamed since the last run has no state under its new key yet; the run
    will keep its first publication (matched by id, see publication.py), so a preview
    or dry run must count it from then too, not as new."""
    by_id: dict[str, datetime] = {}
    for known in states.values():
        first = known.first_published_at
        if first is not None and (known.post_id not in by_id or first < by_id[known.post_id]):
            by_id[known.post_id] = first
    times = {}
    for post in posts:
        state = states.get(post.key)
        entered = state.first_published_at if state is not None else by_id.get(post.id)
        times[post.key] = entered or now
    return times


def _variant_digest(
    digest: Digest, posts: tuple[Post, ...], config: Config, now: datetime
) -> Digest:
    if len(posts) == len(digest.posts):
        return digest
    planned = plan_digest(posts, {p.key: now for p in posts}, config, now, None, digest.since)
    assert planned is not None
    return replace(planned, key=digest.key, archive_url=digest.archive_url, since=digest.since)


class DeliveryStopped(DeliveryError):
    """Delivery stopped (refused login, untrusted certificate ...) after the digest was
    queued, and maybe after some messages went out: the error, with the report so far."""

    def __init__(self, cause: DeliveryError, report: SendReport) -> None:
        super().__init__(cause.message, cause.hint, cause.smtp_code)
        self.report = report


def deliver_outbox(
    config: Config,
    store: Store,
    now: datetime,
    transport: Transport | None = None,
    progress: Progress | None = None,
    clock: Callable[[], datetime] | None = None,
) -> SendReport:
    """Send every due outbox row over `connections` parallel, reused connections, in a
    forked sender process that outlives a killed run just long enough to finish the
    transactions in flight (syndicate/sender.py)."""
    report = SendReport()
    lock = _delivery_lock(config)
    # A sender of a killed run may still be finishing rows it left `sending`: wait for it
    # (bounded: it only reads answers and commits) before treating them as in doubt.
    wait_for_orphans(lock, 2 * config.delivery.smtp.timeout + 10)
    cancel_for_inactive(store)
    rows = due_rows(store, now)
    if not rows:
        finish_digests(store)
        report.waiting, report.next_retry = waiting_rows(store)
        return report
    secret = load_secret(config.delivery.secret_env)
    batch = _Batch(
        config=config,
        store=store,
        rows=rows,
        transport=transport or make_transport(config),
        secret=secret,
        now=now,
        clock=clock or (lambda: now),
    )
    if can_fork() and store.prepare_fork():
        try:
            report, stopped = run_in_sender(
                lambda stop, relay: _send_rows(batch, report, stop, _relay_progress(relay)),
                lambda total: progress(1, total) if progress else None,
                lock,
                2 * config.delivery.smtp.timeout + 10,
                # Nothing to inherit (prepare_fork closed them), but never share a pool.
                lambda: store.engine.dispose(close=False),
            )
        except RuntimeError as exc:  # the sender died: its rows in flight stay in doubt
            stopped = (f"delivery stopped: {exc}", None, None)
    else:
        report, stopped = _send_rows(batch, report, lambda: False, progress)
    finish_digests(store)
    report.waiting, report.next_retry = waiting_rows(store)
    if stopped is not None:
        raise DeliveryStopped(DeliveryError(*stopped), report)
    return report


def _delivery_lock(config: Config) -> Path:
    from syndicate.runs.pipeline import lock_path  # pipeline imports this module

    return delivery_lock_path(lock_path(config))


def _relay_progress(relay: Callable[[object], None]) -> Progress:
    return lambda _done, total: relay(total)


@dataclass(frozen=True)
class _Batch:
    """The rows one delivery works through, and what it needs to send them."""

    config: Config
    store: Store
    rows: list[OutboxRow]
    transport: Transport
    secret: bytes
    now: datetime
    clock: Callable[[], datetime]


def _send_rows(
    batch: _Batch,
    report: SendReport,
    parent_gone: Callable[[], bool],
    progress: Progress | None,
) -> tuple[SendReport, tuple[str, str | None, int | None] | None]:
    """The connections' threads over the rows; no new transaction once `parent_gone()`.
    -> the report, and the error that stopped delivery (message, hint, SMTP code)."""
    config, store, rows, transport, now = (
        batch.config,
        batch.store,
        batch.rows,
        batch.transport,
        batch.now,
    )
    secret, clock = batch.secret, batch.clock
    bodies = load_bodies(store, (r.body_id for r in rows))
    templates = {
        body_id: MessageTemplate(
            config, _digest_key(rows, body_id), body.subject, body.html, body.text, now
        )
        for body_id, body in bodies.items()
    }
    signer = dkim_signer(config)
    work: queue.Queue[OutboxRow] = queue.Queue()
    for row in rows:
        work.put(row)
    limiter = RateLimiter(
        config.delivery.smtp.rate_per_second if config.delivery.transport == "smtp" else 0
    )
    lock = threading.Lock()
    # One writer at a time from our side: SQLite's own busy handler would make the
    # connections sleep in turn (milliseconds each), which caps throughput far below SMTP's.
    db_lock = threading.Lock()

    def mark(row_id: int, status: str, **values: object) -> None:
        with db_lock:
            mark_row(store, row_id, status, **values)

    def claim(row: OutboxRow) -> bool:
        with db_lock:
            return claim_row(store, row.id, row.attempts + 1)

    fatal: list[DeliveryError] = []

    def prepare(row: OutboxRow, connection: Connection) -> Prepared:
        token = sign_token(secret, row.subscriber_id, row.email, "unsubscribe")
        # An internationalised domain goes as its A-label where the server has no SMTPUTF8
        # (envelope and To alike); a non-ASCII local part stays, and the transport says why
        # it cannot carry it.
        address = row.email if connection.utf8 else ascii_address(row.email) or row.email
        prepared = templates[row.body_id].render(row.subscriber_id, address, row.name, token)
        return replace(prepared, data=signer(prepared.data)) if signer else prepared

    def record(row: OutboxRow, outcome: str, response: str) -> None:
        with lock:
            setattr(report, outcome, getattr(report, outcome) + 1)
            if outcome != "sent":
                report.lines.append(f"{outcome}: {row.email}: {response}")
            if progress:
                progress(1, len(rows))

    def send_row(row: OutboxRow, connection: Connection | None) -> Connection | None:
        """One row through its states; returns the connection to reuse (None if closed)."""
        attempts = row.attempts + 1
        if not claim(row):
            return connection  # unsubscribed since it was queued: cancelled, not sent
        try:
            if connection is None:
                connection = transport.connect()
            message = prepare(row, connection)
            response = connection.send(message.sender, message.recipient, message.data)
        except DeliveryError:
            mark(row.id, "queued", attempts=row.attempts)  # nothing was sent
            raise
        except TransientFailure as exc:
            if exc.connection_lost and connection is not None:
                connection.close()
                connection = None
            if attempts >= config.delivery.max_attempts:
                mark(row.id, FAILED, last_response=exc.response)
                record(row, "failed", f"{exc.response} (gave up after {attempts} attempts)")
            else:
                delay = config.delivery.retry_base_seconds * 2 ** (attempts - 1)
                retry_at = clock() + timedelta(seconds=delay)
                mark(row.id, DEFERRED, last_response=exc.response, next_attempt_at=retry_at)
                record(row, "deferred", f"{exc.response} (retry in {delay}s)")
            return connection
        except UnsupportedRecipient as exc:  # before PermanentFailure, its base: not a bounce
            mark(row.id, FAILED, last_response=exc.response)
            record(row, "failed", exc.response)
            return connection
        except PermanentFailure as exc:
            mark(row.id, BOUNCED, last_response=exc.response)
            with db_lock:
                set_status(store, row.subscriber_id, "bounced", clock())
            record(row, "bounced", exc.response)
            return connection
        except Exception as exc:
            response = f"{type(exc).__name__}: {exc}"
            mark(row.id, FAILED, last_response=response)
            record(row, "failed", response)
            if connection is not None:
                connection.close()
            return None
        mark(row.id, SENT, last_response=response, sent_at=clock())
        record(row, "sent", response)
        return connection

    def worker() -> None:
        connection: Connection | None = None
        try:
            while not fatal and not parent_gone():
                try:
                    row = work.get_nowait()
                except queue.Empty:
                    break
                limiter.wait()
                if parent_gone():  # the run was killed: start nothing new
                    break
                connection = send_row(row, connection)
        except DeliveryError as exc:
            fatal.append(exc)
        except Exception as exc:
            fatal.append(DeliveryError(f"delivery stopped: {type(exc).__name__}: {exc}"))
        finally:
            if connection is not None:
                connection.close()

    threads = [
        threading.Thread(target=worker, name=f"smtp-{n}", daemon=True)
        for n in range(min(transport.connections, len(rows)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if fatal:
        return report, (fatal[0].message, fatal[0].hint, fatal[0].smtp_code)
    return report, None


def send_newsletter(
    config: Config,
    store: Store,
    now: datetime,
    dry_run: bool = False,
    transport: Transport | None = None,
    progress: Progress | None = None,
) -> SendReport:
    """Restore lost archive pages, queue the due digest (if any), then deliver everything
    due in the outbox."""
    restored = [] if dry_run else restore_archive(config, store)
    planned = plan_and_queue(config, store, now, dry_run)
    planned.notes[:0] = [f"restored the archive page of digest {key}" for key in restored]
    if dry_run:
        return planned
    try:
        delivered = deliver_outbox(config, store, now, transport, progress)
    except DeliveryStopped as stopped:
        _merge_planned(stopped.report, planned)
        raise
    return _merge_planned(delivered, planned)


def _merge_planned(delivered: SendReport, planned: SendReport) -> SendReport:
    """What plan_and_queue did, added to what delivery did."""
    delivered.digest = planned.digest
    delivered.queued = planned.queued
    delivered.variants = planned.variants
    delivered.archived = planned.archived
    delivered.unclaimed = planned.unclaimed
    delivered.notes = planned.notes + delivered.notes
    return delivered


def _digest_key(rows: Sequence[OutboxRow], body_id: int) -> str:
    return next(r.digest_key for r in rows if r.body_id == body_id)


def newsletter_due(config: Config, store: Store, now: datetime) -> bool:
    """Has a `schedule.newsletter` slot come since the last digest was queued (or the
    last slot was handled without one: nobody to send to)?

    With neither yet, a slot within the last week counts, so a new install sends its
    first digest at the first run after a slot rather than waiting a week.
    """
    expression = config.schedule.newsletter
    if not expression:
        return False
    from apscheduler.triggers.cron import CronTrigger

    from syndicate.config import cron_trigger_fields

    trigger = CronTrigger(**cron_trigger_fields(expression), timezone=config.site.tz)
    handled = [t for t in (store.last_digest_created_at(), slot_handled_at(store)) if t]
    start = max(handled) if handled else now - timedelta(days=7)
    slot = trigger.get_next_fire_time(None, start + timedelta(microseconds=1))
    return slot is not None and slot <= now


def newsletter_job(config: Config, now: datetime, store: Store) -> HookResult:
    """After each publishing cycle: send the digest when its slot has come, and retry
    deferred messages whose time has come. Nothing at all when the newsletter is off."""
    if not config.newsletter.enabled:
        return HookResult()
    if newsletter_due(config, store, now):
        report = send_newsletter(config, store, now)
        # The slot is spent even when nobody got a digest: the posts wait for the next
        # slot, not for the next 15-minute cycle.
        set_slot_handled_at(store, now)
    elif cancel_for_inactive(store) or due_rows(store, now):
        report = deliver_outbox(config, store, now)
    else:
        return HookResult()
    return HookResult(tuple(summary_lines(report)), report.deferred + report.failed)


def summary_lines(report: SendReport) -> list[str]:
    """Human lines for a send: the digest, then the totals, then each problem."""
    lines = []
    if report.digest is not None and report.queued:
        lines.append(
            f"digest {report.digest.subject!r}: queued for {report.queued} subscribers "
            f"({report.variants} version{'s' * (report.variants != 1)})"
        )

    lines.extend(f"note: {note}" for note in report.notes)
    total = report.sent + report.deferred + report.bounced + report.failed
    if total:
        lines.append(
            f"sent {report.sent}, deferred {report.deferred}, bounced {report.bounced}, "
            f"failed {report.failed}"
        )
    lines.extend(report.lines)
    if report.waiting and report.next_retry is not None:
        retry = report.next_retry.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        lines.append(f"{report.waiting} deferred, next retry at {retry}")
    return lines
