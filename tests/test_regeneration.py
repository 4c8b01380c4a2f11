"""Verification is regeneration (issue 25): pins, the registry's own refit of a floor, audits.

The forgeries, single-step and multi-step (labels flipped after a pin, a planted result, an interrupted replace, a
false exclusion claim, ...), are cases of the corpus (tests/corpus/cases.py, issue=25), each with the message it must
give; these tests check what is not a refusal message."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from leaderboard.filing.submit import SubmitError, filed_problems, submit
from registry.cards import load_registry
from tests.runs import shared_run


@pytest.fixture(scope="module")
def reg():
    return load_registry()


def test_a_first_filing_pins_the_sample_and_another_sample_is_refused_naming_the_difference(reg, tmp_path):
    results = tmp_path / "results"
    submit(shared_run(tmp_path / "a", reg, sample=0), reg, results)
    pins = json.loads((results / "manifests" / "pins.json").read_text())
    assert set(pins) == {"effusion-demo"}
    with pytest.raises(SubmitError) as refused:
        submit(shared_run(tmp_path / "b", reg, sample=1, encoder_id="radiomics"), reg, results)
    assert refused.value.exit_code == 1
    assert "scored on its filed manifest" in str(refused.value) and "not in the pinned sample" in str(refused.value)
    assert json.loads((results / "manifests" / "pins.json").read_text()) == pins  # pins are never overwritten


def _metadata_floor_run(tmp_path, reg, result: dict):
    """The filed effusion-nih metadata floor laid out as the run folder `runner eval` leaves (predictions, the pinned
    manifest one folder up, the result without the registry's verification block): its run/<encoder> folder."""
    from leaderboard.filing.layout import predictions_of
    from leaderboard.filing.pins import pinned_manifest
    from tests.support import RESULTS_DIR

    run = tmp_path / "run" / "effusion-nih" / "metadata"
    run.mkdir(parents=True)
    shutil.copyfile(predictions_of(RESULTS_DIR, result), run / "predictions.parquet")
    folder = pinned_manifest(reg.tasks["effusion-nih"], reg, RESULTS_DIR).folder
    for name in ("manifest.json", "manifest.parquet"):
        shutil.copyfile(folder / name, run.parent / name)
    (run / "result.json").write_text(json.dumps({k: v for k, v in result.items() if k != "verification"}))
    return run


def test_the_metadata_floor_is_refitted_by_the_registry_and_a_forged_one_refused(tmp_path):
    """The metadata baseline's features are frozen in the manifest: the registry refits it itself (tier embeddings)
    and a floor whose predictions were made up is refused, even without embeddings."""
    from corpus import build

    from leaderboard.filing.pins import pinned_manifest
    from leaderboard.filing.regenerate import regenerate
    from tests.support import RESULTS_DIR

    reg = load_registry()
    result = json.loads((RESULTS_DIR / "effusion-nih__metadata__reproduced.json").read_text())
    assert result["verification"]["tier"] == "embeddings"
    run = _metadata_floor_run(tmp_path, reg, result)
    assert submit(run / "result.json", reg, tmp_path / "results").path.is_file()  # genuine: filed
    forged = build._forged_run(run, change_predictions=lambda p: p.assign(prob=0.9 * p["label"] + 0.05))
    with pytest.raises(SubmitError, match="not what the task's classifier gives"):
        submit(forged, reg, tmp_path / "results2")
    again = regenerate(json.loads(forged.read_text()), pd.read_parquet(run / "predictions.parquet"),
                       pinned_manifest(reg.tasks["effusion-nih"], reg, RESULTS_DIR).load(), reg)
    assert again.tier == "embeddings" and again.result["metrics"]["auroc"]["mean"] < 0.8  # the registry's own numbers


def test_audit_passes_on_the_images_and_fails_on_made_up_embeddings(tmp_path, demo_data_dir):
    from corpus import build

    from leaderboard.filing.audit import audit, audited
    from leaderboard.summary.summarize import tier_of
    from registry.benchmarks import load_layout
    from runner.classify.out_of_fold import classify
    from runner.data.fingerprint import file_sha256
    from runner.evaluate import EvalOptions, run_evaluation
    from runner.results.bundle import NAME, read_bundle, write_bundle
    from tests.support import TINY_TASK, make_registry_root

    root = make_registry_root(tmp_path / "reg", {"effusion-tiny": TINY_TASK})
    reg = load_registry(root)
    options = EvalOptions(device="cpu", workers=0, cache_dir=tmp_path / "cache", progress=False, save_embeddings=True)
    done = run_evaluation("effusion-tiny", "pixels", demo_data_dir, tmp_path / "runs", options, reg)
    filed = submit(done.result_path, reg, tmp_path / "results").path
    record = audit(filed, reg, demo_data_dir)
    assert record.passed and record.worst > 0.9999 and len(record.image_ids) == load_layout(root).audit.images
    assert tier_of(json.loads(filed.read_text()), filed.parent, reg) == "audited"

    # made-up embeddings, consistent with their own predictions: filed (the refit cannot tell), never audited
    run_dir = done.result_path.parent
    bundle = read_bundle(run_dir / NAME)
    rng = np.random.default_rng(7)
    labels = pd.read_parquet(run_dir.parent / "manifest.parquet").set_index("image_id").loc[bundle.image_ids, "label"]
    fake = rng.normal(size=bundle.original.shape).astype(np.float32)
    fake[:, 0] += 3.0 * labels.to_numpy()
    write_bundle(run_dir / NAME, bundle.image_ids, fake, {}, bundle.header)
    table = pd.read_parquet(run_dir.parent / "manifest.parquet").set_index("image_id").loc[bundle.image_ids]
    predictions = classify(fake, table.reset_index(), reg.tasks["effusion-tiny"].spec.classifier,
                           sorted(table["fold"].unique().tolist())).predictions
    forged = build._forged_run(run_dir, change_predictions=lambda p: p.drop(columns="prob").merge(
        predictions[["image_id", "prob"]], on="image_id"), registry=reg)
    result = json.loads(forged.read_text())
    result["embeddings_sha256"] = file_sha256(run_dir / NAME)
    forged.write_text(json.dumps(result))
    made_up = submit(forged, reg, tmp_path / "results2").path
    record = audit(made_up, reg, demo_data_dir)
    assert not record.passed and record.worst < 0.5
    assert not audited(made_up.parent, json.loads(made_up.read_text()), load_layout(root).audit)
    assert tier_of(json.loads(made_up.read_text()), made_up.parent, reg) == "embeddings"


def test_checking_or_refusing_a_refitted_result_leaves_no_temporary_file_in_the_results_folder(tmp_path):
    """The registry refits the metadata floor itself: verifying the filed result (leaderboard build), refiling it
    without --replace (refused) and filing it again leave only the filed files (a leftover .refit.*.parquet in
    leaderboard/results came from every build's check)."""
    from tests.support import RESULTS_DIR

    reg = load_registry()
    result = json.loads((RESULTS_DIR / "effusion-nih__metadata__reproduced.json").read_text())
    run = _metadata_floor_run(tmp_path, reg, result)
    results = tmp_path / "results"
    filed = submit(run / "result.json", reg, results).path
    files = sorted(p for p in results.rglob("*") if p.is_file())
    assert filed_problems(filed, json.loads(filed.read_text()), reg) == []
    with pytest.raises(SubmitError, match="already filed"):
        submit(run / "result.json", reg, results)
    submit(run / "result.json", reg, results, replace=True)
    assert sorted(p for p in results.rglob("*") if p.is_file()) == files


def test_a_stored_manifest_is_read_again_whenever_its_bytes_change(reg, tmp_path):
    """leaderboard.filing.pins.read_stored keeps a parsed manifest per process only for the same bytes of both files:
    an edit made after a first read is read (and refused by the hash check) like any first read; each caller gets
    its own copy."""
    from leaderboard.filing.pins import read_stored
    from runner.sample.manifest import ManifestError, read_manifest

    folder = shared_run(tmp_path / "run", reg, embeddings=False).parents[1]  # run/<task>: manifest.json + .parquet
    first = read_stored(folder)
    first.frame.loc[0, "label"] = 7  # the caller's copy
    first.meta["sha256"] = "changed by a caller"
    again = read_stored(folder)
    fresh = read_manifest(folder)
    assert again.frame.equals(fresh.frame) and again.meta == fresh.meta
    rows = pd.read_parquet(folder / "manifest.parquet")
    rows.loc[0, "label"] = 1 - rows.loc[0, "label"]  # a label flipped in place, manifest.json untouched
    rows.to_parquet(folder / "manifest.parquet", index=False)
    with pytest.raises(ManifestError, match="changed after sampling"):
        read_stored(folder)
