"""`runner list`, `runner show`, `runner validate`: look at the cards and check them."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from registry.errors import shown
from runner.cli.app import app, fail, load_cli_registry, registry_root


class CardKind(str, Enum):
    tasks = "tasks"
    encoders = "encoders"
    datasets = "datasets"
    benchmarks = "benchmarks"


def _size_text(pre: dict) -> str:
    size = pre.get("size")
    return "x".join(map(str, size)) if isinstance(size, list) else (f"{size}px" if size else "native")


def listing(kind: CardKind, reg) -> list[dict]:
    """One flat record per card (or benchmark): what `runner list` prints, as a table, as lines or as JSON."""
    from registry.benchmarks import load_benchmarks, tasks_of

    records = []
    if kind is CardKind.tasks:
        for card in reg.tasks.values():
            d = card.data
            split = d["split"].get("method", "") + (f" ({d['split']['folds']})" if d["split"].get("folds") else "")
            records.append({"id": card.id, "dataset": d["dataset"], "label": d["label"].get("id"),
                            "benchmarks": list(d.get("benchmarks") or []),
                            "sampling": f"{d['sampling'].get('positives')}/{d['sampling'].get('negatives')}",
                            "split": split, "title": d["title"]})
    elif kind is CardKind.encoders:
        for card in reg.encoders.values():
            d = card.data
            pre = d.get("preprocess", {})
            if "embedding" not in d:  # the metadata baseline: no pixels, width set by the data set's features
                records.append({"id": card.id, "adapter": d["adapter"], "dim": None, "control": bool(d.get("control", False)),
                                "input": "metadata features (no pixels)", "title": d["title"]})
                continue
            records.append({"id": card.id, "adapter": d["adapter"], "dim": d["embedding"]["dim"],
                            "control": bool(d.get("control", False)),
                            "input": f"{_size_text(pre)}, {pre.get('channels', '?')}ch, {pre.get('normalize', 'none')}",
                            "title": d["title"]})
    elif kind is CardKind.datasets:
        for card in reg.datasets.values():
            d = card.data
            records.append({"id": card.id, "kind": d.get("kind", ""), "labels": list(d.get("labels", {})),
                            "synthetic": bool(d.get("synthetic")), "title": d.get("title", "")})
    else:
        for bench in load_benchmarks(reg.root).values():
            records.append({"id": bench.id, "tasks": tasks_of(bench.id, reg.tasks), "title": bench.title,
                            "description": bench.description})
    return records


def _text(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(map(str, value)) if value else "-"
    return str(value)


@app.command("list")
def list_cards(
    kind: Annotated[CardKind, typer.Argument(help="What to list.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of records on stdout.")] = False,
) -> None:
    """List the tasks, encoders, datasets or benchmarks: a table on a terminal; piped, one tab-separated line per
    card with full ids and a header line (no box drawing); --json for a machine-readable list."""
    import json

    records = listing(kind, load_cli_registry())
    if as_json:
        typer.echo(json.dumps(records, indent=2, ensure_ascii=False))
        return
    columns = list(records[0]) if records else ["id"]
    if kind is CardKind.benchmarks:
        columns.remove("description")
    if not sys.stdout.isatty():
        typer.echo("\t".join(columns))
        for record in records:
            typer.echo("\t".join(_text(record[c]) for c in columns))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{kind.value} ({len(records)})")
    for column in columns:
        table.add_column(column, no_wrap=column == "id", overflow="fold")
    for record in records:
        table.add_row(*(_text(record[c]) for c in columns))
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
        fail(f"unknown kind {shown(kind)}; expected task, encoder or dataset")
    reg = load_cli_registry()
    try:
        card = reg.get(kind, card_id)
    except CardError as exc:
        fail(str(exc).removeprefix("<card>: /: "))
    if as_json:
        typer.echo(json.dumps({"id": card.id, "sha256": card.sha256, "path": str(card.path), "card": card.data},
                              indent=2, sort_keys=True))
        return
    typer.echo(f"# {kind} {card.id}")
    typer.echo(f"# file:   {card.path}")
    typer.echo(f"# sha256: {card.sha256}\n# behaviour_sha256: {card.behaviour_sha256}")
    if kind == "task":  # which file check sampling runs (the manifest records it too: manifest.json `verify`)
        verify = card.spec.sampling.verify
        typer.echo(f"# file check (sampling.verify): {verify}: " + {
            "decode": "every sampled file is fully decoded", "header": "header + pixel length, no decoding",
            "none": "files are not checked"}.get(verify, "?"))
    typer.echo(yaml.safe_dump(card.data, sort_keys=False, allow_unicode=True, width=110).rstrip())


@app.command("validate")
def validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Card files to check (default: every card in the registry).")
    ] = None,
) -> None:
    """Check cards against their JSON Schemas and against each other (and the benchmarks task cards name against
    registry/benchmarks.yaml). Exit 2 if any card is invalid."""
    from registry.cards import KINDS, collect, validate_files

    if paths:
        problems = validate_files(paths, registry_root())
        summary = f"{len(paths)} card file(s) valid"
    else:
        reg, problems = collect(registry_root())
        summary = ", ".join(f"{len(reg.of_kind(k))} {k}s" for k in KINDS) + " valid"
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        fail(f"{len(problems)} problem(s) in {len({p.file for p in problems})} file(s)")
    typer.echo(f"ok: {summary}")
