"""The task card's `analyses.paired.test` picks the leaderboard's tie test (issue 27 item 1).

The same filed results on the same manifest, compared under two cards that differ only in `analyses.paired.test`:
the summary records the card's test, what it holds fixed, and its p-values, and the site names it."""

from __future__ import annotations

import json

import pytest
from runs import shared_run

from tests.support import make_registry_root

TASK = """\
extends: _defaults-demo.yaml
id: effusion-ties
title: Effusion (tie test card test)
dataset: demo-cxr
label: {id: effusion, name: Effusion}
sampling: {positives: 60, negatives: 60}
leaderboard: {disease: Effusion, dataset_label: Ties}
"""


def _summary(tmp_path, test: str | None):
    from leaderboard.filing.submit import submit
    from leaderboard.summary.summarize import summarize
    from registry.cards import clear_cache, load_registry

    card = TASK + (f"analyses: {{paired: {{test: {test}}}}}\n" if test else "")
    root = make_registry_root(tmp_path / f"reg-{test}", {"effusion-ties": card})
    clear_cache()
    reg = load_registry(root)
    results = tmp_path / f"results-{test}"
    for encoder, separation in (("pixels", 0.9), ("random-cnn", 1.0)):
        path = shared_run(tmp_path / f"out-{test}", reg, "effusion-ties", encoder, separation=separation, seed=3)
        submit(path, reg, results, manifest_path=path.parent.parent / "manifest.json")
    return reg, summarize(results, reg), results


@pytest.fixture(scope="module")
def summaries(tmp_path_factory):
    """`_summary(folder, test)` of each card variant, made once for the module (the default card's is compared with
    both tests', and the site test files the fold-t variant again): read-only, the tests build into their own
    folders."""
    folder, made = tmp_path_factory.mktemp("ties"), {}

    def summary_of(test: str | None):
        if test not in made:
            made[test] = _summary(folder, test)
        return made[test]

    return summary_of


@pytest.mark.parametrize("test", ["fold-t", "corrected-fold-t"])
def test_the_cards_tie_test_is_the_one_the_summary_runs(summaries, test):
    from runner.analysis.paired import TEST_SCOPE, TIE_TESTS

    reg, default, _ = summaries(None)
    assert reg.tasks["effusion-ties"].spec.analyses.paired.test == "patient-bootstrap"  # the demo defaults' choice
    _, chosen, _ = summaries(test)
    before = default["tasks"]["effusion-ties"]["ties"]["by_metric"]["auroc"]
    after = chosen["tasks"]["effusion-ties"]["ties"]["by_metric"]["auroc"]
    assert before["test_id"] == "patient-bootstrap" and "bootstrap" in before
    assert after["test_id"] == test and after["test"] == TIE_TESTS[test] and after["holds_fixed"] == TEST_SCOPE[test]
    assert after["folds"] == 5 and "bootstrap" not in after
    (loser,) = after["comparisons"]
    assert after["comparisons"][loser]["p"] != before["comparisons"][loser]["p"]  # another test, another p
    assert after["comparisons"][loser]["df"] == 4
    table = next(t for t in chosen["tables"] if any(r["task_id"] == "effusion-ties" for r in t["rows"]))
    assert [x["id"] for x in table["tests"]] == [test]


def test_the_site_names_the_test_and_what_it_holds_fixed(tmp_path, summaries):
    from leaderboard.site.render import build_site
    from runner.analysis.paired import TEST_SCOPE

    reg, _, results = summaries("fold-t")
    index = build_site(tmp_path / "site", results, reg)
    page = (index.parent / "tasks" / "effusion-ties.html").read_text()
    assert 'data-test="fold-t"' in page and TEST_SCOPE["fold-t"].replace("'", "&#39;") in page
    front = index.read_text()
    assert 'class="tie-test" data-test="fold-t"' in front and "analyses.paired.test" in front
    assert json.loads((index.parent / "leaderboard.json").read_text())["tasks"]["effusion-ties"]["ties"][
        "by_metric"]["f1"]["test_id"] == "fold-t"


def test_paper_tasks_use_the_fold_t_test_and_demo_tasks_the_bootstrap():
    """The schema's default (fold-t, calibrated at 2,000 images) for the registry's tasks; the 150/150 demo tasks'
    defaults keep the patient bootstrap, whose level the simulations established there."""
    from registry.cards import clear_cache, load_registry

    clear_cache()
    reg = load_registry()
    assert reg.tasks["effusion-nih"].spec.analyses.paired.test == "fold-t"
    assert reg.tasks["effusion-demo"].spec.analyses.paired.test == "patient-bootstrap"
