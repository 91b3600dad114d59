"""Spreading CPU-bound work (parsing, Markdown rendering) over the machine's cores."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
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


def _call_shared(bounds: tuple[int, int]) -> list[Any]:
    assert _shared is not None, "only called in a worker forked by parallel_imap"
    func, items = _shared
    return [func(items[index]) for index in range(*bounds)]


def parallel_map(func: Callable[[T], R], items: Sequence[T], chunksize: int = 16) -> list[R]:
    """`[func(x) for x in items]`, in worker processes when it pays off."""
    return list(parallel_imap(func, items, chunksize))


def parallel_imap(func: Callable[[T], R], items: Sequence[T], chunksize: int = 16) -> Iterator[R]:
    """`func(x) for x in items`, in order, in worker processes when it pays off.

    Workers are forked, so they start in milliseconds with every module already imported.
    Forking a process that runs other threads (the daemon's scheduler) is unsafe, so there
    the work stays in this process.
    """
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    if (
        len(items) < MIN_ITEMS
        or workers < 2
        or threading.active_count() > 1
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
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
            tasks = (
                (start, min(start + chunksize, len(items)))
                for start in range(0, len(items), chunksize)
            )
            for results in pool.map(_call_shared, tasks):
                yield from results
    finally:
        gc.unfreeze()
        _shared = previous
