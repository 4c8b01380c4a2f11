"""`runner submit`: file a result under the registry's results folder — the registry's own regeneration of it.

Why a result whose card hash no longer matches is REFUSED rather than filed and marked stale: the leaderboard shows a
number next to a task and an encoder, and a reader takes the current card of each as the description of how that number
was made (which images, which label policy, which preprocessing, which weights). If the card changed after the run, that
description is false for this number, and a "stale" badge is easy to miss and gets lost whenever the number is copied
out of the site. Refusing keeps the invariant "every filed number was made with the card the site links to"; the fix is
cheap and explicit: re-run with the current card, or re-file a reported number with `leaderboard/filing/file_reported.py`.

Why the filed result is regenerated rather than the submitted one checked: a result file is text anyone can edit, a
predictions file or a manifest can be swapped or hand-made. The registry pins the manifest each task is scored on
(leaderboard.filing.pins), takes from the submitter only the out-of-fold predictions and the images the run could not
embed, and computes every number itself with the code `runner eval` uses (leaderboard.filing.regenerate); a submitted
number that differs is refused, and what is filed is the regeneration. A reported number must be exactly what a
publication record prints (leaderboard.filing.publications), and nothing more.

Exit codes of the command: 0 filed, 1 refused (stale card, another manifest than the pinned one, numbers that do not
regenerate, over the exclusion budget, a false exclusion claim, already filed), 2 invalid input.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from leaderboard.filing.layout import (
    RUN_PREDICTIONS,
    embeddings_path,
    filed_name,
    predictions_of,
    predictions_path,
    store_once,
)
from leaderboard.filing.pins import Pin, PinError, describe_difference, pin, pinned_manifest
from leaderboard.filing.publications import load_publications, reported_problems
from leaderboard.filing.regenerate import (
    TIERS,
    differences,
    embedding_exclusions,
    expected_rows,
    filed_differences,
    prediction_differences,
    prediction_problems,
    regenerate,
    summarise,
)
from leaderboard.filing.verify import card_matches, read_predictions, retry_exclusions
from registry.benchmarks import load_layout
from registry.errors import RegistryError
from runner.data.fingerprint import file_sha256
from runner.results.bundle import NAME as BUNDLE_NAME
from runner.results.bundle import BundleError, read_bundle
from runner.results.result import ResultError, read_result, validate_result, write_result
from runner.sample.manifest import Manifest, ManifestError, ManifestFormatError, card_problems, read_manifest
from runner.sample.store import results_store, store_manifest
from runner.task_types import scores_itself

EXIT_OK, EXIT_REFUSED, EXIT_INVALID = 0, 1, 2


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


def _read(folder: Path | None, what: str) -> Manifest | None:
    if folder is None:
        return None
    try:
        return read_manifest(folder)
    except ManifestError as exc:  # a malformed file is bad input (2); an edited one is refused (1)
        code = EXIT_INVALID if isinstance(exc, ManifestFormatError) else EXIT_REFUSED
        raise SubmitError(f"{what} cannot be used: {exc}", code) from None


@dataclass
class Scored:
    """The manifest a reproduced result is scored on, and where it comes from."""

    manifest: Manifest
    pin: Pin
    source: Path | None = None  # the run's manifest folder, to store and pin when nothing is pinned yet


def scored_manifest(task, registry, results_dir: Path, claimed_sha: str, run_folder: Path | None) -> Scored:
    """The task's pinned manifest, which the result must have used; the run's own when the task has no pin yet (it
    will pin it). Refused: another manifest than the pinned one (naming what differs), a stale committed manifest,
    a first manifest that does not sample the task as its card says."""
    try:
        found = pinned_manifest(task, registry, results_dir)
        pinned = found.load() if found.sha256 else None
    except (PinError, ManifestError) as exc:
        raise _refused(str(exc)) from None
    if found.source == "stale":
        raise _refused(f"task {task.id!r}: its committed manifest was frozen from another version of the card; "
                       f"rerun `python -m runner.sample.committed {task.id}` before filing")
    run = _read(run_folder, "the run's manifest")
    if run is not None and run.meta["sha256"] != claimed_sha:
        raise _refused(f"manifest sha256 in the result ({claimed_sha[:12]}…) differs from the run's manifest "
                       f"({run.meta['sha256'][:12]}…)")
    if pinned is not None:
        if claimed_sha != found.sha256:
            what = f": {describe_difference(pinned, run)}" if run is not None else ""
            raise _refused(f"task {task.id!r} is scored on its {found.source} manifest {found.sha256[:12]}…; this "
                           f"result used {claimed_sha[:12]}…{what}")
        return Scored(pinned, found)
    if run is None:
        raise _refused("no frozen manifest to score the result on (pass --manifest DIR, or submit from the run "
                       "folder); the task has none pinned yet")
    return Scored(run, found, run_folder)


def result_problems(result: dict, registry, results_dir: Path, *, run_dir: Path | None = None,
                    manifest_path: Path | None = None, data_root: Path | None = None, publications=None
                    ) -> tuple[dict | None, list[str], list]:
    """(the result the registry files, why it cannot stand, what to store first) for a schema-valid result with
    current cards. Reproduced: regenerated from the pinned manifest and the predictions (from the run folder when
    given, else the filed ones) or the embeddings bundle (a task type with its own score function takes only the
    bundle); reported: exactly what its publication prints."""
    if result["provenance"] == "reported":
        if publications is None:
            publications = load_publications(registry.home.publications_dir)
        problem = reported_problems(result, publications, registry)
        return (None, [problem], []) if problem else (result, [], [])

    task = registry.tasks[result["task"]["id"]]
    claimed = (result.get("manifest") or {}).get("sha256")
    if not isinstance(claimed, str):
        return None, ["the result names no manifest sha256"], []
    scored = scored_manifest(task, registry, results_dir, claimed,
                             find_manifest(manifest_path, run_dir) if run_dir or manifest_path else None)
    to_store = [("manifest", task, scored)] if scored.source is not None else []
    sampled_otherwise = card_problems(scored.manifest, task)  # before any row is compared with it
    if sampled_otherwise:
        return None, [f"the manifest does not sample the task as its card says: {p}" for p in sampled_otherwise], []
    train_manifest = None
    if task.spec.type == "transfer":
        train_task = registry.tasks[task.spec.transfer_train_task]
        train_claimed = ((result.get("analyses") or {}).get("transfer") or {}).get("train_manifest_sha256")
        if not isinstance(train_claimed, str):
            return None, ["a transfer task's result names no training manifest (analyses.transfer)"], []
        train_folder = (run_dir.parent.parent / train_task.id) if run_dir else None
        train_scored = scored_manifest(train_task, registry, results_dir, train_claimed,
                                       train_folder if train_folder and (train_folder / "manifest.json").is_file()
                                       else None)
        train_manifest = train_scored.manifest
        if train_scored.source is not None:
            to_store.append(("manifest", train_task, train_scored))
    if scores_itself(task):  # a type with its own score function takes no predictions: only the embeddings bundle
        source = None
    else:
        source = (run_dir / RUN_PREDICTIONS) if run_dir else predictions_of(results_dir, result)
    predictions, sha, unreadable = read_predictions(source) if source else (None, None, None)
    if unreadable:
        return None, [unreadable], []
    if predictions is not None and result.get("predictions_sha256") != sha:
        problem = (f"predictions_sha256 in the result ({str(result.get('predictions_sha256'))[:12]}…) differs from "
                   f"the predictions file's ({sha[:12]}…)")
        return None, [problem], []
    if predictions is not None:  # the submitted rows first: exactly the manifest's test rows, probabilities
        expected, _ = expected_rows(scored.manifest, embedding_exclusions(result), task.spec.type == "transfer")
        wrong = prediction_problems(predictions, expected)
        if wrong:
            return None, wrong, []
    bundle, bundle_file, problem = _bundle(result, run_dir, results_dir)
    if problem:
        return None, [problem], []
    if data_root is not None:
        false_claims = retry_exclusions(result, scored.manifest, Path(data_root))
        if false_claims:
            return None, false_claims, []
    regenerated = regenerate(result, predictions, scored.manifest, registry, train_manifest=train_manifest,
                             bundle=bundle)
    if regenerated.problems:
        return None, regenerated.problems, []
    filed = regenerated.result
    policy = load_layout(registry.root)
    if regenerated.predictions is not None and predictions is not None:  # the registry refitted: same predictions?
        off = prediction_differences(predictions, regenerated.predictions)
        if off:
            problem = ("the submitted predictions are not what the task's classifier gives on the submitted "
                       f"embeddings: {off}")
            return None, [problem], []
    found = differences(result, filed)
    if found:
        return None, ["numbers differ from those the registry recomputes: " + summarise(found)], []
    if TIERS.index(regenerated.tier) < TIERS.index(policy.min_tier):
        problem = (f"this registry files reproduced results only as its own refit (min_tier {policy.min_tier}): "
                   "submit the run's embeddings too (runner eval --save-embeddings writes embeddings.npz beside the "
                   "result)")
        return None, [problem], []
    if predictions is None and regenerated.predictions is not None:  # embeddings alone: the registry's refit
        data = _parquet_bytes(regenerated.predictions)
        sha = hashlib.sha256(data).hexdigest()
        filed["predictions_sha256"] = sha
        to_store.append(("predictions", data, sha))
    elif predictions is not None:  # the submitted file: the registry's own predictions (refitted) or the numbers'
        to_store.append(("predictions", source, sha))  # source (regenerated); a scored type files none
    if bundle_file is not None:
        to_store.append(("embeddings", bundle_file, filed["embeddings_sha256"]))
    return filed, [], to_store


def _bundle(result: dict, run_dir: Path | None, results_dir: Path):
    """(the embeddings bundle the result names, its file, problem): from the run folder, else the filed one."""
    claimed = result.get("embeddings_sha256")
    if claimed is None:
        return None, None, None
    path = (run_dir / BUNDLE_NAME) if run_dir else embeddings_path(results_dir, claimed)
    if not path.is_file():
        return None, None, f"the result names an embeddings bundle ({claimed[:12]}…) that is not there ({path})"
    if file_sha256(path) != claimed:
        return None, None, f"embeddings_sha256 in the result differs from the bundle file's ({path})"
    try:
        return read_bundle(path), path, None
    except BundleError as exc:
        return None, None, str(exc)


def _parquet_bytes(predictions) -> bytes:
    buffer = io.BytesIO()
    predictions.to_parquet(buffer, index=False)
    return buffer.getvalue()


def filed_problems(path: Path, result: dict, registry) -> list[str]:
    """Why a result filed at `path` does not stand: a card changed since, or it does not regenerate as filed from its
    filed predictions and the task's pinned manifest (or is not what its publication prints). [] when it stands."""
    stale = card_matches(result, registry)
    if stale:
        return [stale]
    try:
        filed, problems, _ = result_problems(result, registry, Path(path).parent)
    except SubmitError as exc:
        return [str(exc)]
    if not problems:  # the filed file is the registry's regeneration, field for field
        found = filed_differences(result, filed)
        problems = [f"not the registry's regeneration of it: {summarise(found)}"] if found else []
    return problems


def file_result(result: dict, registry, results_dir: Path | None = None, replace: bool = False,
                manifest_path: Path | None = None, run_dir: Path | None = None, source: Path | None = None,
                publications=None, data_root: Path | None = None) -> Filed:
    """Check one submitted result, regenerate it, and file the regeneration atomically; raises SubmitError when it is
    not filed. `results_dir` defaults to the registry's (registry.home); `data_root` (runner submit --data-root)
    re-tries the images the run says it could not embed."""
    results_dir = Path(results_dir) if results_dir is not None else registry.home.results_dir
    problems = validate_result(result)
    if problems:
        where = f"{source}: " if source else ""
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise _invalid(f"{where}invalid result: {problems[0]}{more}")
    check_against_cards(result, registry)
    filed, refused, to_store = result_problems(result, registry, results_dir, run_dir=run_dir,
                                               manifest_path=manifest_path, data_root=data_root,
                                               publications=publications)
    if refused:
        raise _refused("not verified: " + "; ".join(refused))
    target = results_dir / filed_name(filed)
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
        for kind, first, second in to_store:  # content-addressed, written once; the result, which names them, last
            if kind == "manifest":
                store_manifest(results_store(results_dir), first.id, second.manifest.meta["sha256"], second.source)
                pin(first, results_dir, second.manifest.meta["sha256"])
            elif kind == "predictions":
                store_once(first, predictions_path(results_dir, second))  # a file, or the registry's own bytes
            else:
                store_once(first, embeddings_path(results_dir, second))
        write_result(filed, target)
    except (ResultError, PinError, OSError) as exc:
        raise _invalid(str(exc)) from None
    return Filed(source, target, existed, previous)


def submit(path: Path, registry, results_dir: Path | None = None, replace: bool = False,
           manifest_path: Path | None = None, data_root: Path | None = None) -> Filed:
    """`runner submit PATH`: read, check, regenerate and file one result file (its folder is the run folder)."""
    path = Path(path)
    try:
        result = read_result(path)
    except ResultError as exc:
        raise _invalid(str(exc)) from None
    return file_result(result, registry, results_dir, replace, manifest_path, run_dir=path.parent, source=path,
                       data_root=data_root)
