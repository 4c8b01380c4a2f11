"""One evaluation, end to end: cards -> manifest -> embeddings (cached) -> LightGBM per fold -> metrics -> result.json.

Entry: `evaluate(task_id, encoder_id, data_root, out_dir, ...) -> Path` of the result file.

Run folder layout (OUT = out_dir):
  OUT/<task>/manifest.parquet, manifest.json, exclusions.csv   the frozen sample, shared by every encoder
  OUT/<task>/<encoder>/result.json                              validated (schema, no NaN) before it is written
  OUT/<task>/<encoder>/predictions.parquet                      out-of-fold: image_id, patient_id, label, fold, prob
A manifest already in OUT/<task>/ is reused when it was made from the same resolved task card (task sha256), so every
encoder of a task is scored on the same images and folds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

# Imported first on purpose: it sets OMP_WAIT_POLICY before torch or lightgbm load their OpenMP runtimes.
from runner.classify import ClassifyError, classify


class EvaluationError(Exception):
    """An evaluation that cannot run; str() is the one-line human message. `exit_code` 2 = bad input, 1 = failure."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class EvalOptions:
    device: str = "auto"  # auto | cpu | cuda[:N]
    workers: int = 2  # decode worker processes
    analyses: list[str] | None = field(default_factory=list)  # [] none; None: those the task card enables
    cache_dir: Path | None = None  # default: $CXR_CACHE_DIR or ~/.cache/cxr-registry
    trust_custom_code: bool = False
    progress: bool = True
    pipeline: str = "auto"  # auto | cpu | fast (runner.fastpath: preprocessing on the device)
    batch_size: int | None = None  # default: the encoder card's
    backend: str = "local"  # local | ray (runner.ray_backend: Ray Data actor pool, same cache)


@dataclass
class EvalRun:
    result_path: Path
    result: dict
    n_computed: int  # images embedded by this run (0 when the cache had them all)
    cache_hits: int
    cache_misses: int


def evaluate(task_id: str, encoder_id: str, data_root: Path | None, out_dir: Path, options: EvalOptions | None = None,
             registry=None) -> Path:
    """Evaluate one encoder on one task; returns OUT/<task>/<encoder>/result.json."""
    return run_evaluation(task_id, encoder_id, data_root, out_dir, options, registry).result_path


def run_evaluation(task_id: str, encoder_id: str, data_root: Path | None, out_dir: Path,
                   options: EvalOptions | None = None, registry=None) -> EvalRun:
    """`evaluate`, also returning the result object and the embedding cache's counters."""
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
    except CardError as exc:
        raise EvaluationError(str(exc), exit_code=2) from None
    out_dir = Path(out_dir)
    task_dir = out_dir / task.id
    run_dir = task_dir / encoder_card.id

    t0 = time.perf_counter()
    root = _data_root(dataset.data, data_root)
    manifest = _manifest(task, dataset, root, task_dir)
    timings["sample"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    embedded, device, cache = _embed(task, encoder_card, dataset.id, root, manifest.frame, options)
    timings["embed"] = time.perf_counter() - t0

    table = manifest.frame.set_index("image_id").loc[embedded.image_ids].reset_index()
    classifier_card = task.data.get("classifier") or {"type": "lightgbm"}
    eval_folds = [int(f) for f in manifest.meta["eval_folds"]]
    t0 = time.perf_counter()
    try:
        fitted = classify(embedded.original, table, classifier_card, eval_folds, augmented=embedded.augmented)
    except ClassifyError as exc:
        raise EvaluationError(f"{task.id} x {encoder_card.id}: {exc}", exit_code=1) from None
    timings["classify"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    from runner.metrics import summarize

    n_train = {fit.fold: fit.n_train for fit in fitted.folds}
    summary = summarize(fitted.predictions, task.data.get("metrics"), eval_folds=eval_folds, n_train=n_train)
    timings["metrics"] = time.perf_counter() - t0

    run_dir.mkdir(parents=True, exist_ok=True)
    analyses: dict = {"ci": summary["ci_alternatives"], "classifier": {
        "trees_per_fold": [fit.n_trees for fit in fitted.folds],
        "train_rows_per_fold": [fit.n_train_rows for fit in fitted.folds],
    }}
    if options.analyses is None or options.analyses:
        t0 = time.perf_counter()
        analyses.update(_run_analyses(options.analyses, task, encoder_card.id, table, embedded, fitted, eval_folds,
                                      run_dir, task_dir, manifest.meta["sha256"]))
        timings["analyses"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started

    result = _result(task, encoder_card, dataset, manifest, embedded, fitted, summary, analyses, timings, device,
                     options)
    _write_predictions(fitted.predictions, run_dir / "predictions.parquet")
    from runner.results import ResultError, write_result

    try:
        path = write_result(result, run_dir / "result.json")
    except ResultError as exc:
        raise EvaluationError(str(exc), exit_code=1) from None
    return EvalRun(path, result, embedded.n_computed, cache.hits, cache.misses)


# ---------------------------------------------------------------------------------------------------------------
# stages


def _data_root(dataset_card: dict, data_root: Path | None) -> Path:
    from runner.commands.sample_cmd import resolve_data_root
    from runner.data.tables import DataError

    try:
        return Path(resolve_data_root(dataset_card, data_root))
    except DataError as exc:
        raise EvaluationError(str(exc), exit_code=2) from None


def _manifest(task, dataset, data_root: Path, task_dir: Path):
    """The frozen manifest in task_dir when it was made from this task card; otherwise sample and freeze one."""
    from runner.data.tables import DataError
    from runner.manifest import ManifestError, read_manifest, write_manifest
    from runner.sampling import sample_task

    if (task_dir / "manifest.json").is_file():
        try:
            existing = read_manifest(task_dir)
        except ManifestError as exc:
            raise EvaluationError(f"{exc}; delete {task_dir} to sample again", exit_code=2) from None
        if existing.meta.get("task_sha256") == task.sha256:
            return existing
    try:
        sampled = sample_task(task.data, dataset.data, data_root)
    except DataError as exc:
        raise EvaluationError(str(exc), exit_code=2) from None
    return write_manifest(task_dir, sampled, task.sha256)


def _needs_augmentation(task_data: dict, analyses: list[str] | None) -> bool:
    if (task_data.get("classifier") or {}).get("augmented_training_rows"):
        return True
    if analyses is None:
        return bool(((task_data.get("analyses") or {}).get("stability") or {}).get("enabled"))
    return "stability" in analyses


def _embed(task, encoder_card, dataset_id: str, data_root: Path, frame: pd.DataFrame, options: EvalOptions):
    from registry.cards import sha256_of
    from runner.cache import EmbeddingCache
    from runner.embed import embed_manifest
    from runner.encoders import EncoderError, load_encoder

    try:
        encoder = load_encoder(encoder_card.data, device=options.device, trust_custom_code=options.trust_custom_code)
    except EncoderError as exc:
        raise EvaluationError(str(exc), exit_code=2) from None
    augment = None
    if _needs_augmentation(task.data, options.analyses):
        spec = task.data.get("augmentations") or {}
        augment = {"seed": int(spec.get("seed", 0)), "spec": sha256_of(spec)[:16]}
    cache = EmbeddingCache(encoder_card.sha256, encoder.contract, root=options.cache_dir)
    embed = embed_manifest
    try:
        from runner.fastpath import choose_pipeline, embed_manifest_fast

        if choose_pipeline(options.pipeline, encoder.device) == "fast":
            embed = embed_manifest_fast
    except ImportError:  # the device pipeline is optional
        pass
    if options.backend == "ray":
        try:
            from runner.ray_backend import embed_manifest_ray
        except ImportError as exc:
            raise EvaluationError(f"--backend ray needs the 'ray' extra (pip install -e .[ray]): {exc}", exit_code=2) from None

        def embed(*args, **kwargs):
            return embed_manifest_ray(*args, pipeline=options.pipeline, **kwargs)
    try:
        embedded = embed(frame, data_root, dataset_id, encoder, cache, augment=augment, workers=options.workers,
                         batch_size=options.batch_size, progress=options.progress)
    except EncoderError as exc:
        raise EvaluationError(f"{encoder_card.id}: {exc}", exit_code=1) from None
    return embedded, encoder.device, cache


def _run_analyses(names, task, encoder_id, table, embedded, fitted, eval_folds, run_dir, task_dir, manifest_sha):
    try:
        from runner.analysis import AnalysisContext, run_analyses
    except ImportError:
        return {}
    comparisons = {}
    for other in sorted(p for p in task_dir.glob("*/predictions.parquet") if p.parent.name != encoder_id):
        result = other.parent / "result.json"
        if result.is_file() and manifest_sha in result.read_text(encoding="utf-8"):
            comparisons[other.parent.name] = pd.read_parquet(other)
    context = AnalysisContext(
        analyses_card=task.data.get("analyses") or {},
        metrics_card=task.data.get("metrics") or {},
        manifest=table,
        embeddings=embedded.original,
        predictions=fitted.predictions,
        eval_folds=eval_folds,
        output_dir=run_dir,
        encoder_id=encoder_id,
        augmented=embedded.augmented or None,
        comparisons=comparisons or None,
        classifier_params=(task.data.get("classifier") or {}).get("params") or {},
    )
    return run_analyses(names, context)


def _write_predictions(predictions: pd.DataFrame, path: Path) -> None:
    import os

    tmp = path.with_name(f".{path.name}.tmp")
    predictions.to_parquet(tmp, index=False)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------------------
# the result object


def _roc(predictions: pd.DataFrame) -> dict | None:
    from sklearn.metrics import roc_curve

    if predictions["label"].nunique() < 2:
        return None
    fpr, tpr, _ = roc_curve(predictions["label"], predictions["prob"])
    if len(fpr) > 5000:  # the schema's limit; keep the curve's shape
        keep = np.unique(np.linspace(0, len(fpr) - 1, 5000).astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr]}


def _result(task, encoder_card, dataset, manifest, embedded, fitted, summary, analyses, timings, device, options):
    from runner.results import environment_info, utc_now

    meta = manifest.meta
    exclusions = [_exclusion(e, "") for e in meta.get("exclusions", [])]
    exclusions += [_exclusion(e, "at embedding: ") for e in embedded.exclusions]
    used = fitted.predictions
    result = {
        "schema_version": 1,
        "provenance": "reproduced",
        "task": {"id": task.id, "sha256": task.sha256, "dataset": dataset.id,
                 "label": (task.data.get("label") or {}).get("name") or task.data["label"].get("id", task.id)},
        "encoder": {"id": encoder_card.id, "sha256": encoder_card.sha256,
                    "name": encoder_card.data.get("title", encoder_card.id)},
        "manifest": {"sha256": meta["sha256"], "n_images": int(meta.get("n_images", len(manifest.frame)))},
        "metrics": {"auroc": summary["auroc"], "f1": summary["f1"]},
        "folds": summary["folds"],
        "counts": {"positives": int((used["label"] == 1).sum()), "negatives": int((used["label"] == 0).sum()),
                   "excluded": len(exclusions), "exclusions": exclusions},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "throughput": {"images_per_s": None if embedded.images_per_s is None else round(embedded.images_per_s, 2),
                       "stage": "embed" if embedded.n_computed else "embed (all embeddings came from the cache)"},
        "environment": environment_info(device),
        "seeds": {
            "sampling": _int_or_none(meta.get("seed")),
            "split": _int_or_none((meta.get("split") or {}).get("seed")),
            "classifier": int((task.data.get("classifier") or {}).get("seed", 0)),
            "augmentation": _int_or_none((task.data.get("augmentations") or {}).get("seed")),
            "encoder": _int_or_none(encoder_card.data.get("seed")),
            "bootstrap": _int_or_none(((task.data.get("metrics") or {}).get("bootstrap") or {}).get("seed", 0)),
        },
        "synthetic": bool(meta.get("synthetic", dataset.data.get("synthetic", False))),
        "analyses": analyses,
        "created_at": utc_now(),
    }
    roc = _roc(used)
    if roc is not None:
        result["roc"] = roc
    return result


def _exclusion(entry: dict, prefix: str) -> dict:
    return {"image_id": str(entry["image_id"]), "path": str(entry["path"]),
            "reason": (prefix + str(entry["reason"]))[:500]}


def _int_or_none(value) -> int | None:
    return None if value is None else int(value)
