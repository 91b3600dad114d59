"""What the bench scripts share: corpus caching, the code under test, timed child processes.

`build.py` and `compare.py` import it (they put bench/ on sys.path). Standard library
only; Linux (os.wait4, /proc).
"""

from __future__ import annotations

import compileall
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate  # the sibling script, found through the path above

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
NOW = "2026-01-01T00:00:00Z"
CODE_ENV: dict[str, str] = {}  # extra environment for the children (PYTHONPATH of a snapshot)
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    max_rss_kib: int  # ru_maxrss: the largest single process (the child or a reaped worker)
    tree_rss_kib: int  # sampled: the largest sum of RSS over the child and its descendants
    returncode: int
    stdout: str
    stderr: str
    # sampled less often: the largest sum of PSS (proportional set size: a page shared by
    # forked workers counts a share in each), what the whole process tree holds of memory
    tree_pss_kib: int = 0


def package_dir() -> Path:
    """Where the syndicate package that sys.executable imports lives."""
    found = subprocess.run(
        [sys.executable, "-c", "import syndicate, os; print(os.path.dirname(syndicate.__file__))"],
        capture_output=True, text=True, check=False, cwd=tempfile.gettempdir(),
    )  # fmt: skip
    if found.returncode != 0:
        raise SystemExit(
            f"bench: {sys.executable} cannot import syndicate; run it with the project's "
            "virtualenv, e.g. .venv/bin/python bench/build.py"
        )
    return Path(found.stdout.strip())


def fingerprint(package: Path) -> str:
    """A short hash of the package's Python sources."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def prepare_code(code: str, scratch: Path) -> tuple[Path, str]:
    """Fix the code under test. -> (package folder the children import, description)."""
    live = package_dir()
    if code == "live":
        return live, f"live {live} (source {fingerprint(live)})"
    root = scratch / "code"
    root.mkdir()
    if code == "snapshot":
        shutil.copytree(live, root / "syndicate", ignore=shutil.ignore_patterns("__pycache__"))
        templates = live.parent / "templates"
        if templates.is_dir():
            shutil.copytree(templates, root / "templates")
        what = f"snapshot of {live}"
    else:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", code, "syndicate", "templates"],
            capture_output=True, check=False,
        )  # fmt: skip
        if archive.returncode != 0:
            raise SystemExit(f"bench: git archive {code}: {archive.stderr.decode().strip()}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(root, filter="data")
        what = f"git {code}"
    compileall.compile_dir(root, quiet=1)  # no run pays for byte-compiling the copy
    CODE_ENV["PYTHONPATH"] = os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return root / "syndicate", f"{what} (source {fingerprint(root / 'syndicate')})"


def _tree_sum(pid: int, measure: Callable[[int], int]) -> int:
    """`measure(process)` summed over `pid` and all its descendants (a process that exits
    meanwhile counts nothing)."""
    total, todo = 0, [pid]
    while todo:
        proc = todo.pop()
        try:
            total += measure(proc)
            children = Path(f"/proc/{proc}/task/{proc}/children").read_text()
            todo += [int(c) for c in children.split()]
        except (OSError, ValueError, IndexError, StopIteration):
            continue  # it just exited
    return total


def _rss_kib(proc: int) -> int:
    return int(Path(f"/proc/{proc}/statm").read_text().split()[1]) * PAGE_KIB


def _pss_kib(proc: int) -> int:
    rollup = Path(f"/proc/{proc}/smaps_rollup").read_text()
    return int(next(line for line in rollup.splitlines() if line.startswith("Pss:")).split()[1])


def tree_rss_kib(pid: int) -> int:
    """RSS of `pid` and all its descendants, summed (shared pages count once per process)."""
    return _tree_sum(pid, _rss_kib)


def tree_pss_kib(pid: int) -> int:
    """PSS of `pid` and all its descendants, summed (/proc/PID/smaps_rollup, Linux 4.14+;
    0 without it). Reading it walks the page tables: ~4 ms a process."""
    return _tree_sum(pid, _pss_kib)


PSS_EVERY = 0.5  # seconds between PSS samples: each costs the machine ~4 ms a process


def run_child(cmd: list[str], cwd: Path, timeout: float, sample_every: float = 0.02) -> Run:
    """Run `cmd` as a child process: wall time spawn..reap, the child's own rusage (os.wait4:
    the parent's memory never counts), and its process tree's RSS sampled every
    `sample_every` seconds. stdout and stderr go to temporary files."""
    env = {**os.environ, **CODE_ENV, "CI": "1"}  # CI: no progress bar
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=cwd, stdout=so, stderr=se, env=env)
        deadline, tree_peak, next_sample = start + timeout, 0, start
        pss_peak, next_pss = 0, start + PSS_EVERY / 2
        try:
            while True:
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    break
                now = time.perf_counter()
                if now > deadline:
                    raise SystemExit(f"bench: timed out after {timeout:.0f}s: {' '.join(cmd)}")
                if now >= next_sample:
                    tree_peak = max(tree_peak, tree_rss_kib(child.pid))
                    next_sample = now + sample_every
                if now >= next_pss:
                    pss_peak = max(pss_peak, tree_pss_kib(child.pid))
                    next_pss = now + PSS_EVERY
                # Polls ~0.5% of the elapsed time apart (1-20 ms): fine for 0.1 s runs,
                # and a long run does not pay for a busy parent on a small machine.
                time.sleep(min(0.02, max(0.001, (now - start) / 200)))
        except BaseException:  # timeout, Ctrl-C, SIGTERM: never leave the child running
            child.kill()  # only the child this function started
            os.wait4(child.pid, 0)
            child.returncode = -9
            raise
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped: keep Popen quiet
        so.seek(0)
        se.seek(0)
        return Run(
            seconds=seconds,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            max_rss_kib=usage.ru_maxrss,  # KiB on Linux
            tree_rss_kib=max(tree_peak, usage.ru_maxrss),
            tree_pss_kib=pss_peak,
            returncode=child.returncode,
            stdout=so.read().decode(errors="replace"),
            stderr=se.read().decode(errors="replace"),
        )


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` -> (inode, mtime_ns)."""
    found = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            st = path.stat()
            found[str(path.relative_to(folder))] = (st.st_ino, st.st_mtime_ns)
    return found


def corpus_for(posts: int, seed: int, profile: str, keep: bool, scratch: Path) -> tuple[Path, str]:
    """The corpus folder for `posts` posts, reused when already generated. -> (path, how).

    The cache is bench/.corpus/<profile>-<posts>; with `keep` a new corpus is generated
    there, else in `scratch` (deleted with it)."""
    cached = BENCH / ".corpus" / f"{profile}-{posts}"
    want = {
        "generator_version": generate.GENERATOR_VERSION,
        "profile": profile,
        "posts": posts,
        "seed": seed,
    }
    info = generate.read_marker(cached)
    if info is not None and all(info.get(k) == v for k, v in want.items()):
        return cached, "reused"
    target = cached if keep else scratch / f"corpus-{profile}-{posts}"
    if target.exists():
        if generate.read_marker(target) is None and any(target.iterdir()):
            raise SystemExit(f"bench: {target} exists and is not a generated corpus")
        shutil.rmtree(target)
    target.mkdir(parents=True)
    started = time.perf_counter()
    generate.generate(target, posts, seed, profile)
    return target, f"generated in {time.perf_counter() - started:.1f}s"
