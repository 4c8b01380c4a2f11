"""`runner sample`: sample one task's images and freeze them as a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runner.cli.app import app, check_workers_option, fail, get_card, load_cli_registry


@app.command("sample")
def sample(
    task: Annotated[str, typer.Option("--task", help="Task card id, e.g. effusion-mimic.")],
    data_root: Annotated[Path | None, typer.Option(
        "--data-root", help="Folder holding the data set (default: the dataset card's environment variable, "
        "e.g. $NIH_CXR14_ROOT).")] = None,
    out: Annotated[Path, typer.Option("--out", help="The manifest goes to OUT/<task>/.")] = Path("out/manifests"),
    seed: Annotated[int | None, typer.Option(
        "--seed", min=0, max=2**32 - 1, help="Override the card's sampling and split seed (0..4294967295).")] = None,
    verify: Annotated[str | None, typer.Option(
        "--verify", help="decode | header | none: how sampled files are checked (default: the card's "
        "sampling.verify).")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Processes that check files (default: the card's sampling.verify_workers).")] = None,
):
    """Sample exactly N positives and N negatives for a task, split them by patient, and write
    OUT/<task>/manifest.parquet, manifest.json (with the content sha256) and exclusions.csv.

    Exit codes: 0 written, 1 failure (cannot write), 2 invalid input (unknown task, missing data, too few candidates).
    """
    from runner.data.fingerprint import data_fingerprint
    from runner.data.tables import resolve_data_root
    from runner.sample.draw import sample
    from runner.sample.manifest import write_manifest

    check_workers_option(workers)
    reg = load_cli_registry()
    card = get_card(reg, "task", task)
    dataset = reg.get("dataset", card.data["dataset"])
    root = resolve_data_root(dataset.data, data_root)
    result = sample(card.data, dataset.data, root, seed=seed, verify=verify, workers=workers)
    fingerprint = data_fingerprint(dataset.data, root, result)
    try:
        manifest = write_manifest(out / task, result, card.behaviour_sha256, fingerprint=fingerprint)
    except OSError as exc:
        fail(f"cannot write the manifest to {out / task}: {exc.strerror or exc}", 1)

    meta, counts = manifest.meta, manifest.meta["counts"]
    for step in counts["filters"]:
        typer.echo(f"  {step['step']:<40} {step['positives']:>9,} positives {step['negatives']:>9,} negatives")
    reasons: dict[str, int] = {}
    for exclusion in meta["exclusions"]:
        reasons[exclusion["reason"]] = reasons.get(exclusion["reason"], 0) + 1
    typer.echo(f"{task}: {counts['positives']} positives, {counts['negatives']} negatives, "
               f"{counts['patients']} patients, {meta['split']['method']} ({len(meta['eval_folds'])} evaluated folds)")
    typer.echo(f"excluded: {counts['excluded']}" + (f" ({', '.join(f'{n} {r}' for r, n in sorted(reasons.items()))})"
                                                     if reasons else "") + f"; listed in {out / task / 'exclusions.csv'}")
    typer.echo(f"manifest: {out / task / 'manifest.parquet'}  sha256 {meta['sha256']}")
