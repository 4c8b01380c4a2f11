"""One evaluation, end to end: cards -> manifest -> embeddings (cached) -> LightGBM per fold -> metrics -> result.json.

Entry: `evaluate(task_id, encoder_id, data_root, out_dir, ...) -> Path` of the result file.

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

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from registry.errors import RegistryError
from runner.runtime.atomic import atomic_write  # stdlib only

# Imported before any torch user on purpose: it sets OMP_WAIT_POLICY before torch or lightgbm load OpenMP.
from runner.classify.out_of_fold import ClassifyError, Design, classify, classify_many


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
    pipeline: str = "auto"  # auto | cpu | fast (runner.embed.device: preprocessing on the device)
    batch_size: int | None = None  # default: the encoder card's
    backend: str = "local"  # local | ray (runner.embed.ray_pool: Ray Data actor pool, same cache)
    # dataset id -> root, for data sets other than the task's own: a transfer task's training set, transfer targets
    data_roots: dict[str, Path] = field(default_factory=dict)
    resample: bool = False  # sample again: neither a manifest in OUT/<task>/ nor the committed one (manifests/)
    weights_dir: Path | None = None  # --weights-dir: where the encoder's weight files are
    recompute: bool = False  # compute again even when the run folder's result has these inputs' fingerprint


@dataclass
class EvalRun:
    result_path: Path
    result: dict
    n_computed: int  # images embedded by this run (0 when the cache had them all)
    cache_hits: int
    cache_misses: int
    reused: bool = False  # the result already in the run folder was computed from these very inputs (runner.results.reuse)


def evaluate(task_id: str, encoder_id: str, data_root: Path | None, out_dir: Path, options: EvalOptions | None = None,
             registry=None) -> Path:
    """Evaluate one encoder on one task; returns OUT/<task>/<encoder>/result.json."""
    return run_evaluation(task_id, encoder_id, data_root, out_dir, options, registry).result_path


@dataclass
class _Design:
    """What the classifier sees: table rows (image_id, patient_id, label, fold, ...) aligned with x and each view."""

    table: pd.DataFrame
    x: np.ndarray
    augmented: dict[str, np.ndarray]
    eval_folds: list[int]


@dataclass
class _Side:
    """One task's frozen manifest and its embeddings (a transfer task has two: the training task's and its own)."""

    task: object  # registry Card
    dataset: object
    manifest: object  # runner.sample.manifest.Manifest
    embedded: object  # runner.embed.rows.Embeddings


def run_evaluation(task_id: str, encoder_id: str, data_root: Path | None, out_dir: Path,
                   options: EvalOptions | None = None, registry=None) -> EvalRun:
    """`evaluate`, also returning the result object and the embedding cache's counters.

    A task card with `type: transfer` trains one classifier on every image of `transfer.train_task`'s manifest and
    scores this task's manifest: both are sampled (or reused) and frozen under OUT/<task>/, both embedded through the
    cache; the predictions are one holdout "fold 0", so the CI is the patient bootstrap over the test set.
    """
    from registry.cards import load_registry
    from registry.errors import CardError

    options = options or EvalOptions()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        reg = registry or load_registry()
        task = reg.get("task", task_id)
        encoder_card = reg.get("encoder", encoder_id)
        dataset = reg.get("dataset", task.data["dataset"])
        train_cards = _train_task_cards(reg, task)
    except CardError as exc:
        raise EvaluationError(str(exc), exit_code=2) from None
    out_dir = Path(out_dir)
    task_dir = out_dir / task.id
    run_dir = task_dir / encoder_card.id
    wanted = _wanted_analyses(task, options.analyses)
    roots = _Roots(task.spec.dataset, data_root, options.data_roots)

    t0 = time.perf_counter()
    from runner.encoders.metadata import reads_pixels

    defer = not reads_pixels(encoder_card.data)  # a metadata-only data root has no files to verify
    manifest = _manifest(task, dataset, roots.of(dataset.data), task_dir, resample=options.resample,
                         defer_verify=defer)
    train_manifest = None
    if train_cards:
        train_manifest = _manifest(*train_cards, roots.of(train_cards[1].data), out_dir / train_cards[0].id,
                                   resample=options.resample, defer_verify=defer)
    timings["sample"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    encoder = _load_encoder(encoder_card, options)
    augment = _augment_spec(task, wanted)
    cache = _cache(encoder_card, encoder, options)
    test_side = _Side(task, dataset, manifest, _embed(encoder, encoder_card, dataset.id, roots.of(dataset.data),
                                                      manifest.frame, cache, augment, options))
    train_side = None
    if train_cards:
        train_side = _Side(*train_cards, train_manifest,
                           _embed(encoder, encoder_card, train_cards[1].id, roots.of(train_cards[1].data),
                                  train_manifest.frame, cache, augment, options))
    for side in filter(None, (test_side, train_side)):  # past the card's budget the numbers are not the sample's
        _check_exclusion_budget(side)
    timings["embed"] = time.perf_counter() - t0

    design = _transfer_design(train_side, test_side) if train_side else _design(test_side)
    fingerprint = _inputs_sha256(task, encoder_card, test_side, train_side, design, wanted, options)
    if not options.recompute and "transfer" not in wanted:  # transfer targets are other data sets: not fingerprinted
        from runner.results.reuse import reusable_result

        earlier, _ = reusable_result(run_dir, fingerprint)
        if earlier is not None:
            return EvalRun(run_dir / "result.json", earlier, _n_computed(test_side, train_side), cache.hits,
                           cache.misses, reused=True)
    t0 = time.perf_counter()
    try:
        fitted = classify(design.x, design.table, task.spec.classifier, design.eval_folds, augmented=design.augmented,
                          allow_missing=defer)  # metadata features may be missing (NaN); embeddings never
    except ClassifyError as exc:
        raise EvaluationError(f"{task.id} x {encoder_card.id}: {exc}", exit_code=1) from None
    timings["classify"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    from runner.metrics.summary import summarize

    n_train = {fit.fold: fit.n_train for fit in fitted.folds}
    summary = summarize(fitted.predictions, task.spec.metrics, eval_folds=design.eval_folds, n_train=n_train)
    timings["metrics"] = time.perf_counter() - t0

    run_dir.mkdir(parents=True, exist_ok=True)
    analyses: dict = {"ci": summary["ci_alternatives"], "classifier": {
        "trees_per_fold": [fit.n_trees for fit in fitted.folds],
        "train_rows_per_fold": [fit.n_train_rows for fit in fitted.folds],
    }}
    within_view = _within_view(fitted.predictions, design, task.data)
    if within_view is not None:
        analyses["within_view"] = within_view
    if getattr(test_side.embedded, "feature_names", None):  # the metadata baseline: which columns it used
        analyses["metadata_features"] = {"columns": test_side.embedded.feature_names}
    if train_side:  # the transfer block describes how a transfer task's numbers were made: always written
        analyses["transfer"] = _transfer_block(train_side, test_side, summary)
        wanted = [name for name in wanted if name != "transfer"]
    if wanted:
        t0 = time.perf_counter()
        per_analysis: dict[str, float] = {}
        analyses.update(_run_analyses(wanted, task, reg, encoder, encoder_card, cache, roots, design, fitted,
                                      run_dir, out_dir, options, per_analysis))
        timings["analyses"] = time.perf_counter() - t0
        timings.update({f"analysis.{name}": seconds for name, seconds in per_analysis.items()})
    timings["total"] = time.perf_counter() - started

    result = _result(task, encoder_card, dataset, manifest, test_side.embedded, fitted, summary, analyses, timings,
                     encoder.device, options, frameworks=encoder.devices_used())
    _write_predictions(fitted.predictions, run_dir / "predictions.parquet")
    from runner.data.fingerprint import file_sha256

    result["predictions_sha256"] = file_sha256(run_dir / "predictions.parquet")  # what submit recomputes from
    result["inputs_sha256"] = fingerprint  # what a later run of the same pair compares (runner.results.reuse)
    from runner.results.result import ResultError, write_result

    try:
        path = write_result(result, run_dir / "result.json")
    except ResultError as exc:
        raise EvaluationError(str(exc), exit_code=1) from None
    return EvalRun(path, result, _n_computed(test_side, train_side), cache.hits, cache.misses)


def _n_computed(*sides: _Side | None) -> int:
    """Images the sides' embedding step decoded and embedded in this run (the rest came from the cache)."""
    return sum(side.embedded.n_computed for side in sides if side is not None)


# ---------------------------------------------------------------------------------------------------------------
# stages


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


class _Roots:
    """Data roots by dataset: --data-root is the task's own data set; others come from EvalOptions.data_roots
    (`runner eval --dataset-root ID=DIR`) or the dataset card's environment variable."""

    def __init__(self, own_dataset: str, data_root: Path | None, data_roots: dict | None):
        self.own, self.data_root, self.data_roots = own_dataset, data_root, dict(data_roots or {})

    def of(self, dataset_card: dict) -> Path:
        given = self.data_root if dataset_card["id"] == self.own and self.data_root is not None else \
            self.data_roots.get(dataset_card["id"])
        if given is None and dataset_card["id"] != self.own and not os.environ.get(dataset_card.get("root_env") or ""):
            hint = f" or set ${dataset_card['root_env']}" if dataset_card.get("root_env") else ""
            from runner.data.tables import access_hint

            raise EvaluationError(f"no data root for dataset {dataset_card['id']!r}: pass --dataset-root "
                                  f"{dataset_card['id']}=DIR{hint}. {access_hint(dataset_card)}", exit_code=2)
        return _data_root(dataset_card, given)


def _data_root(dataset_card: dict, data_root: Path | None) -> Path:
    from runner.data.tables import DataError, resolve_data_root

    try:
        return Path(resolve_data_root(dataset_card, data_root))
    except DataError as exc:
        raise EvaluationError(str(exc), exit_code=2) from None


def _manifest(task, dataset, data_root: Path, task_dir: Path, resample: bool = False, defer_verify: bool = False):
    """The frozen manifest in task_dir when it was made from this task card and its data fingerprint matches the
    files under data_root (runner.data.fingerprint); else the task's committed manifest (manifests/<task>/, checked
    against the data at data_root); otherwise sample and freeze one. `resample` skips both. A manifest of this
    card whose data differs is an error (exit 2) naming what differs.

    defer_verify: the encoder reads no pixels, so a data root without image files is sampled with file checks
    deferred (runner.sample.sampler.sample_task); with the images present they are checked as for any encoder."""
    from runner.data.tables import DataError
    from runner.data.fingerprint import data_fingerprint, fingerprint_differences
    from runner.sample.manifest import ManifestError, read_manifest, write_manifest
    from runner.sample.sampler import sample_task

    if (task_dir / "manifest.json").is_file() and not resample:
        try:
            existing = read_manifest(task_dir)
        except ManifestError as exc:
            raise EvaluationError(f"{exc}; delete {task_dir} or pass --resample to sample again", exit_code=2) from None
        if existing.meta.get("task_sha256") == task.behaviour_sha256:
            if existing.meta.get("data_fingerprint") is None:  # a copy of the committed manifest: checked again
                committed = _committed(task, dataset, data_root, task_dir, defer_verify)
                if committed is not None and committed.meta["sha256"] == existing.meta["sha256"]:
                    return committed
            differs = fingerprint_differences(existing.meta.get("data_fingerprint"), dataset.data, data_root,
                                              existing.frame)
            if differs:
                raise EvaluationError(f"{task_dir / 'manifest.json'} was not sampled from the data under {data_root}: "
                                      f"{differs}. Pass the data root it was sampled from, or --resample to sample "
                                      "again", exit_code=2)
            return existing
    if not resample:
        committed = _committed(task, dataset, data_root, task_dir, defer_verify)
        if committed is not None:
            return committed
    try:
        sampled = sample_task(task.data, dataset.data, data_root, defer_verify_without_images=defer_verify)
        fingerprint = data_fingerprint(dataset.data, data_root, sampled)
    except DataError as exc:
        raise EvaluationError(str(exc), exit_code=2) from None
    return write_manifest(task_dir, sampled, task.behaviour_sha256, fingerprint=fingerprint)


def _committed(task, dataset, data_root: Path, task_dir: Path, defer_verify: bool = False):
    """The task's committed manifest (manifests/<task>/) copied into task_dir after checking the data at data_root
    against it (its metadata only for an encoder that reads no pixels); None when the task has none for its card."""
    from runner.sample.committed import FrozenDataError, use_committed
    from runner.sample.manifest import ManifestError

    try:
        return use_committed(task, dataset, data_root, task_dir, check_files=not defer_verify)
    except (FrozenDataError, ManifestError) as exc:
        raise EvaluationError(str(exc), exit_code=2) from None


def _check_exclusion_budget(side: _Side) -> None:
    """Fail the run (exit 1, a table of reasons) when more images were lost after sampling than the card allows."""
    from runner.sample.exclusion_budget import budget_problem, max_excluded_fraction

    over = budget_problem(len(side.manifest.frame), side.embedded.exclusions, max_excluded_fraction(side.task.data),
                          table=True)
    if over:
        raise EvaluationError(f"{side.task.id}: {over}", exit_code=1)


def _wanted_analyses(task, names: list[str] | None) -> list[str]:
    """The analyses to run: those named, or (None) those the task card enables."""
    from runner.analysis import enabled_analyses

    return enabled_analyses(task.spec.analyses) if names is None else list(names)


def _augment_spec(task, wanted: list[str]):
    """The card's augmentations, when the classifier trains on augmented views or the stability analysis runs."""
    spec = task.spec
    if not (spec.classifier.augmented_training_rows or "stability" in wanted):
        return None
    if spec.augmentations is None:
        raise EvaluationError(f"{task.id}: augmented views are needed (stability analysis or augmented training "
                              f"rows) but the task card has no `augmentations` block", exit_code=2)
    return spec.augmentations


def _load_encoder(encoder_card, options: EvalOptions):
    from runner.encoders import EncoderError, load_encoder

    try:
        # Lazy: when every embedding is already cached, the model (and its weights) is never loaded.
        return load_encoder(encoder_card.data, device=options.device, trust_custom_code=options.trust_custom_code,
                            weights_dir=options.weights_dir, lazy=True)
    except EncoderError as exc:
        raise EvaluationError(str(exc), exit_code=2) from None


def _cache(encoder_card, encoder, options: EvalOptions):
    """Keyed by the encoder card's behaviour hash: a title or licence edit never misses the cache."""
    from runner.embed.cache import EmbeddingCache

    return EmbeddingCache(encoder_card.behaviour_sha256, encoder.contract, root=options.cache_dir)


def _embed(encoder, encoder_card, dataset_id: str, data_root: Path, frame: pd.DataFrame, cache, augment,
           options: EvalOptions):
    """runner.embed.embedding.embed_manifest, the one embedding entry point (it picks the backend); errors become one line."""
    from runner.embed.embedding import embed_manifest
    from runner.encoders import EncoderError
    from runner.encoders.metadata import MetadataNotAvailable, metadata_embeddings, reads_pixels

    if not reads_pixels(encoder_card.data):  # the metadata baseline: features from the manifest, no image is read
        try:
            return metadata_embeddings(frame, encoder_card.data, dataset_id)
        except MetadataNotAvailable as exc:
            raise EvaluationError(str(exc), exit_code=2) from None
    try:
        embedded = embed_manifest(frame, data_root, dataset_id, encoder, cache, augment=augment, workers=options.workers,
                                  batch_size=options.batch_size, progress=options.progress, pipeline=options.pipeline,
                                  backend=options.backend)
    except ValueError as exc:  # an unknown --pipeline or --backend
        raise EvaluationError(str(exc), exit_code=2) from None
    except ImportError as exc:
        raise EvaluationError(f"--backend {options.backend} needs an optional extra (pip install -e .[ray]): {exc}",
                              exit_code=2) from None
    except EncoderError as exc:
        raise EvaluationError(f"{encoder_card.id}: {exc}", exit_code=1) from None
    for aug_id, views in embedded.augmented.items():  # each view row must belong to the same image as its original
        if views.shape != embedded.original.shape:
            raise EvaluationError(f"{encoder_card.id}: augmented view {aug_id!r} has {views.shape} rows/dims, the "
                                  f"originals {embedded.original.shape}", exit_code=1)
    return embedded


def _inputs_sha256(task, encoder_card, test_side: _Side, train_side: _Side | None, design: _Design,
                   wanted: list[str], options: EvalOptions) -> str:
    """The fingerprint of what this run's result is computed from (runner.results.reuse.inputs_sha256)."""
    from runner.results.reuse import array_sha256, inputs_sha256, table_sha256

    sides = [s for s in (test_side, train_side) if s is not None]
    return inputs_sha256({
        "task": [task.sha256, task.behaviour_sha256], "encoder": [encoder_card.sha256, encoder_card.behaviour_sha256],
        "datasets": [s.dataset.sha256 for s in sides],
        "manifests": [s.manifest.meta["sha256"] for s in sides],
        "exclusions": [[s.manifest.meta.get("exclusions", []), s.embedded.exclusions] for s in sides],
        "design": {"table": table_sha256(design.table), "x": array_sha256(design.x), "folds": design.eval_folds,
                   "augmented": {view: array_sha256(x) for view, x in sorted(design.augmented.items())}},
        "feature_names": list(getattr(test_side.embedded, "feature_names", None) or []),
        "analyses": list(wanted), "device": options.device,
    })


def _design(side: _Side) -> _Design:
    """Cross-validation on one manifest: the rows that embedded, in embedding order."""
    table = side.manifest.frame.set_index("image_id").loc[side.embedded.image_ids].reset_index()
    return _Design(table, side.embedded.original, dict(side.embedded.augmented),
                   [int(f) for f in side.manifest.meta["eval_folds"]])


TRAIN_PREFIX = "train:"  # marks the training task's rows in a transfer design (ids may repeat across data sets)


def _transfer_design(train: _Side, test: _Side) -> _Design:
    """Train on every embedded row of the training task (fold 1), test on every row of this task (fold 0)."""
    train_table = _design(train).table.assign(fold=1)
    for column in ("image_id", "patient_id", "study_id"):
        if column in train_table.columns:
            train_table[column] = TRAIN_PREFIX + train_table[column].astype(str)
    test_table = _design(test).table.assign(fold=0)
    table = pd.concat([train_table, test_table], ignore_index=True)
    views = sorted(set(train.embedded.augmented) & set(test.embedded.augmented))
    augmented = {v: np.vstack([train.embedded.augmented[v], test.embedded.augmented[v]]) for v in views}
    return _Design(table, np.vstack([train.embedded.original, test.embedded.original]), augmented, [0])


def _transfer_block(train: _Side, test: _Side, summary: dict) -> dict:
    """How a transfer task's result was made. The in-domain reference (the cross-validated score on the training task)
    is another result: the summarize stage pairs the two, this run reads no other run's files."""
    return {
        "kind": "transfer task",
        "train_task": train.task.id, "train_dataset": train.dataset.id,
        "train_manifest_sha256": train.manifest.meta["sha256"],
        "n_train": len(train.embedded.image_ids),
        "train_exclusions_at_embedding": [_exclusion(e, "at embedding: ") for e in train.embedded.exclusions],
        "test_task": test.task.id, "test_dataset": test.dataset.id,
        "test_manifest_sha256": test.manifest.meta["sha256"], "n_test": len(test.embedded.image_ids),
        "auroc": _value_with_ci(summary["auroc"]), "f1": _value_with_ci(summary["f1"]),
    }


def _within_view(predictions: pd.DataFrame, design: _Design, task_data: dict) -> dict | None:
    """AUROC on each of the task's views alone (runner.analysis.within_view), for every task with two or more views."""
    task_views = list(task_data.get("views") or [])
    if len(task_views) < 2 or "view" not in design.table.columns:
        return None
    from runner.analysis.within_view import within_view_auroc
    from runner.metrics.scores import MetricsInputError

    views = predictions["image_id"].map(design.table.drop_duplicates("image_id").set_index("image_id")["view"])
    try:
        return within_view_auroc(predictions, views, task_data.get("metrics"), task_views, design.eval_folds)
    except MetricsInputError as exc:
        return {"status": "skipped", "reason": str(exc)}


def _value_with_ci(metric: dict) -> dict:
    return {"value": metric["mean"], "ci_low": metric["ci_low"], "ci_high": metric["ci_high"],
            "ci_method": metric["ci_method"], **({"reason": metric["reason"]} if metric.get("reason") else {})}


def _run_analyses(names, task, reg, encoder, encoder_card, cache, roots, design: _Design, fitted, run_dir, out_dir,
                  options, timings: dict):
    from runner.analysis import AnalysisContext, run_analyses

    targets, target_reasons = {}, {}
    if "transfer" in names:
        started = time.perf_counter()
        targets, target_reasons = _transfer_targets(task, reg, encoder, encoder_card, cache, roots, out_dir, options)
        timings["transfer-targets"] = time.perf_counter() - started  # sampling + embedding the target test sets
    spec = task.spec
    context = AnalysisContext(
        analyses_card=spec.analyses,
        metrics_card=spec.metrics,
        manifest=design.table,
        embeddings=design.x,
        predictions=fitted.predictions,
        eval_folds=design.eval_folds,
        output_dir=run_dir,
        encoder_id=encoder_card.id,
        augmented=design.augmented or None,
        transfer_targets=targets or None,
        fit_predict=card_fit_predict(spec.classifier),
        classifier_params=dict(spec.classifier.params),
    )
    results = run_analyses(names, context, timings)
    if "transfer" in names and target_reasons:
        transfer = results.get("transfer") or {}
        if transfer.get("status") == "skipped" or not targets:
            results["transfer"] = {"status": "skipped", "reason": "; ".join(target_reasons.values())}
        else:
            transfer.update({t: {"status": "skipped", "reason": r} for t, r in target_reasons.items()})
    return results


def _transfer_targets(task, reg, encoder, encoder_card, cache, roots, out_dir: Path, options):
    """Test sets of the transfer analysis: the card's analyses.transfer.targets, by default the transfer tasks that
    train on this task; each sampled and frozen under OUT/<target>/ and embedded through the cache.
    Returns ({target id: TransferSet}, {target id: why it could not be used})."""
    from registry.errors import CardError
    from runner.analysis import TransferSet

    named = task.spec.analyses.transfer.targets
    if named is None:
        named = sorted(t.id for t in reg.tasks.values()
                       if t.spec.type == "transfer" and t.spec.transfer_train_task == task.id)
    if not named:
        return {}, {"none": f"no transfer target: the card's analyses.transfer.targets is empty and no transfer task "
                            f"trains on {task.id}"}
    targets, reasons = {}, {}
    for target_id in named:
        try:
            target = reg.get("task", target_id)
            if target.spec.label.id != task.spec.label.id:
                raise EvaluationError(f"label {target.spec.label.id!r} differs from {task.spec.label.id!r}")
            dataset = reg.get("dataset", target.spec.dataset)
            manifest = _manifest(target, dataset, roots.of(dataset.data), out_dir / target.id, options.resample)
            embedded = _embed(encoder, encoder_card, dataset.id, roots.of(dataset.data), manifest.frame, cache, None,
                              options)
        except (EvaluationError, CardError) as exc:
            reasons[target_id] = f"target {target_id}: {exc}"
            continue
        table = _design(_Side(target, dataset, manifest, embedded)).table
        targets[target_id] = TransferSet(embedded.original, table["label"].to_numpy().astype(int),
                                         table["patient_id"].astype(str).to_numpy())
    return targets, reasons


def card_fit_predict(classifier_card):
    """A `fit_predict(train_X, train_y, test_X, params)` that trains exactly as the task card's classifier does
    (runner.classify.out_of_fold: one booster, the card's settings; `params` is ignored, the card has them), for the analyses
    that refit (transfer, label efficiency). `train_groups` (patient ids) keep a patient's images on one side of
    the inner early-stopping split; without them each row is its own group. Its `many(calls)` fits several
    independent (train_X, train_y, test_X, train_groups) at once, side by side (runner.classify.fit_processes)."""

    def design(train_x, train_y, test_x, train_groups=None) -> Design:
        n_train, n_test = len(train_y), len(test_x)
        ids = [f"r{i}" for i in range(n_train + n_test)]
        groups = ids if train_groups is None else [*(str(g) for g in train_groups), *ids[n_train:]]
        table = pd.DataFrame({"image_id": ids, "patient_id": groups,
                              "label": np.concatenate([np.asarray(train_y, dtype=int), np.zeros(n_test, dtype=int)]),
                              "fold": np.r_[np.ones(n_train, dtype=int), np.zeros(n_test, dtype=int)]})
        return Design(np.vstack([train_x, test_x]), table, [0])

    def many(calls) -> list[np.ndarray]:
        fitted = classify_many([design(*call) for call in calls], classifier_card)
        return [f.predictions["prob"].to_numpy() for f in fitted]

    def fit_predict(train_x, train_y, test_x, params=None, train_groups=None) -> np.ndarray:
        return many([(train_x, train_y, test_x, train_groups)])[0]

    fit_predict.accepts_groups = True
    fit_predict.many = many
    return fit_predict


def _write_predictions(predictions: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda handle: predictions.to_parquet(handle, index=False))


# ---------------------------------------------------------------------------------------------------------------
# the result object


def _result(task, encoder_card, dataset, manifest, embedded, fitted, summary, analyses, timings, device, options,
            frameworks=None):
    from runner.metrics.scores import pooled_roc
    from runner.results.result import build_result, environment_info

    meta, spec = manifest.meta, task.spec
    exclusions = [_exclusion(e, "") for e in meta.get("exclusions", [])]
    exclusions += [_exclusion(e, "at embedding: ") for e in embedded.exclusions]
    used = fitted.predictions
    stage = "embed" if embedded.n_computed else "embed (all embeddings came from the cache)"
    return build_result(
        provenance="reproduced", task_card=task, encoder_card=encoder_card,
        manifest={"sha256": meta["sha256"], "n_images": int(meta.get("n_images", len(manifest.frame)))},
        metrics={"auroc": summary["auroc"], "f1": summary["f1"]},
        folds=summary["folds"],
        counts={"positives": int((used["label"] == 1).sum()), "negatives": int((used["label"] == 0).sum()),
                "excluded": len(exclusions), "exclusions": exclusions},
        timings_s={k: round(v, 3) for k, v in timings.items()},
        throughput={"images_per_s": None if embedded.images_per_s is None else round(embedded.images_per_s, 2),
                    "stage": stage + (f" [{embedded.backend}]" if embedded.backend else "")},
        environment=environment_info(device, frameworks),
        seeds={
            "sampling": _int_or_none(meta.get("seed")),
            "split": _int_or_none((meta.get("split") or {}).get("seed")),
            "classifier": spec.classifier.seed,
            "augmentation": None if spec.augmentations is None else spec.augmentations.seed,
            "encoder": encoder_card.spec.seed,
            "bootstrap": spec.metrics.bootstrap_seed,
        },
        synthetic=bool(meta.get("synthetic", dataset.spec.synthetic)),
        analyses=analyses,
        roc=pooled_roc(used),
    )


def _exclusion(entry: dict, prefix: str) -> dict:
    return {"image_id": str(entry["image_id"]), "path": str(entry["path"]),
            "reason": (prefix + str(entry["reason"]))[:500]}


def _int_or_none(value) -> int | None:
    return None if value is None else int(value)
