"""How many worker processes a piece of work gets: never more than its pieces, nor MAX_WORKERS_PER_CORE a core.

`--workers 40` for 2 chunks started 40 processes; `--workers 100000` hung starting them (and the device path sized
its page-locked staging ring by it). The commands refuse a value over `worker_cap()` with a message naming it
(`check_workers`); the pools take `bounded_workers(requested, pieces)`.
"""

from __future__ import annotations

import os

# Decoding is CPU-bound: past a few processes a core, more only add memory (a network file system's latency is
# the one reason to go past one a core).
MAX_WORKERS_PER_CORE = 4


def available_cores() -> int:
    """CPU cores this process may run on (a container's or taskset's limit, not the host's count)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


def worker_cap(cores: int | None = None) -> int:
    return MAX_WORKERS_PER_CORE * (available_cores() if cores is None else cores)


def bounded_workers(requested: int, pieces: int, cores: int | None = None) -> int:
    """Processes to start for `pieces` units of work (chunks, batches, files): at most one per piece and no more
    than worker_cap(); 0 stays 0 (in-process)."""
    return max(0, min(int(requested), int(pieces), worker_cap(cores)))


def check_workers(requested: int | None, option: str = "--workers") -> str | None:
    """Why a requested number of processes is refused (None: fine, or not given)."""
    if requested is None or requested <= worker_cap():
        return None
    return (f"{option} {requested} is more than {worker_cap():,} ({MAX_WORKERS_PER_CORE} per core, "
            f"{available_cores()} core(s) here): decoding is CPU-bound, more processes only add memory")
