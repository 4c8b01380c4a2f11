"""The malformed-input corpus (tests/corpus/): every case gets its stated behaviour, never a traceback or a silent drop.

Each case is checked at the API (load_image / check_file / read_index / validate_files / submit), and the CLI-level cases
also through the real `runner` command in a subprocess: exit code, a message naming the thing, no "Traceback".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from corpus import build
from corpus.cases import CASES, Case

from tests.support import run_in_process

# Before the other files (tests/conftest.py): the file with the most CPU, all of it on one worker.
RUN_EARLY = True

REPO = Path(__file__).resolve().parents[1]
RUNNER = [sys.executable, "-c", "from runner.cli.main import app; app()"]

BY_AREA = {area: [c for c in CASES if c.area == area]
           for area in ("dicom", "image", "metadata", "card", "card-copy", "result", "scenario")}
ids = lambda cases: [c.id for c in cases]


def test_corpus_is_big_and_names_are_unique():
    assert len(CASES) >= 30
    assert len([c for c in CASES if c.issue == 13]) >= 40  # issue 13: hostile input and verified submission
    assert len([c for c in CASES if c.issue == 25]) >= 25  # issue 25 item 8: the rest of the review's list
    assert len({c.id for c in CASES}) == len(CASES)
    for case in CASES:
        assert hasattr(build, case.builder), case.builder
        assert case.outcome in ("excluded", "loads", "counted", "error", "refused", "filed", "observed"), case
        assert (case.outcome == "observed") == (case.area == "scenario"), case
        assert case.behaviour, case.id
        assert sum(c.area in BY_AREA for c in [case]) == 1, case.area


def assert_no_content(message: str, case: Case) -> None:
    if case.forbid:
        assert case.forbid not in message, (case.id, message)


def run_cli(args: list[str], env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", **(env or {})}
    return subprocess.run(RUNNER + args, check=False, capture_output=True, text=True, env=full_env, cwd=cwd or REPO,
                          timeout=120)


# Cases also run through a real `runner` subprocess in the normal run (each costs ~1-2 s of imports on a 2-core box);
# every other CLI case runs the same command in-process (typer's CliRunner), and all of them as subprocesses in the
# slow run (`-m slow`).
SUBPROCESS_SAMPLE = {
    "meta-missing-column", "meta-path-dotdot", "card-duplicate-key", "card-python-tag", "result-forged-card-hash",
    "result-100mb",
}


def run_cli_many(cases: list[Case], calls: list[tuple], all_subprocess: bool = False) -> list:
    """Run one `runner` call per case: sampled cases (or all) as subprocesses, a few at a time; the rest in-process."""
    from concurrent.futures import ThreadPoolExecutor

    out: list = [None] * len(cases)
    in_sub = [i for i, c in enumerate(cases) if all_subprocess or c.id in SUBPROCESS_SAMPLE]
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {i: pool.submit(run_cli, *calls[i]) for i in in_sub}
        for i in range(len(cases)):
            if i not in futures:
                out[i] = run_in_process(*calls[i])
        for i, future in futures.items():
            out[i] = future.result()
    return out


def assert_clean_failure(proc: subprocess.CompletedProcess, case: Case) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    assert proc.returncode == case.exit_code, (case.id, proc.returncode, proc.stdout, proc.stderr)
    assert case.expect in proc.stderr, (case.id, proc.stderr)
    assert_no_content(proc.stderr + proc.stdout, case)
    first = next(line for line in proc.stderr.splitlines() if case.expect in line)
    assert len(first) < 600, first  # one readable line, not a dump


@pytest.fixture(scope="module")
def registry_copy(tmp_path_factory) -> Path:
    """A copy of the project's registry (cards, publication records, committed manifests; no filed results) to add
    corpus cards to (CXR_REGISTRY_ROOT points the CLI at it)."""
    root = tmp_path_factory.mktemp("registry")
    for sub in ("tasks", "encoders", "registry/datasets", "leaderboard/publications", "manifests"):
        shutil.copytree(REPO / sub, root / sub)
    return root


def card_registry(root: Path) -> Path:
    """A registry of the project's cards alone at `root`: the card folders are all that card validation reads
    (registry.home; benchmarks fall back to the project's), so each card case copies ~0.6 MB, not the committed
    manifests' 8.8 MB too."""
    for sub in ("tasks", "encoders", "registry/datasets"):
        shutil.copytree(REPO / sub, root / sub)
    return root


# ---------------------------------------------------------------------------------------------- images


OVERFLOW_WARNING = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the rescale case
INVALID_VR = pytest.mark.filterwarnings("ignore:Invalid value for VR IS:UserWarning")  # NumberOfFrames "ab"


@OVERFLOW_WARNING
@INVALID_VR
@pytest.mark.parametrize("case", BY_AREA["dicom"] + BY_AREA["image"], ids=ids(BY_AREA["dicom"] + BY_AREA["image"]))
def test_image_case(case: Case, tmp_path):
    from runner.data.imaging import ImageDecodeError, load_image
    from runner.sample.sampler import check_file

    path = getattr(build, case.builder)(tmp_path)
    # The view case is checked as the sampler does without a view column: the ViewPosition tag decides.
    views = ("PA", "AP") if case.expect.startswith("view-") else None
    reason, detail, _view = check_file(str(tmp_path), path.name, "decode", views)
    if case.outcome == "loads" or case.expect.startswith("view-"):
        image = load_image(path)
        assert image.dtype == np.float32 and image.ndim == 2 and image.size > 0
        assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
        assert reason == ("" if case.outcome == "loads" else case.expect), (reason, detail)
        return
    with pytest.raises(ImageDecodeError) as raised:
        load_image(path)
    assert raised.value.reason == case.expect, str(raised.value)
    assert path.name in str(raised.value)  # the message names the file
    assert reason == case.expect and detail  # the sampler records the same reason, with a detail


@OVERFLOW_WARNING
@INVALID_VR
@pytest.mark.parametrize("case", BY_AREA["dicom"] + BY_AREA["image"], ids=ids(BY_AREA["dicom"] + BY_AREA["image"]))
def test_device_reader_gives_the_same_reason(case: Case, tmp_path):
    """The device path's CPU reader (runner.embed.device.read) excludes a file with the reason load_image gives."""
    from runner.embed.device.read import RawImage, read_one

    path = getattr(build, case.builder)(tmp_path)
    item, _seconds = read_one(str(path))
    if case.outcome == "loads" or case.expect.startswith("view-"):
        assert isinstance(item, RawImage) and item.pixels.shape[0] >= 2 and item.pixels.shape[1] >= 2, item
    else:
        assert item == f"decode-failed: {case.expect}", (case.id, item)


def test_16bit_png_keeps_its_16_bits(tmp_path):
    from runner.data.imaging import load_image

    image = load_image(build.png_16bit(tmp_path))
    expected = build.png_16bit_values() / 65535.0
    np.testing.assert_allclose(image, expected, atol=1e-6)
    assert len(np.unique(image)) > 256  # more levels than an 8-bit image can hold


@OVERFLOW_WARNING
@INVALID_VR
def test_every_bad_image_in_a_manifest_is_a_recorded_exclusion(tmp_path):
    """All image cases in one manifest through embed_manifest: bad files are listed with their reason, good ones kept."""
    import pandas as pd

    from runner.embed.cache import EmbeddingCache
    from runner.embed.embedding import embed_manifest
    from runner.encoders import load_encoder

    cases = BY_AREA["dicom"] + BY_AREA["image"]
    rows = []
    for case in cases:
        (tmp_path / case.id).mkdir()
        path = getattr(build, case.builder)(tmp_path / case.id)
        rows.append({"image_id": case.id, "path": path.relative_to(tmp_path).as_posix()})
    manifest = pd.DataFrame(rows)
    card = {"id": "pixels", "adapter": "pixels", "embedding": {"dim": 64},
            "preprocess": {"size": 8, "channels": 1, "interpolation": "area", "normalize": "none", "bit_depth": "float"}}
    cache = EmbeddingCache("corpus", card["preprocess"], root=tmp_path / "cache")
    out = embed_manifest(manifest, tmp_path, "corpus", load_encoder(card, device="cpu"), cache, workers=0,
                         progress=False)
    excluded = {e["image_id"]: e["reason"] for e in out.exclusions}
    for case in cases:
        if case.outcome == "loads" or case.expect.startswith("view-"):
            assert case.id in out.image_ids, case.id
        else:
            assert excluded.get(case.id) == f"decode-failed: {case.expect}", (case.id, excluded.get(case.id))
    assert len(out.image_ids) + len(out.exclusions) == len(cases)  # nothing silently dropped
    assert out.original.shape == (len(out.image_ids), 64) and np.isfinite(out.original).all()


# ---------------------------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("case", BY_AREA["metadata"], ids=ids(BY_AREA["metadata"]))
def test_metadata_case(case: Case, tmp_path):
    from runner.data import read_index
    from runner.data.tables import DataError

    root = getattr(build, case.builder)(tmp_path / "data")
    card = build.csv_dataset_card()
    if case.outcome == "error":
        with pytest.raises(DataError) as raised:
            read_index(card, root)
        assert case.expect in str(raised.value)
        assert_no_content(str(raised.value), case)
        assert "\n" not in str(raised.value)
        return
    if case.outcome == "loads":  # a numeric metadata feature: what is not a finite number is missing
        card = build.csv_dataset_card(metadata_features=[{"name": "age", "column": "age", "type": "numeric"}])
        ages = read_index(card, root).frame["meta_age"].to_numpy()
        assert len(ages) == len(build.good_rows()) and ages[0] == 61.0 and np.isnan(ages[1:]).all()
        return
    from runner.sample.sampler import apply_label_policy

    index = read_index(card, root).frame
    assert len(index) == len(build.good_rows())  # the odd row is still indexed, not dropped on reading
    policy = {"positive": [1.0], "negative": [0.0], "uncertain": "exclude", "blank": "exclude"}
    candidates = apply_label_policy(index["effusion"], policy).notna() & index["view"].isin(["PA", "AP"])
    assert int((~candidates).sum()) == 1  # exactly the odd row leaves, at a counted filter step
    odd = index.loc[~candidates].iloc[0]
    if case.expect == "label":
        assert np.isnan(odd["effusion"])
    else:
        assert odd["view"] == ""


def test_odd_rows_are_counted_by_the_sampler(tmp_path):
    """Blank/NaN label and blank view rows show up in the sampler's per-step counts (the manifest's `filters`)."""
    from runner.data import read_index
    from runner.sample.sampler import sample_task

    rows = build.good_rows(24)
    rows[1]["effusion"], rows[3]["effusion"], rows[5]["view"] = "", "NaN", ""
    root = build.write_csv(tmp_path / "data", rows)
    card = build.csv_dataset_card()
    task = {"id": "corpus", "label": {"id": "effusion"}, "views": ["PA", "AP"],
            "label_policy": {"positive": [1.0], "negative": [0.0], "uncertain": "exclude", "blank": "exclude"},
            "sampling": {"positives": 5, "negatives": 5, "seed": 0},
            "split": {"method": "stratified-group-kfold", "folds": 2, "seed": 0}}
    result = sample_task(task, card, root, verify="none", index=read_index(card, root, ["effusion"]))
    steps = {s.step.split(" (")[0]: (s.positives, s.negatives) for s in result.steps}
    assert steps["indexed"] == (10, 12)  # rows 1 and 3 (positives) have no label
    assert steps["view in PA/AP"] == (9, 12)  # row 5 (a positive) has no view
    assert len(result.frame) == 10


@pytest.mark.parametrize("all_subprocess", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_metadata_errors_through_runner_sample(registry_copy, tmp_path, all_subprocess):
    (registry_copy / "registry/datasets/corpus-csv.yaml").write_text(
        build.GOOD_DATASET_CARD.format(id="corpus-csv"), encoding="utf-8")
    (registry_copy / "tasks/corpus-task.yaml").write_text(build.task_card_text("corpus-task", "corpus-csv"))
    cases = [c for c in BY_AREA["metadata"] if c.outcome == "error"]
    calls = []
    for case in cases:
        root = getattr(build, case.builder)(tmp_path / case.id)
        calls.append((["sample", "--task", "corpus-task", "--data-root", str(root), "--out", str(tmp_path / "out")],
                      {"CXR_REGISTRY_ROOT": str(registry_copy)}, None))
    for case, proc in zip(cases, run_cli_many(cases, calls, all_subprocess)):
        assert_clean_failure(proc, case)


# ---------------------------------------------------------------------------------------------- cards


@pytest.fixture(scope="module")
def card_case_registry(tmp_path_factory):
    """case -> (its registry root, its card file): card_registry plus the case's builder, made once per case for the
    module and only read after (card validation writes nothing), by test_card_case and the `runner validate` test."""
    folder, built = tmp_path_factory.mktemp("card-cases"), {}

    def made(case: Case) -> tuple[Path, Path]:
        if case.id not in built:
            root = card_registry(folder / case.id)
            built[case.id] = (root, getattr(build, case.builder)(root))
        return built[case.id]

    return made


@pytest.mark.parametrize("case", BY_AREA["card"], ids=ids(BY_AREA["card"]))
def test_card_case(case: Case, card_case_registry, tmp_path):
    from registry.cards import validate_files

    root, path = card_case_registry(case)
    problems = validate_files([path], root)  # never raises: every problem comes back as a CardProblem
    assert problems, case.id
    assert any(case.expect in str(p) for p in problems), [str(p) for p in problems]
    assert_no_content(" ".join(map(str, problems)), case)
    assert all(p.file is not None for p in problems)
    assert not (tmp_path / "pwned").exists() and not (REPO / "pwned").exists()


@pytest.mark.parametrize("all_subprocess", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_cards_through_runner_validate(card_case_registry, tmp_path, all_subprocess):
    cases, calls, paths = BY_AREA["card"], [], []
    for case in cases:
        root, path = card_case_registry(case)
        paths.append(path)
        calls.append((["validate", str(paths[-1])], {"CXR_REGISTRY_ROOT": str(root)}, tmp_path))
    for case, path, proc in zip(cases, paths, run_cli_many(cases, calls, all_subprocess)):
        assert_clean_failure(proc, case)
        assert path.name in proc.stderr or "_b.yaml" in proc.stderr  # names the file (a cycle: where it closes)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("case", BY_AREA["card-copy"], ids=ids(BY_AREA["card-copy"]))
def test_card_copy_case(case: Case, registry_copy, tmp_path):
    """Card copies a run folder carries (runner.cli.run_cards), read back by `runner leaderboard build` (and the same
    way by submit and audit): one clear line, exit 2, nothing of a refused file's content."""
    folder = getattr(build, case.builder)(tmp_path / "results")
    proc = run_in_process(["--registry", str(registry_copy), "leaderboard", "build", "--results-dir", str(folder),
                           "--out", str(tmp_path / "site")], {}, tmp_path)
    assert_clean_failure(proc, case)
    assert not (tmp_path / "site").exists()


# ---------------------------------------------------------------------------------------------- results


def base_run(registry_root: Path, out: Path) -> Path:
    """A real, verifiable run of the real effusion-demo task and pixels encoder (tests/runs.py): OUT/<task>/manifest.*,
    OUT/<task>/pixels/{result.json, predictions.parquet}; one of its 60 images excluded at embedding (1.7% < 2%)."""
    from runs import make_run

    from registry.cards import load_registry

    return make_run(out, load_registry(registry_root), "effusion-demo", "pixels", excluded=1)


@pytest.fixture(scope="module")
def base_run_folder(registry_copy, tmp_path_factory) -> Path:
    """base_run made once for the module (it is deterministic); each case edits its own copy (build_result_case)."""
    out = tmp_path_factory.mktemp("base-run") / "out"
    base_run(registry_copy, out)
    return out


def build_result_case(case: Case, base: Path, folder: Path) -> Path:
    """The case's file, written into a copy of the real run folder `base` (so submit finds the predictions and the
    manifest)."""
    builder = getattr(build, case.builder)
    shutil.copytree(base, folder / "out")
    run = folder / "out" / "effusion-demo" / "pixels" / "result.json"
    if case.builder in ("result_huge_file", "result_not_object", "result_not_json", "result_deep_nesting"):
        return builder(run.parent)
    return builder(json.loads(run.read_text()), run.parent)


@pytest.mark.parametrize("case", BY_AREA["result"], ids=ids(BY_AREA["result"]))
def test_result_case(case: Case, registry_copy, base_run_folder, tmp_path):
    from leaderboard.filing.submit import SubmitError, submit
    from registry.cards import load_registry

    path = build_result_case(case, base_run_folder, tmp_path / "run")
    filed_dir = tmp_path / "filed"
    reg = load_registry(registry_copy)
    if case.outcome == "refused":
        with pytest.raises(SubmitError) as raised:
            submit(path, reg, filed_dir)
        assert raised.value.exit_code == case.exit_code and case.expect in str(raised.value), str(raised.value)
        assert_no_content(str(raised.value), case)
        assert not filed_dir.exists() or not any(filed_dir.iterdir())  # nothing filed
    else:
        filed = submit(path, reg, filed_dir)
        from leaderboard.site.render import build_site

        index = build_site(tmp_path / "site", filed_dir, reg)
        pages = list(index.parent.rglob("*.html"))
        assert filed.path.is_file() and pages
        for page in pages:
            text = page.read_text(encoding="utf-8")
            assert "<script>alert" not in text and "<img src=x" not in text, page
        assert any("&lt;script&gt;" in p.read_text(encoding="utf-8") for p in pages)


@pytest.mark.parametrize("all_subprocess", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_results_through_runner_submit(registry_copy, base_run_folder, tmp_path, all_subprocess):
    cases, calls = BY_AREA["result"], []
    for case in cases:
        path = build_result_case(case, base_run_folder, tmp_path / case.id)
        calls.append((["submit", str(path), "--results-dir", str(tmp_path / case.id / "filed")],
                      {"CXR_REGISTRY_ROOT": str(registry_copy)}, None))
    for case, proc in zip(cases, run_cli_many(cases, calls, all_subprocess)):
        if case.outcome == "refused":
            assert_clean_failure(proc, case)
            assert not (tmp_path / case.id / "filed").exists()
        else:
            assert proc.returncode == 0 and "filed" in proc.stdout, proc.stderr


def test_100mb_result_is_refused_without_reading_it(tmp_path, monkeypatch):
    import runner.results.result as results

    path = build.result_huge_file(tmp_path)
    apparent, allocated = build.sparse_size(path)
    assert apparent == 100 * 1024 * 1024 and allocated < 1024 * 1024  # sparse: the test never holds 100 MB
    monkeypatch.setattr(Path, "read_text", lambda *a, **k: pytest.fail("read the file before checking its size"))
    with pytest.raises(results.ResultError, match="more than the"):
        results.read_result(path)


# ---------------------------------------------------------------------------------------------- scenarios (issue 13)

# `runner eval` (a real process each for the signals) or run_evaluation on the demo data set: these builders read
# the session's one (tests/conftest.py demo_data_dir, the one they would make: ~0.8 CPU-s each)
ON_DEMO_DATA = {"sigterm-during-eval", "sigint-during-eval", "false-exclusion-claim"}


@pytest.mark.parametrize("case", BY_AREA["scenario"], ids=ids(BY_AREA["scenario"]))
def test_scenario_case(case: Case, tmp_path, request):
    """A hostile situation run end to end: no exception escapes, the user is told `expect`, never `forbid`."""
    if case.id in ON_DEMO_DATA:  # they only read their data root
        message = getattr(build, case.builder)(tmp_path, request.getfixturevalue("demo_data_dir"))
    else:
        message = getattr(build, case.builder)(tmp_path)
    assert case.expect in message, (case.id, message)
    assert_no_content(message, case)
    assert "Traceback" not in message
