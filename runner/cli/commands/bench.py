"""`runner bench`: measure `runner eval`'s embedding stage against the naive per-image loop and the forward pass."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from registry.errors import shown
from runner.cli.app import (
    EXIT_FAILURE,
    EXIT_INVALID,
    app,
    check_workers_option,
    fail,
    get_card,
    load_cli_registry,
)


@app.command("bench")
def bench(
    encoder: Annotated[str | None, typer.Option("--encoder", "-e", help="Encoder card id (e.g. random-cnn, xrv-densenet121-random).")] = None,
    encoder_card: Annotated[Path | None, typer.Option("--encoder-card", help="Or: an encoder card file outside the registry.")] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Images per format.")] = 64,
    size: Annotated[int, typer.Option("--size", min=16, help="Generated PNGs are size x size pixels.")] = 1024,
    dicom_size: Annotated[str, typer.Option("--dicom-size", help=(
        "Generated DICOMs are ROWSxCOLS (default: the real chest CR RG1_UNCR's 1955x1841, 3.6 Mpx)."))] = "1955x1841",
    formats: Annotated[str, typer.Option("--formats", help=(
        "Comma-separated: png (8-bit greyscale), dicom (uncompressed MONOCHROME1, 15 bits stored)."))] = "png,dicom",
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1, ...")] = "auto",
    workers: Annotated[int | None, typer.Option("--workers", min=0, help=(
        "Reader processes (0: read in this process). Default: what runner eval uses (runner.embed.plan.default_workers)."
    ))] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="Default: the card's batch_size.")] = None,
    naive_limit: Annotated[int, typer.Option("--naive-limit", min=1, help="Images timed in the slow per-image loop.")] = 32,
    rss_sizes: Annotated[str, typer.Option(
        "--rss-sizes", help="Peak RSS of a fresh process embedding each of these numbers of images ('' to skip).")
    ] = "256,1024",
    whole_command: Annotated[bool, typer.Option(
        "--whole-command/--no-whole-command", help="Time a fresh process doing eval's embedding stage, cold and warm.")
    ] = True,
    keep_page_cache: Annotated[bool, typer.Option(
        "--keep-page-cache", help="Do not evict the inputs from the page cache before the uncached passes.")] = False,
    weights_dir: Annotated[Path | None, typer.Option("--weights-dir", help="As runner eval's --weights-dir.")] = None,
    inputs: Annotated[Path | None, typer.Option("--inputs", help="Folder for the generated images (reused if there).")] = None,
    machine: Annotated[str, typer.Option("--machine", help="How the report names this machine.")] = "",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result JSON here.")] = None,
    markdown_out: Annotated[Path | None, typer.Option("--markdown", help="Write the markdown table here.")] = None,
) -> None:
    """Images/s of (a) the naive per-image loop, (b) the pipeline `runner eval` runs, with eval's defaults (fast path
    on CUDA), (c) the encoder's forward pass alone, on the same generated files read from disk (page cache dropped);
    ratios b/a and b/c, stage timings, warm-cache speedup of the stage and of a whole fresh process, peak RSS and GPU
    memory."""
    import json

    from registry.cards import load_card
    from runner.embed.bench import FORMATS, BenchConfig, markdown_table, run_bench

    if (encoder is None) == (encoder_card is None):
        fail("give exactly one of --encoder ID or --encoder-card FILE", EXIT_INVALID)
    check_workers_option(workers)
    chosen = tuple(f.strip() for f in formats.split(",") if f.strip())
    if not chosen or set(chosen) - set(FORMATS):
        fail(f"--formats {shown(formats)}: expected a comma-separated subset of {', '.join(FORMATS)}", EXIT_INVALID)
    try:
        sizes = tuple(int(x) for x in rss_sizes.split(",") if x.strip())
    except ValueError:
        fail(f"--rss-sizes {shown(rss_sizes)}: expected comma-separated image counts", EXIT_INVALID)
    try:
        rows, cols = (int(x) for x in dicom_size.lower().split("x"))
    except ValueError:
        fail(f"--dicom-size {shown(dicom_size)}: expected ROWSxCOLS, e.g. 1955x1841", EXIT_INVALID)
    if min(rows, cols) < 16:
        fail(f"--dicom-size {shown(dicom_size)}: each side must be at least 16", EXIT_INVALID)
    card = load_card(encoder_card, kind="encoder") if encoder_card else get_card(load_cli_registry(), "encoder", encoder)
    cfg = BenchConfig(
        encoder_card=card.data, encoder_sha256=card.behaviour_sha256, n=n, size=size, dicom_size=(rows, cols),
        formats=chosen, device=device, workers=workers, batch_size=batch_size, naive_limit=min(naive_limit, n),
        rss_sizes=sizes, whole_command=whole_command, drop_cache=not keep_page_cache, weights_dir=weights_dir,
        inputs=inputs, machine=machine,
    )
    try:
        result = run_bench(cfg)
    except (ValueError, RuntimeError, OSError) as exc:
        fail(f"{type(exc).__name__}: {exc}", EXIT_FAILURE)
    table = markdown_table(result)
    print(table)
    text = json.dumps(result, indent=2, sort_keys=True, allow_nan=False) + "\n"
    for path, content in ((json_out, text), (markdown_out, table)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
