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
import secrets
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from syndicate import record
from syndicate.config import Config, secure_unsubscribe_url
from syndicate.crash import crash_point
from syndicate.delivery.dispatch import Batch, SendProgress, SendReport, StopReason, send_rows
from syndicate.delivery.sender import can_fork, delivery_lock_path, run_in_sender, wait_for_orphans
from syndicate.delivery.transport import Transport, make_transport
from syndicate.errors import ConfigError, DeliveryError, DeliveryStoppedError, DigestExistsError
from syndicate.models import Digest, HookResult, Post, ReportLine
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
from syndicate.newsletter.due import next_digest
from syndicate.newsletter.plan import archive_url, plan_digest
from syndicate.newsletter.render import render_digest
from syndicate.newsletter.subscribers import wants
from syndicate.newsletter.tokens import load_secret
from syndicate.record import replace
from syndicate.state.digests import (
    ARCHIVE_VARIANT,
    QueuedBody,
    QueuedRecipient,
    archived_digest_keys,
    digest_exists,
    last_digest_created_at,
    load_archive_body,
    queue_digest,
    set_slot_handled_at,
    slot_handled_at,
    unique_digest_key,
)
from syndicate.state.outbox import (
    Lease,
    OutboxRow,
    cancel_for_inactive,
    due_count,
    finish_digests,
    lease_rows,
    leased_elsewhere,
    release_leases,
    waiting_rows,
)
from syndicate.state.store import Store
from syndicate.state.subscribers import list_subscribers
from syndicate.words import counted


def posts_hash(posts: Sequence[Post]) -> str:
    """Identity of a digest's content: the same posts never make a second digest."""
    return hashlib.sha256("\0".join(sorted(p.key for p in posts)).encode()).hexdigest()


def plan_and_queue(
    config: Config,
    store: Store,
    now: datetime,
    posts: Sequence[Post],
    dry_run: bool = False,
    since: datetime | None = None,
) -> SendReport:
    """Plan the due digest and queue it: one outbox row per active subscriber who follows at
    least one of its posts, each with the posts they follow, rendered once per topic set.

    A digest nobody would receive is not recorded: its posts wait for the next digest.
    Order, for crash safety: the archive page is written (atomically) before the digest is
    queued, so no email links to a missing page; the index and feed follow."""
    report = SendReport()
    digest = next_digest(posts, store, config, now, since)
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
    digest = record.replace(digest, key=key, archive_url=archive_url(config, key))
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
    crash_point("archive-page-written")
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
    crash_point("digest-queued")
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


def _variant_digest(
    digest: Digest, posts: tuple[Post, ...], config: Config, now: datetime
) -> Digest:
    if len(posts) == len(digest.posts):
        return digest
    planned = plan_digest(posts, {p.key: now for p in posts}, config, now, None, digest.since)
    assert planned is not None
    return record.replace(
        planned, key=digest.key, archive_url=digest.archive_url, since=digest.since
    )


def deliver_outbox(
    config: Config,
    store: Store,
    now: datetime,
    transport: Transport | None = None,
    progress: SendProgress | None = None,
    clock: Callable[[], datetime] | None = None,
) -> SendReport:
    """Send every due outbox row over `connections` parallel, reused connections, in a
    forked sender process that outlives a killed run just long enough to finish the
    transactions in flight (syndicate/sender.py). The rows are leased a batch at a time,
    so senders on other hosts (PostgreSQL) share the work: see lease_rows."""
    report = SendReport()
    lock = _delivery_lock(config)
    # A sender of a killed run may still be finishing rows it left `sending`: wait for it
    # (bounded: it only reads answers and commits) before treating them as in doubt.
    wait_for_orphans(lock, 2 * config.delivery.smtp.timeout + 10)
    cancel_for_inactive(store)
    lease = Lease(_lease_holder(), config.delivery.lease_seconds, store.shared)
    total = due_count(store, now, lease.shared)
    if not total:
        finish_digests(store)
        report.waiting, report.next_retry = waiting_rows(store)
        if lease.shared:
            report.leased, report.lease_ends = leased_elsewhere(store, lease)
        return report
    batch = Batch(
        config=config,
        store=store,
        lease=lease,
        rows=[],
        transport=transport or make_transport(config),
        secret=load_secret(config.delivery.secret_env),
        now=now,
        clock=clock or (lambda: now),
    )
    if can_fork() and store.prepare_fork():
        try:
            report, stopped = run_in_sender(
                lambda stop, relay: send_leased(batch, report, stop, _relay_progress(relay, total)),
                lambda total: progress(1, total) if progress else None,
                lock,
                2 * config.delivery.smtp.timeout + 10,
                # Nothing to inherit (prepare_fork closed them), but never share a pool.
                lambda: store.engine.dispose(close=False),
            )
        except RuntimeError as exc:  # the sender died: its rows in flight stay in doubt
            stopped = (f"delivery stopped: {exc}", None, None)
    else:
        report, stopped = send_leased(batch, report, lambda: False, _fixed_total(progress, total))
    finish_digests(store)
    report.waiting, report.next_retry = waiting_rows(store)
    if lease.shared:
        report.leased, report.lease_ends = leased_elsewhere(store, lease)
    if stopped is not None:
        raise DeliveryStoppedError(DeliveryError(*stopped), report)
    return report


def send_leased(
    batch: Batch,
    report: SendReport,
    parent_gone: Callable[[], bool],
    progress: SendProgress | None,
) -> tuple[SendReport, StopReason | None]:
    """Lease a batch of due rows and send it, leasing the next as the rows run out, until
    none is left (or delivery stops); then give back what was leased but not started. A
    row is leased once per delivery: one deferred again is for the next run."""
    seen: set[int] = set()
    limit = batch.config.delivery.lease_batch
    after = 0  # one sender (SQLite): each lease starts after the last

    def next_lease() -> list[OutboxRow]:
        nonlocal after
        rows = lease_rows(batch.store, batch.lease, batch.clock(), limit, after)
        if rows:
            after = max(after, rows[-1].id)
        fresh = [r for r in rows if r.id not in seen]
        seen.update(r.id for r in fresh)
        return fresh

    try:
        first = next_lease()
        if not first:
            return report, None
        return send_rows(replace(batch, rows=first), report, parent_gone, progress, more=next_lease)
    finally:
        release_leases(batch.store, batch.lease)


def _lease_holder() -> str:
    """This sender, as the outbox's `claimed_by` names it: host, process, and a random
    part (a pid is reused; two deliveries of one process are two holders)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


def _fixed_total(progress: SendProgress | None, total: int) -> SendProgress | None:
    """Progress against the rows due at the start (a batch knows only its own)."""
    return (lambda done, _batch_total: progress(done, total)) if progress else None


def _delivery_lock(config: Config) -> Path:
    from syndicate.runs.lock import lock_path

    return delivery_lock_path(lock_path(config))


def _relay_progress(relay: Callable[[object], None], total: int) -> SendProgress:
    return lambda _done, _batch_total: relay(total)


def send_newsletter(
    config: Config,
    store: Store,
    now: datetime,
    posts: Sequence[Post],
    dry_run: bool = False,
    transport: Transport | None = None,
    progress: SendProgress | None = None,
) -> SendReport:
    """Restore lost archive pages, queue the due digest (if any), then deliver everything
    due in the outbox."""
    planned = queue_newsletter(config, store, now, posts, dry_run)
    if dry_run:
        return planned
    return deliver_queued(config, store, now, planned, transport, progress)


def queue_newsletter(
    config: Config, store: Store, now: datetime, posts: Sequence[Post], dry_run: bool = False
) -> SendReport:
    """Restore lost archive pages, then plan and queue the due digest (if any): the part
    of a send that needs the run lock."""
    restored = [] if dry_run else restore_archive(config, store)
    planned = plan_and_queue(config, store, now, posts, dry_run)
    planned.notes[:0] = [f"restored the archive page of digest {key}" for key in restored]
    return planned


def deliver_queued(
    config: Config,
    store: Store,
    now: datetime,
    planned: SendReport,
    transport: Transport | None = None,
    progress: SendProgress | None = None,
) -> SendReport:
    """Deliver everything due in the outbox; the report says what `planned` queued too.
    On a shared database this runs after the run lock is released, beside other senders."""
    try:
        delivered = deliver_outbox(config, store, now, transport, progress)
    except DeliveryStoppedError as stopped:
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


def newsletter_due(config: Config, store: Store, now: datetime) -> bool:
    """Has a `schedule.newsletter` slot come since the last digest was queued (or the
    last slot was handled without one: nobody to send to)?"""
    slot = next_newsletter_slot(config, store, now)
    return slot is not None and slot <= now


def next_newsletter_slot(config: Config, store: Store, now: datetime) -> datetime | None:
    """The first `schedule.newsletter` slot after the last digest was queued (or the last
    slot was handled without one); None: no schedule (or no slot ever again).

    With neither yet, it is the first slot within the last week, so a new install sends
    its first digest at the first run after a slot rather than waiting a week.
    """
    expression = config.schedule.newsletter
    if not expression:
        return None
    from apscheduler.triggers.cron import CronTrigger

    from syndicate.config import cron_trigger_fields

    trigger = CronTrigger(**cron_trigger_fields(expression), timezone=config.site.tz)
    handled = [t for t in (last_digest_created_at(store), slot_handled_at(store)) if t]
    start = max(handled) if handled else now - timedelta(days=7)
    slot: datetime | None = trigger.get_next_fire_time(None, start + timedelta(microseconds=1))
    return slot


def newsletter_job(
    config: Config, now: datetime, store: Store, posts: Sequence[Post], deliver: bool = True
) -> HookResult:
    """After each publishing cycle (given the posts it read): queue the digest when its
    slot has come, and send what is due in the outbox (`deliver`; on a shared database
    that is delivery_job's, after the run lock is released). Nothing at all when the
    newsletter is off."""
    if not config.newsletter.enabled:
        return HookResult()
    if newsletter_due(config, store, now):
        report = queue_newsletter(config, store, now, posts)
        if deliver:
            report = deliver_queued(config, store, now, report)
        # The slot is spent even when nobody got a digest: the posts wait for the next
        # slot, not for the next 15-minute cycle.
        set_slot_handled_at(store, now)
    elif deliver and _anything_due(store, now):
        report = deliver_outbox(config, store, now)
    else:
        return HookResult()
    return HookResult(tuple(summary_lines(report)), report.deferred + report.failed)


def delivery_job(config: Config, now: datetime, store: Store) -> HookResult:
    """The outbox's due rows, leased beside the other senders of a shared database."""
    if not config.newsletter.enabled or not _anything_due(store, now):
        return HookResult()
    report = deliver_outbox(config, store, now)
    return HookResult(tuple(summary_lines(report)), report.deferred + report.failed)


def _anything_due(store: Store, now: datetime) -> bool:
    return bool(cancel_for_inactive(store) or due_count(store, now, store.shared))


def summary_lines(report: SendReport) -> list[ReportLine]:
    """Human lines for a send: the digest, then the totals, then each problem (a line
    about one recipient deferred, bounced or failed is a problem line)."""
    lines = []
    if report.digest is not None and report.queued:
        lines.append(
            ReportLine(
                f"digest {report.digest.subject!r}: queued for {report.queued} subscribers "
                f"({counted(report.variants, 'version')})"
            )
        )
    lines.extend(ReportLine(f"note: {note}") for note in report.notes)
    total = report.sent + report.deferred + report.bounced + report.failed
    if total:
        lines.append(
            ReportLine(
                f"sent {report.sent}, deferred {report.deferred}, bounced {report.bounced}, "
                f"failed {report.failed}"
            )
        )
    lines.extend(ReportLine(line, problem=True) for line in report.lines)
    if report.waiting and report.next_retry is not None:
        retry = report.next_retry.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        lines.append(ReportLine(f"{report.waiting} deferred, next retry at {retry}"))
    if report.leased and report.lease_ends is not None:
        ends = report.lease_ends.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        lines.append(
            ReportLine(
                f"{counted(report.leased, 'message')} still leased by other senders until "
                f"{ends}; sent by them, or by the next send after that"
            )
        )
    return lines
