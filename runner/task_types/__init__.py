"""Task types: what a task card's `type` means — how its images are sampled, how embeddings are scored, which metrics
its result carries and what the leaderboard says about it.

Each type is a `TaskType`, a lazy "module:attr" entry of the one plugin registry (registry.plugins, kind `task_type`):
`task_type_of(task_card)` loads it. classification and transfer are scored by the classifier path of runner.evaluate
(their results predate types); every other type has one scoring function, `score(ScoreInputs) -> Scores`, which both
`runner eval` (runner.task_types.run.run_typed) and the registry's regeneration of a submitted result
(leaderboard.filing.regenerate) call on the same inputs — the frozen manifest, the embeddings (from the run, or from
the submitted embeddings bundle), the cards — so a filed number of any type is the registry's own computation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from registry import plugins
from registry.errors import RegistryError

# Types whose results carry no `task.type` (runner.results.result.task_ref): they predate task types.
LEGACY_TYPES = ("classification", "transfer")


class TaskTypeError(RegistryError):
    """A task that its type cannot score as asked (an encoder without a text tower, too few images of a class, ...)."""

    exit_code = 2


@dataclass(frozen=True)
class ScoreInputs:
    """What a type's score function is given: the same in `runner eval` and in the registry's regeneration."""

    task: object  # registry Card of the task
    encoder: object  # registry Card of the encoder
    rows: pd.DataFrame  # the manifest rows that were embedded, in embedding order (image_id, patient_id, label, fold, ...)
    embeddings: np.ndarray  # (len(rows), dim) float32, row for row
    eval_folds: tuple[int, ...]
    augmented: dict[str, np.ndarray] = field(default_factory=dict)  # view id -> embeddings aligned with rows
    texts: dict[str, np.ndarray] = field(default_factory=dict)  # zero-shot: "<label>:positive|negative" -> (n, dim)
    reads_pixels: bool = True  # False: the metadata baseline (its features may be NaN)


@dataclass
class Scores:
    """A type's result blocks: `metrics` (id -> result.schema.json metric), `details` (the rest of what it computed,
    JSON-safe) and `counts` (merged into the result's counts: per-class sizes where the type has classes)."""

    metrics: dict
    details: dict
    counts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Column:
    """One leaderboard column a type offers: a metric id of its results and its header."""

    id: str
    label: str


@dataclass(frozen=True)
class TaskType:
    name: str
    title: str  # shown as the column group's and the task page's heading
    measures: str  # what the type measures (task page)
    floor: str  # what its floor is (task page): below it an encoder shows nothing beyond chance or a shortcut
    sampling: str  # binary | images | patients (runner.sample)
    metrics: tuple[str, ...]  # the metric ids its results always carry, headline first (few-shot adds auroc_at_<n>)
    score: Callable[[ScoreInputs], Scores] | None  # None: the classifier path of runner.evaluate
    needs_text: bool = False  # zero-shot: the encoder card must declare a text tower
    higher_is: str = "better"  # reidentification: "a privacy risk"
    reads_metadata_floor: bool = True  # the metadata baseline is this type's floor (demographic: it reads the target)

    @property
    def headline(self) -> str:
        return self.metrics[0]

    def metric_ids(self, task_spec) -> tuple[str, ...]:
        """The metric ids a result of this task carries."""
        if self.name == "few-shot" and task_spec.few_shot is not None:
            return tuple(f"auroc_at_{n}" for n in sorted(task_spec.few_shot.shots, reverse=True))  # most shots first
        if self.name in ("retrieval", "reidentification") and task_spec.retrieval is not None:
            at = "precision" if self.name == "retrieval" else "recall"
            return (*self.metrics, *(f"{at}_at_{k}" for k in sorted(task_spec.retrieval.k)))
        return self.metrics


def task_type_of(task) -> TaskType:
    """The TaskType of a task card (a registry Card, or its spec)."""
    spec = getattr(task, "spec", task)
    try:
        kind = plugins.load("task_type", spec.type)
    except plugins.PluginError as exc:
        raise TaskTypeError(str(exc)) from None
    return kind


def column_group(task) -> str:
    """The leaderboard column group of a task's results: its type; transfer shares classification's (AUROC, F1)."""
    kind = task_type_of(task)
    return "classification" if kind.score is None else kind.name


def scores_itself(task) -> bool:
    """True for a type with its own score function (every type but classification and transfer)."""
    return task_type_of(task).score is not None


def l2_normalized(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero): cosine similarity becomes a dot product."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)
