"""The manifest a run is scored on: `manifest_for_run(task, dataset, data_root, task_dir, manifests_dir, ...)`.

In order: the frozen manifest already in the run folder (OUT/<task>/) when it was made from this task card and its
data fingerprint matches the files under data_root (runner.data.fingerprint); else the task's committed manifest
(runner.sample.committed, checked against the data at data_root, copied into the run folder); otherwise a fresh
sample, frozen into the run folder. `resample` skips the first two. A manifest of this card whose data differs is a
RunManifestError (exit 2) naming what differs, never a silent resample.
"""

from __future__ import annotations

from pathlib import Path

from registry.errors import RegistryError
from runner.data.fingerprint import data_fingerprint, fingerprint_differences
from runner.sample.committed import FrozenDataError, use_committed
from runner.sample.draw import sample
from runner.sample.manifest import Manifest, ManifestError, card_problems, read_manifest, write_manifest


class RunManifestError(RegistryError):
    """The run folder's or the committed manifest cannot be used with this data root; str() says why and what to do."""

    exit_code = 2


def manifest_for_run(task, dataset, data_root: Path, task_dir: Path, manifests_dir: Path, resample: bool = False,
                     defer_verify: bool = False) -> Manifest:
    """The run's frozen manifest (see the module docstring). `task`, `dataset`: registry cards.

    defer_verify: the encoder reads no pixels, so a data root without image files is sampled with file checks
    deferred (runner.sample.sampler.sample_task); with the images present they are checked as for any encoder."""
    if (task_dir / "manifest.json").is_file() and not resample:
        try:
            existing = read_manifest(task_dir)
        except ManifestError as exc:
            raise RunManifestError(f"{exc}; delete {task_dir} or pass --resample to sample again") from None
        if existing.meta.get("task_sha256") == task.behaviour_sha256:
            wrong = card_problems(existing, task)
            if wrong:  # the hash holds, so it was made this way: not by this card's sampler
                raise RunManifestError(f"{task_dir / 'manifest.json'} does not sample task {task.id!r} as its card says "
                                       f"({'; '.join(wrong)}); delete it or pass --resample to sample again")
            if existing.meta.get("data_fingerprint") is None:  # a copy of the committed manifest: checked again
                committed = _committed(task, dataset, data_root, task_dir, manifests_dir, defer_verify)
                if committed is not None and committed.meta["sha256"] == existing.meta["sha256"]:
                    return committed
            differs = fingerprint_differences(existing.meta.get("data_fingerprint"), dataset.data, data_root,
                                              existing.frame)
            if differs:
                raise RunManifestError(f"{task_dir / 'manifest.json'} was not sampled from the data under {data_root}: "
                                       f"{differs}. Pass the data root it was sampled from, or --resample to sample "
                                       "again")
            return existing
    if not resample:
        committed = _committed(task, dataset, data_root, task_dir, manifests_dir, defer_verify)
        if committed is not None:
            return committed
    sampled = sample(task.data, dataset.data, data_root, defer_verify_without_images=defer_verify)
    fingerprint = data_fingerprint(dataset.data, data_root, sampled)
    return write_manifest(task_dir, sampled, task.behaviour_sha256, fingerprint=fingerprint)


def _committed(task, dataset, data_root: Path, task_dir: Path, manifests_dir: Path, defer_verify: bool) -> Manifest | None:
    """The task's committed manifest copied into task_dir after checking the data at data_root against it (its
    metadata only for an encoder that reads no pixels); None when the task has none for its card."""
    try:
        return use_committed(task, dataset, data_root, task_dir, manifests_dir, check_files=not defer_verify)
    except (FrozenDataError, ManifestError) as exc:
        raise RunManifestError(str(exc)) from None
