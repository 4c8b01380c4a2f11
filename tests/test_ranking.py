"""leaderboard.summary.ranking on its own: ranks, ties, Borda, the fair task set, controls, synthetic tasks, rank
intervals, views, card metadata, overlap marks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from leaderboard.summary.ranking import (
    RankSettings,
    complete_block,
    rank_encoders,
    rank_view,
    rankdata,
    task_ranks,
)


def rec(task, encoder, auroc, provenance="reproduced", dataset="nih-cxr14", benchmarks=("paper-table1",),
        half=0.01, synthetic=False):
    return {"task": task, "benchmarks": list(benchmarks), "dataset": dataset, "encoder": encoder,
            "synthetic": synthetic, "provenance": provenance, "confidence": 0.95,
            "auroc": {"mean": auroc, "ci_low": None if auroc is None else auroc - half,
                      "ci_high": None if auroc is None else auroc + half},
            "file": f"{task}__{encoder}__{provenance}.json", "predictions": None}


CARDS = {"a": {"title": "Model A", "parameters": 1000, "embedding": {"dim": 8}, "preprocess": {"size": 224},
               "license": "MIT", "weights": {"hf_repo": "org/a", "files": ["w.safetensors"]},
               "training_datasets": ["mimic-cxr"]},
         "b": {"title": "Model B", "embedding": {"dim": 16}, "weights": {"files": ["w.pt"], "local_dir_env": "B_DIR"}},
         "d": {"title": "Model D"},
         "c": {"title": "Control C", "control": True, "weights": {"random_init": True}},
         "m": {"title": "Metadata only", "adapter": "metadata"}}
FAST = RankSettings(replicates=400, level=0.95, seed=0)


def by_encoder(rows):
    return {r["encoder"]: r for r in rows}


@pytest.mark.parametrize("method", ["average", "min"])
def test_rankdata_gives_scipys_ranks(method):
    """The ranking's own rankdata (scipy.stats stays out of the site build) against the reference: ties, -0.0, NaN
    slices, every axis, the same values and dtype."""
    from scipy.stats import rankdata as reference

    rng = np.random.default_rng(0)
    for _ in range(300):
        shape = tuple(int(n) for n in rng.integers(1, 6, size=rng.integers(1, 4)))
        values = rng.integers(0, 4, size=shape) * float(rng.choice([1.0, 0.1, -0.0]))  # many ties
        if rng.random() < 0.5:
            values = values + rng.normal(size=shape) * (rng.random() < 0.5)
        if rng.random() < 0.2:
            values.flat[rng.integers(values.size)] = np.nan
        axis = int(rng.integers(-values.ndim, values.ndim))
        mine, theirs = rankdata(values, axis=axis, method=method), reference(values, axis=axis, method=method)
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape, (values, axis)
        assert np.array_equal(mine, theirs, equal_nan=True), (values, axis, mine, theirs)
    with pytest.raises(ValueError, match="dense"):
        rankdata([1.0, 2.0], method="dense")


def test_the_ranking_imports_no_scipy():
    """`runner leaderboard build` ranks every view; importing scipy.stats for it cost each build ~0.6 CPU-s."""
    import ast
    from pathlib import Path

    from leaderboard.summary import ranking

    tree = ast.parse(Path(ranking.__file__).read_text(encoding="utf-8"))
    imported = [n.module if isinstance(n, ast.ImportFrom) else a.name for n in ast.walk(tree)
                if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names]
    assert [m for m in imported if m and m.split(".")[0] == "scipy"] == []


def test_ranks_mean_rank_spread_and_borda_by_hand():
    records = [rec("t1", "a", 0.9), rec("t1", "b", 0.8), rec("t1", "d", 0.5),
               rec("t2", "a", 0.7), rec("t2", "b", 0.9), rec("t2", "d", 0.6)]
    view = rank_view(records, CARDS, FAST)
    rows = by_encoder(view["rows"])
    # t1: a=1, b=2, d=3; t2: b=1, a=2, d=3
    assert rows["a"]["mean_rank"] == 1.5 and rows["b"]["mean_rank"] == 1.5 and rows["d"]["mean_rank"] == 3.0
    assert rows["a"]["rank_sd"] == pytest.approx(0.5) and rows["d"]["rank_sd"] == 0.0
    assert rows["a"]["borda"] == 3.0 and rows["b"]["borda"] == 3.0 and rows["d"]["borda"] == 0.0
    assert rows["a"]["mean_auroc"] == pytest.approx(0.8)
    assert [r["encoder"] for r in view["rows"]] == ["b", "a", "d"]  # equal mean rank: higher mean AUROC first
    assert [r["position"] for r in view["rows"]] == [1, 2, 3]
    assert view["ranked_tasks"] == ["t1", "t2"] and view["unranked"] == []


def test_ties_share_the_average_rank_and_half_a_borda_point():
    view = rank_view([rec("t", "a", 0.8), rec("t", "b", 0.8), rec("t", "d", 0.7)], CARDS, FAST)
    rows = by_encoder(view["rows"])
    assert rows["a"]["cells"]["t"]["rank"] == 1.5 == rows["b"]["cells"]["t"]["rank"]
    assert rows["a"]["borda"] == 1.5 and rows["d"]["cells"]["t"]["rank"] == 3.0


def test_a_change_of_one_number_changes_the_ranking():
    base = [rec("t", "a", 0.8), rec("t", "b", 0.7)]
    assert rank_view(base, CARDS, FAST)["rows"][0]["encoder"] == "a"
    assert rank_view([rec("t", "a", 0.6), rec("t", "b", 0.7)], CARDS, FAST)["rows"][0]["encoder"] == "b"


def test_reproduced_is_shown_before_reported():
    view = rank_view([rec("t1", "a", 0.95, "reported"), rec("t1", "a", 0.85), rec("t1", "b", 0.9)], CARDS, FAST)
    rows = by_encoder(view["rows"])
    assert rows["a"]["cells"]["t1"]["provenance"] == "reproduced" and rows["a"]["cells"]["t1"]["auroc"] == 0.85
    assert rows["b"]["cells"]["t1"]["rank"] == 1.0


def test_only_tasks_every_ranked_encoder_has_are_ranked():
    """MTEB's rule: a and b have three tasks, d one of them. Ranking all three over that one task (3 results) would
    throw away more than leaving d out (6 results): d is listed, not ranked, with its coverage."""
    records = [rec(t, e, v) for t, e, v in (("t1", "a", 0.9), ("t2", "a", 0.8), ("t3", "a", 0.7),
                                             ("t1", "b", 0.8), ("t2", "b", 0.9), ("t3", "b", 0.6),
                                             ("t1", "d", 0.99))]
    view = rank_view(records, CARDS, FAST)
    assert view["ranked_tasks"] == ["t1", "t2", "t3"] and [r["encoder"] for r in view["rows"]] == ["a", "b"]
    assert by_encoder(view["rows"])["a"]["n_tasks"] == 3
    [d] = view["unranked"]
    assert d["encoder"] == "d" and d["reason"] == "has 1 of the 3 ranked tasks" and d["cells"]["t1"]["rank"] is None
    # with d on two of them, ranking all three over two tasks keeps more results (6) than leaving d out (6, fewer
    # encoders): d is ranked, and the task it lacks is shown outside the ranking
    view = rank_view(records + [rec("t2", "d", 0.5)], CARDS, FAST)
    assert view["ranked_tasks"] == ["t1", "t2"] and {r["encoder"] for r in view["rows"]} == {"a", "b", "d"}
    assert [t["id"] for t in view["tasks"] if not t["ranked"]] == ["t3"]
    assert by_encoder(view["rows"])["a"]["cells"]["t3"]["rank"] is None


def test_the_complete_block_may_be_an_intersection():
    tasks, encoders = complete_block({"a": {"1", "2", "3"}, "b": {"1", "2", "4"}, "d": {"1", "2"}})
    assert (tasks, encoders) == (["1", "2"], ["a", "b", "d"])
    assert complete_block({}) == ([], [])


def test_controls_are_listed_never_ranked_on_clinical_tasks():
    records = [rec("t", "a", 0.7), rec("t", "b", 0.6), rec("t", "c", 0.9), rec("t", "m", 0.95)]
    view = rank_view(records, CARDS, FAST)
    assert [r["encoder"] for r in view["rows"]] == ["a", "b"]
    assert {r["encoder"]: r["reason"] for r in view["unranked"]} == {"c": "control", "m": "control"}
    assert by_encoder(view["unranked"])["m"]["control"]  # a metadata-only card is a control without saying so
    assert task_ranks(records, CARDS)[("t", "a")] == {"rank": 1.0, "of": 2} and ("t", "m") not in task_ranks(
        records, CARDS)


def test_synthetic_tasks_stay_out_of_clinical_views_and_controls_compete_there():
    records = [rec("t1", "a", 0.9, dataset="mimic-cxr"), rec("t2", "a", 0.8), rec("t2", "b", 0.7),
               rec("d", "c", 0.6, dataset="demo-cxr", benchmarks=("demo",), synthetic=True),
               rec("d", "a", 0.5, dataset="demo-cxr", benchmarks=("demo",), synthetic=True),
               # a synthetic task that also joins a clinical benchmark: still never in a clinical view
               rec("dx", "b", 0.99, dataset="demo-cxr", benchmarks=("demo", "paper-table1"), synthetic=True)]
    ranking = rank_encoders(records, CARDS, ["paper-table1", "demo"], ["demo"], FAST)
    assert ranking["benchmarks"] == ["paper-table1", "demo"] and ranking["synthetic_benchmarks"] == ["demo"]
    assert ranking["default_view"] == "paper-table1|*"
    views = ranking["views"]
    assert {t["id"] for t in views["*|*"]["tasks"]} == {"t1", "t2"}
    assert {t["id"] for t in views["paper-table1|*"]["tasks"]} == {"t1", "t2"}
    assert [r["encoder"] for r in views["demo|*"]["rows"]] == ["c", "a"]  # the control ranks, and first
    assert "*|demo-cxr" not in views and "demo|mimic-cxr" not in views  # empty combinations are not views
    assert [t["id"] for t in views["paper-table1|mimic-cxr"]["tasks"]] == ["t1"]
    json.dumps(ranking, allow_nan=False)  # JSON-able, no NaN


def test_the_default_view_is_the_declared_benchmark():
    records = [rec("t1", "a", 0.9, benchmarks=("extended",)), rec("t2", "a", 0.8)]
    assert rank_encoders(records, CARDS, ["extended", "paper-table1"], [], FAST)["default_view"] == "extended|*"
    chosen = rank_encoders(records, CARDS, ["extended", "paper-table1"], [], FAST, default_benchmark="paper-table1")
    assert chosen["default_view"] == "paper-table1|*"
    only_demo = [rec("d", "c", 0.6, benchmarks=("demo",), synthetic=True)]
    assert rank_encoders(only_demo, CARDS, ["paper-table1", "demo"], ["demo"], FAST,
                         default_benchmark="paper-table1")["default_view"] == "demo|*"


def test_rank_intervals_say_when_positions_are_not_separable():
    # a beats b on every one of eight tasks by far more than either interval: separable, [1, 1] and [2, 2]
    clear = [rec(f"t{i}", "a", 0.9, half=0.005) for i in range(8)] + \
            [rec(f"t{i}", "b", 0.7, half=0.005) for i in range(8)]
    view = rank_view(clear, CARDS, FAST)
    assert [r["interval"] for r in view["rows"]] == [[1, 1], [2, 2]] and view["top_separable"]
    assert view["rows"][0]["not_separable_from"] == []
    # a wins 5 of 8 by a hair, within intervals of ± 0.02: the order is not established
    close = [rec(f"t{i}", "a", 0.80 + (0.002 if i < 5 else -0.002), half=0.02) for i in range(8)] + \
            [rec(f"t{i}", "b", 0.80, half=0.02) for i in range(8)]
    view = rank_view(close, CARDS, FAST)
    assert view["rows"][0]["encoder"] == "a" and view["rows"][0]["interval"] == [1, 2]
    assert view["rows"][0]["not_separable_from"] == ["b"] and not view["top_separable"]
    # one task, no interval on its numbers: nothing to resample, the order stands as measured
    assert [r["interval"] for r in rank_view([rec("t", "a", 0.8, half=0), rec("t", "b", 0.7, half=0)], CARDS,
                                             FAST)["rows"]] == [[1, 1], [2, 2]]
    # one task, overlapping intervals: not separable
    assert rank_view([rec("t", "a", 0.80), rec("t", "b", 0.79)], CARDS, FAST)["rows"][0]["interval"] == [1, 2]
    # seeded: the same numbers give the same intervals; the settings are what the card says
    assert rank_view(close, CARDS, FAST) == rank_view(close, CARDS, FAST)


def test_card_metadata_and_training_overlap():
    records = [rec("t1", "a", 0.9, dataset="mimic-cxr"), rec("t2", "a", 0.8), rec("t2", "b", 0.7), rec("t2", "c", 0.5)]
    view = rank_view(records, CARDS, FAST)
    rows = by_encoder(view["rows"] + view["unranked"])
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert (a["parameters"], a["embedding_dim"], a["input_size"], a["license"]) == (1000, 8, "224x224", "MIT")
    assert a["open_weights"] and not b["open_weights"] and c["open_weights"] and c["control"]
    assert a["training_overlap"] == ["mimic-cxr"]  # trained on MIMIC, evaluated on a MIMIC task
    assert b["training_overlap"] is None  # the card does not say
    only_nih = rank_view([rec("t2", "a", 0.8)], CARDS, FAST)["rows"][0]
    assert only_nih["training_overlap"] == []  # says, and no overlap with these tasks
    assert rank_view([rec("t2", "a", 0.8)], CARDS, FAST)["columns"]["training_overlap"] is True  # shown as "no"
    assert rank_view([rec("t2", "b", 0.8)], CARDS, FAST)["columns"]["training_overlap"] is False  # no card says
    assert view["columns"]["parameters"] is True
    assert rank_view([rec("t2", "b", 0.7)], CARDS, FAST)["columns"]["parameters"] is False  # an empty column is hidden


def test_null_auroc_is_left_out_not_ranked():
    view = rank_view([rec("t", "a", None), rec("t", "b", 0.7)], CARDS, FAST)
    assert [r["encoder"] for r in view["rows"]] == ["b"] and view["unranked"] == []


def test_non_finite_auroc_is_refused():
    with pytest.raises(ValueError, match="not a finite number"):
        rank_encoders([rec("t", "a", float("nan"))], CARDS)
