"""Bounces and complaints that come back by email, acted on: each message of the bounce
mailbox is read (mailboxes.py), parsed (bounces.py) and recorded once, with what it did.

- a hard bounce: the subscriber is `bounced`;
- a soft bounce: counted; `bounces.soft_limit` of them within `soft_window_days` make the
  subscriber `bounced`;
- a complaint (ARF `abuse`, `fraud`): `unsubscribed`;
- a request to `newsletter.unsubscribe_mailto`: `unsubscribed`, when it carries the signed
  token our `List-Unsubscribe` mailto puts in its subject (a `From:` is easily forged);
- anything else (a reader's reply, a delivery notice): left in the mailbox, reported once.

Whom a report concerns: the subscriber and digest our VERP token names (verified), else
the subscriber whose address the report gives. A report is recorded in the transaction
that changes its subscriber, so a run killed mid-mailbox counts nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from syndicate.config import Config, mailbox_names
from syndicate.crash import crash_point
from syndicate.delivery import mailboxes
from syndicate.delivery.bounces import (
    COMPLAINT,
    HARD,
    SOFT,
    UNSUBSCRIBE,
    BounceReport,
    parse_report,
)
from syndicate.errors import SyndicateError, TokenError
from syndicate.models import Subscriber
from syndicate.newsletter.tokens import load_secret, read_token, verify_token
from syndicate.state.bounces import (
    ReportRecord,
    finish_bounce_run,
    processed,
    record_report,
    soft_bounces,
    start_bounce_run,
)
from syndicate.state.store import Store
from syndicate.state.subscribers import find_subscriber, get_subscriber

OTHER = "other"  # a message that is no report: kept, reported once


@dataclass
class FeedbackReport:
    """What one reading of a bounce mailbox did."""

    messages: int = 0
    new_reports: int = 0  # recorded now (the others were recorded by an earlier run)
    bounced: int = 0
    unsubscribed: int = 0
    not_reports: int = 0
    lines: list[str] = field(default_factory=list)  # one per report acted on
    warnings: list[str] = field(default_factory=list)  # messages left for a human


def mailbox_sources(
    config: Config, maildir: str | None, mbox: str | None, imap: str | None
) -> list[str]:
    """The mailboxes to read: those given on the command line, else the configured ones,
    as `maildir:PATH`, `mbox:PATH`, `imap:URL`."""
    return mailbox_names(maildir, mbox, imap) or config.bounces.mailboxes()


def read_source(source: str) -> Iterator[tuple[str, bytes]]:
    kind, _, where = source.partition(":")
    if kind == "maildir":
        return mailboxes.read_maildir(where)
    if kind == "mbox":
        return mailboxes.read_mbox(where)
    mailboxes.parse_imap_url(where)  # a bad URL (a password in it) is said before the password
    return mailboxes.read_imap(where, mailboxes.imap_password())


def process_mailbox(config: Config, store: Store, source: str, now: datetime) -> FeedbackReport:
    """Read one mailbox and act on every report not recorded before; the run recorded in
    bounce_runs (failed, with the reason, when the mailbox cannot be read)."""
    secret = load_secret(config.delivery.secret_env)
    run_id = start_bounce_run(store, source, now)
    report = FeedbackReport()
    try:
        _process(config, store, read_source(source), secret, now, report)
    except SyndicateError as exc:
        finish_bounce_run(store, run_id, now, "failed", exc.message, **_counts(report))
        raise
    finish_bounce_run(store, run_id, now, "ok", None, **_counts(report))
    return report


def _counts(report: FeedbackReport) -> dict[str, int]:
    return {
        "messages": report.messages,
        "new_reports": report.new_reports,
        "bounced": report.bounced,
        "unsubscribed": report.unsubscribed,
        "not_reports": report.not_reports,
    }


def _process(
    config: Config,
    store: Store,
    messages: Iterable[tuple[str, bytes]],
    secret: bytes,
    now: datetime,
    report: FeedbackReport,
) -> None:
    return_path = config.delivery.return_path
    mailto = config.newsletter.unsubscribe_mailto
    batch: list[tuple[str, bytes]] = []
    for message in messages:
        batch.append(message)
        if len(batch) >= 200:
            _process_batch(config, store, batch, return_path, mailto, secret, now, report)
            batch = []
    _process_batch(config, store, batch, return_path, mailto, secret, now, report)


def _process_batch(
    config: Config,
    store: Store,
    batch: list[tuple[str, bytes]],
    return_path: str | None,
    mailto: str | None,
    secret: bytes,
    now: datetime,
    report: FeedbackReport,
) -> None:
    parsed = [
        (source, data, parse_report(data, return_path, secret, mailto)) for source, data in batch
    ]
    ids = [found.report_id if found else _other_id(data) for _source, data, found in parsed]
    seen = processed(store, ids)
    for (source, data, found), report_id in zip(parsed, ids, strict=True):
        report.messages += 1
        if report_id in seen:
            continue
        seen.add(report_id)  # the same report twice in one mailbox counts once
        if found is None:
            _record_other(store, source, report_id, data, now, report)
        else:
            _act(config, store, found, source, secret, now, report)
        crash_point("bounce-recorded")


def _other_id(data: bytes) -> str:
    return "other:" + hashlib.sha256(data).hexdigest()


def _record_other(
    store: Store, source: str, report_id: str, data: bytes, now: datetime, report: FeedbackReport
) -> None:
    record = ReportRecord(report_id, source, OTHER, None, None, "", "", "", "none")
    if record_report(store, record, now):
        report.not_reports += 1
        report.new_reports += 1
        report.warnings.append(
            f"{source}: not a bounce, complaint or unsubscribe request; left in the mailbox"
        )


def _act(
    config: Config,
    store: Store,
    found: BounceReport,
    source: str,
    secret: bytes,
    now: datetime,
    report: FeedbackReport,
) -> None:
    subscriber = _subscriber(store, found, secret)
    new_status, action, line = _decision(config, store, found, subscriber, source, now)
    record = ReportRecord(
        report_id=found.report_id,
        source=source,
        kind=found.kind,
        subscriber_id=subscriber.id if subscriber else None,
        digest_id=found.digest_id,
        address=subscriber.email if subscriber else ", ".join(found.addresses),
        status=found.status,
        detail=found.detail,
        action=action,
    )
    if not record_report(store, record, now, new_status):
        return  # recorded by another run meanwhile
    report.new_reports += 1
    report.bounced += new_status == "bounced"
    report.unsubscribed += new_status == "unsubscribed"
    (report.lines if subscriber else report.warnings).append(line)


def _subscriber(store: Store, found: BounceReport, secret: bytes) -> Subscriber | None:
    """Whom the report concerns: the VERP token's subscriber, the unsubscribe token's,
    else the first reported address that is on the list (not for an unsubscribe request:
    its token is required)."""
    if found.kind == UNSUBSCRIBE:
        return _token_subscriber(store, found, secret)
    if found.subscriber_id is not None:
        subscriber = get_subscriber(store, found.subscriber_id)
        if subscriber is not None:
            return subscriber
    for address in found.addresses:
        subscriber = find_subscriber(store, address)
        if subscriber is not None:
            return subscriber
    return None


def _token_subscriber(store: Store, found: BounceReport, secret: bytes) -> Subscriber | None:
    if not found.unsubscribe_token:
        return None
    try:
        subscriber_id, _purpose = read_token(found.unsubscribe_token)
        subscriber = get_subscriber(store, subscriber_id)
        if subscriber is None:
            return None
        verify_token(secret, found.unsubscribe_token, subscriber.email, "unsubscribe")
    except TokenError:
        return None
    return subscriber


def _decision(
    config: Config,
    store: Store,
    found: BounceReport,
    subscriber: Subscriber | None,
    source: str,
    now: datetime,
) -> tuple[str | None, str, str]:
    """-> (the subscriber's new status or None, the action recorded, the line printed)."""
    what = f"{found.kind} ({found.status})" if found.status else found.kind
    if subscriber is None:
        who = ", ".join(found.addresses) or "no address"
        if found.kind == UNSUBSCRIBE:
            return (
                None,
                "none",
                (
                    f"{source}: an unsubscribe request from {who} without a valid token; nobody"
                    " was unsubscribed (remove them by hand if it is genuine)"
                ),
            )
        return None, "none", f"{source}: {what} for {who}: not on the list"
    address = subscriber.email
    if subscriber.status not in ("active", "pending"):
        return None, "none", f"{what}: {address} (already {subscriber.status})"
    if found.kind == HARD:
        return "bounced", "bounced", f"bounced: {address} ({_detail(found)})"
    if found.kind in (COMPLAINT, UNSUBSCRIBE):
        reason = "a spam complaint" if found.kind == COMPLAINT else "asked by email"
        return "unsubscribed", "unsubscribed", f"unsubscribed: {address} ({reason})"
    assert found.kind == SOFT
    limit = config.bounces.soft_limit
    since = now - timedelta(days=config.bounces.soft_window_days)
    count = soft_bounces(store, subscriber.id, since) + 1
    if count >= limit:
        days = config.bounces.soft_window_days
        return (
            "bounced",
            "bounced",
            (
                f"bounced: {address} ({count} soft bounces in {days} days;"
                f" the last: {_detail(found)})"
            ),
        )
    return None, "counted", f"soft bounce {count} of {limit}: {address} ({_detail(found)})"


def _detail(found: BounceReport) -> str:
    text = " ".join(found.detail.split())[:160]
    return f"{found.status} {text}".strip() or found.kind
