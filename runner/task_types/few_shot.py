"""Few-shot probes (MIEB's 16 per class x 5 repeats, BenchX's 1 / 10 / 100 %): the task card's classifier trained on
`n` images per class drawn from each training fold, scored on the untouched test fold.

For each evaluated fold f, each n of `few_shot.shots` and each seed of `few_shot.seeds`: n positives and n negatives
are drawn without replacement from the training rows (fold != f) with numpy.random.default_rng([seed, f, n]) over the
rows in manifest order, the classifier is fitted on them alone (runner.classify.out_of_fold: LightGBM, logistic
regression or kNN; each training image is its own group), and the test fold's AUROC is computed. A fold's value at n
is the mean over the seeds; `auroc_at_<n>` is the mean over the folds with the across-fold t-interval. A fold whose
training rows hold fewer than n of a class has no value at n (details say which). The same draws in the registry's
regeneration: every draw depends on the seed, the fold and n alone.
"""

from __future__ import annotations

import numpy as np

from registry.errors import RegistryError
from runner.classify.out_of_fold import card_fit_predict
from runner.metrics.summary import fold_metric
from runner.task_types import ScoreInputs, Scores, TaskType, TaskTypeError


def draw(labels: np.ndarray, train: np.ndarray, n: int, seed: int, fold: int, shots: int) -> np.ndarray | None:
    """Rows (indices into `labels`) of n per class drawn from `train`; None when a class has fewer than n there."""
    rng = np.random.default_rng([seed, fold, shots])
    picked = []
    for cls in (1, 0):
        pool = train[labels[train] == cls]
        if len(pool) < n:
            return None
        picked.append(np.sort(rng.choice(pool, size=n, replace=False)))
    return np.concatenate(picked)


def score(inputs: ScoreInputs) -> Scores:
    """AUROC at each n per class (see the module docstring)."""
    from sklearn.metrics import roc_auc_score

    spec = inputs.task.spec
    labels = inputs.rows["label"].to_numpy(dtype=np.int64)
    folds = inputs.rows["fold"].to_numpy(dtype=np.int64)
    x = inputs.embeddings
    plan, calls, missing = [], [], {}
    for fold in inputs.eval_folds:
        train, test = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        for n in sorted(spec.few_shot.shots):
            for seed in spec.few_shot.seeds:
                rows = draw(labels, train, n, seed, fold, n)
                if rows is None:
                    missing.setdefault(n, []).append(int(fold))
                    break  # every seed would fall short the same way
                plan.append((fold, n, seed, test))
                calls.append((x[rows], labels[rows], x[test], None))
    fit_predict = card_fit_predict(spec.classifier, allow_missing=not inputs.reads_pixels)
    try:
        probs = fit_predict.many(calls) if calls else []
    except RegistryError as exc:
        raise TaskTypeError(f"{inputs.task.id}: {exc}") from None
    by_cell: dict[tuple[int, int], list[float | None]] = {}
    for (fold, n, seed, test), prob in zip(plan, probs):
        y = labels[test]
        value = float(roc_auc_score(y, prob)) if len(np.unique(y)) == 2 else None
        by_cell.setdefault((n, int(fold)), []).append(value)
    metrics, per_n = {}, {}
    for n in sorted(spec.few_shot.shots):
        per_fold, per_seed = [], []
        for fold in inputs.eval_folds:
            values = by_cell.get((n, int(fold)))
            usable = [v for v in values or [] if v is not None]
            per_fold.append(float(np.mean(usable)) if usable else None)
            per_seed.append(values)
        metrics[f"auroc_at_{n}"] = fold_metric(per_fold, spec.metrics.confidence)
        spread = [float(np.std([v for v in seeds if v is not None], ddof=1)) for seeds in per_seed
                  if seeds and sum(v is not None for v in seeds) > 1]
        per_n[str(n)] = {"per_fold_per_seed": per_seed,
                         "mean_sd_over_seeds": float(np.mean(spread)) if spread else None,
                         **({"folds_short": missing[n], "reason": f"fewer than {n} training images of a class in "
                             f"fold(s) {missing[n]}"} if n in missing else {})}
    details = {"shots": per_n, "seeds": list(spec.few_shot.seeds), "folds": list(inputs.eval_folds),
               "classifier": spec.classifier.type}
    return Scores(metrics, details, {"positives": int((labels == 1).sum()), "negatives": int((labels == 0).sum())})


FEW_SHOT = TaskType(
    name="few-shot",
    title="Few-shot probes",
    measures=("How few labelled images an embedding needs: the card's classifier (logistic regression, as MIEB) "
              "trained on n images per class drawn from each training fold, several draws, scored on the held-out "
              "patients; AUROC at each n with a 95% CI over the folds."),
    floor=("The metadata-only baseline on the same draws (no pixels), and chance (0.5): with one image per class a "
           "probe mostly guesses."),
    sampling="binary", metrics=("auroc_at_16",), score=score)
