"""`make test`'s worker count (tests/worker_count.py): one per core when quiet, three times the other runnable
processes when the machine is shared, within memory."""

from __future__ import annotations

from tests.worker_count import (
    MAX_WORKERS,
    WORKER_MEMORY_BYTES,
    memory_available,
    other_runnable_tasks,
    workers_for,
)

PLENTY = 64 * 2**30


def test_one_worker_per_core_when_quiet_and_three_times_the_others_when_shared():
    assert workers_for(cores=2, others=0, memory_available=PLENTY) == 2
    assert workers_for(cores=2, others=1, memory_available=PLENTY) == 3
    assert workers_for(cores=2, others=2, memory_available=PLENTY) == 6  # the two busy loops of issue 24
    assert workers_for(cores=16, others=2, memory_available=PLENTY) == 16
    assert workers_for(cores=2, others=50, memory_available=PLENTY) == MAX_WORKERS


def test_the_count_fits_in_the_memory_available():
    assert workers_for(cores=2, others=2, memory_available=2 * WORKER_MEMORY_BYTES) == 2
    assert workers_for(cores=8, others=0, memory_available=0) == 1  # never none


def test_the_runnable_count_leaves_out_the_reader_and_takes_the_median(tmp_path):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("2.10 1.50 0.90 3/412 12345\n")
    assert other_runnable_tasks(samples=3, interval_s=0, loadavg=loadavg) == 2
    loadavg.write_text("0.00 0.00 0.00 1/99 1\n")
    assert other_runnable_tasks(samples=3, interval_s=0, loadavg=loadavg) == 0
    assert other_runnable_tasks(samples=3, interval_s=0, loadavg=tmp_path / "absent") == 0
    loadavg.write_text("garbage\n")
    assert other_runnable_tasks(samples=3, interval_s=0, loadavg=loadavg) == 0


def test_memory_available_reads_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   2000000 kB\n")
    assert memory_available(meminfo) == 2000000 * 1024
    assert memory_available(tmp_path / "absent") == MAX_WORKERS * WORKER_MEMORY_BYTES
