"""What the site says about floors and intervals (issue 27 item 6): "+x over floor" only on the same sample, floors
below 0.5 as the artefact they are, clipped intervals as intervals."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest

from leaderboard.filing.layout import predictions_of
from leaderboard.site.text import metric_text
from leaderboard.summary.floors import BELOW_CHANCE, compute_floors
from runner.results.result import read_result
from tests.support import RESULTS_DIR


@pytest.mark.parametrize("metric, text", [
    # a t-interval clipped at 0: the printed interval, never "0.306 ± 0.420" (which claims an F1 below 0)
    ({"mean": 0.30551765, "half_width": 0.41982883, "ci_low": 0.0, "ci_high": 0.72534648, "ci_method": "t-interval"},
     "0.306 [0.000, 0.725]"),
    ({"mean": 0.98, "half_width": 0.05, "ci_low": 0.93, "ci_high": 1.0, "ci_method": "t-interval"},
     "0.980 [0.930, 1.000]"),  # clipped at 1
    ({"mean": 0.8, "half_width": 0.02, "ci_low": 0.78, "ci_high": 0.82, "ci_method": "t-interval"}, "0.800 ± 0.020"),
    ({"mean": 0.822, "half_width": 0.012, "ci_low": 0.81, "ci_high": 0.834, "ci_method": "reported"}, "0.822 ± 0.012"),
    ({"mean": 0.822, "half_width": 0.012, "ci_low": None, "ci_high": None, "ci_method": "reported"}, "0.822 ± 0.012"),
    ({"mean": 0.8, "half_width": 0.02, "ci_low": 0.77, "ci_high": 0.81, "ci_method": "cluster-bootstrap"},
     "0.800 [0.770, 0.810]"),
    ({"mean": 0.8, "half_width": None, "ci_low": None, "ci_high": None, "ci_method": "t-interval"}, "0.800"),
    ({"mean": None, "half_width": None, "ci_low": None, "ci_high": None, "ci_method": "t-interval"}, "n/a"),
])
def test_a_clipped_interval_is_printed_as_its_interval(metric, text):
    assert metric_text(metric) == text


@pytest.fixture(scope="module")
def registry():
    from registry.cards import clear_cache, load_registry

    clear_cache()
    return load_registry()


def _filed(name):
    return read_result(RESULTS_DIR / name)


def _fold_mean_auroc(predictions, prob):
    from sklearn.metrics import roc_auc_score

    return float(np.mean([roc_auc_score(g["label"], prob[g.index]) for _, g in predictions.groupby("fold")]))


def test_over_floor_only_on_the_same_manifest_with_its_paired_ci(registry):
    """The difference is shown only on the same manifest and folds with both results' predictions, and then with the
    paired patient bootstrap CI (item 4): the point is the fold-mean AUROC difference a reference (scikit-learn)
    computes from the two prediction files."""
    floor = _filed("atelectasis-nih__metadata__reproduced.json")
    reported = _filed("atelectasis-nih__cxr-foundation__reported.json")
    floor_predictions = pd.read_parquet(predictions_of(RESULTS_DIR, floor))
    same = copy.deepcopy(floor)
    same["encoder"] = dict(reported["encoder"])
    same["predictions_sha256"] = "encoder"
    better = floor_predictions.copy()
    better["prob"] = 0.6 * better["prob"] + 0.4 * better["label"]  # a better encoder on the same images and folds
    other = copy.deepcopy(same)
    other["encoder"] = dict(_filed("atelectasis-nih__medimageinsight__reported.json")["encoder"])
    other["manifest"] = dict(other["manifest"], sha256="0" * 64)
    filed = {floor["predictions_sha256"]: floor_predictions, "encoder": better}

    def predictions(result):
        return filed.get(result.get("predictions_sha256"))

    above = compute_floors([floor, reported, same, other], registry, predictions)["tasks"]["atelectasis-nih"]["above"]
    shown = above["cxr-foundation|reproduced"]
    expected = _fold_mean_auroc(floor_predictions, better["prob"]) - _fold_mean_auroc(floor_predictions,
                                                                                      floor_predictions["prob"])
    assert expected > 0.05 and shown["above_floor"] == pytest.approx(expected, abs=1e-9)
    assert shown["above_ci_low"] < shown["above_floor"] < shown["above_ci_high"] and shown["above_ci_low"] > 0
    assert shown["not_compared"] is None
    for key in ("cxr-foundation|reported", "medimageinsight|reproduced"):  # the paper's images; another manifest
        assert above[key]["above_floor"] is None and "not subtracted" in above[key]["not_compared"]
        assert above[key]["floor"] == floor["metrics"]["auroc"]["mean"]  # still shown beside it
    # the same manifest without the encoder's predictions: no CI for the difference, so no difference
    unpaired = compute_floors([floor, same], registry, lambda r: floor_predictions if r is floor else None)
    gone = unpaired["tasks"]["atelectasis-nih"]["above"]["cxr-foundation|reproduced"]
    assert gone["same_sample"] is True and gone["above_floor"] is None and gone["above_ci_low"] is None
    assert "predictions" in gone["not_compared"]
    assert compute_floors([floor, same], registry)["tasks"]["atelectasis-nih"]["above"][
        "cxr-foundation|reproduced"]["above_floor"] is None


def test_a_floor_below_half_is_marked_as_no_signal(registry):
    view = _filed("atelectasis-nih-view-matched__metadata-view__reproduced.json")
    assert view["metrics"]["auroc"]["mean"] < 0.5  # the filed view-only floor of a view-matched task
    floors = compute_floors([view, _filed("atelectasis-nih-view-matched__metadata__reproduced.json")], registry)
    shown = floors["tasks"]["atelectasis-nih-view-matched"]["floors"]
    assert shown["metadata-view"]["below_chance"] is True and shown["metadata"]["below_chance"] is False
    assert floors["below_chance"] == BELOW_CHANCE
    lifted = copy.deepcopy(view)
    lifted["metrics"]["auroc"]["mean"] = 0.5
    assert compute_floors([lifted], registry)["tasks"]["atelectasis-nih-view-matched"]["floors"][
        "metadata-view"]["below_chance"] is False


@pytest.fixture(scope="module")
def site(real_site):
    """The project's own cards and filed results as `runner leaderboard build` renders them: the session's one build
    (tests/conftest.py `real_site`), read-only."""
    return real_site.out


def test_the_site_says_it(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "over floor</span>" not in index  # every Table 1 number is reported: no floor on its images
    below = [r for r in (read_result(p) for p in RESULTS_DIR.glob("*__reproduced.json"))
             if r["encoder"]["id"].startswith("metadata") and r["metrics"]["auroc"]["mean"] < 0.5]
    assert below  # the filed floors include view-only floors under 0.5
    for result in below:
        page = (site / "tasks" / f"{result['task']['id']}.html").read_text(encoding="utf-8")
        shown = f"{result['metrics']['auroc']['mean']:.3f}"
        floor_table = page[page.index('id="floor-table"'):]
        floor_table = floor_table[:floor_table.index("</table>")]
        assert f"no signal ({shown}<sup>*</sup>)" in floor_table
        assert not re.search(rf"<td[^>]*>{re.escape(shown)}</td>", floor_table)  # never as a bare number
        row = page[page.index(f'href="../results/{result["task"]["id"]}__{result["encoder"]["id"]}__reproduced.json"'):]
        assert 'class="no-signal"' in row[:row.index("</td>")]  # its row among the task's results too
        cell = index[index.index(f'href="results/{result["task"]["id"]}__{result["encoder"]["id"]}__reproduced.json"'):]
        assert 'class="no-signal' in cell[:cell.index("</td>")]  # its front-page cell
    task = (site / "tasks" / "atelectasis-nih.html").read_text(encoding="utf-8")
    assert "not subtracted: the floor is measured on the registry" in task
    clipped = [(r, m) for r in (read_result(p) for p in RESULTS_DIR.glob("*__reproduced.json"))
               for m in r["metrics"].values() if isinstance(m, dict) and m.get("ci_method") == "t-interval"
               and m.get("half_width") and m.get("ci_low") == 0.0]
    assert clipped  # filed F1 t-intervals clipped at 0 (view-only floors of the matched controls)
    for result, m in clipped:
        page = (site / "tasks" / f"{result['task']['id']}.html").read_text(encoding="utf-8")
        assert f"{m['mean']:.3f} [0.000, {m['ci_high']:.3f}]" in page
        assert f"{m['mean']:.3f} ± {m['half_width']:.3f}" not in page
