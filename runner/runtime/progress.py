"""What a command is doing, as lines on stderr: phases, a heartbeat while one runs long, and progress counts.

`reporting(mode)` installs one `Reporter` for a command (`runner eval`, `demo`, `leaderboard build`); code deeper
down calls the module functions `phase(text)` and `say(text)`, which do nothing when no reporter is installed (a
library call, a test). A phase prints its line when it starts; while it runs, a heartbeat thread prints
`  ... still <phase> (<n> s[, done/total])` whenever nothing was printed for HEARTBEAT_S seconds, so no phase is
silent for longer than that, in a terminal or a pipe. On a terminal a `live` phase (one that draws a rich progress
bar) gets no heartbeat lines: the bar moves instead.

`LogProgress` has the part of rich.progress.Progress the embedding loop uses (context manager, add_task, advance) and
prints `<description>: <done>/<total> (<pct>%), <rate> images/s, ~<eta> s left` on stderr after the first batch, then
at most every `every_s` seconds, and once at the end; a bar full of carriage returns would be unreadable in a log.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

HEARTBEAT_S = 3.0  # longest silence while a phase runs; the bound is 5 s, this leaves room for a busy machine


@dataclass
class Phase:
    text: str
    live: bool = False  # draws its own progress bar on a terminal: no heartbeat there
    total: int | None = None
    done: int = 0
    started: float = field(default_factory=time.monotonic)

    def advance(self, n: int = 1) -> None:
        self.done += n

    def heartbeat_text(self) -> str:
        label = self.text.split(":")[0].split(" (")[0]  # "sampling effusion-demo: 150 positives ..." -> its head
        count = f", {self.done}/{self.total}" if self.total is not None else ""
        return f"... still {label} ({time.monotonic() - self.started:.0f} s{count})"


class Reporter:
    """Phase lines and a heartbeat on one stream (module docstring)."""

    def __init__(self, stream=None, terminal: bool = False, every_s: float = HEARTBEAT_S):
        self.stream = stream
        self.terminal = terminal
        self.every_s = every_s
        self.phases: list[Phase] = []
        self.last_output = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def line(self, text: str, depth: int | None = None) -> None:
        """One line, indented two spaces per phase it runs inside."""
        indent = "  " * (len(self.phases) if depth is None else depth)
        with self._lock:
            print(indent + text, file=self.stream or sys.stderr, flush=True)
            self.last_output = time.monotonic()

    def touched(self) -> None:
        """Something else printed (a progress line): the silence starts again."""
        self.last_output = time.monotonic()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="runner-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _beat(self) -> None:
        while not self._stop.wait(min(0.25, self.every_s / 4)):
            current = self.phases[-1] if self.phases else None
            if current is None or (current.live and self.terminal):
                continue
            if time.monotonic() - self.last_output >= self.every_s:
                self.line(current.heartbeat_text(), depth=len(self.phases))


_ACTIVE: Reporter | None = None


def _before_fork() -> None:  # a fork never happens while the heartbeat holds the stream's lock
    if _ACTIVE is not None:
        _ACTIVE._lock.acquire()


def _after_fork_parent() -> None:
    if _ACTIVE is not None and _ACTIVE._lock.locked():
        _ACTIVE._lock.release()


def _after_fork_child() -> None:
    global _ACTIVE
    _ACTIVE = None  # the heartbeat thread does not exist in the child; its lock is never taken again


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child)


def active() -> Reporter | None:
    return _ACTIVE


@contextmanager
def reporting(mode: bool | str, stream=None) -> Iterator[Reporter | None]:
    """Install a Reporter for the duration (mode True: a terminal, "log": a pipe or file, False: nothing). Inside an
    active one (a command calling another stage that asks for its own), the outer one stays."""
    global _ACTIVE
    if not mode or _ACTIVE is not None:
        yield _ACTIVE
        return
    reporter = Reporter(stream, terminal=mode is True)
    _ACTIVE = reporter
    reporter.start()
    try:
        yield reporter
    finally:
        reporter.stop()
        _ACTIVE = None


def say(text: str) -> None:
    """One line through the active reporter (nothing without one)."""
    if _ACTIVE is not None:
        _ACTIVE.line(text)


@contextmanager
def phase(text: str, live: bool = False, total: int | None = None) -> Iterator[Phase]:
    """Print `text ...` and keep a heartbeat on it until the block ends; `total`: the heartbeat shows done/total
    (the block calls `.advance()`)."""
    current = Phase(text, live=live, total=total)
    reporter = _ACTIVE
    if reporter is None:
        yield current
        return
    reporter.line(f"{text} ...")
    reporter.phases.append(current)
    try:
        yield current
    finally:
        reporter.phases.remove(current)


def counted(items, text: str) -> Iterator:
    """The items, inside phase(text) whose heartbeat shows how many are done (a loop over files, results)."""
    items = list(items)
    with phase(text, total=len(items)) as current:
        for item in items:
            yield item
            current.advance()


@dataclass
class _Task:
    description: str
    total: int
    done: int = 0
    started: float = field(default_factory=time.perf_counter)


class LogProgress:
    def __init__(self, every_s: float = HEARTBEAT_S, stream=None):
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
        first = task.done == 0
        task.done += n
        now = time.perf_counter()
        if (first or now - self._last >= self.every_s) and task.done < task.total:  # the last one: on exit
            self._last = now
            self._line(task)

    def _line(self, task: _Task) -> None:
        elapsed = max(time.perf_counter() - task.started, 1e-9)
        rate = task.done / elapsed
        pct = 100.0 * task.done / task.total if task.total else 100.0
        eta = f", ~{(task.total - task.done) / rate:.0f} s left" if rate > 0 and task.done < task.total else ""
        text = f"{task.description}: {task.done}/{task.total} ({pct:.0f}%), {rate:.1f} images/s{eta}"
        if _ACTIVE is not None and self.stream is None:
            _ACTIVE.line(text)
        else:
            print(text, file=self.stream or sys.stderr, flush=True)
