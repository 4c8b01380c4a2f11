"""A real run folder for the submit / verify / site tests, made the way `runner eval` makes one.

OUT/<task>/manifest.{parquet,json} (runner.sample.manifest.write_manifest of a SampleResult that samples the task
exactly as its card says: its label, split, evaluated folds and class sizes) and OUT/<task>/<encoder>/{predictions.
parquet,result.json,embeddings.npz}: seeded embeddings classified by the task's own classifier, and the result built
from them by the code `runner eval` uses
(runner.metrics.summary, runner.analysis.for_run, runner.results.run_result), so `runner submit` must find every number
consistent.
"""

from __future__ import annotations

import inspect
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def sample_result(task, sample: int = 0, synthetic: bool = True):
    """A SampleResult of `task` (a registry Card) as its card samples it; `sample` changes which images (another
    sample of the same task, as another data root would give)."""
    from runner.sample.sampler import SampleResult, eval_folds_of

    spec = task.spec
    positives, negatives = spec.sampling.positives, spec.sampling.negatives
    n = positives + negatives
    folds = spec.split.folds or 2
    labels = [1] * positives + [0] * negatives
    patients = [f"s{sample}-p{i // 2}" for i in range(n)]
    frame = pd.DataFrame({
        "image_id": [f"s{sample}-img-{i:04d}" for i in range(n)], "patient_id": patients,
        "study_id": [f"s{sample}-s{i}" for i in range(n)], "path": [f"files/s{sample}-img-{i:04d}.dcm" for i in range(n)],
        "view": "PA", "label": labels, "fold": [(i // 2) % folds for i in range(n)]})
    if spec.split.method == "group-holdout":
        frame["fold"] = (frame["fold"] == 0).astype(int).map({1: 0, 0: 1})
    split = spec.split.as_dict()
    return SampleResult(task.id, spec.dataset, frame, split, eval_folds_of(split), spec.sampling.seed, "none",
                        synthetic=synthetic, label=spec.label.id)


def make_run(out: Path, reg, task_id: str = "effusion-demo", encoder_id: str = "pixels", *, sample: int = 0,
             seed: int = 0, excluded: int = 0, separation: float = 1.0, embeddings: bool = True) -> Path:
    """Write a consistent run under `out`; returns OUT/<task>/<encoder>/result.json.

    The run's embeddings are seeded (16 dimensions, `separation` apart between the classes); the predictions come
    from the task card's own classifier on them, and with `embeddings` the run files them as a bundle (what
    `runner eval --save-embeddings` writes), so the registry can refit. Without, the predictions are seeded
    probabilities and the run has predictions only.
    excluded: that many manifest images are left out "at embedding" (recorded as exclusions, no prediction).
    """
    from runner.analysis.for_run import prediction_analyses
    from runner.classify.out_of_fold import classify
    from runner.data.fingerprint import file_sha256
    from runner.metrics.summary import summarize
    from runner.results.bundle import NAME, write_bundle
    from runner.results.run_result import RunFacts, run_result
    from runner.sample.manifest import write_manifest

    task = reg.tasks[task_id]
    dataset = reg.datasets[task.spec.dataset]
    encoder = reg.encoders[encoder_id]
    manifest = write_manifest(Path(out) / task_id, sample_result(task, sample, dataset.spec.synthetic),
                              task.behaviour_sha256)
    rows = manifest.frame.iloc[excluded:].reset_index(drop=True)
    folds = [int(f) for f in manifest.meta["eval_folds"]]
    rng = np.random.default_rng(seed)
    labels = rows["label"].to_numpy()
    if embeddings:
        x = rng.normal(0, 1, (len(rows), 16)).astype(np.float32)
        x[:, :3] += separation * labels[:, None]
        predictions = classify(x, rows, task.spec.classifier, folds).predictions
    else:
        prob = 1 / (1 + np.exp(-(separation * (labels * 2 - 1) + rng.normal(0, 1, len(rows)))))
        predictions = pd.DataFrame({"image_id": rows["image_id"], "patient_id": rows["patient_id"],
                                    "label": rows["label"], "fold": rows["fold"], "prob": prob})
    run_dir = Path(out) / task_id / encoder_id
    run_dir.mkdir(parents=True, exist_ok=True)
    predictions.to_parquet(run_dir / "predictions.parquet", index=False)
    exclusions = [{"image_id": r.image_id, "path": r.path, "reason": "missing-file"}
                  for r in manifest.frame.iloc[:excluded].itertuples()]
    summary = summarize(predictions, task.spec.metrics, eval_folds=folds,
                        n_train={f: int((rows["fold"] != f).sum()) for f in folds})
    analyses = prediction_analyses(task, predictions, rows, folds, summary, [])
    analyses["classifier"] = {"trees_per_fold": [1] * len(folds)}
    facts = RunFacts({"embed": 1.5}, {"images_per_s": 26.7}, {"device": "cpu", "python": "3.11", "platform": "Linux",
                                                              "packages": {}, "git_commit": None},
                     "2026-11-28T10:00:00Z")
    result = run_result(task, encoder, dataset, manifest, predictions, exclusions, summary, analyses, facts)
    result["predictions_sha256"] = file_sha256(run_dir / "predictions.parquet")
    if embeddings:
        header = {"task_id": task.id, "task_behaviour_sha256": task.behaviour_sha256, "encoder_id": encoder.id,
                  "encoder_behaviour_sha256": encoder.behaviour_sha256, "manifest_sha256": manifest.meta["sha256"]}
        result["embeddings_sha256"] = file_sha256(write_bundle(run_dir / NAME, rows["image_id"].tolist(), x, {},
                                                               header))
    (run_dir / "result.json").write_text(json.dumps(result, indent=1))
    return run_dir / "result.json"


# make_run's files by a fingerprint of everything they are made from (shared_run): this process's memory only.
# Imported as `runs` and as `tests.runs` (both are on the test path) this file is two modules: they share one store.
_MADE: dict[tuple, dict[str, bytes]] = next(
    (vars(module)["_MADE"] for module in map(sys.modules.get, ("runs", "tests.runs"))
     if module is not None and "_MADE" in vars(module)), {})


def shared_run(out: Path, reg, task_id: str = "effusion-demo", encoder_id: str = "pixels", **options) -> Path:
    """make_run(out, reg, task_id, encoder_id, **options), the files made once per process for the same inputs and
    written again from their bytes after (a run costs ~0.5 CPU-s; the corpus makes the same one ~20 times).

    The key is what make_run reads: the task, encoder and dataset cards' data and hashes, and the arguments. The
    files do not depend on `out` (no path is written into them); manifest.json's created_at is the first run's.
    Only for callers that change nothing make_run calls (no monkeypatched product code); those that do call make_run."""
    from registry.hashing import sha256_of

    task = reg.tasks[task_id]
    cards = (task, reg.encoders[encoder_id], reg.datasets[task.spec.dataset])
    # every argument with its default filled in: make_run(reg) and make_run(reg, seed=0) are the same run
    arguments = inspect.signature(make_run).bind(out, reg, task_id, encoder_id, **options)
    arguments.apply_defaults()
    options = {k: v for k, v in arguments.arguments.items() if k not in ("out", "reg", "task_id", "encoder_id")}
    key = (task_id, encoder_id, sha256_of(options),
           *((card.sha256, card.behaviour_sha256, sha256_of(card.data)) for card in cards))
    files = _MADE.get(key)
    if files is None:
        with tempfile.TemporaryDirectory() as staging:
            make_run(Path(staging), reg, task_id, encoder_id, **options)
            files = {p.relative_to(staging).as_posix(): p.read_bytes()
                     for p in sorted(Path(staging).rglob("*")) if p.is_file()}
        _MADE[key] = files
    for name, data in files.items():
        (Path(out) / name).parent.mkdir(parents=True, exist_ok=True)
        (Path(out) / name).write_bytes(data)
    return Path(out) / task_id / encoder_id / "result.json"


def edit_result(path: Path, change) -> dict:
    """Apply `change(result)` to a result file in place; returns the new object."""
    result = json.loads(Path(path).read_text())
    change(result)
    Path(path).write_text(json.dumps(result, indent=1))
    return result
