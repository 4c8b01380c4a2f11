"""Optional analyses of one evaluation (the task card's `analyses:` block) and their dispatch.

Entry: `run_analyses(names, context) -> dict` (analysis name -> JSON-safe dict, for result.json's `analyses`).
`names=None` runs every analysis the card enables. One analysis failing does not lose the others: its entry becomes
{"status": "skipped", "reason"} for bad or missing input, {"status": "failed", "reason"} for anything else.
Every value is checked: no NaN or Infinity can reach the result file.

Each analysis module has a `run(context, spec)` that the plugin registry names (registry.plugins: "analysis"
entries), imported only when the analysis runs; each documents its cost: stability, clustering, subgroups, transfer,
label_efficiency. paired and delong are the summarize stage's (they compare encoders).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from registry import plugins
from registry.specs import AnalysesSpec, MetricsSpec, analyses_spec
from runner.metrics.scores import MetricsInputError

ANALYSES = AnalysesSpec.NAMES
# The analyses a result's out-of-fold predictions and its manifest rows are enough for: the registry recomputes them
# when it files a result (leaderboard.filing.regenerate); the others need the run's embeddings.
FROM_PREDICTIONS = ("subgroups",)
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
    draw_figures: bool = True  # False: the figures' file names are recorded, nothing is drawn (nobody keeps them)
    encoder_id: str | None = None
    augmented: Mapping[str, np.ndarray] | None = None  # aug_id -> (n, D), rows aligned with augmented_originals
    augmented_originals: np.ndarray | None = None  # default: `embeddings`
    transfer_targets: Mapping[str, TransferSet] | None = None  # other task id -> its embeddings and labels
    fit_predict: Callable | None = None  # (train_X, train_y, test_X, params) -> probabilities; default LightGBM
    classifier_params: Mapping = field(default_factory=dict)


def need(value, what: str):
    """`value`, or MetricsInputError (the analysis is skipped, saying why) when the run did not provide it."""
    if value is None:
        raise MetricsInputError(f"needs {what}, which this evaluation did not provide")
    return value


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
            results[name] = json_safe(plugins.load("analysis", name)(context, params), name)
        except MetricsInputError as exc:
            results[name] = {"status": "skipped", "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one analysis failing must not lose the evaluation's other results
            results[name] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        if timings is not None:
            timings[name] = time.perf_counter() - started
    return results
