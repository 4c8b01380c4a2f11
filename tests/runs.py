"""A real run folder for the submit / verify / site tests, made the way `runner eval` makes one.

OUT/<task>/manifest.{parquet,json} (runner.sample.manifest.write_manifest of a SampleResult) and
OUT/<task>/<encoder>/{predictions.parquet,result.json}: the metrics come from runner.metrics.summary.summarize on seeded
probabilities, the ROC from runner.evaluate's code, so `leaderboard.filing.verify` must find every number consistent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def sample_result(task_id: str, dataset_id: str, n: int = 40, folds: int = 2, synthetic: bool = True):
    from runner.sample.sampler import SampleResult

    frame = pd.DataFrame({
        "image_id": [f"img-{i:03d}" for i in range(n)], "patient_id": [f"p{i // 2}" for i in range(n)],
        "study_id": [f"s{i}" for i in range(n)], "path": [f"files/img-{i:03d}.dcm" for i in range(n)],
        "view": "PA", "label": [(i // 2) % 2 for i in range(n)], "fold": [(i // 4) % folds for i in range(n)]})
    return SampleResult(task_id, dataset_id, frame, {"method": "stratified-group-kfold", "folds": folds, "seed": 0},
                        list(range(folds)), 0, "none", synthetic=synthetic)


def make_run(out: Path, reg, task_id: str = "effusion-demo", encoder_id: str = "pixels", *, n: int = 40,
             seed: int = 0, excluded: int = 0, separation: float = 1.0) -> Path:
    """Write a consistent run under `out`; returns OUT/<task>/<encoder>/result.json.

    excluded: that many manifest images are left out "at embedding" (recorded as exclusions, no prediction).
    """
    from leaderboard.filing.verify import recompute
    from runner.data.fingerprint import file_sha256
    from runner.results.result import encoder_ref, task_ref
    from runner.sample.manifest import write_manifest

    task = reg.tasks[task_id]
    synthetic = bool(reg.datasets[task.data["dataset"]].data.get("synthetic"))
    manifest = write_manifest(Path(out) / task_id, sample_result(task_id, task.data["dataset"], n,
                                                                 synthetic=synthetic), task.sha256)
    rows = manifest.frame.iloc[excluded:]
    rng = np.random.default_rng(seed)
    prob = 1 / (1 + np.exp(-(separation * (rows["label"].to_numpy() * 2 - 1) + rng.normal(0, 1, len(rows)))))
    predictions = pd.DataFrame({"image_id": rows["image_id"], "patient_id": rows["patient_id"],
                                "label": rows["label"], "fold": rows["fold"], "prob": prob}).reset_index(drop=True)
    run_dir = Path(out) / task_id / encoder_id
    run_dir.mkdir(parents=True, exist_ok=True)
    predictions.to_parquet(run_dir / "predictions.parquet", index=False)
    exclusions = [{"image_id": r.image_id, "path": r.path, "reason": "at embedding: missing-file"}
                  for r in manifest.frame.iloc[:excluded].itertuples()]
    result = {
        "schema_version": 1, "provenance": "reproduced",
        "task": task_ref(task), "encoder": encoder_ref(reg.encoders[encoder_id]),
        "manifest": {"sha256": manifest.meta["sha256"], "n_images": len(manifest.frame)},
        "predictions_sha256": file_sha256(run_dir / "predictions.parquet"),
        "counts": {"positives": 0, "negatives": 0, "excluded": len(exclusions), "exclusions": exclusions},
        "timings_s": {"embed": 1.5}, "throughput": {"images_per_s": 26.7},
        "environment": {"device": "cpu", "python": "3.11", "platform": "Linux", "packages": {}, "git_commit": None},
        "seeds": {"sampling": 0}, "synthetic": synthetic, "analyses": {"stability": {"mean_cosine": 0.98}},
        "created_at": "2026-11-28T10:00:00Z",
    }
    again = recompute(predictions, manifest, task.data, result)
    result.update(metrics=again["metrics"], folds=again["folds"])
    result["counts"].update(positives=again["positives"], negatives=again["negatives"])
    if again["roc"] is not None:
        result["roc"] = again["roc"]
    (run_dir / "result.json").write_text(json.dumps(result, indent=1))
    return run_dir / "result.json"


def edit_result(path: Path, change) -> dict:
    """Apply `change(result)` to a result file in place; returns the new object."""
    result = json.loads(Path(path).read_text())
    change(result)
    Path(path).write_text(json.dumps(result, indent=1))
    return result
