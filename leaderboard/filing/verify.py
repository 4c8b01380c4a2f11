"""Verified submission: recompute a reproduced result's numbers from its predictions file and its frozen manifest.

Entry: `verify_result(result, predictions, manifest, task_card) -> list[str]` (problems; [] = verified).

`runner submit` and `runner leaderboard build` both call it, the way OpenML scores a run on its server: a filed number
is never the submitter's word. The predictions must be exactly the frozen manifest's rows (the manifest minus the
images the result records as excluded at embedding time, and only the evaluated folds), with the manifest's patient,
label and fold for every image id; every metric (per fold, mean, CI, F1 at the card's threshold, the ROC points) is
recomputed with `runner.metrics.summary.summarize` and the ROC code of `runner.evaluate` and compared within FLOAT_TOLERANCE.
The same code made the numbers, so a difference means the result, the predictions or the manifest was edited.

`card_matches(result, registry)` is the one place that decides whether a result still belongs to today's cards.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from runner.data.fingerprint import file_sha256
from runner.metrics.scores import MetricsInputError, pooled_roc
from runner.metrics.summary import summarize
from runner.sample.exclusion_budget import EMBEDDING_PREFIX, budget_problem, max_excluded_fraction

FLOAT_TOLERANCE = 1e-9  # numbers are recomputed by the same code on the same rows: only float noise may differ
PREDICTION_COLUMNS = ("image_id", "patient_id", "label", "fold", "prob")
MAX_SHOWN = 3  # differences listed per result; the rest are counted


def card_matches(result: dict, registry) -> str | None:
    """None when the result was made with today's task and encoder cards; else why not (one line).

    The one comparison of card hashes in the leaderboard (runner submit, the summarize stage).
    """
    for kind, cards in (("task", registry.tasks), ("encoder", registry.encoders)):
        card = cards.get(result[kind]["id"])
        if card is None:
            return f"unknown {kind} {result[kind]['id']!r}"
        # Behaviour hashes: a title, citation or notes edit since the run does not make its numbers wrong.
        claimed = result[kind]["behaviour_sha256"]
        if claimed != card.behaviour_sha256:
            return (f"{kind} card {card.id!r} changed behaviour since this result was made (result has behaviour "
                    f"hash {claimed[:12]}…, current card {card.behaviour_sha256[:12]}…)")
    return None


def embedding_exclusions(result: dict) -> list[dict]:
    """The exclusions the run made after sampling (missing at embedding time, decode failures)."""
    return [e for e in (result.get("counts") or {}).get("exclusions", [])
            if str(e.get("reason", "")).startswith(EMBEDDING_PREFIX)]


def expected_rows(result: dict, manifest, task_data: dict) -> tuple[pd.DataFrame, list[int]]:
    """(image_id, patient_id, label, fold) rows the predictions must have, and the evaluated folds."""
    frame = manifest.frame
    dropped = {str(e["image_id"]) for e in embedding_exclusions(result)}
    rows = frame[~frame["image_id"].astype(str).isin(dropped)]
    if task_data.get("type") == "transfer":  # every image of a transfer task is a test image of one holdout fold 0
        return rows.assign(fold=0)[["image_id", "patient_id", "label", "fold"]], [0]
    folds = [int(f) for f in manifest.meta.get("eval_folds", sorted(frame["fold"].unique()))]
    return rows[rows["fold"].isin(folds)][["image_id", "patient_id", "label", "fold"]], folds


def _rows_problems(predictions: pd.DataFrame, expected: pd.DataFrame) -> list[str]:
    missing_columns = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing_columns:
        return [f"predictions lack column(s) {', '.join(missing_columns)}"]
    ids = predictions["image_id"].astype(str)
    if ids.duplicated().any():
        return [f"predictions list image {ids[ids.duplicated()].iloc[0]!r} more than once"]
    want = expected.assign(image_id=expected["image_id"].astype(str)).set_index("image_id")
    have = predictions.assign(image_id=ids).set_index("image_id")
    extra, absent = sorted(set(have.index) - set(want.index)), sorted(set(want.index) - set(have.index))
    problems = []
    if extra:
        problems.append(f"{len(extra)} predicted image(s) are not test rows of the manifest, e.g. {extra[0]!r}")
    if absent:
        problems.append(f"{len(absent)} test row(s) of the manifest have no prediction and are not recorded as "
                        f"excluded, e.g. {absent[0]!r}")
    if problems:
        return problems
    have = have.loc[want.index]
    for column in ("patient_id", "label", "fold"):
        left = have[column].astype(str) if column == "patient_id" else pd.to_numeric(have[column], errors="coerce")
        right = want[column].astype(str) if column == "patient_id" else want[column].astype("int64")
        differs = left.to_numpy() != right.to_numpy()
        if differs.any():
            first = want.index[differs.argmax()]
            problems.append(f"{int(differs.sum())} prediction row(s) have another {column} than the manifest, e.g. "
                            f"image {first!r}: {have.loc[first, column]!r} vs {want.loc[first, column]!r}")
    return problems


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=0.0, abs_tol=FLOAT_TOLERANCE)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _differences(claimed, recomputed, pointer: str, out: list[str]) -> None:
    """One 'pointer: claimed X, recomputed Y' line per leaf that differs."""
    if isinstance(claimed, dict) and isinstance(recomputed, dict):
        for key in sorted(set(claimed) | set(recomputed)):
            _differences(claimed.get(key), recomputed.get(key), f"{pointer}/{key}", out)
    elif isinstance(claimed, list) and isinstance(recomputed, list) and len(claimed) == len(recomputed) \
            and any(isinstance(x, dict) for x in claimed):
        for i, (a, b) in enumerate(zip(claimed, recomputed)):
            _differences(a, b, f"{pointer}/{i}", out)
    elif not _same(claimed, recomputed):
        def show(v):
            text = repr(v) if not isinstance(v, list) else f"[{len(v)} values]"
            return text if len(text) < 60 else text[:57] + "..."
        out.append(f"{pointer}: result says {show(claimed)}, recomputed {show(recomputed)}")


def recompute(predictions: pd.DataFrame, manifest, task_data: dict, result: dict) -> dict:
    """The metric blocks of a result (metrics, folds, roc, counts) as `runner eval` computes them."""

    _expected, folds = expected_rows(result, manifest, task_data)
    if task_data.get("type") == "transfer":  # trained on another task's manifest: its size is recorded, not derived
        n_train = {int(f["fold"]): int(f["n_train"]) for f in result.get("folds") or []}
    else:
        n_train = {f: int((expected_all(manifest, result)["fold"] != f).sum()) for f in folds}
    summary = summarize(predictions, task_data.get("metrics"), eval_folds=folds, n_train=n_train)
    labels = pd.to_numeric(predictions["label"])
    out = {"metrics": {"auroc": summary["auroc"], "f1": summary["f1"]}, "folds": summary["folds"],
           "positives": int((labels == 1).sum()), "negatives": int((labels == 0).sum())}
    out["roc"] = pooled_roc(predictions)
    return out


def expected_all(manifest, result: dict) -> pd.DataFrame:
    """Every manifest row that reached the classifier (the manifest minus the exclusions made at embedding)."""
    dropped = {str(e["image_id"]) for e in embedding_exclusions(result)}
    return manifest.frame[~manifest.frame["image_id"].astype(str).isin(dropped)]


def verify_result(result: dict, predictions: pd.DataFrame | None, manifest, task_card,
                  predictions_sha256: str | None = None) -> list[str]:
    """Problems that keep a reproduced result off the leaderboard; [] when every number is what its data gives.

    predictions: the result's predictions table (None: no predictions file). manifest: runner.sample.manifest.Manifest
    (None: not found). predictions_sha256: sha256 of the predictions file's bytes, checked against the result's.
    """
    if result.get("provenance") != "reproduced":
        return []
    if manifest is None:
        return ["no frozen manifest to check the result against (pass --manifest DIR, or submit from the run folder)"]
    if predictions is None:
        return ["no predictions file to recompute the numbers from (predictions.parquet beside result.json)"]
    problems = []
    claimed_manifest = result.get("manifest") or {}
    if claimed_manifest.get("sha256") != manifest.meta.get("sha256"):
        problems.append(f"manifest sha256 in the result ({str(claimed_manifest.get('sha256'))[:12]}…) differs from the "
                        f"frozen manifest's ({str(manifest.meta.get('sha256'))[:12]}…)")
    if claimed_manifest.get("n_images") != len(manifest.frame):
        problems.append(f"manifest.n_images {claimed_manifest.get('n_images')} in the result, the frozen manifest has "
                        f"{len(manifest.frame)} rows")
    if manifest.meta.get("task_id") not in (None, task_card.id):
        problems.append(f"the manifest was sampled for task {manifest.meta.get('task_id')!r}, not {task_card.id!r}")
    claimed_sha = result.get("predictions_sha256")
    if claimed_sha is None:
        problems.append("the result records no predictions_sha256")
    elif predictions_sha256 is not None and claimed_sha != predictions_sha256:
        problems.append(f"predictions_sha256 in the result ({claimed_sha[:12]}…) differs from the predictions file's "
                        f"({predictions_sha256[:12]}…)")
    over = budget_problem(len(manifest.frame), embedding_exclusions(result), max_excluded_fraction(task_card.data))
    if over:
        problems.append(over)
    expected, _folds = expected_rows(result, manifest, task_card.data)
    row_problems = _rows_problems(predictions, expected)
    if row_problems:
        return problems + row_problems

    try:
        again = recompute(predictions, manifest, task_card.data, result)
    except (MetricsInputError, ValueError, KeyError) as exc:
        return problems + [f"cannot recompute the metrics from the predictions: {exc}"]
    differences: list[str] = []
    _differences(result.get("metrics"), again["metrics"], "/metrics", differences)
    _differences(result.get("folds"), again["folds"], "/folds", differences)
    if "roc" in result or again["roc"] is not None:
        _differences(result.get("roc"), again["roc"], "/roc", differences)
    counts = result.get("counts") or {}
    for key in ("positives", "negatives"):
        if counts.get(key) != again[key]:
            differences.append(f"/counts/{key}: result says {counts.get(key)!r}, the predictions have {again[key]}")
    if differences:
        more = f" (and {len(differences) - MAX_SHOWN} more)" if len(differences) > MAX_SHOWN else ""
        problems.append("numbers differ from those recomputed from the predictions: "
                        + "; ".join(differences[:MAX_SHOWN]) + more)
    return problems


def read_predictions(path: Path) -> tuple[pd.DataFrame | None, str | None, str | None]:
    """(table, sha256 of the file, problem) of a predictions parquet file; (None, None, None) when there is none."""
    path = Path(path)
    if not path.is_file():
        return None, None, None
    try:
        return pd.read_parquet(path), file_sha256(path), None
    except (OSError, ValueError) as exc:
        return None, None, f"{path.name}: unreadable predictions ({str(exc).splitlines()[0] if str(exc) else exc})"
