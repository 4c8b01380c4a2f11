"""`runner eval` (evaluate encoders on tasks) and `runner demo` (the whole pipeline on synthetic data, offline)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from runner.cli_app import app

# Before torch or lightgbm load OpenMP: spinning idle threads made LightGBM 5-25x slower after a torch encoder had
# run on this 2-core machine (see runner/classify.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _fail(message: str, code: int):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _pick(spec: str, known: dict, kind: str) -> list[str]:
    """'id', 'id,id' or 'all' -> ids; an unknown id exits 2 with a did-you-mean."""
    import difflib

    if spec.strip() == "all":
        return sorted(known)
    ids = [s.strip() for s in spec.split(",") if s.strip()]
    if not ids:
        _fail(f"--{kind} is empty; give an id, several separated by commas, or 'all'", 2)
    for card_id in ids:
        if card_id not in known:
            close = difflib.get_close_matches(card_id, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(sorted(known))}"
            _fail(f"no {kind} card with id {card_id!r}{hint}", 2)
    return ids


def _analyses(spec: str) -> list[str] | None:
    from runner.analysis import ANALYSES

    if spec == "card":
        return None
    if spec == "none":
        return []
    if spec == "all":
        return list(ANALYSES)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in ANALYSES]
    if unknown:
        _fail(f"unknown analysis {unknown[0]!r}; expected none, card, all or a comma list of {', '.join(ANALYSES)}", 2)
    return names


def _dataset_roots(specs: list[str] | None, reg) -> dict[str, Path]:
    """['ID=DIR', ...] -> {ID: Path(DIR)}; an unknown dataset id or a spec without '=' exits 2."""
    roots = {}
    for spec in specs or []:
        dataset_id, sep, folder = spec.partition("=")
        if not sep or not dataset_id.strip() or not folder.strip():
            _fail(f"--dataset-root {spec!r}; expected DATASET=DIR, e.g. demo-cxr-site-b=out/demo/data-site-b", 2)
        if dataset_id.strip() not in reg.datasets:
            _fail(f"--dataset-root: no dataset card with id {dataset_id.strip()!r}; known: "
                  f"{', '.join(sorted(reg.datasets))}", 2)
        roots[dataset_id.strip()] = Path(folder.strip())
    return roots


def _demo_layout_roots(data_root: Path | None, reg) -> dict[str, Path]:
    """The other demo data sets beside a `runner demo` data folder (OUT/data, OUT/data-site-b), when --data-root is
    one of them and the dataset card's environment variable is unset: so that after `runner demo`,
    `runner eval --task effusion-demo --analyses all --data-root OUT/data` finds site B for the transfer analysis."""
    import json
    import os

    def site_of(folder: Path) -> str | None:
        try:
            return json.loads((folder / "demo_data.json").read_text(encoding="utf-8")).get("site", "a")
        except (OSError, ValueError, AttributeError):
            return None

    if data_root is None or site_of(data_root) is None:
        return {}
    found = {}
    for dataset_id, (folder, kwargs) in DEMO_DATA.items():
        card = reg.datasets.get(dataset_id)
        candidate = data_root.parent / folder
        if card is None or os.environ.get(card.data.get("root_env") or ""):
            continue
        if site_of(candidate) == kwargs.get("site", "a"):
            found[dataset_id] = candidate
    return found


def run_many(tasks: list[str], encoders: list[str], data_root: Path | None, out: Path, options, reg) -> list[Path]:
    """Evaluate every task x encoder pair, printing one line each; exits 2/1 on the first failure."""
    from runner.evaluate import EvaluationError, evaluate

    paths = []
    for task_id in tasks:
        for encoder_id in encoders:
            started = time.perf_counter()
            try:
                path = evaluate(task_id, encoder_id, data_root, out, options, registry=reg)
            except EvaluationError as exc:
                _fail(f"{task_id} x {encoder_id}: {exc}", exc.exit_code)
            except Exception as exc:  # noqa: BLE001 - the CLI promises a one-line message, never a traceback
                _fail(f"{task_id} x {encoder_id}: unexpected {type(exc).__name__}: {exc}", 1)
            from runner.results import read_result

            metrics = read_result(path)["metrics"]
            auroc, f1 = metrics["auroc"], metrics["f1"]
            typer.echo(f"{task_id:<20} {encoder_id:<22} AUROC {_fmt(auroc)}  F1 {_fmt(f1)}  "
                       f"({time.perf_counter() - started:.1f} s)  {path}")
            paths.append(path)
    return paths


def _fmt(metric: dict) -> str:
    if metric["mean"] is None:
        return f"n/a ({metric.get('reason', 'not computable')})"
    half = metric.get("half_width")
    return f"{metric['mean']:.3f}" + (f" ± {half:.3f}" if half is not None else "")


@app.command("eval")
def eval_command(
    task: Annotated[str, typer.Option("--task", help="Task id, several as id,id, or 'all'.")],
    encoder: Annotated[str, typer.Option("--encoder", help="Encoder id, several as id,id, or 'all'.")],
    data_root: Annotated[Path | None, typer.Option(
        "--data-root", help="Folder holding the data set (default: the dataset card's environment variable).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Run folder: OUT/<task>/manifest.*, "
                                      "OUT/<task>/<encoder>/result.json + predictions.parquet.")] = Path("out/runs"),
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda (auto: CUDA when present).")] = "auto",
    analyses: Annotated[str, typer.Option(
        "--analyses", help="none | card (those the task card enables) | all | a comma list, e.g. stability,subgroups."
    )] = "card",
    workers: Annotated[int, typer.Option("--workers", min=0, help="Image decoding processes (0: in-process).")] = 2,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1,
                                                   help="Images per batch (default: the encoder card's).")] = None,
    cache_dir: Annotated[Path | None, typer.Option(
        "--cache-dir", help="Embedding cache (default: $CXR_CACHE_DIR or ~/.cache/cxr-registry).")] = None,
    pipeline: Annotated[str, typer.Option("--pipeline", help="auto | cpu | fast (preprocess on the device).")] = "auto",
    backend: Annotated[str, typer.Option(
        "--backend", help="local | ray (Ray Data actor pool; $RAY_ADDRESS for a cluster).")] = "local",
    trust_custom_code: Annotated[bool, typer.Option(
        "--trust-custom-code", help="Allow encoder cards with adapter: custom to run their Python entry point.")] = False,
    dataset_root: Annotated[list[str] | None, typer.Option(
        "--dataset-root", help="DATASET=DIR: the root of another data set a run needs (a transfer task's training "
        "set, a transfer analysis target); repeatable. Default: that dataset card's environment variable.")] = None,
    resample: Annotated[bool, typer.Option(
        "--resample", help="Sample again even when OUT/<task>/ holds a manifest (a manifest is otherwise reused only "
        "while its data fingerprint matches the files under the data root).")] = False,
):
    """Evaluate encoder(s) on task(s): sample (or reuse the frozen manifest), embed (cached), LightGBM per fold,
    AUROC and F1 with 95% CIs, and a validated result JSON per pair.

    Exit codes: 0 done, 1 failure, 2 invalid input (unknown id, missing data, bad option).
    """
    import sys

    from registry.cards import load_registry
    from registry.errors import CardError
    from runner.evaluate import EvalOptions

    if device != "auto" and device != "cpu" and not device.startswith("cuda"):
        _fail(f"--device {device!r}; expected auto, cpu or cuda[:N]", 2)
    if pipeline not in ("auto", "cpu", "fast"):
        _fail(f"--pipeline {pipeline!r}; expected auto, cpu or fast", 2)
    if backend not in ("local", "ray"):
        _fail(f"--backend {backend!r}; expected local or ray", 2)
    try:
        reg = load_registry()
    except CardError as exc:
        _fail(str(exc), 2)
    tasks = _pick(task, reg.tasks, "task")
    encoders = _pick(encoder, reg.encoders, "encoder")
    if data_root is not None and len({reg.tasks[t].data["dataset"] for t in tasks}) > 1:
        _fail("the tasks span several data sets, but --data-root names one folder: pick the tasks of one data set, "
              "or leave --data-root out and set each dataset card's environment variable", 2)
    options = EvalOptions(device=device, workers=workers, analyses=_analyses(analyses), cache_dir=cache_dir,
                          trust_custom_code=trust_custom_code, progress=sys.stderr.isatty(), pipeline=pipeline,
                          batch_size=batch_size, backend=backend, resample=resample,
                          data_roots={**_demo_layout_roots(data_root, reg), **_dataset_roots(dataset_root, reg)})
    run_many(tasks, encoders, data_root, out, options, reg)


BUILTIN_ENCODERS = ("pixels", "random-cnn", "radiomics")
# The demo data sets, one folder each under OUT: dataset card id -> (folder, make_demo_dataset arguments).
DEMO_DATA = {"demo-cxr": ("data", {"seed": 0}),
             "demo-cxr-site-b": ("data-site-b", {"seed": 1, "n_patients": 250, "site": "b"})}
# Cheap analyses only (seconds on the demo): stability, clustering and label efficiency are opt-in via runner eval.
DEMO_ANALYSES = ["subgroups"]


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option("--out", help="Everything goes here: data/, runs/, results/, site/.")] = Path(
        "out/demo"),
    workers: Annotated[int, typer.Option("--workers", min=0, help="Image decoding processes.")] = 2,
):
    """Run the whole pipeline offline on SYNTHETIC data: make the demo DICOM data sets (site A, and site B for the
    transfer task), evaluate every demo task (task cards whose data set is synthetic) with the three built-in
    encoders, file the results into OUT/results and build the leaderboard site (with tie groups) into OUT/site.
    The numbers say nothing about real X-rays.
    """
    import sys

    from registry.cards import load_registry
    from registry.errors import CardError
    from runner.demo_data import make_demo_dataset
    from runner.evaluate import EvalOptions

    started = time.perf_counter()
    try:
        reg = load_registry()
    except CardError as exc:
        _fail(str(exc), 2)
    tasks = sorted(t for t, card in reg.tasks.items() if reg.datasets[card.data["dataset"]].data.get("synthetic"))
    if not tasks:
        _fail("no demo task: no task card uses a dataset card with synthetic: true", 2)
    roots = {}
    needed = {reg.tasks[t].data["dataset"] for t in tasks} | {
        reg.tasks[reg.tasks[t].data["transfer"]["train_task"]].data["dataset"]
        for t in tasks if reg.tasks[t].data.get("type") == "transfer"}
    for dataset_id in sorted(needed):
        if dataset_id not in DEMO_DATA:
            _fail(f"demo task data set {dataset_id!r} is not one runner demo can make ({', '.join(DEMO_DATA)})", 2)
        folder, kwargs = DEMO_DATA[dataset_id]
        roots[dataset_id] = out / folder
        if not (roots[dataset_id] / "demo_data.json").is_file():
            typer.echo(f"making the synthetic data set {dataset_id} in {roots[dataset_id]} ...")
            make_demo_dataset(roots[dataset_id], **kwargs)
    options = EvalOptions(device="auto", workers=workers, analyses=DEMO_ANALYSES, cache_dir=out / "cache",
                          progress=sys.stderr.isatty(), data_roots=roots)
    # A transfer task after the task it trains on, so its in-domain comparison is at hand.
    tasks.sort(key=lambda t: (reg.tasks[t].data.get("type") == "transfer", t))
    paths = run_many(tasks, list(BUILTIN_ENCODERS), None, out / "runs", options, reg)

    results_dir = out / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    try:
        from leaderboard.site import build_site
        from leaderboard.submit import submit
    except ImportError:
        build_site = None
    if build_site is None:
        typer.echo(f"{len(paths)} results under {out / 'runs'} (the leaderboard package is not installed)")
        return
    # The demo's leaderboard starts from the registry's filed results (the paper's Table 1, reported) and adds its own.
    from leaderboard.submit import RESULTS_DIR

    for filed in RESULTS_DIR.iterdir():  # results, predictions and the frozen manifests they are verified against
        if filed.is_file() and not (results_dir / filed.name).exists():
            shutil.copyfile(filed, results_dir / filed.name)
        elif filed.is_dir():
            shutil.copytree(filed, results_dir / filed.name, dirs_exist_ok=True)
    for path in paths:  # submit finds the task's frozen manifest one folder up from each result
        try:
            submit(path, reg, results_dir=results_dir, replace=True)
        except Exception as exc:  # noqa: BLE001 - SubmitError and friends: one line, not a traceback
            _fail(f"filing {path}: {exc}", 1)
    index = build_site(out / "site", results_dir, reg)
    typer.echo(f"demo finished in {time.perf_counter() - started:.0f} s; results in {results_dir}")
    typer.echo(f"site: {index}")
