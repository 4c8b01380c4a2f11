"""`runner submit`: check a result file against the schema and the current cards, then file it under leaderboard/results/.

Why a result whose card hash no longer matches is REFUSED rather than filed and marked stale: the leaderboard shows a
number next to a task and an encoder, and a reader takes the current card of each as the description of how that number
was made (which images, which label policy, which preprocessing, which weights). If the card changed after the run, that
description is false for this number, and a "stale" badge is easy to miss and gets lost whenever the number is copied
out of the site. Refusing keeps the invariant "every filed number was made with the card the site links to"; the fix is
cheap and explicit: re-run with the current card, or re-file a reported number with `leaderboard/filing/file_reported.py`.

Why numbers are recomputed rather than trusted: a result file is text anyone can edit, and a predictions file can be
swapped. `leaderboard.filing.verify` recomputes every metric from the predictions against the frozen manifest (found in the
run folder, or given with --manifest), so a filed number is what the filed data gives; a reported number must be
printed in a publication record (`leaderboard.filing.publications`).

Exit codes of the command: 0 filed, 1 refused (stale card, manifest mismatch, numbers not verified, over the
exclusion budget, already filed), 2 invalid input.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from leaderboard.filing.publications import check_reported, load_publications
from leaderboard.filing.verify import card_matches, read_predictions, verify_result
from registry.errors import RegistryError
from runner.results.result import ResultError, read_result, validate_result, write_result
from runner.sample.manifest import ManifestError, read_manifest
from runner.sample.store import find_stored, results_store, store_manifest

EXIT_OK, EXIT_REFUSED, EXIT_INVALID = 0, 1, 2
PREDICTIONS_NAME = "predictions.parquet"  # written by `runner eval` beside result.json in the run folder


class SubmitError(RegistryError):
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
    previous: dict | None = None  # the result this filing replaced (readable ones only)

    def changes(self, new: dict) -> list[str]:
        """What differs between the replaced result and `new`, one short phrase each (empty: nothing that is shown)."""
        return describe_changes(self.previous, new) if self.previous is not None else []


def describe_changes(old: dict, new: dict) -> list[str]:
    """The fields a reader of the leaderboard sees, old -> new: metrics, card and manifest hashes, images, run date."""
    def number(v):
        return "n/a" if v is None else f"{v:.4f}"

    def short(v):
        return (v[:12] + "…") if isinstance(v, str) and len(v) > 12 else v

    out = []
    for metric in ("auroc", "f1"):
        before, after = (old.get("metrics") or {}).get(metric) or {}, (new.get("metrics") or {}).get(metric) or {}
        for part in ("mean", "ci_low", "ci_high"):
            if before.get(part) != after.get(part):
                out.append(f"{metric} {part} {number(before.get(part))} -> {number(after.get(part))}")
    for block, key in (("task", "sha256"), ("encoder", "sha256"), ("manifest", "sha256"), ("manifest", "n_images")):
        before, after = (old.get(block) or {}).get(key), (new.get(block) or {}).get(key)
        if before != after:
            out.append(f"{block} {key} {short(before)} -> {short(after)}")
    before, after = set(old.get("analyses") or {}), set(new.get("analyses") or {})
    if before != after:
        out.append("analyses " + ", ".join([f"+{a}" for a in sorted(after - before)] + [f"-{a}" for a in sorted(before - after)]))
    if old.get("created_at") != new.get("created_at"):
        out.append(f"created_at {old.get('created_at')} -> {new.get('created_at')}")
    return out


def filed_name(result: dict) -> str:
    """`<task>__<encoder>__<provenance>.json`: one slot per task, encoder and provenance."""
    return f"{result['task']['id']}__{result['encoder']['id']}__{result['provenance']}.json"


def _invalid(message: str) -> SubmitError:
    return SubmitError(message, EXIT_INVALID)


def _refused(message: str) -> SubmitError:
    return SubmitError(message, EXIT_REFUSED)


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
        raise _invalid(f"unknown task {task_id!r} ({_known(task_id, registry.tasks, 'tasks')}; `runner list tasks` lists them)")
    encoder = registry.encoders.get(encoder_id)
    if encoder is None:
        raise _invalid(f"unknown encoder {encoder_id!r} ({_known(encoder_id, registry.encoders, 'encoders')}); "
                       "for a card outside the registry: runner --card PATH/TO/CARD.yaml submit ...")
    stale = card_matches(result, registry)
    if stale:
        raise _refused(f"{stale}: re-run with the current card, or re-file a reported number")
    if result["task"]["dataset"] != task.data.get("dataset"):
        raise _invalid(f"task.dataset {result['task']['dataset']!r} differs from the task card's {task.data.get('dataset')!r}")
    dataset = registry.datasets.get(task.data.get("dataset"))
    card_synthetic = bool(dataset and dataset.data.get("synthetic", False))
    if result["provenance"] == "reproduced" and bool(result.get("synthetic")) != card_synthetic:
        raise _invalid(f"result says synthetic={result.get('synthetic')} but dataset card "
                       f"{task.data.get('dataset')!r} says synthetic={card_synthetic}")


def manifest_stores(results_dir: Path, registry) -> list[Path]:
    """Where a filed result's frozen manifest is found: the results folder's store, then the registry's committed
    manifests (runner.sample.store: each manifest is stored once)."""
    return [results_store(results_dir), registry.home.manifests_dir]


def find_manifest(manifest_path: Path | None, run_dir: Path | None) -> Path | None:
    """The folder holding the run's manifest.json: --manifest (a file or folder), else beside the result
    (OUT/<task>/<encoder>/) or one folder up (OUT/<task>/, where `runner eval` freezes it)."""
    if manifest_path is not None:
        path = Path(manifest_path)
        return path.parent if path.name == "manifest.json" or path.is_file() else path
    for folder in (run_dir, run_dir.parent) if run_dir else ():
        if (folder / "manifest.json").is_file():
            return folder
    return None


def _load_manifest(folder: Path | None):

    if folder is None:
        return None
    try:
        return read_manifest(folder)
    except ManifestError as exc:
        raise _refused(f"the run's manifest cannot be used: {exc}") from None


def check_manifest(result: dict, task_card, manifest) -> None:
    """Refuse a result whose manifest hash differs from the one the task card pins, where it pins one."""
    if result.get("manifest") is None:
        return
    claimed = result["manifest"]["sha256"]
    pinned = (task_card.data.get("manifest") or {}) if isinstance(task_card.data.get("manifest"), dict) else {}
    if pinned.get("sha256") and pinned["sha256"] != claimed:
        raise _refused(f"manifest sha256 {claimed[:12]}… differs from the one task {task_card.id!r} pins "
                       f"({pinned['sha256'][:12]}…): the run did not use the task's frozen images and folds")
    if manifest is not None and manifest.meta.get("sha256") != claimed:
        raise _refused(f"manifest sha256 in the result ({claimed[:12]}…) differs from the run's manifest "
                       f"({str(manifest.meta.get('sha256'))[:12]}…)")


def result_problems(result: dict, registry, manifest, predictions_path: Path | None, publications=None) -> list[str]:
    """Why a schema-valid result with current cards may not stand on the leaderboard: its numbers do not follow from
    its predictions and frozen manifest (reproduced), or from its cited publication (reported). [] when it stands."""
    if result["provenance"] == "reported":

        if publications is None:
            publications = load_publications(registry.home.publications_dir)
        problem = check_reported(result, publications)
        return [problem] if problem else []

    predictions, sha, unreadable = read_predictions(predictions_path) if predictions_path else (None, None, None)
    if unreadable:
        return [unreadable]
    return verify_result(result, predictions, manifest, registry.tasks[result["task"]["id"]], predictions_sha256=sha)


def filed_problems(path: Path, result: dict, registry, publications=None) -> list[str]:
    """`result_problems` of a result filed at `path` (its manifest under manifests/, its predictions beside it)."""

    manifest = None
    if result["provenance"] == "reproduced" and isinstance(result.get("manifest"), dict):
        folder = find_stored(manifest_stores(Path(path).parent, registry), result["task"]["id"],
                             str(result["manifest"]["sha256"]))
        if folder is not None:
            try:
                manifest = read_manifest(folder)
            except ManifestError as exc:
                return [f"filed manifest unusable: {exc}"]
    predictions = Path(path).with_name(Path(path).stem + "." + PREDICTIONS_NAME)
    return result_problems(result, registry, manifest, predictions, publications)


def file_result(result: dict, registry, results_dir: Path | None = None, replace: bool = False,
                manifest_path: Path | None = None, run_dir: Path | None = None, source: Path | None = None,
                publications=None) -> Filed:
    """Check one result object and file it atomically; raises SubmitError when it is not filed.

    A reproduced result is filed only when every number recomputes from its predictions against its frozen manifest
    (leaderboard.filing.verify); the manifest is stored in the results folder's manifest store unless the registry
    commits it. A reported one only when it carries a publication's numbers. `results_dir` defaults to the
    registry's (registry.home).
    """
    results_dir = Path(results_dir) if results_dir is not None else registry.home.results_dir
    problems = validate_result(result)
    if problems:
        where = f"{source}: " if source else ""
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise _invalid(f"{where}invalid result: {problems[0]}{more}")
    check_against_cards(result, registry)
    manifest = None
    if result["provenance"] == "reproduced":
        manifest = _load_manifest(find_manifest(manifest_path, run_dir))
        check_manifest(result, registry.tasks[result["task"]["id"]], manifest)
    predictions = run_dir / PREDICTIONS_NAME if run_dir else None
    refused = result_problems(result, registry, manifest, predictions, publications)
    if refused:
        raise _refused("not verified: " + "; ".join(refused))
    target = Path(results_dir) / filed_name(result)
    existed = target.exists()
    if existed and not replace:
        raise _refused(f"{target} is already filed; pass --replace to overwrite it")
    previous = None
    if existed:
        try:
            previous = read_result(target)
        except ResultError:  # an unreadable earlier filing is simply replaced
            previous = None
    try:
        task_id, sha = result["task"]["id"], manifest.meta["sha256"] if manifest is not None else None
        if manifest is not None and find_stored([registry.home.manifests_dir], task_id, sha) is None:
            # first the manifest, then the predictions, the result last: it is what the site reads
            store_manifest(results_store(results_dir), task_id, sha, find_manifest(manifest_path, run_dir))
        if predictions is not None and predictions.is_file():  # the site draws ROC curves and ties from it
            _copy_atomic(predictions, target.with_name(target.stem + "." + PREDICTIONS_NAME))
        write_result(result, target)
    except (ResultError, OSError) as exc:
        raise _invalid(str(exc)) from None
    return Filed(source, target, existed, previous)


def _copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dst.parent, prefix=f".{dst.name}.", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        shutil.copyfile(src, tmp_path)
        tmp_path.replace(dst)
    finally:
        tmp_path.unlink(missing_ok=True)


def submit(path: Path, registry, results_dir: Path | None = None, replace: bool = False,
           manifest_path: Path | None = None) -> Filed:
    """`runner submit PATH`: read, check and file one result file (its folder is taken as the run folder)."""
    path = Path(path)
    try:
        result = read_result(path)
    except ResultError as exc:
        raise _invalid(str(exc)) from None
    return file_result(result, registry, results_dir, replace, manifest_path, run_dir=path.parent, source=path)
