"""The leaderboard's layout lives in registry/benchmarks.yaml (issue 24): sections and the benchmarks each holds,
headings, metric and extra columns, the Encoders page's ranking settings; every field changes the site."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from leaderboard.filing.file_reported import file_reported
from leaderboard.site.render import build_site
from registry.benchmarks import benchmarks_path, load_layout
from registry.errors import CardError
from tests.support import TABLE_PATH, fake_registry, grid, parse, row_label


def project_layout() -> dict:
    return yaml.safe_load(benchmarks_path(None).read_text(encoding="utf-8"))


def write_layout(root: Path, data: dict) -> Path:
    path = root / "registry" / "benchmarks.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return root


def test_the_project_layout():
    layout = load_layout()
    assert [s.id for s in layout.sections] == ["table1", "extra", "types", "demo"]
    table1 = layout.sections[0]
    assert table1.benchmarks == ("paper-table1",) and table1.all_rows and table1.floor_column
    assert [s.synthetic for s in layout.sections] == [False, False, False, True]
    assert layout.metrics == (("auroc", "AUROC"), ("f1", "F1")) and layout.ranking.default_benchmark == "paper-table1"
    # a task's section follows its benchmarks; a synthetic one never lands in a clinical section
    assert layout.section_of(["view-matched"]) == "extra" and layout.section_of(["paper-table1"]) == "table1"
    assert layout.section_of(["demo", "transfer"]) == "demo"  # the demo transfer task
    assert layout.section_of(["paper-table1"], data_synthetic=True) == "demo"
    assert layout.section_of([]) is None


def test_every_real_task_is_in_the_section_its_benchmark_says():
    from registry.cards import load_registry

    reg = load_registry()
    layout = load_layout(reg.root)
    where = {t.id: layout.section_of(t.spec.benchmarks, reg.datasets[t.spec.dataset].spec.synthetic)
             for t in reg.tasks.values()}
    assert sorted(t for t, s in where.items() if s == "table1") == sorted(
        f"{d}-{s}" for d in ("atelectasis", "edema", "effusion", "opacity") for s in ("mimic", "nih"))
    assert None not in where.values()
    assert all(s == "demo" for t, s in where.items() if "demo" in t)


def test_defaults_fill_an_absent_leaderboard_block(tmp_path):
    root = write_layout(tmp_path, {"benchmarks": [{"id": "a", "title": "A"}, {"id": "d", "title": "D",
                                                                              "synthetic": True}]})
    layout = load_layout(root)
    assert layout.metrics == (("auroc", "AUROC"), ("f1", "F1")) and layout.extras == ()
    assert [(s.id, s.heading, s.benchmarks, s.synthetic) for s in layout.sections] == [
        ("a", "A", ("a",), False), ("d", "D", ("d",), True)]  # one section per benchmark
    assert (layout.ranking.replicates, layout.ranking.level, layout.ranking.seed) == (2000, 0.95, 0)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["leaderboard"]["sections"][0]["benchmarks"].append("paper-tabel1"),
     "names benchmark 'paper-tabel1', which is not declared"),
    (lambda d: d["leaderboard"]["sections"][1]["benchmarks"].append("paper-table1"), "is in two sections"),
    (lambda d: d["leaderboard"]["metrics"].append({"id": "accuracy", "label": "Acc"}), "accuracy"),
    (lambda d: d["leaderboard"]["metrics"].append({"id": "auroc", "label": "again"}), "listed twice"),
    (lambda d: d["leaderboard"]["ranking"].update(default_benchmark="paper-tabel1"), "did you mean 'paper-table1'"),
    (lambda d: d["leaderboard"]["ranking"].update(replicates=5), "replicates"),
    (lambda d: d["leaderboard"]["sections"][0].update(colour="red"), "colour"),
])
def test_a_malformed_layout_is_a_card_error_naming_the_field(tmp_path, change, message):
    data = project_layout()
    change(data)
    with pytest.raises(CardError) as info:
        load_layout(write_layout(tmp_path, data))
    assert message in str(info.value) and "benchmarks.yaml" in str(info.value)


def test_a_task_card_may_no_longer_pick_its_table():
    """One grouping mechanism: the `leaderboard.table` field is gone; the schema refuses it."""
    from registry.schemas import validator

    errors = list(validator("task").iter_errors({"leaderboard": {"table": "table1"}}))
    assert any("table" in e.message for e in errors if "Additional properties" in e.message)


# ---------------------------------------------------------------------------------------------- the site follows it


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    reg = fake_registry()
    folder = tmp_path_factory.mktemp("results")
    file_reported(reg, TABLE_PATH, folder)
    return folder


def build(tmp_path, results, layout: dict | None):
    reg = fake_registry()
    if layout is not None:
        reg.root = write_layout(tmp_path / "reg", layout)
    index = build_site(tmp_path / "site", results, reg)
    return parse(index), index


def test_headings_columns_and_sections_come_from_the_file(tmp_path, results):
    parsed, index = build(tmp_path / "base", results, None)
    heads = [c["text"] for c in parsed.tables["table-table1"]["head"][0]]
    assert heads == ["Task", "AUROC", "F1"]
    assert "Table 1 — MedImageInsight vs. CXR-Foundation on MIMIC-CXR and NIH ChestX-ray14" in index.read_text()

    data = project_layout()
    board = data["leaderboard"]
    board["sections"][0]["heading"] = "The paper table, edited"
    board["metrics"] = [{"id": "f1", "label": "F-one"}, {"id": "auroc", "label": "Area under ROC"}]
    parsed, index = build(tmp_path / "edited", results, data)
    html = index.read_text()
    assert "The paper table, edited" in html and "MedImageInsight vs. CXR-Foundation" not in html
    assert [c["text"] for c in parsed.tables["table-table1"]["head"][0]] == ["Task", "F-one", "Area under ROC"]
    cells = grid(parsed.tables["table-table1"])
    assert cells[("Edema", "MIMIC", "Area under ROC", "CXR-Foundation")]["text"] == "0.924 ± 0.014"
    assert not any(key[2] == "AUROC" for key in cells)
    summary = json.loads((index.parent / "leaderboard.json").read_text())
    assert summary["tables"][0]["metrics"] == [["f1", "F-one"], ["auroc", "Area under ROC"]]

    # the paper's benchmark moved into a section of its own id: the same rows, under another table
    board["sections"] = [{"id": "paper", "heading": "Paper", "benchmarks": ["paper-table1"]},
                         {"id": "demo", "heading": "Demo", "benchmarks": ["demo"]}]
    parsed, _ = build(tmp_path / "moved", results, data)
    assert "table-table1" not in parsed.tables and len(parsed.tables["table-paper"]["body"]) == 8
    assert row_label(parsed.tables["table-paper"]["body"][0]) == ("Atelectasis", "MIMIC")


def test_tasks_in_no_section_are_listed_not_dropped(tmp_path, results):
    data = project_layout()
    data["leaderboard"]["sections"] = [{"id": "demo", "heading": "Demo", "benchmarks": ["demo"]}]
    parsed, index = build(tmp_path, results, data)
    assert "table-table1" not in parsed.tables
    note = index.read_text()
    note = note[note.index('id="unplaced"'):]
    assert "Results of 8 tasks in no section" in note and "effusion-nih" in note


def test_all_rows_and_the_ranking_settings_change_the_site(tmp_path, results):
    import shutil

    some = tmp_path / "some-results"
    some.mkdir()
    for path in results.glob("effusion-*"):  # two of Table 1's eight rows filed
        shutil.copy(path, some)
    parsed, index = build(tmp_path / "base", some, None)
    assert len(parsed.tables["table-table1"]["body"]) == 8  # all_rows: every row of the benchmark, filled or not
    html = (index.parent / "encoders.html").read_text()
    assert "95% interval" in html and "2000 bootstrap" in html

    data = project_layout()
    data["leaderboard"]["sections"][0]["all_rows"] = False
    data["leaderboard"]["ranking"].update(level=0.5, replicates=300, seed=7)
    parsed, index = build(tmp_path / "edited", some, data)
    assert [row_label(r)[0] for r in parsed.tables["table-table1"]["body"]] == ["Effusion", "Effusion"]
    html = (index.parent / "encoders.html").read_text()
    assert "50% interval" in html and "300 bootstrap" in html and "seed 7" in html
    ranking = json.loads((index.parent / "encoders.json").read_text())
    assert ranking["settings"] == {"replicates": 300, "level": 0.5, "seed": 7}


def test_extra_columns_are_the_files(tmp_path):
    from runner.results.result import write_result
    from tests.support import make_reproduced

    reg = fake_registry()
    result = make_reproduced(reg, "effusion-demo", "pixels")
    result["analyses"] = {"stability": {"overall": {"mean": 0.91}}}
    folder = tmp_path / "results"
    write_result(result, folder / "effusion-demo__pixels__reproduced.json")
    groups = {}
    for name, extras in (("project", None), ("relabelled", [{"id": "stability", "label": "Steadiness"}]),
                         ("none", [])):
        data = project_layout()
        if extras is not None:
            data["leaderboard"]["extras"] = extras
        parsed, _ = build(tmp_path / name, folder, data)
        groups[name] = [c["text"] for c in parsed.tables["table-demo"]["head"][0]]
    assert groups["project"] == ["Task", "AUROC", "F1", "Stability (mean cos)"]  # the subgroup gap: no result has it
    assert groups["relabelled"] == ["Task", "AUROC", "F1", "Steadiness"]
    assert groups["none"] == ["Task", "AUROC", "F1"]
