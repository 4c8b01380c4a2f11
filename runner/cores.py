"""The CPU cores a run may use, and how independent fits share them.

Entries:
* `available_cores()`: the cores this process may run on (its CPU affinity, which containers and `taskset` narrow;
  os.cpu_count() counts the host's). Decode workers, LightGBM threads and k-means fits all start from it.
* `split_threads(threads, jobs)`: how `threads` are shared by `jobs` independent fits: (fits at once, threads each).
* `map_in_threads(fn, items, workers)`: fn over items, `workers` at a time, results in item order.

Why threads side by side rather than one fit on every thread: on the 2-core dev machine a LightGBM fit on two threads
was only 1.4x faster than on one (the 2000 x 1024 5-fold classify: 7.6 s on one thread, 5.4 s on two), while two
one-thread fits at once ran 1.8x faster (4.3 s). LightGBM and scikit-learn's KMeans release the GIL while they fit,
and OpenMP's thread count is a per-thread setting, so each Python thread runs its own fit on its own thread count.
With `deterministic=True` LightGBM's predictions do not depend on the thread count (tests/test_classify.py), so
neither does any result. LightGBM's Dataset construction is still done one at a time (runner.classify's lock).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """CPU cores this process may run on (a container's or taskset's limit, not the host's count), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # not Linux
        return max(os.cpu_count() or 1, 1)


def split_threads(threads: int, jobs: int) -> tuple[int, int]:
    """(fits run at once, threads per fit) for `jobs` independent fits on `threads` threads.

    As many fits at once as there are threads (never more than there are fits), the threads shared out evenly:
    2 threads, 5 folds -> (2, 1); 16 threads, 5 folds -> (5, 3); 2 threads, 1 fit -> (1, 2)."""
    threads, jobs = max(int(threads), 1), max(int(jobs), 1)
    at_once = min(threads, jobs)
    return at_once, max(threads // at_once, 1)


def map_in_threads(fn: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    """[fn(item) for item in items], `workers` at a time in Python threads (inline when workers <= 1).

    The first exception raised by any call is raised here, after the calls already started have finished."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)))
    futures = [pool.submit(fn, item) for item in items]
    try:
        return [future.result() for future in futures]
    finally:  # on an error (or Ctrl-C) the calls not yet started are dropped; those running finish first
        pool.shutdown(wait=True, cancel_futures=True)
