"""The Encoders page in the built site (HTML level) and the site's text helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leaderboard.site.text import citation_html, p_value
from tests.support import build_fake_site, parse


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_fake_site(tmp_path_factory)[2].parent


def test_every_cell_links_to_a_result_file_copied_into_the_site(site):
    html = (site / "encoders.html").read_text()
    tables = [t for key, t in parse(site / "encoders.html").tables.items() if key and key.startswith("encoders-")]
    assert tables
    import re

    links = re.findall(r'class="result-link" href="(results/[^"]+)"', html)
    assert len(links) >= 17  # 16 reported cells of Table 1 + the demo result, in the default and the "all" views
    for href in set(links):
        filed = json.loads((site / href).read_text())
        assert href.endswith(f"{filed['task']['id']}__{filed['encoder']['id']}__{filed['provenance']}.json")
    ranking = json.loads((site / "encoders.json").read_text())
    assert ranking["views"] and ranking["default_view"] in ranking["views"]


def test_nav_and_footer_link_the_encoders_page_and_the_files(site):
    index = (site / "index.html").read_text()
    assert 'href="encoders.html"' in index and 'href="results/"' in index
    assert (site / "results").is_dir()


def test_p_values_are_never_printed_as_zero():
    assert p_value(0.0) == "< 0.001" and p_value(0.0004) == "< 0.001"
    assert p_value(0.0421) == "0.042" and p_value(None) == "—"


def test_citations_link_their_url_doi_or_arxiv_id_and_escape_the_rest():
    html = str(citation_html("Me. A paper <b>. arXiv:2401.01234, doi:10.1000/xyz. See https://example.org/p."))
    assert '<a href="https://arxiv.org/abs/2401.01234">arXiv:2401.01234</a>' in html
    assert '<a href="https://doi.org/10.1000/xyz">doi:10.1000/xyz</a>' in html
    assert '<a href="https://example.org/p">https://example.org/p</a>' in html
    assert "&lt;b&gt;" in html and "<b>" not in html
    assert str(citation_html(None)) == "—"


def test_reported_rows_show_their_publication_not_a_creation_time(site):
    page = (site / "tasks" / "effusion-nih.html").read_text()
    assert "Run on / published in" in page
    assert "2026-11-28T00:00:00Z" not in page  # the transcription date is not shown as if it were a run


def test_empty_column_groups_are_not_shown(tmp_path):
    from leaderboard.site.render import build_site
    from runner.results.result import write_result
    from tests.support import fake_registry, make_reproduced

    reg = fake_registry()
    for card in reg.encoders.values():
        card.data.pop("parameters", None)
    results = tmp_path / "results"
    write_result(make_reproduced(reg, "effusion-demo", "pixels"), results / "effusion-demo__pixels__reproduced.json")
    out = build_site(tmp_path / "site", results, reg).parent
    html = (out / "encoders.html").read_text()
    assert 'title="parameters"' not in html and "Licence" not in html  # no card gives them
    assert not list(Path(out / "static").glob("auroc-vs-parameters-*.svg"))  # nothing to plot either


def test_table1_and_task_page_numbers_link_their_files(site):
    import re

    for page, prefix in (("index.html", ""), ("tasks/effusion-nih.html", "../")):
        hrefs = re.findall(r'class="result-link" href="([^"]+)"', (site / page).read_text())
        assert hrefs, page
        for href in hrefs:
            assert href.startswith(prefix + "results/") and (site / page).parent.joinpath(href).is_file(), href


def test_each_encoder_page_says_how_its_card_runs_on_cuda(tmp_path_factory):
    """The card's precision block decides the line (fp32 for every registry card; a card that sets bf16 and
    channels_last says so)."""
    from leaderboard.site.render import build_site
    from tests.support import fake_registry

    reg, results, index = build_fake_site(tmp_path_factory)
    assert "fp32, default memory format" in (index.parent / "encoders" / "pixels.html").read_text()
    reg.encoders["pixels"].data["precision"] = {"bf16": True, "channels_last": True}
    changed = build_site(tmp_path_factory.mktemp("site-bf16"), results, reg)
    assert "bf16 autocast, channels_last" in (changed.parent / "encoders" / "pixels.html").read_text()
    assert fake_registry  # the fake cards of test_site
