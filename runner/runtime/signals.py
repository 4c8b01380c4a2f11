"""SIGTERM ends a `runner` command the way Ctrl-C does: a clean message, no partial file left as if complete.

Python turns SIGINT into KeyboardInterrupt, but SIGTERM (what `kill`, systemd and batch schedulers send) ends the
process at once, skipping the clean-up of half-written temp files. `install()` makes SIGTERM raise KeyboardInterrupt
in the main thread, so both signals unwind through `runner.runtime.atomic.atomic_write` (the temp file is removed; the target
is either the old complete file or absent); one line says so, and the command exits 130 without a traceback.
Decode workers and fit processes (runner.classify.fit_processes) ignore SIGINT (`quiet_worker`): the run that owns them decides,
and they end with it. The in-process decoding path (`--workers 0`) leaves the run's own handlers alone.
A run killed with SIGKILL can end nothing: its decode workers, file checkers, fit processes, the bench's image writers
and encoder child processes (runner.encoders.isolation) ask Linux to send them SIGTERM when it dies
(`die_with_parent`). A pool's processes do both from one initializer (`start_owned_worker`).
"""

from __future__ import annotations

import signal


def _raise_interrupt(signum, frame):
    import sys

    name = signal.Signals(signum).name
    print(f"interrupted ({name}): stopping; files being written are discarded, finished ones are kept",
          file=sys.stderr, flush=True)
    raise KeyboardInterrupt(name)


def install() -> None:
    """In the main process of a CLI command: SIGTERM and SIGINT -> one message, then KeyboardInterrupt (typer: exit 130)."""
    try:
        signal.signal(signal.SIGTERM, _raise_interrupt)
        signal.signal(signal.SIGINT, _raise_interrupt)
    except ValueError:  # not the main thread (e.g. a test runner invoking the app in a thread): leave it
        pass


def die_with_parent(parent_pid: int | None = None) -> None:
    """In a child process: ask Linux to send it SIGTERM when the process that started it dies (PR_SET_PDEATHSIG).

    A run killed with SIGKILL cannot shut its children down, and they would otherwise wait on their queue, or go on
    fitting, for ever. Linux counts the death of the *thread* that started the child; the runner starts its children
    from the thread that waits for them. parent_pid: the parent as the child was meant to have it; when the parent
    died before the request was made (the child then has another one already), the child ends at once.
    Elsewhere (no prctl) this is a no-op; the run's own exit still stops them.
    """
    import ctypes
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)


def quiet_worker() -> None:
    """In a worker process: a terminal's Ctrl-C goes to the whole process group; only the parent acts on it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def start_owned_worker(parent_pid: int | None = None) -> None:
    """A pool's initializer: the worker is quiet on Ctrl-C (the run decides) and ends when the run dies (a SIGKILL)."""
    quiet_worker()
    die_with_parent(parent_pid)
