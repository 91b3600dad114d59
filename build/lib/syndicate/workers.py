"""Spreading CPU-bound work (parsing, Markdown rendering) over the machine's cores."""

from __future__ import annotations

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
# The items of the running parallel_imap. Forked workers inherit them, so inputs (posts of
# several KB each) are never pickled; only the index goes to a worker, the result comes back.
_shared: Sequence[Any] = ()


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


def _call_shared(task: tuple[Callable[[Any], Any], int]) -> Any:
    func, index = task
    return func(_shared[index])


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
    _shared = items
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_die_with_parent
        ) as pool:
            tasks = ((func, index) for index in range(len(items)))
            yield from pool.map(_call_shared, tasks, chunksize=chunksize)
    finally:
        _shared = ()
