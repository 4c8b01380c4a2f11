"""SIGTERM ends a `runner` command the way Ctrl-C does: a clean message, no partial file left as if complete.

Python turns SIGINT into KeyboardInterrupt, but SIGTERM (what `kill`, systemd and batch schedulers send) ends the
process at once, skipping the clean-up of half-written temp files. `install()` makes SIGTERM raise KeyboardInterrupt
in the main thread, so both signals unwind through `runner.runtime.atomic.atomic_write` (the temp file is removed; the target
is either the old complete file or absent); one line says so, and the command exits 130 without a traceback.
Decode workers and fit processes (runner.classify.fit_processes) ignore SIGINT (`quiet_worker`): the run that owns them decides,
and they end with it. The in-process decoding path (`--workers 0`) leaves the run's own handlers alone.
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


def quiet_worker() -> None:
    """In a worker process: a terminal's Ctrl-C goes to the whole process group; only the parent acts on it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
