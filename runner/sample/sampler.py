"""Task card + dataset index -> the sampled, split images of one task (a `SampleResult`, frozen by runner.sample.manifest).

Steps, each counted so a shortfall can say where candidates were lost:
1. label policy (positive / negative / uncertain / blank, optional 'No Finding' negatives),
2. view filter (metadata column; DICOM ViewPosition tag when the metadata has no view),
3. a seeded order per class: stable sort by image_id, then a numpy Generator permutation (same on every platform),
4. the first N of each class whose file passes the check (`verify`: decode | header | none); a failing file is
   recorded as an exclusion and replaced by the next candidate of the same class, so counts stay exact;
   with `sampling.match` the negatives are taken per stratum (view, sex, age band), as many in each as the sampled
   positives have there (`match_counts`), so the control task's negatives look like its positives on those strata,
5. a patient-wise split (StratifiedGroupKFold, as runner.classify.inner_split computes it, or a GroupShuffleSplit
   holdout): no patient on both sides.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

from registry.schemas import fill_defaults
from runner.classify.inner_split import stratified_group_folds
from runner.data import DatasetIndex, read_index
from runner.data.imaging import ImageDecodeError, is_transient, load_image, read_view_position, verify_header
from runner.data.tables import METADATA_PREFIX, OUTSIDE_ROOT, DataError, RootGuard
from runner.runtime.signals import start_owned_worker
from runner.runtime.workers import bounded_workers

VERIFY_MODES = ("decode", "header", "none")
MANIFEST_SOURCE_COLUMNS = ("image_id", "patient_id", "study_id", "path", "view", "sex", "age")  # index columns kept
_INLINE_BELOW = 8  # files; fewer than this are checked in-process (a pool costs more than it saves)


class SamplingError(DataError):
    """Not enough candidates, or a task card the sampler cannot apply. str() is the human message."""


@dataclass
class Exclusion:
    image_id: str
    path: str
    reason: str  # short slug: missing-file, zero-bytes, not-dicom, truncated, view-lateral, ...
    label: int
    detail: str = ""


@dataclass
class FilterStep:
    step: str
    positives: int
    negatives: int


@dataclass
class SampleResult:
    task_id: str
    dataset_id: str
    frame: pd.DataFrame  # manifest rows: image_id, patient_id, study_id, path, view, label, fold, [sex, age]
    split: dict
    eval_folds: list[int]
    seed: int
    verify: str
    steps: list[FilterStep] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)
    sources: dict[str, list[str]] = field(default_factory=dict)
    synthetic: bool = False
    matching: dict | None = None  # sampling.match: strata and per-stratum counts (manifest.json `matching`)
    verify_note: str | None = None  # why files were not checked (verify "deferred")
    label: str = ""  # the task's label id (manifest.json `label`, part of what the manifest hash pins)
    classes: list[str] | None = None  # images sampling with an attribute target: the class of `label` 0, 1, ...


# A data root that holds only the metadata tables (no image files) can still be sampled for an encoder that reads no
# pixels (the metadata baseline). The candidates are then taken in the seeded order without a file check: exactly the
# sample that `verify: decode` gives when no sampled file fails its check. A later image run on the same manifest checks
# every file as it embeds it (a failure is an exclusion "at embedding: ..."); one sampled afresh with the images present
# is the same manifest (same content sha256) unless a file failed, and a floor is compared only on an equal sha256.
DEFERRED_NOTE = ("no image files under the data root: candidates were taken in the seeded order without a file check "
                 "(the metadata baseline reads no pixels); identical to the decode-verified sample unless a sampled file "
                 "fails its check, which then changes the manifest sha256")


# ------------------------------------------------------------------------------------------------ label policy


def apply_label_policy(values: pd.Series, policy: dict, requires: pd.Series | None = None) -> pd.Series:
    """Label values (1.0 / 0.0 / -1.0 / NaN) -> class 1.0 / 0.0, NaN where the image is not a candidate."""
    positive = values.isin(policy["positive"])
    negative = values.isin(policy["negative"])
    overlap = set(policy["positive"]) & set(policy["negative"])
    if overlap:
        raise SamplingError(f"label_policy: value(s) {sorted(overlap)} are both positive and negative")
    uncertain = values == -1.0
    if policy["uncertain"] == "positive":
        positive |= uncertain
    elif policy["uncertain"] == "negative":
        negative |= uncertain & ~positive
    if policy["blank"] == "negative":
        negative |= values.isna()
    if requires is not None:  # 'No Finding' negatives: the image must also be positive for that label
        negative &= requires == 1.0
    cls = pd.Series(np.nan, index=values.index)
    cls[negative & ~positive] = 0.0
    cls[positive] = 1.0
    return cls


def seeded_order(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Stable sort by image_id (independent of file order), then a seeded permutation."""
    return frame.iloc[seeded_positions(frame, rng)]


def seeded_positions(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """seeded_order as row positions into `frame` (`frame.iloc[them]` is seeded_order's frame): the order from the
    image_id column alone, so that only the rows taken are copied, not every candidate's columns."""
    by_id = frame["image_id"].reset_index(drop=True).sort_values(kind="mergesort").index.to_numpy()
    return by_id[rng.permutation(len(frame))]


# ------------------------------------------------------------------------------------------------ file checks


def check_file(root: str, rel_path: str, verify: str, views: tuple[str, ...] | None,
               max_pixels: int | None = None) -> tuple[str, str, str]:
    """(reason, detail, view) for one file; reason "" means it may be used. Runs in a worker process.

    `views` is given when the metadata has no view column: the DICOM ViewPosition tag decides. `max_pixels` is the
    dataset card's decompression-bomb bound. A path the file system cannot take (a NUL byte) is an exclusion; a
    transient error (out of memory, EIO, a timeout) stops sampling instead, since it says nothing about the file.
    """

    if "\x00" in rel_path or not rel_path.strip():
        return "invalid-path", "the metadata names an invalid path (NUL byte or blank)", ""
    if RootGuard(root).outside(rel_path):
        return OUTSIDE_ROOT, "a symbolic link on the way to the file leads outside the data root", ""
    path = Path(root) / rel_path
    view = ""
    try:
        if views is not None:
            view = read_view_position(path)
            if view not in views:
                return f"view-{(view or 'unknown').lower()}", "DICOM ViewPosition not in the task's views", view
        if verify == "decode":
            load_image(path, max_pixels=max_pixels)
        elif verify == "header":
            verify_header(path)  # header parses and the pixel data is all there, without decoding it
    except ImageDecodeError as exc:
        return exc.reason, exc.detail, view
    except Exception as exc:  # noqa: BLE001 - a decoder bug must not end a 2,000-file run; it is recorded like any failure
        if is_transient(exc):
            raise SamplingError(f"{rel_path}: transient error while checking the file ({type(exc).__name__}: "
                                f"{str(exc)[:200]}); nothing was frozen, run again") from None
        return "decode-failed", f"{type(exc).__name__}: {exc}"[:300], view
    return "", "", view


class FileChecker:
    """Checks batches of files, in a small process pool when there are enough of them."""

    def __init__(self, root: Path, verify: str, views: tuple[str, ...] | None, workers: int,
                 max_pixels: int | None = None):
        self.root, self.verify, self.views, self.workers = str(root), verify, views, workers
        self.max_pixels = max_pixels
        self.pool: ProcessPoolExecutor | None = None

    def __call__(self, paths: list[str]) -> list[tuple[str, str, str]]:
        if self.verify in ("none", "deferred") and self.views is None:
            return [("", "", "")] * len(paths)
        args = [(self.root, p, self.verify, self.views, self.max_pixels) for p in paths]
        if self.workers <= 1 or len(paths) < _INLINE_BELOW:
            return [check_file(*a) for a in args]
        if self.pool is None:
            # The processes are forked from this one: pydicom imported here first is imported once, not once in
            # each of them (~0.5 CPU-s apiece); the run needs it here anyway to embed.
            import pydicom  # noqa: F401

            # The first batch is the largest (the ones after it replace failures): one process per file at most.
            self.pool = ProcessPoolExecutor(max_workers=max(bounded_workers(self.workers, len(paths)), 1),
                                            initializer=start_owned_worker, initargs=(os.getpid(),))
        return list(self.pool.map(check_file, *zip(*args), chunksize=max(1, len(args) // (4 * self.workers))))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def take_verified(ordered: pd.DataFrame, n: int, label: int, check: FileChecker,
                  order: np.ndarray | None = None) -> tuple[pd.DataFrame, list[Exclusion]]:
    """The first `n` rows of `ordered` whose file passes `check`; failures before the n-th are exclusions.
    `order` (positions into `ordered`, e.g. seeded_positions) is the order to try them in; default: as they stand.

    More than max(100, n) failures means something is wrong with the data root, not with a few files: stop early.
    """
    limit = max(100, n)
    order = np.arange(len(ordered)) if order is None else np.asarray(order)
    all_ids, all_paths = ordered["image_id"], ordered["path"]
    taken: list[int] = []
    views: dict[int, str] = {}
    exclusions: list[Exclusion] = []
    position = 0
    while len(taken) < n and position < len(order):
        batch = order[position: position + n - len(taken)]
        position += len(batch)
        # columns, not a pandas row per file; only this batch's cells are taken
        ids, paths = all_ids.iloc[batch].to_numpy(), all_paths.iloc[batch].to_numpy()
        for row, (reason, detail, view) in enumerate(check(list(paths))):
            if reason:
                exclusions.append(Exclusion(str(ids[row]), str(paths[row]), reason, label, detail))
            else:
                taken.append(position - len(batch) + row)
                views[len(taken) - 1] = view
        if len(exclusions) > limit:
            reasons = pd.Series([e.reason for e in exclusions]).value_counts()
            raise SamplingError(
                f"{len(exclusions)} of {position} {'positive' if label else 'negative'} candidates checked could not be "
                f"used ({', '.join(f'{c} {r}' for r, c in reasons.items())}; e.g. {exclusions[0].path}: "
                f"{exclusions[0].detail}). Is the data root right? (--verify none samples from metadata alone)")
    chosen = ordered.iloc[order[taken]].copy()
    if check.views is not None:
        chosen["view"] = [views[i] for i in range(len(taken))]
    return chosen, exclusions


# ------------------------------------------------------------------------------------------------ splits


def eval_folds_of(split: dict) -> list[int]:
    """The folds a result is evaluated on: every test fold of a k-fold split, the test side (0) of a holdout."""
    return list(range(int(split["folds"]))) if split["method"] == "stratified-group-kfold" else [0]


def split_folds(strata: np.ndarray, groups: np.ndarray, split: dict) -> tuple[np.ndarray, list[int]]:
    """Fold per row from the card's split, with patients (`groups`) whole in one fold: k-fold stratified by `strata`
    (test fold 0..k-1), or a seeded patient holdout (0 = test, 1 = train); and the folds to evaluate. The callers
    check first that the sample can be split."""
    if split["method"] == "stratified-group-kfold":
        # scikit-learn's StratifiedGroupKFold(k, shuffle=True, random_state=seed), fold for fold, faster (and it does
        # not warn about a stratum with fewer members than folds)
        return stratified_group_folds(strata, groups, split["folds"], split["seed"]).astype(np.int64), \
            eval_folds_of(split)
    if split["method"] == "group-holdout":
        # imported here: scikit-learn costs a run ~1.4 CPU-s to import, and k-fold needs none of it
        from sklearn.model_selection import GroupShuffleSplit

        splitter = GroupShuffleSplit(n_splits=1, test_size=split["test_fraction"], random_state=split["seed"])
        _train, test = next(splitter.split(np.zeros(len(groups)), strata, groups))
        folds = np.ones(len(groups), dtype=np.int64)
        folds[test] = 0
        return folds, [0]
    raise SamplingError(f"split.method {split['method']!r} unknown (stratified-group-kfold or group-holdout)")


def assign_folds(frame: pd.DataFrame, split: dict) -> tuple[np.ndarray, list[int]]:
    """Fold per row (k-fold: test fold 0..k-1; holdout: 0 = test, 1 = train) and the folds to evaluate, stratified by
    the label; each fold, and each side of a holdout, must hold both classes."""
    labels, groups = frame["label"].to_numpy(), frame["patient_id"].to_numpy()
    if split["method"] == "stratified-group-kfold":
        k = split["folds"]
        n_patients = {c: frame.loc[frame["label"] == c, "patient_id"].nunique() for c in (0, 1)}
        if min(n_patients.values()) < k:
            raise SamplingError(f"split: {k} folds need at least {k} patients per class; "
                                f"have {n_patients[1]} with positives and {n_patients[0]} with negatives")
    folds, eval_folds = split_folds(labels, groups, split)
    if split["method"] == "group-holdout" and (len(set(labels[folds == 0])) < 2 or len(set(labels[folds == 1])) < 2):
        raise SamplingError("split: the patient holdout left one side with a single class; "
                            "use more images or another split.seed")
    return folds, eval_folds


# ------------------------------------------------------------------------------------------------ matching


def match_with_defaults(match: dict) -> dict:
    """The card's `sampling.match` with the schema's defaults (the age bands) filled in: they are stated only there."""
    return fill_defaults("data-defs", match, "match")


def stratum_keys(frame: pd.DataFrame, match: dict) -> pd.Series:
    """One text key per row over the card's `sampling.match.strata` ("view=AP|sex=F|age_band=40-60"); a missing
    value is "?", a stratum of its own."""
    match = match_with_defaults(match)
    parts = []
    for name in match["strata"]:
        if name == "age_band":
            edges = [float(e) for e in match["age_bands"]]
            if any(b <= a for a, b in pairwise(edges)):
                raise SamplingError(f"sampling.match.age_bands must increase, got {edges}")
            if "age" not in frame.columns:
                raise SamplingError("sampling.match names age_band, but the dataset card maps no age column")
            labels = [f"{edges[i]:g}-{edges[i + 1]:g}" for i in range(len(edges) - 1)]
            values = pd.cut(frame["age"], edges, right=False, labels=labels).astype(object)
        else:
            if name not in frame.columns:
                raise SamplingError(f"sampling.match names {name!r}, but the dataset card maps no {name} column")
            values = frame[name].astype(object).where(frame[name].notna() & (frame[name].astype(str) != ""), None)
        parts.append(name + "=" + values.where(values.notna(), "?").astype(str))
    key = parts[0]
    for part in parts[1:]:
        key = key + "|" + part
    return key


def match_counts(positive_keys: pd.Series, n_negatives: int) -> dict[str, int]:
    """Negatives wanted per stratum: the positives' counts, rescaled to n_negatives by largest remainder."""
    counts = positive_keys.value_counts().sort_index()
    quota = counts / counts.sum() * n_negatives
    wanted = np.floor(quota).astype(int)
    remainder = (quota - wanted).sort_values(ascending=False, kind="mergesort")
    for key in remainder.index[: n_negatives - int(wanted.sum())]:
        wanted[key] += 1
    return {str(k): int(v) for k, v in wanted.items() if v > 0}


def _take_matched(negatives: pd.DataFrame, positives: pd.DataFrame, n: int, match: dict, rng: np.random.Generator,
                  check: FileChecker, task_id: str) -> tuple[pd.DataFrame, list[Exclusion], dict]:
    """The negatives of a matched sample, stratum by stratum (sorted), each in its own seeded order."""
    match = match_with_defaults(match)
    keys, positive_keys = stratum_keys(negatives, match), stratum_keys(positives, match)
    wanted = match_counts(positive_keys, n)
    chosen, exclusions, per_stratum = [], [], {}
    for key, count in sorted(wanted.items()):
        pool = negatives[keys == key]
        rows, excluded = take_verified(pool, count, 0, check, seeded_positions(pool, rng))
        per_stratum[key] = {"positives": int((positive_keys == key).sum()),
                            "negatives": len(rows), "negative_candidates": len(pool)}
        if len(rows) < count:
            raise SamplingError(f"task {task_id!r}: matched sampling needs {count} negatives in stratum {key} "
                                f"(as many as the positives there) but only {len(rows)} of {len(pool)} candidates "
                                "could be used; loosen sampling.match or sample fewer images")
        chosen.append(rows)
        exclusions += excluded
    info = {"strata": list(match["strata"]), "per_stratum": per_stratum,
            **({"age_bands": match["age_bands"]} if "age_band" in match["strata"] else {})}
    return pd.concat(chosen) if chosen else negatives.iloc[:0], exclusions, info


# ------------------------------------------------------------------------------------------------ entry point


def _shortfall(task: dict, steps: list[FilterStep], exclusions: list[Exclusion], want: dict[int, int]) -> str:
    trail = "; ".join(f"{s.step}: {s.positives:,} positives / {s.negatives:,} negatives" for s in steps)
    reasons = pd.Series([e.reason for e in exclusions], dtype=object).value_counts()
    excluded = ", ".join(f"{n} {r}" for r, n in reasons.items()) or "none"
    return (f"task {task['id']!r}: not enough candidates for {want[1]:,} positives and {want[0]:,} negatives. "
            f"Remaining after each filter — {trail}. Files excluded: {excluded}.")


def file_checks(index, frame: pd.DataFrame, views: tuple[str, ...], verify: str, dataset_card: dict, data_root: Path,
                workers: int, defer_verify_without_images: bool) -> tuple[pd.DataFrame, str, str | None, FileChecker]:
    """How a task's candidates are checked, shared by every sampler: (the candidates in the task's views where the
    index knows them, the verify mode, its note, the FileChecker). Without a view column the DICOM ViewPosition tag is
    read for each candidate as it is checked. `defer_verify_without_images`: a data root with no image files samples
    without file checks, verify "deferred" (DEFERRED_NOTE), instead of stopping."""
    header_views = None
    if index.views_known:
        frame = frame[frame["view"].isin(views)]
    else:
        header_views = views
    note = None
    if verify != "none" and defer_verify_without_images and header_views is None and \
            no_image_files(index, frame, Path(data_root)):
        verify, note = "deferred", DEFERRED_NOTE
    if verify not in ("none", "deferred") and index.files_found == 0:
        raise SamplingError(f"no image files found under {index.data_root} for dataset {index.dataset_id!r} "
                            f"(looked in {', '.join(dataset_card.get('files', {}).get('image_dirs', ['.']))}). "
                            f"How to get the data set: {dataset_card.get('access')} "
                            "(or sample from metadata alone with --verify none)")
    max_pixels = int(float(dataset_card.get("max_image_megapixels", 50)) * 1_000_000)
    return frame, verify, note, FileChecker(Path(data_root), verify, header_views, workers, max_pixels)


def sample_task(task: dict, dataset_card: dict, data_root: Path, *, seed: int | None = None,
                verify: str | None = None, workers: int | None = None, index: DatasetIndex | None = None,
                defer_verify_without_images: bool = False) -> SampleResult:
    """Sample and split one task. `seed` overrides sampling.seed and split.seed; `verify` overrides sampling.verify.

    defer_verify_without_images: when the data root holds no image files, sample without file checks and record
    verify "deferred" (see DEFERRED_NOTE) instead of stopping; for encoders that read no pixels."""
    sampling, policy, split = dict(task["sampling"]), task["label_policy"], dict(task["split"])
    if seed is not None:
        sampling["seed"] = split["seed"] = seed
    verify = verify or sampling.get("verify", "decode")
    if verify not in VERIFY_MODES:
        raise SamplingError(f"verify {verify!r} unknown (one of {', '.join(VERIFY_MODES)})")
    label_id, requires = task["label"]["id"], policy.get("negative_requires")
    if index is None:
        index = read_index(dataset_card, data_root, [label_id] + ([requires] if requires else []))
    frame = index.frame
    if label_id not in frame.columns or (requires and requires not in frame.columns):
        raise SamplingError(f"dataset {index.dataset_id!r} index has no {label_id!r} label column")
    # only the columns sampling reads or the manifest keeps (an index holds every label of the data set): each filter
    # below then copies those alone
    match = sampling.get("match")
    read = {*MANIFEST_SOURCE_COLUMNS, label_id, requires, *(match_with_defaults(match)["strata"] if match else [])}
    frame = frame[[c for c in frame.columns if c in read or str(c).startswith(METADATA_PREFIX)]]

    frame = frame.assign(label=apply_label_policy(frame[label_id], policy, frame[requires] if requires else None))
    steps = [FilterStep(f"indexed ({label_id} = 1 / 0)", int((frame[label_id] == 1.0).sum()),
                        int((frame[label_id] == 0.0).sum()))]
    frame = frame[frame["label"].notna()]
    counts = lambda f, step: FilterStep(step, int((f["label"] == 1).sum()), int((f["label"] == 0).sum()))
    steps.append(counts(frame, "label policy"))
    views = tuple(task["views"])
    frame, verify, verify_note, checker = file_checks(index, frame, views, verify, dataset_card, data_root,
                                                      workers or sampling.get("verify_workers", 2),
                                                      defer_verify_without_images)
    if index.views_known:
        steps.append(counts(frame, f"view in {'/'.join(views)}"))

    want = {1: sampling["positives"], 0: sampling["negatives"]}
    if any(int((frame["label"] == c).sum()) < want[c] for c in (0, 1)):
        raise SamplingError(_shortfall(task, steps, [], want))
    rng = np.random.default_rng(sampling["seed"])
    chosen, exclusions, matching = [], [], None
    try:
        for cls in (1, 0):
            if cls == 0 and match:
                rows, excluded, matching = _take_matched(frame[frame["label"] == 0], chosen[0], want[0], match, rng,
                                                         checker, task["id"])
            else:
                candidates = frame[frame["label"] == cls]
                rows, excluded = take_verified(candidates, want[cls], cls, checker, seeded_positions(candidates, rng))
            chosen.append(rows)
            exclusions += excluded
    finally:
        checker.close()
    picked = pd.concat(chosen)
    steps.append(counts(picked, f"sampled after file checks ({verify})"))
    if any(int((picked["label"] == c).sum()) < want[c] for c in (0, 1)):
        raise SamplingError(_shortfall(task, steps, exclusions, want))

    picked = picked.sort_values("image_id", kind="mergesort").reset_index(drop=True)
    picked["label"] = picked["label"].astype("int64")
    picked["fold"], eval_folds = assign_folds(picked, split)
    columns = ["image_id", "patient_id", "study_id", "path", "view", "label", "fold"]
    columns += [c for c in ("sex", "age") if c in picked.columns]  # (MANIFEST_SOURCE_COLUMNS: the index's of these)
    columns += [c for c in picked.columns if c.startswith(METADATA_PREFIX)]  # the metadata features, frozen too
    return SampleResult(task["id"], index.dataset_id, picked[columns], split, eval_folds, sampling["seed"], verify,
                        steps, exclusions, index.sources, bool(dataset_card.get("synthetic", False)), matching,
                        verify_note, task["label"]["id"])


def no_image_files(index: DatasetIndex, frame: pd.DataFrame, root: Path, probe: int = 32) -> bool:
    """True when the data root holds none of the candidates' files (a reader that does not scan: probe some)."""
    if index.files_found is not None:
        return index.files_found == 0
    return not any((root / p).is_file() for p in frame["path"].head(probe))
