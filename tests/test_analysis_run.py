"""runner.analysis.run_analyses dispatch and the analysis-defs schema (task card `metrics:` / `analyses:`)."""

import json
from dataclasses import replace

import jsonschema
import numpy as np
import pandas as pd
import pytest
from jsonschema import Draft202012Validator

from runner.analysis import AnalysisContext, TransferSet, enabled_analyses, json_safe, run_analyses
from runner.metrics.scores import MetricsInputError

METRICS = {"threshold": 0.5, "ci": "t-interval", "confidence": 0.95, "bootstrap": {"n": 200, "seed": 0}}
ANALYSES = {
    "stability": {"enabled": True},
    "clustering": {"enabled": True, "k_min": 2, "k_max": 4, "n_init": 3, "seed": 0,
                   "umap": {"enabled": False, "n_neighbors": 15, "min_dist": 0.1}},
    "subgroups": {"enabled": True, "attributes": ["sex", "age"], "age_bands": [0, 50, 200], "min_per_class": 10},
    "transfer": {"enabled": False, "targets": ["other-task"]},
    "label_efficiency": {"enabled": True, "positives_per_class": [10, 20], "seeds": [0]},
    "paired": {"enabled": True, "alpha": 0.05},
}


def schema_validator(ref):
    from registry.schemas import _registry

    return Draft202012Validator({"$ref": f"analysis-defs.schema.json#/$defs/{ref}"}, registry=_registry())


@pytest.fixture(scope="module")
def context():
    rng = np.random.default_rng(0)
    n = 200
    label = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 8))
    x[:, 0] += 3 * label
    manifest = pd.DataFrame({
        "image_id": [f"i{i:03d}" for i in range(n)], "patient_id": [f"p{i // 2}" for i in range(n)],
        "label": label, "fold": (np.arange(n) // 2) % 5, "sex": rng.choice(["M", "F"], n),
        "age": rng.uniform(20, 90, n),
    })
    predictions = manifest[["image_id", "patient_id", "label", "fold"]].assign(prob=1 / (1 + np.exp(-x[:, 0] + 1.5)))
    return AnalysisContext(
        analyses_card=ANALYSES, metrics_card=METRICS, manifest=manifest, embeddings=x, predictions=predictions,
        eval_folds=[0, 1, 2, 3, 4], encoder_id="enc-a", augmented={"rot-5": x + 0.1, "bright+10": x * 1.1},
        transfer_targets={"other-task": TransferSet(x + 0.1, label, manifest["patient_id"].to_numpy())},
        fit_predict=lambda tx, ty, sx, p: sx[:, 0],
    )


def test_runs_enabled_analyses_and_output_is_json_safe(context):
    # paired tests compare encoders: the summarize stage makes them across filed results, never one run
    assert enabled_analyses(ANALYSES) == ["stability", "clustering", "subgroups", "label_efficiency"]
    out = run_analyses(None, context)
    assert set(out) == set(enabled_analyses(ANALYSES))
    assert all("status" not in v for v in out.values()), out
    asked = run_analyses(["paired"], context)["paired"]
    assert asked["status"] == "skipped" and "summarize stage" in asked["reason"]
    assert out["clustering"]["kmeans"]["chosen_k"] in (2, 3, 4)
    json.dumps(out, allow_nan=False)


def test_named_analysis_and_transfer(context):
    out = run_analyses(["transfer"], context)
    assert out["transfer"]["other-task"]["auroc"]["value"] > 0.9


def test_missing_input_is_skipped_with_reason_and_others_still_run(context):
    bare = AnalysisContext(analyses_card=ANALYSES, metrics_card=METRICS, manifest=context.manifest,
                           embeddings=context.embeddings, predictions=context.predictions)
    out = run_analyses(["stability", "subgroups"], bare)
    assert out["stability"]["status"] == "skipped" and "augmented views" in out["stability"]["reason"]
    assert "attributes" in out["subgroups"]


def test_a_figure_nobody_keeps_is_named_and_not_drawn(context, tmp_path):
    drawn = run_analyses(["label_efficiency"], replace(context, output_dir=tmp_path / "drawn"))
    named = run_analyses(["label_efficiency"], replace(context, output_dir=tmp_path / "named", draw_figures=False))
    assert named == drawn and drawn["label_efficiency"]["figure"] == "label_efficiency.png"
    assert (tmp_path / "drawn" / "label_efficiency.png").is_file() and not (tmp_path / "named").exists()


def test_unknown_name_is_an_error(context):
    with pytest.raises(MetricsInputError, match="unknown analysis"):
        run_analyses(["umapp"], context)


def test_json_safe_rejects_nan():
    assert json_safe({"a": np.float32(0.5), "b": np.arange(2), "c": np.bool_(True)}) == {"a": 0.5, "b": [0, 1],
                                                                                            "c": True}
    with pytest.raises(ValueError, match="x.y"):
        json_safe({"y": float("nan")}, "x")


def test_schema_accepts_full_blocks_and_rejects_unknown_keys():
    schema_validator("metrics").validate(METRICS)
    schema_validator("analyses").validate(ANALYSES)
    with pytest.raises(jsonschema.ValidationError):
        schema_validator("metrics").validate({**METRICS, "tresh": 0.4})
    with pytest.raises(jsonschema.ValidationError):
        schema_validator("analyses").validate({"clustering": {"enabled": True, "k": 3}})
    with pytest.raises(jsonschema.ValidationError):
        schema_validator("metrics").validate({"ci": "wald"})
