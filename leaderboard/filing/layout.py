"""The layout of a results folder (the registry's leaderboard/results/, or `runner demo`'s OUT/results/):

    <task>__<encoder>__<provenance>.json     a filed result: the registry's regeneration (leaderboard.filing.regenerate)
    predictions/<sha256>.parquet             the out-of-fold predictions a result's numbers come from (by content)
    embeddings/<sha256>.npz                  the embeddings bundle the registry refitted the classifier from, if filed
    audits/<bundle sha256>.json              `runner audit`'s record: that bundle re-embedded from the images
    manifests/<task>/<sha256>/               the manifests filed results were scored on that the registry does not
                                             commit (runner.sample.store), and manifests/pins.json (leaderboard.filing.pins)

Filing is atomic: content-addressed files are written once (a temporary file renamed into place) and never
overwritten, and the result file, which names them by hash, is written last, in one rename. An interrupted filing or
`--replace` leaves either the old result with its own predictions or the new one with its own: never a mixed pair.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

PREDICTIONS = "predictions"
EMBEDDINGS = "embeddings"
AUDITS = "audits"
RUN_PREDICTIONS = "predictions.parquet"  # what `runner eval` writes beside result.json in the run folder


def filed_name(result: dict) -> str:
    """`<task>__<encoder>__<provenance>.json`: one slot per task, encoder and provenance."""
    return f"{result['task']['id']}__{result['encoder']['id']}__{result['provenance']}.json"


def predictions_path(results_dir: Path, sha256: str) -> Path:
    return Path(results_dir) / PREDICTIONS / f"{sha256}.parquet"


def embeddings_path(results_dir: Path, sha256: str) -> Path:
    return Path(results_dir) / EMBEDDINGS / f"{sha256}.npz"


def audit_path(results_dir: Path, embeddings_sha256: str) -> Path:
    return Path(results_dir) / AUDITS / f"{embeddings_sha256}.json"


def predictions_of(results_dir: Path, result: dict) -> Path | None:
    """The filed predictions file a result names (None: it names none, e.g. a reported result)."""
    sha = result.get("predictions_sha256")
    return predictions_path(results_dir, sha) if isinstance(sha, str) and sha.isalnum() else None


def store_once(source: Path | bytes, target: Path) -> Path:
    """Write `source` (a file, or bytes) to the content-addressed `target` unless it is there already (same name:
    same content); atomically, so a reader never sees half of it."""
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(source, bytes):
                handle.write(source)
            else:
                with open(source, "rb") as original:
                    shutil.copyfileobj(original, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
