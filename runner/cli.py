"""Entry point of the `runner` console script.

Each import below registers its commands on `runner.cli_app.app`.
"""

import runner.signals as signals
from runner.cli_app import app
from runner.commands import (
    bench_cmd,  # noqa: F401  bench
    demo_data_cmd,  # noqa: F401  demo-data
    encoders_cmd,  # noqa: F401  encoders check
    eval_cmd,  # noqa: F401  eval, demo
    leaderboard_cmds,  # noqa: F401  submit, leaderboard build|serve
    registry_cmds,  # noqa: F401  list, show, validate
    sample_cmd,  # noqa: F401  sample
)

__all__ = ["app"]
signals.install()  # SIGTERM unwinds like Ctrl-C: temp files removed, one line instead of a traceback (exit 130)


if __name__ == "__main__":
    app()
