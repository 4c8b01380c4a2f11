"""May an earlier result stand? The fingerprint of everything a result is computed from, and the check against it.

Entries:
* `inputs_sha256(parts)`: sha256 of a run's inputs: the cards (full and behaviour hashes), what made the
  embeddings besides the card (the weights' sha256, custom code, the packages that change the encoder's numbers),
  the frozen manifest(s), the classifier's design (embeddings, augmented views, table, folds) and the
  embedding-time exclusions, the analyses asked for, the device, the code that computes a result (`code_sha256`) and the key packages' versions.
  `runner.evaluate` writes it into the result as `inputs_sha256`.
* `reusable_result(run_dir, fingerprint) -> (result or None, reason)`: the result already in the run folder, when it
  records exactly this fingerprint, still passes the result schema, its predictions file has the sha256 it records,
  and every figure it names is there; otherwise None and why it must be computed again.

Why: a second `runner eval` of the same task and encoder (a batch resumed after an interruption, a warm rerun)
would otherwise refit every classifier and analysis to write the same file. Nothing is reused on trust: a changed
card, manifest, embedding, code file or package version gives another fingerprint, and the run is computed again.
This guards against staleness, not forgery: a run folder is its owner's working space, and what is filed to the
leaderboard is checked against its predictions by `leaderboard/filing/verify.py` whatever made it.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from registry.hashing import fingerprint, sha256_of
from runner.data.fingerprint import file_sha256
from runner.results.provenance import package_root
from runner.results.result import ResultError, package_versions, read_result, validate_result

# the code a result is computed from: the source files and schemas of these packages (not the site's renderer)
CODE_PACKAGES = ("runner", "registry")


@lru_cache(maxsize=1)
def code_sha256() -> str:
    """registry.hashing.fingerprint of CODE_PACKAGES' code files (the versions of the packages that compute numbers
    enter inputs_sha256 on their own)."""
    return fingerprint({package: package_root(package) for package in CODE_PACKAGES}, {})


def array_sha256(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes (C order)."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.data)
    return digest.hexdigest()


def table_sha256(table) -> str:
    """sha256 of a DataFrame's column names, dtypes and values (pandas' own row hashing, index excluded)."""
    import pandas as pd

    rows = pd.util.hash_pandas_object(table, index=False).to_numpy()
    header = json.dumps([[str(c), str(t)] for c, t in table.dtypes.items()])
    return hashlib.sha256(header.encode() + rows.tobytes()).hexdigest()


def inputs_sha256(parts: dict) -> str:
    """One sha256 over a run's input parts (JSON-able values) plus the code and package versions computing it."""

    return sha256_of({**parts, "code_sha256": code_sha256(), "packages": package_versions()})


def run_inputs_sha256(task, encoder_card, sides: list[tuple], design, analyses: list[str], device: str,
                      encoder_inputs: dict) -> str:
    """The fingerprint of what one run's result is computed from: cards, what made the embeddings besides the
    encoder card (`encoder_inputs`: runner.embed.made_by's record — weights' sha256, custom code, package versions),
    each side's (dataset card, manifest, embeddings: the task's own first, then a transfer task's training side), the
    classifier's design (embeddings, augmented views, table, folds), the embedding-time exclusions, the analyses asked
    for and the device."""
    embedded_first = sides[0][2]
    return inputs_sha256({
        "task": [task.sha256, task.behaviour_sha256], "encoder": [encoder_card.sha256, encoder_card.behaviour_sha256],
        "encoder_inputs": encoder_inputs,
        "datasets": [dataset.sha256 for dataset, _, _ in sides],
        "manifests": [manifest.meta["sha256"] for _, manifest, _ in sides],
        "exclusions": [[manifest.meta.get("exclusions", []), embedded.exclusions] for _, manifest, embedded in sides],
        "design": {"table": table_sha256(design.table), "x": array_sha256(design.embeddings),
                   "folds": design.eval_folds,
                   "augmented": {view: array_sha256(x) for view, x in sorted((design.augmented or {}).items())}},
        "feature_names": list(getattr(embedded_first, "feature_names", None) or []),
        "analyses": list(analyses), "device": device,
    })


def _figure_names(obj):
    """Every file name under a `figure` block of a result's analyses (the files a run wrote beside its result)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "figure" and isinstance(value, str):  # label efficiency: one file name
                yield value
            elif key == "figure" and isinstance(value, dict):  # clustering: {png: name, svg: name}
                yield from (v for v in value.values() if isinstance(v, str))
            else:
                yield from _figure_names(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _figure_names(value)


def reusable_result(run_dir: Path, fingerprint: str) -> tuple[dict | None, str]:
    """(the earlier result, "") when it may stand for a run with this fingerprint, else (None, why not)."""

    result_path, predictions_path = run_dir / "result.json", run_dir / "predictions.parquet"
    if not result_path.is_file():
        return None, "no earlier result"
    try:
        result = read_result(result_path)
    except ResultError as exc:
        return None, f"the earlier result is unreadable ({exc})"
    if result.get("inputs_sha256") != fingerprint:
        return None, "the earlier result was computed from other inputs"
    if validate_result(result):
        return None, "the earlier result does not pass the result schema"
    if not predictions_path.is_file() or file_sha256(predictions_path) != result.get("predictions_sha256"):
        return None, "the earlier predictions file is missing or not the one the result records"
    missing = [name for name in _figure_names(result.get("analyses")) if not (run_dir / name).is_file()]
    if missing:
        return None, f"a figure of the earlier result is missing ({missing[0]})"
    return result, ""
