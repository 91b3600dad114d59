#!/usr/bin/env python3
"""The cron path when nothing changed, and the CLI's start-up: the figures of issue #12.

    .venv/bin/python bench/noop.py [--posts 10000] [--runs 9] [--seed 1]
        [--profile tag-rich] [--keep] [--code snapshot|live|REF] [--no-budget]

One corpus (bench/generate.py, cached as build.py does) with compare.py's config.yaml;
one cold `syndicate run --once` (not timed against a target), one more run (it writes the
cron shortcut's record), then --runs timed no-op runs, each checked to print nothing,
write no output file and add one row to the runs table; then --runs of `syndicate
--version` and `syndicate --help`. Prints the medians (and min/max: the spread says how
busy the machine was) and checks the targets: no-op run --once <= 0.3 s, --version and
--help <= 0.15 s. Exit 1 if one is missed (unless --no-budget), 2 if a run misbehaves.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate  # the sibling scripts, found through the path above
from compare import make_syndicate, syndicate_cmd
from harness import NOW, Run, corpus_for, prepare_code, run_child, snapshot

NOOP_SECONDS = 0.3
STARTUP_SECONDS = 0.15  # --version, --help


def timed(cmd: list[str], folder: Path, runs: int) -> list[Run]:
    done = [run_child(cmd, folder, 120) for _ in range(runs)]
    for run in done:
        if run.returncode != 0:
            raise SystemExit(f"noop.py: {' '.join(cmd)} exited {run.returncode}:\n{run.stderr}")
    return done


def run_rows(folder: Path) -> int:
    with sqlite3.connect(folder / "state" / "syndicate.db") as db:
        return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])


def noop_runs(folder: Path, runs: int) -> list[Run]:
    """--runs no-op runs, after a cold one and one that writes the shortcut's record."""
    cmd = [*syndicate_cmd(), "run", "--once", "--config", "config.yaml", "--now", NOW]
    cold = timed(cmd, folder, 1)[0]
    print(f"cold run --once: {cold.seconds:.2f}s (not a target here)")
    timed(cmd, folder, 1)
    before, rows = snapshot(folder / "public"), run_rows(folder)
    done = timed(cmd, folder, runs)
    if snapshot(folder / "public") != before:
        raise SystemExit("noop.py: a no-op run changed the output folder")
    if run_rows(folder) != rows + runs:
        raise SystemExit("noop.py: a no-op run was not recorded in the runs table")
    if any(run.stdout for run in done):
        raise SystemExit(f"noop.py: a no-op run printed: {done[0].stdout[:500]}")
    return done


def line(label: str, runs: list[Run]) -> float:
    seconds = [run.seconds for run in runs]
    median = statistics.median(seconds)
    print(
        f"{label:<22} median {median:6.3f}s  min {min(seconds):6.3f}s  max {max(seconds):6.3f}s"
        f"  cpu {statistics.median(r.cpu_seconds for r in runs):6.3f}s"
        f"  RSS {max(r.max_rss_kib for r in runs) / 1024:6.1f} MiB"
    )
    return median


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=10_000, help="corpus size (default 10000)")
    parser.add_argument("--runs", type=int, default=9, help="timed runs of each (default 9)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument(
        "--profile", choices=sorted(generate.PROFILES), default=generate.DEFAULT_PROFILE
    )
    parser.add_argument("--keep", action="store_true", help="cache the corpus in bench/.corpus/")
    parser.add_argument("--code", default="snapshot", metavar="snapshot|live|REF")
    parser.add_argument("--no-budget", action="store_true", help="report missed targets but exit 0")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.posts < 1:
        parser.error("--runs and --posts must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="syndicate-noop-") as tmp:
        scratch = Path(tmp)
        _, code = prepare_code(args.code, scratch)
        corpus, how = corpus_for(args.posts, args.seed, args.profile, args.keep, scratch)
        print(f"code under test: {code}\ncorpus: {corpus} ({how})")
        folder = make_syndicate(scratch / "site", corpus, ["rss", "atom", "json"])
        noop = line("no-op run --once", noop_runs(folder, args.runs))
        cli = syndicate_cmd()
        version = line("syndicate --version", timed([*cli, "--version"], folder, args.runs))
        helped = line("syndicate --help", timed([*cli, "--help"], folder, args.runs))
    print("load average (1/5/15 min) at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    results = [
        (noop <= NOOP_SECONDS, f"no-op run --once <= {NOOP_SECONDS:g}s: {noop:.3f}s"),
        (version <= STARTUP_SECONDS, f"--version <= {STARTUP_SECONDS:g}s: {version:.3f}s"),
        (helped <= STARTUP_SECONDS, f"--help <= {STARTUP_SECONDS:g}s: {helped:.3f}s"),
    ]
    for met, what in results:
        print(f"{'OK  ' if met else 'FAIL'} {what}")
    return 1 if not all(met for met, _ in results) and not args.no_budget else 0


if __name__ == "__main__":
    sys.exit(main())
