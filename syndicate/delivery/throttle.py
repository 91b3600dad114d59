"""Per-destination throttling: which outbox row may go now, under `delivery.domains`.

A destination is a recipient domain, or a group of domains that share one provider's
limits (`delivery.domains`: e.g. gmail.com and googlemail.com as `google`). Each has a
lane: its rows in order, its transactions in flight, its next send slot. A `421` or a
`4.7.x` answer for one of its rows slows that lane only (AIMD, as MTAs do it): the lane
pauses (exponential back-off with jitter), its rate halves and its connections halve;
after `recover_after` messages accepted in a row it climbs back one level. Rows of a
lane that is still paused when nothing else is left to send are handed back (`held`) for
the caller to defer to the pause's end, so a run never sits out a long pause.

Pure and thread-safe: the caller gives the clock (seconds, monotonic) and the jitter.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from syndicate.config import DomainLimit, DomainLimits
from syndicate.newsletter.subscribers import recipient_domain
from syndicate.state.outbox import OutboxRow

SENT = "sent"
THROTTLED = "throttled"
OTHER = "other"  # any other outcome: neither speeds up nor slows down the lane

MAX_LEVEL = 10  # at most 2^10 slower than configured
POLL_SECONDS = 0.05  # how soon to ask again when a lane is waiting for a connection

# "421 ...", or an enhanced status code 4.7.x ("451 4.7.1 try later": RFC 3463's class
# 7 is security or policy, which is where providers put their rate limits).
_ANSWER = re.compile(r"(\d{3})(?:[ -]+(\d)\.(\d{1,3})\.(\d{1,3})\b)?")


def is_throttle_answer(response: str) -> bool:
    """Does this server answer ask us to slow down (421, or a 4.7.x enhanced code)?"""
    match = _ANSWER.match(response.strip())
    if match is None:
        return False
    code, klass, subject, _ = match.groups()
    return code == "421" or (klass == "4" and subject == "7")


@dataclass(frozen=True, slots=True)
class Backoff:
    """How a lane slows down and recovers."""

    pause_seconds: float = 30.0  # the first pause; doubled at each further level
    max_pause_seconds: float = 3600.0
    recover_after: int = 10  # messages accepted in a row before the lane climbs a level
    wait_limit: float = 10.0  # a run waits for a pause this short rather than hold rows
    base_rate: float = 10.0  # what a lane with no rate of its own halves from


@dataclass(frozen=True, slots=True)
class Held:
    """A row not tried because its lane is paused: defer it for `pause` seconds."""

    row: OutboxRow
    lane: str
    pause: float
    answer: str  # the server's answer that paused the lane


@dataclass(frozen=True, slots=True)
class Pick:
    """What a worker does next: send `row`; or defer `held`; or ask again after `wait`
    seconds; or stop (`done`): every row has been handed out."""

    row: OutboxRow | None = None
    held: tuple[Held, ...] = ()
    wait: float = 0.0
    done: bool = False


@dataclass
class Lane:
    """One destination's rows and state."""

    name: str
    limit: DomainLimit
    rows: deque[OutboxRow] = field(default_factory=deque)
    level: int = 0  # 0: as configured; each throttle answer adds one
    paused_until: float = float("-inf")
    next_slot: float = float("-inf")
    in_flight: int = 0
    streak: int = 0  # messages accepted since the level last changed
    answer: str = ""  # the last throttle answer

    def connections(self, overall: int) -> int:
        own = self.limit.connections or overall
        return max(1, min(own, overall) >> self.level)

    def interval(self, backoff: Backoff, overall_rate: float) -> float:
        """Seconds between two sends (0: no rate of its own)."""
        rate = self.limit.rate_per_second
        if self.level == 0:
            return 1.0 / rate if rate else 0.0
        start = rate or overall_rate or backoff.base_rate
        return float(2**self.level) / start


class Throttle:
    """The rows of one delivery run, by lane; `take` hands each out exactly once."""

    def __init__(
        self,
        rows: Iterable[OutboxRow],
        limits: DomainLimits,
        backoff: Backoff,
        connections: int,
        rate: float = 0.0,
        jitter: Callable[[], float] = lambda: 1.0,
    ) -> None:
        """`connections` and `rate`: the overall limits; `jitter()`: a number in [0, 1)
        (random.random), scaling each pause to 50-100 % of its nominal length."""
        self.limits = limits
        self.backoff = backoff
        self.overall = connections
        self.rate = rate
        self.jitter = jitter
        self.lock = threading.Lock()
        self.lanes: dict[str, Lane] = {}
        # lanes with rows left, the one served longest ago first
        self.order: deque[str] = deque()
        self.add(rows)

    def add(self, rows: Iterable[OutboxRow]) -> None:
        """More rows (the next lease): into their lanes, which keep their pauses and
        levels; a lane that had run out joins the round again."""
        with self.lock:
            for row in rows:
                name, limit = self.limits.destination(recipient_domain(row.email))
                self.lanes.setdefault(name, Lane(name, limit)).rows.append(row)
                if name not in self.order:
                    self.order.append(name)

    def empty(self) -> bool:
        """No row left to hand out (some may still be in flight)."""
        with self.lock:
            return not self.order

    def take(self, now: float) -> Pick:
        """The next row that may go at `now`, round robin over the lanes."""
        with self.lock:
            if not self.order:
                return Pick(done=True)
            ready_at = float("inf")
            for _ in range(len(self.order)):
                lane = self.lanes[self.order[0]]
                self.order.rotate(-1)
                if lane.in_flight >= lane.connections(self.overall):
                    ready_at = min(ready_at, now + POLL_SECONDS)
                    continue
                start = max(lane.paused_until, lane.next_slot)
                if start <= now:
                    return Pick(self._hand_out(lane, now))
                ready_at = min(ready_at, start)
            return self._nothing_ready(now, ready_at)

    def _hand_out(self, lane: Lane, now: float) -> OutboxRow:
        row = lane.rows.popleft()
        if not lane.rows:
            self.order.remove(lane.name)
        lane.in_flight += 1
        lane.next_slot = max(lane.next_slot, now) + lane.interval(self.backoff, self.rate)
        return row

    def _nothing_ready(self, now: float, ready_at: float) -> Pick:
        """Wait for the first lane to be ready, unless every lane left is paused for
        longer than the run waits: then hand their rows back, to be deferred."""
        lanes = [self.lanes[name] for name in self.order]
        if all(lane.paused_until > now + self.backoff.wait_limit for lane in lanes):
            held = tuple(
                Held(row, lane.name, lane.paused_until - now, lane.answer)
                for lane in lanes
                for row in lane.rows
            )
            for lane in lanes:
                lane.rows.clear()
            self.order.clear()
            return Pick(held=held)
        return Pick(wait=max(ready_at - now, 0.0))

    def answered(self, row: OutboxRow, now: float, outcome: str, answer: str = "") -> float:
        """The outcome of a row `take` handed out (SENT, THROTTLED or OTHER).
        -> for how many more seconds its lane is paused (0 when it is not)."""
        with self.lock:
            lane = self.lanes[self.lane_name(row)]
            lane.in_flight -= 1
            if outcome == THROTTLED:
                self._slow_down(lane, now, answer)
            elif outcome == SENT and lane.level:
                lane.streak += 1
                if lane.streak >= self.backoff.recover_after:
                    lane.level -= 1
                    lane.streak = 0
            return max(lane.paused_until - now, 0.0)

    def _slow_down(self, lane: Lane, now: float, answer: str) -> None:
        lane.streak = 0
        lane.answer = answer
        if lane.paused_until > now:
            return  # an answer to a message sent before the pause: already counted
        lane.level = min(lane.level + 1, MAX_LEVEL)
        nominal = self.backoff.pause_seconds * 2 ** (lane.level - 1)
        pause = min(nominal, self.backoff.max_pause_seconds) * (0.5 + 0.5 * self.jitter())
        lane.paused_until = now + pause
        lane.next_slot = max(lane.next_slot, lane.paused_until)

    def lane_name(self, row: OutboxRow) -> str:
        """The destination a row goes to: its domain's group, else the domain."""
        return self.limits.destination(recipient_domain(row.email))[0]

    def state(self, lane: str) -> Lane:
        """A lane's state (for tests and the report)."""
        return self.lanes[lane]
