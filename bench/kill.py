"""kill -9 `syndicate send` at random moments and count lost and duplicated messages.

1,000 subscribers, 4 connections, 10 kills by default: each kill lands at a random
moment of a send to a local aiosmtpd sink (run in its own process), the send is
restarted after each kill and finally left to finish. Prints one line per kill and the
totals (expected, delivered, lost, duplicated).

    .venv/bin/python bench/kill.py [--messages 1000] [--kills 10] [--connections 4]
        [--seed N] [--rate 0] [--group]

By default only the `send` pid is killed (what cron, a user or a test sees); its forked
sender finishes the transactions in flight. --group kills the whole process group.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.kill_scenario import format_table, run_scenario  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--rate", type=float, default=0, help="rate_per_second (default 0: unlimited, worst case)"
    )
    parser.add_argument(
        "--group", action="store_true", help="kill the process group (the run and its sender)"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="syndicate-kill-bench-"))
    try:
        outcome = run_scenario(
            folder, args.messages, args.kills, args.connections, args.seed, args.rate, args.group
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(format_table(outcome))
    return 0 if outcome.lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
