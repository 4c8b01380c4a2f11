"""Regeneration records (leaderboard.filing.verified): a build reuses an earlier check only while every input the
regeneration reads is byte-identical; anything changed is regenerated in full."""

from __future__ import annotations

import json

import pytest

from leaderboard.filing import verified
from leaderboard.filing.submit import submit
from registry.cards import load_registry
from tests.runs import shared_run


@pytest.fixture(scope="module")
def reg():
    return load_registry()


@pytest.fixture
def filed(reg, tmp_path):
    return submit(shared_run(tmp_path / "run", reg), reg, tmp_path / "results").path


@pytest.fixture
def regenerations(monkeypatch):
    """Counts the full checks (regenerations) verified_problems runs."""
    calls = []
    real = verified.filed_problems

    def counting(path, result, registry):
        calls.append(path.name)
        return real(path, result, registry)

    monkeypatch.setattr(verified, "filed_problems", counting)
    return calls


def check(path, reg, records):
    return verified.verified_problems(path, json.loads(path.read_text()), reg, records)


def test_a_record_stands_in_only_for_identical_inputs(reg, filed, tmp_path, regenerations):
    records = tmp_path / "records"
    assert check(filed, reg, records) == [] and check(filed, reg, records) == []
    assert len(regenerations) == 1  # the second build reused the first check
    assert check(filed, reg, None) == [] and len(regenerations) == 2  # no records folder: always regenerated


@pytest.mark.parametrize("change", ["result", "predictions", "embeddings", "manifest", "code"])
def test_any_changed_input_is_regenerated_in_full(reg, filed, tmp_path, regenerations, monkeypatch, change):
    records = tmp_path / "records"
    verified.remember_filed(filed, reg, records)  # what `runner submit` records
    result = json.loads(filed.read_text())
    if change == "result":  # a forged number planted in the results folder
        result["metrics"]["auroc"]["mean"] = 0.999
        filed.write_text(json.dumps(result))
    elif change == "predictions":
        path = filed.parent / "predictions" / f"{result['predictions_sha256']}.parquet"
        path.write_bytes(path.read_bytes() + b"\0")
    elif change == "embeddings":
        path = filed.parent / "embeddings" / f"{result['embeddings_sha256']}.npz"
        path.write_bytes(path.read_bytes() + b"\0")
    elif change == "manifest":
        path = next((filed.parent / "manifests").rglob("manifest.json"))
        path.write_text(path.read_text() + " ")  # same content, other bytes: checked again, and it stands
    else:  # a new version of the registry's code or of a numeric package
        monkeypatch.setattr(verified, "code_fingerprint", lambda: "another")
    problems = check(filed, reg, records)
    assert regenerations == [filed.name]
    assert bool(problems) == (change in ("result", "predictions", "embeddings"))  # the full check finds a forgery


@pytest.mark.parametrize("record", ["not json", "[]", '{"format": 1, "result": "other.json", "problems": []}',
                                    '{"format": 1, "result": "%s", "problems": [1]}', '{"format": 0}'])
def test_an_unsound_record_is_not_trusted(reg, filed, tmp_path, regenerations, record):
    records = tmp_path / "records"
    key = verified.regeneration_key(filed, json.loads(filed.read_text()), reg)
    path = records / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_text(record.replace("%s", filed.name))
    assert check(filed, reg, records) == [] and regenerations == [filed.name]
    assert json.loads(path.read_text())["problems"] == []  # replaced by the check's own outcome


def test_a_failed_check_is_recorded_and_stays_failed(reg, filed, tmp_path, regenerations):
    records = tmp_path / "records"
    result = json.loads(filed.read_text())
    result["metrics"]["auroc"]["mean"] = 0.999
    filed.write_text(json.dumps(result))
    first = check(filed, reg, records)
    assert first and check(filed, reg, records) == first and len(regenerations) == 1


def test_reported_results_are_never_recorded(reg):
    path = reg.home.results_dir / "effusion-nih__medimageinsight__reported.json"
    assert verified.regeneration_key(path, json.loads(path.read_text()), reg) is None
