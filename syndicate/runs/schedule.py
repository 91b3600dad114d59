"""The daemon: APScheduler 3 wiring. Triggers call pipeline functions; nothing more.

Jobs: `build` on schedule.build (poll for changes), and one one-off job per future post
at its exact date, so a post appears on time rather than at the next poll. All jobs share
one worker thread and the cross-process run lock, so they never overlap each other or a
cron run; coalescing and a misfire grace time make a sleeping laptop catch up once.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from syndicate.config import Config, cron_trigger_fields
from syndicate.errors import LockTimeoutError
from syndicate.runs.lock import run_lock
from syndicate.runs.pipeline import (
    CycleReport,
    deliver_after_lock,
    newsletter_hook,
    open_state,
    run_cycle,
)
from syndicate.state.store import safe_url

log = logging.getLogger("syndicate.daemon")
DUE_PREFIX = "due:"
MAX_DUE_JOBS = 200  # beyond that the poll picks them up; keeps the job table small


def cron_trigger(expression: str, config: Config) -> CronTrigger:
    return CronTrigger(**cron_trigger_fields(expression), timezone=config.site.tz)


def next_fire_times(config: Config, now: datetime) -> dict[str, datetime | None]:
    """When each configured job fires next (for `syndicate status`)."""
    times: dict[str, datetime | None] = {}
    for name, expression in (
        ("build", config.schedule.build),
        ("newsletter", config.schedule.newsletter if config.newsletter.enabled else None),
        ("bounces", config.schedule.bounces if config.bounces.mailboxes() else None),
    ):
        if expression:
            times[name] = cron_trigger(expression, config).get_next_fire_time(None, now)
    return times


class Daemon:
    """`syndicate run` without --once."""

    def __init__(
        self,
        config: Config,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = open_state(config)
        self._in_flight = threading.Lock()  # held while a cycle runs
        self.scheduler = BlockingScheduler(
            timezone=config.site.tz,
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": config.schedule.misfire_grace_seconds,
            },
        )

    def run(self) -> None:
        """Block until SIGTERM or SIGINT; the job in flight finishes first."""
        self.scheduler.add_job(
            self.cycle,
            cron_trigger(self.config.schedule.build, self.config),
            id="build",
            name="build",
            next_run_time=self.clock(),  # one cycle at start-up, then on schedule
        )
        if self.config.schedule.newsletter and self.config.newsletter.enabled:
            # The cycle's newsletter job sends the digest once its slot has come.
            self.scheduler.add_job(
                self.cycle,
                cron_trigger(self.config.schedule.newsletter, self.config),
                id="newsletter",
                name="newsletter",
            )
        if self.config.schedule.bounces and self.config.bounces.mailboxes():
            self.scheduler.add_job(
                self.read_bounces,
                cron_trigger(self.config.schedule.bounces, self.config),
                id="bounces",
                name="bounces",
            )
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        # `kill -USR1 <pid>` prints every thread's stack: for a daemon that seems stuck.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        log.info(
            "daemon started: build %r in %s, state %s",
            self.config.schedule.build,
            self.config.site.timezone,
            safe_url(self.config.state_url),
        )
        stop_serving = None
        if self.config.serve.enabled:
            from syndicate.web.app import start_in_thread

            stop_serving = start_in_thread(self.config)
            log.info("serving on http://%s:%d/", self.config.serve.host, self.config.serve.port)
        try:
            self.scheduler.start()
            with self._in_flight:
                pass  # the job in flight, if any, has finished
        finally:
            if stop_serving is not None:
                stop_serving()
            self.store.close()
        log.info("daemon stopped")

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        # Never wait inside the scheduler here: shutdown(wait=True) holds its executor lock
        # while a job in flight may need the job-store lock that the main loop holds while
        # it waits for the executor lock (a deadlock seen under load). Stop the loop
        # without waiting; run() then waits for the job in flight on our own lock.
        log.info("%s received: stopping after the job in flight", signal.Signals(signum).name)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def read_bounces(self) -> None:
        """One job: the bounce mailbox, acted on (as `syndicate bounces`), logged."""
        from syndicate.delivery.feedback import process_mailbox

        with self._in_flight:
            for source in self.config.bounces.mailboxes():
                try:
                    report = process_mailbox(self.config, self.store, source, self.clock())
                except Exception:  # the scheduler boundary: log it, keep the daemon alive
                    log.exception("reading bounces from %s failed", source)
                    continue
                for line in report.lines:
                    log.info("%s", line)
                for line in report.warnings:
                    log.warning("%s", line)
                log.info(
                    "bounces read from %s: %d messages, %d new, %d bounced, %d unsubscribed",
                    source,
                    report.messages,
                    report.new_reports,
                    report.bounced,
                    report.unsubscribed,
                )

    def cycle(self) -> None:
        """One job: lock, run the pipeline, log, re-plan the one-off jobs."""
        with self._in_flight:
            self._cycle()

    def _cycle(self) -> None:
        now = self.clock()
        log.info("run started")
        try:
            with run_lock(self.config, self.config.schedule.lock_timeout_seconds) as lock:
                started = self.clock()
                report = run_cycle(
                    self.config,
                    started,
                    self.store,
                    kind="daemon",
                    hooks=(newsletter_hook,),
                    still_locked=lock.check,
                )
            report = deliver_after_lock(self.config, started, self.store, report)
        except LockTimeoutError as exc:
            log.warning("run skipped: %s", exc.message)
            return
        except Exception:  # the scheduler boundary: log it, keep the daemon alive
            log.exception("run failed")
            return
        self._log_report(report)
        self._plan_due_jobs(report, now)

    def _log_report(self, report: CycleReport) -> None:
        for diagnostic in report.diagnostics:
            log.warning("%s", diagnostic.format())
        for failure in report.hub_failures:
            log.warning("%s", failure)
        for result in report.hook_results:
            for line in result.lines:
                log.log(logging.WARNING if line.problem else logging.INFO, "%s", line.text)
        for post in report.changes.published:
            log.info("published: %s <%s>", post.title, post.url)
        for post in report.changes.updated:
            log.info("updated: %s <%s>", post.title, post.url)
        for state in report.changes.withdrawn:
            log.info("withdrawn: %s <%s>", state.title, state.url)
        log.info(
            "run finished: %d published, %d updated, %d withdrawn, %d errors, %d files written",
            len(report.changes.published),
            len(report.changes.updated),
            len(report.changes.withdrawn),
            report.errors,
            len(report.written) + len(report.removed),
        )

    def _plan_due_jobs(self, report: CycleReport, now: datetime) -> None:
        """One one-off job per distinct future post date (re-planned after every run)."""
        if not self.scheduler.running:
            return  # stopping: nothing to plan
        for job in self.scheduler.get_jobs():
            if job.id.startswith(DUE_PREFIX):
                job.remove()
        dates = sorted({post.date for post in report.upcoming if post.date > now})
        for when in dates[:MAX_DUE_JOBS]:
            titles = [p.title for p in report.upcoming if p.date == when]
            # a hair after the date, so `date <= now` holds when the job reads the clock
            run_at = when + timedelta(milliseconds=50)
            self.scheduler.add_job(
                self.cycle,
                DateTrigger(run_date=run_at),
                id=f"{DUE_PREFIX}{when.isoformat()}",
                name=f"publish {', '.join(titles)[:80]}",
                replace_existing=True,
            )
        upcoming = [job for job in self.scheduler.get_jobs() if job.next_run_time is not None]
        if upcoming:
            first = min(upcoming, key=lambda job: job.next_run_time)
            log.info("next: %s at %s", first.name, first.next_run_time.isoformat())
