"""The one typer application every command module registers on, and the one place where errors become exit codes.

Command modules import heavy libraries inside their functions so that `runner --help` stays fast.

Every command is wrapped by `handle_errors`: a `registry.errors.RegistryError` (the base of the project's error types)
is printed as `error: <message>` on stderr, one line per line of the message, and the command exits with the error's
`exit_code` (2 bad input, 1 failure); an OSError exits 1 the same way. Never a traceback. Commands signal a bad
option with `fail(message)`.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from typer.core import TyperGroup

from registry.errors import CardError, CardProblem, RegistryError, shown

EXIT_FAILURE, EXIT_INVALID = 1, 2
# No id, path or option value a command takes is longer than a Linux path (PATH_MAX); anything longer is refused
# before a command runs, so no message can echo 100,000 characters back.
MAX_ARGUMENT = 4096
MAX_LINE = 2000  # characters of one message line; the rest is cut (user strings are already bounded at the source)


class CLIError(RegistryError):
    """A bad option or argument given on the command line."""

    exit_code = EXIT_INVALID


def fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    """Stop the command: the handler prints `message` and exits with `code`."""
    raise CLIError(message, exit_code=code)


def check_workers_option(workers: int | None, option: str = "--workers") -> None:
    """Refuse a number of processes past runner.runtime.workers.worker_cap (4 a core)."""
    from runner.runtime.workers import check_workers

    problem = check_workers(workers, option)
    if problem:
        fail(problem)


def report(exc: BaseException, code: int) -> NoReturn:
    lines = [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    for line in lines:
        if len(line) > MAX_LINE:
            line = line[: MAX_LINE - 200] + f" … [{len(line) - MAX_LINE + 200:,} characters cut] … " + line[-150:]
        typer.echo(line if line.startswith("error: ") else f"error: {line}", err=True)
    raise typer.Exit(code)


def handle_errors(func):
    """Run a command; a RegistryError or OSError becomes its one-line message and exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except RegistryError as exc:
            report(exc, exc.exit_code)
        except OSError as exc:
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            report(RuntimeError(f"{where}{exc.strerror or exc}"), EXIT_FAILURE)

    return wrapper


class BoundedGroup(TyperGroup):
    """The root command: refuses an argument longer than MAX_ARGUMENT before any command (or click's own usage
    messages, which quote the value) sees it."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        for number, arg in enumerate(args, 1):
            if len(arg) > MAX_ARGUMENT:  # a usage error: typer prints it as one, exit 2
                raise typer.BadParameter(f"argument {number} is {len(arg):,} characters long; at most "
                                         f"{MAX_ARGUMENT:,} are taken (it starts {shown(arg, 40)})", ctx=ctx)
        return super().parse_args(ctx, args)


class RunnerApp(typer.Typer):
    """A Typer whose every command (and sub-app command) goes through `handle_errors`."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)
        return lambda func: register(handle_errors(func))

    def callback(self, *args, **kwargs):
        register = super().callback(*args, **kwargs)
        return lambda func: register(handle_errors(func))


@dataclass
class CLIState:
    """Set by the root callback on every invocation (so in-process test runs never leak into each other)."""

    registry_root: Path | None = None
    extra_cards: list[Path] = field(default_factory=list)


STATE = CLIState()

app = RunnerApp(
    cls=BoundedGroup,
    name="runner",
    help="Benchmark registry for chest X-ray embedding models: validate cards, sample, evaluate, submit, publish.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cxr-embedding-registry")
    except PackageNotFoundError:
        return "unknown (not installed; run from a checkout)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"runner {package_version()} (cxr-embedding-registry, Python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False,
    registry: Annotated[Path | None, typer.Option(
        "--registry", help="Registry root holding tasks/, encoders/ and registry/datasets/ (default: "
        "$CXR_REGISTRY_ROOT, else this checkout).", show_default=False)] = None,
    card: Annotated[list[Path] | None, typer.Option(
        "--card", help="A card file outside the registry (encoder, task or dataset), added to it for this command; "
        "repeatable. E.g. `runner --card ~/cards/my-model.yaml submit ...`.", show_default=False)] = None,
) -> None:
    """Benchmark registry for chest X-ray embedding models: validate cards, sample, evaluate, submit, publish."""
    STATE.registry_root = None
    STATE.extra_cards = []
    if registry is not None:
        if not registry.is_dir():
            fail(f"--registry {registry}: not a folder (expected a registry root with tasks/, encoders/, "
                 "registry/datasets/)")
        STATE.registry_root = registry.resolve()
    STATE.extra_cards = [Path(p) for p in card or []]


def registry_root() -> Path | None:
    """--registry, else $CXR_REGISTRY_ROOT (read by registry.cards), else this checkout."""
    return STATE.registry_root


def load_cli_registry(extra_cards: list[Path] = ()):
    """The registry the command works on: --registry's (or the default) plus every --card file (and `extra_cards`).

    Extra cards are schema-checked and cross-checked like registry cards; an id the registry already has is refused.
    Raises CardError (exit 2) listing every problem.
    """
    import dataclasses

    from registry.cards import load_card, load_registry
    from registry.cross_checks import cross_card_problems

    reg = load_registry(registry_root())
    paths = [*STATE.extra_cards, *extra_cards]
    if not paths:
        return reg
    # a copy: the cached registry stays as the files say
    reg = dataclasses.replace(reg, datasets=dict(reg.datasets), tasks=dict(reg.tasks), encoders=dict(reg.encoders))
    cards, problems = [], []
    for path in dict.fromkeys(Path(p).resolve() for p in paths):
        try:
            card = load_card(path)
        except CardError as exc:
            problems.extend(exc.problems)
            continue
        existing = reg.of_kind(card.kind).get(card.id)
        if existing is not None and existing.path != card.path:
            problems.append(CardProblem(card.path, f"{card.kind} id {card.id!r} is already defined in {existing.path}",
                                        "/id", expected="a new id"))
            continue
        reg.of_kind(card.kind)[card.id] = card
        cards.append(card)
    for card in cards:
        problems.extend(cross_card_problems(card, reg))
    if problems:
        raise CardError(problems)
    return reg


def is_card_path(text: str) -> bool:
    """An --encoder/--task value that names a card file rather than an id."""
    return text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text
