"""The one typer application every command module registers on.

Command modules import heavy libraries inside their functions so that `runner --help` stays fast.
"""

import typer

app = typer.Typer(
    name="runner",
    help="Benchmark registry for chest X-ray embedding models: validate cards, sample, evaluate, submit, publish.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
