"""Task types end to end on the synthetic demo data: `runner eval` of a task of each scored type, the registry's
regeneration of each result from its embeddings bundle (forgeries refused, as for classification), and the site's
column groups."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from registry.cards import clear_cache, load_registry
from tests.support import REPO

SMALL = {  # the demo cards with samples the session's 80-patient demo data holds
    "findings-demo": {"sampling": {"images": 120, "seed": 0}},
    "sex-demo": {"sampling": {"images": 100, "seed": 0}},
    "effusion-demo-fewshot": {"sampling": {"positives": 40, "negatives": 40, "seed": 0},
                              "few_shot": {"shots": [1, 5], "seeds": [0, 1]}},
    "effusion-demo-retrieval": {"sampling": {"positives": 40, "negatives": 40, "seed": 0}},
    "effusion-demo-clustering": {"sampling": {"positives": 40, "negatives": 40, "seed": 0}},
    "patient-demo": {"sampling": {"patients": 15, "images_per_patient": 3, "seed": 0}},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, demo_data_dir):
    """A registry copy with small typed demo cards, and one `runner eval` of each with the pixels encoder."""
    from runner.evaluate import EvalOptions, run_evaluation

    root = tmp_path_factory.mktemp("registry")
    for sub in ("tasks", "encoders", "registry/datasets"):
        shutil.copytree(REPO / sub, root / sub)
    for task_id, change in SMALL.items():
        path = root / "tasks" / f"{task_id}.yaml"
        card = yaml.safe_load(path.read_text())
        card.update(change)
        path.write_text(yaml.safe_dump(card, sort_keys=False))
    clear_cache()
    reg = load_registry(root)
    out = tmp_path_factory.mktemp("runs")
    options = EvalOptions(device="cpu", workers=1, progress=False, cache_dir=out / "cache")
    results = {task_id: run_evaluation(task_id, "pixels", demo_data_dir, out, options, registry=reg).result_path
               for task_id in SMALL}
    return reg, results


def test_each_type_runs_and_writes_its_metrics_and_bundle(runs):
    reg, results = runs
    expected = {"findings-demo": {"auroc"}, "sex-demo": {"auroc"}, "effusion-demo-fewshot": {"auroc_at_1", "auroc_at_5"},
                "effusion-demo-retrieval": {"map", "ndcg_at_10", "precision_at_1", "precision_at_5", "precision_at_10"},
                "effusion-demo-clustering": {"v_measure", "nmi", "ari", "accuracy"},
                "patient-demo": {"map", "recall_at_1", "recall_at_5", "recall_at_10"}}
    for task_id, path in results.items():
        result = json.loads(path.read_text())
        assert set(result["metrics"]) == expected[task_id], task_id
        assert result["task"]["type"] == reg.tasks[task_id].spec.type and result["details"]
        assert (path.parent / "embeddings.npz").is_file() and result["embeddings_sha256"]


@pytest.fixture(scope="module")
def filed(runs, tmp_path_factory):
    """(results folder, {task id: what submit returned}): each run filed once by `runner submit`'s code, which
    regenerates it from its bundle. Read-only: the site test builds from the folder."""
    from leaderboard.filing.submit import submit

    reg, results = runs
    folder = tmp_path_factory.mktemp("filed") / "filed"
    return folder, {task_id: submit(path, reg, results_dir=folder) for task_id, path in results.items()}


def test_the_registry_files_its_own_regeneration_and_refuses_forgeries(runs, filed, tmp_path):
    from leaderboard.filing.submit import SubmitError, filed_problems, submit

    reg, results = runs
    filed, submitted = filed
    for task_id, out in submitted.items():
        assert json.loads(out.path.read_text())["verification"]["tier"] == "embeddings", task_id
        # what leaderboard build checks: the filed result regenerates as filed from the filed bundle alone
        assert filed_problems(out.path, json.loads(out.path.read_text()), reg) == [], task_id
    assert not list(filed.glob("predictions/*"))  # a scored type files no predictions
    # a number edited in the result: refused, naming it
    path = results["findings-demo"]
    forged = json.loads(path.read_text())
    forged["details"]["targets"]["edema"]["auroc"]["mean"] = 0.99
    path.with_name("forged.json").write_text(json.dumps(forged))
    with pytest.raises(SubmitError, match="/details/targets/edema/auroc/mean"):
        submit(path.with_name("forged.json"), reg, results_dir=tmp_path / "other")
    # embeddings swapped for better ones (the result and its sha256 made to match): the numbers no longer regenerate
    from runner.data.fingerprint import file_sha256
    from runner.results.bundle import read_bundle, write_bundle

    run = path.parent
    bundle = read_bundle(run / "embeddings.npz")
    better = bundle.original + np.random.default_rng(0).normal(size=bundle.original.shape).astype(np.float32)
    fake_dir = tmp_path / "fake" / "findings-demo" / "pixels"
    fake_dir.mkdir(parents=True)
    for name in ("manifest.json", "manifest.parquet", "exclusions.csv"):
        shutil.copy(run.parent / name, fake_dir.parent / name)
    write_bundle(fake_dir / "embeddings.npz", bundle.image_ids, better, {}, bundle.header)
    claimed = json.loads(path.read_text())
    claimed["embeddings_sha256"] = file_sha256(fake_dir / "embeddings.npz")
    (fake_dir / "result.json").write_text(json.dumps(claimed))
    with pytest.raises(SubmitError, match="numbers differ"):
        submit(fake_dir / "result.json", reg, results_dir=tmp_path / "other2")
    # no bundle: nothing to regenerate from
    (fake_dir / "embeddings.npz").unlink()
    with pytest.raises(SubmitError, match="not there"):
        submit(fake_dir / "result.json", reg, results_dir=tmp_path / "other3")
    del claimed["embeddings_sha256"]
    (fake_dir / "result.json").write_text(json.dumps(claimed))
    with pytest.raises(SubmitError, match="regenerated from the run's embeddings"):
        submit(fake_dir / "result.json", reg, results_dir=tmp_path / "other4")


def test_the_site_shows_a_column_group_per_type_and_what_each_measures(runs, filed, tmp_path):
    from leaderboard.site.render import build_site

    reg, _results = runs
    site = build_site(tmp_path / "site", filed[0], registry=reg)
    index = (Path(site).parent if Path(site).is_file() else Path(site)) / "index.html"
    html = index.read_text()
    for group, header in (("multi-label", "Macro AUROC"), ("retrieval", "nDCG@10"), ("clustering", "V-measure"),
                          ("reidentification", "Re-identified at rank 1"), ("few-shot", "AUROC, 5 per class")):
        assert f'id="section-demo-{group}"' in html, group
        assert header in html, header
    assert "privacy risk" in html  # re-identification: high is a risk, nothing marked best
    page = (index.parent / "tasks" / "findings-demo.html").read_text()
    assert "What this task measures: Multi-label findings" in page and "Floor." in page
    encoders = (index.parent / "encoders.html").read_text()
    assert 'data-view="demo-types~multi-label|' in encoders and "ranked by Macro AUROC" in encoders
