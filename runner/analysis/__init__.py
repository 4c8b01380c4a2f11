"""Optional analyses of one evaluation (the task card's `analyses:` block) and their dispatch.

Entry: `run_analyses(names, context) -> dict` (analysis name -> JSON-safe dict, for result.json's `analyses`).
`names=None` runs every analysis the card enables. One analysis failing does not lose the others: its entry becomes
{"status": "skipped", "reason"} for bad or missing input, {"status": "failed", "reason"} for anything else.
Every value is checked: no NaN or Infinity can reach the result file.

Modules (each documents its cost): stability, clustering, subgroups, transfer, label_efficiency, paired, delong.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from registry.specs import AnalysesSpec, MetricsSpec, analyses_spec, metrics_spec
from runner.metrics.scores import MetricsInputError

ANALYSES = AnalysesSpec.NAMES
# Paired tests compare encoders, so they are not part of one run: the summarize stage (leaderboard/summary/summarize.py)
# computes them across filed results. A run asked for them says so.
PAIRED_ELSEWHERE = ("paired tests compare encoders: computed by the summarize stage across filed results "
                    "(runner leaderboard build), never from other runs' files")


@dataclass
class TransferSet:
    """Another task's embeddings for the same label, the test side of a transfer analysis."""

    embeddings: np.ndarray
    labels: np.ndarray
    patients: np.ndarray | None = None


@dataclass
class AnalysisContext:
    """What an evaluation hands to the analyses. Rows of `embeddings` align with rows of `manifest`."""

    analyses_card: AnalysesSpec | Mapping = field(default_factory=dict)  # the task's AnalysesSpec (or a block)
    metrics_card: MetricsSpec | Mapping = field(default_factory=dict)  # the task's MetricsSpec (or a block)
    manifest: pd.DataFrame | None = None
    embeddings: np.ndarray | None = None
    predictions: pd.DataFrame | None = None  # out-of-fold: image_id, patient_id, label, fold, prob
    eval_folds: Sequence[int] | None = None
    output_dir: Path | None = None  # where figures go; none are drawn without it
    encoder_id: str | None = None
    augmented: Mapping[str, np.ndarray] | None = None  # aug_id -> (n, D), rows aligned with augmented_originals
    augmented_originals: np.ndarray | None = None  # default: `embeddings`
    transfer_targets: Mapping[str, TransferSet] | None = None  # other task id -> its embeddings and labels
    fit_predict: Callable | None = None  # (train_X, train_y, test_X, params) -> probabilities; default LightGBM
    classifier_params: Mapping = field(default_factory=dict)


def _need(value, what: str):
    if value is None:
        raise MetricsInputError(f"needs {what}, which this evaluation did not provide")
    return value


def _stability(ctx: AnalysisContext, params) -> dict:
    from runner.analysis.stability import representational_stability

    originals = ctx.augmented_originals if ctx.augmented_originals is not None else ctx.embeddings
    patients = None  # reference pairs come from different patients when the rows' patients are known
    if ctx.augmented_originals is None and ctx.manifest is not None and "patient_id" in ctx.manifest.columns:
        patients = ctx.manifest["patient_id"].astype(str).to_numpy()
    return representational_stability(_need(originals, "original embeddings"), _need(ctx.augmented, "augmented views"),
                                      patients)


def _clustering(ctx: AnalysisContext, params) -> dict:
    from runner.analysis.clustering import (
        EXACT_MAX_ROWS,
        cosine_distance_matrix,
        kmeans_cosine,
        umap_figure,
        unit_rows,
    )

    x = _need(ctx.embeddings, "embeddings")
    labels = _need(ctx.manifest, "the manifest")["label"].to_numpy()
    # one exact cosine distance matrix for every silhouette and the UMAP layout
    distances = cosine_distance_matrix(unit_rows(np.asarray(x, dtype=float))) if len(x) <= EXACT_MAX_ROWS else None
    out = {"kmeans": kmeans_cosine(x, labels, range(params.k_min, params.k_max + 1), n_init=params.n_init,
                                   seed=params.seed, distances=distances)}
    if params.umap.enabled and ctx.output_dir is not None:
        out["umap"] = umap_figure(x, labels, Path(ctx.output_dir) / "umap.png", Path(ctx.output_dir) / "umap.svg",
                                  seed=params.seed, n_neighbors=params.umap.n_neighbors, min_dist=params.umap.min_dist,
                                  distances=distances)
    return out


def _subgroups(ctx: AnalysisContext, params) -> dict:
    from runner.analysis.subgroups import subgroup_auroc

    predictions = _need(ctx.predictions, "out-of-fold predictions")
    if ctx.manifest is not None:  # sex/age/view live in the manifest
        extra = [c for c in ("sex", "age", "view") if c in ctx.manifest.columns and c not in predictions.columns]
        if extra:
            predictions = predictions.merge(ctx.manifest[["image_id", *extra]], on="image_id", how="left")
    if ctx.eval_folds is not None:
        predictions = predictions[predictions["fold"].isin(list(ctx.eval_folds))]
    return subgroup_auroc(predictions, params, ctx.metrics_card)


def _transfer(ctx: AnalysisContext, params) -> dict:
    from runner.analysis.transfer import cross_dataset_transfer

    x = _need(ctx.embeddings, "embeddings")
    manifest = _need(ctx.manifest, "the manifest")
    y = manifest["label"].to_numpy()
    patients = manifest["patient_id"].astype(str).to_numpy() if "patient_id" in manifest.columns else None
    targets = _need(ctx.transfer_targets, "embeddings of the target task(s)")
    return {target: cross_dataset_transfer(x, y, t.embeddings, t.labels, t.patients, ctx.fit_predict,
                                           ctx.classifier_params, ctx.metrics_card, train_patients=patients)
            for target, t in sorted(targets.items())}


def _label_efficiency(ctx: AnalysisContext, params) -> dict:
    from runner.analysis.label_efficiency import label_efficiency, plot_label_efficiency

    result = label_efficiency(
        _need(ctx.embeddings, "embeddings"), _need(ctx.manifest, "the manifest"),
        sizes=params.positives_per_class, seeds=params.seeds,
        eval_folds=ctx.eval_folds, fit_predict=ctx.fit_predict, params=ctx.classifier_params,
        threshold=metrics_spec(ctx.metrics_card).threshold,
    )
    if ctx.output_dir is not None:
        result["figure"] = Path(plot_label_efficiency({ctx.encoder_id or "encoder": result},
                                                      Path(ctx.output_dir) / "label_efficiency.png")).name
    return result


_RUNNERS: dict[str, Callable[[AnalysisContext, object], dict]] = {
    "stability": _stability,
    "clustering": _clustering,
    "subgroups": _subgroups,
    "transfer": _transfer,
    "label_efficiency": _label_efficiency,
}


def json_safe(value, where: str = "analysis"):
    """Plain-Python copy of value (numpy scalars/arrays converted); raises on NaN or Infinity, naming where."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v, f"{where}[{i}]") for i, v in enumerate(list(value))]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise ValueError(f"{where} is {float(value)}: analyses must return null with a reason instead")
        return float(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{where} has a {type(value).__name__}, which JSON cannot hold")


def enabled_analyses(analyses_card) -> list[str]:
    """The analyses a run makes because the card enables them (paired tests are the summarize stage's)."""
    return [name for name in analyses_spec(analyses_card).enabled() if name != "paired"]


def run_analyses(names: Sequence[str] | None, context: AnalysisContext, timings: dict | None = None) -> dict:
    """Run the named analyses (None: those the card enables); analysis name -> JSON-safe result.
    `timings`, when given, receives the wall-clock seconds of each analysis by name."""
    import time

    names = enabled_analyses(context.analyses_card) if names is None else list(names)
    unknown = [n for n in names if n not in ANALYSES]
    if unknown:
        raise MetricsInputError(f"unknown analysis name(s) {unknown}; known: {list(ANALYSES)}")
    spec = analyses_spec(context.analyses_card)
    results = {}
    for name in names:
        if name == "paired":
            results[name] = {"status": "skipped", "reason": PAIRED_ELSEWHERE}
            continue
        params = getattr(spec, name)
        started = time.perf_counter()
        try:
            results[name] = json_safe(_RUNNERS[name](context, params), name)
        except MetricsInputError as exc:
            results[name] = {"status": "skipped", "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one analysis failing must not lose the evaluation's other results
            results[name] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        if timings is not None:
            timings[name] = time.perf_counter() - started
    return results
