"""Shortcut floors and controls: metadata features, the metadata baseline, deferred file checks on a metadata-only
data root, view-matched sampling, within-view AUROC, per-fold binning, floors on the site, training-data overlap.

The NIH cases use the REAL NIH ChestX-ray14 metadata that ships in the torchxrayvision wheel (no image is needed).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def real_registry():
    from registry.cards import clear_cache, load_registry

    clear_cache()
    return load_registry()


@pytest.fixture(scope="module")
def nih_index(real_registry, tmp_path_factory):
    """The real NIH metadata read from a data root that holds nothing (the dataset card's fallback_package)."""
    pytest.importorskip("torchxrayvision")
    from runner.data import read_index

    root = tmp_path_factory.mktemp("nih-metadata-only")
    return read_index(real_registry.datasets["nih-cxr14"].data, root, ["edema"])


# ------------------------------------------------------------------------------------------ metadata features


def test_nih_metadata_features_reach_the_index(nih_index):
    frame = nih_index.frame
    assert {"meta_view", "meta_age", "meta_sex", "meta_follow_up"} <= set(frame.columns)
    assert frame["meta_view"].value_counts().to_dict() == {"PA": 67310, "AP": 44810}
    assert frame["meta_follow_up"].dtype == np.float64 and frame["meta_follow_up"].min() == 0
    assert set(frame["meta_sex"].dropna()) == {"M", "F"}
    assert nih_index.files_found == 0  # no image on disk: the sample must defer its file checks


def test_a_missing_feature_column_costs_only_the_feature(tmp_path):
    """A declared feature whose column the table lacks is left out (image runs still work); the baseline says so."""
    from runner.data import read_index
    from runner.encoders.metadata import MetadataNotAvailable, feature_matrix

    (tmp_path / "metadata.csv").write_text("image_id,patient_id,path,view,effusion\na,p1,a.png,PA,1\nb,p2,b.png,AP,0\n")
    card = {"id": "tiny", "kind": "csv", "files": {"metadata": ["metadata.csv"]},
            "columns": {"image_id": "image_id", "patient_id": "patient_id", "path": "path", "view": "view"},
            "labels": {"effusion": {"column": "effusion"}},
            "metadata_features": [{"name": "view", "column": "view", "type": "categorical", "kind": "acquisition"},
                                  {"name": "age", "column": "Patient Age", "type": "numeric", "kind": "demographic"}]}
    frame = read_index(card, tmp_path).frame
    assert "meta_view" in frame.columns and "meta_age" not in frame.columns
    x, names = feature_matrix(frame, {"id": "metadata"}, "tiny", card["metadata_features"])
    assert names == ["view=AP", "view=PA"] and x.tolist() == [[0, 1], [1, 0]]
    with pytest.raises(MetadataNotAvailable, match="no feature 'age'"):
        feature_matrix(frame, {"id": "metadata-age", "model": {"features": ["age"]}}, "tiny", card["metadata_features"])


KINDS = [{"name": "view", "kind": "acquisition"}, {"name": "age", "kind": "demographic"},
         {"name": "sex", "kind": "demographic"}, {"name": "method", "kind": "label-source"}]


def test_feature_matrix_one_hot_numbers_and_missing():
    from runner.encoders.metadata import MetadataNotAvailable, feature_matrix

    frame = pd.DataFrame({"image_id": ["a", "b", "c"], "meta_view": ["PA", None, "AP"],
                          "meta_age": [30.0, np.nan, 70.0], "meta_sex": ["=HYPERLINK(1)", "F", "F"]})
    x, names = feature_matrix(frame, {"id": "metadata"}, "t", KINDS)
    assert names == ["view=AP", "view=PA", "age", "sex==HYPERLINK(1)", "sex=F"]
    assert np.isnan(x[1, :3]).all() and x[0].tolist()[:3] == [0, 1, 30]  # missing stays missing, not a category
    only_view, view_names = feature_matrix(frame, {"id": "v", "model": {"features": ["view"]}}, "t", KINDS)
    assert view_names == ["view=AP", "view=PA"] and only_view.shape == (3, 2)  # the card's features field selects
    with pytest.raises(MetadataNotAvailable, match="carries no metadata features"):
        feature_matrix(frame[["image_id"]], {"id": "metadata"}, "nometa", KINDS)


def test_feature_kinds_decide_which_floor_a_column_enters():
    """The dataset card's `kind` and the encoder card's `model.kinds` (default: acquisition + demographic, from the
    schema) select the columns: a label-source column never enters the shortcut floor, only the label-source floor;
    changing a column's kind moves it."""
    from registry.schemas import load_schema
    from runner.encoders.metadata import MetadataNotAvailable, feature_matrix, wanted_kinds

    frame = pd.DataFrame({"image_id": ["a", "b"], "meta_view": ["PA", "AP"], "meta_age": [30.0, 70.0],
                          "meta_method": ["physician", "model"]})
    default = load_schema("encoder")["$defs"]["metadata_model"]["properties"]["kinds"]["default"]
    assert wanted_kinds({"id": "metadata"}) == default == ["acquisition", "demographic"]
    assert feature_matrix(frame, {"id": "metadata"}, "t", KINDS)[1] == ["view=AP", "view=PA", "age"]
    label_source = {"id": "ls", "model": {"kinds": ["label-source"]}}
    assert feature_matrix(frame, label_source, "t", KINDS)[1] == ["method=model", "method=physician"]
    only_demographic = {"id": "d", "model": {"kinds": ["demographic"]}}
    assert feature_matrix(frame, only_demographic, "t", KINDS)[1] == ["age"]
    relabelled = [dict(f, kind="acquisition") if f["name"] == "method" else f for f in KINDS]
    assert "method=model" in feature_matrix(frame, {"id": "metadata"}, "t", relabelled)[1]  # the kind moved it
    with pytest.raises(MetadataNotAvailable, match="kind 'label-source'"):
        feature_matrix(frame, {"id": "x", "model": {"features": ["method"]}}, "t", KINDS)
    with pytest.raises(MetadataNotAvailable, match="none of its features"):
        feature_matrix(frame[["image_id", "meta_view"]], label_source, "t", KINDS)
    with pytest.raises(MetadataNotAvailable, match="none of its features"):  # kinds unknown: nothing is guessed
        feature_matrix(frame, {"id": "metadata"}, "t", None)


def test_padchest_label_method_is_the_label_source_floor_only(real_registry):
    """On the real cards: PadChest's MethodLabel is label-source, so the shortcut floor (metadata) leaves it out and the
    label-source floor uses it alone; every declared feature of every data set has a kind."""
    from runner.encoders.metadata import wanted_kinds

    declared = real_registry.datasets["padchest"].data["metadata_features"]
    kinds = {f["name"]: f["kind"] for f in declared}
    assert kinds["label_method"] == "label-source" and kinds["view"] == "acquisition"
    floor = wanted_kinds(real_registry.encoders["metadata"].data)
    label_source = wanted_kinds(real_registry.encoders["metadata-label-source"].data)
    assert [n for n, k in kinds.items() if k in floor] == ["view", "sex", "birth_year", "manufacturer"]
    assert [n for n, k in kinds.items() if k in label_source] == ["label_method"]
    for dataset in real_registry.datasets.values():
        assert all(f["kind"] in ("acquisition", "demographic", "label-source")
                   for f in dataset.data.get("metadata_features") or [])


# ------------------------------------------------------------------------------------------ deferred file checks


def _metadata_only_copy(demo_data_dir: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(demo_data_dir / "metadata.csv", folder / "metadata.csv")
    return folder


def test_metadata_only_root_samples_the_same_images(real_registry, demo_data_dir, tmp_path):
    from runner.sample.manifest import content_sha256
    from runner.sample.sampler import SamplingError, sample_task

    task, dataset = dict(real_registry.tasks["effusion-demo"].data), real_registry.datasets["demo-cxr"].data
    task["sampling"] = {**task["sampling"], "positives": 50, "negatives": 50}  # the session's small demo data
    bare = _metadata_only_copy(demo_data_dir, tmp_path / "bare")
    with pytest.raises(SamplingError, match="missing-file"):
        sample_task(task, dataset, bare)  # an image encoder cannot sample from metadata alone
    deferred = sample_task(task, dataset, bare, defer_verify_without_images=True)
    assert deferred.verify == "deferred" and "without a file check" in deferred.verify_note
    unchecked = sample_task(task, dataset, demo_data_dir, verify="none")
    assert content_sha256(deferred.frame, {}) == content_sha256(unchecked.frame, {})
    checked = sample_task(task, dataset, demo_data_dir, defer_verify_without_images=True)  # images there: checked
    assert checked.verify == "decode" and checked.verify_note is None
    replaced = set(deferred.frame["image_id"]) - set(checked.frame["image_id"])
    assert replaced == {e.image_id for e in checked.exclusions}  # differs exactly by the files that fail a check
    assert (content_sha256(deferred.frame, {}) == content_sha256(checked.frame, {})) == (not checked.exclusions)


@pytest.fixture(scope="module")
def metadata_registry(tmp_path_factory):
    from tests.support import make_registry_root

    root = make_registry_root(tmp_path_factory.mktemp("reg-meta"), {
        "effusion-small": "extends: _defaults-demo.yaml\nid: effusion-small\ntitle: Effusion (small)\n"
                          "dataset: demo-cxr\nlabel: {id: effusion, name: Effusion}\n"
                          "sampling: {positives: 50, negatives: 50}\n"})
    for enc in ("metadata", "metadata-view"):
        shutil.copy(REPO / "encoders" / f"{enc}.yaml", root / "encoders" / f"{enc}.yaml")
    return root


def test_metadata_baseline_runs_from_a_metadata_only_root(metadata_registry, demo_data_dir, tmp_path):
    from registry.cards import clear_cache, load_registry
    from runner.evaluate import EvalOptions, run_evaluation
    from runner.results.result import validate_result
    from runner.sample.manifest import read_manifest

    clear_cache()
    reg = load_registry(metadata_registry)
    bare = _metadata_only_copy(demo_data_dir, tmp_path / "bare")
    options = EvalOptions(device="cpu", workers=0, cache_dir=tmp_path / "cache", progress=False)
    full = run_evaluation("effusion-small", "metadata", bare, tmp_path / "out", options, reg)
    view = run_evaluation("effusion-small", "metadata-view", bare, tmp_path / "out", options, reg)
    for run in (full, view):
        assert validate_result(run.result) == []
        assert run.result["manifest"]["sha256"] == full.result["manifest"]["sha256"]  # one sample for both
        assert 0 <= run.result["metrics"]["auroc"]["mean"] <= 1
    assert full.result["analyses"]["metadata_features"]["columns"][:2] == ["view=AP", "view=PA"]
    assert "age" in full.result["analyses"]["metadata_features"]["columns"]
    assert view.result["analyses"]["metadata_features"]["columns"] == ["view=AP", "view=PA"]
    assert set(full.result["analyses"]["within_view"]["views"]) == {"PA", "AP"}
    manifest = read_manifest(tmp_path / "out" / "effusion-small")
    assert manifest.meta["verify"] == "deferred" and "verify_note" in manifest.meta
    assert {"meta_view", "meta_sex", "meta_age"} <= set(manifest.frame.columns)  # frozen with the sample


def test_metadata_baseline_not_available_is_exit_2(metadata_registry, demo_data_dir, tmp_path):
    from registry.cards import clear_cache, load_registry
    from runner.evaluate import EvalOptions, EvaluationError, run_evaluation

    root = tmp_path / "reg"
    shutil.copytree(metadata_registry, root)
    card = root / "registry" / "datasets" / "demo-cxr.yaml"
    text = card.read_text(encoding="utf-8")
    card.write_text(text[: text.index("metadata_features:")], encoding="utf-8")
    clear_cache()
    reg = load_registry(root)
    options = EvalOptions(device="cpu", workers=0, cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(EvaluationError, match="not available for dataset 'demo-cxr'") as raised:
        run_evaluation("effusion-small", "metadata", _metadata_only_copy(demo_data_dir, tmp_path / "bare"),
                       tmp_path / "out", options, reg)
    assert raised.value.exit_code == 2 and "metadata_features" in str(raised.value)


# ------------------------------------------------------------------------------------------ matched sampling


def _pool(n_pos=300, n_neg=6000, seed=0):
    rng = np.random.default_rng(seed)
    n = n_pos + n_neg
    label = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    # positives mostly AP and old, negatives mostly PA: the shortcut the control removes
    ap = np.where(label == 1, rng.random(n) < 0.85, rng.random(n) < 0.35)
    age = np.where(label == 1, rng.normal(70, 10, n), rng.normal(58, 18, n)).clip(1, 99)
    age[rng.random(n) < 0.02] = np.nan
    return pd.DataFrame({"image_id": [f"i{i:05d}" for i in range(n)], "patient_id": [f"p{i // 2}" for i in range(n)],
                         "study_id": [f"s{i}" for i in range(n)], "path": [f"f/{i}.png" for i in range(n)],
                         "view": np.where(ap, "AP", "PA"), "sex": np.where(rng.random(n) < 0.5, "M", "F"),
                         "age": age, "effusion": label})


def _task(match=None, n=200):
    return {"id": "matched", "label": {"id": "effusion"}, "views": ["PA", "AP"],
            "label_policy": {"positive": [1.0], "negative": [0.0], "uncertain": "exclude", "blank": "exclude"},
            "sampling": {"positives": n, "negatives": n, "seed": 0, "match": match},
            "split": {"method": "stratified-group-kfold", "folds": 5, "seed": 0}}


@pytest.mark.parametrize("strata", [["view"], ["view", "sex", "age_band"]])
def test_matched_negatives_have_the_positives_strata(strata):
    from runner.data import DatasetIndex
    from runner.sample.sampler import sample_task, stratum_keys

    index = DatasetIndex("synthetic", Path("."), _pool())
    match = {"strata": strata}
    plain = sample_task(_task(), {}, Path("."), verify="none", index=index)
    matched = sample_task(_task(match), {}, Path("."), verify="none", index=index)
    frame = matched.frame
    assert (frame["label"] == 1).sum() == 200 and (frame["label"] == 0).sum() == 200  # exact N/N kept
    keys = stratum_keys(frame, match)
    by_class = pd.crosstab(keys, frame["label"])
    assert (by_class[0] == by_class[1]).all()  # every stratum: as many negatives as positives
    assert set(plain.frame.loc[plain.frame["label"] == 1, "image_id"]) == \
        set(frame.loc[frame["label"] == 1, "image_id"])  # the same positives as the unmatched task
    ap = plain.frame.groupby("label")["view"].apply(lambda v: (v == "AP").mean())
    assert ap[1] - ap[0] > 0.3  # without matching the view is a shortcut
    assert sum(s["negatives"] for s in matched.matching["per_stratum"].values()) == 200


def test_match_counts_and_shortfall():
    from runner.data import DatasetIndex
    from runner.sample.sampler import SamplingError, match_counts, sample_task

    keys = pd.Series(["a"] * 5 + ["b"] * 3 + ["c"] * 2)
    assert match_counts(keys, 10) == {"a": 5, "b": 3, "c": 2}
    assert match_counts(keys, 4) == {"a": 2, "b": 1, "c": 1}  # largest remainder, still exactly 4
    assert sum(match_counts(keys, 7).values()) == 7
    pool = _pool(n_pos=300, n_neg=400)
    pool.loc[(pool["effusion"] == 0) & (pool["view"] == "AP"), "effusion"] = np.nan  # no AP negatives left
    with pytest.raises(SamplingError, match="stratum view=AP"):
        sample_task(_task({"strata": ["view"]}), {}, Path("."), verify="none", index=DatasetIndex("s", Path("."), pool))


def test_nih_view_matched_tasks_match_on_the_real_metadata(real_registry, nih_index, tmp_path):
    from runner.sample.sampler import sample_task

    base = sample_task(real_registry.tasks["edema-nih"].data, real_registry.datasets["nih-cxr14"].data, tmp_path,
                       index=nih_index, defer_verify_without_images=True)
    matched = sample_task(real_registry.tasks["edema-nih-view-matched"].data, real_registry.datasets["nih-cxr14"].data,
                          tmp_path, index=nih_index, defer_verify_without_images=True)
    for sample in (base, matched):
        assert sample.verify == "deferred"
        assert (sample.frame["label"] == 1).sum() == 1000 and (sample.frame["label"] == 0).sum() == 1000
    share = lambda s: s.frame.groupby("label")["view"].apply(lambda v: (v == "AP").mean())
    assert share(base)[1] > share(base)[0] + 0.3  # edema positives are mostly AP films, negatives not
    assert share(matched)[1] == share(matched)[0]  # matched exactly
    assert set(base.frame.query("label == 1")["image_id"]) == set(matched.frame.query("label == 1")["image_id"])


def test_matched_controls_match_sex_and_age_band_on_the_real_metadata(real_registry, nih_index, tmp_path):
    """The control cards' `match.strata` [view, sex, age_band]: the negatives' male share and age-band mix equal the
    positives' exactly; with the card's strata cut back to [view] (what they said before) they do not."""
    import copy

    from runner.sample.sampler import sample_task

    task = real_registry.tasks["edema-nih-view-matched"].data
    assert task["sampling"]["match"]["strata"] == ["view", "sex", "age_band"]
    dataset = real_registry.datasets["nih-cxr14"].data
    view_only = copy.deepcopy(task)
    view_only["sampling"]["match"] = {"strata": ["view"]}
    mixes = {}
    for name, card in (("card", task), ("view only", view_only)):
        frame = sample_task(card, dataset, tmp_path, index=nih_index, defer_verify_without_images=True).frame
        bands = pd.cut(frame["age"].astype(float), [0, 40, 60, 80, 200], right=False)
        mixes[name] = (pd.crosstab(frame["sex"], frame["label"]), pd.crosstab(bands, frame["label"]))
    for table in mixes["card"]:
        assert (table[0.0] == table[1.0]).all()
    assert any((table[0.0] != table[1.0]).any() for table in mixes["view only"])


def test_age_bands_default_lives_in_the_schema_only(real_registry):
    """matched sampling, the age target and subgroups read one schema default; a card's own bands change the strata."""
    from registry.schemas import load_schema
    from runner.sample.sampler import match_with_defaults, stratum_keys

    default = load_schema("data-defs")["$defs"]["age_bands"]["default"]
    assert match_with_defaults({"strata": ["age_band"]})["age_bands"] == default
    assert real_registry.tasks["age-nih"].data["target"]["age_bands"] == default
    assert real_registry.tasks["edema-nih"].data["analyses"]["subgroups"]["age_bands"] == default
    assert real_registry.tasks["edema-nih-view-matched"].data["sampling"]["match"]["age_bands"] == default
    frame = pd.DataFrame({"age": [35.0, 65.0, 85.0]})
    assert stratum_keys(frame, {"strata": ["age_band"]}).tolist() == \
        ["age_band=0-40", "age_band=60-80", "age_band=80-200"]
    assert stratum_keys(frame, {"strata": ["age_band"], "age_bands": [0, 60, 200]}).tolist() == \
        ["age_band=0-60", "age_band=60-200", "age_band=60-200"]


def test_every_view_matched_card_matches_a_base_task(real_registry):
    for task in real_registry.tasks.values():
        match = (task.data.get("sampling") or {}).get("match")
        if not match:
            continue
        base = real_registry.tasks[task.id.replace("-view-matched", "")].data
        assert match["strata"] == ["view", "sex", "age_band"]
        assert {k: base[k] for k in ("dataset", "label", "views", "split")} == \
            {k: task.data[k] for k in ("dataset", "label", "views", "split")}


# ------------------------------------------------------------------------------------------ classifier, within view


def test_bin_edges_come_from_training_rows_only():
    """An extreme value in one test row must not move the predictions of the other test rows (shared binning did)."""
    from runner.classify.out_of_fold import classify

    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=(n, 4)).astype(np.float32)
    table = pd.DataFrame({"image_id": [f"i{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)],
                          "label": (x[:, 0] + rng.normal(scale=0.5, size=n) > 0).astype(int), "fold": np.arange(n) % 3})
    card = {"type": "lightgbm", "seed": 0, "num_threads": 1,
            "params": {"n_estimators": 40, "max_bin": 15, "min_data_in_leaf": 5, "learning_rate": 0.2}}
    before = classify(x, table, card, [0]).predictions.set_index("image_id")["prob"]
    moved = x.copy()
    moved[0, :] = 1e6  # row 0 is in test fold 0
    after = classify(moved, table, card, [0]).predictions.set_index("image_id")["prob"]
    others = [i for i in before.index if i != "i0"]
    assert np.array_equal(before[others].to_numpy(), after[others].to_numpy())


def test_missing_values_only_where_allowed():
    from runner.classify.out_of_fold import ClassifyError, classify

    x = np.ones((40, 2), dtype=np.float32)
    x[::3, 1] = np.nan
    table = pd.DataFrame({"image_id": [f"i{i}" for i in range(40)], "patient_id": [f"p{i}" for i in range(40)],
                          "label": np.arange(40) % 2, "fold": np.arange(40) % 2})
    card = {"type": "lightgbm", "params": {"n_estimators": 5, "min_data_in_leaf": 2}, "num_threads": 1}
    with pytest.raises(ClassifyError, match="NaN"):
        classify(x, table, card, [0, 1])
    assert len(classify(x, table, card, [0, 1], allow_missing=True).predictions) == 40
    x[0, 0] = np.inf
    with pytest.raises(ClassifyError, match="Infinity"):
        classify(x, table, card, [0, 1], allow_missing=True)


def test_a_view_detector_is_at_chance_within_each_view():
    from runner.analysis.within_view import within_view_auroc
    from runner.metrics.summary import summarize

    rng = np.random.default_rng(0)
    n = 800
    label = rng.integers(0, 2, n)
    view = np.where(rng.random(n) < np.where(label == 1, 0.85, 0.3), "AP", "PA")
    predictions = pd.DataFrame({"image_id": [f"i{i}" for i in range(n)], "patient_id": [f"p{i // 2}" for i in range(n)],
                                "label": label, "fold": np.arange(n) % 5,
                                "prob": (view == "AP") * 0.6 + 0.2})  # knows only the view
    overall = summarize(predictions, {"bootstrap": {"n": 200}})["auroc"]["mean"]
    out = within_view_auroc(predictions, view, {"bootstrap": {"n": 200}}, ["PA", "AP"])
    assert overall > 0.7
    for v in ("PA", "AP"):
        assert out["views"][v]["auroc"]["mean"] == pytest.approx(0.5)
        assert out["views"][v]["n_positives"] + out["views"][v]["n_negatives"] == int((view == v).sum())
    none = within_view_auroc(predictions, np.full(n, "PA"), None, ["PA", "AP"])
    assert none["views"]["AP"]["auroc"] is None and "undefined" in none["views"]["AP"]["reason"]
    json.dumps(out, allow_nan=False)


# ------------------------------------------------------------------------------------------ floors, site, overlap


def test_training_data_overlap(real_registry):
    from registry.overlap import trained_on, unknown_training_datasets

    cards = {e.id: e.data for e in real_registry.encoders.values()}
    assert unknown_training_datasets(cards, real_registry.datasets) == {}
    assert trained_on(cards["medimageinsight"], "nih-cxr14") is True
    assert trained_on(cards["cxr-foundation"], "nih-cxr14") is False
    assert trained_on(cards["cxr-foundation"], "mimic-cxr") is True
    assert trained_on({"id": "x"}, "nih-cxr14") is None  # the card does not say: unknown, not "no"
    assert unknown_training_datasets({"typo": {"training_datasets": ["nih-cxr-14"]}}, ["nih-cxr14"]) == \
        {"typo": ["nih-cxr-14"]}


def _filed(task_id: str, encoder_id: str) -> dict:
    from tests.support import RESULTS_DIR

    return json.loads((RESULTS_DIR / f"{task_id}__{encoder_id}__reproduced.json").read_text(encoding="utf-8"))


NIH_TASKS = ("atelectasis-nih", "edema-nih", "effusion-nih", "opacity-nih")


def test_filed_floors_are_real_and_the_view_matched_view_floor_is_near_chance(real_registry):
    """The floors `python -m leaderboard.filing.file_floors` filed: all 16, from the real metadata, N/N as the cards say."""
    for task_id in NIH_TASKS:
        for task in (task_id, task_id + "-view-matched"):
            sampling = real_registry.tasks[task].data["sampling"]
            full, view = _filed(task, "metadata"), _filed(task, "metadata-view")
            assert full["manifest"]["sha256"] == view["manifest"]["sha256"]
            assert not full["synthetic"] and full["task"]["dataset"] == "nih-cxr14"
            assert (full["counts"]["positives"], full["counts"]["negatives"]) == \
                (sampling["positives"], sampling["negatives"])
            assert view["analyses"]["metadata_features"]["columns"] == ["view=AP", "view=PA"]
        matched_view = _filed(task_id + "-view-matched", "metadata-view")["metrics"]["auroc"]["mean"]
        assert abs(matched_view - 0.5) < 0.05, (task_id, matched_view)
        assert _filed(task_id, "metadata-view")["metrics"]["auroc"]["mean"] > matched_view


def test_floors_file_groups_and_the_filed_label_source_and_follow_up_floors(real_registry):
    """leaderboard/floors.yaml's `also` groups add (task, encoder) cells beyond encoders x tasks; every cell is filed;
    the label-source floor uses PadChest's label method alone and the shortcut floor never does; the follow-up floor
    uses NIH's 'Follow-up #' alone."""
    from leaderboard.filing.file_floors import floor_cells, read_floor_cells

    spec = {"encoders": ["a"], "tasks": ["t1", "t2"], "also": [{"encoders": ["b"], "tasks": ["t2"]}]}
    assert floor_cells(spec) == [("t1", "a"), ("t2", "a"), ("t2", "b")]
    assert floor_cells({k: v for k, v in spec.items() if k != "also"}) == [("t1", "a"), ("t2", "a")]
    cells = read_floor_cells(REPO / "leaderboard" / "floors.yaml", real_registry)
    for task_id, encoder_id in cells:
        result = _filed(task_id, encoder_id)
        columns = result["analyses"]["metadata_features"]["columns"]
        if encoder_id == "metadata-label-source":
            assert {c.split("=")[0] for c in columns} == {"label_method"}
        elif encoder_id == "metadata-follow-up":
            assert columns == ["follow_up"]
        else:
            assert not any(c.startswith("label_method") for c in columns), (task_id, encoder_id)
    assert ("edema-padchest-view-matched", "metadata-label-source") in cells


@pytest.mark.parametrize(("text", "message"), [
    ("encoders: [metadata]\ntasks: [efusion-nih]\n", "/tasks/0: no task card 'efusion-nih'"),
    ("encoders: [metadata]\ntasks: [effusion-nih]\nalso:\n  - {encoders: [metadata-viewz], tasks: [edema-nih]}\n",
     "/also/0/encoders/0: no encoder card 'metadata-viewz'"),
    ("encoders: [metadata]\n", "missing required field 'tasks'"),
    ("encoders: [metadata]\ntasks: [effusion-nih]\ntask: [edema-nih]\n", "unknown field 'task'"),
    ("encoders: metadata\ntasks: [effusion-nih]\n", "/encoders"),
    ("encoders: [metadata]\ntasks: [effusion-nih]\ntasks: [edema-nih]\n", "duplicate key"),
    ("- effusion-nih\n", "/"),
])
def test_a_malformed_floors_file_is_refused_naming_the_field(real_registry, tmp_path, text, message):
    """leaderboard/floors.yaml is read as a card is (registry/schemas/floors.schema.json, then its ids against the
    cards): each problem names the file, line and field before anything is evaluated, never a traceback."""
    from leaderboard.filing.file_floors import read_floor_cells
    from registry.errors import CardError

    path = tmp_path / "floors.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CardError) as info:
        read_floor_cells(path, real_registry)
    assert message in str(info.value) and str(path) in str(info.value), str(info.value)


def test_compute_floors_and_the_site_shows_them(real_registry, real_site):
    from leaderboard.summary.floors import compute_floors
    from tests.support import RESULTS_DIR

    results = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(RESULTS_DIR.glob("*.json"))]
    floors = compute_floors(results, real_registry)
    json.dumps(floors, allow_nan=False)
    edema = floors["tasks"]["edema-nih"]
    assert floors["primary_encoder"] == "metadata" and edema["primary"]["encoder"] == "metadata"
    assert edema["matched_task"] == "edema-nih-view-matched" and set(edema["matched_floors"]) == \
        {"metadata", "metadata-view", "metadata-follow-up"}
    reported = edema["above"]["medimageinsight|reported"]
    paper = _filed_reported("edema-nih", "medimageinsight")["metrics"]["auroc"]["mean"]
    assert reported["auroc"] == paper and reported["floor"] == edema["primary"]["mean"]
    # the paper lists no images: not the floor's sample, so no difference is computed and the summary says why
    assert reported["same_sample"] is None and reported["above_floor"] is None and reported["not_compared"]
    assert "edema-mimic" not in floors["tasks"]  # no MIMIC floor filed: none invented

    html = real_site.index.read_text(encoding="utf-8")
    assert "AUROC from metadata only" in html and "Where the floor comes from" in html
    row = html[html.index('<tr data-task="edema-nih">'):]
    row = row[: row.index("</tr>")]
    assert f"{edema['primary']['mean']:.3f}" in row and "over floor" not in row  # beside, never subtracted
    assert 'class="overlap"' in row  # MedImageInsight was trained on ChestX-ray14
    table1 = html[html.index('id="table-table1"'):html.index("</table>", html.index('id="table-table1"'))]
    assert 'data-encoder="metadata"' not in table1  # the baselines are the floor column, not competitors
    exported = real_site.summary
    assert exported["floors"]["tasks"]["edema-nih"]["primary"]["mean"] == edema["primary"]["mean"]
    page = (real_site.out / "tasks" / "edema-nih.html").read_text(encoding="utf-8")
    assert 'id="floor-table"' in page and 'id="within-view-table"' in page


def _filed_reported(task_id: str, encoder_id: str) -> dict:
    from tests.support import RESULTS_DIR

    return json.loads((RESULTS_DIR / f"{task_id}__{encoder_id}__reported.json").read_text(encoding="utf-8"))
