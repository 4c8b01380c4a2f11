"""The static site: Table 1 in the right cells, demo results kept apart, hostile strings inert, exports complete."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser

import pytest
from runs import shared_run

from leaderboard.filing.file_reported import file_reported
from leaderboard.site.render import build_site
from runner.results.result import write_result
from tests.support import TABLE_PATH, build_fake_site, fake_registry, grid, make_reproduced, parse, row_label

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
    rows = [row_label(r) for r in table["body"]]
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
    assert next(row_label(r) for r in table["body"]) == ("Opacity", "NIH")
    reg.tasks["edema-nih"].data["leaderboard"]["disease"] = "Pulmonary oedema"
    table = parse(build_site(tmp_path / "site", results, reg)).tables["table-table1"]
    row = next(r for r in table["body"] if row_label(r)[0] == "Pulmonary oedema")
    # a display edit changes no number: the results filed before it still belong to the card
    assert not any("stale" in c["attrs"]["class"] for c in row[1:])
    reg.tasks["edema-nih"].data["metrics"] = {"threshold": 0.4}  # a behaviour edit: the filed numbers are flagged
    table = parse(build_site(tmp_path / "site", results, reg)).tables["table-table1"]
    row = next(r for r in table["body"] if row_label(r)[0] == "Pulmonary oedema")
    assert all("stale" in c["attrs"]["class"] for c in row[1:])


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
    assert reg.tasks["effusion-demo"].sha256 in task_page and "<h4>ci</h4>" in task_page  # analyses rendered
    assert "26.7 images/s" in (out / "encoders" / "pixels.html").read_text()
    exported = json.loads((out / "leaderboard.json").read_text())["results"]
    assert len(exported) == 17
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    by_key = {(r["task"], r["encoder"]): r for r in rows}
    assert by_key[("edema-mimic", "cxr-foundation")]["auroc_mean"] == "0.924"
    assert by_key[("effusion-demo", "pixels")]["section"] == "demo"
    assert (out / "static" / "site.js").is_file() and (out / "static" / "site.css").is_file()


class LinkParser(HTMLParser):
    """Every (tag, attribute, value) that loads or links something."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.refs = []

    def handle_starttag(self, tag, attrs):
        self.refs += [(tag, k, v or "") for k, v in attrs if k in ("src", "href", "data", "srcset", "action")]


def refs(page) -> list[tuple[str, str, str]]:
    parser = LinkParser()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.refs


def test_no_external_resources(site):
    """The site works offline: nothing is loaded from elsewhere (links out, <a href>, are fine: they load nothing)."""
    _, _, index = site
    for page in index.parent.rglob("*.html"):
        loaded = [(t, k, v) for t, k, v in refs(page) if t != "a"]
        assert loaded and all("//" not in v and not v.startswith(("data:", "javascript:")) for _, _, v in loaded), page
        assert "//cdn" not in page.read_text(), page


def test_external_links_come_from_the_cards_and_only_http_is_linked(tmp_path_factory):
    """Encoder homepage, hub repo (at its revision) and paper; the data set's paper and access page on a task page.
    Changing a card field changes the link; a card's javascript: address is shown as text, never linked."""
    reg, results, _ = build_fake_site(tmp_path_factory)
    card = reg.encoders["medimageinsight"].data
    card.update(homepage="https://example.org/mii", citation="Someone. A model. arXiv:2410.06542 (2024).",
                weights={"hf_repo": "org/mii", "revision": "abc1234", "files": ["w.pt"], "sha256": {}, "sizes": {},
                         "random_init": False})
    reg.datasets["nih-cxr14"].data.update(citation="Wang X. ChestX-ray8. doi:10.1109/CVPR.2017.369",
                                          access="Download from https://nihcc.app.box.com/v/ChestXray-NIHCC .")
    out = build_site(tmp_path_factory.mktemp("linked"), results, reg).parent
    links = {v for t, k, v in refs(out / "encoders" / "medimageinsight.html") if t == "a"}
    assert {"https://example.org/mii", "https://huggingface.co/org/mii/tree/abc1234",
            "https://arxiv.org/abs/2410.06542"} <= links
    task_links = {v for t, k, v in refs(out / "tasks" / "effusion-nih.html") if t == "a"}
    assert {"https://doi.org/10.1109/CVPR.2017.369", "https://nihcc.app.box.com/v/ChestXray-NIHCC"} <= task_links

    card["homepage"] = "javascript:alert(1)"
    card["weights"]["revision"] = "def5678"
    out = build_site(tmp_path_factory.mktemp("hostile-link"), results, reg).parent
    page = out / "encoders" / "medimageinsight.html"
    links = {v for t, k, v in refs(page) if t == "a"}
    assert "https://huggingface.co/org/mii/tree/def5678" in links
    assert not any(v.startswith("javascript:") for _, _, v in refs(page))
    assert "javascript:alert(1)" in page.read_text()  # shown, as text


def test_roc_curve_from_a_filed_predictions_file(tmp_path):
    from leaderboard.filing.submit import submit

    reg = fake_registry()
    results = tmp_path / "results"
    submit(shared_run(tmp_path / "run", reg), reg, results)  # files the result with its predictions
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
    assert plot_auroc_vs_parameters({"rows": [{"parameters": 1000, "mean_auroc": 0.7, "title": HOSTILE},
                                              {"parameters": 5000, "mean_auroc": 0.8, "title": "B"}]}, svg)
    assert "<script" not in svg.read_text() and "&lt;script&gt;alert(1)" in svg.read_text()  # the title, as text


def test_cli_build_prints_index_path(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import runner.cli.commands.leaderboard as cmds
    from runner.cli.main import app

    reg = fake_registry()
    monkeypatch.setattr(cmds, "_registry", lambda copies=(): reg)
    results = tmp_path / "results"
    file_reported(reg, TABLE_PATH, results)
    out = CliRunner().invoke(app, ["leaderboard", "build", "--out", str(tmp_path / "site"), "--results-dir", str(results)])
    assert out.exit_code == 0, out.output
    assert out.output.strip().endswith("index.html") and (tmp_path / "site" / "index.html").is_file()
    missing = CliRunner().invoke(app, ["leaderboard", "build", "--results-dir", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_real_registry_front_page_matches_the_paper(request):
    """The filed reported results, rendered against the project's own cards (the session's shared site). A card that
    does not load fails this test: the cards are loaded before the shared site is asked for."""
    from registry.cards import load_registry

    reg = load_registry()
    real_site = request.getfixturevalue("real_site")
    import re

    cells = grid(parse(real_site.index).tables["table-table1"])
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


@pytest.fixture(scope="module")
def view_matched_site(tmp_path_factory):
    """A clinical task outside Table 1 (benchmark view-matched: the "More tasks" section) with verified reproduced
    results of a metadata-only control (the highest AUROC) and two encoders."""
    import copy

    from leaderboard.filing.submit import submit
    from tests.support import FakeCard

    tmp_path = tmp_path_factory.mktemp("view-matched")
    reg = fake_registry()
    data = copy.deepcopy(reg.tasks["effusion-nih"].data)
    data.update(id="effusion-nih-vm", benchmarks=["view-matched"],
                leaderboard={"disease": "Effusion", "dataset_label": "NIH, view-matched", "order": 50})
    reg.tasks["effusion-nih-vm"] = FakeCard("effusion-nih-vm", "task", data)
    # a control encoder refitted from its embeddings bundle like the others (the fake manifest has no metadata
    # columns for the metadata adapter to read)
    reg.encoders["metadata"] = FakeCard("metadata", "encoder", {"id": "metadata", "title": "Metadata only",
                                                                "control": True})
    results = tmp_path / "results"
    for encoder, separation in (("metadata", 3.0), ("medimageinsight", 0.8), ("cxr-foundation", 0.4)):
        submit(shared_run(tmp_path / encoder, reg, "effusion-nih-vm", encoder, separation=separation), reg, results)
    return build_site(tmp_path / "site", results, reg)


def test_a_control_is_never_marked_best_in_a_clinical_section(view_matched_site):
    """Was: the "More tasks" section marked a metadata-only control ★ best (and bold): controls are reference
    columns there, left out of the paired test; the encoders compete among themselves."""
    index = view_matched_site
    cells = grid(parse(index).tables["table-extra"])
    [control] = [c for k, c in cells.items() if k[2] == "AUROC" and k[3].startswith("Metadata only")]
    others = {k[3]: c for k, c in cells.items() if k[2] == "AUROC" and "Metadata" not in k[3]}
    assert float(control["attrs"]["data-sort"]) > max(float(c["attrs"]["data-sort"]) for c in others.values())
    assert not control["bold"] and "control" in control["attrs"]["class"]
    assert sum(c["bold"] for c in others.values()) == 1  # the best encoder, not the control
    html = index.read_text()
    row = html[html.index('data-task="effusion-nih-vm"'):]
    row = row[:row.index("</tr>")]
    assert row.count('class="tie best"') == 2  # one per metric, both on encoders (the test left the control out)
    assert 'data-encoder="metadata"' in row and all(
        'class="tie best"' not in cell for cell in row.split("<td")[1:] if 'data-encoder="metadata"' in cell)
    summary = json.loads((index.parent / "leaderboard.json").read_text())
    ties = summary["tasks"]["effusion-nih-vm"]["ties"]
    assert set(ties["by_metric"]["auroc"]["values"]) == {"medimageinsight", "cxr-foundation"}
    assert "controls not compared" in ties["note"] and "metadata" in ties["note"]


def test_task_page_verdicts_sit_under_their_heading_and_results_run_best_first(view_matched_site):
    """Was: "significantly below the best" printed under "p (Holm)", the Verdict column empty, results unsorted."""
    page = view_matched_site.parent / "tasks" / "effusion-nih-vm.html"
    tables = parse(page).tables
    ties = tables["ties-auroc"]
    heads = [c["text"] for c in ties["head"][0]]
    assert heads[-2:] == ["p (Holm)", "Verdict"]
    for row in ties["body"]:
        assert len(row) == len(heads)
        assert row[-1]["text"] in ("best", "≈ best (tied)", "significantly below the best")
        assert row[-2]["text"] == "—" or row[-2]["text"] == "< 0.001" or 0 <= float(row[-2]["text"]) <= 1
    assert ties["body"][0][-1]["text"] == "best"  # best first here too
    summary = json.loads((view_matched_site.parent / "leaderboard.json").read_text())
    holm = summary["tasks"]["effusion-nih-vm"]["ties"]["by_metric"]["auroc"]["comparisons"]
    (other,) = holm.values()
    assert ties["body"][1][-2]["text"] == p_value_text(other["p_holm"])
    results = tables["task-results"]
    aurocs = [float(r[2]["attrs"]["data-sort"]) for r in results["body"]]
    assert aurocs == sorted(aurocs, reverse=True) and len(aurocs) == 3
    assert "control" in results["body"][0][0]["text"]  # the control's row is there, labelled


def p_value_text(p):
    from leaderboard.site.text import p_value

    return p_value(p)


def test_reported_rows_say_no_significance_test(real_site):
    """(From the analyses integration test: tie groups are the summary's; reported rows have no predictions.)"""
    from leaderboard.summary.summarize import NO_TEST_REPORTED

    assert "no significance test: reported numbers" in real_site.index.read_text()
    assert NO_TEST_REPORTED in (real_site.out / "tasks" / "effusion-nih.html").read_text()
