"""Typed specs, defaults in one place (the schema), and hashes that follow behaviour."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from registry.cards import load_registry
from registry.hashing import sha256_of
from registry.schemas import behaviour_part, descriptive_fields, fill_defaults, load_schema, resolve_ref


def _schema_defaults(schema: dict, doc: dict, prefix: str = "", depth: int = 0):
    """(dotted path, default) of every property with a schema default, descending through objects."""
    schema, doc = resolve_ref(schema, doc)
    if depth > 6:
        return
    for key, sub in schema.get("properties", {}).items():
        resolved, sub_doc = resolve_ref(sub, doc)
        if "default" in resolved:
            yield prefix + key, resolved["default"]
        if "properties" in resolved:
            yield from _schema_defaults(resolved, sub_doc, f"{prefix}{key}.", depth + 1)


def _spec_value(spec, path: str):
    """The spec attribute at a dotted card path; `bootstrap.n` is `bootstrap_n`, `early_stopping.x` is `x`."""
    parts = path.split(".")
    value = spec
    i = 0
    while i < len(parts):
        if hasattr(value, parts[i]):
            value = getattr(value, parts[i])
            i += 1
        elif i + 1 < len(parts) and hasattr(value, f"{parts[i]}_{parts[i + 1]}"):
            value = getattr(value, f"{parts[i]}_{parts[i + 1]}")
            i += 2
        else:
            raise AttributeError(f"{type(value).__name__} has no field for {path!r}")
    return value


def _plain(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _given(card: dict, path: str) -> bool:
    node = card
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


MINIMAL_TASK = {
    "id": "effusion-x", "title": "t", "dataset": "demo-cxr", "label": {"id": "effusion", "name": "Effusion"},
    "label_policy": {"positive": [1.0], "negative": [0.0], "uncertain": "exclude", "blank": "exclude"},
    "views": ["PA"], "sampling": {"positives": 5, "negatives": 5, "seed": 0},
    "split": {"method": "stratified-group-kfold", "folds": 5, "seed": 0},
    "classifier": {"type": "lightgbm", "early_stopping": {"rounds": 5}}, "metrics": {},
}
MINIMAL_ENCODER = {"id": "enc-x", "title": "e", "adapter": "pixels", "preprocess": {}, "embedding": {"dim": 4},
                   "weights": {}}

SKIP = {  # defaults that land in another shape in the spec
    "task": {"split.folds", "split.test_fraction"},
    "encoder": {"preprocess.size"},  # (h, w) or None
}


@pytest.mark.parametrize(("kind", "minimal", "build"), [
    ("task", MINIMAL_TASK, "task_spec"), ("encoder", MINIMAL_ENCODER, "encoder_spec")])
def test_every_schema_default_reaches_the_spec(kind, minimal, build):
    """The schema is the one place a default is stated: the loader fills it in, the spec carries it unchanged."""
    from registry import specs

    filled = fill_defaults(kind, copy.deepcopy(minimal))
    spec = getattr(specs, build)(filled)
    schema = load_schema(kind)
    checked = 0
    for path, default in _schema_defaults(schema, schema):
        if path in SKIP.get(kind, set()) or path.split(".")[0] not in filled or _given(minimal, path):
            continue
        node = filled
        for part in path.split("."):
            node = node[part] if isinstance(node, dict) and part in node else None
        if node is None and default is not None:
            continue  # under an optional block the minimal card leaves out
        if isinstance(default, dict):  # an object default is the start its own fields' defaults fill in
            assert isinstance(node, dict), path
            continue
        assert node == default, path
        assert _plain(_spec_value(spec, path)) == default, path
        checked += 1
    assert checked >= (20 if kind == "task" else 8)


def test_no_python_defaults_shadow_the_schema():
    """The runner's settings classes take every value from the spec: none has a default of its own."""
    from runner.classify.out_of_fold import ClassifierSettings
    from runner.metrics.summary import MetricsSettings

    for cls in (ClassifierSettings, MetricsSettings):
        assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(cls)), cls


def test_every_card_has_a_spec_and_two_hashes():
    reg = load_registry()
    for cards in (reg.tasks, reg.encoders, reg.datasets):
        for card in cards.values():
            assert card.spec.id == card.id
            assert len(card.sha256) == 64 and len(card.behaviour_sha256) == 64


def test_descriptive_fields_are_declared_in_the_schema_and_documented():
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "cards.md").read_text(encoding="utf-8")
    for kind, expected in (("task", {"title", "description", "notes", "leaderboard", "label.name",
                                     "analyses.paired"}),
                           ("encoder", {"title", "description", "license", "citation", "homepage", "notes",
                                        "parameters", "batch_size", "weights.how_to_get"}),
                           ("dataset", {"title", "description", "citation", "license", "access", "notes"})):
        assert expected <= set(descriptive_fields(kind)), kind
    assert docs.count("*Descriptive*") >= 20


def _with(data: dict, path: str, value) -> dict:
    out = copy.deepcopy(data)
    node = out
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return out


@pytest.mark.parametrize(("kind", "card_id", "path", "value"), [
    ("task", "effusion-mimic", "title", "renamed"),
    ("task", "effusion-mimic", "description", "new words"),
    ("task", "effusion-mimic", "label.name", "Pleural effusion"),
    ("task", "effusion-mimic", "leaderboard.order", 7),
    ("task", "effusion-mimic", "analyses.paired.alpha", 0.01),
    ("encoder", "medimageinsight", "title", "MII"),
    ("encoder", "medimageinsight", "license", "other"),
    ("encoder", "medimageinsight", "citation", "someone else, 2030"),
    ("encoder", "medimageinsight", "parameters", 1),
    ("encoder", "medimageinsight", "batch_size", 7),
    ("encoder", "medimageinsight", "weights.how_to_get", "ask"),
    ("dataset", "nih-cxr14", "access", "elsewhere"),
    ("dataset", "nih-cxr14", "citation", "another paper, 2031"),
])
def test_descriptive_edits_keep_the_behaviour_hash(kind, card_id, path, value):
    card = load_registry().of_kind(kind)[card_id]
    edited = _with(card.data, path, value)
    assert sha256_of(edited) != card.sha256
    assert sha256_of(behaviour_part(kind, edited)) == sha256_of(behaviour_part(kind, card.data))


@pytest.mark.parametrize(("kind", "card_id", "path", "value"), [
    ("task", "effusion-mimic", "sampling.seed", 1),
    ("task", "effusion-mimic", "sampling.positives", 999),
    ("task", "effusion-mimic", "split.folds", 4),
    ("task", "effusion-mimic", "label_policy.uncertain", "positive"),
    ("task", "effusion-mimic", "views", ["PA"]),
    ("task", "effusion-mimic", "classifier.params.num_leaves", 15),
    ("task", "effusion-mimic", "metrics.threshold", 0.4),
    ("task", "effusion-mimic", "analyses.clustering.n_init", 10),
    ("task", "effusion-mimic", "augmentations.seed", 3),
    ("encoder", "medimageinsight", "preprocess.size", 448),
    ("encoder", "medimageinsight", "weights.revision", "abc1234"),
    ("encoder", "medimageinsight", "precision.bf16", False),
    ("encoder", "medimageinsight", "model.dim_projection", 512),
    ("dataset", "nih-cxr14", "columns.age", "Age"),
])
def test_behaviour_edits_change_the_behaviour_hash(kind, card_id, path, value):
    card = load_registry().of_kind(kind)[card_id]
    edited = _with(card.data, path, value)
    assert sha256_of(behaviour_part(kind, edited)) != sha256_of(behaviour_part(kind, card.data))


def test_a_task_behaviour_hash_covers_its_dataset_card(tmp_path):
    """Editing how the dataset card reads a column changes every task on it; editing its citation changes none."""
    import shutil
    from pathlib import Path

    from registry.cards import clear_cache

    repo = Path(__file__).resolve().parents[1]
    root = tmp_path / "reg"
    for sub in ("registry/datasets", "tasks", "encoders"):
        shutil.copytree(repo / sub, root / sub)
    clear_cache()
    before = load_registry(root).tasks["effusion-nih"]
    card = root / "registry" / "datasets" / "nih-cxr14.yaml"
    text = card.read_text()
    card.write_text(text.replace("  age: Patient Age", "  age: Age"))
    clear_cache()
    assert load_registry(root).tasks["effusion-nih"].behaviour_sha256 != before.behaviour_sha256
    card.write_text(text.replace("title: NIH ChestX-ray14", "title: NIH ChestX-ray14 (renamed)"))
    clear_cache()
    after = load_registry(root).tasks["effusion-nih"]
    assert after.behaviour_sha256 == before.behaviour_sha256
    clear_cache()


# ---------------------------------------------------------------------------------------------- card fields drive stages


def _predictions(n=200, seed=0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    return pd.DataFrame({"image_id": [f"i{k}" for k in range(n)], "patient_id": [f"p{k // 2}" for k in range(n)],
                         "label": label, "fold": np.arange(n) % 5,
                         "prob": np.clip(0.5 + 0.3 * (label - 0.5) + rng.normal(0, 0.25, n), 0, 1)})


def test_metrics_block_fields_change_the_numbers():
    from registry.specs import metrics_spec
    from runner.metrics.summary import summarize

    base = summarize(_predictions(), metrics_spec({}))
    assert summarize(_predictions(), metrics_spec({"threshold": 0.3}))["f1"] != base["f1"]
    assert summarize(_predictions(), metrics_spec({"confidence": 0.8}))["auroc"]["ci_low"] > base["auroc"]["ci_low"]
    assert summarize(_predictions(), metrics_spec({"ci": "cluster-bootstrap"}))["auroc"]["ci_method"] == \
        "cluster-bootstrap"
    boot = summarize(_predictions(), metrics_spec({"ci": "cluster-bootstrap", "bootstrap": {"seed": 1}}))
    assert boot["auroc"]["ci_low"] != summarize(_predictions(), metrics_spec({"ci": "cluster-bootstrap"}))["auroc"][
        "ci_low"]


def test_classifier_block_fields_change_the_predictions():
    import numpy as np
    import pandas as pd

    from registry.specs import classifier_spec
    from runner.classify.out_of_fold import classify

    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=(n, 6)).astype(np.float32)
    table = pd.DataFrame({"image_id": [f"i{k}" for k in range(n)], "patient_id": [f"p{k}" for k in range(n)],
                          "label": (x[:, 0] + rng.normal(0, 1, n) > 0).astype(int), "fold": np.arange(n) % 3})
    base = {"type": "lightgbm", "params": {"n_estimators": 30, "num_leaves": 4}, "seed": 0}
    ref = classify(x, table, classifier_spec(base), [0]).predictions["prob"].to_numpy()
    for change in ({"params": {"n_estimators": 30, "num_leaves": 15}}, {"seed": 3, "params": {
            "n_estimators": 30, "num_leaves": 4, "feature_fraction": 0.5}}, {"early_stopping": {"rounds": 2}}):
        other = classify(x, table, classifier_spec({**base, **change}), [0]).predictions["prob"].to_numpy()
        assert not np.allclose(other, ref), change


def test_analyses_block_fields_change_the_analysis():
    import numpy as np
    import pandas as pd

    from runner.analysis import AnalysisContext, run_analyses

    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1, (40, 5)), rng.normal(3, 1, (40, 5))]).astype(np.float32)
    manifest = pd.DataFrame({"image_id": [f"i{k}" for k in range(80)], "label": [0] * 40 + [1] * 40})

    def k_tried(block):
        ctx = AnalysisContext(analyses_card={"clustering": {"enabled": True, "n_init": 2, "umap": {"enabled": False},
                                                            **block}}, manifest=manifest, embeddings=x)
        return sorted(run_analyses(["clustering"], ctx)["clustering"]["kmeans"]["silhouette"], key=int)

    assert k_tried({}) == [str(k) for k in range(2, 11)]  # the schema's k_min 2 .. k_max 10
    assert k_tried({"k_max": 4}) == ["2", "3", "4"]


def test_preprocess_block_fields_change_the_encoder_input():
    import numpy as np

    from registry.specs import preprocess_spec
    from runner.data.imaging import to_encoder_input

    image = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(64, 48)
    base = fill_defaults("encoder", {**MINIMAL_ENCODER, "preprocess": {"size": 16}})["preprocess"]
    ref = to_encoder_input(image, base)
    assert preprocess_spec(base).size == (16, 16) and ref.shape == (1, 16, 16)
    for change, check in (({"size": 8}, lambda y: y.shape == (1, 8, 8)), ({"channels": 3}, lambda y: y.shape[0] == 3),
                          ({"normalize": "zscore"}, lambda y: abs(float(y.mean())) < 1e-3),
                          ({"bit_depth": 8}, lambda y: not np.allclose(y, ref)),
                          ({"interpolation": "nearest"}, lambda y: not np.allclose(y, ref))):
        assert check(to_encoder_input(image, {**base, **change})), change


def test_a_card_pickles_after_its_spec_was_read():
    """A TensorFlow encoder's run goes to a child process with the registry (pickled); a card whose spec was already
    read (its frozen mappings do not pickle) must still travel, and the child reads the same spec."""
    import pickle

    from registry.cards import load_registry

    registry = load_registry()
    for card in (registry.encoders["medimageinsight"], registry.tasks["effusion-nih"]):
        spec = card.spec
        assert pickle.loads(pickle.dumps(card)).spec == spec
