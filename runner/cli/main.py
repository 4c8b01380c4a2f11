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

__all__ = ["app"]
signals.install()  # SIGTERM unwinds like Ctrl-C: temp files removed, one line instead of a traceback (exit 130)


if __name__ == "__main__":
    app()
