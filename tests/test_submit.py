"""`runner submit`: what is filed, what is refused (exit 1) and what is invalid (exit 2)."""

from __future__ import annotations

import json

import pytest
import yaml
from runs import edit_result, shared_run

from leaderboard.filing.file_reported import file_reported
from leaderboard.filing.submit import EXIT_INVALID, EXIT_REFUSED, SubmitError, submit
from runner.results.result import read_result, validate_result
from tests.support import TABLE_PATH, fake_registry


@pytest.fixture
def reg():
    return fake_registry()


@pytest.fixture
def run_dir(tmp_path, reg):
    """A run folder as `runner eval` leaves it: OUT/<task>/<encoder>/{result.json, predictions.parquet} and the
    task's frozen manifest one folder up."""
    return shared_run(tmp_path / "out", reg).parent


def _submit(path, reg, results, **kw):
    with pytest.raises(SubmitError) as info:
        submit(path, reg, results, **kw)
    return info.value


def test_files_a_valid_result_under_its_slot_name(run_dir, reg, tmp_path):
    results = tmp_path / "results"
    filed = submit(run_dir / "result.json", reg, results)
    assert filed.path == results / "effusion-demo__pixels__reproduced.json"
    stored = read_result(filed.path)
    # the registry adds what it checked (the tier it regenerated to); every field the run wrote is filed unchanged
    assert stored.pop("verification")["tier"] == "embeddings"
    assert stored == json.loads((run_dir / "result.json").read_text())
    assert not filed.replaced


def test_refuses_duplicate_without_replace(run_dir, reg, tmp_path):
    results = tmp_path / "results"
    submit(run_dir / "result.json", reg, results)
    error = _submit(run_dir / "result.json", reg, results)
    assert error.exit_code == EXIT_REFUSED and "--replace" in str(error)
    assert submit(run_dir / "result.json", reg, results, replace=True).replaced


def test_refuses_tampered_card_hash(run_dir, reg, tmp_path):
    result = json.loads((run_dir / "result.json").read_text())
    result["encoder"]["behaviour_sha256"] = "0" * 64
    (run_dir / "result.json").write_text(json.dumps(result))
    error = _submit(run_dir / "result.json", reg, tmp_path / "results")
    assert error.exit_code == EXIT_REFUSED
    assert "changed behaviour since this result was made" in str(error) and "re-run" in str(error)
    assert not (tmp_path / "results").exists()


def test_refuses_when_the_card_changed_after_the_run(run_dir, reg, tmp_path):
    reg.tasks["effusion-demo"].data["metrics"] = {"threshold": 0.4}  # a field that changes numbers
    error = _submit(run_dir / "result.json", reg, tmp_path / "results")
    assert error.exit_code == EXIT_REFUSED and "task card 'effusion-demo' changed behaviour" in str(error)


def test_a_descriptive_card_edit_after_the_run_does_not_refuse_the_result(run_dir, reg, tmp_path):
    from leaderboard.filing.submit import submit

    reg.tasks["effusion-demo"].data["title"] = "edited"
    filed = submit(run_dir / "result.json", reg, results_dir=tmp_path / "results")
    assert filed.path.is_file()


@pytest.mark.parametrize("field, value, message", [
    ("task", "no-such-task", "unknown task 'no-such-task'"),
    ("encoder", "no-such-encoder", "unknown encoder 'no-such-encoder'"),
])
def test_unknown_cards_are_invalid(run_dir, reg, tmp_path, field, value, message):
    result = json.loads((run_dir / "result.json").read_text())
    result[field]["id"] = value
    (run_dir / "result.json").write_text(json.dumps(result))
    error = _submit(run_dir / "result.json", reg, tmp_path / "results")
    assert error.exit_code == EXIT_INVALID and message in str(error)


@pytest.mark.parametrize("text, message", [
    ('{"schema_version": 1}', "invalid result"),
    ('{"a": NaN}', "NaN"),
    ("not json", "invalid JSON"),
])
def test_invalid_files(tmp_path, reg, text, message):
    path = tmp_path / "r.json"
    path.write_text(text)
    error = _submit(path, reg, tmp_path / "results")
    assert error.exit_code == EXIT_INVALID and message in str(error)
    assert "\n" not in str(error)


def test_nan_inside_a_valid_looking_result(run_dir, reg, tmp_path):
    edit_result(run_dir / "result.json", lambda r: r["timings_s"].update(embed=0.123456))
    text = (run_dir / "result.json").read_text().replace('"embed": 0.123456', '"embed": NaN')
    assert "NaN" in text
    (run_dir / "result.json").write_text(text)
    assert _submit(run_dir / "result.json", reg, tmp_path / "results").exit_code == EXIT_INVALID


def test_refuses_manifest_mismatch(run_dir, reg, tmp_path):
    other_run = shared_run(tmp_path / "other", reg, sample=1)  # another sample of the same task: another manifest
    error = _submit(run_dir / "result.json", reg, tmp_path / "results", manifest_path=other_run.parent.parent)
    assert error.exit_code == EXIT_REFUSED and "manifest sha256" in str(error)
    # an explicit --manifest (folder or its manifest.json) wins over the run folder's
    filed = submit(run_dir / "result.json", reg, tmp_path / "results", manifest_path=run_dir.parent / "manifest.json")
    assert filed.path.exists()


def test_files_the_manifest_beside_the_result(run_dir, reg, tmp_path):
    from runner.sample.store import manifest_folder, results_store

    filed = submit(run_dir / "result.json", reg, tmp_path / "results")
    sha = read_result(filed.path)["manifest"]["sha256"]
    folder = manifest_folder(results_store(tmp_path / "results"), "effusion-demo", sha)
    assert (folder / "manifest.parquet").is_file() and (folder / "manifest.json").is_file()
    from leaderboard.filing.layout import predictions_of

    assert predictions_of(tmp_path / "results", read_result(filed.path)).is_file()  # filed by its content hash


def test_refuses_synthetic_flag_that_contradicts_the_dataset_card(run_dir, reg, tmp_path):
    result = json.loads((run_dir / "result.json").read_text())
    result["synthetic"] = False  # a demo run passed off as a clinical one
    (run_dir / "result.json").write_text(json.dumps(result))
    error = _submit(run_dir / "result.json", reg, tmp_path / "results")
    assert error.exit_code == EXIT_INVALID and "synthetic" in str(error)


def test_file_reported_writes_the_16_paper_cells(reg, tmp_path):
    filed = file_reported(reg, TABLE_PATH, tmp_path)
    assert len(filed) == 16
    assert len(list(tmp_path.glob("*__reported.json"))) == 16
    one = read_result(tmp_path / "opacity-nih__cxr-foundation__reported.json")
    assert validate_result(one) == []
    assert one["manifest"] is None and "Shin" in one["citation"] and one["publication"] == "shin2025-table1"
    auroc = one["metrics"]["auroc"]
    table = yaml.safe_load(TABLE_PATH.read_text())
    mean, half = table["numbers"]["opacity-nih"]["cxr-foundation"]["auroc"]
    assert (auroc["mean"], auroc["half_width"], auroc["ci_method"]) == (mean, half, "reported")
    assert (auroc["ci_low"], auroc["ci_high"]) == (round(mean - half, 3), round(mean + half, 3))
    assert one["task"]["sha256"] == reg.tasks["opacity-nih"].sha256
    assert len(file_reported(reg, TABLE_PATH, tmp_path)) == 16  # regenerating replaces, never duplicates


def test_cli_exit_codes(run_dir, reg, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import runner.cli.commands.leaderboard as cmds
    from runner.cli.main import app

    monkeypatch.setattr(cmds, "_registry", lambda copies=(): reg)
    cli = CliRunner()
    results = str(tmp_path / "results")
    ok = cli.invoke(app, ["submit", str(run_dir / "result.json"), "--results-dir", results])
    assert ok.exit_code == 0 and "filed" in ok.output
    dup = cli.invoke(app, ["submit", str(run_dir / "result.json"), "--results-dir", results])
    assert dup.exit_code == 1 and "Traceback" not in dup.output
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    invalid = cli.invoke(app, ["submit", str(bad), "--results-dir", results])
    assert invalid.exit_code == 2 and "error:" in invalid.output and "Traceback" not in invalid.output


def test_filed_results_match_the_current_cards(request):
    """Every file in leaderboard/results/ is valid and filed against today's cards, and every number in it recomputes
    from its filed data. A card that does not load fails this test (the cards are loaded before the shared site is
    asked for).

    The recomputation (leaderboard.filing.submit.filed_problems, per file) is the one summarize() ran when the
    session's shared site was built from these files, no regeneration record reused: its summary lists every file
    that did not verify ("unverified") or could not be shown ("skipped").

    When this fails after a card edit, re-file the paper's numbers: `python -m leaderboard.filing.file_reported`, and the
    demo's: `runner demo --out DIR && runner submit --replace DIR/runs/*/*/result.json`.
    """
    from leaderboard.filing.submit import check_against_cards
    from registry.cards import load_registry
    from tests.support import RESULTS_DIR

    registry = load_registry()
    files = sorted(RESULTS_DIR.glob("*.json"))
    assert len([f for f in files if f.name.endswith("__reported.json")]) == 16
    for path in files:
        result = read_result(path)
        assert validate_result(result) == [], path
        check_against_cards(result, registry)  # raises SubmitError with the reason
    summary = request.getfixturevalue("real_site").summary
    assert summary["skipped"] == [] and summary["n_results"] == len(files)
    assert summary["unverified"] == []  # every number recomputes from its filed data
