"""Several `syndicate send` processes sharing one PostgreSQL outbox (by hand, issue #13).

Each sender runs in a working directory of its own (its own config.yaml, posts, output and
outbox folders; nothing shared but the database URL and the secret), as separate hosts
would. The receiving side is several aiosmtpd sink processes (sender k talks to sink
k mod SINKS), so it is not the bottleneck. Prints wall time and messages per second for
1, 2 and 4 senders, the speed-up over one, and the per-recipient database cost of a
lease + claim + mark as the outbox grows from 10,000 to 1,000,000 rows.

    .venv/bin/python bench/cooperate.py [--recipients 20000] [--senders 1 2 4]
        [--latency 0.0] [--url postgresql+psycopg://...]   # default: a throw-away server

`--latency S` makes each sink take S seconds per message before its 250, as a remote
server does; with 0 the senders are CPU-bound, and on a machine with fewer cores than
senders they cannot scale (the figures say so).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NOW = "2025-09-01T09:00:00Z"
SECRET = "bench-secret-0123456789abcdef"  # noqa: S105 - a bench key
DOMAINS = ("alpha.example", "beta.example", "gamma.example", "delta.example")
SINKS = 4

from bench.send import free_port  # noqa: E402 - after the sys.path line

CONFIG = """\
site:
  title: "Bench"
  url: "https://bench.syndicate.test/"
  description: "Cooperating senders"
  timezone: "UTC"
content:
  paths: [posts]
output:
  dir: public
state:
  url: "{url}"
newsletter:
  from: "Bench <news@bench.syndicate.test>"
  first_lookback_days: 30
schedule:
  newsletter: null  # the digest is sent by `send`, timed
delivery:
  transport: smtp
  smtp: {{host: 127.0.0.1, port: {port}, security: none, helo: {name}.bench.test,
         connections: 4, rate_per_second: 0, timeout: 30}}
"""


def run_sink(port: int, latency: float, counter: multiprocessing.Value) -> None:  # type: ignore[valid-type]
    import asyncio

    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            if latency:
                await asyncio.sleep(latency)
            with counter.get_lock():
                counter.value += 1
            return "250 OK"

    Controller(Handler(), hostname="127.0.0.1", port=port).start()
    threading.Event().wait()


def create_database(base: str) -> str:
    import sqlalchemy as sa

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name


def make_host(root: Path, name: str, url: str, port: int) -> Path:
    folder = root / name
    (folder / "posts").mkdir(parents=True)
    (folder / "posts" / "news.md").write_text(
        "---\ntitle: News\ndate: 2025-08-30\n---\n\nSomething new to announce.\n", "utf-8"
    )
    (folder / "config.yaml").write_text(CONFIG.format(url=url, port=port, name=name), "utf-8")
    return folder


def syndicate(folder: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "syndicate", *args, "--now", NOW],
        cwd=folder,
        env={**os.environ, "SYNDICATE_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def add_subscribers(url: str, count: int) -> None:
    import sqlalchemy as sa

    from syndicate.state.schema import subscribers_table

    created = datetime(2025, 8, 1, tzinfo=UTC)
    engine = sa.create_engine(url)
    rows = [
        {"email": a, "email_key": a, "name": "", "status": "active", "created_at": created}
        for a in (f"r{n:06d}@{DOMAINS[n % len(DOMAINS)]}" for n in range(count))
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(subscribers_table), rows)
    engine.dispose()


def one_round(base: str, senders: int, recipients: int, ports: list[int], work: Path) -> float:
    """Wall time for `senders` processes to deliver one digest to `recipients`."""
    url = create_database(base)
    hosts = [
        make_host(work, f"s{senders}-h{n}", url, ports[n % len(ports)]) for n in range(senders)
    ]
    prepare = syndicate(hosts[0], "status")  # creates the schema
    if prepare.wait() != 0:
        raise SystemExit(prepare.stderr.read().decode() if prepare.stderr else "status failed")
    add_subscribers(url, recipients)
    # The digest is queued once, by the first host to get the run lock; then all share it.
    first = syndicate(hosts[0], "run", "--once")  # publish only (no newsletter slot)
    first.wait()
    start = time.perf_counter()
    procs = [syndicate(folder, "send", "--lock-timeout", "300") for folder in hosts]
    codes = [proc.wait() for proc in procs]
    elapsed = time.perf_counter() - start
    if any(codes):
        errors = [p.stderr.read().decode() if p.stderr else "" for p in procs]
        raise SystemExit(f"a sender failed: {codes} {errors}")
    return elapsed


def claim_cost(base: str, total: int, sample: int = 2000) -> float:
    """ms per recipient to lease, claim and mark one row, with `total` rows in the outbox
    (all but `sample` of them already sent, as in a long-lived list)."""
    import sqlalchemy as sa

    from syndicate.state.outbox import Lease, claim_row, lease_rows, mark_row
    from syndicate.state.schema import (
        bodies_table,
        digests_table,
        outbox_table,
        subscribers_table,
    )
    from syndicate.state.store import Store

    url = create_database(base)
    store = Store(url)
    now = datetime(2025, 9, 1, tzinfo=UTC)
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(digests_table).values(
                id=1, key="d", posts_hash="h", created_at=now, since=now, until=now,
                subject="s", status="queued",
            )
        )  # fmt: skip
        conn.execute(
            sa.insert(bodies_table).values(
                id=1, digest_id=1, variant="v", subject="s", html="h", text="t"
            )
        )
    step = 50_000
    for start in range(0, total, step):
        count = min(step, total - start)
        with store.engine.begin() as conn:
            conn.execute(
                sa.insert(subscribers_table),
                [
                    {"id": n + 1, "email": f"r{n}@x.example", "email_key": f"r{n}@x.example",
                     "name": "", "status": "active", "created_at": now}
                    for n in range(start, start + count)
                ],
            )  # fmt: skip
            conn.execute(
                sa.insert(outbox_table),
                [
                    {"digest_id": 1, "subscriber_id": n + 1, "body_id": 1,
                     "email": f"r{n}@x.example", "domain": "x.example", "name": "",
                     "status": "queued" if n >= total - sample else "sent", "attempts": 0}
                    for n in range(start, start + count)
                ],
            )  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(sa.text("ANALYZE outbox"))
    lease = Lease("bench", 300, True)
    done = 0
    start_time = time.perf_counter()
    while rows := lease_rows(store, lease, now, 200):
        for row in rows:
            claim_row(store, row.id, 1, lease)
            mark_row(store, row.id, lease, "sent", sent_at=now + timedelta(seconds=1))
            done += 1
    elapsed = time.perf_counter() - start_time
    store.close()
    assert done == sample, (done, sample)
    return elapsed / done * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--url", help="a PostgreSQL server URL (default: a throw-away one)")
    parser.add_argument("--no-claim-cost", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="syndicate-cooperate-"))
    pgdir = work / "pg"
    base = args.url
    if base is None:
        base = subprocess.run(
            [str(ROOT / "tests" / "postgres.sh"), "start", str(pgdir)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    counters = [multiprocessing.Value("i", 0) for _ in range(SINKS)]
    ports = [free_port() for _ in range(SINKS)]
    sinks = [
        multiprocessing.Process(target=run_sink, args=(port, args.latency, counter), daemon=True)
        for port, counter in zip(ports, counters, strict=True)
    ]
    for sink in sinks:
        sink.start()
    time.sleep(1.0)
    try:
        latency = f"{args.latency * 1000:.0f} ms"
        print(f"{args.recipients:,} recipients, {SINKS} sinks, latency {latency}, "
              f"{os.cpu_count()} cores")  # fmt: skip
        times: dict[int, float] = {}
        for senders in args.senders:
            before = sum(c.value for c in counters)
            times[senders] = one_round(base, senders, args.recipients, ports, work)
            received = sum(c.value for c in counters) - before
            assert received == args.recipients, (received, args.recipients)
            rate = args.recipients / times[senders]
            speedup = times[args.senders[0]] / times[senders]
            print(f"  {senders} sender(s): {times[senders]:6.2f} s  {rate:7,.0f} msg/s  "
                  f"x{speedup:.2f} of {args.senders[0]}")  # fmt: skip
        if not args.no_claim_cost:
            for total in (10_000, 1_000_000):
                costs = [claim_cost(base, total) for _ in range(3)]
                print(f"  lease+claim+mark per recipient, outbox of {total:>9,} rows: "
                      f"{statistics.median(costs):.3f} ms (median of 3)")  # fmt: skip
    finally:
        for sink in sinks:
            sink.kill()
        if args.url is None:
            subprocess.run([str(ROOT / "tests" / "postgres.sh"), "stop", str(pgdir)], check=False)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
