"""Rules a single schema cannot express: references between cards, and paths that must stay inside the data
root (`cross_card_problems`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from registry import plugins
from registry.benchmarks import benchmark_problems
from registry.errors import CardProblem, did_you_mean
from registry.extends import locate
from registry.negatives import negative_class
from registry.yaml_reading import json_pointer

if TYPE_CHECKING:
    from registry.cards import Card, Registry


def cross_card_problems(card: Card, reg: Registry) -> list[CardProblem]:
    """Rules a single schema cannot express: references between cards, and paths that must stay inside the data root."""
    problems: list[CardProblem] = []
    sources = list(card.sources)

    def problem(pointer, message, **kw):
        file, line = locate(sources, pointer) if sources else (card.path, None)
        problems.append(CardProblem(file, message, pointer, line, **kw))

    data = card.data
    if card.kind == "task":
        dataset_id = data.get("dataset")
        dataset = reg.datasets.get(dataset_id)
        if dataset is None:
            problem("/dataset", f"unknown dataset {dataset_id!r}", expected="one of " + ", ".join(sorted(reg.datasets)),
                    suggestion=did_you_mean(dataset_id, reg.datasets))
        else:
            _label_problems(data, dataset, problem)
        for key, value in (data.get("sampling") or {}).items():
            if key in ("positives", "negatives") and isinstance(value, int) and value <= 0:
                problem(f"/sampling/{key}", f"sample size {value} must be positive")
        train_task = (data.get("transfer") or {}).get("train_task") if isinstance(data.get("transfer"), dict) else None
        if train_task and train_task not in reg.tasks:
            problem("/transfer/train_task", f"unknown task {train_task!r}", suggestion=did_you_mean(train_task, reg.tasks))

        problems.extend(benchmark_problems(card, reg.root))
    elif card.kind == "encoder":
        adapter = data.get("adapter")
        adapters = plugins.names("adapter")
        if adapter not in adapters:
            problem("/adapter", f"unknown adapter {adapter!r}", expected="one of " + ", ".join(adapters),
                    suggestion=did_you_mean(adapter, adapters))
        for pointer, value in _strings_under((data.get("weights") or {}).get("files", []), "/weights/files"):
            if _leaves(value):
                problem(pointer, f"path {value!r} leaves the weights folder",
                        expected="a path relative to the weights snapshot, without '..'")
    elif card.kind == "dataset":
        kinds = plugins.names("dataset_kind")
        if data.get("kind") not in kinds:
            problem("/kind", f"unknown dataset kind {data.get('kind')!r}", expected="one of " + ", ".join(kinds),
                    suggestion=did_you_mean(str(data.get("kind")), kinds))
        named = [*_strings_under(data.get("files", {}), "/files")]
        fallback = data.get("fallback_package") if isinstance(data.get("fallback_package"), dict) else {}
        named += [("/fallback_package/folder", fallback["folder"])] if isinstance(fallback.get("folder"), str) else []
        for pointer, value in named:
            if _leaves(value):
                where = "the package" if pointer.startswith("/fallback") else "the data root"
                problem(pointer, f"path {value!r} leaves {where}",
                        expected=f"a path relative to {where}, without '..'")
    return problems


def _label_problems(data: dict, dataset, problem) -> None:
    """What a task reads from its dataset must be there: the label of a binary-label task, every finding of a
    multi-label task, the column of a demographic target; a zero-shot task has prompts for its label."""
    declared = dataset.data.get("labels", {})
    sampling = data.get("sampling") or {}
    label = data.get("label", {})
    label_id = label.get("id") if isinstance(label, dict) else label
    binary = "images" not in sampling and "patients" not in sampling  # binary sampling reads the label
    if binary and label_id not in declared:
        problem("/label/id", f"label {label_id!r} is not declared by dataset {dataset.id!r}",
                expected="one of " + ", ".join(sorted(declared)), suggestion=did_you_mean(label_id, declared))
    for index, item in enumerate(data.get("labels") or []):
        if isinstance(item, dict) and item.get("id") not in declared:
            problem(f"/labels/{index}/id", f"label {item.get('id')!r} is not declared by dataset {dataset.id!r}",
                    expected="one of " + ", ".join(sorted(declared)), suggestion=did_you_mean(str(item.get("id")),
                                                                                            declared))
    target = data.get("target")
    if isinstance(target, dict) and target.get("attribute") not in (dataset.data.get("columns") or {}):
        problem("/target/attribute", f"dataset {dataset.id!r} maps no {target.get('attribute')!r} column",
                expected="an attribute the dataset card's `columns` maps (sex, age, view)")
    stated = (data.get("label_policy") or {}).get("negative_class")
    derived = negative_class(data, dataset.data) if binary else None
    if stated is not None and stated != derived:
        problem("/label_policy/negative_class", f"the card says negatives are {stated!r}, but its label policy on "
                f"dataset {dataset.id!r} makes them {derived!r} (registry/negatives.py)", expected=repr(derived))
    prompts = ((data.get("zero_shot") or {}).get("prompts") or {}) if data.get("type") == "zero-shot" else None
    if prompts is not None and label_id not in prompts:
        problem("/zero_shot/prompts", f"no prompts for the task's label {label_id!r}",
                expected=f"zero_shot.prompts.{label_id}: {{positive: [...], negative: [...]}}")


def _leaves(value: str) -> bool:
    """A path a card names that is absolute, climbs with '..', holds a NUL byte or is a Windows drive path."""
    text = value.replace("\\", "/")
    return Path(text).is_absolute() or ".." in Path(text).parts or "\x00" in text or text[1:2] == ":"


def _strings_under(obj, pointer: str):
    if isinstance(obj, str):
        yield pointer, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _strings_under(value, json_pointer(pointer, key))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            yield from _strings_under(value, json_pointer(pointer, index))
