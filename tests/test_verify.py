"""Issue 13: a number on the leaderboard means what it says.

First the three failures quoted at the top of the issue, as they were reproduced (each test failed before the fix,
with the behaviour named in its docstring), then the pieces: verification, publications, fingerprints, the
exclusion budget, the site's output folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from runs import edit_result, shared_run

from leaderboard.filing.submit import EXIT_INVALID, EXIT_REFUSED, SubmitError, filed_problems, submit
from tests.support import TINY_TASK, fake_registry, make_registry_root

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def reg():
    return fake_registry()


def refused(path, reg, results, **kw) -> SubmitError:
    with pytest.raises(SubmitError) as info:
        submit(path, reg, results, **kw)
    assert not (Path(results) / "effusion-demo__pixels__reproduced.json").exists()
    return info.value


# ------------------------------------------------------------------------------------- quoted failure 1: data root


def _eval(registry, root, out, cache, **options):
    from runner.evaluate import EvalOptions, evaluate

    return evaluate("effusion-tiny", "pixels", root, out, EvalOptions(
        device="cpu", workers=0, analyses=[], cache_dir=cache, progress=False, **options), registry=registry)


@pytest.fixture(scope="module")
def tiny_registry(tmp_path_factory):
    from registry.cards import clear_cache, load_registry

    root = make_registry_root(tmp_path_factory.mktemp("reg13"), {
        "effusion-tiny": TINY_TASK,
        "effusion-budget": TINY_TASK.replace("effusion-tiny", "effusion-budget").replace(
            "verify: header}", "verify: none, max_excluded_fraction: 0.0}"),
    })
    clear_cache()
    return load_registry(root)


def test_wrong_data_root_with_a_manifest_in_out_is_refused(tiny_registry, demo_data_dir, tmp_path):
    """Was: a wrong --data-root reused the manifest in --out, 286 of 300 images were excluded as missing, the run
    printed AUROC 0.500 ± 0.000 with exit 0. Now: exit 2 naming what differs; --resample starts over."""
    from runner.evaluate import EvaluationError

    out, cache = tmp_path / "out", tmp_path / "cache"
    _eval(tiny_registry, demo_data_dir, out, cache)
    wrong = tmp_path / "wrong-root"
    shutil.copytree(demo_data_dir, wrong)
    manifest = pd.read_parquet(out / "effusion-tiny" / "manifest.parquet")
    for rel in manifest["path"].iloc[: int(len(manifest) * 0.95)]:  # most of the sampled images are not there
        (wrong / rel).unlink()
    with pytest.raises(EvaluationError) as info:
        _eval(tiny_registry, wrong, out, cache)
    message = str(info.value)
    assert info.value.exit_code == 2 and "image(s) missing" in message and "--resample" in message, message
    print("quoted failure 1 now:", message)
    # a data root whose metadata table differs is named too
    other = tmp_path / "other-root"
    shutil.copytree(demo_data_dir, other)
    with (other / "metadata.csv").open("a") as handle:
        handle.write("\n")
    with pytest.raises(EvaluationError, match="metadata table"):
        _eval(tiny_registry, other, out, cache)
    # the same bytes under another folder (a copy) are the same data: the manifest is reused
    same = tmp_path / "same-root"
    shutil.copytree(demo_data_dir, same)
    assert _eval(tiny_registry, same, out, cache).is_file()
    # --resample starts over: samples again from what the wrong root holds (too few candidates here: exit 2, clear)
    with pytest.raises(EvaluationError) as again:
        _eval(tiny_registry, wrong, out, cache, resample=True)
    assert "not enough candidates" in str(again.value) or "no image files" in str(again.value)


def test_a_second_data_root_never_hits_the_first_ones_embeddings(tmp_path):
    """Same relative paths, same sizes and mtimes (cp -p), other bytes: another cache key."""
    import os

    from runner.embed.cache import ImageIdentity

    a, b = tmp_path / "a", tmp_path / "b"
    for root, content in ((a, b"AAAA"), (b, b"BBBB")):
        (root / "files").mkdir(parents=True)
        (root / "files" / "x.dcm").write_bytes(content)
        os.utime(root / "files" / "x.dcm", ns=(1_000_000_000, 1_000_000_000))
    key_a = ImageIdentity.of_file("ds", a, "files/x.dcm").key()
    assert ImageIdentity.of_file("ds", b, "files/x.dcm").key() != key_a
    assert ImageIdentity.of_file("ds", a, "files/x.dcm").key() == key_a  # and the first root still hits its own


def test_exclusion_budget_fails_the_run_with_a_table_of_reasons(tiny_registry, demo_data_dir, tmp_path):
    """verify: none lets the demo's corrupt files into the manifest; they fail at embedding. Budget 0: exit 1."""
    import json as _json

    from runner.evaluate import EvalOptions, EvaluationError, evaluate

    corrupt = _json.loads((demo_data_dir / "demo_data.json").read_text())["corrupt"]
    assert corrupt  # the demo data set has deliberately broken files
    options = EvalOptions(device="cpu", workers=0, analyses=[], cache_dir=tmp_path / "cache", progress=False)
    try:
        evaluate("effusion-budget", "pixels", demo_data_dir, tmp_path / "out", options, registry=tiny_registry)
    except EvaluationError as exc:
        assert exc.exit_code == 1 and "max_excluded_fraction 0" in str(exc) and "decode-failed" in str(exc)
        assert "reason" in str(exc).splitlines()[1]  # the table header
        return
    manifest = pd.read_parquet(tmp_path / "out" / "effusion-budget" / "manifest.parquet")
    assert not set(manifest["image_id"]) & {c["image_id"] for c in corrupt}, "no corrupt file was sampled"


def test_exclusion_budget_field_changes_the_outcome():
    from runner.sample.exclusion_budget import budget_problem

    lost = [{"image_id": f"i{i}", "path": f"p{i}", "reason": "at embedding: missing-file"} for i in range(5)]
    assert budget_problem(300, lost, 0.02) is None  # 5 of 300 = 1.7%
    assert "5 missing-file" in budget_problem(200, lost, 0.02)  # 2.5%
    assert budget_problem(200, lost, 0.05) is None


# ------------------------------------------------------------------------------------- quoted failure 2: submit


def test_an_edited_auroc_is_refused(reg, tmp_path):
    """Was: a result edited to AUROC 0.999 was filed and shown in bold."""
    path = shared_run(tmp_path / "out", reg)
    edit_result(path, lambda r: r["metrics"]["auroc"].update(mean=0.999))
    error = refused(path, reg, tmp_path / "results")
    assert error.exit_code == EXIT_REFUSED and "/metrics/auroc/mean: the submission says 0.999" in str(error), str(error)
    print("quoted failure 2a now:", error)


def test_swapped_predictions_are_refused(reg, tmp_path):
    """Was: a predictions file swapped for perfectly separating probabilities made a weak encoder best by the test."""
    path = shared_run(tmp_path / "out", reg, separation=0.2)
    predictions = pd.read_parquet(path.parent / "predictions.parquet")
    predictions["prob"] = predictions["label"].astype(float)
    predictions.to_parquet(path.parent / "predictions.parquet", index=False)
    error = refused(path, reg, tmp_path / "results")
    assert "predictions_sha256 in the result" in str(error), str(error)
    # and with the sha256 forged to match, the registry's own refit gives it away
    from runner.data.fingerprint import file_sha256

    edit_result(path, lambda r: r.update(predictions_sha256=file_sha256(path.parent / "predictions.parquet")))
    forged = str(refused(path, reg, tmp_path / "results"))
    assert "not what the task's classifier gives" in forged or "numbers differ" in forged, forged
    print("quoted failure 2b now:", error)


def test_readme_submit_path_finds_the_manifest_and_refuses_forged_manifest_fields(reg, tmp_path):
    """Was: `runner submit runs/<task>/<enc>/result.json` did not find OUT/<task>/manifest.json, so a forged
    manifest sha256 and n_images passed."""
    path = shared_run(tmp_path / "runs", reg)
    edit_result(path, lambda r: r["manifest"].update(sha256="1" * 64))
    error = refused(path, reg, tmp_path / "results")
    assert "manifest sha256 in the result" in str(error), str(error)
    path = shared_run(tmp_path / "runs2", reg)
    edit_result(path, lambda r: r["manifest"].update(n_images=2000))
    assert "/manifest/n_images: the submission says 2000" in str(refused(path, reg, tmp_path / "results"))
    print("quoted failure 2c now:", error)
    (tmp_path / "runs2" / "effusion-demo" / "manifest.json").unlink()
    assert "no frozen manifest" in str(refused(path, reg, tmp_path / "results"))


def test_made_up_reported_number_is_refused(reg, tmp_path):
    """Was: a made-up reported number citing nobody landed in Table 1."""
    from leaderboard.filing.publications import load_publication, reported_results
    from tests.support import TABLE_PATH

    publication = load_publication(TABLE_PATH)
    result = next(r for r in reported_results(publication, reg)
                  if (r["task"]["id"], r["encoder"]["id"]) == ("effusion-nih", "medimageinsight"))
    folder = tmp_path / "reported"
    folder.mkdir()
    for name, change in (
            ("made-up", lambda r: r["metrics"]["auroc"].update(mean=0.99)),
            ("no-such-paper", lambda r: r.update(publication="smith2099-table9")),
            ("uncited", lambda r: r.pop("publication"))):
        forged = json.loads(json.dumps(result))
        change(forged)
        (folder / f"{name}.json").write_text(json.dumps(forged))
        with pytest.raises(SubmitError) as info:
            submit(folder / f"{name}.json", reg, tmp_path / "results")
        assert info.value.exit_code in (EXIT_REFUSED, EXIT_INVALID)
        assert "publication" in str(info.value), str(info.value)
        print(f"quoted failure 2d ({name}) now:", info.value)
    (folder / "ok.json").write_text(json.dumps(result))
    assert submit(folder / "ok.json", reg, tmp_path / "results").path.exists()


def test_names_on_the_site_come_from_the_cards(reg, tmp_path):
    """Was: a result's encoder.name "MedImageInsight (official)" was shown for another encoder."""
    from leaderboard.site.render import build_site

    path = shared_run(tmp_path / "out", reg)
    edit_result(path, lambda r: r["encoder"].update(name="MedImageInsight (official)"))
    submit(path, reg, tmp_path / "results")
    index = build_site(tmp_path / "site", tmp_path / "results", reg)
    pages = "".join(p.read_text() for p in index.parent.rglob("*.html"))
    assert "MedImageInsight (official)" not in pages and "Raw pixels" in pages
    records = json.loads((index.parent / "leaderboard.json").read_text())["results"]
    assert {r["encoder_name"] for r in records} == {"Raw pixels"}


# ------------------------------------------------------------------------------------- quoted failure 3: --out .


def test_leaderboard_build_out_dot_in_the_repo_is_refused(tmp_path):
    """Was: `runner leaderboard build --out .` in the repo deleted tasks/ and encoders/."""
    from typer.testing import CliRunner

    from registry.cards import clear_cache
    from runner.cli.main import app

    root = tmp_path / "repo"
    for sub in ("tasks", "encoders", "registry/datasets"):
        shutil.copytree(REPO / sub, root / sub)
    (root / "tasks" / "uncommitted-note.txt").write_text("work in progress")
    results = tmp_path / "results"
    results.mkdir()
    clear_cache()
    import os

    cwd = os.getcwd()
    os.chdir(root)
    try:
        out = CliRunner().invoke(app, ["leaderboard", "build", "--out", ".", "--results-dir", str(results)],
                                 env={"CXR_REGISTRY_ROOT": str(root)})
    finally:
        os.chdir(cwd)
    assert out.exit_code == 2 and "refusing to build the site into ." in out.stderr, out.output
    assert (root / "tasks" / "uncommitted-note.txt").is_file() and any((root / "encoders").iterdir())
    print("quoted failure 3 now:", out.stderr.strip())


def test_site_folder_rebuild_removes_only_what_it_made(reg, tmp_path):
    from leaderboard.site.render import SiteDirError, build_site

    results = tmp_path / "results"
    submit(shared_run(tmp_path / "out", reg), reg, results)
    site = tmp_path / "site"
    build_site(site, results, reg)
    (site / "tasks" / "my-notes.txt").write_text("mine")
    stale = site / "tasks" / "old-task.html"
    stale.write_text("made by hand")  # not listed in the marker: kept
    build_site(site, results, reg)
    assert (site / "tasks" / "my-notes.txt").is_file() and stale.is_file() and (site / "index.html").is_file()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("years of work")
    with pytest.raises(SiteDirError, match="not empty"):
        build_site(busy, results, reg)
    assert (busy / "thesis.tex").read_text() == "years of work"


# ------------------------------------------------------------------------------------- leaderboard build verifies


def test_build_marks_a_filed_result_edited_after_filing_and_strict_fails(reg, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import runner.cli.commands.leaderboard as cmds
    from leaderboard.site.render import build_site
    from runner.cli.main import app

    results = tmp_path / "results"
    filed = submit(shared_run(tmp_path / "out", reg), reg, results).path
    assert filed_problems(filed, json.loads(filed.read_text()), reg) == []
    edit_result(filed, lambda r: r["metrics"]["auroc"].update(mean=0.999))  # edited in the repo after filing
    problems: list = []
    index = build_site(tmp_path / "site", results, reg, problems=problems)
    assert problems and "0.999" in problems[0][1]
    html = index.read_text()
    assert "not verified" in html and "Results that failed verification" in html
    assert "<strong class=\"v\">0.999" not in html  # never bold, never ranked
    monkeypatch.setattr(cmds, "_registry", lambda copies=(): reg)
    lax = CliRunner().invoke(app, ["leaderboard", "build", "--out", str(tmp_path / "s2"), "--results-dir", str(results)])
    assert lax.exit_code == 0 and "not verified" in lax.stderr
    strict = CliRunner().invoke(app, ["leaderboard", "build", "--out", str(tmp_path / "s3"), "--results-dir",
                                      str(results), "--strict"])
    assert strict.exit_code == 1 and "not verified" in strict.stderr and "--strict" in strict.stderr


def test_verification_is_exact_rows_of_the_manifest(reg, tmp_path):
    from leaderboard.filing.regenerate import expected_rows, prediction_problems
    from runner.sample.manifest import read_manifest

    path = shared_run(tmp_path / "out", reg, excluded=0)
    manifest = read_manifest(path.parent.parent)
    predictions = pd.read_parquet(path.parent / "predictions.parquet")
    expected, _ = expected_rows(manifest, [], transfer=False)
    assert prediction_problems(predictions, expected) == []
    dropped = predictions.iloc[1:]  # a silently dropped row
    assert "no prediction and are not recorded" in prediction_problems(dropped, expected)[0]
    moved = predictions.assign(fold=1 - predictions["fold"])  # folds that are not the manifest's
    assert any("another fold" in p for p in prediction_problems(moved, expected))
    relabelled = predictions.assign(label=1 - predictions["label"])
    assert any("another label" in p for p in prediction_problems(relabelled, expected))


def test_results_over_the_exclusion_budget_are_refused(reg, tmp_path):
    path = shared_run(tmp_path / "out", reg, excluded=4)  # 4 of 40 lost at embedding: 10% > the budget (0 here)
    assert "max_excluded_fraction" in str(refused(path, reg, tmp_path / "results"))
    reg.tasks["effusion-demo"].data["sampling"] = {"max_excluded_fraction": 0.2}
    path = shared_run(tmp_path / "out2", reg, excluded=4)
    assert submit(path, reg, tmp_path / "results").path.exists()
