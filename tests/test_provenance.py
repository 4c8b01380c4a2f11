"""Which code made a result (issue 27 item 5): runner.results.provenance, the result's `code` block, the site."""

from __future__ import annotations

import json
import subprocess

import pytest
from runs import edit_result, shared_run

from leaderboard.filing import verified
from leaderboard.filing.publications import load_publication, reported_problems, reported_results
from leaderboard.filing.submit import submit
from runner.results.provenance import code_fingerprint, code_provenance, fingerprint, git_state
from runner.results.result import read_result, validate_result
from runner.results.run_result import RunFacts
from tests.support import REPO, TABLE_PATH


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_one_fingerprint_for_results_and_regeneration_records():
    assert verified.code_fingerprint is code_fingerprint
    block = code_provenance()
    assert block["sha256"] == code_fingerprint() and len(block["sha256"]) == 64
    assert block["git_commit"] == _git(REPO, "rev-parse", "HEAD")
    assert isinstance(block["git_dirty"], bool)


def test_git_state_says_dirty_only_when_a_code_file_differs_or_is_new(tmp_path):
    assert git_state(tmp_path) == (None, None)  # not a repository: no claim
    _git(tmp_path, "init", "-q")
    (tmp_path / "runner").mkdir()
    (tmp_path / "runner" / "a.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("data\n")
    _git(tmp_path, "add", "runner/a.py", "notes.txt")
    _git(tmp_path, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "one")
    head = _git(tmp_path, "rev-parse", "HEAD")
    code = (":(glob)runner/**/*.py",)
    assert git_state(tmp_path, code) == (head, False)
    (tmp_path / "notes.txt").write_text("more data\n")  # a tracked file that is not code
    assert git_state(tmp_path, code) == (head, False) and git_state(tmp_path) == (head, True)
    (tmp_path / "runner" / "sub").mkdir()
    (tmp_path / "runner" / "sub" / "new.py").write_text("y = 2\n")  # new code, not committed
    assert git_state(tmp_path, code) == (head, True)
    (tmp_path / "runner" / "sub" / "new.py").unlink()
    (tmp_path / "runner" / "a.py").write_text("x = 2\n")
    assert git_state(tmp_path, code) == (head, True)


def test_the_fingerprint_covers_code_and_schemas_not_filed_results(tmp_path):
    (tmp_path / "pkg" / "schemas").mkdir(parents=True)
    (tmp_path / "pkg" / "results").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "schemas" / "r.schema.json").write_text("{}")
    versions = {"numpy": "2.0", "lightgbm": None}

    def now():
        return fingerprint({"pkg": tmp_path / "pkg"}, versions)

    first = now()
    (tmp_path / "pkg" / "results" / "a__b__reproduced.json").write_text("{}")  # filing a result
    assert now() == first
    (tmp_path / "pkg" / "schemas" / "r.schema.json").write_text('{"type": "object"}')
    second = now()
    assert second != first
    (tmp_path / "pkg" / "m.py").write_text("x = 2\n")
    assert now() != second
    assert fingerprint({"pkg": tmp_path / "pkg"}, {"numpy": "2.1", "lightgbm": None}) != now()


def test_a_run_records_its_code_and_filing_keeps_it(tmp_path):
    from registry.cards import clear_cache, load_registry

    clear_cache()
    reg = load_registry()
    facts = RunFacts.of_result({"code": code_provenance()})
    assert facts.code == code_provenance()
    path = shared_run(tmp_path / "out", reg)
    made_by = {"sha256": "ab" * 32, "git_commit": "1" * 40, "git_dirty": True}  # another checkout's run
    edit_result(path, lambda r: r.update(code=made_by))
    filed = submit(path, reg, tmp_path / "results", manifest_path=path.parent.parent / "manifest.json")
    assert read_result(filed.path)["code"] == made_by  # a run fact: filed as the run reports it, not recomputed
    assert validate_result(read_result(filed.path)) == []


def test_reported_numbers_record_the_code_that_filed_them(tmp_path):
    from registry.cards import clear_cache, load_registry

    clear_cache()
    reg = load_registry()
    publication = load_publication(TABLE_PATH)
    result = reported_results(publication, reg)[0]
    assert result["code"] == code_provenance() and validate_result(result) == []
    older = dict(result, code={"sha256": "0" * 64, "git_commit": None, "git_dirty": None})
    assert reported_problems(older, {publication.id: publication}, reg) is None  # still what the paper prints


@pytest.mark.parametrize("dirty", [False, True])
def test_the_task_page_shows_the_code_of_each_row(tmp_path, dirty):
    from leaderboard.site.render import build_site
    from registry.cards import clear_cache, load_registry

    clear_cache()
    reg = load_registry()
    path = shared_run(tmp_path / "out", reg, "effusion-demo", "pixels")
    code = {"sha256": "ef" * 32, "git_commit": "abcdef1234567890abcdef1234567890abcdef12", "git_dirty": dirty}
    edit_result(path, lambda r: r.update(code=code))
    submit(path, reg, tmp_path / "results", manifest_path=path.parent.parent / "manifest.json")
    index = build_site(tmp_path / "site", tmp_path / "results", reg)
    page = (index.parent / "tasks" / "effusion-demo.html").read_text()
    cell = page[page.index('class="code-provenance"'):]
    cell = cell[:cell.index("</td>")]
    assert "efefefefefef" in cell and "abcdef123" in cell and ("dirty" in cell) == dirty
    summary = json.loads((index.parent / "leaderboard.json").read_text())
    assert summary["tasks"]["effusion-demo"]["entries"][0]["result"]["code"] == code


@pytest.mark.parametrize("result, shown, absent", [
    ({"environment": {"git_commit": "9e56a1871f65f19e912927a553849533fce5d253-dirty"}},
     ["9e56a1871", "dirty, code not recorded"], ["clean", "hash"]),
    ({"environment": {"git_commit": "9e56a1871f65f19e912927a553849533fce5d253"}}, ["9e56a1871", "clean"], ["dirty"]),
    ({"environment": {"git_commit": None}}, ["not recorded"], ["commit"]),
    ({"code": {"sha256": "ab" * 32, "git_commit": None, "git_dirty": None}}, ["abababababab", "no git"], ["clean"]),
    ({"code": {"sha256": "ab" * 32, "git_commit": "1" * 40, "git_dirty": False},
      "environment": {"git_commit": "2" * 40 + "-dirty"}}, ["abababababab", "111111111", "clean"], ["222", "dirty"]),
])
def test_the_code_cell_reads_older_results_from_their_environment(result, shown, absent):
    from leaderboard.site.text import code_html

    html = str(code_html(result))
    assert all(text in html for text in shown) and not any(text in html for text in absent), html
