"""`runner list`, `runner show`, `runner validate`: look at the cards and check them."""

from __future__ import annotations

import io
import shutil
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from registry.errors import shown
from runner.cli.app import app, fail, get_card, is_card_path, load_cli_registry, registry_root
from runner.cli.run_cards import KIND_FOLDERS, cards_in, run_folder_of


class CardKind(str, Enum):
    tasks = "tasks"
    encoders = "encoders"
    datasets = "datasets"
    benchmarks = "benchmarks"


def _sampling_text(sampling) -> str:
    """positives/negatives, or `N images`, or `N patients`, as the task's sampler draws them."""
    return {"binary": f"{sampling.positives}/{sampling.negatives}", "images": f"{sampling.images} images",
            "patients": f"{sampling.patients} patients"}[sampling.mode]


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
                            "sampling": _sampling_text(card.spec.sampling),
                            "split": split, "title": d["title"]})
    elif kind is CardKind.encoders:
        for card in reg.encoders.values():
            d = card.data
            pre = d.get("preprocess", {})
            if "embedding" not in d:  # the metadata baseline: no pixels, width set by the data set's features
                records.append({"id": card.id, "adapter": d["adapter"], "dim": "per data set",
                                "control": bool(d.get("control", False)),
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


def _text(value, separator: str = ",") -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return separator.join(map(str, value)) if value else "-"
    return "-" if value is None else str(value)


def table_text(title: str, columns: list[str], records: list[dict], width: int | None = None) -> str:
    """The records as a rich table no wider than `width` (default: the terminal's): ids whole, other cells wrapped
    at word boundaries (lists joined with ", " so they wrap between items)."""
    from rich.console import Console
    from rich.table import Table

    cells = {c: [_text(r[c], ", ") for r in records] for c in columns}
    shown_columns = fitting_columns(columns, cells, width)
    left_out = [c for c in columns if c not in shown_columns]
    caption = f"left out to fit {width} columns: {', '.join(left_out)} (--json has every field)" if left_out else None
    table = Table(title=title, caption=caption)
    for column in shown_columns:
        table.add_column(column, no_wrap=column == "id")
    for row in range(len(records)):
        table.add_row(*(cells[c][row] for c in shown_columns))
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(table)
    return console.export_text()


def fitting_columns(columns: list[str], cells: dict[str, list[str]], width: int | None) -> list[str]:
    """The columns that fit in `width` without breaking a word: id and title always, then the others in order while
    each still has room for its longest word (rich then wraps every cell between words)."""
    def least(column: str) -> int:  # its longest word (the whole id), plus the cell's padding and border
        words = [len(w) for cell in cells[column] for w in (cell.split() if column != "id" else [cell])]
        return max([len(column), *words]) + 3

    if width is None:
        return list(columns)
    kept = [c for c in columns if c in ("id", "title")]
    room = width - 1 - sum(least(c) for c in kept) - (17 if "title" in kept else 0)  # title: ~20 wide at least
    for column in columns:
        if column not in kept and least(column) <= room:
            kept.append(column)
            room -= least(column)
    return [c for c in columns if c in kept]


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
    typer.echo(table_text(f"{kind.value} ({len(records)})", columns, records, shutil.get_terminal_size().columns),
               nl=False)


def card_to_show(kind: str, what: str):
    """`runner show KIND WHAT`: an id of the registry (with any --card files), the path of a card file, or a run
    folder / result file / results folder whose card copies (runner.cli.run_cards) hold one card of that kind."""
    from registry.cards import load_card

    path = Path(what)
    reg = load_cli_registry()
    if not is_card_path(what) and (what in reg.of_kind(kind) or not path.exists()):
        return get_card(reg, kind, what)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            fail(f"no card file {shown(what)}")
        return load_card(path, kind=kind)
    if not path.exists():
        fail(f"{shown(what)} is neither a {kind} id, a card file, nor a run or results folder")
    copies = [p for p, k in cards_in(run_folder_of(path)) if k == kind]
    if len(copies) != 1:
        where = run_folder_of(path) / "cards" / KIND_FOLDERS[kind]
        fail(f"{where} holds {len(copies)} {kind} card copies" + (
            f" ({', '.join(p.stem for p in copies)}); show one of them by its path" if copies else
            " (runner eval writes one there for a card kept outside the registry)"))
    return load_card(copies[0], kind=kind)


@app.command("show")
def show_card(
    kind: Annotated[str, typer.Argument(help="task, encoder or dataset")],
    card_id: Annotated[str, typer.Argument(
        help="The card's id (e.g. effusion-mimic), the path of a card file, or a run folder (OUT/<task>/<encoder>) "
        "holding the copy `runner eval` made of a card kept outside the registry.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print canonical JSON instead of YAML.")] = False,
) -> None:
    """Print one resolved card (after `extends:`), with its sha256: id and title first."""
    import json

    import yaml

    kind = kind.rstrip("s")
    if kind not in ("task", "encoder", "dataset"):
        fail(f"unknown kind {shown(kind)}; expected task, encoder or dataset")
    card = card_to_show(kind, card_id)
    if as_json:
        typer.echo(json.dumps({"id": card.id, "sha256": card.sha256, "path": str(card.path), "card": card.data},
                              indent=2, sort_keys=True))
        return
    typer.echo(f"# {kind} {card.id}: {card.data.get('title', '')}")
    typer.echo(f"# file:   {card.path}")
    typer.echo(f"# sha256: {card.sha256}\n# behaviour_sha256: {card.behaviour_sha256}")
    if kind == "task":  # which file check sampling runs (the manifest records it too: manifest.json `verify`)
        verify = card.spec.sampling.verify
        typer.echo(f"# file check (sampling.verify): {verify}: " + {
            "decode": "every sampled file is fully decoded", "header": "header + pixel length, no decoding",
            "none": "files are not checked"}.get(verify, "?"))
    first = {key: card.data[key] for key in ("id", "title") if key in card.data}
    typer.echo(yaml.safe_dump({**first, **card.data}, sort_keys=False, allow_unicode=True, width=110).rstrip())


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
        files = {p.file for p in problems if p.file is not None}  # a problem of the root itself names no file
        fail(f"{len(problems)} problem(s)" + (f" in {len(files)} file(s)" if files else " with the registry root"))
    typer.echo(f"ok: {summary}")
