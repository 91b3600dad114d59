"""Per-destination throttling (syndicate/delivery/throttle.py), on an injected clock: MX
groups, the limits of each lane, back-off with jitter on a throttle answer, recovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from syndicate.config import DomainLimit, DomainLimits, parse_config
from syndicate.delivery.throttle import (
    OTHER,
    SENT,
    THROTTLED,
    Backoff,
    Pick,
    Throttle,
    is_throttle_answer,
)
from syndicate.newsletter.subscribers import recipient_domain
from syndicate.state.outbox import OutboxRow

GOOGLE = DomainLimit("google", ("gmail.com", "googlemail.com"), connections=2, rate_per_second=5)
LIMITS = DomainLimits(DomainLimit("default", (), connections=3, rate_per_second=0), (GOOGLE,))
SLOW_421 = "421 4.7.0 Try again later"


def rows(*addresses: str) -> list[OutboxRow]:
    return [
        OutboxRow(n, 1, "d", n, address, "", "queued", 0, 1)
        for n, address in enumerate(addresses, 1)
    ]


def throttle(
    *addresses: str, limits: DomainLimits = LIMITS, jitter: float = 1.0, **backoff: float
) -> Throttle:
    settings = Backoff(**{"pause_seconds": 10, "wait_limit": 5, **backoff})  # type: ignore[arg-type]
    return Throttle(rows(*addresses), limits, settings, connections=4, jitter=lambda: jitter)


def sent_row(pick: Pick) -> OutboxRow:
    assert pick.row is not None, pick
    return pick.row


@pytest.mark.parametrize(
    ("answer", "throttled"),
    [
        ("421 4.7.0 rate limited", True),
        ("451 4.7.1 Try later", True),
        ("450 4.7.28 Our system has detected an unusual rate", True),
        ("421 Service not available", True),
        ("452-4.7.1 too many", True),
        ("451 4.3.0 Mailbox busy, try again later", False),
        ("450 4.2.1 Mailbox full", False),
        ("550 5.7.1 Rejected by policy", False),
        ("connection lost: Connection unexpectedly closed", False),
        ("", False),
    ],
)
def test_a_421_or_a_4_7_x_answer_is_a_throttle_answer(answer: str, throttled: bool) -> None:
    assert is_throttle_answer(answer) is throttled


def test_the_domain_of_a_recipient_is_compared_in_lower_case_and_a_labels() -> None:
    assert recipient_domain("Ada@GMail.COM") == "gmail.com"
    assert recipient_domain("ada@exämple.org") == "xn--exmple-cua.org"


def test_a_group_shares_one_lane_and_other_domains_get_one_each() -> None:
    t = throttle("a@gmail.com", "b@googlemail.com", "c@example.org", "d@example.net")
    assert sorted(t.lanes) == ["example.net", "example.org", "google"]
    assert [r.email for r in t.state("google").rows] == ["a@gmail.com", "b@googlemail.com"]
    assert t.state("example.org").limit.name == "default"


def test_lanes_are_served_round_robin_and_each_row_exactly_once() -> None:
    t = throttle("a1@a.org", "a2@a.org", "a3@a.org", "b1@b.org")
    taken = []
    while not (pick := t.take(0.0)).done:
        row = sent_row(pick)
        taken.append(row.email)
        t.answered(row, 0.0, SENT)
    assert taken == ["a1@a.org", "b1@b.org", "a2@a.org", "a3@a.org"]


def test_a_lane_never_has_more_transactions_in_flight_than_its_connections() -> None:
    t = throttle(*(f"r{n}@gmail.com" for n in range(5)), limits=DomainLimits(named=(GOOGLE,)))
    first, second = sent_row(t.take(0.0)), sent_row(t.take(1.0))
    waiting = t.take(2.0)
    assert waiting.row is None and waiting.wait > 0  # both connections busy
    t.answered(first, 2.0, SENT)
    assert t.take(2.0).row is not None
    assert second.email == "r1@gmail.com"


def test_a_lane_keeps_its_rate() -> None:
    t = throttle("a@gmail.com", "b@gmail.com", "c@gmail.com")
    assert sent_row(t.take(0.0)).email == "a@gmail.com"
    assert t.take(0.1).wait == pytest.approx(0.1)  # 5 a second: one every 0.2 s
    assert sent_row(t.take(0.2)).email == "b@gmail.com"


def test_a_throttle_answer_pauses_that_lane_only_and_halves_it() -> None:
    t = throttle("a@gmail.com", "b@gmail.com", "c@example.org", "d@example.org")
    throttled = sent_row(t.take(0.0))
    assert throttled.email == "a@gmail.com"
    assert t.answered(throttled, 0.0, THROTTLED, SLOW_421) == 10.0
    google = t.state("google")
    assert google.level == 1 and google.connections(4) == 1
    assert google.interval(t.backoff, 0) == pytest.approx(0.4)  # 5/s halved
    # example.org goes on at full speed; gmail waits for its pause
    assert [sent_row(t.take(0.0)).email, sent_row(t.take(0.0)).email] == [
        "c@example.org",
        "d@example.org",
    ]
    assert t.take(5.0).wait == pytest.approx(5.0)  # within wait_limit: wait for it
    assert sent_row(t.take(10.0)).email == "b@gmail.com"


def test_back_off_doubles_up_to_its_cap_with_jitter() -> None:
    t = throttle(*(f"r{n}@gmail.com" for n in range(6)), jitter=0.0, max_pause_seconds=25)
    now, pauses = 0.0, []
    for _ in range(4):
        row = sent_row(t.take(now))
        pauses.append(t.answered(row, now, THROTTLED, SLOW_421))
        now += pauses[-1]
    assert pauses == [5.0, 10.0, 12.5, 12.5]  # 10, 20, 40 capped at 25; jitter 0 halves
    assert t.state("google").level == 4


def test_answers_to_messages_sent_before_the_pause_do_not_escalate_it() -> None:
    t = throttle("a@gmail.com", "b@gmail.com", "c@gmail.com")
    a, b = sent_row(t.take(0.0)), sent_row(t.take(0.2))
    assert t.answered(a, 0.3, THROTTLED, SLOW_421) == 10.0
    assert t.answered(b, 0.4, THROTTLED, SLOW_421) == pytest.approx(9.9)
    assert t.state("google").level == 1


def test_rows_of_a_lane_paused_longer_than_a_run_waits_are_held_once_nothing_else_is_left() -> None:
    t = throttle("a@gmail.com", "b@gmail.com", "c@googlemail.com", "d@example.org")
    t.answered(sent_row(t.take(0.0)), 0.0, THROTTLED, SLOW_421)
    other = sent_row(t.take(0.0))
    assert other.email == "d@example.org"
    held = t.take(1.0).held
    assert [(h.row.email, h.lane, h.pause, h.answer) for h in held] == [
        ("b@gmail.com", "google", 9.0, SLOW_421),
        ("c@googlemail.com", "google", 9.0, SLOW_421),
    ]
    t.answered(other, 1.0, SENT)
    assert t.take(1.0).done  # every row handed out exactly once


def test_while_another_lane_still_sends_a_paused_lane_waits_instead_of_being_held() -> None:
    limits = DomainLimits(DomainLimit("default", (), rate_per_second=1), (GOOGLE,))
    t = throttle("a@gmail.com", "b@gmail.com", "c@x.org", "d@x.org", limits=limits)
    t.answered(sent_row(t.take(0.0)), 0.0, THROTTLED, SLOW_421)
    assert sent_row(t.take(0.0)).email == "c@x.org"
    assert t.take(0.5).wait == pytest.approx(0.5)  # x.org's next slot; gmail not held
    assert sent_row(t.take(1.0)).email == "d@x.org"


def test_after_enough_successes_the_lane_climbs_back_to_its_configured_rate() -> None:
    t = throttle(*(f"r{n}@gmail.com" for n in range(30)), recover_after=3)
    now = 0.0
    t.answered(sent_row(t.take(now)), now, THROTTLED, SLOW_421)
    t.answered(sent_row(t.take(now := 10.0)), now, THROTTLED, SLOW_421)
    google = t.state("google")
    assert google.level == 2 and google.interval(t.backoff, 0) == pytest.approx(0.8)
    levels = []
    now = 30.0
    for _ in range(6):
        row = sent_row(t.take(now))
        t.answered(row, now, SENT)
        levels.append(google.level)
        now += 1.0
    assert levels == [2, 2, 1, 1, 1, 0]
    assert google.interval(t.backoff, 0) == pytest.approx(0.2) and google.connections(4) == 2


def test_other_outcomes_neither_slow_down_nor_recover_a_lane() -> None:
    t = throttle("a@gmail.com", "b@gmail.com")
    assert t.answered(sent_row(t.take(0.0)), 0.0, OTHER, "451 4.3.0 busy") == 0.0
    assert t.state("google").level == 0
    assert t.take(0.2).row is not None


def test_a_lane_without_a_rate_of_its_own_halves_from_the_overall_rate() -> None:
    t = Throttle(rows("a@x.org", "b@x.org"), DomainLimits(), Backoff(), connections=4, rate=8)
    t.answered(sent_row(t.take(0.0)), 0.0, THROTTLED, SLOW_421)
    assert t.state("x.org").interval(t.backoff, 8) == pytest.approx(0.25)  # 8/s halved
    assert t.state("x.org").connections(4) == 2


def test_the_limits_come_from_delivery_domains(tmp_path: Path) -> None:
    config = parse_config(
        "site: {title: T, url: 'https://x.test'}\n"
        "delivery:\n  domains:\n    default: {connections: 3}\n"
        "    google: {domains: [gmail.com, GoogleMail.com.], rate_per_second: 5}\n"
        "    Yahoo.com: {rate_per_second: 2}\n",
        tmp_path / "config.yaml",
    )
    domains = config.delivery.domains
    assert domains.destination("googlemail.com") == (
        "google",
        DomainLimit("google", ("gmail.com", "googlemail.com"), 0, 5.0),
    )
    assert domains.destination("yahoo.com")[1].rate_per_second == 2.0
    assert domains.destination("example.org") == (
        "example.org",
        DomainLimit("default", (), 3, 0.0),
    )


@pytest.mark.parametrize("seed", range(20))
def test_every_row_is_handed_out_exactly_once_whatever_the_answers(seed: int) -> None:
    """Random answers (a third of them throttle answers) on a random clock, over three
    lanes with different limits: each row is sent or held exactly once, and no lane ever
    has more transactions in flight than its (current) connections."""
    import random

    rng = random.Random(seed)  # noqa: S311 - a reproducible series, not a secret
    addresses = [
        f"r{n}@{rng.choice(['gmail.com', 'googlemail.com', 'a.org', 'b.net'])}" for n in range(60)
    ]
    t = throttle(*addresses, jitter=rng.random(), pause_seconds=rng.choice([0.5, 3, 30]))
    now, in_flight, seen = 0.0, [], []
    while True:
        pick = t.take(now)
        if pick.done and not in_flight:
            break
        if pick.row is not None:
            lane = t.state(t.lane_name(pick.row))
            assert lane.in_flight <= lane.connections(4)
            in_flight.append(pick.row)
            seen.append(pick.row.id)
        seen.extend(h.row.id for h in pick.held)
        if in_flight and (pick.row is None or rng.random() < 0.5):
            row = in_flight.pop(rng.randrange(len(in_flight)))
            outcome = rng.choice([SENT, SENT, THROTTLED, OTHER])
            t.answered(row, now, outcome, SLOW_421)
        now += rng.choice([0.0, 0.1, 1.0, pick.wait])
    assert sorted(seen) == list(range(1, 61))
