"""kill -9 during `syndicate send`, again and again, until the send completes: how many
messages were lost and how many duplicated. Used by tests/test_delivery.py (a small
run) and bench/kill.py (1,000 messages, 10 kills, 4 connections, with a table).

The SMTP sink runs in its own process (aiosmtpd) and appends one line per accepted
message (Message-ID, recipient) to a file; a shared counter tells the killer how far the
send has got. Each kill lands at a random moment: once the sink has accepted a randomly
chosen number of messages, after a further random 0-20 ms (a few message cycles, so the
moment is random within a cycle, not just after a 250).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOW = "2025-09-01T09:00:00Z"
SECRET = "kill-secret-0123456789abcdef"  # noqa: S105 - a test key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_sink(port: int, log: str, counter: Any, ready: Any) -> None:
    """An aiosmtpd server that logs `Message-ID<TAB>recipient` per accepted message."""
    from aiosmtpd.controller import Controller

    out = Path(log).open("a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives with the process

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
            head = envelope.original_content.split(b"\r\n\r\n", 1)[0]
            message_id = next(
                (
                    line.split(b":", 1)[1].strip().decode()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"message-id:")
                ),
                "-",
            )
            for rcpt in envelope.rcpt_tos:
                out.write(f"{message_id}\t{rcpt}\t{time.time()}\n")
            with counter.get_lock():
                counter.value += 1
            return "250 2.0.0 Message accepted"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    threading.Event().wait()


def make_site(folder: Path, port: int, messages: int, connections: int, rate: float) -> Path:
    """The sample blog's config with `messages` active subscribers, SMTP to the sink."""
    sys.path.insert(0, str(ROOT))
    import sqlalchemy as sa

    from syndicate.config import load_config
    from syndicate.state.schema import subscribers_table
    from syndicate.state.store import Store

    config = (
        (ROOT / "config.yaml").read_text().replace("paths: [seeds]", f"paths: [{ROOT / 'seeds'}]")
    )
    config = config.replace("  max_posts: 10\n", "  max_posts: 10\n  first_lookback_days: 400\n")
    config += (
        "delivery:\n  transport: smtp\n"
        f"  smtp: {{host: 127.0.0.1, port: {port}, security: none, "
        f"connections: {connections}, rate_per_second: {rate}, timeout: 30}}\n"
    )
    path = folder / "config.yaml"
    path.write_text(config)
    store = Store(load_config(path).state_url)
    created = datetime(2025, 8, 1, tzinfo=UTC).replace(tzinfo=None)
    rows = [
        {"email": f"r{n:05d}@kill.test", "email_key": f"r{n:05d}@kill.test", "name": "",
         "status": "active", "created_at": created}
        for n in range(messages)
    ]  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(sa.insert(subscribers_table), rows)
    store.close()
    return path


@dataclass
class Kill:
    after: int  # messages the sink had accepted when the kill was decided
    elapsed: float  # seconds since that run started
    in_doubt: int  # rows left `sending`
    duplicates: int  # duplicates caused by this kill (seen once the rest was sent)
    killed_at: float = 0.0  # wall-clock time of the SIGKILL


@dataclass
class Outcome:
    expected: int
    delivered: int  # distinct recipients that got it
    received: int  # messages the sink accepted
    lost: int
    duplicated: int
    same_message_id: bool  # every duplicate carried the Message-ID of its first copy
    kills: list[Kill]
    runs: int


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc (Linux)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def wait_for_group_gone(pgid: int, timeout: float = 60) -> None:
    """Until every process of the group has exited (an orphaned sender finishing included)."""
    deadline = time.monotonic() + timeout
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not group_members(pgid), f"process group {pgid} still running after {timeout}s"


def read_log(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [
        (line.split("\t")[0], line.split("\t")[1])
        for line in log.read_text().splitlines()
        if line.count("\t") == 2
    ]


def run_scenario(
    folder: Path,
    messages: int = 1000,
    kills: int = 10,
    connections: int = 4,
    seed: int | None = None,
    rate: float = 0,
    group: bool = False,
) -> Outcome:
    """Send to `messages` subscribers, kill -9 `syndicate send` `kills` times at random
    moments, restart it at once each time, then let it finish. `rate`:
    delivery.smtp.rate_per_second (0 = as fast as the sink takes them, the worst case for
    duplicates). `group`: kill the whole process group (the run and its forked sender),
    else only the pid that was started (what cron or a user sees)."""
    rng = random.Random(seed)  # noqa: S311 - kill moments, not secrets
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / "sink.log"
    context = multiprocessing.get_context("spawn")
    counter = context.Value("i", 0)
    ready = context.Event()
    sink = context.Process(target=run_sink, args=(port, str(log), counter, ready), daemon=True)
    sink.start()
    try:
        assert ready.wait(30), "the SMTP sink did not start"
        config = make_site(folder, port, messages, connections, rate)
        # Kill points spread over the send: the n-th kill somewhere in the n-th slice.
        span = (messages - messages // 10) // kills
        targets = [n * span + rng.randrange(1, span) for n in range(kills)]
        env = {**os.environ, "SYNDICATE_SECRET": SECRET, "CI": "1"}
        args = [sys.executable, "-m", "syndicate", "send", "--config", str(config), "--now", NOW]
        done: list[Kill] = []
        runs = 0
        for target in targets:
            target = max(target, counter.value + rng.randrange(1, 2 * connections + 2))
            runs += 1
            started = time.monotonic()
            victim = subprocess.Popen(
                args,
                cwd=folder,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            while counter.value < target and victim.poll() is None:
                time.sleep(0.0005)
            time.sleep(rng.uniform(0, 0.02))
            before = len(read_log(log))
            killed_at = time.time()
            if group:
                os.killpg(victim.pid, signal.SIGKILL)
            else:
                victim.send_signal(signal.SIGKILL)
            victim.wait()
            if group:
                wait_for_group_gone(victim.pid)
            # Rows `sending` just after the kill; after a kill of the run alone, its sender
            # may still be finishing them (and the next run, started now, waits for it).
            with sqlite3.connect(folder / "state" / "syndicate.db") as db:
                (in_doubt,) = db.execute(
                    "select count(*) from outbox where status = 'sending'"
                ).fetchone()
            done.append(Kill(before, time.monotonic() - started, in_doubt, 0, killed_at))
        runs += 1
        final = subprocess.run(args, cwd=folder, env=env, capture_output=True, timeout=600)
        assert final.returncode == 0, final.stderr.decode()
        time.sleep(0.2)
        received = read_log(log)
    finally:
        sink.kill()
        sink.join()
    counts = Counter(rcpt for _, rcpt in received)
    first_id: dict[str, str] = {}
    same = True
    for message_id, rcpt in received:
        same = same and first_id.setdefault(rcpt, message_id) == message_id
    # Attribute each duplicate to the kill whose in-doubt window it fell in: the first
    # accepted copy's position in the log tells which run sent it.
    position = {rcpt: index for index, (_, rcpt) in reversed(list(enumerate(received)))}
    for rcpt, count in counts.items():
        if count > 1:
            index = position[rcpt]
            owner = next((k for k in done if index < k.after + connections), None)
            if owner is not None:
                owner.duplicates += count - 1
    expected = messages
    return Outcome(
        expected=expected,
        delivered=len(counts),
        received=len(received),
        lost=expected - len(counts),
        duplicated=len(received) - len(counts),
        same_message_id=same,
        kills=done,
        runs=runs,
    )


def format_table(outcome: Outcome) -> str:
    lines = ["kill  accepted-before  after-s  in-doubt  duplicates"]
    for n, kill in enumerate(outcome.kills, 1):
        lines.append(
            f"{n:>4}  {kill.after:>15}  {kill.elapsed:>7.3f}  {kill.in_doubt:>8}  {kill.duplicates:>10}"
        )
    lines.append(
        f"expected {outcome.expected}, delivered {outcome.delivered}, lost {outcome.lost}, "
        f"duplicated {outcome.duplicated} (sink accepted {outcome.received}; {outcome.runs} runs; "
        f"duplicates with the same Message-ID: {'yes' if outcome.same_message_id else 'NO'})"
    )
    return "\n".join(lines)
