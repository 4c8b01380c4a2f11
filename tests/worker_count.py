"""How many workers `make test` starts (`--fork-workers auto`, tests/fork_workers.py; also pytest-xdist's `-n auto`,
tests/conftest.py's pytest_xdist_auto_num_workers).

The suite is CPU-bound. Linux shares the CPUs fairly between runnable processes, so n workers beside `others`
CPU-bound processes get n / (n + others) of the machine. On a quiet machine one worker per core uses all of it, and
more workers only add their start-up and contention. On a shared machine, 3 x `others` workers keep 3/4 of the machine
instead of cores / (cores + others) (issue 24's target is at most 1.5 times the quiet time beside two busy loops; on
the 2-core machine two workers would take twice as long). More is not always faster: processes that share a core run
slower (caches), and an xdist worker also pays its own collection (~7 CPU-s). Beside two busy loops on the 2-core
machine, fork workers took 336.1 s as 6 and 336.0 s as 8; xdist workers 463 s as 6 and 477 s as 4 at an older
commit (docs/benchmarks.md). A worker grows to ~1.5 GiB as its tests load torch or TensorFlow, so the count stays
within the memory the machine has available.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

MAX_WORKERS = 8  # the most that 3 x others adds up to (a machine with more cores still gets one per core)
WORKER_MEMORY_BYTES = 3 * 2**30  # a worker's peak resident memory is ~1.5 GiB (torch, TensorFlow in one of them)


def workers_for(cores: int, others: int, memory_available: int) -> int:
    """max(cores, 3 x others) workers (3 x others at most MAX_WORKERS), at most what the available memory holds, at
    least 1."""
    wanted = max(cores, min(3 * others, MAX_WORKERS))
    return max(1, min(wanted, memory_available // WORKER_MEMORY_BYTES))


def other_runnable_tasks(samples: int = 9, interval_s: float = 0.05, loadavg: Path = Path("/proc/loadavg")) -> int:
    """How many tasks besides this one are ready to run: the median of `samples` readings of the kernel's count of
    runnable tasks (/proc/loadavg's fourth field, "running/total", which counts the reader too). 0 where there is no
    /proc/loadavg."""
    readings = []
    for i in range(samples):
        try:
            readings.append(int(loadavg.read_text().split()[3].split("/")[0]) - 1)
        except (OSError, IndexError, ValueError):
            return 0
        if i + 1 < samples:
            time.sleep(interval_s)
    return max(0, round(statistics.median(readings)))


def memory_available(meminfo: Path = Path("/proc/meminfo")) -> int:
    """MemAvailable in bytes; where it cannot be read, enough for MAX_WORKERS."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return MAX_WORKERS * WORKER_MEMORY_BYTES


def auto_workers() -> int:
    """The count for this machine, now."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return workers_for(cores, other_runnable_tasks(), memory_available())
