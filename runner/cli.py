"""Entry point of the `runner` console script.

Each import below registers its commands on `runner.cli_app.app`.
"""

from runner.cli_app import app
from runner.commands import registry_cmds  # noqa: F401  list, show, validate

__all__ = ["app"]


if __name__ == "__main__":
    app()
