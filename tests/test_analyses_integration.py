"""Every analysis through `runner eval --analyses all`, the transfer task type, and tie groups on the built site.

Runs on the session's small synthetic demo data (conftest `demo_data_dir`) plus a small synthetic "site B", with
test-only task cards whose analysis settings are small (few k, few k-means restarts, two label-efficiency sizes).
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pydicom
import pytest

from runner.analysis import ANALYSES
from tests.support import make_registry_root

TINY_TASK = """\
extends: _defaults-demo.yaml
id: effusion-tiny
title: Effusion (tiny analyses test task)
dataset: demo-cxr
label: {id: effusion, name: Effusion}
sampling: {positives: 60, negatives: 60, verify: header}
analyses:
  clustering: {k_min: 2, k_max: 4, n_init: 3, umap: {n_neighbors: 10}}
  subgroups: {min_per_class: 8}
  label_efficiency: {positives_per_class: [15, 30], seeds: [0]}
leaderboard: {disease: Effusion, dataset_label: Tiny}
"""
TINY_TRANSFER = """\
extends: _defaults-demo.yaml
id: effusion-tiny-transfer
title: Effusion, tiny site A -> tiny site B
type: transfer
transfer: {train_task: effusion-tiny}
dataset: demo-cxr-site-b
label: {id: effusion, name: Effusion}
sampling: {positives: 25, negatives: 25, verify: header}
metrics: {ci: cluster-bootstrap}
analyses:
  clustering: {k_min: 2, k_max: 3, n_init: 2, umap: {n_neighbors: 10}}
  subgroups: {min_per_class: 8}
  label_efficiency: {positives_per_class: [15], seeds: [0]}
leaderboard: {disease: Effusion, dataset_label: "Tiny A → B"}
"""
TINY_B = """\
extends: _defaults-demo.yaml
id: effusion-tiny-b
title: Effusion (tiny site B, cross-validated)
dataset: demo-cxr-site-b
label: {id: effusion, name: Effusion}
sampling: {positives: 25, negatives: 25, verify: header}
leaderboard: {disease: Effusion, dataset_label: "Tiny B"}
"""
SKIPPED = ("skipped", "failed")


@pytest.fixture(scope="module")
def site_b_dir(tmp_path_factory):
    from runner.data.synthetic import make_demo_dataset

    out = tmp_path_factory.mktemp("site-b") / "site-b"
    make_demo_dataset(out, seed=1, n_patients=45, image_size=128, site="b")
    return out


@pytest.fixture(scope="module")
def registry_root(tmp_path_factory):
    return make_registry_root(tmp_path_factory.mktemp("reg"),
                              {"effusion-tiny": TINY_TASK, "effusion-tiny-transfer": TINY_TRANSFER,
                               "effusion-tiny-b": TINY_B})


@pytest.fixture(scope="module")
def registry(registry_root):
    from registry.cards import clear_cache, load_registry

    clear_cache()
    return load_registry(registry_root)


@pytest.fixture(scope="module")
def runs(registry, demo_data_dir, site_b_dir, tmp_path_factory):
    """pixels (subgroups + paired) then random-cnn (--analyses all) on effusion-tiny, then the transfer task."""
    from runner.evaluate import EvalOptions, run_evaluation

    work = tmp_path_factory.mktemp("runs")

    def run(task, encoder, analyses):
        options = EvalOptions(device="cpu", workers=0, cache_dir=work / "cache", progress=False, analyses=analyses,
                              save_embeddings=True,  # what `runner submit` refits from
                              data_roots={"demo-cxr": demo_data_dir, "demo-cxr-site-b": site_b_dir})
        return run_evaluation(task, encoder, None, work / "out", options, registry=registry)

    first = run("effusion-tiny", "pixels", ["subgroups", "paired"])
    full = run("effusion-tiny", "random-cnn", list(ANALYSES))
    in_domain = run("effusion-tiny-b", "random-cnn", [])  # the target's own images, cross-validated
    transfer = run("effusion-tiny-transfer", "random-cnn", list(ANALYSES))
    return {"work": work, "first": first, "full": full, "in_domain": in_domain, "transfer": transfer}


def test_analyses_all_yields_every_analysis_and_a_valid_result(runs):
    from runner.results.result import validate_result

    result = runs["full"].result
    assert validate_result(result) == []
    analyses = result["analyses"]
    for name in ANALYSES:
        if name == "paired":  # compares encoders: the summarize stage's, never one run's (a run reads no other run)
            assert analyses[name]["status"] == "skipped" and "summarize stage" in analyses[name]["reason"]
            continue
        assert name in analyses and analyses[name].get("status") not in SKIPPED, (name, analyses.get(name))
    run_dir = runs["full"].result_path.parent
    # stability: five views, and views align with their own originals (closer than two different images are)
    stability = analyses["stability"]
    assert set(stability["by_kind"]) == {"rot", "bright", "contrast"} and len(stability["by_view"]) == 5
    assert stability["n_images"] == result["counts"]["positives"] + result["counts"]["negatives"]
    assert stability["overall"]["mean"] > stability["different_images"]["mean"]
    # clustering: k from the card's range, agreement with labels, figures next to the result, coordinates per row
    kmeans = analyses["clustering"]["kmeans"]
    assert kmeans["chosen_k"] in (2, 3, 4) and set(kmeans["silhouette"]) == {"2", "3", "4"}
    assert -1 <= kmeans["ari"] <= 1 and 0 <= kmeans["nmi"] <= 1
    umap = analyses["clustering"]["umap"]
    assert (run_dir / umap["figure"]["png"]).read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (run_dir / umap["figure"]["svg"]).read_bytes()[:500]
    assert len(umap["coordinates"]["x"]) == stability["n_images"]
    # subgroups: sex, age band and view from the demo metadata
    assert set(analyses["subgroups"]["attributes"]) == {"sex", "age", "view"}
    # label efficiency: the card's sizes, a curve file
    assert [p["positives_per_class"] for p in analyses["label_efficiency"]["points"]] == [15, 30]
    assert all(p["mean_auroc"] is not None for p in analyses["label_efficiency"]["points"])
    assert (run_dir / analyses["label_efficiency"]["figure"]).is_file()
    # transfer: by default the transfer tasks that train on this task
    target = analyses["transfer"]["effusion-tiny-transfer"]
    assert 0 <= target["auroc"]["ci_low"] <= target["auroc"]["value"] <= target["auroc"]["ci_high"] <= 1
    assert "NaN" not in runs["full"].result_path.read_text()


def test_an_analysis_that_cannot_apply_says_why(runs):
    paired = runs["first"].result["analyses"]["paired"]
    assert paired["status"] == "skipped" and "summarize stage" in paired["reason"]
    assert runs["first"].result["analyses"]["subgroups"].get("status") not in SKIPPED


def test_transfer_task_trains_on_one_manifest_and_tests_on_the_other(runs):
    from runner.results.result import validate_result

    result = runs["transfer"].result
    assert validate_result(result) == []
    block = result["analyses"]["transfer"]
    assert block["kind"] == "transfer task" and block["train_task"] == "effusion-tiny"
    assert block["train_dataset"] == "demo-cxr" and block["test_dataset"] == "demo-cxr-site-b"
    assert block["n_train"] == runs["full"].result["analyses"]["stability"]["n_images"]
    assert block["train_manifest_sha256"] == runs["full"].result["manifest"]["sha256"]
    assert result["task"]["dataset"] == "demo-cxr-site-b" and result["manifest"]["sha256"] == block["test_manifest_sha256"]
    assert [f["n_train"] for f in result["folds"]] == [block["n_train"]]
    assert result["metrics"]["auroc"]["ci_method"] == "cluster-bootstrap"
    assert result["metrics"]["auroc"]["ci_low"] <= result["metrics"]["auroc"]["mean"] <= result["metrics"]["auroc"]["ci_high"]
    # A result depends only on its own inputs: the in-domain reference is another result, paired by the summarize
    # stage (test_tie_groups_and_analyses_on_the_built_site), never read from the run folder.
    assert "in_domain" not in block
    predictions = pd.read_parquet(runs["transfer"].result_path.parent / "predictions.parquet")
    assert len(predictions) == block["n_test"] and set(predictions["fold"]) == {0}
    assert not predictions["image_id"].str.startswith("train:").any()  # only test images are scored
    # the transfer analysis of the training task trains the same classifier on the same rows: the same number
    analysis = runs["full"].result["analyses"]["transfer"]["effusion-tiny-transfer"]
    assert analysis["auroc"]["value"] == pytest.approx(result["metrics"]["auroc"]["mean"], abs=1e-12)
    for name in ("stability", "clustering", "subgroups", "label_efficiency"):
        assert result["analyses"][name].get("status") not in SKIPPED, (name, result["analyses"][name])


def test_tie_groups_and_analyses_on_the_built_site(runs, registry, tmp_path):
    from leaderboard.filing.layout import predictions_of
    from leaderboard.filing.submit import submit
    from leaderboard.site.render import build_site

    results = tmp_path / "results"
    results.mkdir()
    for run in (runs["first"], runs["full"], runs["in_domain"], runs["transfer"]):
        submit(run.result_path, registry, results_dir=results,
               manifest_path=run.result_path.parent.parent / "manifest.json")
    filed = json.loads((results / "effusion-tiny__random-cnn__reproduced.json").read_text())
    assert predictions_of(results, filed).is_file() and filed["verification"]["tier"] == "embeddings"
    # the registry recomputed the embedding analyses from the bundle (the transfer analysis needs other tasks' images)
    assert {"stability", "clustering", "label_efficiency"} <= set(filed["analyses"]), filed["verification"]
    problems: list = []
    index = build_site(tmp_path / "site", results, registry, problems=problems)
    assert problems == []  # every filed result regenerates at build as it did at submit
    html = index.read_text()
    row = html[html.index('data-task="effusion-tiny"'):]
    row = row[:row.index("</tr>")]
    assert row.count('class="tie best"') == 2  # one best per metric
    assert "α = 0.05" in html and "Holm" in html and "patient bootstrap" in html
    records = {r["encoder"]: r for r in json.loads((index.parent / "leaderboard.json").read_text())["results"]}
    assert {records[e]["auroc_tie"] for e in ("pixels", "random-cnn")} <= {"best", "tied", "worse"}
    assert sorted(r["auroc_tie"] for r in records.values()).count("best") == 1
    assert records["random-cnn"]["stability_mean_cosine"] == runs["full"].result["analyses"]["stability"]["overall"]["mean"]
    assert records["pixels"]["stability_mean_cosine"] is None and records["pixels"]["subgroup_gap_auroc"] is not None
    assert "Stability (mean cos)" in html and "Largest subgroup AUROC gap" in html

    page = (index.parent / "tasks" / "effusion-tiny.html").read_text()
    umap_png = re.search(r'<img src="(effusion-tiny-random-cnn-reproduced-umap\.png)"', page)
    assert umap_png and (index.parent / "tasks" / umap_png.group(1)).read_bytes()[:4] == b"\x89PNG"
    assert 'id="subgroup-table"' in page and 'id="kmeans-table"' in page and 'id="ties-auroc"' in page
    assert 'id="stability-table"' in page
    # the run's own transfer analysis needs the other task's images (not verified, left out); the registry's transfer
    # numbers are the transfer task's result, on its page with the in-domain reference
    assert 'id="transfer-table"' not in page
    transfer_page = (index.parent / "tasks" / "effusion-tiny-transfer.html").read_text()
    assert 'id="transfer-table"' in transfer_page
    assert (index.parent / "tasks" / "effusion-tiny-label-efficiency.png").is_file()
    assert "effusion-tiny-label-efficiency.png" in page
    # The transfer task's in-domain reference (the same encoder cross-validated on the target's own images, same
    # manifest) is paired by the summarize stage from the filed results.
    summary = json.loads((index.parent / "leaderboard.json").read_text())
    (row,) = [t for t in summary["tasks"]["effusion-tiny-transfer"]["views"]["transfer"] if t.get("kind")]
    in_domain = runs["in_domain"].result
    # the same images and labels, under two manifests whose hashes pin their own task and split
    assert in_domain["manifest"]["sha256"] != runs["transfer"].result["manifest"]["sha256"]
    assert row["in_domain"]["task"] == "effusion-tiny-b"
    assert row["in_domain"]["auroc_drop"] == pytest.approx(
        in_domain["metrics"]["auroc"]["mean"] - runs["transfer"].result["metrics"]["auroc"]["mean"])


def test_site_b_has_another_look_and_unknown_sites_are_refused(tmp_path):
    from runner.data.synthetic import DemoDataError, make_demo_dataset

    a = make_demo_dataset(tmp_path / "a", seed=2, n_patients=8, image_size=64)
    b = make_demo_dataset(tmp_path / "b", seed=2, n_patients=8, image_size=64, site="b")
    assert (a.site, b.site) == ("a", "b") and a.n_images == b.n_images  # same plan, other rendering
    corrupt = {c["path"] for c in a.corrupt + b.corrupt}
    rows = {}
    for site in ("a", "b"):
        files = [f for f in sorted((tmp_path / site / "files").rglob("*.dcm"))
                 if f.relative_to(tmp_path / site).as_posix() not in corrupt]
        rows[site] = [int(pydicom.dcmread(f, stop_before_pixels=True).Rows) for f in files]
    assert rows["a"] and max(rows["b"]) < min(rows["a"])  # site B's detector: smaller images
    first = min((tmp_path / "a" / "files").rglob("*.dcm"))
    assert first.read_bytes() != (tmp_path / "b" / first.relative_to(tmp_path / "a")).read_bytes()
    with pytest.raises(DemoDataError, match="unknown site"):
        make_demo_dataset(tmp_path / "c", n_patients=2, image_size=64, site="z")


def test_cli_rejects_a_bad_dataset_root(registry_root, monkeypatch):
    from typer.testing import CliRunner

    from registry.cards import clear_cache
    from runner.cli.main import app

    monkeypatch.setenv("CXR_REGISTRY_ROOT", str(registry_root))
    clear_cache()
    for spec, message in (("nonsense", "expected DATASET=DIR"), ("no-such=/tmp", "no dataset card")):
        out = CliRunner().invoke(app, ["eval", "--task", "effusion-tiny", "--encoder", "random-cnn",
                                       "--dataset-root", spec])
        assert out.exit_code == 2 and message in out.output and "Traceback" not in out.output


def test_runner_eval_finds_the_other_demo_data_set_beside_the_demo_folder(registry, tmp_path, monkeypatch):
    from runner.cli.commands.evaluate import _demo_layout_roots
    from runner.data.synthetic import make_demo_dataset

    monkeypatch.delenv("DEMO_CXR_SITE_B_ROOT", raising=False)
    make_demo_dataset(tmp_path / "data", n_patients=2, image_size=64)
    assert _demo_layout_roots(tmp_path / "data", registry) == {"demo-cxr": tmp_path / "data"}  # no site B yet
    make_demo_dataset(tmp_path / "data-site-b", seed=1, n_patients=2, image_size=64, site="b")
    assert _demo_layout_roots(tmp_path / "data", registry)["demo-cxr-site-b"] == tmp_path / "data-site-b"
    monkeypatch.setenv("DEMO_CXR_SITE_B_ROOT", str(tmp_path / "elsewhere"))  # the environment variable wins
    assert "demo-cxr-site-b" not in _demo_layout_roots(tmp_path / "data", registry)
    assert _demo_layout_roots(tmp_path / "not-demo", registry) == {}
