#!/usr/bin/env python3
"""Import + validate time of config.yaml, the cost every cron call pays first (issue #11).

    .venv/bin/python bench/config_load.py [--runs 21] [--config PATH]
        [--code snapshot|live|REF] [--site] [--preload MODULES] [--importtime N] [--no-budget]

Each run is a fresh `python -S -c` child that measures itself, from before `from
syndicate.config import load_config` to after `load_config(PATH)` returned (interpreter
start-up is not counted, nor spawning). `-S` skips site.py, so nothing is
preloaded: the editable install's finder imports pathlib, re, enum, ipaddress and
urllib.parse at start-up, which a wheel install does not. `--site` measures with it;
`--preload click,...` imports modules before the clock starts (`click`: what the CLI has
loaded when it reads the config, so what a cron call really pays for it).
Prints median, min and max of the child-measured milliseconds for the shipped
config.yaml (and `--config PATH`), and exits 1 when a median is over 30 ms, unless
`--no-budget`. `--importtime N` also prints the N imports that cost the most (self
time, from one `-X importtime` child). `--code` as in build.py (default: a snapshot).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO, prepare_code

BUDGET_MS = 30.0
CLOCK = "config_load.py: the clock starts"

# argv: code root, site-packages, config path, modules to preload. `os` is what site.py
# would have imported.
CHILD = """\
import sys, os, time
sys.path[:0] = sys.argv[1:3]
for name in filter(None, sys.argv[4].split(",")):
    __import__(name)
print(CLOCK, file=sys.stderr)
t = time.perf_counter()
from syndicate.config import load_config
load_config(sys.argv[3])
ms = (time.perf_counter() - t) * 1000
import syndicate
print(f"{ms:.3f} {syndicate.__file__}")
""".replace("CLOCK", repr(CLOCK))


def child_cmd(site: bool, *flags: str) -> list[str]:
    return [sys.executable, *flags, *([] if site else ["-S"]), "-c", CHILD]


def run_once(cmd: list[str], root: Path, config: Path, preload: str) -> tuple[float, str, str]:
    """-> (child-measured ms, the syndicate package it imported, its stderr)."""
    args = [str(root), sysconfig.get_paths()["purelib"], str(config), preload]
    done = subprocess.run(
        [*cmd, *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise SystemExit(f"config_load.py: the child exited {done.returncode}:\n{done.stderr}")
    ms, package = done.stdout.split(maxsplit=1)
    return float(ms), package.strip(), done.stderr


def measure(root: Path, config: Path, args: argparse.Namespace) -> list[float]:
    """`--runs` timings after one untimed run (page cache, byte-code of a live tree)."""
    cmd = child_cmd(args.site)
    _, package, _ = run_once(cmd, root, config, args.preload)
    if not Path(package).is_relative_to(root):
        raise SystemExit(f"config_load.py: the child imported {package}, not the code under test")
    return [run_once(cmd, root, config, args.preload)[0] for _ in range(args.runs)]


def importtime(root: Path, config: Path, args: argparse.Namespace) -> None:
    """The `--importtime` imports with the largest self time, from one -X importtime child."""
    cmd = child_cmd(args.site, "-X", "importtime")
    _, _, stderr = run_once(cmd, root, config, args.preload)
    timed = stderr.split(CLOCK, 1)[-1]  # not start-up's imports, nor --preload's
    rows = []
    for line in timed.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            rows.append((int(parts[0]), int(parts[1]), parts[2].rstrip()))
    top = args.importtime
    print(f"\n-X importtime (one child, its overhead included): top {top} by self time")
    print(f"{'self ms':>8} {'cumul ms':>9}  module")
    for own, cumulative, name in sorted(rows, reverse=True)[:top]:
        print(f"{own / 1000:8.2f} {cumulative / 1000:9.2f}  {name}")
    total = sum(own for own, _, _ in rows)
    print(f"{total / 1000:8.2f} {'':9}  all {len(rows)} imports")


def loads() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="timed children (default 21)")
    parser.add_argument(
        "--config", type=Path, action="append", default=[], help="also time this config file"
    )
    parser.add_argument("--code", default="snapshot", metavar="snapshot|live|REF")
    parser.add_argument("--site", action="store_true", help="run site.py (.pth files) first")
    parser.add_argument("--preload", default="", metavar="MODULES", help="e.g. click")
    parser.add_argument("--importtime", type=int, default=0, metavar="N", help="top N imports")
    parser.add_argument("--no-budget", action="store_true", help="report a miss but exit 0")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {loads()}")
    configs = [REPO / "config.yaml", *(path.resolve() for path in args.config)]
    missed = []
    with tempfile.TemporaryDirectory(prefix="syndicate-config-") as tmp:
        package, code = prepare_code(args.code, Path(tmp))
        root = package.parent
        how = "site.py run first" if args.site else "-S: no site.py"
        how += f", {args.preload} imported first" if args.preload else ""
        print(f"code under test: {code}\n{args.runs} fresh interpreters each ({how})\n")
        print(f"{'import + load_config':<40} {'median ms':>9} {'min':>6} {'max':>6}")
        for config in configs:
            ms = measure(root, config, args)
            median = statistics.median(ms)
            print(f"{str(config)[-40:]:<40} {median:9.1f} {min(ms):6.1f} {max(ms):6.1f}")
            if median > BUDGET_MS:
                missed.append(f"{config}: median {median:.1f} ms")
        if args.importtime:
            importtime(root, configs[0], args)
    print(f"\nload average (1/5/15 min) at the end: {loads()}")
    for what in missed:
        print(f"FAIL import + validate <= {BUDGET_MS:g} ms: {what}")
    if not missed:
        print(f"OK   import + validate <= {BUDGET_MS:g} ms")
    return 1 if missed and not args.no_budget else 0


if __name__ == "__main__":
    sys.exit(main())
