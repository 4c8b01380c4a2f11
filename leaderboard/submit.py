"""`runner submit`: check a result file against the schema and the current cards, then file it under leaderboard/results/.

Why a result whose card hash no longer matches is REFUSED rather than filed and marked stale: the leaderboard shows a
number next to a task and an encoder, and a reader takes the current card of each as the description of how that number
was made (which images, which label policy, which preprocessing, which weights). If the card changed after the run, that
description is false for this number, and a "stale" badge is easy to miss and gets lost whenever the number is copied
out of the site. Refusing keeps the invariant "every filed number was made with the card the site links to"; the fix is
cheap and explicit: re-run with the current card, or re-file a reported number with `leaderboard/file_reported.py`.

Exit codes of the command: 0 filed, 1 refused (stale card, manifest mismatch, already filed), 2 invalid input.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runner.results import ResultError, read_result, validate_result, write_result

RESULTS_DIR = Path(__file__).resolve().parent / "results"
EXIT_OK, EXIT_REFUSED, EXIT_INVALID = 0, 1, 2
PREDICTIONS_NAME = "predictions.parquet"  # written by `runner eval` beside result.json in the run folder


class SubmitError(Exception):
    """A submission that was not filed; `exit_code` is EXIT_REFUSED or EXIT_INVALID, str() a one-line message."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Filed:
    """Where a submission was filed."""

    source: Path | None
    path: Path
    replaced: bool


def filed_name(result: dict) -> str:
    """`<task>__<encoder>__<provenance>.json`: one slot per task, encoder and provenance."""
    return f"{result['task']['id']}__{result['encoder']['id']}__{result['provenance']}.json"


def _invalid(message: str) -> SubmitError:
    return SubmitError(message, EXIT_INVALID)


def _refused(message: str) -> SubmitError:
    return SubmitError(message, EXIT_REFUSED)


def _read_manifest_sha(path: Path) -> str:
    """sha256 recorded in a manifest.json (or in the manifest.json inside a run folder)."""
    path = path / "manifest.json" if path.is_dir() else path
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid(f"{path}: cannot read manifest ({exc})") from None
    sha = manifest.get("sha256") if isinstance(manifest, dict) else None
    if not isinstance(sha, str):
        raise _invalid(f"{path}: manifest has no sha256 field")
    return sha


def _known(name: str, ids, kind: str) -> str:
    """A short 'did you mean' for an unknown id: the closest known ids, never the whole (growing) list."""
    import difflib

    ids = sorted(ids)
    close = difflib.get_close_matches(str(name), ids, n=3, cutoff=0.5)
    return (f"did you mean {', '.join(close)}? " if close else "") + f"{len(ids)} known: runner list {kind}"


def check_against_cards(result: dict, registry) -> None:
    """Refuse a result whose task or encoder is unknown, or whose cards changed since it was made."""
    task_id, encoder_id = result["task"]["id"], result["encoder"]["id"]
    task = registry.tasks.get(task_id)
    if task is None:
        raise _invalid(f"unknown task {task_id!r} ({_known(task_id, registry.tasks, 'tasks')})")
    encoder = registry.encoders.get(encoder_id)
    if encoder is None:
        raise _invalid(f"unknown encoder {encoder_id!r} ({_known(encoder_id, registry.encoders, 'encoders')})")
    for kind, card, claimed in (("task", task, result["task"]["sha256"]), ("encoder", encoder, result["encoder"]["sha256"])):
        if claimed != card.sha256:
            raise _refused(
                f"{kind} card {card.id!r} changed since this result was made (result has sha256 {claimed[:12]}…, "
                f"current card {card.sha256[:12]}…): re-run with the current card, or re-file a reported number"
            )
    if result["task"]["dataset"] != task.data.get("dataset"):
        raise _invalid(f"task.dataset {result['task']['dataset']!r} differs from the task card's {task.data.get('dataset')!r}")
    dataset = registry.datasets.get(task.data.get("dataset"))
    card_synthetic = bool(dataset and dataset.data.get("synthetic", False))
    if result["provenance"] == "reproduced" and bool(result.get("synthetic")) != card_synthetic:
        raise _invalid(f"result says synthetic={result.get('synthetic')} but dataset card "
                       f"{task.data.get('dataset')!r} says synthetic={card_synthetic}")


def check_manifest(result: dict, task_card, manifest_path: Path | None, run_dir: Path | None) -> None:
    """Refuse a result whose manifest hash differs from the task's frozen manifest, where one is known."""
    if result.get("manifest") is None:
        return
    claimed = result["manifest"]["sha256"]
    pinned = (task_card.data.get("manifest") or {}) if isinstance(task_card.data.get("manifest"), dict) else {}
    if pinned.get("sha256") and pinned["sha256"] != claimed:
        raise _refused(f"manifest sha256 {claimed[:12]}… differs from the one task {task_card.id!r} pins "
                       f"({pinned['sha256'][:12]}…): the run did not use the task's frozen images and folds")
    local = manifest_path or (run_dir / "manifest.json" if run_dir and (run_dir / "manifest.json").is_file() else None)
    if local is not None:
        actual = _read_manifest_sha(Path(local))
        if actual != claimed:
            raise _refused(f"manifest sha256 in the result ({claimed[:12]}…) differs from {local} ({actual[:12]}…)")


def file_result(result: dict, registry, results_dir: Path = RESULTS_DIR, replace: bool = False,
                manifest_path: Path | None = None, run_dir: Path | None = None, source: Path | None = None) -> Filed:
    """Check one result object and file it atomically; raises SubmitError when it is not filed."""
    problems = validate_result(result)
    if problems:
        where = f"{source}: " if source else ""
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise _invalid(f"{where}invalid result: {problems[0]}{more}")
    check_against_cards(result, registry)
    check_manifest(result, registry.tasks[result["task"]["id"]], manifest_path, run_dir)
    target = Path(results_dir) / filed_name(result)
    existed = target.exists()
    if existed and not replace:
        raise _refused(f"{target} is already filed; pass --replace to overwrite it")
    try:
        write_result(result, target)
    except (ResultError, OSError) as exc:
        raise _invalid(str(exc)) from None
    predictions = run_dir / PREDICTIONS_NAME if run_dir else None
    if predictions is not None and predictions.is_file():  # lets the site draw the ROC curve of this result
        _copy_atomic(predictions, target.with_name(target.stem + "." + PREDICTIONS_NAME))
    return Filed(source, target, existed)


def _copy_atomic(src: Path, dst: Path) -> None:
    with tempfile.NamedTemporaryFile(dir=dst.parent, prefix=f".{dst.name}.", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        shutil.copyfile(src, tmp_path)
        tmp_path.replace(dst)
    finally:
        tmp_path.unlink(missing_ok=True)


def submit(path: Path, registry, results_dir: Path = RESULTS_DIR, replace: bool = False,
           manifest_path: Path | None = None) -> Filed:
    """`runner submit PATH`: read, check and file one result file (its folder is taken as the run folder)."""
    path = Path(path)
    try:
        result = read_result(path)
    except ResultError as exc:
        raise _invalid(str(exc)) from None
    return file_result(result, registry, results_dir, replace, manifest_path, run_dir=path.parent, source=path)
