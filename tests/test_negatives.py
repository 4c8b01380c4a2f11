"""What a negative is (issue 27 item 2): the class a task's label policy makes on its data set (registry/negatives.py),
stated by the cards and checked, the sibling tasks under the other definition sampled as they claim on the real
tables that ship in torchxrayvision, and the site saying when a transfer pair or a table mixes definitions."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from registry.negatives import negative_class, table_negatives, task_negatives


@pytest.fixture(scope="module")
def registry():
    from registry.cards import clear_cache, load_registry

    clear_cache()
    return load_registry()


def test_the_class_follows_the_policy_and_how_the_data_set_reads_the_label(registry):
    chexpert, nih = registry.datasets["chexpert"].data, registry.datasets["nih-cxr14"].data
    task = copy.deepcopy(registry.tasks["atelectasis-chexpert"].data)
    assert negative_class(task, chexpert) == "stated-absent"  # CheXpert 0.0: the labeller read "no atelectasis"
    task["label_policy"]["blank"] = "negative"
    assert negative_class(task, chexpert) == "not-positive"  # not mentioned counts too
    task["label_policy"]["negative_requires"] = "no_finding"
    assert negative_class(task, chexpert) == "no-finding"
    nih_task = copy.deepcopy(registry.tasks["atelectasis-nih"].data)
    assert negative_class(nih_task, nih) == "not-positive"  # NIH 0.0: not among the mined findings (`contains`)
    assert negative_class(registry.tasks["opacity-nih"].data, nih) == "stated-absent"  # the relabels' explicit NO
    assert negative_class(registry.tasks["findings-nih"].data, nih) is None  # no binary label


def test_a_card_that_states_another_class_is_refused(tmp_path):
    import shutil

    from registry.cards import collect

    root = Path(__file__).resolve().parents[1]
    for folder in ("tasks", "encoders", "registry/datasets"):
        shutil.copytree(root / folder, tmp_path / folder)
    card = tmp_path / "tasks" / "atelectasis-nih-no-finding.yaml"
    assert collect(tmp_path)[1] == []
    card.write_text(card.read_text().replace("negative_class: no-finding", "negative_class: stated-absent"))
    problems = collect(tmp_path)[1]
    assert len(problems) == 1 and "makes them 'no-finding'" in str(problems[0])
    assert "negative_class" in str(problems[0])


def test_every_paper_task_states_its_class_and_has_a_sibling_under_another(registry):
    paper = [t for t in registry.tasks.values() if "paper-table1" in t.data.get("benchmarks", [])]
    assert len(paper) == 8
    classes = {}
    for task in registry.tasks.values():
        dataset = registry.datasets[task.data["dataset"]].data
        stated = (task.data.get("label_policy") or {}).get("negative_class")
        if stated is not None:
            assert stated == negative_class(task.data, dataset)
        classes[task.id] = negative_class(task.data, dataset)
    for task in paper:
        if task.id == "opacity-nih":  # only the 4,376 relabelled images have a value: no other definition there
            continue
        siblings = [t for t in registry.tasks.values() if "negatives" in t.data.get("benchmarks", [])
                    and t.data["dataset"] == task.data["dataset"] and t.data["label"] == task.data["label"]]
        assert siblings, task.id
        assert all(classes[s.id] != classes[task.id] for s in siblings)


def test_siblings_sample_the_negatives_they_claim_on_the_real_tables(registry, tmp_path):
    pytest.importorskip("torchxrayvision")
    from runner.data import read_index
    from runner.sample.draw import read_labels, sample

    for task_id, column, check in (
            ("atelectasis-nih-no-finding", "no_finding", lambda v: (v == 1.0).all()),
            ("atelectasis-chexpert-blank-negative", "atelectasis", lambda v: v.isna().mean() > 0.5)):
        task = registry.tasks[task_id].data
        dataset = registry.datasets[task["dataset"]].data
        index = read_index(dataset, tmp_path, read_labels(task) + [column])
        frame = sample(task, dataset, tmp_path, verify="none", index=index).frame
        raw = index.frame.set_index("image_id").loc[frame.loc[frame["label"] == 0, "image_id"], column]
        assert check(raw), task_id  # NIH: every negative is 'No Finding'; CheXpert: most negatives never mention it


def test_transfer_and_tables_say_when_the_negatives_differ(registry):
    transfer = task_negatives(registry.tasks["atelectasis-mimic-to-nih"], registry)
    assert transfer["train"]["class"] == "stated-absent" and transfer["class"] == "not-positive"
    assert transfer["differs"] is True
    same = task_negatives(registry.tasks["opacity-mimic-to-nih"], registry)  # MIMIC and the NIH relabels: both stated
    assert same["differs"] is False
    mixed = table_negatives(["atelectasis-mimic", "atelectasis-nih"], registry)
    assert mixed == {"stated-absent": ["atelectasis-mimic"], "not-positive": ["atelectasis-nih"]}


def test_the_site_says_it(real_site):
    site = real_site.index.parent
    index = (site / "index.html").read_text(encoding="utf-8")
    table1 = index[index.index('id="table-table1"'):]
    assert "The rows' negatives differ." in table1[:table1.index("</section>")]
    page = (site / "tasks" / "atelectasis-mimic-to-nih.html").read_text(encoding="utf-8")
    assert "The two sides' negatives differ" in page
    page = (site / "tasks" / "opacity-mimic-to-nih.html").read_text(encoding="utf-8")
    assert "The same definition on both sides." in page
