"""The one typer application every command module registers on, and the one place where errors become exit codes.

Command modules import heavy libraries inside their functions so that `runner --help` stays fast.

Every command is wrapped by `handle_errors`: a `registry.errors.RegistryError` (the base of the project's error types)
is printed as `error: <message>` on stderr, one line per line of the message, and the command exits with the error's
`exit_code` (2 bad input, 1 failure); an OSError exits 1 the same way. Never a traceback. Commands signal a bad
option with `fail(message)`. A reader that stops reading (`runner list tasks | head`) is not an error: the command
stops without a message and exits 141, as a command killed by SIGPIPE does in a shell.
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from typer.core import TyperGroup

from registry.errors import CardError, CardProblem, RegistryError, shown

EXIT_FAILURE, EXIT_INVALID = 1, 2
EXIT_READER_GONE = 128 + 13  # the shell's status of a command that SIGPIPE ended (13)
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
        except BrokenPipeError as exc:
            if not stdout_reader_gone():  # a pipe of the command's own (a child process): a failure
                report(RuntimeError(str(exc)), EXIT_FAILURE)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is still buffered goes nowhere
            raise typer.Exit(EXIT_READER_GONE) from None
        except OSError as exc:
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            report(RuntimeError(f"{where}{exc.strerror or exc}"), EXIT_FAILURE)

    return wrapper


def stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reading end is closed (poll reports an error on the writing end)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no file descriptor (captured output)
        return False


GLOBAL_OPTIONS = ("--registry", "--card")  # the root's options that take a value (before the command)
# click's UsageError as typer raises it (typer >= 0.22 has its own copy of click): exit 2 with the usage line
USAGE_ERROR = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "UsageError")


class BoundedGroup(TyperGroup):
    """The root command: refuses an argument longer than MAX_ARGUMENT before any command (or click's own usage
    messages, which quote the value) sees it, and a global option given after the command with where it goes.
    Its help shows no Python types (`<bool>`, `<list[Path]>`): a flag shows nothing, a value its kind (plain_metavars).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        plain_metavars(self)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        for number, arg in enumerate(args, 1):
            if len(arg) > MAX_ARGUMENT:  # a usage error: typer prints it as one, exit 2
                raise typer.BadParameter(f"argument {number} is {len(arg):,} characters long; at most "
                                         f"{MAX_ARGUMENT:,} are taken (it starts {shown(arg, 40)})", ctx=ctx)
        misplaced = misplaced_global_option(args)
        if misplaced:
            raise USAGE_ERROR(misplaced, ctx=ctx)
        return super().parse_args(ctx, args)


def misplaced_global_option(args: list[str]) -> str | None:
    """The message for `runner show task x --card F`: --card belongs to runner itself, before the command."""
    position = 0
    while position < len(args):  # past the root's own options to the command's name
        arg = args[position]
        if arg in GLOBAL_OPTIONS:
            position += 2
        elif arg.startswith("-"):
            position += 1
        else:
            break
    command = args[position: position + 1]
    for index, arg in enumerate(args[position + 1:], position + 1):
        if arg == "--":
            return None
        name, _, inline = arg.partition("=")
        if name in GLOBAL_OPTIONS:
            value = inline or (args[index + 1] if index + 1 < len(args) else "VALUE")
            rest = [a for i, a in enumerate(args[position:], position) if i not in (index, index + (not inline))]
            fixed = shlex.join(["runner", name, value[:200], *(a[:200] for a in rest)])
            return (f"{name} is a global option of runner: it goes before the command "
                    f"({' '.join(command)}), e.g. `{fixed}`")
    return None


# typer >= 0.22 shows a parameter's Python type in --help (`<bool>`, `<list[Path]>`); these are the names shown instead
PLAIN_TYPES = {"str": "TEXT", "path": "PATH", "Path": "PATH", "file": "FILE", "int": "N", "float": "NUMBER",
               "int range": "N", "float range": "NUMBER", "bool": None}


def plain_type(label: str | None, is_flag: bool) -> str | None:
    """`<list[Path]>` -> PATH, `<int range>` -> N, `<a|b>` -> [a|b], a flag's `<bool>` -> nothing."""
    if is_flag or not label:
        return None
    inner = label.removesuffix("...").strip("<>")
    inner = inner[5:-1] if inner.startswith("list[") and inner.endswith("]") else inner
    if "|" in inner:
        return f"[{inner}]"
    return PLAIN_TYPES.get(inner, inner.upper())


def plain_metavars(command) -> None:
    """Every parameter of `command` and its subcommands shows plain_type in --help. Set on each parameter object
    (typer's class method stays); a typer without display_type_rich (older, plain click) already shows click's names."""
    for param in command.params:
        _plain(param)
    help_option = command.get_help_option  # made per invocation, not among params

    def plain_help_option(ctx, _made=help_option):
        option = _made(ctx)
        return _plain(option) if option is not None else None

    command.get_help_option = plain_help_option
    for sub in getattr(command, "commands", {}).values():
        plain_metavars(sub)


def _plain(param):
    shown_type = getattr(param, "display_type_rich", None)
    if shown_type is not None and not getattr(shown_type, "plain", False):
        flag = bool(getattr(param, "is_flag", False) or getattr(param, "count", False))
        param.display_type_rich = lambda ctx, _shown=shown_type, _flag=flag: plain_type(_shown(ctx), _flag)
        param.display_type_rich.plain = True
    return param


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
        "--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False,
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


def load_cli_registry(extra_cards: list[Path] = (), copies: list[tuple[Path, str]] = ()):
    """The registry the command works on: --registry's (or the default) plus every --card file (and `extra_cards`),
    plus `copies`: (path, kind) of card copies a run wrote (runner.cli.run_cards).

    Extra cards are schema-checked and cross-checked like registry cards; an id the registry already has is refused,
    except a copy that is that very card (same sha256: the registry has it now, or --card gave it too).
    Raises CardError (exit 2) listing every problem.
    """
    import dataclasses

    from registry.cards import load_card, load_registry
    from registry.cross_checks import cross_card_problems

    reg = load_registry(registry_root())
    paths = [*STATE.extra_cards, *extra_cards]
    if not paths and not copies:
        return reg
    # a copy: the cached registry stays as the files say
    reg = dataclasses.replace(reg, datasets=dict(reg.datasets), tasks=dict(reg.tasks), encoders=dict(reg.encoders))
    cards, problems = [], []
    given = [(path, None) for path in dict.fromkeys(Path(p).resolve() for p in paths)]
    for path, kind in [*given, *((Path(p), k) for p, k in copies)]:
        try:
            card = load_card(path, kind=kind)
        except CardError as exc:
            problems.extend(exc.problems)
            continue
        existing = reg.of_kind(card.kind).get(card.id)
        if existing is not None and kind is not None and existing.sha256 == card.sha256:
            continue  # a run's copy of a card the registry (or --card) already gives, unchanged
        if existing is not None and existing.path != card.path:
            what = "a copy of a card that differs from" if kind is not None else "already defined in"
            problems.append(CardProblem(card.path, f"{card.kind} id {card.id!r} is {what} {existing.path}",
                                        "/id", expected="a new id" if kind is None else
                                        "the card the run used; remove the copy or give the card with --card"))
            continue
        reg.of_kind(card.kind)[card.id] = card
        cards.append(card)
    for card in cards:
        problems.extend(cross_card_problems(card, reg))
    if problems:
        raise CardError(problems)
    return reg


def outside_cards(reg, cards) -> list:
    """The cards among `cards` that the registry on disk does not hold (given with --card or as a card path)."""
    from registry.cards import load_registry

    base = load_registry(registry_root())
    return [card for card in cards if base.of_kind(card.kind).get(card.id) is None]


def get_card(reg, kind: str, card_id: str):
    """reg.get, with an unknown id refused as `no <kind> card with id X (did you mean Y?)`: the suggestion first,
    never the whole list of ids (`runner list <kind>s` has it)."""
    cards = reg.of_kind(kind)
    if card_id not in cards:
        fail(unknown_id(kind, card_id, cards))
    return cards[card_id]


def unknown_id(kind: str, card_id: str, known, also: str = "") -> str:
    """The message for an id that names no card: `no task card with id 'x' (did you mean 'y'?)`."""
    from registry.errors import did_you_mean

    close = did_you_mean(card_id, known)
    hint = f" (did you mean {close!r}?)" if close else f"; `runner list {kind}s` lists the {len(known)} there are"
    return f"no {kind} card{also} with id {shown(card_id)}{hint}"


def progress_mode() -> bool | str:
    """A bar and phase lines on a terminal; on a pipe or file, plain lines (runner.runtime.progress)."""
    return True if sys.stderr.isatty() else "log"


def is_card_path(text: str) -> bool:
    """An --encoder/--task value that names a card file rather than an id."""
    return text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text
