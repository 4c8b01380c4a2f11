"""What the site says about floors and intervals (issue 27 item 6): "+x over floor" only on the same sample, floors
below 0.5 as the artefact they are, clipped intervals as intervals."""

from __future__ import annotations

import copy
import re

import pytest

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


def test_over_floor_only_on_the_same_manifest(registry):
    floor = _filed("atelectasis-nih__metadata__reproduced.json")
    reported = _filed("atelectasis-nih__cxr-foundation__reported.json")
    same = copy.deepcopy(floor)
    same["encoder"] = dict(reported["encoder"])
    same["metrics"]["auroc"]["mean"] = floor["metrics"]["auroc"]["mean"] + 0.2
    other = copy.deepcopy(same)
    other["encoder"] = dict(_filed("atelectasis-nih__medimageinsight__reported.json")["encoder"])
    other["manifest"] = dict(other["manifest"], sha256="0" * 64)
    above = compute_floors([floor, reported, same, other], registry)["tasks"]["atelectasis-nih"]["above"]
    assert above["cxr-foundation|reproduced"]["above_floor"] == pytest.approx(0.2)
    assert above["cxr-foundation|reproduced"]["not_compared"] is None
    for key in ("cxr-foundation|reported", "medimageinsight|reproduced"):  # the paper's images; another manifest
        assert above[key]["above_floor"] is None and "not subtracted" in above[key]["not_compared"]
        assert above[key]["floor"] == floor["metrics"]["auroc"]["mean"]  # still shown beside it


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
    clipped = (site / "tasks" / "atelectasis-chexpert-view-matched.html").read_text(encoding="utf-8")
    assert "0.306 [0.000, 0.725]" in clipped and "0.306 ± 0.420" not in clipped
