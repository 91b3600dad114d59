"""Spreading CPU-bound work (parsing, Markdown rendering) over the machine's cores."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MIN_ITEMS = 200  # below this, starting worker processes costs more than it saves
MAX_WORKERS = 8
# The function and items of the running parallel_imap. Forked workers inherit them, so
# neither inputs (posts of several KB each) nor the function (with the Config it carries)
# are pickled; only a range of indexes goes to a worker, and its results come back.
_shared: tuple[Callable[[Any], Any], Sequence[Any]] | None = None


def _die_with_parent() -> None:
    """Worker initializer: on Linux, ask to be killed when the parent dies (kill -9 included),
    so a killed run leaves no orphan workers behind."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before we got here
        os._exit(1)


def _may_fork() -> bool:
    """Forking is safe here: no other thread (the daemon's scheduler, the web server) whose
    locks a child would inherit held, and a system that forks."""
    return threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods()


def _call_shared(bounds: tuple[int, int]) -> list[Any]:
    assert _shared is not None, "only called in a worker forked by parallel_imap"
    func, items = _shared
    return [func(items[index]) for index in range(*bounds)]


def parallel_map(func: Callable[[T], R], items: Sequence[T], chunksize: int = 16) -> list[R]:
    """`[func(x) for x in items]`, in worker processes when it pays off."""
    return list(parallel_imap(func, items, chunksize))


def parallel_imap(
    func: Callable[[T], R], items: Sequence[T], chunksize: int = 16
) -> Generator[R, None, None]:
    """`func(x) for x in items`, in order, in worker processes when it pays off.

    Workers are forked, so they start in milliseconds with every module already imported,
    and inherit `func` and `items`: only ranges of indexes are sent, and results come back.
    Forking a process that runs other threads (the daemon's scheduler) is unsafe, so there
    the work stays in this process.
    """
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    if len(items) < MIN_ITEMS or workers < 2 or not _may_fork():
        yield from map(func, items)
        return
    global _shared
    previous, _shared = _shared, (func, items)
    # Frozen, the objects the workers inherit are never walked by their garbage collector:
    # each full collection would otherwise touch (and so copy) every page of them.
    gc.freeze()
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_die_with_parent
        ) as pool:
            starts = range(0, len(items), chunksize)
            bounds = ((start, min(start + chunksize, len(items))) for start in starts)
            for results in pool.map(_call_shared, bounds):
                yield from results
    finally:
        gc.unfreeze()
        _shared = previous


class Background:
    """A function running in a forked child (`in_background`); `pid` None: not started,
    the caller does the work itself."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def wait(self) -> bool:
        """Wait for the child; -> whether it ran to the end without an exception."""
        if self.pid is None:
            return False
        pid, self.pid = self.pid, None
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return False
        return os.waitstatus_to_exitcode(status) == 0

    def cancel(self) -> None:
        """Stop the child (its work is not wanted) and reap it."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.wait()


def in_background(func: Callable[[], object]) -> Background:
    """Run `func()` in a forked child while this process goes on, where that is safe (no
    other thread: the daemon's scheduler) and there is a second core to run it on. The
    child dies with this process, and leaves only through os._exit: it never flushes our
    buffers or closes our database connections."""
    if (os.cpu_count() or 1) < 2 or not _may_fork():
        return Background(None)
    gc.freeze()  # the child's collector then never walks (and so copies) our pages
    try:
        pid = os.fork()
    except OSError:
        gc.unfreeze()
        return Background(None)
    if pid == 0:  # the child: its outcome is its exit code
        code = 1
        try:
            _die_with_parent()
            func()
            code = 0
        finally:
            os._exit(code)
    gc.unfreeze()
    return Background(pid)
