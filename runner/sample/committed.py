"""Frozen manifests committed to the registry, for every task whose metadata ships here.

`python -m runner.sample.committed` samples each such task from the metadata a package ships (the dataset card's
`fallback_package`: torchxrayvision's copies of the NIH, CheXpert, PadChest, RSNA and VinDr tables), writes
`manifests/<task>/<sha256>/manifest.{parquet,json}` + `exclusions.csv` with runner.sample.manifest.write_manifest
into the registry's content-addressed store (runner.sample.store), and `manifests/index.json` (task -> content
sha256). `--check` re-samples and compares instead of writing (exit 1 when a
committed manifest is stale or differs). The comparison: the canonical-content sha256 (rows, labels, folds),
manifest.json without `created_at`, and manifest.parquet + exclusions.csv byte for byte (parquet bytes carry
pyarrow's version, not pandas': runner.sample.manifest.parquet_bytes; a pyarrow upgrade asks for a refreeze even when
the content is the same). MIMIC tasks are not frozen: their metadata is credentialed, so they are sampled at run time.

Without the images the sampler cannot open files, so committed manifests say `verify: "none"`: file checks are
deferred to `runner eval`, which checks the user's data against the committed manifest (`use_committed`) and records
files that fail to decode as exclusions at embedding.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from registry.cards import load_registry
from registry.errors import CardError
from runner.data import read_index
from runner.data.tables import DataError
from runner.runtime.atomic import atomic_write_bytes
from runner.sample.draw import labels_of, read_labels, sample
from runner.sample.manifest import ManifestError, card_problems, read_manifest, write_manifest
from runner.sample.store import committed_folder, store_manifest

VOLATILE_KEYS = ("created_at",)  # manifest.json keys that differ between two identical samplings
BYTE_EQUAL = ("manifest.parquet", "exclusions.csv")  # reproduced byte for byte (given the same pyarrow)


class FrozenDataError(Exception):
    """The user's data does not match a committed manifest. str() is the one-line human message."""


@dataclass
class Frozen:
    task_id: str
    sha256: str
    n_images: int
    folder: Path


def freezable(reg) -> tuple[list, dict[str, str]]:
    """(task cards whose every table ships in a package, {task id: why it is sampled at run time instead})."""
    chosen, skipped = [], {}
    for task_id in sorted(reg.tasks):
        task = reg.tasks[task_id]
        dataset = reg.datasets[task.data["dataset"]].data
        reason = _why_not_frozen(task.data, dataset)
        if reason:
            skipped[task_id] = reason
        else:
            chosen.append(task)
    return chosen, skipped


def _why_not_frozen(task: dict, dataset: dict) -> str:
    if dataset.get("synthetic"):
        return "synthetic data made by code (runner demo-data)"
    shipped = set((dataset.get("fallback_package") or {}).get("tables", []))
    if not shipped:
        return f"dataset {dataset['id']!r} ships no metadata (e.g. credentialed): sampled at run time"
    needed = {"metadata"} | {dataset["labels"][label].get("table", "metadata") for label in read_labels(task)}
    if not needed <= shipped:
        return f"table(s) {', '.join(sorted(needed - shipped))} of {dataset['id']!r} do not ship: sampled at run time"
    return ""


def _portable_sources(sources: dict[str, list[str]], dataset: dict) -> dict[str, list[str]]:
    """Absolute paths into site-packages -> '<package>/<folder>/<file>', the same on every machine."""
    package = dataset["fallback_package"]
    out = {}
    for table, files in sources.items():
        names = []
        for file in files:
            path = Path(file)
            if path.parent.name != package["folder"] or path.parent.parent.name != package["name"]:
                raise FrozenDataError(f"{dataset['id']}: table {table} came from {file}, not from the "
                                      f"{package['name']} package; a committed manifest must come from shipped metadata")
            names.append(f"{package['name']}/{package['folder']}/{path.name}")
        out[table] = names
    return out


def sample_frozen(tasks: list, reg, all_frozen: list | None = None):
    """task id -> SampleResult, sampled from shipped metadata only (an empty data root), one index read per dataset.

    The index is read with the labels of every frozen task of the dataset (`all_frozen`, default `tasks`), so a
    manifest records the same `sources` whether its task is frozen alone or with all the others."""

    results = {}
    by_dataset: dict[str, list] = {}
    for task in tasks:
        by_dataset.setdefault(task.data["dataset"], []).append(task)
    with tempfile.TemporaryDirectory(prefix="cxr-freeze-") as empty:
        for dataset_id, group in by_dataset.items():
            dataset = reg.datasets[dataset_id].data
            labels = [label for task in (all_frozen or tasks) if task.data["dataset"] == dataset_id
                      for label in read_labels(task.data)]
            index = read_index(dataset, Path(empty), list(dict.fromkeys(labels)))
            for task in group:
                result = sample(task.data, dataset, Path(empty), verify="none", index=index)
                result.sources = _portable_sources(result.sources, dataset)
                results[task.id] = result
    return results


def _comparable(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in VOLATILE_KEYS}


def freeze(reg, task_ids: list[str] | None = None, check: bool = False) -> tuple[list[Frozen], list[str]]:
    """Write (or, with check, compare) the committed manifests. Returns (frozen, problems)."""

    tasks, _skipped = freezable(reg)
    all_frozen = tasks
    if task_ids:
        unknown = [t for t in task_ids if t not in {c.id for c in tasks}]
        if unknown:
            raise FrozenDataError(f"task {unknown[0]!r} is not frozen ({_skipped.get(unknown[0], 'unknown task')})")
        tasks = [t for t in tasks if t.id in task_ids]
    root = reg.home.manifests_dir
    frozen, problems = [], []
    for task_id, result in sample_frozen(tasks, reg, all_frozen).items():
        task = reg.tasks[task_id]
        if not check:
            with tempfile.TemporaryDirectory(prefix="cxr-freeze-") as scratch:
                manifest = write_manifest(Path(scratch), result, task.behaviour_sha256)
                folder = store_manifest(root, task_id, manifest.meta["sha256"], Path(scratch))
            frozen.append(Frozen(task_id, manifest.meta["sha256"], manifest.meta["n_images"], folder))
            continue
        folder = committed_folder(root, task_id)
        if folder is None:
            problems.append(f"{task_id}: no committed manifest in {root} (index.json names none, or its folder is "
                            "missing); rerun `python -m runner.sample.committed`")
            continue
        try:
            committed = read_manifest(folder)
        except ManifestError as exc:
            problems.append(f"{task_id}: {exc}")
            continue
        with tempfile.TemporaryDirectory(prefix="cxr-freeze-check-") as scratch:
            fresh = write_manifest(Path(scratch), result, task.behaviour_sha256)
            differ = [name for name in BYTE_EQUAL if (Path(scratch) / name).read_bytes() != (folder / name).read_bytes()]
        if fresh.meta["sha256"] != committed.meta["sha256"]:
            problems.append(f"{task_id}: re-sampled rows hash to {fresh.meta['sha256'][:12]}…, the committed manifest "
                            f"to {committed.meta['sha256'][:12]}…")
        elif _comparable(fresh.meta) != _comparable(committed.meta):
            keys = sorted(k for k in set(fresh.meta) | set(committed.meta) if k not in VOLATILE_KEYS
                          and fresh.meta.get(k) != committed.meta.get(k))
            problems.append(f"{task_id}: manifest.json differs in {', '.join(keys)} (task card changed? rerun "
                            "`python -m runner.sample.committed`)")
        elif differ:  # same content, other bytes: the parquet writer changed (pyarrow version); refreeze
            problems.append(f"{task_id}: {', '.join(differ)} differ byte for byte from a fresh write (same content); "
                            "rerun `python -m runner.sample.committed` with this environment")
        frozen.append(Frozen(task_id, committed.meta["sha256"], committed.meta["n_images"], folder))
    if not check and not task_ids:
        _write_index(root, frozen, _skipped)
    elif not check:  # some tasks refrozen: keep the others' index entries
        _update_index(root, frozen)
    elif check and not task_ids:
        problems += _index_problems(root, frozen)
    return frozen, problems


def _index_entries(frozen: list[Frozen]) -> dict:
    return {f.task_id: {"sha256": f.sha256, "n_images": f.n_images} for f in sorted(frozen, key=lambda f: f.task_id)}


def _write_index(root: Path, frozen: list[Frozen], skipped: dict[str, str]) -> None:

    kept = {f.task_id: f.folder.name for f in frozen}
    for folder in root.iterdir() if root.is_dir() else []:  # a task no longer frozen, or an older sample, goes
        if folder.is_dir() and folder.name not in kept:
            shutil.rmtree(folder)
        elif folder.is_dir():
            for sample in folder.iterdir():
                if sample.is_dir() and sample.name != kept[folder.name]:
                    shutil.rmtree(sample)
    index = {"generated_by": "python -m runner.sample.committed", "manifests": _index_entries(frozen),
             "sampled_at_run_time": dict(sorted(skipped.items()))}
    atomic_write_bytes(root / "index.json", (json.dumps(index, indent=2) + "\n").encode("utf-8"))


def _update_index(root: Path, frozen: list[Frozen]) -> None:

    path = root / "index.json"
    index = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"manifests": {}}
    index["manifests"] = dict(sorted({**index.get("manifests", {}), **_index_entries(frozen)}.items()))
    atomic_write_bytes(path, (json.dumps(index, indent=2) + "\n").encode("utf-8"))


def _index_problems(root: Path, frozen: list[Frozen]) -> list[str]:
    try:
        index = json.loads((root / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{root / 'index.json'}: {exc}"]
    if index.get("manifests") != _index_entries(frozen):
        return [f"{root / 'index.json'} does not list the committed manifests; rerun `python -m runner.sample.committed`"]
    kept = {f.task_id: f.folder.name for f in frozen}
    extra = sorted(str(sample.relative_to(root)) for task in root.iterdir() if task.is_dir()
                   for sample in ([task] if task.name not in kept else
                                  [s for s in task.iterdir() if s.is_dir() and s.name != kept[task.name]]))
    return [f"{root}/{name}: a manifest the index does not name (not frozen, or an older sample)" for name in extra]


# ------------------------------------------------------------------------------------------------ runner eval


def use_committed(task, dataset, data_root: Path, task_dir: Path, manifests_dir: Path, check_files: bool = True):
    """The committed manifest copied into task_dir after checking the user's data against it; None when the task
    has no committed manifest for its current card (then the caller samples at run time).

    Checked: every manifest file exists under data_root and is not empty, and the user's metadata (read as the
    dataset card says; the package's copy when the data root has none) has each image with the same patient, path,
    view and class under the task's label policy. Any difference is a FrozenDataError counting each kind.
    """

    folder = committed_folder(manifests_dir, task.id)
    if folder is None:
        return None
    committed = read_manifest(folder)
    if committed.meta.get("task_sha256") != task.behaviour_sha256:
        return None  # the card changed since freezing: sample at run time (the CI check flags the stale manifest)
    wrong = card_problems(committed, task)
    if wrong:
        raise FrozenDataError(f"{task.id}: the committed manifest {folder} does not sample the task as its card says "
                              f"({'; '.join(wrong)}); rerun `python -m runner.sample.committed {task.id}`")
    problems = check_data(committed.frame, task.data, dataset.data, Path(data_root), check_files=check_files)
    if problems:
        raise FrozenDataError(f"{task.id}: the data under {data_root} does not match the committed manifest "
                              f"{folder} (sha256 {committed.meta['sha256'][:12]}…): {'; '.join(problems)}. Fix the "
                              "data root, or sample from your own data with `runner eval --resample`")
    task_dir.mkdir(parents=True, exist_ok=True)
    for name in ("manifest.parquet", "manifest.json", "exclusions.csv"):
        if (folder / name).is_file():
            shutil.copyfile(folder / name, task_dir / name)
    return read_manifest(task_dir)


def check_data(frame: pd.DataFrame, task: dict, dataset: dict, data_root: Path, examples: int = 3,
               check_files: bool = True) -> list[str]:
    """What differs between a manifest and the data at data_root: missing/empty files (unless `check_files` is off:
    an encoder that reads no pixels needs only the metadata), rows whose metadata changed."""

    problems = []
    sizes = [(data_root / p).stat().st_size if (data_root / p).is_file() else None for p in frame["path"]] \
        if check_files else [1] * len(frame)
    missing = [p for p, s in zip(frame["path"], sizes) if s is None]
    empty = [p for p, s in zip(frame["path"], sizes) if s == 0]
    n = len(frame)
    if missing:
        problems.append(f"{len(missing)} of {n} files missing (e.g. {', '.join(missing[:examples])})")
    if empty:
        problems.append(f"{len(empty)} of {n} files empty (e.g. {', '.join(empty[:examples])})")
    try:
        index = read_index(dataset, data_root, read_labels(task)).frame
    except DataError as exc:
        return problems + [f"its metadata cannot be read ({exc})"]
    index = index.set_index("image_id")
    present = frame["image_id"].isin(index.index)
    if not present.all():
        gone = frame.loc[~present, "image_id"].tolist()
        problems.append(f"{len(gone)} of {n} images absent from its metadata (e.g. {', '.join(gone[:examples])})")
    rows = index.loc[frame.loc[present, "image_id"]]
    mine = frame[present].set_index("image_id")
    changed = pd.Series(False, index=mine.index)
    for column in ("patient_id", "view"):
        changed |= rows[column].astype(str).to_numpy() != mine[column].astype(str).to_numpy()
    for column, values in labels_of(task, rows).items():  # NaN (no longer a candidate) differs too
        theirs, ours = values.to_numpy(dtype=float), mine[column].to_numpy(dtype=float)
        changed |= ~((theirs == ours) | (np.isnan(theirs) & np.isnan(ours)))
    if changed.any():
        ids = changed[changed].index.tolist()
        problems.append(f"{len(ids)} of {n} images changed in its metadata (patient, view or label; e.g. "
                        f"{', '.join(ids[:examples])})")
    moved = rows["path"].astype(str).to_numpy() != mine["path"].astype(str).to_numpy()
    if moved.any():  # e.g. NIH's Kaggle copy (images_001/images/) where the manifest has the official images/
        pairs = [f"{a} -> {b}" for a, b in zip(mine["path"][moved][:examples], rows["path"][moved][:examples])]
        problems.append(f"{int(moved.sum())} of {n} images lie at another path in this data root's layout "
                        f"(e.g. {', '.join(pairs)})")
    return problems


# ------------------------------------------------------------------------------------------------ CLI


def main(argv: list[str] | None = None) -> int:
    """python -m runner.sample.committed [--check] [TASK ...]: write (or check) the committed manifests."""

    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    task_ids = [a for a in argv if not a.startswith("-")]
    try:
        reg = load_registry()
        frozen, problems = freeze(reg, task_ids or None, check=check)
    except (CardError, DataError, FrozenDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for item in frozen:
        print(f"{item.task_id:<28} {item.n_images:>6} images  sha256 {item.sha256[:16]}  {item.folder}")
    for problem in problems:
        print(f"STALE {problem}", file=sys.stderr)
    if check:
        print(f"{len(frozen) - len(problems)} of {len(frozen)} committed manifests reproduced"
              if not problems else f"{len(problems)} problem(s)", file=sys.stderr if problems else sys.stdout)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
