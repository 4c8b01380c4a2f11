"""How independent fits share the cores: the split of threads, the ordered thread map, its errors."""

from __future__ import annotations

import threading
import time

import pytest

from runner.cores import map_in_threads, split_threads


@pytest.mark.parametrize(("threads", "jobs", "expected"), [
    (2, 5, (2, 1)), (16, 5, (5, 3)), (2, 1, (1, 2)), (1, 9, (1, 1)), (0, 3, (1, 1)), (7, 0, (1, 7)), (3, 2, (2, 1)),
])
def test_threads_are_shared_out_evenly_never_more_fits_than_jobs(threads, jobs, expected):
    assert split_threads(threads, jobs) == expected


def test_results_keep_the_order_of_the_items_whatever_finishes_first():
    def slow_first(i):
        time.sleep(0.05 if i == 0 else 0.0)
        return i * i

    assert map_in_threads(slow_first, range(6), 3) == [0, 1, 4, 9, 16, 25]


def test_calls_run_side_by_side_up_to_the_worker_count():
    running, peak, lock = [0], [0], threading.Lock()

    def work(_):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    map_in_threads(work, range(8), 3)
    assert peak[0] == 3
    peak[0] = 0
    map_in_threads(work, range(8), 1)  # inline, in the calling thread
    assert peak[0] == 1


def test_an_error_is_raised_and_the_calls_not_started_are_dropped():
    started = []

    def work(i):
        started.append(i)
        if i == 0:
            raise ValueError("fold 0 failed")
        time.sleep(0.05)
        return i

    with pytest.raises(ValueError, match="fold 0 failed"):
        map_in_threads(work, range(20), 2)
    assert len(started) < 20
