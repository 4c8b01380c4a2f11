"""`runner demo-data`: write the seeded synthetic DICOM data set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runner.cli.app import app, fail


@app.command("demo-data")
def demo_data(
    out: Annotated[Path, typer.Option("--out", help="Directory to write (replaced if it holds an earlier demo set).")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives byte-identical files.")] = 0,
    patients: Annotated[
        int | None,
        typer.Option("--patients", help="Number of synthetic patients (default gives ~1,100 images).",
                     show_default=False),
    ] = None,
    site: Annotated[str, typer.Option(
        "--site", help="Acquisition look: a (the demo data set) or b (a second site for transfer tasks: "
        "lower contrast, more noise, blur, smaller images).")] = "a",
) -> None:
    """Write a SYNTHETIC chest-X-ray-like DICOM data set (metadata.csv, README.txt, demo_data.json, files/)."""
    import time

    from runner.data.synthetic import DEFAULT_PATIENTS, make_demo_dataset

    started = time.perf_counter()
    try:
        summary = make_demo_dataset(out, seed=seed, n_patients=DEFAULT_PATIENTS if patients is None else patients,
                                    site=site)
    except OSError as exc:
        fail(f"cannot write {out}: {exc}", 1)
    views = ", ".join(f"{k} {v}" for k, v in summary.counts.get("view", {}).items())
    typer.echo(
        f"wrote {summary.n_images} synthetic DICOM files ({summary.n_patients} patients, {summary.n_studies} studies; "
        f"{views}; {len(summary.corrupt)} deliberately corrupt) to {out} in {time.perf_counter() - started:.1f}s"
    )
