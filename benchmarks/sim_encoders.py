"""Shared parts of the simulation scripts (simulate_tie_test.py, simulate_ci_coverage.py): simulated encoders on the
real label / patient / fold structure of a committed manifest, and the classifier refitted per encoder.

A simulated image has a latent "content" shared by every encoder, t = mu * label + patient effect + image effect
(an image's appearance: the same image is equally hard for every encoder), and each encoder sees it through its own
noise (a patient-level and an image-level part: an encoder's error is shared by a patient's images). Its features
are `informative` noisy copies of what it sees plus pure-noise columns, so the classifier has to find and combine
them. Two encoders drawn with the same settings are equally informative: the same population AUROC for any
classifier. A better encoder has a larger `mu` (its label signal scaled by 1 + effect).

Nothing here is real image data: only the labels, patients and folds of the committed manifest are real.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Structure:
    """A manifest's rows: what the simulation keeps from the real sample."""

    task: str
    table: pd.DataFrame  # image_id, patient_id, label, fold (+ sex, age, view when present)
    labels: np.ndarray
    patient_index: np.ndarray  # 0..n_patients-1 per row
    folds: np.ndarray

    @property
    def n_patients(self) -> int:
        return int(self.patient_index.max()) + 1


def committed_manifest(task: str) -> Path:
    """manifests/<task>/manifest.parquet, or the one manifests/<task>/<sha256>/manifest.parquet (the layout since the
    manifests are stored by hash)."""
    flat = ROOT / "manifests" / task / "manifest.parquet"
    found = [flat] if flat.is_file() else sorted((ROOT / "manifests" / task).glob("*/manifest.parquet"))
    if len(found) != 1:
        raise SystemExit(f"{task}: expected one committed manifest, found {[str(f) for f in found]}")
    return found[0]


def load_structure(task: str, subsample: float = 1.0, seed: int = 0) -> Structure:
    """The committed manifest of `task` (`committed_manifest`); `subsample` < 1 keeps that share of its
    patients (all their images), chosen at random, for cheaper runs."""
    table = pd.read_parquet(committed_manifest(task))
    if subsample < 1.0:
        patients = table["patient_id"].astype(str).unique()
        keep = np.random.default_rng(seed).choice(patients, max(2, round(subsample * len(patients))), replace=False)
        table = table[table["patient_id"].astype(str).isin(set(keep))]
    table = table.reset_index(drop=True)
    table["patient_id"] = table["patient_id"].astype(str)
    _, patient_index = np.unique(table["patient_id"].to_numpy(), return_inverse=True)
    return Structure(task, table, table["label"].to_numpy(dtype=np.int64), patient_index,
                     table["fold"].to_numpy(dtype=np.int64))


@dataclass(frozen=True)
class EncoderModel:
    """How a simulated encoder's features are drawn (defaults: fold-mean AUROC ~0.85 with the card's LightGBM, the two
    encoders' out-of-fold probabilities correlated ~0.65)."""

    mu: float = 2.4  # label signal in the shared content
    patient_sd: float = 0.5  # shared content: patient effect
    image_sd: float = 1.0  # shared content: image effect
    noise_patient_sd: float = 0.4  # the encoder's own error, shared by a patient's images
    noise_image_sd: float = 0.7  # the encoder's own error per image
    # Many weak columns, as in an embedding: each alone has an AUROC of ~0.65, so the classifier must combine them,
    # and how well a given fit does varies (refit variance). With 4 strong columns instead, LightGBM's fits hardly
    # vary and today's tie test held its level.
    informative: int = 48  # columns carrying the signal (each with its own extra noise)
    column_sd: float = 4.0
    dim: int = 128  # columns in all (the rest pure noise)


def shared_content(structure: Structure, model: EncoderModel, rng: np.random.Generator) -> np.ndarray:
    """Per image: (label part, appearance part) of what every encoder looks at."""
    n = len(structure.labels)
    appearance = (model.patient_sd * rng.normal(size=structure.n_patients)[structure.patient_index]
                  + model.image_sd * rng.normal(size=n))
    return np.stack([structure.labels.astype(float), appearance])


def encoder_features(structure: Structure, content: np.ndarray, model: EncoderModel, rng: np.random.Generator,
                     effect: float = 0.0) -> np.ndarray:
    """(n, dim) float32 features of one encoder; `effect` > 0 scales its label signal by 1 + effect."""
    n = len(structure.labels)
    seen = (model.mu * (1.0 + effect) * content[0] + content[1]
            + model.noise_patient_sd * rng.normal(size=structure.n_patients)[structure.patient_index]
            + model.noise_image_sd * rng.normal(size=n))
    x = rng.normal(size=(n, model.dim))
    x[:, :model.informative] = seen[:, None] + model.column_sd * rng.normal(size=(n, model.informative))
    return x.astype(np.float32)


def task_classifier_block(task: str = "effusion-nih") -> dict:
    """The task card's `classifier:` block (tasks/_defaults-eval.yaml for every NIH task)."""
    from registry.cards import load_registry

    return dict(load_registry().tasks[task].data["classifier"])


@dataclass(frozen=True)
class Refitter:
    """Refits the classifier per fold: `lightgbm` (the card's block through runner.classify.out_of_fold.classify,
    one thread) or `logistic` (scikit-learn LogisticRegression, the cheap stand-in)."""

    kind: str = "lightgbm"
    card: dict | None = None
    max_trees: int | None = None  # overrides the card's n_estimators (fewer trees: cheaper)

    def describe(self) -> str:
        if self.kind == "logistic":
            return "logistic regression (scikit-learn, C=1.0, lbfgs), one fit per fold"
        card = self.lightgbm_card(0)
        return (f"LightGBM, the card's classifier block (tasks/_defaults-eval.yaml): params {card['params']}, "
                f"early_stopping {card['early_stopping']}, num_threads 1")

    def lightgbm_card(self, seed: int) -> dict:
        card = dict(self.card or task_classifier_block())
        params = dict(card.get("params", {}))
        if self.max_trees is not None:
            params["n_estimators"] = self.max_trees
        return {**card, "params": params, "seed": int(seed), "num_threads": 1}

    def out_of_fold(self, x: np.ndarray, table: pd.DataFrame, seed: int = 0) -> np.ndarray:
        """Out-of-fold probability per row of `table` (image_id, patient_id, label, fold), aligned with it."""
        folds = sorted(int(f) for f in table["fold"].unique())
        if self.kind == "logistic":
            from sklearn.linear_model import LogisticRegression

            prob = np.empty(len(table))
            fold_of_row, labels = table["fold"].to_numpy(), table["label"].to_numpy()
            for f in folds:
                test = fold_of_row == f
                model = LogisticRegression(C=1.0, max_iter=200).fit(x[~test], labels[~test])
                prob[test] = model.predict_proba(x[test])[:, 1]
            return prob
        from runner.classify.out_of_fold import classify

        result = classify(x, table[["image_id", "patient_id", "label", "fold"]], self.lightgbm_card(seed), folds)
        by_id = pd.Series(result.predictions["prob"].to_numpy(), index=result.predictions["image_id"].to_numpy())
        return by_id.loc[table["image_id"].to_numpy()].to_numpy(dtype=float)


def per_fold_metrics(labels: np.ndarray, folds: np.ndarray, prob: np.ndarray, threshold: float = 0.5
                     ) -> dict[str, np.ndarray]:
    """AUROC and F1 per fold (folds in sorted order), as runner.metrics.summary computes them."""
    from runner.metrics.scores import point_metrics

    out = {"auroc": [], "f1": []}
    for f in np.unique(folds):
        rows = folds == f
        m = point_metrics(labels[rows], prob[rows], threshold)
        out["auroc"].append(m["auroc"])
        out["f1"].append(m["f1"])
    return {k: np.asarray(v) for k, v in out.items()}


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a Monte-Carlo rate (scipy's binomtest)."""
    from scipy.stats import binomtest

    if n == 0:
        return float("nan"), float("nan")
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def rate_cell(successes: int, n: int) -> str:
    low, high = wilson(successes, n)
    return f"{successes / n:.3f} [{low:.3f}, {high:.3f}]" if n else "-"


@dataclass
class Clock:
    """CPU seconds (this process) spent per named step."""

    seconds: dict = dataclasses.field(default_factory=dict)
    calls: dict = dataclasses.field(default_factory=dict)

    def timed(self, name: str, fn, *args, **kwargs):
        start = time.process_time()
        out = fn(*args, **kwargs)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.process_time() - start
        self.calls[name] = self.calls.get(name, 0) + 1
        return out

    def per_call(self, name: str) -> float:
        return self.seconds.get(name, 0.0) / max(1, self.calls.get(name, 0))


def uptime() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"
