"""leaderboard.summary.ranking on its own: ranks, ties, Borda, coverage, views, card metadata, overlap marks."""

from __future__ import annotations

import json

import pytest

from leaderboard.summary.ranking import rank_encoders, rank_view


def rec(task, encoder, auroc, provenance="reproduced", dataset="nih-cxr14", benchmarks=("paper-table1",)):
    return {"task": task, "benchmarks": list(benchmarks), "dataset": dataset, "encoder": encoder,
            "provenance": provenance, "auroc": {"mean": auroc, "ci_low": None if auroc is None else auroc - 0.01,
                      "ci_high": None if auroc is None else auroc + 0.01},
            "file": f"{task}__{encoder}__{provenance}.json", "predictions": None}


CARDS = {"a": {"title": "Model A", "parameters": 1000, "embedding": {"dim": 8}, "preprocess": {"size": 224},
               "license": "MIT", "weights": {"hf_repo": "org/a", "files": ["w.safetensors"]},
               "training_datasets": ["mimic-cxr"]},
         "b": {"title": "Model B", "embedding": {"dim": 16}, "weights": {"files": ["w.pt"], "local_dir_env": "B_DIR"}},
         "c": {"title": "Control C", "control": True, "weights": {"random_init": True}}}


def test_ranks_mean_rank_spread_and_borda_by_hand():
    records = [rec("t1", "a", 0.9), rec("t1", "b", 0.8), rec("t1", "c", 0.5),
               rec("t2", "a", 0.7), rec("t2", "b", 0.9), rec("t2", "c", 0.6)]
    view = rank_view(records, CARDS)
    rows = {r["encoder"]: r for r in view["rows"]}
    # t1: a=1, b=2, c=3; t2: b=1, a=2, c=3
    assert rows["a"]["mean_rank"] == 1.5 and rows["b"]["mean_rank"] == 1.5 and rows["c"]["mean_rank"] == 3.0
    assert rows["a"]["rank_sd"] == pytest.approx(0.5) and rows["c"]["rank_sd"] == 0.0
    assert rows["a"]["borda"] == 3.0 and rows["b"]["borda"] == 3.0 and rows["c"]["borda"] == 0.0
    assert rows["a"]["mean_auroc"] == pytest.approx(0.8)
    assert [r["encoder"] for r in view["rows"]] == ["b", "a", "c"]  # equal mean rank: higher mean AUROC first
    assert [r["position"] for r in view["rows"]] == [1, 2, 3]


def test_ties_share_the_average_rank_and_half_a_borda_point():
    view = rank_view([rec("t", "a", 0.8), rec("t", "b", 0.8), rec("t", "c", 0.7)], CARDS)
    rows = {r["encoder"]: r for r in view["rows"]}
    assert rows["a"]["cells"]["t"]["rank"] == 1.5 == rows["b"]["cells"]["t"]["rank"]
    assert rows["a"]["borda"] == 1.5 and rows["c"]["cells"]["t"]["rank"] == 3.0


def test_a_change_of_one_number_changes_the_ranking():
    base = [rec("t", "a", 0.8), rec("t", "b", 0.7)]
    assert rank_view(base, CARDS)["rows"][0]["encoder"] == "a"
    assert rank_view([rec("t", "a", 0.6), rec("t", "b", 0.7)], CARDS)["rows"][0]["encoder"] == "b"


def test_reproduced_is_shown_before_reported_and_coverage_is_counted():
    view = rank_view([rec("t1", "a", 0.95, "reported"), rec("t1", "a", 0.85), rec("t2", "a", 0.75),
                      rec("t1", "b", 0.9)], CARDS)
    rows = {r["encoder"]: r for r in view["rows"]}
    assert rows["a"]["cells"]["t1"]["provenance"] == "reproduced" and rows["a"]["cells"]["t1"]["auroc"] == 0.85
    assert rows["a"]["n_tasks"] == 2 and rows["b"]["n_tasks"] == 1
    assert rows["b"]["cells"]["t1"]["rank"] == 1.0  # b beats a on the one task they share


def test_null_auroc_is_left_out_not_ranked():
    view = rank_view([rec("t", "a", None), rec("t", "b", 0.7)], CARDS)
    assert [r["encoder"] for r in view["rows"]] == ["b"]


def test_card_metadata_and_training_overlap():
    records = [rec("t1", "a", 0.9, dataset="mimic-cxr"), rec("t2", "a", 0.8), rec("t2", "b", 0.7), rec("t2", "c", 0.5)]
    rows = {r["encoder"]: r for r in rank_view(records, CARDS)["rows"]}
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert (a["parameters"], a["embedding_dim"], a["input_size"], a["license"]) == (1000, 8, "224x224", "MIT")
    assert a["open_weights"] and not b["open_weights"] and c["open_weights"] and c["control"]
    assert a["training_overlap"] == ["mimic-cxr"]  # trained on MIMIC, evaluated on a MIMIC task
    assert b["training_overlap"] is None  # the card does not say
    only_nih = rank_view([rec("t2", "a", 0.8)], CARDS)["rows"][0]
    assert only_nih["training_overlap"] == []  # says, and no overlap with these tasks
    assert rank_view([rec("t2", "a", 0.8)], CARDS)["columns"]["training_overlap"] is True  # shown as "no"
    assert rank_view([rec("t2", "b", 0.8)], CARDS)["columns"]["training_overlap"] is False  # no card says
    assert rank_view(records, CARDS)["columns"]["parameters"] is True
    assert rank_view([rec("t2", "b", 0.7)], CARDS)["columns"]["parameters"] is False  # an empty column is hidden


def test_views_per_benchmark_and_dataset_and_the_default():
    records = [rec("t1", "a", 0.9, dataset="mimic-cxr"), rec("t2", "a", 0.8), rec("t2", "b", 0.7),
               rec("d", "c", 0.6, dataset="demo-cxr", benchmarks=("demo",))]
    ranking = rank_encoders(records, CARDS, ["paper-table1", "demo"])
    assert ranking["benchmarks"] == ["paper-table1", "demo"]
    assert ranking["default_view"] == "paper-table1|*"
    views = ranking["views"]
    assert {r["encoder"] for r in views["demo|*"]["rows"]} == {"c"}
    assert [t["id"] for t in views["paper-table1|mimic-cxr"]["tasks"]] == ["t1"]
    assert "demo|mimic-cxr" not in views  # empty combinations are not views
    assert {r["encoder"] for r in views["*|*"]["rows"]} == {"a", "b", "c"}
    json.dumps(ranking, allow_nan=False)  # JSON-able, no NaN


def test_non_finite_auroc_is_refused():
    with pytest.raises(ValueError, match="not a finite number"):
        rank_encoders([rec("t", "a", float("nan"))], CARDS)
