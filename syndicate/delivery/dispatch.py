"""Working through a batch of outbox rows over `connections` parallel SMTP connections:
each worker (a thread of a concurrent.futures pool) reuses one connection across its
rows, claims each row just before its transaction and records the outcome right after
(see outbox.py for why that order is crash-safe). The rows come from the throttle
(throttle.py), which spaces them per destination and holds back a paused one's."""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from syndicate.config import Config, DomainLimits
from syndicate.delivery import throttle
from syndicate.delivery.throttle import Backoff, Held, Throttle, is_throttle_answer
from syndicate.delivery.transport import Connection, SendRateLimiter, Transport
from syndicate.delivery.verp import return_path_for
from syndicate.errors import (
    DeliveryError,
    PermanentSendError,
    TransientSendError,
    UnsupportedRecipientError,
)
from syndicate.models import Digest
from syndicate.newsletter.compose import MessageTemplate, Prepared, ascii_address, dkim_signer
from syndicate.newsletter.tokens import sign_token
from syndicate.record import replace
from syndicate.state.digests import queued_bodies
from syndicate.state.outbox import (
    BOUNCED,
    DEFERRED,
    FAILED,
    QUEUED,
    SENT,
    Lease,
    OutboxRow,
    claim_row,
    mark_row,
    renew_leases,
)
from syndicate.state.store import Store
from syndicate.state.subscribers import set_status

SendProgress = Callable[[int, int], None]  # (messages just finished, total)
StopReason = tuple[str, str | None, int | None]  # (message, hint, SMTP code)
WAIT_SLICE = 0.25  # a waiting worker looks at parent_gone() at least this often


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
    leased: int = 0  # open rows other senders (a PostgreSQL outbox) still hold a lease on
    lease_ends: datetime | None = None  # when the last of those leases runs out

    def count(self, outcome: str) -> None:
        """One more message with this outcome (sent, deferred, bounced or failed)."""
        if outcome == SENT:
            self.sent += 1
        elif outcome == DEFERRED:
            self.deferred += 1
        elif outcome == BOUNCED:
            self.bounced += 1
        else:
            self.failed += 1


@dataclass(frozen=True)
class Batch:
    """The rows one delivery works through, and what it needs to send them."""

    config: Config
    store: Store
    lease: Lease
    rows: list[OutboxRow]
    transport: Transport
    secret: bytes
    now: datetime
    clock: Callable[[], datetime]


def send_rows(
    batch: Batch,
    report: SendReport,
    parent_gone: Callable[[], bool],
    progress: SendProgress | None,
    more: Callable[[], list[OutboxRow]] | None = None,
) -> tuple[SendReport, StopReason | None]:
    """The connections' workers over the rows, and over what `more()` gives when they run
    out (the next lease), until it gives nothing; no new transaction once `parent_gone()`.
    The connections, the throttle's state and the rate stay from one lease to the next.
    -> the report, and the error that stopped delivery."""
    dispatcher = _Dispatcher(batch, report, parent_gone, progress, more)
    connections = batch.transport.connections
    workers = connections if more else min(connections, len(batch.rows))
    with _heartbeat(batch), ThreadPoolExecutor(workers, thread_name_prefix="smtp") as pool:
        for _ in range(workers):
            pool.submit(dispatcher.work)
    if dispatcher.fatal:
        first = dispatcher.fatal[0]
        return report, (first.message, first.hint, first.smtp_code)
    return report, None


@contextlib.contextmanager
def _heartbeat(batch: Batch) -> Iterator[None]:
    """On a shared database, renew this sender's leases three times per lease while it
    works: a slow message (up to ten times smtp.timeout) never loses its row to another
    sender. A sender that dies stops renewing, and its rows come free when the lease ends."""
    if not batch.lease.shared:
        yield
        return
    done = threading.Event()

    def beat() -> None:
        while not done.wait(batch.lease.seconds / 3):
            with contextlib.suppress(SQLAlchemyError):  # the next beat tries again
                renew_leases(batch.store, batch.lease)

    thread = threading.Thread(target=beat, name="lease-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


class _Templates:
    """One composer per queued body (a topic set of a digest), made the first time a row
    of that body comes (rows come a lease at a time)."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.made: dict[int, MessageTemplate] = {}
        self.lock = threading.Lock()

    def __getitem__(self, row: OutboxRow) -> MessageTemplate:
        with self.lock:
            if row.body_id not in self.made:
                batch = self.batch
                body = queued_bodies(batch.store, [row.body_id])[row.body_id]
                self.made[row.body_id] = MessageTemplate(
                    batch.config, row.digest_key, body.subject, body.html, body.text, batch.now
                )
            return self.made[row.body_id]


def make_throttle(batch: Batch) -> Throttle:
    """The batch's rows by destination, under `delivery.domains` (SMTP only: a file
    transport has no destinations to spare)."""
    delivery = batch.config.delivery
    smtp = delivery.transport == "smtp"
    return Throttle(
        batch.rows,
        delivery.domains if smtp else DomainLimits(),
        Backoff(delivery.throttle_pause_seconds, delivery.throttle_max_pause_seconds),
        connections=batch.transport.connections,
        rate=delivery.smtp.rate_per_second if smtp else 0.0,
        jitter=random.random,  # spreads the retries of parallel senders
    )


class _Dispatcher:
    """The state the workers share: the rows to take, the report, the first fatal error."""

    def __init__(
        self,
        batch: Batch,
        report: SendReport,
        parent_gone: Callable[[], bool],
        progress: SendProgress | None,
        more: Callable[[], list[OutboxRow]] | None = None,
    ) -> None:
        self.batch = batch
        self.more = more
        self.more_lock = threading.Lock()
        self.config = batch.config
        self.report = report
        self.parent_gone = parent_gone
        self.progress = progress
        self.templates = _Templates(batch)
        self.signer = dkim_signer(batch.config)
        self.throttle = make_throttle(batch)
        smtp = self.config.delivery.transport == "smtp"
        self.limiter = SendRateLimiter(self.config.delivery.smtp.rate_per_second if smtp else 0)
        self.report_lock = threading.Lock()
        # One writer at a time from our side: SQLite's own busy handler would make the
        # connections sleep in turn (milliseconds each), which caps throughput far below SMTP's.
        self.db_lock = threading.Lock()
        self.fatal: list[DeliveryError] = []

    def work(self) -> None:
        """One worker: rows until none is left, a fatal error, or the run is gone."""
        connection: Connection | None = None
        try:
            while not self.fatal and not self.parent_gone():
                pick = self.throttle.take(time.monotonic())
                if pick.done:
                    if self.refill():
                        continue
                    break
                if pick.held:
                    self.hold(pick.held)
                    continue
                if pick.row is None:
                    time.sleep(min(pick.wait, WAIT_SLICE))
                    continue
                self.limiter.wait()
                if self.parent_gone():  # the run was killed: start nothing new
                    break
                connection = self.send_row(pick.row, connection)
        except DeliveryError as exc:
            self.fatal.append(exc)
        except Exception as exc:
            self.fatal.append(DeliveryError(f"delivery stopped: {type(exc).__name__}: {exc}"))
        finally:
            if connection is not None:
                connection.close()

    def send_row(self, row: OutboxRow, connection: Connection | None) -> Connection | None:
        """One row through its states; returns the connection to reuse (None if closed)."""
        with self.db_lock:
            if not self.claim(row):
                self.throttle.answered(row, time.monotonic(), throttle.OTHER)
                return connection  # unsubscribed since it was queued: cancelled, not sent
        try:
            if connection is None:
                connection = self.batch.transport.connect()
            message = self.prepare(row, connection)
            response = connection.send(message.sender, message.recipient, message.data)
        except DeliveryError:
            self.mark(row.id, QUEUED, attempts=row.attempts)  # nothing was sent
            raise
        except TransientSendError as exc:
            if exc.connection_lost and connection is not None:
                connection.close()
                connection = None
            self.transient(row, exc.response)
            return connection
        except (
            UnsupportedRecipientError
        ) as exc:  # before PermanentSendError, its base: not a bounce
            self.finish(row, FAILED, exc.response)
            return connection
        except PermanentSendError as exc:
            self.finish(row, BOUNCED, exc.response)
            with self.db_lock:
                set_status(self.batch.store, row.subscriber_id, "bounced", self.batch.clock())
            return connection
        except Exception as exc:
            self.finish(row, FAILED, f"{type(exc).__name__}: {exc}")
            if connection is not None:
                connection.close()
            return None
        self.finish(row, SENT, response, sent_at=self.batch.clock())
        return connection

    def hold(self, held: Sequence[Held]) -> None:
        """Rows of a destination still paused when nothing else is left, never tried:
        deferred to the pause's end, their attempts unchanged. Claimed first, in the
        statement that checks the subscriber is still active, as a send would be. Not
        once the run is gone: its successor may be sending these rows already."""
        for item in held:
            if self.parent_gone():
                return  # the rest stay as they were (queued or deferred), untouched
            row = item.row
            with self.db_lock:
                if not self.claim(row):
                    continue  # unsubscribed since it was queued: cancelled
            delay = math.ceil(item.pause)
            response = f"not tried: {item.lane} is throttled ({item.answer})"
            self.mark(
                row.id,
                DEFERRED,
                attempts=row.attempts,
                last_response=response,
                next_attempt_at=self.batch.clock() + timedelta(seconds=delay),
            )
            self.record(row, DEFERRED, f"{response} (retry in {delay}s)")

    def prepare(self, row: OutboxRow, connection: Connection) -> Prepared:
        token = sign_token(self.batch.secret, row.subscriber_id, row.email, "unsubscribe")
        # An internationalised domain goes as its A-label where the server has no SMTPUTF8
        # (envelope and To alike); a non-ASCII local part stays, and the transport says why
        # it cannot carry it.
        address = row.email if connection.utf8 else ascii_address(row.email) or row.email
        prepared = self.templates[row].render(row.subscriber_id, address, row.name, token)
        return_path = self.config.delivery.return_path
        if return_path:  # VERP: a bounce comes back to an address naming row and digest
            sender = return_path_for(
                return_path, row.subscriber_id, row.digest_id, self.batch.secret
            )
            prepared = replace(prepared, sender=sender)
        return replace(prepared, data=self.signer(prepared.data)) if self.signer else prepared

    def transient(self, row: OutboxRow, response: str) -> None:
        """Deferred with exponential back-off, or failed after delivery.max_attempts. A
        throttle answer (421, 4.7.x) also pauses the row's destination, and the row waits
        at least as long as the pause."""
        outcome = throttle.THROTTLED if is_throttle_answer(response) else throttle.OTHER
        paused = self.throttle.answered(row, time.monotonic(), outcome, response)
        attempts = row.attempts + 1
        if attempts >= self.config.delivery.max_attempts:
            self.settle(row, FAILED, response, f" (gave up after {attempts} attempts)")
            return
        delay = self.config.delivery.retry_base_seconds * 2 ** (attempts - 1)
        if outcome == throttle.THROTTLED:
            delay = max(delay, math.ceil(paused))
        retry_at = self.batch.clock() + timedelta(seconds=delay)
        self.mark(row.id, DEFERRED, last_response=response, next_attempt_at=retry_at)
        self.record(row, DEFERRED, f"{response} (retry in {delay}s)")

    def finish(
        self, row: OutboxRow, status: str, response: str, note: str = "", **values: object
    ) -> None:
        """A row's final outcome: its destination is told, the row marked and counted."""
        outcome = throttle.SENT if status == SENT else throttle.OTHER
        self.throttle.answered(row, time.monotonic(), outcome)
        self.settle(row, status, response, note, **values)

    def settle(
        self, row: OutboxRow, status: str, response: str, note: str = "", **values: object
    ) -> None:
        self.mark(row.id, status, last_response=response, **values)
        self.record(row, status, response + note)

    def refill(self) -> bool:
        """The rows ran out: the next lease, if any (one worker asks; the others wait for
        it and then find the rows). -> whether there are rows to take again."""
        if self.more is None:
            return False
        with self.more_lock:
            if not self.throttle.empty():
                return True  # another worker refilled meanwhile
            if self.fatal or self.parent_gone():
                return False
            rows = self.more()
            self.throttle.add(rows)
            return bool(rows)

    def claim(self, row: OutboxRow) -> bool:
        """The row is ours to send now (see claim_row), its lease renewed."""
        batch = self.batch
        return claim_row(batch.store, row.id, row.attempts + 1, batch.lease)

    def mark(self, row_id: int, status: str, **values: object) -> None:
        with self.db_lock:
            mark_row(self.batch.store, row_id, self.batch.lease, status, **values)

    def record(self, row: OutboxRow, outcome: str, response: str) -> None:
        with self.report_lock:
            self.report.count(outcome)
            if outcome != SENT:
                self.report.lines.append(f"{outcome}: {row.email}: {response}")
            if self.progress:
                self.progress(1, len(self.batch.rows))
