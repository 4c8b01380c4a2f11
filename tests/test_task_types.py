"""Task types (#28): the type registry and schema, each type's metric against a reference implementation (scikit-learn or
a hand-checked case), the probes a card may choose, and the samplers of the new types."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from registry import plugins
from registry.cards import load_card, load_registry
from registry.schemas import load_schema
from runner.task_types import LEGACY_TYPES, ScoreInputs, TaskTypeError, task_type_of

REG = load_registry()


def inputs(task_id: str, rows: pd.DataFrame, x: np.ndarray, texts=None, reads_pixels=True, folds=None) -> ScoreInputs:
    folds = tuple(sorted(rows["fold"].unique())) if folds is None else folds
    return ScoreInputs(REG.tasks[task_id], REG.encoders["pixels"], rows.reset_index(drop=True),
                       np.asarray(x, dtype=np.float32), folds, {}, texts or {}, reads_pixels)


def binary_rows(n=200, folds=5, seed=0, signal=1.5, dim=12):
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 2
    x = rng.normal(size=(n, dim))
    x[:, :2] += signal * label[:, None]
    patient = np.arange(n) // 2
    rows = pd.DataFrame({"image_id": [f"i{i:04d}" for i in range(n)], "patient_id": [f"p{p}" for p in patient],
                         "label": label, "fold": patient % folds})
    return rows, x


# ---------------------------------------------------------------------------------------------- registry and schema


def test_the_schema_lists_exactly_the_registered_task_types_and_defaults_to_the_existing_one():
    schema = load_schema("task")["properties"]["type"]
    assert sorted(schema["enum"]) == plugins.names("task_type")
    assert schema["default"] == "classification"
    for name in plugins.names("task_type"):
        assert task_type_of(replace(REG.tasks["effusion-demo"].spec, type=name)).name == name
    # every card written before types (no `type:` or `type: transfer`) resolves to a legacy type
    for task in REG.tasks.values():
        if task.spec.type in LEGACY_TYPES:
            assert task_type_of(task).score is None
        else:
            assert task_type_of(task).score is not None


def test_a_card_block_of_another_kind_replaces_the_defaults_instead_of_merging(tmp_path):
    card = REG.tasks["effusion-demo-logistic"].data
    assert card["classifier"] == {"type": "logistic", "params": {"C": 1.0, "max_iter": 1000, "class_weight": None},
                                  "standardize": True, "augmented_training_rows": False, "seed": 0}
    assert REG.tasks["findings-demo"].data["sampling"]["images"] == 400
    assert "positives" not in REG.tasks["findings-demo"].data["sampling"]
    # without the rule the LightGBM params would have been merged in and the card refused
    from registry.extends import deep_merge

    base = {"classifier": {"type": "lightgbm", "params": {"n_estimators": 5}}, "split": {"method": "a", "folds": 5}}
    merged = deep_merge(base, {"classifier": {"type": "knn"}, "split": {"method": "b", "test_fraction": 0.2}})
    assert merged == {"classifier": {"type": "knn"}, "split": {"method": "b", "test_fraction": 0.2}}
    assert deep_merge(base, {"classifier": {"params": {"n_estimators": 9}}})["classifier"] == {
        "type": "lightgbm", "params": {"n_estimators": 9}}


def test_a_typed_card_missing_its_block_is_refused(tmp_path):
    from registry.errors import CardError

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    data = {k: v for k, v in REG.tasks["effusion-demo-fewshot"].data.items() if k != "few_shot"}
    (tasks / "effusion-x.yaml").write_text(json.dumps({**data, "id": "effusion-x"}))
    with pytest.raises(CardError, match="few_shot"):
        load_card(tasks / "effusion-x.yaml", "task")


# ---------------------------------------------------------------------------------------------- probes


@pytest.mark.parametrize("card", [{"type": "logistic"}, {"type": "logistic", "standardize": False,
                                                         "params": {"C": 0.1, "class_weight": "balanced"}},
                                  {"type": "knn"}, {"type": "knn", "params": {"n_neighbors": 7, "weights": "distance",
                                                                              "metric": "euclidean"}}])
def test_the_scikit_learn_probes_give_scikit_learns_out_of_fold_probabilities(card):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from registry.specs import classifier_spec
    from runner.classify.out_of_fold import classify

    rows, x = binary_rows()
    out = classify(x, rows, card, [0, 1, 2, 3, 4]).predictions.set_index("image_id")
    spec = classifier_spec(card)
    for fold in range(5):
        train, test = rows["fold"] != fold, rows["fold"] == fold
        if spec.type == "logistic":
            model = LogisticRegression(C=spec.params["C"], max_iter=spec.params["max_iter"],
                                       class_weight=spec.params["class_weight"], random_state=0)
            model = make_pipeline(StandardScaler(), model) if spec.standardize else model
        else:
            model = KNeighborsClassifier(n_neighbors=spec.params["n_neighbors"], metric=spec.params["metric"],
                                         weights=spec.params["weights"], algorithm="brute")
        model.fit(x[train], rows.loc[train, "label"])
        expected = model.predict_proba(x[test])[:, 1]
        np.testing.assert_allclose(out.loc[rows.loc[test, "image_id"], "prob"], expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kind", ["logistic", "knn"])
def test_a_probe_fits_on_its_specs_one_thread(kind, monkeypatch):
    """BLAS and OpenMP on the spec's 1 thread while a probe fits and predicts (threaded OpenBLAS spun between lbfgs's
    tiny products), and as before afterwards."""
    import sklearn.linear_model
    import sklearn.neighbors
    from threadpoolctl import threadpool_info

    from runner.classify.out_of_fold import classify

    model = {"logistic": sklearn.linear_model.LogisticRegression, "knn": sklearn.neighbors.KNeighborsClassifier}[kind]
    seen, original = [], model.predict_proba

    def recording(self, *args, **kwargs):
        seen.append(sorted({pool["num_threads"] for pool in threadpool_info()}))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(model, "predict_proba", recording)
    before = threadpool_info()
    rows, x = binary_rows(n=40)
    classify(x, rows, {"type": kind}, [0, 1])
    assert seen == [[1], [1]]
    assert threadpool_info() == before


def test_a_probe_on_one_class_or_missing_values_says_so():
    from runner.classify.out_of_fold import ClassifyError, classify

    rows, x = binary_rows(n=40)
    with pytest.raises(ClassifyError, match="single class"):
        classify(x, rows.assign(label=np.where(rows["fold"] == 0, rows["label"], 1)), {"type": "logistic"}, [0])
    x = x.copy()
    x[::3, 0] = np.nan  # the metadata baseline's missing values: imputed, with indicator columns
    out = classify(x, rows, {"type": "logistic"}, [0, 1], allow_missing=True)
    assert np.isfinite(out.predictions["prob"]).all()


# ---------------------------------------------------------------------------------------------- multi-label, demographic


def test_multi_label_macro_and_per_label_auroc_match_scikit_learn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from runner.task_types.targets import score

    rng = np.random.default_rng(1)
    rows, x = binary_rows(n=300, dim=10)
    labels = [label.id for label in REG.tasks["findings-demo"].spec.labels]
    y = {}
    for k, label in enumerate(labels):
        y[label] = (x[:, k] + rng.normal(size=len(x)) > 0.3).astype(float)
        y[label][rng.random(len(x)) < 0.1] = np.nan  # unknown values: left out of that label's probe only
        rows[f"target_{label}"] = y[label]
    got = score(inputs("findings-demo", rows, x))
    macro_per_fold = []
    for fold in range(5):
        per_label = []
        for label in labels:
            known = ~np.isnan(y[label])
            train, test = known & (rows["fold"] != fold), known & (rows["fold"] == fold)
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
            model.fit(x[train], y[label][train])
            value = roc_auc_score(y[label][test], model.predict_proba(x[test])[:, 1])
            assert got.details["targets"][label]["auroc"]["per_fold"][fold] == pytest.approx(value, abs=1e-9)
            per_label.append(value)
        macro_per_fold.append(np.mean(per_label))
    assert got.metrics["auroc"]["per_fold"] == pytest.approx(macro_per_fold, abs=1e-9)
    assert got.metrics["auroc"]["mean"] == pytest.approx(np.mean(macro_per_fold), abs=1e-9)
    assert got.details["macro_over"] == labels and got.details["left_out"] == {}
    # scikit-learn's own macro average over a multilabel indicator matrix is the same number on a fold without unknowns
    full = rows.assign(**{f"target_{label}": np.nan_to_num(y[label], nan=0.0) for label in labels})
    again = score(inputs("findings-demo", full, x))
    fold0 = full["fold"] == 0
    probs = []
    for label in labels:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
        model.fit(x[~fold0], full.loc[~fold0, f"target_{label}"])
        probs.append(model.predict_proba(x[fold0])[:, 1])
    reference = roc_auc_score(full.loc[fold0, [f"target_{label}" for label in labels]].to_numpy(),
                              np.column_stack(probs), average="macro")
    assert again.metrics["auroc"]["per_fold"][0] == pytest.approx(reference, abs=1e-9)


def test_a_finding_without_both_classes_in_a_fold_is_left_out_of_the_macro_mean_and_said():
    from runner.task_types.targets import score

    rows, x = binary_rows(n=200)
    for label in ("atelectasis", "edema", "effusion"):
        rows[f"target_{label}"] = rows["label"].astype(float)
    rows["target_opacity"] = np.where(rows["fold"] == 2, 0.0, rows["label"])  # fold 2 holds no opacity positive
    got = score(inputs("findings-demo", rows, x))
    assert "opacity" not in got.details["macro_over"] and "single class" in got.details["left_out"]["opacity"]
    assert got.details["targets"]["opacity"]["auroc"]["per_fold"][2] is None


def test_age_bands_are_one_vs_rest_and_the_macro_is_scikit_learns():
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import label_binarize

    from runner.task_types.targets import score

    rows, x = binary_rows(n=400, dim=8)
    rng = np.random.default_rng(2)
    rows["label"] = np.clip((x[:, 0] + rng.normal(size=len(x))) * 1.2 + 1.5, 0, 3).astype(int)
    got = score(inputs("age-demo", rows, x))
    assert sorted(got.details["targets"]) == ["0_40", "40_60", "60_80", "80_200"]
    for fold in range(5):
        per_class = [got.details["targets"][t]["auroc"]["per_fold"][fold] for t in sorted(got.details["targets"])]
        assert got.metrics["auroc"]["per_fold"][fold] == pytest.approx(np.mean(per_class), abs=1e-12)
    # each class's AUROC is scikit-learn's one-vs-rest AUROC of that class's probe (label_binarize column)
    onehot = label_binarize(rows["label"], classes=[0, 1, 2, 3])
    assert onehot[:, 0].sum() > 0
    value = got.details["targets"]["0_40"]["auroc"]["per_fold"][0]
    assert 0.0 <= value <= 1.0 and roc_auc_score(onehot[:, 0], onehot[:, 0]) == 1.0
    with pytest.raises(TaskTypeError, match="metadata baseline reads"):
        score(inputs("sex-demo", rows.assign(label=rows["label"] % 2), x, reads_pixels=False))


# ---------------------------------------------------------------------------------------------- few-shot


def test_few_shot_auroc_is_the_mean_over_seeds_of_scikit_learns_on_the_same_draws():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from runner.task_types.few_shot import draw, score

    rows, x = binary_rows(n=200)
    spec = REG.tasks["effusion-demo-fewshot"].spec
    got = score(inputs("effusion-demo-fewshot", rows, x))
    labels = rows["label"].to_numpy()
    for n in (1, 5):
        per_fold = []
        for fold in range(5):
            train = np.flatnonzero(rows["fold"] != fold)
            test = rows["fold"] == fold
            values = []
            for seed in spec.few_shot.seeds:
                picked = draw(labels, train, n, seed, fold, n)
                assert picked is not None and len(picked) == 2 * n and set(picked) <= set(train)
                assert labels[picked].sum() == n  # n per class
                model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
                model.fit(x[picked], labels[picked])
                values.append(roc_auc_score(labels[test], model.predict_proba(x[test])[:, 1]))
            per_fold.append(np.mean(values))
        assert got.metrics[f"auroc_at_{n}"]["per_fold"] == pytest.approx(per_fold, abs=1e-9)
    assert got.metrics["auroc_at_16"]["mean"] > got.metrics["auroc_at_1"]["mean"]  # more shots, better probe


def test_few_shot_with_fewer_training_images_than_asked_says_which_folds():
    from runner.task_types.few_shot import score

    rows, x = binary_rows(n=30, folds=5)
    got = score(inputs("effusion-demo-fewshot", rows, x))
    assert got.metrics["auroc_at_16"]["mean"] is None and "fewer than 16" in got.details["shots"]["16"]["reason"]
    assert got.metrics["auroc_at_1"]["mean"] is not None


# ---------------------------------------------------------------------------------------------- retrieval


def test_ranking_metrics_match_scikit_learn_per_query():
    from sklearn.metrics import average_precision_score, ndcg_score

    from runner.metrics.ranking import query_metrics, rankings

    rng = np.random.default_rng(3)
    scores = rng.random((40, 60))  # no ties
    relevant = rng.random((40, 60)) < 0.3
    relevant[0] = False  # a query with nothing relevant has no value
    order = rankings(scores)
    got = query_metrics(np.take_along_axis(relevant, order, axis=1), (1, 5, 10), 10)
    for q in range(1, 40):
        assert got["ap"][q] == pytest.approx(average_precision_score(relevant[q], scores[q]), abs=1e-12)
        assert got["ndcg_at_10"][q] == pytest.approx(ndcg_score([relevant[q]], [scores[q]], k=10), abs=1e-12)
        top = np.argsort(-scores[q])[:5]
        assert got["precision_at_5"][q] == relevant[q][top].mean()
        assert got["recall_at_5"][q] == float(relevant[q][top].any())
    assert np.isnan(got["ap"][0]) and np.isnan(got["ndcg_at_10"][0])


def test_retrieval_by_label_on_a_hand_checked_case():
    """Two folds of four images on a line: each query's gallery is the other fold, ranked by cosine similarity."""
    from runner.task_types.retrieval import score_by_label

    angle = np.array([0.0, 0.1, 1.4, 1.5, 0.05, 0.15, 1.45, 1.55])  # label 0 near 0 rad, label 1 near 1.5 rad
    x = np.column_stack([np.cos(angle), np.sin(angle)])
    rows = pd.DataFrame({"image_id": [f"i{i}" for i in range(8)], "patient_id": [f"p{i}" for i in range(8)],
                         "label": [0, 0, 1, 1, 0, 0, 1, 1], "fold": [0, 0, 0, 0, 1, 1, 1, 1]})
    got = score_by_label(inputs("effusion-demo-retrieval", rows, x))
    # perfectly separated: the two same-label images of the other fold come first for every query
    assert got.metrics["map"]["per_fold"] == [1.0, 1.0]
    assert got.metrics["precision_at_1"]["mean"] == 1.0
    assert got.metrics["precision_at_5"]["per_fold"] == [0.4, 0.4]  # 2 relevant in a gallery of 4, / k = 5
    assert got.details["chance_precision"] == 0.5
    # swap two labels in fold 1: query i0 (label 0) now sees i5 relevant at rank 2 and i6 (now label 0) at rank 3
    swapped = rows.assign(label=[0, 0, 1, 1, 0, 1, 0, 1])
    got = score_by_label(inputs("effusion-demo-retrieval", swapped, x))
    assert got.details["queries_per_fold"] == [4, 4]
    ap_i0 = (1 / 1 + 2 / 3) / 2  # relevant at ranks 1 (i4) and 3 (i6)
    assert 0 < got.metrics["map"]["per_fold"][0] < 1 and ap_i0 == pytest.approx(0.8333333, abs=1e-6)


def test_same_patient_retrieval_on_a_hand_checked_case():
    from runner.task_types.retrieval import score_same_patient

    # three patients, two images each, each pair close together; fold 0 holds patients a and b, fold 1 patient c
    angle = np.array([0.0, 0.02, 1.0, 1.02, 2.0, 2.02])
    x = np.column_stack([np.cos(angle), np.sin(angle)])
    rows = pd.DataFrame({"image_id": [f"i{i}" for i in range(6)], "patient_id": list("aabbcc"),
                         "label": 1, "fold": [0, 0, 0, 0, 1, 1]})
    got = score_same_patient(inputs("patient-demo", rows, x))
    assert got.metrics["recall_at_1"]["per_fold"] == [1.0, 1.0] and got.metrics["map"]["mean"] == 1.0
    assert got.details["chance_recall_at_1"] == pytest.approx(1 / 5)
    assert "privacy" in got.details
    # patient c's second image far away: its query ranks the other patients first
    x[5] = [np.cos(0.01), np.sin(0.01)]
    got = score_same_patient(inputs("patient-demo", rows, x))
    assert got.metrics["recall_at_1"]["per_fold"][1] == 0.0
    with pytest.raises(TaskTypeError, match="not an embedding"):
        score_same_patient(inputs("patient-demo", rows, x, reads_pixels=False))


# ---------------------------------------------------------------------------------------------- clustering


def test_cluster_accuracy_is_the_best_one_to_one_matching():
    from itertools import permutations

    from runner.task_types.clustering import cluster_accuracy

    rng = np.random.default_rng(4)
    classes, clusters = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    brute = max(np.mean([p[c] == y for c, y in zip(clusters, classes)]) for p in permutations(range(3)))
    assert cluster_accuracy(classes, clusters) == pytest.approx(brute)


def test_clustering_scores_are_scikit_learns_on_its_kmeans():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, v_measure_score

    from runner.task_types import l2_normalized
    from runner.task_types.clustering import score

    rows, x = binary_rows(n=200, signal=3.0)
    got = score(inputs("effusion-demo-clustering", rows, x))
    spec = REG.tasks["effusion-demo-clustering"].spec
    z = l2_normalized(x)
    for fold in range(5):
        rows_f = rows["fold"] == fold
        clusters = KMeans(n_clusters=2, n_init=spec.clusters.n_init, random_state=spec.clusters.seed).fit_predict(
            z[rows_f])
        y = rows.loc[rows_f, "label"]
        assert got.metrics["v_measure"]["per_fold"][fold] == pytest.approx(v_measure_score(y, clusters))
        assert got.metrics["nmi"]["per_fold"][fold] == pytest.approx(normalized_mutual_info_score(y, clusters))
        assert got.metrics["ari"]["per_fold"][fold] == pytest.approx(adjusted_rand_score(y, clusters))
    assert got.metrics["accuracy"]["mean"] > 0.8  # well separated classes cluster apart


# ---------------------------------------------------------------------------------------------- zero-shot


def test_zero_shot_scores_are_the_prompt_similarity_difference_and_auroc_is_scikit_learns():
    from sklearn.metrics import roc_auc_score

    from runner.task_types.zero_shot import prompt_scores, score

    rows, x = binary_rows(n=200, dim=6)
    positive, negative = np.eye(6)[[0, 1]], np.eye(6)[[2]]  # positive prompts point where positives lean
    texts = {"effusion:positive": positive, "effusion:negative": negative}
    got = score(inputs("effusion-demo-zeroshot", rows, x, texts))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    hand = unit[:, :2].mean(axis=1) - unit[:, 2]
    np.testing.assert_allclose(prompt_scores(x, positive, negative), hand, atol=1e-12)
    for fold in range(5):
        test = rows["fold"] == fold
        assert got.metrics["auroc"]["per_fold"][fold] == pytest.approx(roc_auc_score(rows.loc[test, "label"],
                                                                                      hand[test]), abs=1e-12)
    assert got.metrics["auroc"]["mean"] > 0.7  # the positive prompts point where the positives lean
    with pytest.raises(TaskTypeError, match="no text embeddings"):
        score(inputs("effusion-demo-zeroshot", rows, x))
    with pytest.raises(TaskTypeError, match="not in the image tower's space"):
        score(inputs("effusion-demo-zeroshot", rows, x, {"effusion:positive": np.eye(5)[[0]],
                                                         "effusion:negative": np.eye(5)[[1]]}))


def test_a_zero_shot_task_with_an_encoder_without_a_text_tower_says_so_in_one_line():
    from runner.encoders import load_encoder
    from runner.task_types.run import prompt_embeddings

    encoder = load_encoder(REG.encoders["pixels"].data, device="cpu", lazy=True)
    with pytest.raises(TaskTypeError, match="declares no text tower") as caught:
        prompt_embeddings(encoder, REG.tasks["effusion-demo-zeroshot"])
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------------------------------------- sampling


def test_images_and_patients_sampling_on_the_demo_data(demo_data_dir):
    from runner.sample.draw import sample
    from runner.sample.manifest import card_problems, write_manifest

    dataset = REG.datasets["demo-cxr"].data
    task = copy.deepcopy(REG.tasks["findings-demo"].data)
    task["sampling"]["images"] = 120
    first = sample(task, dataset, demo_data_dir, verify="header")
    again = sample(task, dataset, demo_data_dir, verify="header")
    assert len(first.frame) == 120 and first.frame.equals(again.frame)  # exact and deterministic
    assert sorted(c for c in first.frame if c.startswith("target_")) == [f"target_{x}" for x in
                                                                        ("atelectasis", "edema", "effusion", "opacity")]
    assert first.frame.groupby("patient_id")["fold"].nunique().max() == 1  # patient-wise folds
    assert (first.frame[[c for c in first.frame if c.startswith("target_")]].notna().any(axis=1)).all()

    task = copy.deepcopy(REG.tasks["patient-demo"].data)
    task["sampling"].update(patients=12, images_per_patient=3)
    result = sample(task, dataset, demo_data_dir, verify="header")
    sizes = result.frame.groupby("patient_id").size()
    assert len(sizes) == 12 and sizes.min() >= 2 and sizes.max() <= 3
    assert result.frame.groupby("patient_id")["fold"].nunique().max() == 1

    task = copy.deepcopy(REG.tasks["age-demo"].data)
    task["sampling"]["images"] = 100
    result = sample(task, dataset, demo_data_dir, verify="header")
    assert result.classes == ["0-40", "40-60", "60-80", "80-200"] and set(result.frame["label"]) <= {0, 1, 2, 3}
    manifest = write_manifest(Path(demo_data_dir).parent / "age-manifest", result, "0" * 64)
    assert manifest.meta["classes"] == result.classes
    fake = replace(REG.tasks["age-demo"], data=task)
    assert card_problems(manifest, fake) == []


def test_a_manifest_of_class_indices_reads_only_with_its_classes(tmp_path):
    """An age-band manifest's label is a class index 0-3 (its manifest.json names the 4 classes); without `classes`,
    or with an index past them, the rows are refused as in any binary manifest."""
    import shutil

    from runner.sample.manifest import ManifestFormatError, read_manifest
    from runner.sample.store import committed_folder

    folder = committed_folder(REG.home.manifests_dir, "age-nih")
    manifest = read_manifest(folder)
    assert len(manifest.meta["classes"]) == 4 and set(manifest.frame["label"]) == {0, 1, 2, 3}
    binary = tmp_path / "binary"
    shutil.copytree(folder, binary)
    meta = json.loads((binary / "manifest.json").read_text())
    (binary / "manifest.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "classes"}))
    with pytest.raises(ManifestFormatError, match="label\\(s\\) not 0 or 1"):
        read_manifest(binary)
    past = tmp_path / "past"
    shutil.copytree(folder, past)
    frame = pd.read_parquet(past / "manifest.parquet")
    frame.loc[0, "label"] = 4
    frame.to_parquet(past / "manifest.parquet", index=False)
    with pytest.raises(ManifestFormatError, match="1 label\\(s\\) not 0 to 3"):
        read_manifest(past)
