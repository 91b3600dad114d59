"""What `syndicate status` says: posts (published, recent, scheduled, drafts), the
mailing list and outbox, the last digest, the last runs and the next jobs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from syndicate.config import Config, DomainLimits, normal_domain
from syndicate.content.posts import read_posts, scheduled
from syndicate.runs.schedule import next_fire_times
from syndicate.state.bounces import last_bounce_run
from syndicate.state.posts import load_post_states
from syndicate.state.runs import recent_runs
from syndicate.state.status import MailingStatus, mailing_status, recent_posts
from syndicate.state.store import Store
from syndicate.words import counted

When = Callable[[datetime | None], str]


def status_lines(config: Config, store: Store, now: datetime) -> list[str]:
    """The report, one line each (read-only: nothing is published or recorded)."""
    tz = config.site.tz

    def when(value: datetime | None) -> str:
        return value.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if value else "-"

    catalog = read_posts(config)
    live = [s for s in load_post_states(store).values() if s.status == "published"]
    upcoming = scheduled(catalog.posts, now)
    drafts = sum(1 for p in catalog.posts if p.draft)
    lines = [f"posts: {len(live)} published, {len(upcoming)} scheduled, {drafts} drafts"]
    recent = recent_posts(store, 10)
    if recent:
        lines.append("recently published:")
        lines += [f"  {when(i.published_at)}  {i.title}  <{i.url}>" for i in recent]
    if upcoming:
        lines.append("scheduled:")
        lines += [f"  {when(p.date)}  {p.title}  ({p.source})" for p in upcoming]
    lines += mailing_lines(mailing_status(store), when, config.delivery.domains)
    lines += bounce_lines(store, when)
    lines += run_lines(store, when)
    lines.append("next jobs:")
    lines += [f"  {name}: {when(fire)}" for name, fire in next_fire_times(config, now).items()]
    if upcoming:
        lines.append(f"  publish {upcoming[0].title!r}: {when(upcoming[0].date)}")
    return lines


def bounce_lines(store: Store, when: When) -> list[str]:
    """The bounce processor's last run (syndicate bounces, or the daemon's job)."""
    run = last_bounce_run(store)
    if run is None:
        return []
    counts = (
        f"{counted(run.messages, 'message')}, {run.new_reports} new: {run.bounced} bounced, "
        f"{run.unsubscribed} unsubscribed, {run.not_reports} not reports"
    )
    failed = f" ({run.message})" if run.outcome == "failed" and run.message else ""
    read = f"bounces: last read {when(run.started_at)} from {run.mailbox}"
    return [f"{read}, {run.outcome}{failed}: {counts}"]


def run_lines(store: Store, when: When) -> list[str]:
    """The last five runs and what each did."""
    runs = recent_runs(store, 5)
    lines = ["last runs:" if runs else "last runs: none yet"]
    for record in runs:
        counts = (
            f"{record.published} published, {record.updated} updated, "
            f"{record.withdrawn} withdrawn, {record.errors} errors"
        )
        started = when(record.started_at)
        lines.append(f"  #{record.id} {started} {record.kind} {record.outcome}: {counts}")
    return lines


def mailing_lines(
    status: MailingStatus, when: When, limits: DomainLimits | None = None
) -> list[str]:
    """The mailing list part of `status`: subscribers, outbox, last digest (and what
    became of it per recipient domain)."""
    subscribers = ", ".join(f"{n} {name}" for name, n in status.subscribers.items())
    shown = {name: n for name, n in status.outbox.items() if n}
    outbox = ", ".join(
        f"{n} {name}"
        + (f" (next retry {when(status.next_retry_at)})" if name == "deferred" else "")
        for name, n in shown.items()
    )
    lines = [f"subscribers: {subscribers}", f"outbox: {outbox or 'empty'}"]
    digest = status.last_digest
    if digest is None:
        lines.append("last digest: none yet")
    else:
        outcomes = ", ".join(f"{n} {name}" for name, n in digest.outcomes.items())
        lines.append(
            f"last digest: {digest.subject!r} ({digest.key}), {digest.status} "
            f"{when(digest.created_at)}: {outcomes or 'no recipients'}"
        )
        lines += domain_lines(digest.domains, limits or DomainLimits())
    return lines


MAX_DOMAIN_LINES = 10


def domain_lines(domains: dict[str, dict[str, int]], limits: DomainLimits) -> list[str]:
    """One line per recipient domain (most rows first, the first ten): sent, deferred and
    bounced, then any other state it has rows in; a domain of a group names it."""
    lines = []
    for domain, states in list(domains.items())[:MAX_DOMAIN_LINES]:
        name = normal_domain(domain)
        group = limits.destination(name)[0] if name else domain
        label = domain if group in (domain, name) else f"{domain} ({group})"
        counts = {"sent": 0, "deferred": 0, "bounced": 0} | states
        lines.append(f"  {label}: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
    rest = list(domains.values())[MAX_DOMAIN_LINES:]
    if rest:
        rows = sum(sum(states.values()) for states in rest)
        lines.append(f"  and {counted(len(rest), 'more domain')} ({counted(rows, 'message')})")
    return lines
