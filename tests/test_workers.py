"""syndicate.workers: the forked pool gives what a plain loop gives, in order."""

from __future__ import annotations

import os
from collections.abc import Sequence

from syndicate import workers


def test_parallel_imap_gives_the_results_of_a_loop_in_order() -> None:
    """Items are shared with the forked workers, the function too (a lambda is fine)."""
    items = list(range(1000))
    results = workers.parallel_map(lambda x: (x * x, os.getpid()), items)
    assert [square for square, _ in results] == [x * x for x in items]
    if min(os.cpu_count() or 1, workers.MAX_WORKERS) > 1:
        assert os.getpid() not in {pid for _, pid in results}


def test_prepared_chunks_are_made_as_the_workers_take_them() -> None:
    """With `prepare`, each chunk's inputs are made in this process just before it is sent,
    with only a few chunks ahead of the results, so they are never all in memory."""
    items = list(range(1000))
    prepared: list[int] = []

    def prepare(chunk: Sequence[int]) -> list[str]:
        prepared.extend(chunk)
        return [f"<{x}>" for x in chunk]

    results = []
    ahead = 0
    for result in workers.parallel_imap(str.upper, items, chunksize=10, prepare=prepare):
        results.append(result)
        ahead = max(ahead, len(prepared) - len(results))
    assert results == [f"<{x}>" for x in items]
    assert prepared == items
    cores = min(os.cpu_count() or 1, workers.MAX_WORKERS)
    if cores > 1:
        assert ahead <= 10 * cores * workers.IN_FLIGHT


def test_prepare_is_used_when_the_work_stays_in_this_process() -> None:
    """Too few items for workers: the same results, from the same prepared inputs."""
    calls: list[int] = []

    def prepare(chunk: Sequence[int]) -> list[int]:
        calls.append(len(chunk))
        return [x * 2 for x in chunk]

    assert list(workers.parallel_imap(lambda x: x + 1, [1, 2, 3], prepare=prepare)) == [3, 5, 7]
    assert calls == [3]
