"""Entry point of the `runner` console script.

Each import below registers its commands on `runner.cli_app.app`.
"""

from runner.cli_app import app
from runner.commands import registry_cmds  # noqa: F401  list, show, validate
from runner.commands import leaderboard_cmds  # noqa: F401  submit, leaderboard build|serve
from runner.commands import sample_cmd  # noqa: F401  sample
from runner.commands import encoders_cmd  # noqa: F401  encoders check
from runner.commands import demo_data_cmd  # noqa: F401  demo-data
from runner.commands import eval_cmd  # noqa: F401  eval, demo
from runner.commands import bench_cmd  # noqa: F401  bench

__all__ = ["app"]


if __name__ == "__main__":
    app()
