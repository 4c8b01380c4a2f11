"""The scikit-learn probes a task card may choose instead of LightGBM: logistic regression (MIEB's linear probe) and
k nearest neighbours (the standard frozen-feature probe).

Entry: `fit_predict(spec, train_x, train_y, test_x) -> probabilities of the positive class` for one fold, with the
card's ClassifierSpec (registry.specs). Both are deterministic for given inputs (lbfgs draws nothing; the neighbour
search is brute force), so the registry's refit from an embeddings bundle gives the run's probabilities bit for bit.

Logistic regression: with `standardize` every feature is z-scored with the training rows' mean and sd only (a constant
feature is only centred), then `LogisticRegression(C, max_iter, class_weight)`. kNN: `KNeighborsClassifier` with the
card's metric and weights; a fold with fewer training rows than `n_neighbors` (few-shot) consults them all, and the
probability is the (weighted) share of positive neighbours. Missing values (NaN: the metadata baseline's features,
which LightGBM takes as they are) are imputed with the training rows' column mean, plus one 0/1 indicator column per
feature that has any (scikit-learn SimpleImputer(add_indicator=True)).
"""

from __future__ import annotations

import warnings

import numpy as np

KINDS = ("logistic", "knn")


class ProbeError(ValueError):
    """Training rows a probe cannot fit (a single class); the message says which."""


def fit_predict(spec, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """P(label = 1) for each test row from a probe fitted on the training rows, as the card's spec says.

    On the spec's threads (1 for a probe): a fold's design (~10^2-10^4 rows) is too small for threaded BLAS to pay,
    and OpenBLAS's idle threads spin between lbfgs's many tiny products, 5-15x the CPU of one thread on a busy machine
    (the same bits: each product's sums keep their order)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max(1, int(spec.num_threads))):
        return _fit_predict(spec, train_x, train_y, test_x)


def _fit_predict(spec, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    train_y = np.asarray(train_y, dtype=np.int64)
    if len(np.unique(train_y)) < 2:
        raise ProbeError(f"{spec.type}: the training rows hold a single class ({len(train_y)} rows)")
    if np.isnan(train_x).any() or np.isnan(test_x).any():
        train_x, test_x = imputed(np.asarray(train_x, dtype=np.float64), np.asarray(test_x, dtype=np.float64))
    if spec.type == "logistic":
        return _logistic(spec, np.asarray(train_x, dtype=np.float64), train_y, np.asarray(test_x, dtype=np.float64))
    if spec.type == "knn":
        return _knn(spec, np.asarray(train_x, dtype=np.float64), train_y, np.asarray(test_x, dtype=np.float64))
    raise ProbeError(f"classifier.type {spec.type!r} is not a scikit-learn probe ({', '.join(KINDS)})")


def imputed(train_x: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN -> the training rows' column mean (0 for a column with no value), plus missing-indicator columns."""
    from sklearn.impute import SimpleImputer

    imputer = SimpleImputer(strategy="mean", add_indicator=True, keep_empty_features=True)
    return imputer.fit_transform(train_x), imputer.transform(test_x)


def standardized(train_x: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sides z-scored with the training rows' mean and sd (sd 0: the feature is only centred)."""
    mean = train_x.mean(axis=0)
    sd = train_x.std(axis=0)
    sd[sd == 0] = 1.0
    return (train_x - mean) / sd, (test_x - mean) / sd


def _logistic(spec, train_x, train_y, test_x) -> np.ndarray:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    params = dict(spec.params)
    if spec.standardize:
        train_x, test_x = standardized(train_x, test_x)
    model = LogisticRegression(C=float(params["C"]), max_iter=int(params["max_iter"]),
                               class_weight=params["class_weight"], random_state=spec.seed)
    with warnings.catch_warnings():  # a probe that stops at max_iter is still the card's probe; the card sets it
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train_x, train_y)
    return model.predict_proba(test_x)[:, list(model.classes_).index(1)]


def _knn(spec, train_x, train_y, test_x) -> np.ndarray:
    from sklearn.neighbors import KNeighborsClassifier

    params = dict(spec.params)
    model = KNeighborsClassifier(n_neighbors=min(int(params["n_neighbors"]), len(train_y)), metric=params["metric"],
                                 weights=params["weights"], algorithm="brute")
    model.fit(train_x, train_y)
    return model.predict_proba(test_x)[:, list(model.classes_).index(1)]
