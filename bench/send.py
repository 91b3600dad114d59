"""Time `syndicate send` to N subscribers through a local aiosmtpd sink (by hand).

Prints messages per second and peak memory of the real CLI in a subprocess, beside a bare
smtplib loop sending the same pre-built bytes over the same number of connections (the
transport's own limit), and the per-recipient cost of composing a message.

    .venv/bin/python bench/send.py [--subscribers 10000] [--connections 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOW = "2025-09-01T09:00:00Z"
SECRET = "bench-secret-0123456789abcdef"  # noqa: S105 - a bench key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_sink(port: int, counter: multiprocessing.Value) -> None:  # type: ignore[valid-type]
    """A counting sink in its own process, so it never competes for the sender's GIL."""
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            with counter.get_lock():
                counter.value += 1
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    threading.Event().wait()


def make_site(folder: Path, port: int, subscribers: int, connections: int) -> Path:
    config = (
        (ROOT / "config.yaml").read_text().replace("paths: [seeds]", f"paths: [{ROOT / 'seeds'}]")
    )
    config = config.replace("  max_posts: 10\n", "  max_posts: 10\n  first_lookback_days: 400\n")
    config += (
        "delivery:\n  transport: smtp\n"
        f"  smtp: {{host: 127.0.0.1, port: {port}, security: none, connections: {connections}, "
        "rate_per_second: 0, timeout: 30}\n"
    )
    path = folder / "config.yaml"
    path.write_text(config)
    sys.path.insert(0, str(ROOT))
    import sqlalchemy as sa

    from syndicate.config import load_config
    from syndicate.state.schema import subscribers_table
    from syndicate.state.store import Store

    store = Store(load_config(path).state_url)
    now = datetime(2025, 8, 1, tzinfo=UTC).replace(tzinfo=None)
    rows = [
        {"email": f"reader{n}@bench.test", "email_key": f"reader{n}@bench.test",
         "name": f"Reader {n}",
         "status": "active", "created_at": now}
        for n in range(subscribers)
    ]  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(sa.insert(subscribers_table), rows)
    store.close()
    return path


def time_send(config: Path, folder: Path) -> tuple[float, float, str]:
    env = {**os.environ, "SYNDICATE_SECRET": SECRET, "CI": "1"}
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "syndicate", "send", "--config", str(config), "--now", NOW],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    out = (child.stdout.read() if child.stdout else b"").decode()
    if os.waitstatus_to_exitcode(status) != 0:
        err = child.stderr.read().decode() if child.stderr else ""
        raise SystemExit(f"syndicate send failed:\n{out}\n{err}")
    return elapsed, usage.ru_maxrss / 1024, out.strip().splitlines()[-1]


def bare_smtplib(port: int, data: bytes, count: int, connections: int) -> float:
    """The transport's own limit: pre-built bytes, no database, no composing."""
    per = [count // connections + (1 if n < count % connections else 0) for n in range(connections)]

    def worker(n: int) -> None:
        smtp = smtplib.SMTP("127.0.0.1", port)
        for i in range(n):
            smtp.sendmail("news@bench.test", [f"bare{i}@bench.test"], data)
        smtp.quit()

    threads = [threading.Thread(target=worker, args=(n,)) for n in per]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def compose_cost(config: Path, count: int = 5000) -> tuple[float, bytes]:
    from syndicate.config import load_config
    from syndicate.newsletter.compose import MessageTemplate
    from syndicate.newsletter.tokens import sign_token

    html = (
        (ROOT / "tests" / "golden" / "digest" / "preview.html")
        .read_text()
        .replace("preview", "__syndicate_token__")
    )
    text = (
        (ROOT / "tests" / "golden" / "digest" / "preview.txt")
        .read_text()
        .replace("preview", "__syndicate_token__")
    )
    template = MessageTemplate(
        load_config(config), "bench", "Subject", html, text, datetime.now(UTC)
    )
    start = time.perf_counter()
    for n in range(count):
        token = sign_token(SECRET.encode(), n, f"reader{n}@bench.test", "unsubscribe")
        sample = template.render(n, f"reader{n}@bench.test", f"Reader {n}", token).data
    return (time.perf_counter() - start) / count * 1000, sample


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    counter = multiprocessing.Value("i", 0)
    sink = multiprocessing.Process(target=run_sink, args=(port, counter), daemon=True)
    sink.start()
    time.sleep(1.0)
    folder = Path(tempfile.mkdtemp(prefix="syndicate-send-bench-"))
    try:
        config = make_site(folder, port, args.subscribers, args.connections)
        per_message, data = compose_cost(config)
        print(f"composing one message: {per_message:.3f} ms per recipient (5,000 renders)")
        elapsed, rss, summary = time_send(config, folder)
        received = counter.value
        print(
            f"syndicate send: {args.subscribers} subscribers, {args.connections} connections: "
            f"{elapsed:.2f} s, {args.subscribers / elapsed:,.0f} msg/s, peak RSS {rss:.0f} MiB"
            f" ({summary})"
        )
        before = counter.value
        bare = bare_smtplib(port, data, args.subscribers, args.connections)
        print(
            f"bare smtplib loop, same size ({len(data):,} bytes), same connections: {bare:.2f} s, "
            f"{args.subscribers / bare:,.0f} msg/s"
        )
        assert received == args.subscribers, (received, args.subscribers)
        assert counter.value - before == args.subscribers
        print(f"sink received {received:,} + {counter.value - before:,} messages")
    finally:
        sink.kill()
        shutil.rmtree(folder, ignore_errors=True)
    print(
        "bench process peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
