"""What a negative is, for a binary-label task on its data set (`negative_class(task, dataset)`).

The same label policy means different things on different data sets: a CheXpert/MIMIC 0.0 is the labeller reading
"no X" in the report, an NIH/PadChest 0.0 is "X not among the mined findings". The class is derived from the task's
`label_policy` and how the dataset card reads the label (`labels.<id>`), so a card cannot claim one meaning while
sampling another (registry.cross_checks refuses a `label_policy.negative_class` that disagrees):
* `no-finding`: `negative_requires: no_finding` (negatives are 'No Finding' / 'normal' images);
* `stated-absent`: only the label source's own negative values count (a plain 1/0/-1 column, or explicit negative
  values such as the NIH relabels' NO) and blank (not mentioned) is excluded;
* `not-positive`: every image not positive, whether stated absent, not mentioned (blank: negative) or not among a
  list of findings (a `contains` label, or `other_values: negative`).
Any other `negative_requires` label is `requires-<label>`.
"""

from __future__ import annotations

NEGATIVE_CLASSES = {
    "stated-absent": "the label source states the finding absent; not mentioned (blank) is excluded",
    "not-positive": "every image not positive for the finding: stated absent, not mentioned or not listed",
    "no-finding": "images labelled 'No Finding': no finding at all",
}


def listed_zero(label_source: dict) -> bool:
    """True when the dataset reads 0.0 for 'not among the image's findings' rather than 'stated absent'."""
    return "contains" in label_source or label_source.get("other_values") == "negative"


def negative_class(task: dict, dataset: dict) -> str | None:
    """The negative class of a binary-label task (None: the task samples no label, e.g. images or patients)."""
    label = task.get("label")
    policy = task.get("label_policy") or {}
    if not isinstance(label, dict) or label.get("id") not in (dataset.get("labels") or {}):
        return None
    requires = policy.get("negative_requires")
    if requires:
        return "no-finding" if requires == "no_finding" else f"requires-{requires}"
    if listed_zero(dataset["labels"][label["id"]]) or policy.get("blank") == "negative" \
            or policy.get("uncertain") == "negative":
        return "not-positive"
    return "stated-absent"


def describe(name: str | None) -> str:
    """One line for the site and docs."""
    if name is None:
        return "no binary label"
    if name.startswith("requires-"):
        return f"images positive for {name.removeprefix('requires-')}"
    return NEGATIVE_CLASSES.get(name, name)


def task_negatives(task, registry) -> dict:
    """What the site says about a task's negatives: {class, description, dataset} and, for a transfer task, the same
    for its training side with `differs` (the two sides' negatives are not the same kind of image)."""

    def side(card) -> dict:
        dataset = registry.datasets.get(card.data.get("dataset"))
        name = negative_class(card.data, dataset.data) if dataset else None
        return {"task": card.id, "class": name, "description": describe(name),
                "dataset": dataset.data.get("title", dataset.id) if dataset else None}

    out = side(task)
    train_id = (task.data.get("transfer") or {}).get("train_task")
    if train_id and train_id in registry.tasks:
        train = side(registry.tasks[train_id])
        out["train"] = train
        out["differs"] = train["class"] != out["class"]
    return out


def table_negatives(task_ids: list[str], registry) -> dict[str, list[str]]:
    """negative class -> the tasks of a table that use it (more than one key: the table mixes definitions)."""
    by_class: dict[str, list[str]] = {}
    for task_id in task_ids:
        task = registry.tasks.get(task_id)
        dataset = registry.datasets.get(task.data.get("dataset")) if task else None
        if dataset is not None:
            name = negative_class(task.data, dataset.data)
            if name is not None:
                by_class.setdefault(name, []).append(task_id)
    return by_class
