"""The result object of one reproduced run, from its predictions: `run_result(...)` (then
runner.results.result.write_result validates and writes it), and the block a transfer task's result carries about
how its numbers were made (`transfer_block`).

`runner eval` and the registry's regeneration of a submitted result (leaderboard.filing.regenerate) both build the
result here, from the same inputs: the cards, the frozen manifest, the out-of-fold predictions, the exclusions made
at embedding, the metric summary and the analyses. What only the run itself knows (timings, throughput, the
environment, when) is its `RunFacts`: the registry files those as the submitter reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from runner.metrics.scores import pooled_roc
from runner.results.provenance import code_provenance
from runner.results.result import build_result, environment_info, utc_now
from runner.runtime.atomic import atomic_write
from runner.sample.exclusion_budget import EMBEDDING_PREFIX


@dataclass(frozen=True)
class RunFacts:
    """What only the run knows about itself, copied into its result as it is (never recomputed)."""

    timings_s: dict
    throughput: dict
    environment: dict
    created_at: str
    code: dict | None = None  # runner.results.provenance code_provenance(): the code that ran

    @classmethod
    def of_run(cls, embedded, timings: dict[str, float], device: str, frameworks: dict[str, str] | None = None,
               encoder_inputs: dict | None = None) -> RunFacts:
        """This process's facts: its timings, the embedding throughput, the environment (with the device each
        framework really ran on, Encoder.devices_used, and what made the embeddings: runner.embed.made_by, the
        weights' sha256 among it), now."""
        stage = "embed" if embedded.n_computed else "embed (all embeddings came from the cache)"
        environment = environment_info(device, frameworks)
        if encoder_inputs is not None:
            environment["encoder_inputs"] = encoder_inputs
        return cls({k: round(v, 3) for k, v in timings.items()},
                   {"images_per_s": None if embedded.images_per_s is None else round(embedded.images_per_s, 2),
                    "stage": stage + (f" [{embedded.backend}]" if embedded.backend else "")},
                   environment, utc_now(), code_provenance())

    @classmethod
    def of_result(cls, result: dict) -> RunFacts:
        """The facts a submitted result reports about its run."""
        return cls(dict(result.get("timings_s") or {}), dict(result.get("throughput") or {}),
                   dict(result.get("environment") or {}), str(result.get("created_at") or utc_now()),
                   dict(result["code"]) if isinstance(result.get("code"), dict) else None)


def run_result(task, encoder_card, dataset, manifest, predictions: pd.DataFrame, embedding_exclusions: list[dict],
               summary: dict, analyses: dict, facts: RunFacts) -> dict:
    """The result JSON object of a reproduced run: cards, frozen manifest, out-of-fold predictions, the exclusions
    made at embedding (their reasons without the prefix), the metric summary and the analyses."""
    meta, spec = manifest.meta, task.spec
    exclusions = [exclusion_entry(e, "") for e in meta.get("exclusions", [])]
    exclusions += [exclusion_entry(e, EMBEDDING_PREFIX) for e in embedding_exclusions]
    labels = pd.to_numeric(predictions["label"])
    return build_result(
        provenance="reproduced", task_card=task, encoder_card=encoder_card, created_at=facts.created_at,
        manifest={"sha256": meta["sha256"], "n_images": int(meta.get("n_images", len(manifest.frame)))},
        metrics={"auroc": summary["auroc"], "f1": summary["f1"]},
        folds=summary["folds"],
        counts={"positives": int((labels == 1).sum()), "negatives": int((labels == 0).sum()),
                "excluded": len(exclusions), "exclusions": exclusions},
        timings_s=facts.timings_s,
        throughput=facts.throughput,
        environment=facts.environment,
        code=facts.code,
        seeds={
            "sampling": _int_or_none(meta.get("seed")),
            "split": _int_or_none((meta.get("split") or {}).get("seed")),
            "classifier": spec.classifier.seed,
            "augmentation": None if spec.augmentations is None else spec.augmentations.seed,
            "encoder": encoder_card.spec.seed,
            "bootstrap": spec.metrics.bootstrap_seed,
        },
        synthetic=bool(meta.get("synthetic", dataset.spec.synthetic)),
        analyses=analyses,
        roc=pooled_roc(predictions),
    )


def transfer_block(train_task, train_dataset, train_manifest, train_embedded, test_task, test_dataset,
                   test_manifest, test_embedded, summary: dict) -> dict:
    """How a transfer task's result was made. The in-domain reference (the cross-validated score on the training task)
    is another result: the summarize stage pairs the two, this run reads no other run's files."""
    return {
        "kind": "transfer task",
        "train_task": train_task.id, "train_dataset": train_dataset.id,
        "train_manifest_sha256": train_manifest.meta["sha256"],
        "n_train": len(train_embedded.image_ids),
        "train_exclusions_at_embedding": [exclusion_entry(e, EMBEDDING_PREFIX) for e in train_embedded.exclusions],
        "test_task": test_task.id, "test_dataset": test_dataset.id,
        "test_manifest_sha256": test_manifest.meta["sha256"], "n_test": len(test_embedded.image_ids),
        "auroc": _value_with_ci(summary["auroc"]), "f1": _value_with_ci(summary["f1"]),
    }


def write_predictions(predictions: pd.DataFrame, path: Path) -> None:
    """The out-of-fold predictions (image_id, patient_id, label, fold, prob) as parquet, atomically."""
    atomic_write(path, lambda handle: predictions.to_parquet(handle, index=False))


def exclusion_entry(entry: dict, prefix: str) -> dict:
    """One exclusion as a result lists it; `prefix` "at embedding: " marks those made after sampling."""
    return {"image_id": str(entry["image_id"]), "path": str(entry["path"]),
            "reason": (prefix + str(entry["reason"]))[:500]}


def _value_with_ci(metric: dict) -> dict:
    return {"value": metric["mean"], "ci_low": metric["ci_low"], "ci_high": metric["ci_high"],
            "ci_method": metric["ci_method"], **({"reason": metric["reason"]} if metric.get("reason") else {})}


def _int_or_none(value) -> int | None:
    return None if value is None else int(value)
