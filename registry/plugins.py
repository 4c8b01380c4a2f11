"""The one plugin registry: every name a card may use for an encoder adapter, a dataset kind, an analysis or a task type,
and where its code lives, as a lazy "module:attr" entry.

A card names a plugin (`adapter: timm`, `kind: nih-cxr14`, `analyses: {stability: ...}`); the registry validates the
name without importing anything (`names(kind)`), and the runner imports the module only when a run uses it
(`load(kind, name)`): heavy stacks such as TensorFlow or timm load only when a card asks for them.

Third-party packages add plugins without editing this file through Python entry points in the groups of
ENTRY_POINT_GROUPS, each entry "name = package.module:attr" (pyproject.toml `[project.entry-points."cxr_registry.
adapters"]`); a built-in name cannot be replaced that way.
"""

from __future__ import annotations

import importlib
from functools import cache

from registry.errors import RegistryError, did_you_mean

BUILTIN: dict[str, dict[str, str]] = {
    # encoder adapters: a runner.encoders.base.Encoder subclass, built as cls(card, device=..., [weights_dir=...])
    "adapter": {
        "pixels": "runner.encoders.builtin:PixelsEncoder",
        "random-cnn": "runner.encoders.builtin:RandomCNNEncoder",
        "radiomics": "runner.encoders.builtin:RadiomicsEncoder",
        "cxr-foundation": "runner.encoders.cxr_foundation:CXRFoundationEncoder",
        "medimageinsight": "runner.encoders.medimageinsight:MedImageInsightEncoder",
        "torchxrayvision": "runner.encoders.community:XRVEncoder",
        "hf-transformers": "runner.encoders.community:HFTransformersEncoder",
        "open-clip": "runner.encoders.community:OpenCLIPEncoder",
        "timm": "runner.encoders.community:TimmEncoder",
        "custom": "runner.encoders.custom:CustomEncoder",
        "metadata": "runner.encoders.metadata:MetadataEncoder",  # the no-pixels shortcut baseline
    },
    # dataset kinds: read(dataset_card, data_root, labels) -> runner.data.DatasetIndex
    "dataset_kind": {
        "nih-cxr14": "runner.data.nih:read",
        "mimic-cxr": "runner.data.mimic:read",
        "csv": "runner.data.csv_kind:read",
        "huggingface": "runner.data.huggingface:read",
        "table": "runner.data.table_kind:read",
    },
    # analyses of one run: run(context: runner.analysis.AnalysisContext, spec) -> JSON-safe block. The paired tests
    # compare encoders and are made by the summarize stage, so they are no run plugin.
    "analysis": {
        "stability": "runner.analysis.stability:run",
        "clustering": "runner.analysis.clustering:run",
        "subgroups": "runner.analysis.subgroups:run",
        "transfer": "runner.analysis.transfer:run",
        "label_efficiency": "runner.analysis.label_efficiency:run",
    },
    # task types: a runner.task_types.TaskType (what the type samples, how it scores, its metrics and what its
    # leaderboard columns and task page say). The task schema's `type` enum lists exactly these names (a type also
    # has card blocks of its own), so no entry point adds one.
    "task_type": {
        "classification": "runner.task_types.probe:CLASSIFICATION",
        "transfer": "runner.task_types.probe:TRANSFER",
        "few-shot": "runner.task_types.few_shot:FEW_SHOT",
        "multi-label": "runner.task_types.targets:MULTI_LABEL",
        "demographic": "runner.task_types.targets:DEMOGRAPHIC",
        "retrieval": "runner.task_types.retrieval:RETRIEVAL",
        "reidentification": "runner.task_types.retrieval:REIDENTIFICATION",
        "clustering": "runner.task_types.clustering:CLUSTERING",
        "zero-shot": "runner.task_types.zero_shot:ZERO_SHOT",
    },
}
ENTRY_POINT_GROUPS = {"adapter": "cxr_registry.adapters", "dataset_kind": "cxr_registry.dataset_kinds",
                      "analysis": "cxr_registry.analyses"}
WHAT = {"adapter": "encoder adapter", "dataset_kind": "dataset kind", "analysis": "analysis", "task_type": "task type"}


class PluginError(RegistryError):
    """An unknown plugin name, or a plugin whose code cannot be imported; str() says which and what to do."""

    exit_code = 2


@cache
def entries(kind: str) -> dict[str, str]:
    """name -> "module:attr" of every plugin of a kind: the built-in ones, then installed packages' entry points."""
    found = dict(BUILTIN[kind])
    if kind not in ENTRY_POINT_GROUPS:
        return found
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUPS[kind]):
        found.setdefault(point.name, point.value)
    return found


def names(kind: str) -> list[str]:
    return sorted(entries(kind))


def load(kind: str, name: str):
    """The object a plugin entry names, importing its module now."""
    known = entries(kind)
    if name not in known:
        hint = did_you_mean(name, known)
        raise PluginError(f"unknown {WHAT[kind]} {name!r}" + (f" (did you mean {hint!r}?)" if hint else "")
                          + f"; known: {', '.join(sorted(known))}")
    module_name, _, attr = known[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"{WHAT[kind]} {name!r} needs a package that is not installed ({exc.name or exc}); install "
                          "the project's extra for it (see README, 'Optional stacks')") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise PluginError(f"{WHAT[kind]} {name!r}: {module_name} has no {attr!r}") from None
