"""The task card's classifier per fold on frozen embeddings -> out-of-fold probabilities: LightGBM (below), or a
scikit-learn probe (logistic regression, kNN: runner.classify.sklearn_probes) when the card's `classifier.type` says so.

Entry: `classify(embeddings, table, classifier_card, eval_folds, augmented=None) -> Classification`
(`classify_many` fits several designs' folds at once; `submit_many` sends them and returns before they are
fitted, for a batch run that plans the next pair meanwhile). The folds' boosters are fitted by
runner.classify.fit_processes: side by side in fit processes when the card allows more than one thread and the
design is large enough to repay it.

No test row shapes the model: LightGBM's feature bin edges are computed per fold from that fold's training rows
only (its originals, then their augmented views); the fold's fit and inner-validation sets are `Dataset.subset`
views of that one binned set, and the test rows are predicted from their raw values. Each fold stops adding trees when
the log-loss on an inner, patient-grouped, stratified validation split of its *training* rows stops improving (the test
fold is never looked at). Augmented views are training rows only, and an image's views always follow the image into
the same inner split, so no image leaks across the early-stopping boundary. `deterministic=True` with a fixed thread
count and seed makes probabilities reproducible run to run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from registry.errors import RegistryError
from registry.specs import classifier_spec
from runner.classify.design import Design
from runner.classify.fit_processes import FitJob, submit_all
from runner.classify.inner_split import InnerSplitCache, first_stratified_group_split
from runner.classify.sklearn_probes import ProbeError
from runner.classify.sklearn_probes import fit_predict as probe_fit_predict

LIGHTGBM_DEFAULT_N_ESTIMATORS = 100  # LightGBM's own default num_iterations


def machine_threads() -> int:
    """LightGBM threads when the card does not set `num_threads`: the one place this is chosen.

    The cores this process may use (its CPU affinity, which containers and `taskset` narrow; os.cpu_count() counts
    the host's). On the loaded 2-core dev machine two threads beat one for the 2000 x 1024, 5-fold classify
    (benchmarks/bench_classify.py --threads 1,2 prints both, with equal AUROC).
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


class ClassifyError(RegistryError, ValueError):
    """Inputs the classifier cannot use; the message says what is wrong."""

    exit_code = 2


@dataclass(frozen=True)
class ClassifierSettings:
    """The task card's `classifier:` block with defaults filled in (registry/schemas/classifier-defs.schema.json)."""

    params: dict
    n_estimators: int
    early_stopping_rounds: int | None
    inner_fraction: float
    min_inner_rows: int  # a smaller inner-validation set is too noisy to choose a tree count from: no early stopping
    augmented_training_rows: bool
    num_threads: int
    seed: int

    @classmethod
    def from_card(cls, card) -> ClassifierSettings:
        """From the task's ClassifierSpec (or a `classifier:` block, whose absent fields take the schema's defaults)."""

        spec = classifier_spec(card)
        if spec.type != "lightgbm":
            raise ClassifyError(f"classifier.type {spec.type!r} is not supported; expected 'lightgbm'")
        # Settings come from the card alone (tasks/_defaults-eval.yaml states them), so the card hash covers them;
        # what a card leaves out falls to LightGBM's own defaults, and no early stopping.
        params = dict(spec.params)
        n_estimators = int(params.pop("n_estimators", LIGHTGBM_DEFAULT_N_ESTIMATORS))
        stopping = spec.early_stopping
        return cls(
            params=params,
            n_estimators=n_estimators,
            early_stopping_rounds=None if stopping is None else int(stopping.rounds),
            inner_fraction=float(stopping.inner_fraction) if stopping else 0.0,
            min_inner_rows=int(stopping.min_inner_rows) if stopping else 0,
            augmented_training_rows=spec.augmented_training_rows,
            num_threads=int(spec.num_threads) or machine_threads(),
            seed=int(spec.seed),
        )

    def lgb_params(self) -> dict:
        return {
            **self.params,
            "objective": "binary",
            "metric": "binary_logloss",
            "num_threads": self.num_threads,
            "seed": self.seed,
            "deterministic": True,
            "force_col_wise": True,  # skips LightGBM's row/col-wise timing probe, which is also non-deterministic
            "feature_pre_filter": False,
            "verbosity": -1,
        }


@dataclass
class FoldFit:
    fold: int
    n_train: int  # original training images (augmented rows not counted)
    n_train_rows: int  # rows the booster saw, augmented views included
    n_test: int
    n_trees: int | None  # None: not a tree model (a scikit-learn probe)
    seconds: float


@dataclass
class Classification:
    predictions: pd.DataFrame  # image_id, patient_id, label, fold, prob (out-of-fold, test rows of eval folds)
    folds: list[FoldFit] = field(default_factory=list)
    seconds: float = 0.0


def classify(
    embeddings: np.ndarray,
    table: pd.DataFrame,
    classifier_card,
    eval_folds: list[int],
    augmented: dict[str, np.ndarray] | None = None,
    allow_missing: bool = False,
) -> Classification:
    """Train one booster per evaluated fold on `fold != f` rows and predict the `fold == f` rows.

    table: image_id, patient_id, label (0/1), fold, aligned row for row with `embeddings`.
    augmented: view id -> embeddings aligned with `table`; used as extra training rows when the card says so.
    allow_missing: NaN is a missing value (the metadata baseline's features), not an error; Infinity still is.
    """
    return classify_many([Design(embeddings, table, eval_folds, augmented, allow_missing)], classifier_card)[0]


def classify_many(designs: list[Design], classifier_card) -> list[Classification]:
    """`classify` for independent designs under one classifier card; all their folds' fits share the card's
    threads at once (runner.classify.fit_processes). Each Classification's `seconds` is the whole call's."""
    return submit_many(designs, classifier_card).collect()


@dataclass
class PendingClassifications:
    """`classify_many` sent to the fitter and not yet read: `collect()` waits for its fits and assembles them."""

    designs: list[Design]
    spec: object  # the card's ClassifierSpec
    planned: list  # one _FoldPlan per design (LightGBM); empty for a scikit-learn probe
    fits: object  # runner.classify.fit_processes.PendingFits, or None for a probe
    started: float

    @property
    def cells(self) -> int:
        """Binned cells held until collected (0 for a probe, which fits at collect time)."""
        return 0 if self.fits is None else self.fits.cells

    def cancel(self) -> None:
        if self.fits is not None:
            self.fits.cancel()

    def collect(self) -> list[Classification]:
        if self.fits is None:
            results = [_classify_with_probe(design, self.spec) for design in self.designs]
        else:
            results = _assemble(self.planned, iter(self.fits.results()))
        for result in results:
            result.seconds = time.perf_counter() - self.started
        return results


def submit_many(designs: list[Design], classifier_card) -> PendingClassifications:
    """Check and plan every design's folds and send their fits off now (runner.classify.fit_processes.submit_all);
    a design the classifier cannot use raises here, before anything is sent."""
    started = time.perf_counter()
    spec = classifier_spec(classifier_card)
    if spec.type != "lightgbm":
        return PendingClassifications(list(designs), spec, [], None, started)
    settings = ClassifierSettings.from_card(classifier_card)
    planned = [_plan_folds(design, settings) for design in designs]
    fits = submit_all([job for design in planned for _, job in design.folds], settings.num_threads)
    return PendingClassifications(list(designs), spec, planned, fits, started)


def pool_threads(classifier_card) -> int:
    """The fit processes the card's LightGBM fits would share (runner.classify.fit_processes.warm_up); 0 for a probe."""
    spec = classifier_spec(classifier_card)
    return ClassifierSettings.from_card(classifier_card).num_threads if spec.type == "lightgbm" else 0


def _assemble(planned: list[_FoldPlan], outcomes) -> list[Classification]:
    """Each design's out-of-fold predictions and fold records from its fits' outcomes, in plan order."""
    results = []
    for design in planned:
        fits, parts = [], []
        for fold, _ in design.folds:
            outcome = next(outcomes)
            test = fold.test
            parts.append(pd.DataFrame({
                "image_id": design.image_ids[test],
                "patient_id": design.groups[test],
                "label": design.labels[test],
                "fold": fold.fold,
                "prob": outcome.prob,
            }))
            fits.append(FoldFit(fold.fold, fold.n_train, fold.n_train_rows, len(test), outcome.n_trees,
                                outcome.seconds))
        predictions = pd.concat(parts, ignore_index=True)
        if not np.isfinite(predictions["prob"]).all():
            raise ClassifyError("LightGBM produced non-finite probabilities")
        results.append(Classification(predictions, fits))
    return results


def _classify_with_probe(design: Design, spec) -> Classification:
    """A scikit-learn probe (runner.classify.sklearn_probes) per evaluated fold, in this process: each fit takes
    milliseconds to a second, far less than starting fit processes would."""
    x, table = _check_inputs(design.embeddings, design.table, design.allow_missing)
    views = list(design.augmented.values()) if (spec.augmented_training_rows and design.augmented) else []
    labels = table["label"].to_numpy(dtype=np.int64)
    folds = table["fold"].to_numpy(dtype=np.int64)
    parts, fits = [], []
    for fold in design.eval_folds:
        test, train = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
        if len(test) == 0 or len(train) == 0:
            raise ClassifyError(f"fold {fold}: {len(train)} training and {len(test)} test images; both must be > 0")
        started = time.perf_counter()
        train_x = np.vstack([x[train], *(v[train] for v in views)])
        try:
            prob = probe_fit_predict(spec, train_x, np.tile(labels[train], 1 + len(views)), x[test])
        except ProbeError as exc:
            raise ClassifyError(f"fold {fold}: {exc}") from None
        parts.append(pd.DataFrame({"image_id": table["image_id"].to_numpy()[test],
                                   "patient_id": table["patient_id"].astype(str).to_numpy()[test],
                                   "label": labels[test], "fold": fold, "prob": prob}))
        fits.append(FoldFit(int(fold), len(train), len(train_x), len(test), None, time.perf_counter() - started))
    predictions = pd.concat(parts, ignore_index=True)
    if not np.isfinite(predictions["prob"]).all():
        raise ClassifyError(f"{spec.type} produced non-finite probabilities")
    return Classification(predictions, fits)


@dataclass(frozen=True)
class _PlannedFold:
    fold: int
    test: np.ndarray  # rows of the design's table
    n_train: int
    n_train_rows: int


@dataclass(frozen=True)
class _FoldPlan:
    """A checked design's per-row columns and one FitJob per evaluated fold."""

    image_ids: np.ndarray
    groups: np.ndarray  # patient ids as strings
    labels: np.ndarray
    folds: list[tuple[_PlannedFold, FitJob]]


def _plan_folds(design: Design, settings: ClassifierSettings) -> _FoldPlan:
    """What each evaluated fold's booster is binned, grown and tested on."""
    x, table = _check_inputs(design.embeddings, design.table, design.allow_missing)
    n = len(table)
    augmented = design.augmented
    views = list(augmented.values()) if (settings.augmented_training_rows and augmented) else []
    for v in views:
        if v.shape != x.shape:
            raise ClassifyError(f"augmented embeddings have shape {v.shape}; originals {x.shape}")
    image_ids = table["image_id"].to_numpy()
    labels = table["label"].to_numpy(dtype=np.int64)
    folds = table["fold"].to_numpy(dtype=np.int64)
    groups = table["patient_id"].astype(str).to_numpy()
    # Rows 0..n-1 are originals, then each augmented view in turn.
    all_x = np.vstack([x, *views]) if views else x
    all_y = np.tile(labels, 1 + len(views))
    params = settings.lgb_params()

    def rows_with_views(image_rows: np.ndarray) -> np.ndarray:
        return np.concatenate([image_rows + k * n for k in range(1 + len(views))])

    planned = []
    for fold in design.eval_folds:
        test = np.flatnonzero(folds == fold)
        train = np.flatnonzero(folds != fold)
        if len(test) == 0 or len(train) == 0:
            raise ClassifyError(f"fold {fold}: {len(train)} training and {len(test)} test images; both must be > 0")
        fit_rows, valid_rows = _inner_split(train, labels, groups, settings, (image_ids, folds), fold)
        # Bin edges from this fold's training rows (and their views) only; positions map all_x rows into them.
        binned_rows = np.sort(rows_with_views(train))
        position = np.full(len(all_x), -1, dtype=np.int64)
        position[binned_rows] = np.arange(len(binned_rows))
        job = FitJob(
            binned_x=all_x[binned_rows], binned_y=all_y[binned_rows],
            fit_positions=np.sort(position[rows_with_views(fit_rows)]),
            valid_positions=None if valid_rows is None else np.sort(position[valid_rows]),
            test_x=x[test], params=params, n_estimators=settings.n_estimators,
            early_stopping_rounds=settings.early_stopping_rounds,
        )
        planned.append((_PlannedFold(int(fold), test, len(train), len(rows_with_views(fit_rows))), job))
    return _FoldPlan(image_ids, groups, labels, planned)


def _check_inputs(embeddings: np.ndarray, table: pd.DataFrame, allow_missing: bool = False
                  ) -> tuple[np.ndarray, pd.DataFrame]:
    missing = [c for c in ("image_id", "patient_id", "label", "fold") if c not in table.columns]
    if missing:
        raise ClassifyError(f"classify: table lacks column(s) {missing}")
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != len(table):
        raise ClassifyError(f"classify: embeddings of shape {x.shape} for {len(table)} table rows")
    if not (np.isfinite(x) | (allow_missing & np.isnan(x))).all():
        raise ClassifyError("classify: embeddings contain " + ("Infinity" if allow_missing else "NaN or Infinity"))
    if not table["label"].isin([0, 1]).all():
        raise ClassifyError("classify: label must be 0 or 1 in every row")
    return x, table.reset_index(drop=True)


INNER_SPLITS = InnerSplitCache()  # per process: every encoder of a task reuses its folds' inner splits


def _inner_split(train: np.ndarray, labels: np.ndarray, groups: np.ndarray, settings: ClassifierSettings,
                 design: tuple[np.ndarray, np.ndarray] | None = None, fold: int = 0):
    """(fit rows, validation rows or None): a patient-grouped, stratified hold-out of the training rows.

    The first fold of StratifiedGroupKFold (runner.classify.inner_split: the same split, faster), cached per design and fold;
    `design` = (image ids, folds) of every row (None: not cached)."""
    if settings.early_stopping_rounds is None:
        return train, None
    n_splits = max(2, round(1 / settings.inner_fraction))
    y = labels[train]
    if min(np.sum(y == 0), np.sum(y == 1)) < n_splits:
        return train, None  # too few of a class to hold some out: fixed n_estimators

    def make():
        fit_idx, valid_idx = first_stratified_group_split(y, groups[train], n_splits, settings.seed)
        if len(valid_idx) < settings.min_inner_rows or len(np.unique(y[valid_idx])) < 2:
            return None
        return fit_idx, valid_idx

    if design is None:
        split = make()
    else:
        image_ids, folds = design
        split = INNER_SPLITS.get_or_make(
            InnerSplitCache.key(image_ids, groups, labels, folds, fold, n_splits, settings.seed, settings.min_inner_rows), make)
    if split is None:
        return train, None
    return train[split[0]], train[split[1]]


def card_fit_predict(classifier_card, allow_missing: bool = False):
    """A `fit_predict(train_X, train_y, test_X, params)` that trains exactly as the task card's classifier does
    (runner.classify.out_of_fold: one booster, the card's settings; `params` is ignored, the card has them), for the analyses
    that refit (transfer, label efficiency). `train_groups` (patient ids) keep a patient's images on one side of
    the inner early-stopping split; without them each row is its own group. Its `many(calls)` fits several
    independent (train_X, train_y, test_X, train_groups) at once, side by side (runner.classify.fit_processes).
    allow_missing: NaN features are missing values (the metadata baseline's), as in `classify`."""

    def design(train_x, train_y, test_x, train_groups=None) -> Design:
        n_train, n_test = len(train_y), len(test_x)
        ids = [f"r{i}" for i in range(n_train + n_test)]
        groups = ids if train_groups is None else [*(str(g) for g in train_groups), *ids[n_train:]]
        table = pd.DataFrame({"image_id": ids, "patient_id": groups,
                              "label": np.concatenate([np.asarray(train_y, dtype=int), np.zeros(n_test, dtype=int)]),
                              "fold": np.r_[np.ones(n_train, dtype=int), np.zeros(n_test, dtype=int)]})
        return Design(np.vstack([train_x, test_x]), table, [0], allow_missing=allow_missing)

    def many(calls) -> list[np.ndarray]:
        fitted = classify_many([design(*call) for call in calls], classifier_card)
        return [f.predictions["prob"].to_numpy() for f in fitted]

    def fit_predict(train_x, train_y, test_x, params=None, train_groups=None) -> np.ndarray:
        return many([(train_x, train_y, test_x, train_groups)])[0]

    fit_predict.accepts_groups = True
    fit_predict.many = many
    return fit_predict
