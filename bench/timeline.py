#!/usr/bin/env python3
"""How busy the machine's cores are, every 0.1 s, during one cold `run --once` (by hand).

    python bench/timeline.py [--posts 10000] [--seed 1] [--profile tag-rich] [--runs 1]
                             [--code snapshot|live|REF]

On a machine where every phase keeps both cores busy, the wall time is the CPU time
divided by the cores, plus the moments when a core waits: the start-up before the
workers are forked, a tail of work one worker still has, the end of the run. Wall
times here move by ±5% between runs (shared cores), so a change that fills an idle
moment is easier to see in this timeline than in `compare.py`'s medians.

One line per second, one character per 0.1 s, from /proc/stat (the whole machine):
`' '` idle, `.` under 3/8 busy, `-` about half (one core of two), `=` about 3/4,
`#` all cores. Then the idle core-seconds in all. Uses the corpus and the code snapshot
as compare.py does (bench/.corpus/PROFILE-N, generated if missing).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import CONFIG, NOW, syndicate_cmd
from harness import CODE_ENV, corpus_for, prepare_code

STEP = 0.1  # seconds a character stands for


def busy_since(last: tuple[int, int]) -> tuple[float, tuple[int, int]]:
    """(share of the machine's CPU time that was busy since `last`, the new reading)."""
    with Path("/proc/stat").open(encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    now = (sum(values), values[3] + values[4])  # all, idle + iowait
    total, idle = now[0] - last[0], now[1] - last[1]
    return (1 - idle / total if total else 0.0), now


def mark(share: float) -> str:
    return " .-=#"[min(4, int(share * 4 + 0.5))]


def timeline(folder: Path) -> tuple[float, str, float]:
    """Run one cold `run --once` in `folder`; -> (wall s, marks, idle core-seconds)."""
    cmd = [*syndicate_cmd(), "run", "--once", "--config", "config.yaml", "--now", NOW]
    cores = os.cpu_count() or 1
    _, last = busy_since((0, 0))
    started = time.perf_counter()
    child = subprocess.Popen(
        cmd,
        cwd=folder,
        env={**os.environ, **CODE_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marks, idle = [], 0.0
    while child.poll() is None:
        time.sleep(STEP)
        share, last = busy_since(last)
        marks.append(mark(share))
        idle += (1 - share) * STEP * cores
    wall = time.perf_counter() - started
    if child.returncode not in (0, 1):
        raise SystemExit(f"bench: run --once exited {child.returncode}")
    return wall, "".join(marks), idle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", default="tag-rich", choices=["tag-rich", "classic"])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--code", default="snapshot")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="syndicate-timeline-") as scratch_name:
        scratch = Path(scratch_name)
        corpus, how = corpus_for(args.posts, args.seed, args.profile, True, scratch)
        _, what = prepare_code(args.code, scratch)
        print(f"{args.posts} {args.profile} posts ({how}); code: {what}")
        for number in range(args.runs):
            folder = scratch / f"site-{number}"
            folder.mkdir()
            config = CONFIG.format(content=corpus, formats="rss, atom, json")
            (folder / "config.yaml").write_text(config, encoding="utf-8")
            wall, marks, idle = timeline(folder)
            print(f"\nrun {number + 1}: {wall:.2f} s, idle core-seconds {idle:.2f}")
            per_line = int(1 / STEP) * 5
            for start in range(0, len(marks), per_line):
                print(f"{start * STEP:5.1f}s |{marks[start : start + per_line]}|")


if __name__ == "__main__":
    main()
