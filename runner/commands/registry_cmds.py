"""`runner list`, `runner show`, `runner validate`: look at the cards and check them."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from runner.cli_app import app

EXIT_INVALID = 2


class CardKind(str, Enum):
    tasks = "tasks"
    encoders = "encoders"
    datasets = "datasets"


def fail(message: str, code: int = EXIT_INVALID) -> None:
    """Print a human message on stderr and exit; used by every command for bad input."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def registry_or_exit():
    """The loaded registry, or exit 2 with every card problem listed."""
    from registry.cards import CardError, load_registry

    try:
        return load_registry()
    except CardError as exc:
        fail(f"invalid cards ({len(exc.problems)} problem(s)); run `runner validate` for details:\n{exc}")


@app.command("list")
def list_cards(kind: Annotated[CardKind, typer.Argument(help="What to list.")]) -> None:
    """List the tasks, encoders or datasets in the registry as a table."""
    from rich.console import Console
    from rich.table import Table

    reg = registry_or_exit()
    table = Table(title=f"{kind.value} ({len(reg.of_kind(kind.value[:-1]))})")
    if kind is CardKind.tasks:
        for column in ("id", "dataset", "label", "sampling", "split", "title"):
            table.add_column(column)
        for card in reg.tasks.values():
            d = card.data
            sampling = f"{d['sampling'].get('positives')}/{d['sampling'].get('negatives')}"
            split = d["split"].get("method", "")
            if d["split"].get("folds"):
                split += f" ({d['split']['folds']})"
            label = d["label"].get("name") or d["label"].get("id")
            table.add_row(card.id, d["dataset"], str(label), sampling, split, d["title"])
    elif kind is CardKind.encoders:
        for column in ("id", "adapter", "dim", "input", "title"):
            table.add_column(column)
        for card in reg.encoders.values():
            d = card.data
            pre = d.get("preprocess", {})
            size = pre.get("size")
            size_text = "x".join(map(str, size)) if isinstance(size, list) else (f"{size}px" if size else "native")
            if "embedding" not in d:  # the metadata baseline: no pixels, width set by the data set's features
                table.add_row(card.id, d["adapter"], "per data set", "metadata features (no pixels)", d["title"])
                continue
            table.add_row(card.id, d["adapter"], str(d["embedding"]["dim"]),
                          f"{size_text}, {pre.get('channels', '?')}ch, {pre.get('normalize', 'none')}", d["title"])
    else:
        for column in ("id", "kind", "labels", "synthetic", "title"):
            table.add_column(column)
        for card in reg.datasets.values():
            d = card.data
            table.add_row(card.id, d.get("kind", ""), ", ".join(d.get("labels", {})),
                          "yes" if d.get("synthetic") else "no", d.get("title", ""))
    Console(width=max(120, Console().width)).print(table)


@app.command("show")
def show_card(
    kind: Annotated[str, typer.Argument(help="task, encoder or dataset")],
    card_id: Annotated[str, typer.Argument(help="The card's id, e.g. effusion-mimic.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print canonical JSON instead of YAML.")] = False,
) -> None:
    """Print one resolved card (after `extends:`), with its sha256."""
    import json

    import yaml

    from registry.cards import CardError

    kind = kind.rstrip("s")
    if kind not in ("task", "encoder", "dataset"):
        fail(f"unknown kind {kind!r}; expected task, encoder or dataset")
    reg = registry_or_exit()
    try:
        card = reg.get(kind, card_id)
    except CardError as exc:
        fail(str(exc).removeprefix("<card>: /: "))
    if as_json:
        typer.echo(json.dumps({"id": card.id, "sha256": card.sha256, "card": card.data}, indent=2, sort_keys=True))
        return
    typer.echo(f"# {kind} {card.id}")
    typer.echo(f"# file:   {card.path}")
    typer.echo(f"# sha256: {card.sha256}")
    typer.echo(yaml.safe_dump(card.data, sort_keys=False, allow_unicode=True, width=110).rstrip())


@app.command("validate")
def validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Card files to check (default: every card in the registry).")
    ] = None,
) -> None:
    """Check cards against their JSON Schemas and against each other. Exit 2 if any card is invalid."""
    from registry.cards import KINDS, collect, validate_files

    if paths:
        problems = validate_files(paths)
        summary = f"{len(paths)} card file(s) valid"
    else:
        reg, problems = collect()
        summary = ", ".join(f"{len(reg.of_kind(k))} {k}s" for k in KINDS) + " valid"
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        fail(f"{len(problems)} problem(s) in {len({p.file for p in problems})} file(s)")
    typer.echo(f"ok: {summary}")
