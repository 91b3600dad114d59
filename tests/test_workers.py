"""syndicate.workers: the forked pool gives what a plain loop gives, in order."""

from __future__ import annotations

import os

from syndicate import workers


def test_parallel_imap_gives_the_results_of_a_loop_in_order() -> None:
    """Items are shared with the forked workers, the function too (a lambda is fine)."""
    items = list(range(1000))
    results = workers.parallel_map(lambda x: (x * x, os.getpid()), items)
    assert [square for square, _ in results] == [x * x for x in items]
    if min(os.cpu_count() or 1, workers.MAX_WORKERS) > 1:
        assert os.getpid() not in {pid for _, pid in results}
