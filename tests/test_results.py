"""Result JSON: schema, NaN refusal, atomic write, defensive read, environment record.

The small fakes (cards, registry, results) it uses live in tests/support.py.
"""

from __future__ import annotations

import copy
import json

import pytest

from runner.results.result import (
    MAX_FILE_BYTES,
    ResultError,
    environment_info,
    read_result,
    utc_now,
    validate_result,
    write_result,
)
from tests.support import fake_registry, make_reproduced

# ------------------------------------------------------------------ tests


@pytest.fixture
def result():
    return make_reproduced(fake_registry())


def test_valid_result_has_no_problems(result):
    assert validate_result(result) == []


def test_reported_result_needs_citation_publication_and_null_manifest(result):
    reported = copy.deepcopy(result)
    reported["provenance"] = "reported"
    for metric in reported["metrics"].values():
        metric["ci_method"] = "reported"
    problems = validate_result(reported)
    assert any("citation" in p for p in problems) and any("publication" in p for p in problems)
    assert any(p.startswith("/manifest") for p in problems)
    reported["citation"] = "Someone et al. A paper. 2025."
    reported["manifest"] = None
    assert any("publication" in p for p in validate_result(reported))
    reported["publication"] = "someone2025-table2"
    assert validate_result(reported) == []


@pytest.mark.parametrize("mutate, pointer", [
    (lambda r: r["metrics"]["auroc"].update(mean=1.2), "/metrics/auroc/mean"),
    (lambda r: r["metrics"]["auroc"].update(aurco=0.5), "/metrics/auroc"),
    (lambda r: r.update(provenence="reported"), "/"),
    (lambda r: r["task"].update(sha256="not-a-hash"), "/task/sha256"),
    (lambda r: r["metrics"]["f1"].update(ci_method="reported"), "/metrics/f1/ci_method"),
    (lambda r: r["metrics"]["f1"].update(mean=None), "/metrics/f1"),  # null needs a reason
    (lambda r: r["folds"][1].update(auroc=-0.1), "/folds/1/auroc"),
    (lambda r: r["environment"].pop("device"), "/environment"),
    (lambda r: r["code"].pop("git_dirty"), "/code"),
    (lambda r: r["code"].update(sha256="abc"), "/code/sha256"),
    (lambda r: r["code"].update(git_commit="HEAD-dirty"), "/code/git_commit"),
    (lambda r: r.pop("synthetic"), "/"),
])
def test_schema_problems_name_their_pointer(result, mutate, pointer):
    mutate(result)
    problems = validate_result(result)
    assert problems, "mutation should have been rejected"
    assert any(p.startswith(pointer + ":") for p in problems), problems


def test_typo_gets_a_suggestion(result):
    result["metrics"]["auroc"]["half_widht"] = 0.1
    assert any("did you mean 'half_width'" in p for p in validate_result(result))


def test_null_metric_with_reason_is_valid(result):
    result["metrics"]["auroc"].update(mean=None, ci_low=None, ci_high=None, half_width=None,
                                      reason="only one class in every test fold")
    assert validate_result(result) == []


def test_analyses_is_open(result):
    result["analyses"]["anything"] = {"nested": [{"k": 1}], "p": 0.03}
    assert validate_result(result) == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_rejected_anywhere(result, bad):
    result["analyses"]["stability"]["mean_cosine"] = bad
    problems = validate_result(result)
    assert problems and problems[0].startswith("/analyses/stability/mean_cosine:")


def test_overlong_strings_and_non_json_types_rejected(result):
    result["notes"] = "x" * 50_000
    result["seeds"]["odd"] = {1, 2}
    problems = validate_result(result)
    assert any(p.startswith("/notes:") for p in problems)
    assert any(p.startswith("/seeds/odd:") and "set" in p for p in problems)


def test_write_then_read_roundtrip_is_sorted_and_atomic(tmp_path, result):
    path = write_result(result, tmp_path / "sub" / "r.json")
    assert read_result(path) == result
    text = path.read_text()
    assert text.index('"analyses"') < text.index('"counts"')  # sorted keys
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temp file left behind


def test_write_refuses_invalid_and_keeps_old_file(tmp_path, result):
    path = write_result(result, tmp_path / "r.json")
    before = path.read_bytes()
    result["metrics"]["auroc"]["mean"] = float("nan")
    with pytest.raises(ResultError, match="/metrics/auroc/mean"):
        write_result(result, path)
    assert path.read_bytes() == before
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("text, message", [
    ('{"a": NaN}', "NaN"),
    ('{"a": Infinity}', "Infinity"),
    ('{"a": 1, "a": 2}', "duplicate key 'a'"),
    ('[1, 2]', "JSON object"),
    ('{"a": ', "invalid JSON at line 1"),
])
def test_read_refuses_bad_files(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ResultError, match=message):
        read_result(path)


def test_read_refuses_huge_and_missing_files(tmp_path):
    big = tmp_path / "big.json"
    big.write_text(" " * (MAX_FILE_BYTES + 1))
    with pytest.raises(ResultError, match="bytes is more than"):
        read_result(big)
    with pytest.raises(ResultError, match="cannot read"):
        read_result(tmp_path / "missing.json")


def test_environment_info_is_schema_valid(result):
    env = environment_info(device="cpu")
    assert env["device"] == "cpu" and env["python"].count(".") == 2
    assert "numpy" in env["packages"] and "jsonschema" in env["packages"]
    result["environment"] = env
    result["created_at"] = utc_now()
    assert validate_result(result) == []
    json.dumps(env, allow_nan=False)


def test_environment_names_the_device_each_framework_used(result):
    # a TensorFlow encoder that ran on the CPU of a box where torch would use the GPU: the result says "cpu"
    env = environment_info(device="cuda", frameworks={"tensorflow": "cpu"})
    assert env["device"] == "cpu" and env["frameworks"] == {"tensorflow": "cpu"}
    result["environment"] = env
    assert validate_result(result) == []
    assert "frameworks" not in environment_info(device="cpu", frameworks={})  # nothing ran: all embeddings cached
    result["environment"]["frameworks"] = {"Not A Name!": "cpu"}
    assert any("/environment/frameworks" in p for p in validate_result(result))


def test_metrics_summary_drops_into_a_valid_result(result):
    """The contract with runner.metrics: summarize() output fills `metrics`, `folds` and `ci_alternatives` as is."""
    pd = pytest.importorskip("pandas")
    from runner.metrics.summary import summarize

    rows = [{"image_id": f"i{i}", "patient_id": f"p{i // 2}", "label": i % 2, "fold": (i // 2) % 3,
             "prob": (0.3 + 0.4 * (i % 2) + 0.01 * (i % 7)) if i % 5 else 0.5} for i in range(36)]
    summary = summarize(pd.DataFrame(rows), {"bootstrap": {"n": 20, "seed": 0}})
    result["metrics"] = {"auroc": summary["auroc"], "f1": summary["f1"]}
    result["folds"] = summary["folds"]
    result["ci_alternatives"] = summary["ci_alternatives"]
    assert validate_result(result) == []
