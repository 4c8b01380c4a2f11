"""One evaluation, end to end: the stage order of `runner eval`.

cards -> manifest (runner.sample.run_manifest) -> embeddings (runner.embed.for_task, cached) -> design
(runner.classify.design) -> the card's classifier per fold (runner.classify.out_of_fold) -> metrics
(runner.metrics.summary) -> analyses (runner.analysis.for_run) -> result.json (runner.results.run_result).
That is the classification and transfer task types'; every other type (runner.task_types: multi-label, few-shot,
demographic, retrieval, reidentification, clustering, zero-shot) shares the stages up to the embeddings and is then
scored by its own function (runner.task_types.run.run_typed), which the registry's regeneration calls too.

Entry: `evaluate(task_id, encoder_id, data_root, out_dir, ...) -> Path` of the result file
(`run_evaluation` also returns the result object and the cache's counters).

Run folder layout (OUT = out_dir):
  OUT/<task>/manifest.parquet, manifest.json, exclusions.csv   the frozen sample, shared by every encoder
  OUT/<task>/<encoder>/result.json                              validated (schema, no NaN) before it is written
  OUT/<task>/<encoder>/predictions.parquet                      out-of-fold: image_id, patient_id, label, fold, prob
A manifest already in OUT/<task>/ is reused when it was made from the same task behaviour (the task card's behaviour
hash, which covers its dataset card too), so every encoder of a task is scored on the same images and folds.

A result depends only on its own inputs: this module never reads another run's result or predictions. Comparisons
across encoders (paired tests, tie groups) and across tasks (a transfer task's in-domain reference) are made by the
summarize stage (leaderboard/summary/summarize.py) from filed results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from registry.cards import load_registry
from registry.errors import RegistryError
from runner.analysis.for_run import (
    RunContext,
    augmentations_needed,
    prediction_analyses,
    run_task_analyses,
    wanted_analyses,
)
from runner.classify.design import cross_validation_design, transfer_design
from runner.classify.out_of_fold import classify_many
from runner.data.fingerprint import file_sha256
from runner.data.roots import DataRoots
from runner.embed.for_task import EmbedSettings, embed_task, open_cache, open_encoder
from runner.encoders.metadata import reads_pixels
from runner.metrics.summary import summarize
from runner.results.bundle import NAME as BUNDLE_NAME
from runner.results.bundle import bundle_header, write_bundle
from runner.results.result import write_result
from runner.results.reuse import reusable_result, run_inputs_sha256
from runner.results.run_result import RunFacts, run_result, transfer_block, write_predictions
from runner.sample.exclusion_budget import check_budget, max_excluded_fraction
from runner.sample.run_manifest import manifest_for_run
from runner.task_types import scores_itself
from runner.task_types.run import run_typed


class EvaluationError(RegistryError):
    """An evaluation that cannot run; str() is the one-line human message. `exit_code` 2 = bad input, 1 = failure."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class EvalOptions:
    device: str = "auto"  # auto | cpu | cuda[:N]
    workers: int | None = None  # decode worker processes (None: runner.embed.plan.default_workers)
    analyses: list[str] | None = field(default_factory=list)  # [] none; None: those the task card enables
    cache_dir: Path | None = None  # default: $CXR_CACHE_DIR or ~/.cache/cxr-registry
    trust_custom_code: bool = False
    progress: bool | str = True  # True: a progress bar; "log": a line on stderr every few seconds (not a terminal)
    batch_size: int | None = None  # default: the encoder card's
    backend: str = "auto"  # auto | cpu | device | ray (runner.embed.plan)
    # dataset id -> root, for data sets other than the task's own: a transfer task's training set, transfer targets
    data_roots: dict[str, Path] = field(default_factory=dict)
    resample: bool = False  # sample again: neither a manifest in OUT/<task>/ nor the committed one (manifests/)
    weights_dir: Path | None = None  # --weights-dir: where the encoder's weight files are
    recompute: bool = False  # fit and score again even when the run folder's result has these inputs' fingerprint
    save_embeddings: bool = False  # write OUT/<task>/<encoder>/embeddings.npz for the registry's refit (runner submit)
    re_embed: bool = False  # compute every embedding again: nothing cached before these options were made is read
    re_embed_since: int = field(default=0, init=False)  # that moment (ns), so the runs of one command embed once

    def __post_init__(self):
        self.re_embed_since = time.time_ns() if self.re_embed else 0

    def embed_settings(self) -> EmbedSettings:
        return EmbedSettings(self.device, self.workers, self.batch_size, self.backend, self.progress, self.cache_dir,
                             self.weights_dir, self.trust_custom_code, self.re_embed_since)


@dataclass
class EvalRun:
    result_path: Path
    result: dict
    n_computed: int  # images embedded by this run (0 when the cache had them all)
    cache_hits: int
    cache_misses: int
    reused: bool = False  # the result in the run folder was computed from these very inputs (runner.results.reuse)


@dataclass
class _Side:
    """One task's frozen manifest and its embeddings (a transfer task has two: the training task's and its own)."""

    task: object  # registry Card
    dataset: object
    manifest: object  # runner.sample.manifest.Manifest
    embedded: object  # runner.embed.rows.Embeddings


def evaluate(task_id: str, encoder_id: str, data_root: Path | None, out_dir: Path, options: EvalOptions | None = None,
             registry=None) -> Path:
    """Evaluate one encoder on one task; returns OUT/<task>/<encoder>/result.json."""
    return run_evaluation(task_id, encoder_id, data_root, out_dir, options, registry).result_path


def run_evaluation(task_id: str, encoder_id: str, data_root: Path | None, out_dir: Path,
                   options: EvalOptions | None = None, registry=None) -> EvalRun:
    """`evaluate`, also returning the result object and the embedding cache's counters.

    A task card with `type: transfer` trains one classifier on every image of `transfer.train_task`'s manifest and
    scores this task's manifest: both are sampled (or reused) and frozen under OUT/<task>/, both embedded through the
    cache; the predictions are one holdout "fold 0", so the CI is the patient bootstrap over the test set.
    Every stage's error a user can act on is one EvaluationError line with the stage's exit code.
    """
    try:
        return _run(task_id, encoder_id, data_root, Path(out_dir), options or EvalOptions(), registry)
    except EvaluationError:
        raise
    except RegistryError as exc:
        raise EvaluationError(str(exc), exit_code=exc.exit_code) from None


def _run(task_id: str, encoder_id: str, data_root: Path | None, out_dir: Path, options: EvalOptions,
         registry) -> EvalRun:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    reg = registry or load_registry()
    task = reg.get("task", task_id)
    encoder_card = reg.get("encoder", encoder_id)
    dataset = reg.get("dataset", task.data["dataset"])
    train_cards = _train_task_cards(reg, task)
    task_dir = out_dir / task.id
    run_dir = task_dir / encoder_card.id
    typed = scores_itself(task)  # a task type with its own score function: no classifier design, no analyses
    wanted = [] if typed else wanted_analyses(task, options.analyses)
    roots = DataRoots(task.spec.dataset, data_root, options.data_roots)
    settings = options.embed_settings()
    reads_images = reads_pixels(encoder_card.data)  # the metadata baseline reads no pixels: files are not verified

    t0 = time.perf_counter()
    cards = [(task, dataset, task_dir)] + ([(*train_cards, out_dir / train_cards[0].id)] if train_cards else [])
    manifests = [manifest_for_run(side_task, side_dataset, roots.of(side_dataset.data), side_dir,
                                  reg.home.manifests_dir, resample=options.resample, defer_verify=not reads_images)
                 for side_task, side_dataset, side_dir in cards]
    timings["sample"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    encoder = open_encoder(encoder_card, settings)
    augment = augmentations_needed(task, wanted)
    cache = open_cache(encoder_card, encoder, settings)
    sides = [_Side(side_task, side_dataset, manifest,
                   embed_task(encoder, encoder_card, side_dataset.id, roots.of(side_dataset.data), manifest.frame,
                              cache, augment, settings, side_dataset.data.get("metadata_features")))
             for (side_task, side_dataset, _), manifest in zip(cards, manifests)]
    for side in sides:  # past the card's budget the numbers are not the sample's
        check_budget(side.task.id, len(side.manifest.frame), side.embedded.exclusions,
                     max_excluded_fraction(side.task.data))
    timings["embed"] = time.perf_counter() - t0
    test_side, train_side = sides[0], (sides[1] if len(sides) > 1 else None)
    if typed:
        path, result, reused = run_typed(task, encoder_card, dataset, test_side.manifest, test_side.embedded, encoder,
                                         run_dir, timings, started, device=options.device, reads_pixels=reads_images,
                                         recompute=options.recompute, made_by=cache.made_by)
        return EvalRun(path, result, _n_computed(sides), cache.hits, cache.misses, reused=reused)

    allow_missing = not reads_images  # metadata features may be missing (NaN); embeddings never
    design = (transfer_design(train_side.manifest, train_side.embedded, test_side.manifest, test_side.embedded,
                              allow_missing) if train_side else
              cross_validation_design(test_side.manifest, test_side.embedded, allow_missing))
    fingerprint = run_inputs_sha256(task, encoder_card, [(s.dataset, s.manifest, s.embedded) for s in sides], design,
                                    wanted, options.device, cache.made_by.record())
    if not options.recompute and "transfer" not in wanted:  # transfer targets are other data sets: not fingerprinted
        earlier, _ = reusable_result(run_dir, fingerprint)
        if earlier is not None:
            return EvalRun(run_dir / "result.json", earlier, _n_computed(sides), cache.hits, cache.misses, reused=True)

    t0 = time.perf_counter()
    try:
        fitted = classify_many([design], task.spec.classifier)[0]
    except RegistryError as exc:
        raise EvaluationError(f"{task.id} x {encoder_card.id}: {exc}", exit_code=1) from None
    timings["classify"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n_train = {fit.fold: fit.n_train for fit in fitted.folds}
    summary = summarize(fitted.predictions, task.spec.metrics, eval_folds=design.eval_folds, n_train=n_train)
    timings["metrics"] = time.perf_counter() - t0

    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    per_analysis: dict[str, float] = {}
    analyses = prediction_analyses(task, fitted.predictions, design.table, design.eval_folds, summary, wanted,
                                   per_analysis)
    analyses["classifier"] = {"trees_per_fold": [fit.n_trees for fit in fitted.folds],
                              "train_rows_per_fold": [fit.n_train_rows for fit in fitted.folds]}
    if getattr(test_side.embedded, "feature_names", None):  # the metadata baseline: which columns it used
        analyses["metadata_features"] = {"columns": test_side.embedded.feature_names}
    if train_side:  # the transfer block describes how a transfer task's numbers were made: always written
        analyses["transfer"] = transfer_block(train_side.task, train_side.dataset, train_side.manifest,
                                              train_side.embedded, task, dataset, test_side.manifest,
                                              test_side.embedded, summary)
        wanted = [name for name in wanted if name != "transfer"]
    if wanted:
        run = RunContext(task, reg, encoder, encoder_card, cache, roots, run_dir, out_dir, settings, options.resample)
        analyses.update(run_task_analyses(wanted, run, design, fitted, per_analysis))
        timings["analyses"] = time.perf_counter() - t0
        timings.update({f"analysis.{name}": seconds for name, seconds in per_analysis.items()})
    timings["total"] = time.perf_counter() - started

    facts = RunFacts.of_run(test_side.embedded, timings, encoder.device, encoder.devices_used(),
                            cache.made_by.record())
    result = run_result(task, encoder_card, dataset, test_side.manifest, fitted.predictions,
                        test_side.embedded.exclusions, summary, analyses, facts)
    write_predictions(fitted.predictions, run_dir / "predictions.parquet")
    result["predictions_sha256"] = file_sha256(run_dir / "predictions.parquet")  # what submit recomputes from
    if options.save_embeddings and reads_images:  # what the registry refits from
        bundle = write_bundle(run_dir / BUNDLE_NAME, design.table["image_id"].astype(str).tolist(),
                              design.embeddings, design.augmented or {},
                              bundle_header(task, encoder_card, test_side.manifest,
                                            cache.made_by.weights_sha256))
        result["embeddings_sha256"] = file_sha256(bundle)
    result["inputs_sha256"] = fingerprint  # what a later run of the same pair compares (runner.results.reuse)
    path = write_result(result, run_dir / "result.json")
    return EvalRun(path, result, _n_computed(sides), cache.hits, cache.misses)


def _train_task_cards(reg, task) -> tuple | None:
    """(train task card, its dataset card) of a transfer task; None for a plain classification task."""
    if task.spec.type != "transfer":
        return None
    train_id = task.spec.transfer_train_task
    if not train_id:
        raise EvaluationError(f"{task.id}: a transfer task needs transfer.train_task", exit_code=2)
    train_task = reg.get("task", train_id)
    if train_task.spec.type == "transfer":
        raise EvaluationError(f"{task.id}: transfer.train_task {train_id!r} is itself a transfer task", exit_code=2)
    if train_task.spec.label.id != task.spec.label.id:
        raise EvaluationError(f"{task.id}: transfer.train_task {train_id!r} has label {train_task.spec.label.id!r}, "
                              f"this task {task.spec.label.id!r}; transfer needs the same label", exit_code=2)
    return train_task, reg.get("dataset", train_task.spec.dataset)


def _n_computed(sides: list[_Side]) -> int:
    """Images the sides' embedding step decoded and embedded in this run (the rest came from the cache)."""
    return sum(side.embedded.n_computed for side in sides)
