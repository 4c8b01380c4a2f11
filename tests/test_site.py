"""The static site: Table 1 in the right cells, demo results kept apart, hostile strings inert, exports complete."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser

import pytest
from runs import make_run
from test_results import fake_registry, make_reproduced

from leaderboard.filing.file_reported import file_reported
from leaderboard.site.render import build_site
from runner.results.result import write_result
from tests.support import TABLE_PATH

# Table 1 of the paper, typed here independently of leaderboard/paper_table1.yaml:
# disease, dataset, AUROC MedImageInsight, AUROC CXR-Foundation, F1 MedImageInsight, F1 CXR-Foundation.
PAPER_TABLE1 = """
Atelectasis MIMIC 0.833±0.007 0.823±0.013 0.755±0.007 0.751±0.008
Atelectasis NIH   0.863±0.008 0.822±0.012 0.782±0.015 0.744±0.014
Edema       MIMIC 0.918±0.011 0.924±0.014 0.841±0.014 0.847±0.014
Edema       NIH   0.921±0.012 0.911±0.006 0.853±0.016 0.831±0.013
Effusion    MIMIC 0.958±0.011 0.941±0.014 0.906±0.013 0.877±0.010
Effusion    NIH   0.901±0.012 0.901±0.006 0.828±0.014 0.826±0.008
Opacity     MIMIC 0.782±0.019 0.775±0.017 0.702±0.016 0.704±0.023
Opacity     NIH   0.922±0.012 0.955±0.006 0.851±0.019 0.889±0.013
"""
COLUMNS = [("AUROC", "MedImageInsight"), ("AUROC", "CXR-Foundation"), ("F1", "MedImageInsight"), ("F1", "CXR-Foundation")]


def paper_cells() -> dict:
    cells = {}
    for line in PAPER_TABLE1.strip().splitlines():
        disease, dataset, *values = line.split()
        for column, value in zip(COLUMNS, values):
            cells[(disease, dataset, *column)] = value.replace("±", " ± ")
    return cells


class TableParser(HTMLParser):
    """Collects every <table> by id: header rows and body rows as lists of (text, attrs, bold)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables, self.table, self.row, self.cell = {}, None, None, None
        self.skip = 0  # inside <sup>/<span class=warn|repro>: markers, not the value
        self.section = None
        self.scripts = []
        self.stack = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts.append(attrs)
        if tag == "table":  # nested tables (analyses) are collected too; the stack restores the outer one
            self.stack.append((self.table, self.row, self.cell, self.section))
            self.table, self.row, self.cell, self.section = {"head": [], "body": [], "id": attrs.get("id")}, None, None, "body"
            self.tables[attrs.get("id")] = self.table
        elif tag == "thead" and self.table is not None:
            self.section = "head"
        elif tag == "tbody" and self.table is not None:
            self.section = "body"
        elif tag == "tr" and self.table is not None:
            self.row = []
            self.table[self.section].append(self.row)
        elif tag in ("td", "th") and self.row is not None:
            self.cell = {"text": "", "attrs": attrs, "bold": False}
            self.row.append(self.cell)
        elif tag == "strong" and self.cell is not None:
            self.cell["bold"] = True
        elif tag == "sup" or (tag == "span" and attrs.get("class") in ("warn", "repro")):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self.table, self.row, self.cell, self.section = self.stack.pop()
        elif tag in ("td", "th"):
            if self.cell is not None:
                self.cell["text"] = " ".join(self.cell["text"].split())
            self.cell = None
        elif tag == "sup" or (tag == "span" and self.skip):
            self.skip = max(0, self.skip - 1)

    def handle_data(self, data):
        if self.cell is not None and not self.skip:
            self.cell["text"] += data


def parse(path):
    parser = TableParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def grid(table) -> dict:
    """(disease, dataset, metric group, encoder heading) -> cell, from the table's own headings."""
    groups = []
    for cell in table["head"][0]:
        groups += [cell["text"]] * int(cell["attrs"].get("colspan", 1))
    names = [c["text"] for c in table["head"][1]]
    out = {}
    for row in table["body"]:
        disease, dataset = row[0]["text"], row[1]["text"]
        for i, cell in enumerate(row[2:], start=2):
            out[(disease, dataset, groups[i], names[i])] = cell
    return out


def build_fake_site(tmp_path_factory):
    """The paper's reported results plus one reproduced demo result, built on fake cards -> (registry, results, index)."""
    reg = fake_registry()
    results = tmp_path_factory.mktemp("results")
    file_reported(reg, TABLE_PATH, results)
    from leaderboard.filing.submit import (
        submit,  # a real, verified run: filed with its predictions and manifest
    )

    submit(make_run(tmp_path_factory.mktemp("run"), reg, "effusion-demo", "pixels"), reg, results)
    index = build_site(tmp_path_factory.mktemp("site"), results, reg)
    return reg, results, index


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_fake_site(tmp_path_factory)


def test_front_page_has_all_32_paper_numbers_in_the_right_cells(site):
    _, _, index = site
    table = grid(parse(index).tables["table-table1"])
    expected = paper_cells()
    assert len(expected) == 32
    shown = {key: cell["text"] for key, cell in table.items()}
    assert shown == expected


def test_rows_follow_the_paper_order_and_best_is_bold(site):
    _, _, index = site
    table = parse(index).tables["table-table1"]
    rows = [(r[0]["text"], r[1]["text"]) for r in table["body"]]
    assert rows == [(d, s) for d in ("Atelectasis", "Edema", "Effusion", "Opacity") for s in ("MIMIC", "NIH")]
    cells = grid(table)
    assert cells[("Opacity", "NIH", "AUROC", "CXR-Foundation")]["bold"]
    assert not cells[("Opacity", "NIH", "AUROC", "MedImageInsight")]["bold"]
    assert cells[("Effusion", "NIH", "AUROC", "CXR-Foundation")]["bold"]  # a tie: both bold
    assert cells[("Effusion", "NIH", "AUROC", "MedImageInsight")]["bold"]
    assert all(c["attrs"]["data-provenance"] == "reported" for c in cells.values())


def test_row_order_comes_from_the_cards(tmp_path):
    reg = fake_registry(order={"opacity-nih": 0})  # a card moves its row to the top
    results = tmp_path / "results"
    file_reported(reg, TABLE_PATH, results)
    table = parse(build_site(tmp_path / "site", results, reg)).tables["table-table1"]
    assert next(r[0]["text"] + " " + r[1]["text"] for r in table["body"]) == "Opacity NIH"
    reg.tasks["edema-nih"].data["leaderboard"]["disease"] = "Pulmonary oedema"
    table = parse(build_site(tmp_path / "site", results, reg)).tables["table-table1"]
    row = next(r for r in table["body"] if r[0]["text"] == "Pulmonary oedema")
    # a display edit changes no number: the results filed before it still belong to the card
    assert not any("stale" in c["attrs"]["class"] for c in row[2:])
    reg.tasks["edema-nih"].data["metrics"] = {"threshold": 0.4}  # a behaviour edit: the filed numbers are flagged
    table = parse(build_site(tmp_path / "site", results, reg)).tables["table-table1"]
    row = next(r for r in table["body"] if r[0]["text"] == "Pulmonary oedema")
    assert all("stale" in c["attrs"]["class"] for c in row[2:])


def test_demo_results_stay_out_of_table1(site):
    _, _, index = site
    parsed = parse(index)
    assert "Raw pixels" not in str(parsed.tables["table-table1"])
    demo = grid(parsed.tables["table-demo"])
    auroc = json.loads((site[1] / "effusion-demo__pixels__reproduced.json").read_text())["metrics"]["auroc"]
    assert demo[("Effusion", "Demo", "AUROC", "Raw pixels")]["text"] == f"{auroc['mean']:.3f} ± {auroc['half_width']:.3f}"
    assert "not verified" not in index.read_text()
    assert "Synthetic demo data — not a clinical benchmark" in index.read_text()


def test_pages_and_exports(site):
    reg, _, index = site
    out = index.parent
    for task_id in reg.tasks:
        assert (out / "tasks" / f"{task_id}.html").is_file()
    for encoder_id in reg.encoders:
        assert (out / "encoders" / f"{encoder_id}.html").is_file()
    task_page = (out / "tasks" / "effusion-demo.html").read_text()
    assert reg.tasks["effusion-demo"].sha256 in task_page and "mean_cosine" in task_page  # analyses rendered
    assert "26.7 images/s" in (out / "encoders" / "pixels.html").read_text()
    exported = json.loads((out / "leaderboard.json").read_text())["results"]
    assert len(exported) == 17
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    by_key = {(r["task"], r["encoder"]): r for r in rows}
    assert by_key[("edema-mimic", "cxr-foundation")]["auroc_mean"] == "0.924"
    assert by_key[("effusion-demo", "pixels")]["section"] == "demo"
    assert (out / "static" / "site.js").is_file() and (out / "static" / "site.css").is_file()


def test_no_external_resources(site):
    _, _, index = site
    for page in index.parent.rglob("*.html"):
        text = page.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, page


def test_roc_curve_from_a_filed_predictions_file(tmp_path):
    pd = pytest.importorskip("pandas")
    reg = fake_registry()
    results = tmp_path / "results"
    write_result(make_reproduced(reg), results / "effusion-demo__pixels__reproduced.json")
    pd.DataFrame({"label": [0, 0, 1, 1, 0, 1], "prob": [0.1, 0.4, 0.35, 0.8, 0.2, 0.9]}).to_parquet(
        results / "effusion-demo__pixels__reproduced.predictions.parquet")
    out = build_site(tmp_path / "site", results, reg).parent
    png = out / "tasks" / "effusion-demo-roc.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'src="effusion-demo-roc.png"' in (out / "tasks" / "effusion-demo.html").read_text()


HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>'


def test_html_in_result_strings_is_inert(tmp_path):
    reg = fake_registry()
    reg.encoders["pixels"].data["title"] = HOSTILE  # a hostile card title, as a submitted encoder name
    reg.encoders["pixels"].data["parameters"] = 1000  # so that it is drawn in the AUROC-vs-parameters SVG too
    result = make_reproduced(reg)
    result["encoder"]["name"] = HOSTILE
    result["analyses"] = {HOSTILE: [{"key": HOSTILE, "value": 1}], "note": HOSTILE}
    result["counts"]["exclusions"][0]["reason"] = HOSTILE
    result["metrics"]["auroc"].update(mean=None, ci_low=None, ci_high=None, half_width=None, reason=HOSTILE)
    results = tmp_path / "results"
    write_result(result, results / "effusion-demo__pixels__reproduced.json")
    write_result(make_reproduced(reg, "effusion-nih", "pixels"), results / "effusion-nih__pixels__reproduced.json")
    out = build_site(tmp_path / "site", results, reg).parent
    for page in out.rglob("*.html"):
        text = page.read_text()
        assert "<script>alert" not in text and "<img src=x" not in text, page
        parsed = parse(page)
        assert all(attrs.get("src", "").endswith(("static/site.js", "static/encoders.js"))
                   for attrs in parsed.scripts), page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (out / "tasks" / "effusion-demo.html").read_text()
    assert "&lt;script&gt;" in (out / "index.html").read_text()
    # These results have no filed predictions, so they do not verify and are not ranked: the Encoders page's
    # plot is drawn here directly from a hostile row, as the renderer draws it from the summary.
    from leaderboard.site.encoders_page import plot_auroc_vs_parameters

    svg = tmp_path / "plot.svg"
    assert plot_auroc_vs_parameters({"rows": [{"parameters": 1000, "mean_auroc": 0.7, "title": HOSTILE}]}, svg)
    assert "<script" not in svg.read_text() and "&lt;script&gt;alert(1)" in svg.read_text()  # the title, as text


def test_cli_build_prints_index_path(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import runner.cli.commands.leaderboard as cmds
    from runner.cli.main import app

    reg = fake_registry()
    monkeypatch.setattr(cmds, "_registry", lambda: reg)
    results = tmp_path / "results"
    file_reported(reg, TABLE_PATH, results)
    out = CliRunner().invoke(app, ["leaderboard", "build", "--out", str(tmp_path / "site"), "--results-dir", str(results)])
    assert out.exit_code == 0, out.output
    assert out.output.strip().endswith("index.html") and (tmp_path / "site" / "index.html").is_file()
    missing = CliRunner().invoke(app, ["leaderboard", "build", "--results-dir", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_real_registry_front_page_matches_the_paper(tmp_path):
    """The filed reported results, rendered against the project's own cards."""
    from registry.cards import load_registry
    from registry.errors import CardError
    from tests.support import RESULTS_DIR

    try:
        reg = load_registry()
    except CardError as exc:
        pytest.skip(f"the project's cards do not load yet: {str(exc).splitlines()[0]}")
    index = build_site(tmp_path / "site", RESULTS_DIR, reg)
    import re

    cells = grid(parse(index).tables["table-table1"])
    # The NIH rows also show the shortcut floor (its own column) and each AUROC's distance above it (leaderboard.summary.floors)
    floor_column = {key: cell["text"] for key, cell in cells.items() if key[2] == "Shortcut floor"}
    shown = {key: re.sub(r"[+-]\d\.\d{3} over floor$", "", cell["text"]) for key, cell in cells.items()
             if key[2] != "Shortcut floor"}
    names = {"MedImageInsight": reg.encoders["medimageinsight"].data["title"],
             "CXR-Foundation": reg.encoders["cxr-foundation"].data["title"]}
    expected = {(d, s, metric, names[enc]): text for (d, s, metric, enc), text in paper_cells().items()}
    assert shown == expected
    assert {k[:2] for k, text in floor_column.items() if text != "—"} == {(d, "NIH") for d, s, _, _ in expected
                                                                          if s == "NIH"}
