#!/usr/bin/env python3
"""syndicate beside Hugo on the same generated corpus: cold build and the cron path.

    .venv/bin/python bench/compare.py [--posts 10000] [--runs 3] [--seed 1]
        [--profile tag-rich] [--formats rss,atom,json] [--keep] [--code snapshot|live|REF]
        [--hugo hugo] [--timeout 900] [--no-budget]

One run, one corpus (bench/generate.py, cached like build.py does), copied once into a
Hugo site folder whose content/ both tools read (the copy is not timed). Then:

* cold, --runs times, alternating: `syndicate run --once` with a fresh state database
  and an empty output folder, and `hugo` (feeds only: bench/hugo/) into an empty
  destination with an empty cache;
* the cron path, --runs rounds, each step against what the previous step left:
  `run --once` with nothing new (no-op), after adding one post (+1 post), after editing
  it (edit), after deleting it (delete); Hugo rebuilds everything each time, which is
  what Hugo does;
* `syndicate --version`.

Every child is timed from spawn to reap; CPU and peak RSS come from its own rusage
(os.wait4), and the RSS of its process tree (syndicate forks workers) is sampled. Each
step is checked (the expected `published:`/`updated:`/`withdrawn:` line, the new post in
or out of both tools' home feed), then a table of medians and the targets: exit 1 if one
is missed (unless --no-budget), 2 if a build fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate  # the sibling scripts, found through the path above
from harness import BENCH, NOW, Run, corpus_for, fingerprint, prepare_code, run_child

FORMATS = {
    "rss": ("RSS", "feed.xml"),
    "atom": ("Atom", "atom.xml"),
    "json": ("JSONFeed", "feed.json"),
}
STEPS = ["cold", "no-op", "+1 post", "edit", "delete"]
NEW_POST_DAY = date(2025, 12, 31)  # the corpus's last day: the new post is in the home feed
# Targets for syndicate (the issue on publishing 10,000+ posts).
COLD_RATIO = 1.0  # cold run --once / cold Hugo
NOOP_SECONDS = 0.3
CHANGE_SECONDS = 0.5  # one post added, edited or deleted
PEAK_MIB = 250.0
VERSION_SECONDS = 0.15

CONFIG = """\
# Written by bench/compare.py; paths relative to this file.
site:
  title: "Syndicate Bench"
  url: "https://bench.syndicate.test/"
  description: "A generated corpus for timing builds."
  language: en
  timezone: "UTC"
  author: {{name: "Bench Editor", email: "editor@bench.syndicate.test"}}
content:
  paths: ["{content}"]
output:
  dir: public
feeds:
  formats: [{formats}]
  limit: 50
  full_content: true
  per_tag: true
  per_category: true
state:
  url: "sqlite:///state/syndicate.db"
newsletter:
  enabled: false
"""


@dataclass
class Runs:
    """The runs of one table row."""

    syndicate: list[Run] = field(default_factory=list)
    hugo: list[Run] = field(default_factory=list)


class BenchError(Exception):
    """A build failed or did not do what the step expects."""


def syndicate_cmd() -> list[str]:
    """The console script beside the interpreter (what cron runs), else `python -m`."""
    script = Path(sys.executable).with_name("syndicate")
    return [str(script)] if script.exists() else [sys.executable, "-m", "syndicate"]


def make_site(work: Path, corpus: Path, formats: list[str]) -> Path:
    """A Hugo site whose content/ is a copy of the corpus (both tools read it)."""
    site = work / "site"
    shutil.copytree(corpus, site / "content")
    outputs = ", ".join(f'"{FORMATS[f][0]}"' for f in formats)
    config = (BENCH / "hugo" / "hugo.toml").read_text(encoding="utf-8")
    (site / "hugo.toml").write_text(config.replace("@OUTPUTS@", outputs), encoding="utf-8")
    (site / "layouts").symlink_to(BENCH / "hugo" / "layouts")
    return site


def make_syndicate(folder: Path, content: Path, formats: list[str]) -> Path:
    """A folder with config.yaml; state/ and public/ appear beside it on the first run."""
    folder.mkdir()
    config = CONFIG.format(content=content, formats=", ".join(formats))
    (folder / "config.yaml").write_text(config, encoding="utf-8")
    return folder


def run_syndicate(folder: Path, timeout: float) -> Run:
    cmd = [*syndicate_cmd(), "run", "--once", "--config", "config.yaml", "--now", NOW]
    run = run_child(cmd, folder, timeout)
    if run.returncode != 0:
        raise BenchError(f"syndicate run --once exited {run.returncode}:\n{run.stderr[-3000:]}")
    return run


def run_hugo(hugo: str, site: Path, dest: Path, timeout: float) -> Run:
    cache = dest.with_name(dest.name + "-cache")
    cmd = [hugo, "--source", str(site), "--destination", str(dest), "--cacheDir", str(cache)]
    run = run_child([*cmd, "--quiet"], site, timeout)
    if run.returncode != 0 or "ERROR" in run.stderr:
        raise BenchError(f"hugo exited {run.returncode}:\n{run.stderr[-3000:]}")
    return run


def expect(run: Run, step: str, posts: int) -> None:
    """The lines `run --once` prints for this step (it is quiet when nothing changed)."""
    lines = run.stdout.splitlines()
    want = {"cold": ("published:", posts), "no-op": ("", 0), "+1 post": ("published:", 1)}
    want |= {"edit": ("updated:", 1), "delete": ("withdrawn:", 1)}
    prefix, count = want[step]
    found = sum(1 for line in lines if line.startswith(prefix)) if prefix else len(lines)
    if found != count:
        raise BenchError(
            f"{step}: expected {count} '{prefix or 'any'}' lines from run --once, got {found}:\n"
            + "\n".join(lines[:5])
        )


def feed_files(folder: Path, formats: list[str]) -> int:
    names = {FORMATS[f][1] for f in formats}
    return sum(1 for path in folder.rglob("*") if path.name in names)


def home_feed_has(folder: Path, formats: list[str], text: str) -> bool:
    return text in (folder / FORMATS[formats[0]][1]).read_text(encoding="utf-8")


def check_feeds(outputs: list[Path], formats: list[str], text: str, present: bool) -> None:
    for out in outputs:
        if home_feed_has(out, formats, text) != present:
            where = "missing from" if present else "still in"
            raise BenchError(f"{text!r} is {where} {out}/{FORMATS[formats[0]][1]}")


def cold(args: argparse.Namespace, work: Path, site: Path, rows: dict[str, Runs]) -> None:
    for i in range(args.runs):
        folder = make_syndicate(work / f"syndicate-{i}", site / "content", args.formats)
        run = run_syndicate(folder, args.timeout)
        expect(run, "cold", args.posts)
        rows["cold"].syndicate.append(run)
        rows["cold"].hugo.append(run_hugo(args.hugo, site, work / f"hugo-{i}", args.timeout))
        print(f"   cold #{i + 1}: {describe(rows['cold'], -1)}", flush=True)


def cron(args: argparse.Namespace, work: Path, site: Path, rows: dict[str, Runs]) -> None:
    """--runs rounds of no-op, +1 post, edit, delete, in the last cold run's folders."""
    folder, dest = work / f"syndicate-{args.runs - 1}", work / f"hugo-{args.runs - 1}"
    outputs = [folder / "public", dest]
    writer = generate.Corpus(args.seed + 1_000_000_007, generate.PROFILES[args.profile])
    used: set[str] = set()
    for i in range(args.runs):
        rel, text = writer.post(day=NEW_POST_DAY)
        while Path(rel).stem in used:  # a title the generator repeats on purpose: the URL
            rel, text = writer.post(day=NEW_POST_DAY)  # of the post deleted a round ago
        used.add(Path(rel).stem)
        path = site / "content" / rel
        if path.exists():
            path = path.with_name("bench-" + path.name)
        # Markers in the body, so full-content feeds show them in every format and tool.
        added, edited = f"bench-new-{i}", f"bench-edit-{i}"
        text += f"\nAdded by the benchmark: {added}.\n"
        changes = {
            "no-op": lambda: None,
            "+1 post": lambda p=path, t=text: p.write_text(t, encoding="utf-8"),
            "edit": lambda p=path, t=text, m=edited: p.write_text(
                t + f"\nEdited by the benchmark: {m}.\n", encoding="utf-8"
            ),
            "delete": lambda p=path: p.unlink(),
        }
        for step, change in changes.items():
            change()
            run = run_syndicate(folder, args.timeout)
            expect(run, step, args.posts)
            rows[step].syndicate.append(run)
            rows[step].hugo.append(run_hugo(args.hugo, site, dest, args.timeout))
            if step != "no-op":
                check_feeds(outputs, args.formats, added, step != "delete")
            if step == "edit":
                check_feeds(outputs, args.formats, edited, True)
            print(f"   round {i + 1} {step:8} {describe(rows[step], -1)}", flush=True)


def describe(runs: Runs, index: int) -> str:
    s, h = runs.syndicate[index], runs.hugo[index]
    return (
        f"syndicate {s.seconds:7.2f}s ({s.max_rss_kib / 1024:6.1f} MiB)   "
        f"hugo {h.seconds:6.2f}s ({h.max_rss_kib / 1024:6.1f} MiB)"
    )


def version_runs(args: argparse.Namespace, work: Path) -> list[Run]:
    runs = []
    for _ in range(max(5, args.runs)):
        run = run_child([*syndicate_cmd(), "--version"], work, args.timeout)
        if run.returncode != 0:
            raise BenchError(f"syndicate --version exited {run.returncode}: {run.stderr}")
        runs.append(run)
    return runs


def median(runs: list[Run]) -> float:
    return statistics.median(r.seconds for r in runs)


def peak(runs: list[Run]) -> float:
    return max(r.max_rss_kib for r in runs) / 1024


def pss(runs: list[Run]) -> float:
    """The largest PSS of the process tree (sampled every harness.PSS_EVERY seconds, the
    first time half that after the start: 0 for runs shorter than that)."""
    return max(r.tree_pss_kib for r in runs) / 1024


def pss_column(runs: list[Run]) -> str:
    return f"{pss(runs):>11.1f}" if pss(runs) else f"{'-':>11}"


def print_table(rows: dict[str, Runs], version: list[Run]) -> None:
    header = (
        f"{'':<20} {'syndicate s':>11} {'hugo s':>8} {'ratio':>7} {'syn cpu s':>9} "
        f"{'hugo cpu s':>10} {'syn MiB':>8} {'syn tree MiB':>12} {'syn PSS MiB':>11} "
        f"{'hugo MiB':>8}"
    )
    print("\n" + header)
    print("-" * len(header))
    for step, runs in rows.items():
        syn, hug = median(runs.syndicate), median(runs.hugo)
        label = "cold: run --once" if step == "cold" else f"cron: {step}"
        print(
            f"{label:<20} {syn:>11.2f} {hug:>8.2f} {syn / hug:>6.2f}x "
            f"{statistics.median(r.cpu_seconds for r in runs.syndicate):>9.2f} "
            f"{statistics.median(r.cpu_seconds for r in runs.hugo):>10.2f} "
            f"{peak(runs.syndicate):>8.1f} "
            f"{max(r.tree_rss_kib for r in runs.syndicate) / 1024:>12.1f} "
            f"{pss_column(runs.syndicate)} {peak(runs.hugo):>8.1f}"
        )
    print(
        f"{'syndicate --version':<20} {median(version):>11.3f} {'-':>8} {'-':>7} "
        f"{statistics.median(r.cpu_seconds for r in version):>9.3f} {'-':>10} "
        f"{peak(version):>8.1f} {max(r.tree_rss_kib for r in version) / 1024:>12.1f} "
        f"{pss_column(version)} {'-':>8}"
    )


def check_targets(rows: dict[str, Runs], version: list[Run]) -> list[tuple[bool, str]]:
    """(met, what) per target, on the medians (peak RSS: the largest over every run)."""
    cold_s, cold_h = median(rows["cold"].syndicate), median(rows["cold"].hugo)
    results = [
        (
            cold_s <= COLD_RATIO * cold_h,
            f"cold run --once <= {COLD_RATIO:g}x Hugo: {cold_s:.2f}s vs {cold_h:.2f}s "
            f"= {cold_s / cold_h:.2f}x",
        ),
        (
            median(rows["no-op"].syndicate) <= NOOP_SECONDS,
            f"no-op run --once <= {NOOP_SECONDS:g}s: {median(rows['no-op'].syndicate):.2f}s",
        ),
    ]
    for step in ("+1 post", "edit", "delete"):
        seconds = median(rows[step].syndicate)
        results.append(
            (seconds <= CHANGE_SECONDS, f"{step} run --once <= {CHANGE_SECONDS:g}s: {seconds:.2f}s")
        )
    every = [r for runs in rows.values() for r in runs.syndicate]
    tree = max(r.tree_rss_kib for r in every) / 1024
    results.append(
        (
            max(peak(every), pss(every)) <= PEAK_MIB,
            f"peak memory <= {PEAK_MIB:g} MiB: {peak(every):.1f} MiB RSS of the largest "
            f"process, {pss(every):.1f} MiB PSS of the process tree (workers included; "
            f"RSS summed, shared pages once per process: {tree:.1f} MiB)",
        )
    )
    results.append(
        (
            median(version) <= VERSION_SECONDS,
            f"syndicate --version <= {VERSION_SECONDS:g}s: {median(version):.3f}s",
        )
    )
    return results


def hugo_version(hugo: str) -> str:
    try:
        found = subprocess.run([hugo, "version"], capture_output=True, text=True, check=False)
    except OSError:
        found = None
    if found is None or found.returncode != 0:
        raise SystemExit(
            f"compare.py: cannot run {hugo!r}; install Debian's hugo (make bench does: "
            "apt-get install hugo) or pass --hugo PATH"
        )
    return found.stdout.strip()


def bench(args: argparse.Namespace, scratch: Path) -> tuple[dict[str, Runs], list[Run]]:
    package, described = prepare_code(args.code, scratch)
    print(f"code under test: {described}")
    before = fingerprint(package)
    corpus, how = corpus_for(args.posts, args.seed, args.profile, args.keep, scratch)
    print(f"corpus: {args.posts} {args.profile} posts, seed {args.seed} ({how}: {corpus})")
    site = make_site(scratch, corpus, args.formats)
    print(f"formats: {', '.join(args.formats)}; --now {NOW}; {args.runs} runs per step", flush=True)
    rows = {step: Runs() for step in STEPS}
    cold(args, scratch, site, rows)
    last = args.runs - 1
    syn_files = feed_files(scratch / f"syndicate-{last}" / "public", args.formats)
    hugo_files = feed_files(scratch / f"hugo-{last}", args.formats)
    print(f"   feed files: syndicate {syn_files}, hugo {hugo_files}", flush=True)
    cron(args, scratch, site, rows)
    version = version_runs(args, scratch)
    if args.keep:
        kept = BENCH / "out" / f"compare-{args.profile}-{args.posts}"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(scratch / f"syndicate-{last}", kept / "syndicate", symlinks=True)
        shutil.copytree(scratch / f"hugo-{last}", kept / "hugo")
        print(f"   outputs kept in {kept}")
    if fingerprint(package) != before:
        print("WARNING: the syndicate sources changed during the run; timings mix versions")
    return rows, version


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=10_000, help="corpus size (default 10000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per step (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument(
        "--profile", choices=sorted(generate.PROFILES), default=generate.DEFAULT_PROFILE
    )
    parser.add_argument(
        "--formats",
        default="rss,atom,json",
        help="feed formats both tools write, comma-separated (default rss,atom,json)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="cache the corpus in bench/.corpus/PROFILE-N; keep outputs in bench/out/",
    )
    parser.add_argument("--code", default="snapshot", metavar="snapshot|live|REF")
    parser.add_argument("--hugo", default="hugo", help="the hugo binary (default: hugo on PATH)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per child run")
    parser.add_argument("--no-budget", action="store_true", help="report missed targets but exit 0")
    args = parser.parse_args(argv)
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not args.formats or any(f not in FORMATS for f in args.formats):
        parser.error(f"--formats: a comma-separated list of {', '.join(FORMATS)}")
    if args.runs < 1 or args.posts < 1:
        parser.error("--runs and --posts must be at least 1")
    return args


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds: the running child is killed, temp files removed


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    args = parse_args(argv)
    print(
        f"python {sys.version.split()[0]} ({sys.executable}), {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(hugo_version(args.hugo))
    with tempfile.TemporaryDirectory(prefix="syndicate-compare-") as tmp:
        try:
            rows, version = bench(args, Path(tmp))
        except BenchError as error:
            print(f"compare.py: {error}", file=sys.stderr)
            return 2
    print(
        f"\n{args.posts} {args.profile} posts; medians of {args.runs} runs "
        f"(--version: {len(version)}); ratio = syndicate / hugo; MiB = peak RSS; "
        "PSS = proportional set size"
    )
    print_table(rows, version)
    print("load average (1/5/15 min) at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    results = check_targets(rows, version)
    for met, what in results:
        print(f"{'OK  ' if met else 'FAIL'} {what}")
    missed = sum(1 for met, _ in results if not met)
    if missed and not args.no_budget:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
