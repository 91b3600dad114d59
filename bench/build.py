#!/usr/bin/env python3
"""Time cold and warm `syndicate build` runs on generated corpora (by hand, not in tests).

    python bench/build.py [--posts 1000 10000] [--runs 3] [--seed 1] [--profile P] [--keep]
                          [--budget-seconds-10k 15] [--timeout 900]

For each size N: reuse the corpus in bench/.corpus/PROFILE-N if it is there (and was made
with the same seed and generator version), else generate it with bench/generate.py (into
bench/.corpus/PROFILE-N with --keep, else into a temporary folder that is deleted afterwards).
Then, --runs times, a COLD build: the real CLI in a fresh child process
(`sys.executable -m syndicate build ...`) into a fresh, empty output folder. The child's
wall time comes from perf_counter around spawn..reap, its CPU time and peak RSS from
os.wait4's rusage. After the last cold run, one WARM no-change rebuild into the same
output folder, which must write nothing (checked by comparing every file's inode and
mtime before and after; syndicate replaces a file by rename when it changes).

The code under test is, by default, a snapshot of the syndicate package (and templates/)
taken when the script starts, put first on the children's PYTHONPATH: other people may
be editing the working tree while a 10k run takes minutes, and every run must time the
same code. `--code live` runs whatever is importable at each moment instead (a warning
is printed if it changed during the run); `--code REF` times a git revision (git archive).

Prints one row per size and, when 10000 is among the sizes, compares the median cold
build with --budget-seconds-10k: exit 1 (and say by how much) when it is over.
Exit 2 when a build fails or the corpus does not build cleanly.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate  # the sibling scripts, found through the path above
from harness import (
    BENCH,
    NOW,
    Run,
    corpus_for,
    fingerprint,
    prepare_code,
    run_child,
    snapshot,
)

FEED_NAMES = frozenset({"feed.xml", "atom.xml", "feed.json"})
BUDGET_SIZE = 10_000

CONFIG = """\
# Written by bench/build.py; content and output folders are passed on the command line.
site:
  title: "Syndicate Bench"
  url: "https://bench.syndicate.test/"
  description: "A generated corpus for timing builds."
  language: en
  timezone: "UTC"
  author: {{name: "Bench Editor", email: "editor@bench.syndicate.test"}}
content:
  paths: [{content}]
feeds:
  formats: [rss, atom, json]
  limit: 50
  full_content: true
  per_tag: true
  per_category: true
"""


def run_build(config: Path, content: Path, out: Path, cwd: Path, timeout: float) -> Run:
    """One `syndicate build` in its own child process, timed, with the child's rusage."""
    cmd = [
        sys.executable, "-m", "syndicate", "build",
        "--config", str(config), "--content", str(content), "--out", str(out), "--now", NOW,
    ]  # fmt: skip
    return run_child(cmd, cwd, timeout)


def check(run: Run, label: str, posts: int) -> None:
    """A build must succeed and publish every post; show its output when it does not."""
    expected = f"{posts} posts published, 0 held back, 0 errors"
    if run.returncode != 0 or expected not in run.stdout:
        sys.stderr.write(run.stdout + run.stderr[-4000:])
        raise SystemExit(
            f"build.py: {label} build exited {run.returncode}; expected '{expected}' in its output"
        )


def bench_size(posts: int, args: argparse.Namespace, scratch: Path) -> dict[str, object]:
    content, how = corpus_for(posts, args.seed, args.profile, args.keep, scratch)
    work = scratch / f"n{posts}"
    work.mkdir()
    config = work / "config.yaml"
    config.write_text(CONFIG.format(content=str(content)), encoding="utf-8")
    print(f"\n== {posts} posts (corpus {how}: {content})", flush=True)

    cold: list[Run] = []
    out = work / "out-0"
    for i in range(args.runs):
        out = work / f"out-{i}"  # fresh and empty: the CLI creates it
        run = run_build(config, content, out, work, args.timeout)
        check(run, f"cold #{i + 1}", posts)
        cold.append(run)
        print(
            f"   cold #{i + 1}: {run.seconds:7.2f}s wall  {run.cpu_seconds:7.2f}s cpu  "
            f"{run.max_rss_kib / 1024:7.1f} MiB peak RSS",
            flush=True,
        )
    files = snapshot(out)
    feeds = sum(1 for name in files if Path(name).name in FEED_NAMES)

    warm = run_build(config, content, out, work, args.timeout)
    check(warm, "warm", posts)
    after = snapshot(out)
    changed = sorted(name for name in set(files) | set(after) if files.get(name) != after.get(name))
    print(
        f"   warm:    {warm.seconds:7.2f}s wall  {warm.cpu_seconds:7.2f}s cpu  "
        f"{warm.max_rss_kib / 1024:7.1f} MiB peak RSS  files changed: {len(changed)}"
        + (f" (e.g. {', '.join(changed[:3])})" if changed else ""),
        flush=True,
    )
    slug_warnings = warm.stderr.count("warning: slug")

    if args.keep:
        kept = BENCH / "out" / str(posts)
        shutil.rmtree(kept, ignore_errors=True)
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(out, kept)
        shutil.copy2(config, kept.parent / f"config-{posts}.yaml")

    seconds = [r.seconds for r in cold]
    median = statistics.median(seconds)
    return {
        "posts": posts,
        "median": median,
        "min": min(seconds),
        "cpu": statistics.median(r.cpu_seconds for r in cold),
        "rss": max(r.max_rss_kib for r in cold) / 1024,
        "rate": posts / median,
        "feeds": feeds,
        "files": len(files),
        "warm": warm.seconds,
        "warm_changed": len(changed),
        "slug_warnings": slug_warnings,
    }


def print_table(rows: list[dict[str, object]], runs: int) -> None:
    header = (
        f"{'posts':>7}  {'median s':>9}  {'min s':>7}  {'cpu s':>7}  {'peak RSS MiB':>12}  "
        f"{'posts/s':>8}  {'feed files':>10}  {'warm s':>7}  {'warm writes':>11}"
    )
    print(f"\ncold builds: {runs} runs each, fresh process, empty output folder; --now {NOW}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['posts']:>7}  {r['median']:>9.2f}  {r['min']:>7.2f}  {r['cpu']:>7.2f}  "
            f"{r['rss']:>12.1f}  {r['rate']:>8.0f}  {r['feeds']:>10}  {r['warm']:>7.2f}  "
            f"{r['warm_changed']:>11}"
        )


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds: the running build is killed, temp files removed


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, nargs="+", default=[1000, 10_000], metavar="N")
    parser.add_argument("--runs", type=int, default=3, help="cold builds per size (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument(
        "--profile",
        choices=sorted(generate.PROFILES),
        default=generate.DEFAULT_PROFILE,
        help=f"corpus profile (default {generate.DEFAULT_PROFILE}; classic: the first generator)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep generated corpora in bench/.corpus/PROFILE-N, the last outputs in bench/out/N",
    )
    parser.add_argument(
        "--budget-seconds-10k",
        type=float,
        default=15.0,
        help="fail (exit 1) if the median 10,000-post cold build takes longer (default 15)",
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="kill a single build after this many seconds"
    )
    parser.add_argument(
        "--code",
        default="snapshot",
        metavar="snapshot|live|REF",
        help="code under test: a copy of the working tree taken at start (default), the live "
        "importable package, or a git revision",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    print(
        f"python {sys.version.split()[0]} ({sys.executable}), {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="syndicate-bench-") as tmp:
        package, described = prepare_code(args.code, Path(tmp))
        print(f"code under test: {described}")
        before = fingerprint(package)
        for posts in args.posts:
            rows.append(bench_size(posts, args, Path(tmp)))
        after = fingerprint(package)
    print_table(rows, args.runs)
    print("load average (1/5/15 min) at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))

    status = 0
    if after != before:
        print(
            f"WARNING: the syndicate sources changed during the benchmark ({before} -> {after}); "
            "the timings mix code versions (use the default --code snapshot)"
        )
    for r in rows:
        if r["warm_changed"]:
            print(
                f"FAIL: the warm no-change rebuild of {r['posts']} posts "
                f"rewrote {r['warm_changed']} files"
            )
            status = 1
    budget = args.budget_seconds_10k
    ten_k = next((r for r in rows if r["posts"] == BUDGET_SIZE), None)
    if ten_k is None:
        print(f"budget: not checked (no {BUDGET_SIZE}-post run)")
        return status
    median = float(ten_k["median"])  # type: ignore[arg-type]
    if median > budget:
        print(
            f"FAIL: median 10k cold build {median:.2f}s exceeds the {budget:g}s budget by "
            f"{median - budget:.2f}s ({median / budget:.1f}x the budget)"
        )
        return 1
    print(
        f"OK: median 10k cold build {median:.2f}s is within the {budget:g}s budget "
        f"({budget - median:.2f}s to spare)"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
