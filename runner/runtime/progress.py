"""Progress as periodic log lines, for runs whose stderr is not a terminal (CI logs, `nohup`, a pipe).

`LogProgress` has the part of rich.progress.Progress the embedding loop uses (context manager, add_task, advance) and
prints `<description>: <done>/<total> (<pct>%), <rate> images/s, ~<eta> s left` on stderr at most every `every_s`
seconds, and once at the end; a bar full of carriage returns would be unreadable there.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field


@dataclass
class _Task:
    description: str
    total: int
    done: int = 0
    started: float = field(default_factory=time.perf_counter)


class LogProgress:
    def __init__(self, every_s: float = 10.0, stream=None):
        self.every_s = every_s
        self.stream = stream
        self.tasks: list[_Task] = []
        self._last = time.perf_counter()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for task in self.tasks:
            if task.done:
                self._line(task)

    def add_task(self, description: str, total: int) -> int:
        self.tasks.append(_Task(description, int(total)))
        return len(self.tasks) - 1

    def advance(self, task_id: int, n: int = 1) -> None:
        task = self.tasks[task_id]
        task.done += n
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            self._line(task)

    def _line(self, task: _Task) -> None:
        elapsed = max(time.perf_counter() - task.started, 1e-9)
        rate = task.done / elapsed
        pct = 100.0 * task.done / task.total if task.total else 100.0
        eta = f", ~{(task.total - task.done) / rate:.0f} s left" if rate > 0 and task.done < task.total else ""
        print(f"{task.description}: {task.done}/{task.total} ({pct:.0f}%), {rate:.1f} images/s{eta}",
              file=self.stream or sys.stderr, flush=True)
