"""`runner eval` (evaluate encoders on tasks) and `runner demo` (the whole pipeline on synthetic data, offline)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from registry.errors import RegistryError, shown
from runner.cli.app import (
    app,
    check_workers_option,
    fail,
    is_card_path,
    load_cli_registry,
    outside_cards,
    progress_mode,
    unknown_id,
)
from runner.cli.run_cards import copy_cards
from runner.runtime.progress import counted, phase, reporting, say

GLOB_CHARS = set("*?[")
WORKERS_HELP = ("Image decoding processes (0: in-process). Default (runner.embed.plan.default_workers): every core but two "
                "on the CUDA device path, one per core on the CPU pipeline.")


def _terms(spec: str, kind: str) -> list[str]:
    terms = [s.strip() for s in spec.split(",") if s.strip()]
    if not terms:
        fail(f"--{kind} is empty; give an id, a glob such as '*-nih', several separated by commas, or 'all'")
    return terms


def select_tasks(spec: str, reg) -> list[str]:
    """--task: ids, globs ('*-nih'), benchmark ids ('paper-table1') or 'all', comma-separated -> task ids in order
    (a transfer task after the tasks it trains on)."""
    from fnmatch import fnmatchcase

    from registry.benchmarks import load_benchmarks, tasks_of


    benchmarks = load_benchmarks(reg.root)
    chosen: list[str] = []
    for term in _terms(spec, "task"):
        if term == "all":
            found = sorted(reg.tasks)
        elif term in reg.tasks:
            found = [term]
        elif term in benchmarks:
            found = tasks_of(term, reg.tasks)
            if not found:
                fail(f"benchmark {shown(term)} has no tasks yet (no task card lists it in `benchmarks`)")
        elif GLOB_CHARS & set(term):
            found = sorted(t for t in reg.tasks if fnmatchcase(t, term))
            if not found:
                fail(f"--task {shown(term)} matches no task id; see `runner list tasks`")
        else:
            fail(unknown_id("task", term, [*reg.tasks, *benchmarks], also=" or benchmark"))
        chosen.extend(t for t in found if t not in chosen)
    return sorted(chosen, key=lambda t: (reg.tasks[t].data.get("type") == "transfer", chosen.index(t)))


@dataclass
class EncoderSelection:
    ids: list[str]
    left_out: dict[str, str]  # encoder id -> why `all` or a glob left it out


def select_encoders(spec: str, reg, include_controls: bool = False, weights_dir: Path | None = None
                    ) -> EncoderSelection:
    """--encoder: ids, card paths (already added to `reg`), globs or 'all'. 'all' and globs leave out control encoders
    (card `control: true`) unless include_controls, and encoders whose weights are not on this machine; an id asked
    for by name is always run."""
    from fnmatch import fnmatchcase

    from runner.encoders.weights import weights_present

    chosen: list[str] = []
    left_out: dict[str, str] = {}
    for term in _terms(spec, "encoder"):
        if is_card_path(term):
            chosen.append(card_id_of(term))
            continue
        if term in reg.encoders:
            chosen.append(term)
            continue
        if term != "all" and not GLOB_CHARS & set(term):
            fail(unknown_id("encoder", term, reg.encoders))
        matched = sorted(reg.encoders) if term == "all" else sorted(e for e in reg.encoders if fnmatchcase(e, term))
        if not matched:
            fail(f"--encoder {shown(term)} matches no encoder id; see `runner list encoders`")
        for encoder_id in matched:
            card = reg.encoders[encoder_id].data
            if card.get("control") and not include_controls:
                left_out[encoder_id] = "control (random or built-in features): add --include-controls"
            elif not weights_present(card, weights_dir):
                left_out[encoder_id] = "weights not on this machine (runner encoders check " + encoder_id + ")"
            else:
                chosen.append(encoder_id)
    ids = list(dict.fromkeys(chosen))
    if not ids:
        fail("--encoder " + spec + " selects no encoder: " + "; ".join(f"{e}: {why}" for e, why in left_out.items()))
    return EncoderSelection(ids, {e: why for e, why in left_out.items() if e not in ids})


def card_id_of(path: str) -> str:
    return Path(path).stem


def encoders_with_weights(reg, weights_dir: Path | None = None) -> list[str]:
    from runner.encoders.weights import weights_present

    return [e for e, card in sorted(reg.encoders.items()) if weights_present(card.data, weights_dir)]


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
        fail(f"unknown analysis {shown(unknown[0])}; expected none, card, all or a comma list of {', '.join(ANALYSES)}")
    return names


def _dataset_roots(specs: list[str] | None, reg) -> dict[str, Path]:
    """['ID=DIR', ...] -> {ID: Path(DIR)}; an unknown dataset id or a spec without '=' exits 2."""
    roots = {}
    for spec in specs or []:
        dataset_id, sep, folder = spec.partition("=")
        if not sep or not dataset_id.strip() or not folder.strip():
            fail(f"--dataset-root {shown(spec)}; expected DATASET=DIR, e.g. demo-cxr-site-b=out/demo/data-site-b")
        if dataset_id.strip() not in reg.datasets:
            fail("--dataset-root: " + unknown_id("dataset", dataset_id.strip(), reg.datasets))
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
    for dataset_id, card in reg.datasets.items():
        made = card.spec.synthetic_data
        if made is None or os.environ.get(card.spec.root_env or ""):
            continue
        candidate = data_root.parent / made.folder
        if site_of(candidate) == made.site:
            found[dataset_id] = candidate
    return found


@dataclass
class PairOutcome:
    """One task x encoder evaluation as `runner eval` reports it (and prints with --json)."""

    task: str
    encoder: str
    status: str  # ok | failed
    seconds: float
    result: str | None = None
    auroc: dict | None = None
    f1: dict | None = None
    error: str | None = None
    exit_code: int = 0
    skipped_analyses: list[dict] = field(default_factory=list)  # [{name, status, reason}]
    reused: bool = False  # the run folder's result had these very inputs (runner.results.reuse): nothing was refitted
    metrics: dict = field(default_factory=dict)  # every metric of the result (task types other than classification)


def _say(text: str, to_stderr: bool) -> None:
    typer.echo(text, err=to_stderr)


REUSED_NOTE = ", reused: same inputs as the result there; --recompute fits again"


def evaluate_pair(task_id: str, encoder_id: str, data_root: Path | None, out: Path, options, reg):
    """One pair's run_evaluation; a TensorFlow encoder's in a child process of its own (runner.encoders.isolation:
    its GPU memory and CUDA-12 libraries go with that process, so the torch encoders after it get the whole GPU)."""
    import dataclasses

    from runner.encoders import resolve_device
    from runner.encoders.isolation import call_in_child, child_environment, needs_own_process
    from runner.evaluate import run_evaluation

    card = reg.encoders[encoder_id].data
    if not needs_own_process(card):
        return run_evaluation(task_id, encoder_id, data_root, out, options, registry=reg)
    # "auto" is decided here, by torch in this process, so the child never imports torch to decide it
    options = dataclasses.replace(options, device=resolve_device(options.device))
    return call_in_child(run_evaluation, task_id, encoder_id, data_root, out, options, registry=reg,
                         env=child_environment(card), what=f"{task_id} x {encoder_id} (a TensorFlow child process)")


def check_encoders_first(encoders: list[str], options, reg) -> dict[str, RegistryError]:
    """Every encoder's adapter, packages, custom code (--trust-custom-code) and weight files, checked before any
    sampling: {encoder id: its error} for those that cannot run (their pairs are not started)."""
    failed = {}
    for encoder_id in encoders:
        with phase(f"checking encoder {encoder_id}: adapter, packages, code, weights"):
            try:
                say(encoder_ready(reg.encoders[encoder_id], options))
            except RegistryError as exc:
                failed[encoder_id] = exc
    return failed


def encoder_ready(card, options) -> str:
    """What `runner eval` will load for this encoder card, found and checked the way the run finds it
    (runner.embed.for_task: open_encoder, open_cache) without building the model; raises a RegistryError saying what
    is missing. A custom entrypoint is imported here (the flag allows it) so that an import error shows now."""
    import importlib.util

    from runner.embed.for_task import EmbeddingError, open_cache, open_encoder
    from runner.encoders import adapter_class
    from runner.encoders.custom import resolve_entrypoint
    from runner.encoders.metadata import reads_pixels

    settings = options.embed_settings()
    encoder = open_encoder(card, settings)  # the adapter plugin and --trust-custom-code
    cls = adapter_class(encoder)
    missing = [name for name in getattr(cls, "requires", ()) if importlib.util.find_spec(name) is None]
    if missing:
        raise EmbeddingError(f"encoder {card.id!r} (adapter {card.data['adapter']}) needs {', '.join(missing)}, which "
                             f"is not installed here; `runner doctor --encoder {card.id}` says what to install",
                             exit_code=2)
    if card.data["adapter"] == "custom":
        try:
            resolve_entrypoint(card.data.get("entrypoint", ""))
        except RegistryError as exc:  # not importable, no such attribute: the card's entrypoint is wrong here
            raise EmbeddingError(f"encoder {card.id!r}: {exc}", exit_code=2) from None
        except Exception as exc:  # noqa: BLE001 - the user's module failed while importing: one line, not a traceback
            raise EmbeddingError(f"encoder {card.id!r}: importing entrypoint {card.data.get('entrypoint')!r} failed: "
                                 f"{type(exc).__name__}: {exc}", exit_code=2) from None
    if not reads_pixels(card.data):
        return "reads no pixels: the data set's metadata columns"
    made_by = open_cache(card, encoder, settings).made_by  # finds (and hashes, once per file version) the weights
    if made_by.weights_sha256:
        files = ", ".join(f"{name} (sha256 {digest[:12]})" for name, digest in made_by.weights_sha256.items())
        return f"weights found: {shown(files, 300)}"
    return f"weights: {made_by.no_weights}"


def run_many(tasks: list[str], encoders: list[str], data_root: Path | None, out: Path, options, reg,
             quiet_stdout: bool = False) -> list[PairOutcome]:
    """Evaluate every task x encoder pair, printing one line each; a failing pair is reported (once) and the next one
    runs. Every encoder is checked first (check_encoders_first): one that cannot run is reported once, and none of its
    pairs samples anything. The others go through runner.evaluate.run_evaluations: every pair's folds are sent to the
    fit processes as soon as it is embedded, before an earlier pair's are read."""
    from runner.encoders.isolation import needs_own_process
    from runner.evaluate import run_evaluations
    from runner.task_types import task_type_of

    unready = check_encoders_first(encoders, options, reg)
    for encoder_id, exc in unready.items():
        typer.echo(f"error: {encoder_id}: {exc}" if encoder_id not in str(exc) else f"error: {exc}", err=True)

    def apart(task_id: str, encoder_id: str):  # a TensorFlow encoder's pair runs in its own child process
        if needs_own_process(reg.encoders[encoder_id].data):
            return lambda: evaluate_pair(task_id, encoder_id, data_root, out, options, reg)
        return None

    outcomes = []
    pairs = [(t, e) for t in tasks for e in encoders]
    done_pairs = run_evaluations([(t, e) for t, e in pairs if e not in unready], data_root, out, options, reg,
                                 apart=apart)
    for task_id, encoder_id in pairs:
        if encoder_id in unready:
            exc = unready[encoder_id]
            outcomes.append(PairOutcome(task_id, encoder_id, "failed", 0.0, error=" ".join(str(exc).split()),
                                        exit_code=exc.exit_code))
            continue
        done = next(done_pairs)
        run = done.outcome
        if isinstance(run, RegistryError):
            outcome = PairOutcome(task_id, encoder_id, "failed", done.seconds, error=" ".join(str(run).split()),
                                  exit_code=run.exit_code)
        elif isinstance(run, Exception):  # the CLI promises a one-line message, never a traceback
            outcome = PairOutcome(task_id, encoder_id, "failed", done.seconds,
                                  error=f"unexpected {type(run).__name__}: {run}", exit_code=1)
        else:
            path, result = run.result_path, run.result
            order = task_type_of(reg.tasks[task_id]).metric_ids(reg.tasks[task_id].spec)
            metrics = {name: result["metrics"][name] for name in sorted(
                result["metrics"], key=lambda m: (order.index(m) if m in order else len(order), m))}
            outcome = PairOutcome(task_id, encoder_id, "ok", done.seconds, str(path),
                                  metrics.get("auroc"), metrics.get("f1"), skipped_analyses=skipped_analyses(result),
                                  reused=run.reused, metrics=metrics)
            copy_cards(Path(path).parent, outside_cards(reg, cards_of_pair(reg, task_id, encoder_id)))
        outcomes.append(outcome)
        if outcome.status == "ok":
            numbers = "  ".join(f"{_label(name)} {_fmt(metric)}" for name, metric in outcome.metrics.items())
            _say(f"{task_id:<20} {encoder_id:<22} {numbers}  "
                 f"({outcome.seconds:.1f} s{REUSED_NOTE if outcome.reused else ''})  {outcome.result}", quiet_stdout)
            for skipped in outcome.skipped_analyses:
                _say(f"  analysis {skipped['name']} {skipped['status']}: {skipped['reason']}", quiet_stdout)
        else:
            typer.echo(f"error: {task_id} x {encoder_id}: {outcome.error}", err=True)
    return outcomes


def cards_of_pair(reg, task_id: str, encoder_id: str) -> list:
    """The cards a pair's result depends on: encoder, task, its data set, and a transfer task's training side."""
    task = reg.tasks[task_id]
    cards = [reg.encoders[encoder_id], task, reg.datasets[task.spec.dataset]]
    train_id = task.spec.transfer_train_task if task.spec.type == "transfer" else None
    if train_id in reg.tasks:
        cards += [reg.tasks[train_id], reg.datasets[reg.tasks[train_id].spec.dataset]]
    return cards


def skipped_analyses(result: dict) -> list[dict]:
    """The analyses a run asked for but did not compute, with the reason each gives."""
    return [{"name": name, "status": block["status"], "reason": block.get("reason", "no reason given")}
            for name, block in sorted((result.get("analyses") or {}).items())
            if isinstance(block, dict) and block.get("status") in ("skipped", "failed")]


def summary_lines(outcomes: list[PairOutcome]) -> list[str]:
    """The table printed after several pairs: every pair, its status and headline metric (a failure's error was
    printed when it happened: not again)."""
    width_t = max([len("task")] + [len(o.task) for o in outcomes])
    width_e = max([len("encoder")] + [len(o.encoder) for o in outcomes])
    lines = [f"{'task':<{width_t}}  {'encoder':<{width_e}}  status  headline metric"]
    for o in outcomes:
        headline = next(iter(o.metrics.items()), ("auroc", o.auroc)) if o.status == "ok" else None
        what = f"{_label(headline[0])} {_fmt(headline[1])}" if headline else "see the error above"
        lines.append(f"{o.task:<{width_t}}  {o.encoder:<{width_e}}  {o.status:<6}  {what}")
    failed = sum(o.status != "ok" for o in outcomes)
    lines.append(f"{len(outcomes) - failed} of {len(outcomes)} evaluation(s) done, {failed} failed")
    return lines


def exit_code_of(outcomes: list[PairOutcome]) -> int:
    """0 when every pair ran; else 2 when any failed for bad input, 1 otherwise."""
    codes = {o.exit_code for o in outcomes if o.status != "ok"}
    return 0 if not codes else (2 if 2 in codes else 1)


def _label(metric_id: str) -> str:
    """auroc -> AUROC, precision_at_10 -> precision@10, map -> mAP (how a metric id is printed)."""
    named = {"auroc": "AUROC", "f1": "F1", "map": "mAP", "nmi": "NMI", "ari": "ARI", "v_measure": "V-measure"}
    return named.get(metric_id, metric_id.replace("_at_", "@").replace("_", " "))


def _fmt(metric: dict) -> str:
    if metric["mean"] is None:
        return f"n/a ({metric.get('reason', 'not computable')})"
    half = metric.get("half_width")
    return f"{metric['mean']:.3f}" + (f" ± {half:.3f}" if half is not None else "")


def check_device(device: str) -> None:
    """--device cuda[:N] on a machine without that GPU: exit 2 now, before any sampling."""
    if device != "auto" and device != "cpu" and not device.startswith("cuda"):
        fail(f"--device {shown(device)}; expected auto, cpu or cuda[:N]")
    if not device.startswith("cuda"):
        return
    index = device.partition(":")[2]
    if index and not index.isdigit():
        fail(f"--device {shown(device)}; expected cuda or cuda:N with N a number")
    import torch

    if not torch.cuda.is_available():
        fail(f"--device {device}: CUDA is not available on this machine (torch {torch.__version__}, "
             f"built for CUDA {torch.version.cuda or 'none'}); use --device cpu or auto")
    if index and int(index) >= torch.cuda.device_count():
        fail(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


@app.command("eval")
def eval_command(
    task: Annotated[str, typer.Option("--task", help="Task id, glob ('*-nih'), benchmark id ('paper-table1', see "
                                      "`runner list benchmarks`) or 'all'; several separated by commas.")],
    encoder: Annotated[str | None, typer.Option(
        "--encoder", help="Encoder id, glob ('xrv-*'), the path of a card file outside the registry, or 'all' (the "
        "encoders whose weights are here, controls left out); several separated by commas.",
        show_default=False)] = None,
    data_root: Annotated[Path | None, typer.Option(
        "--data-root", help="Folder holding the data set (default: the dataset card's environment variable).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Run folder: OUT/<task>/manifest.*, "
                                      "OUT/<task>/<encoder>/result.json + predictions.parquet.")] = Path("out/runs"),
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N] (auto: CUDA when present).")] = "auto",
    analyses: Annotated[str, typer.Option(
        "--analyses", help="none | card (those the task card enables) | all | a comma list, e.g. stability,subgroups."
    )] = "card",
    workers: Annotated[int | None, typer.Option("--workers", min=0, help=WORKERS_HELP)] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1,
                                                   help="Images per batch (default: the encoder card's).")] = None,
    cache_dir: Annotated[Path | None, typer.Option(
        "--cache-dir", help="Embedding cache (default: $CXR_CACHE_DIR or ~/.cache/cxr-registry).")] = None,
    weights_dir: Annotated[Path | None, typer.Option(
        "--weights-dir", help="Folder holding the encoder's weight files (default: the card's local_dir_env, "
        "$CXR_WEIGHTS_DIR/<id>, then the Hub cache).")] = None,
    include_controls: Annotated[bool, typer.Option(
        "--include-controls", help="Let 'all' and globs select control encoders (random weights, built-ins) too.")
    ] = False,
    backend: Annotated[str, typer.Option(
        "--backend", help="Where embeddings are computed: auto (device on CUDA, else cpu) | cpu (decode workers + "
        "the encoder on this process) | device (read on CPU workers, preprocess + forward on the device) | ray (a Ray "
        "Data actor pool; $RAY_ADDRESS for a cluster).")] = "auto",
    trust_custom_code: Annotated[bool, typer.Option(
        "--trust-custom-code", help="Allow encoder cards with adapter: custom to run their Python entry point.")] = False,
    dataset_root: Annotated[list[str] | None, typer.Option(
        "--dataset-root", help="DATASET=DIR: the root of another data set a run needs (a transfer task's training "
        "set, a transfer analysis target); repeatable. Default: that dataset card's environment variable.")] = None,
    resample: Annotated[bool, typer.Option(
        "--resample", help="Sample again from the data root: neither a manifest already in OUT/<task>/ (otherwise reused "
        "only while its data fingerprint matches) nor the committed one (manifests/<task>/) is used.")] = False,
    recompute: Annotated[bool, typer.Option(
        "--recompute", help="Fit and score again even when OUT/<task>/<encoder>/result.json was computed from the "
        "same inputs (cards, manifest, embeddings, code, package versions: runner/results/reuse.py); otherwise it is "
        "kept. Cached embeddings are still read: only those made from these very weights, code and packages ever are.")
    ] = False,
    re_embed: Annotated[bool, typer.Option(
        "--re-embed", help="Compute every embedding again (and retry images that failed to decode) instead of "
        "reading the cache; the new embeddings replace the cached ones. The result is fitted again when they differ.")
    ] = False,
    save_embeddings: Annotated[bool, typer.Option(
        "--save-embeddings", help="Also write OUT/<task>/<encoder>/embeddings.npz (float32): `runner submit` then has "
        "the registry refit the classifier itself (the stronger tier), and `runner audit` can check the embeddings "
        "against the images.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print a JSON summary of every pair on stdout (progress and per-pair lines go to stderr).")
    ] = False,
):
    """Evaluate encoder(s) on task(s): sample (or reuse the frozen manifest), embed (cached), LightGBM per fold,
    AUROC and F1 with 95% CIs, and a validated result JSON per pair. A failing pair does not stop the others: a
    summary follows, and the exit code is non-zero if any failed.

    Exit codes: 0 done, 1 failure, 2 invalid input (unknown id, missing data, bad option).
    """
    import json

    from runner.embed.plan import BACKENDS

    check_workers_option(workers)
    check_device(device)
    if backend not in BACKENDS:
        fail(f"--backend {shown(backend)}; expected one of {', '.join(BACKENDS)}")
    with reporting(progress_mode()):  # a line for every phase from here on (runner.runtime.progress)
        card_files = [Path(t.strip()) for t in (encoder or "").split(",") if t.strip() and is_card_path(t.strip())]
        with phase("reading the cards"):
            from runner.evaluate import EvalOptions  # ~1 s of imports: after the first line

            reg = load_cli_registry(extra_cards=card_files)
        if encoder is None:
            present = encoders_with_weights(reg, weights_dir)
            marks = {e: " (control)" for e in present if reg.encoders[e].data.get("control")}
            fail("no --encoder given. Encoders whose weights are on this machine: "
                 + ", ".join(e + marks.get(e, "") for e in present)
                 + ". Pick one with --encoder ID (several: a,b; by pattern: 'xrv-*'; every one with weights: all, "
                 "controls only with --include-controls), "
                 "or a card file outside the registry with --encoder path/to/card.yaml; `runner list encoders` lists "
                 "them.")
        tasks = select_tasks(task, reg)
        selection = select_encoders(encoder, reg, include_controls, weights_dir)
        for encoder_id, why in selection.left_out.items():
            typer.echo(f"left out {encoder_id}: {why}", err=True)
        if data_root is not None and len({reg.tasks[t].data["dataset"] for t in tasks}) > 1:
            fail("the tasks span several data sets, but --data-root names one folder: pick the tasks of one data "
                 "set, or leave --data-root out and set each dataset card's environment variable")
        options = EvalOptions(device=device, workers=workers, analyses=_analyses(analyses), cache_dir=cache_dir,
                              trust_custom_code=trust_custom_code, progress=progress_mode(),
                              batch_size=batch_size, backend=backend, weights_dir=weights_dir, resample=resample,
                              recompute=recompute, save_embeddings=save_embeddings, re_embed=re_embed,
                              data_roots={**_demo_layout_roots(data_root, reg), **_dataset_roots(dataset_root, reg)})
        outcomes = run_many(tasks, selection.ids, data_root, out, options, reg, quiet_stdout=as_json)
        if len(outcomes) > 1:  # one pair: its line, or its error, already said everything
            for line in summary_lines(outcomes):
                typer.echo(line, err=as_json)
        if as_json:
            typer.echo(json.dumps({"runs": [o.__dict__ for o in outcomes], "left_out": selection.left_out,
                                   "n_ok": sum(o.status == "ok" for o in outcomes),
                                   "n_failed": sum(o.status != "ok" for o in outcomes)},
                                  indent=2, allow_nan=False))
    raise typer.Exit(exit_code_of(outcomes))


DEMO_BENCHMARK = "demo"  # registry/benchmarks.yaml: its tasks, and its `run` block's encoders and analyses


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option("--out", help="Everything goes here: data/, runs/, results/, site/.")] = Path(
        "out/demo"),
    workers: Annotated[int | None, typer.Option("--workers", min=0, help=WORKERS_HELP)] = None,
):
    """Run the whole pipeline offline on SYNTHETIC data: the `demo` benchmark (registry/benchmarks.yaml). Make its data
    sets as their dataset cards' `synthetic_data` blocks say (site A, and site B for the transfer task), evaluate every
    task of the benchmark with the encoders and analyses of its `run` block, file the results into OUT/results and
    build the leaderboard site (with tie groups) into OUT/site. The numbers say nothing about real X-rays.
    """
    check_workers_option(workers)
    with reporting(progress_mode()):  # a line for every phase (runner.runtime.progress)
        run_demo(out, workers)


def run_demo(out: Path, workers: int | None) -> None:
    started = time.perf_counter()
    with phase("reading the cards"):
        from registry.benchmarks import load_benchmarks, tasks_of
        from runner.data.synthetic import make_demo_dataset
        from runner.evaluate import EvalOptions

        reg = load_cli_registry()
    benchmark = load_benchmarks(reg.root).get(DEMO_BENCHMARK)
    tasks = tasks_of(DEMO_BENCHMARK, reg.tasks) if benchmark else []
    if not tasks or not benchmark.run_encoders:
        fail(f"no demo: benchmark {DEMO_BENCHMARK!r} needs tasks (task cards listing it in `benchmarks`) and a "
             f"`run.encoders` list in {reg.home.benchmarks_file}")
    roots = {}
    needed = {reg.tasks[t].spec.dataset for t in tasks} | {
        reg.tasks[reg.tasks[t].spec.transfer_train_task].spec.dataset
        for t in tasks if reg.tasks[t].spec.type == "transfer"}
    for dataset_id in sorted(needed):
        made = reg.datasets[dataset_id].spec.synthetic_data
        if made is None:
            fail(f"demo task data set {dataset_id!r} has no `synthetic_data` block: runner demo cannot make it")
        roots[dataset_id] = out / made.folder
        if not (roots[dataset_id] / "demo_data.json").is_file():
            typer.echo(f"making the synthetic data set {dataset_id} in {roots[dataset_id]}")
            with phase(f"writing {dataset_id}'s synthetic DICOM files"):
                make_demo_dataset(roots[dataset_id], seed=made.seed, n_patients=made.patients,
                                  image_size=made.image_size, site=made.site)
    options = EvalOptions(device="auto", workers=workers, analyses=list(benchmark.run_analyses),
                          cache_dir=out / "cache", progress=progress_mode(), data_roots=roots,
                          save_embeddings=True)  # the registry refits from them, and the demo audits them
    outcomes = run_many(tasks, list(benchmark.run_encoders), None, out / "runs", options, reg)
    if exit_code_of(outcomes):
        for line in summary_lines(outcomes):
            typer.echo(line)
        raise typer.Exit(exit_code_of(outcomes))
    paths = [Path(o.result) for o in outcomes]

    results_dir = out / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    try:
        from leaderboard.filing.audit import audit
        from leaderboard.filing.submit import submit
        from leaderboard.filing.verified import remember_filed
        from leaderboard.site.render import build_site
    except ImportError:
        build_site = None
    if build_site is None:
        typer.echo(f"{len(paths)} results under {out / 'runs'} (the leaderboard package is not installed)")
        return
    # The demo's leaderboard starts from the registry's filed results (the paper's Table 1, reported) and adds its own.

    # results, predictions and the frozen manifests they are verified against
    for filed in counted(sorted(reg.home.results_dir.iterdir()), f"copying the registry's filed results into "
                                                                 f"{results_dir}"):
        if filed.is_file() and not (results_dir / filed.name).exists():
            shutil.copyfile(filed, results_dir / filed.name)
        elif filed.is_dir():
            shutil.copytree(filed, results_dir / filed.name, dirs_exist_ok=True)
    filed = []
    records_dir = out / "cache" / "verified"  # regeneration records: the site build need not refit these again
    # submit finds the task's frozen manifest one folder up from each result
    for path in counted(paths, f"filing {len(paths)} results (the registry refits each from its embeddings)"):
        try:
            filed.append(submit(path, reg, results_dir=results_dir, replace=True).path)
        except RegistryError as exc:  # SubmitError and friends: one line, not a traceback
            fail(f"filing {path}: {exc}", 1)
        remember_filed(filed[-1], reg, records_dir)
    typer.echo(f"filed {len(filed)} results: the registry's regenerations, refitted from their embeddings")
    passed = 0
    # the demo has its images: every filed bundle is audited against them
    for path in counted(filed, f"auditing {len(filed)} filed results (a sample of embeddings recomputed)"):
        result = json.loads(path.read_text(encoding="utf-8"))
        if result.get("embeddings_sha256"):
            try:
                passed += audit(path, reg, roots[result["task"]["dataset"]], workers=0).passed
            except RegistryError as exc:
                fail(f"auditing {path}: {exc}", 1)
    typer.echo(f"audited: {passed} results whose embeddings re-computed from the images match the filed ones")
    with phase(f"building the site in {out / 'site'}"):
        index = build_site(out / "site", results_dir, reg, records_dir=records_dir)
    typer.echo(f"demo finished in {time.perf_counter() - started:.0f} s; results in {results_dir}")
    typer.echo(f"site: {index}")
