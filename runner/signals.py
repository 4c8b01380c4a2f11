"""SIGTERM ends a `runner` command the way Ctrl-C does: a clean message, no partial file left as if complete.

Python turns SIGINT into KeyboardInterrupt, but SIGTERM (what `kill`, systemd and batch schedulers send) ends the
process at once, skipping the clean-up of half-written temp files. `install()` makes SIGTERM raise KeyboardInterrupt
in the main thread, so both signals unwind through `runner.atomic.atomic_write` (the temp file is removed; the target
is either the old complete file or absent) and click prints "Aborted!" (exit 1) instead of a traceback.
Decode workers ignore SIGINT (`quiet_worker`): the run that owns them decides, and they die with it.
"""

from __future__ import annotations

import signal


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def install() -> None:
    """In the main process of a CLI command: SIGTERM -> KeyboardInterrupt."""
    try:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread (e.g. a test runner invoking the app in a thread): leave it
        pass


def quiet_worker() -> None:
    """In a worker process: a terminal's Ctrl-C goes to the whole process group; only the parent acts on it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
