"""Label policy, seeded order, exclusion + replacement of unreadable files, patient-wise splits."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from runner.data import read_index
from runner.sample.sampler import SamplingError, apply_label_policy, assign_folds, sample_task, seeded_order
from tests.support import REPO, children_after_sigkill

CARD = {"id": "png-set", "kind": "csv", "title": "t", "synthetic": True, "access": "made by the test",
        "files": {"metadata": ["meta.csv"]},
        "columns": {"image_id": "id", "patient_id": "pid", "path": "file", "view": "view"},
        "labels": {"effusion": {"column": "effusion"}}}
TASK = {"id": "effusion-png", "label": {"id": "effusion", "name": "Effusion"}, "views": ["PA", "AP"],
        "label_policy": {"positive": [1.0], "negative": [0.0], "uncertain": "exclude", "blank": "exclude"},
        "sampling": {"positives": 12, "negatives": 12, "seed": 3, "verify": "decode"},
        "split": {"method": "stratified-group-kfold", "folds": 3, "seed": 0}}
BAD = {"zero-bytes": lambda good: b"", "truncated": lambda good: good[:30], "garbage": lambda good: b"not an image",
       "missing": None}


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16), value, dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def png_root(tmp_path):
    """60 PNGs of 30 patients, half positive; four files of each class broken in four different ways."""
    rows, broken = [], {}
    for i in range(60):
        image_id, label = f"img{i:03d}", i % 2
        rows.append({"id": image_id, "pid": f"p{i // 2 % 30}", "file": f"x/{image_id}.png", "view": "PA",
                     "effusion": label})
        kind = list(BAD)[i // 2] if i < 8 else None
        (tmp_path / "x").mkdir(exist_ok=True)
        if kind == "missing":
            broken[image_id] = kind
            continue
        data = png(i)
        if kind:
            data, broken[image_id] = BAD[kind](data), kind
        (tmp_path / "x" / f"{image_id}.png").write_bytes(data)
    pd.DataFrame(rows).to_csv(tmp_path / "meta.csv", index=False)
    return tmp_path, broken


@pytest.mark.parametrize("values, policy, expected", [
    ([1.0, 0.0, -1.0, np.nan], {"uncertain": "exclude", "blank": "exclude"}, [1, 0, None, None]),
    ([1.0, 0.0, -1.0, np.nan], {"uncertain": "positive", "blank": "negative"}, [1, 0, 1, 0]),
    ([1.0, 0.0, -1.0, np.nan], {"uncertain": "negative", "blank": "exclude"}, [1, 0, 0, None]),
])
def test_label_policy(values, policy, expected):
    out = apply_label_policy(pd.Series(values), {"positive": [1.0], "negative": [0.0], **policy})
    assert [None if np.isnan(v) else int(v) for v in out] == expected


def test_no_finding_negatives_need_the_no_finding_label():
    out = apply_label_policy(pd.Series([0.0, 0.0, 1.0]), {"positive": [1.0], "negative": [0.0], "uncertain": "exclude",
                                                          "blank": "exclude"}, requires=pd.Series([1.0, np.nan, 1.0]))
    assert out.tolist()[0] == 0.0 and np.isnan(out.tolist()[1]) and out.tolist()[2] == 1.0


def test_seeded_order_ignores_file_order():
    frame = pd.DataFrame({"image_id": [f"i{k}" for k in range(50)]})
    shuffled = frame.sample(frac=1, random_state=7)
    one = seeded_order(frame, np.random.default_rng(5))["image_id"].tolist()
    two = seeded_order(shuffled, np.random.default_rng(5))["image_id"].tolist()
    assert one == two and one != sorted(one)


@pytest.mark.parametrize("workers", [1, 2])
def test_unreadable_files_are_recorded_and_replaced_by_the_next_candidate(png_root, workers):
    root, broken = png_root
    result = sample_task(TASK, CARD, root, workers=workers)
    frame = result.frame
    assert (frame["label"] == 1).sum() == 12 and (frame["label"] == 0).sum() == 12
    assert not set(frame["image_id"]) & set(broken)
    reasons = {e.image_id: e.reason for e in result.exclusions}
    assert set(reasons) <= set(broken)
    # The chosen images are exactly the first 12 readable ones of each class in the seeded order.
    index = read_index(CARD, root).frame
    rng = np.random.default_rng(TASK["sampling"]["seed"])
    for label in (1, 0):
        order = seeded_order(index[index["effusion"] == label], rng)["image_id"].tolist()
        readable = [i for i in order if i not in broken][:12]
        assert sorted(readable) == sorted(frame.loc[frame["label"] == label, "image_id"])
        passed_over = [i for i in order[: order.index(readable[-1])] if i in broken]
        assert sorted(passed_over) == sorted(i for i, e in reasons.items() if e and i in order)
    assert all(pd.Series(list(reasons.values()), dtype=object).str.fullmatch(r"[a-z0-9-]+"))


def test_every_kind_of_broken_file_is_an_exclusion(png_root):
    root, broken = png_root
    task = {**TASK, "sampling": {**TASK["sampling"], "positives": 26, "negatives": 26}}
    result = sample_task(task, CARD, root, workers=1)
    assert {e.image_id for e in result.exclusions} == set(broken)
    by_kind = {broken[e.image_id]: e.reason for e in result.exclusions}
    assert by_kind["zero-bytes"] == "zero-bytes" and by_kind["missing"] == "missing-file"
    assert all(e.detail for e in result.exclusions)


def test_too_many_broken_files_is_a_clear_error(png_root):
    root, _ = png_root
    task = {**TASK, "sampling": {**TASK["sampling"], "positives": 30, "negatives": 30}}
    with pytest.raises(SamplingError, match=r"sampled after file checks \(decode\): 26 positives / 26 negatives"):
        sample_task(task, CARD, root, workers=1)


def test_header_and_none_modes(png_root):
    root, broken = png_root
    header = sample_task(TASK, CARD, root, verify="header", workers=1)
    assert {e.reason for e in header.exclusions} <= {"zero-bytes", "missing-file", "bad-header"}
    none = sample_task(TASK, CARD, root, verify="none")
    assert not none.exclusions and set(none.frame["image_id"]) & set(broken)


def _patients_disjoint(frame):
    return (frame.groupby("patient_id")["fold"].nunique() == 1).all()


def test_group_kfold_and_holdout_keep_patients_on_one_side():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"patient_id": rng.integers(0, 120, 600).astype(str), "label": rng.integers(0, 2, 600)})
    folds, evaluated = assign_folds(frame, {"method": "stratified-group-kfold", "folds": 5, "seed": 0})
    assert evaluated == [0, 1, 2, 3, 4] and set(folds) == set(range(5))
    assert _patients_disjoint(frame.assign(fold=folds))
    folds, evaluated = assign_folds(frame, {"method": "group-holdout", "test_fraction": 0.2, "seed": 0})
    assert evaluated == [0] and set(folds) == {0, 1} and _patients_disjoint(frame.assign(fold=folds))
    assert 0.1 < (folds == 0).mean() < 0.3


def test_too_few_patients_for_the_folds_is_a_clear_error():
    frame = pd.DataFrame({"patient_id": ["a", "a", "b", "b"], "label": [1, 0, 1, 0]})
    with pytest.raises(SamplingError, match="5 folds need at least 5 patients per class"):
        assign_folds(frame, {"method": "stratified-group-kfold", "folds": 5, "seed": 0})


def test_the_file_checking_processes_end_with_a_run_killed_with_sigkill(tmp_path):
    """A run killed with SIGKILL while it samples cannot end its file-checking processes: Linux ends them
    (runner.runtime.signals `die_with_parent`) instead of leaving them to wait on their queue for ever."""
    script = tmp_path / "sampling.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from runner.sample.sampler import FileChecker
        check = FileChecker({str(tmp_path)!r}, "header", None, workers=2)
        assert all(reason for reason, _, _ in check([f"missing-{{i}}.dcm" for i in range(16)]))
        print("checked", flush=True)
        time.sleep(600)
    """))
    run = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def cmdline(pid):
        return Path(f"/proc/{pid}/cmdline").read_bytes()

    checkers, alive = children_after_sigkill(run, "checked", lambda pid: cmdline(pid) == cmdline(run.pid))
    assert len(checkers) == 2  # forked from the run
    assert not alive, "file-checking processes outlived the run killed with SIGKILL"
