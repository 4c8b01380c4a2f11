"""Entry point of the `runner` console script.

Each import below registers its commands on `runner.cli.app.app`. The thread environment is set first, before any
of them can load OpenMP (runner.runtime.threads says why).
"""

from runner.runtime.threads import set_thread_environment

set_thread_environment()

from runner.cli.app import app
from runner.cli.commands import (
    bench,  # noqa: F401  bench
    cards,  # noqa: F401  list, show, validate
    demo_data,  # noqa: F401  demo-data
    doctor,  # noqa: F401  doctor
    encoders,  # noqa: F401  encoders check
    evaluate,  # noqa: F401  eval, demo
    leaderboard,  # noqa: F401  submit, leaderboard build|serve
    sample,  # noqa: F401  sample
)
from runner.runtime import signals

__all__ = ["app", "run"]
signals.install()  # SIGTERM unwinds like Ctrl-C: temp files removed, one line instead of a traceback (exit 130)


def run() -> None:
    """The console script: the app, then an exit that skips the interpreter's teardown. After the last line a
    command prints, tearing down torch's and OpenMP's thread pools and every module took 1 s on a quiet 2-core box and
    3-6 s on a busy one, with nothing on the screen. The exit handlers still run (pools closed, temporary files
    removed) and stdout/stderr are flushed; every file the runner writes is closed (and renamed into place) before."""
    import atexit
    import os
    import sys

    try:
        app()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
