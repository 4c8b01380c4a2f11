"""Result JSON: schema, NaN refusal, atomic write, defensive read, environment record.

Also holds the small fakes (cards, registry, results) that test_submit.py and test_site.py import.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from registry.hashing import sha256_of
from runner.results.result import (
    MAX_FILE_BYTES,
    ResultError,
    encoder_ref,
    environment_info,
    read_result,
    task_ref,
    utc_now,
    validate_result,
    write_result,
)

# ------------------------------------------------------------------ fakes shared with the other test modules


TEMPLATES = {"task": "effusion-demo", "encoder": "pixels", "dataset": "demo-cxr"}  # real cards the fakes complete


@dataclass
class FakeCard:
    """A card whose given fields are laid over a real card of its kind, so its spec and hashes are real ones."""

    id: str
    kind: str
    data: dict
    path: Path | None = None

    @property
    def full(self) -> dict:
        from registry.cards import load_registry
        from registry.extends import deep_merge

        template = dict(load_registry().of_kind(self.kind)[TEMPLATES[self.kind]].data)
        template.pop("benchmarks", None)  # a fake task belongs to the benchmarks its own data names, if any
        return deep_merge({**template, **({"benchmarks": []} if self.kind == "task" else {})}, self.data)

    @property
    def sha256(self) -> str:
        return sha256_of(self.full)

    @property
    def behaviour_sha256(self) -> str:
        from registry.schemas import behaviour_part

        return sha256_of(behaviour_part(self.kind, self.full))

    @property
    def spec(self):
        from registry import specs

        return {"task": specs.task_spec, "encoder": specs.encoder_spec, "dataset": specs.dataset_spec}[self.kind](
            self.full)


@dataclass
class FakeRegistry:
    datasets: dict = field(default_factory=dict)
    tasks: dict = field(default_factory=dict)
    encoders: dict = field(default_factory=dict)

    # The project's own registry folders (committed manifests, publications, floors, benchmarks.yaml): the fakes
    # replace cards only. A test may point `root` at a folder of its own (its registry/benchmarks.yaml).
    root: Path | None = None

    def __post_init__(self):
        from registry.cards import load_registry

        self.home = load_registry().home
        if self.root is None:
            self.root = load_registry().root

    def get(self, kind, card_id):
        return {"task": self.tasks, "encoder": self.encoders, "dataset": self.datasets}[kind][card_id]


TABLE1_TASKS = [  # (label id, label name, dataset id)
    ("atelectasis", "Atelectasis", "mimic"), ("atelectasis", "Atelectasis", "nih"),
    ("edema", "Edema", "mimic"), ("edema", "Edema", "nih"),
    ("effusion", "Effusion", "mimic"), ("effusion", "Effusion", "nih"),
    ("opacity", "Opacity", "mimic"), ("opacity", "Opacity", "nih"),
]
DATASETS = {"mimic": ("mimic-cxr", "MIMIC"), "nih": ("nih-cxr14", "NIH")}


def fake_registry(order=None) -> FakeRegistry:
    """The paper's 8 tasks, a synthetic demo task, two paper encoders and a baseline. `order`: task id -> row order."""
    reg = FakeRegistry()
    for dataset_id, title in (("mimic-cxr", "MIMIC-CXR"), ("nih-cxr14", "NIH ChestX-ray14"), ("demo-cxr", "Demo")):
        reg.datasets[dataset_id] = FakeCard(dataset_id, "dataset", {"id": dataset_id, "title": title,
                                                                     "synthetic": dataset_id == "demo-cxr"})
    for i, (label, name, short) in enumerate(TABLE1_TASKS):
        task_id = f"{label}-{short}"
        dataset_id, dataset_label = DATASETS[short]
        data = {"id": task_id, "title": f"{name} on {dataset_label}", "dataset": dataset_id,
                "label": {"id": label, "name": name},
                "leaderboard": {"disease": name, "dataset_label": dataset_label,
                                "order": (order or {}).get(task_id, 10 + i)}, "benchmarks": ["paper-table1"]}
        reg.tasks[task_id] = FakeCard(task_id, "task", data)
    reg.tasks["effusion-demo"] = FakeCard("effusion-demo", "task", {
        "id": "effusion-demo", "title": "Effusion (synthetic demo)", "dataset": "demo-cxr",
        "label": {"id": "effusion", "name": "Effusion"}, "leaderboard": {"order": 0}, "benchmarks": ["demo"]})
    for encoder_id, title, dim in (("medimageinsight", "MedImageInsight", 1024),
                                   ("cxr-foundation", "CXR-Foundation", 32 * 768), ("pixels", "Raw pixels", 1024)):
        reg.encoders[encoder_id] = FakeCard(encoder_id, "encoder", {"id": encoder_id, "title": title,
                                                                     "embedding": {"dim": dim}, "parameters": 0})
    return reg


def make_reproduced(reg: FakeRegistry, task_id="effusion-demo", encoder_id="pixels", auroc=0.75, f1=0.7) -> dict:
    """A schema-valid reproduced result for a card of `reg`."""
    task = reg.tasks[task_id]
    synthetic = bool(reg.datasets[task.data["dataset"]].data.get("synthetic"))

    def metric(mean):
        return {"mean": mean, "ci_low": round(mean - 0.02, 3), "ci_high": round(mean + 0.02, 3), "half_width": 0.02,
                "ci_method": "t-interval", "per_fold": [mean - 0.01, mean + 0.01]}

    return {
        "schema_version": 1, "provenance": "reproduced",
        "task": task_ref(task), "encoder": encoder_ref(reg.encoders[encoder_id]),
        "manifest": {"sha256": "ab" * 32, "n_images": 40},
        "metrics": {"auroc": metric(auroc), "f1": metric(f1)},
        "folds": [{"fold": i, "n_train": 32, "n_test": 8, "auroc": auroc, "f1": f1, "threshold": 0.5} for i in range(2)],
        "counts": {"positives": 20, "negatives": 20, "excluded": 1,
                   "exclusions": [{"image_id": "img-7", "path": "p/7.dcm", "reason": "truncated"}]},
        "timings_s": {"embed": 1.5, "classify": 0.25},
        "throughput": {"images_per_s": 26.7},
        "environment": {"device": "cpu", "python": "3.11.9", "platform": "Linux", "packages": {"numpy": "2.0"}},
        "code": {"sha256": "cd" * 32, "git_commit": "0123456789abcdef0123456789abcdef01234567", "git_dirty": False},
        "seeds": {"sampling": 0, "classifier": 0},
        "synthetic": synthetic,
        "analyses": {"stability": {"mean_cosine": 0.98}},
        "created_at": "2026-11-28T10:00:00Z",
    }


# ------------------------------------------------------------------ tests


@pytest.fixture
def result():
    return make_reproduced(fake_registry())


def test_valid_result_has_no_problems(result):
    assert validate_result(result) == []


def test_reported_result_needs_citation_publication_and_null_manifest(result):
    reported = copy.deepcopy(result)
    reported["provenance"] = "reported"
    for metric in reported["metrics"].values():
        metric["ci_method"] = "reported"
    problems = validate_result(reported)
    assert any("citation" in p for p in problems) and any("publication" in p for p in problems)
    assert any(p.startswith("/manifest") for p in problems)
    reported["citation"] = "Someone et al. A paper. 2025."
    reported["manifest"] = None
    assert any("publication" in p for p in validate_result(reported))
    reported["publication"] = "someone2025-table2"
    assert validate_result(reported) == []


@pytest.mark.parametrize("mutate, pointer", [
    (lambda r: r["metrics"]["auroc"].update(mean=1.2), "/metrics/auroc/mean"),
    (lambda r: r["metrics"]["auroc"].update(aurco=0.5), "/metrics/auroc"),
    (lambda r: r.update(provenence="reported"), "/"),
    (lambda r: r["task"].update(sha256="not-a-hash"), "/task/sha256"),
    (lambda r: r["metrics"]["f1"].update(ci_method="reported"), "/metrics/f1/ci_method"),
    (lambda r: r["metrics"]["f1"].update(mean=None), "/metrics/f1"),  # null needs a reason
    (lambda r: r["folds"][1].update(auroc=-0.1), "/folds/1/auroc"),
    (lambda r: r["environment"].pop("device"), "/environment"),
    (lambda r: r["code"].pop("git_dirty"), "/code"),
    (lambda r: r["code"].update(sha256="abc"), "/code/sha256"),
    (lambda r: r["code"].update(git_commit="HEAD-dirty"), "/code/git_commit"),
    (lambda r: r.pop("synthetic"), "/"),
])
def test_schema_problems_name_their_pointer(result, mutate, pointer):
    mutate(result)
    problems = validate_result(result)
    assert problems, "mutation should have been rejected"
    assert any(p.startswith(pointer + ":") for p in problems), problems


def test_typo_gets_a_suggestion(result):
    result["metrics"]["auroc"]["half_widht"] = 0.1
    assert any("did you mean 'half_width'" in p for p in validate_result(result))


def test_null_metric_with_reason_is_valid(result):
    result["metrics"]["auroc"].update(mean=None, ci_low=None, ci_high=None, half_width=None,
                                      reason="only one class in every test fold")
    assert validate_result(result) == []


def test_analyses_is_open(result):
    result["analyses"]["anything"] = {"nested": [{"k": 1}], "p": 0.03}
    assert validate_result(result) == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_rejected_anywhere(result, bad):
    result["analyses"]["stability"]["mean_cosine"] = bad
    problems = validate_result(result)
    assert problems and problems[0].startswith("/analyses/stability/mean_cosine:")


def test_overlong_strings_and_non_json_types_rejected(result):
    result["notes"] = "x" * 50_000
    result["seeds"]["odd"] = {1, 2}
    problems = validate_result(result)
    assert any(p.startswith("/notes:") for p in problems)
    assert any(p.startswith("/seeds/odd:") and "set" in p for p in problems)


def test_write_then_read_roundtrip_is_sorted_and_atomic(tmp_path, result):
    path = write_result(result, tmp_path / "sub" / "r.json")
    assert read_result(path) == result
    text = path.read_text()
    assert text.index('"analyses"') < text.index('"counts"')  # sorted keys
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temp file left behind


def test_write_refuses_invalid_and_keeps_old_file(tmp_path, result):
    path = write_result(result, tmp_path / "r.json")
    before = path.read_bytes()
    result["metrics"]["auroc"]["mean"] = float("nan")
    with pytest.raises(ResultError, match="/metrics/auroc/mean"):
        write_result(result, path)
    assert path.read_bytes() == before
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("text, message", [
    ('{"a": NaN}', "NaN"),
    ('{"a": Infinity}', "Infinity"),
    ('{"a": 1, "a": 2}', "duplicate key 'a'"),
    ('[1, 2]', "JSON object"),
    ('{"a": ', "invalid JSON at line 1"),
])
def test_read_refuses_bad_files(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ResultError, match=message):
        read_result(path)


def test_read_refuses_huge_and_missing_files(tmp_path):
    big = tmp_path / "big.json"
    big.write_text(" " * (MAX_FILE_BYTES + 1))
    with pytest.raises(ResultError, match="bytes is more than"):
        read_result(big)
    with pytest.raises(ResultError, match="cannot read"):
        read_result(tmp_path / "missing.json")


def test_environment_info_is_schema_valid(result):
    env = environment_info(device="cpu")
    assert env["device"] == "cpu" and env["python"].count(".") == 2
    assert "numpy" in env["packages"] and "jsonschema" in env["packages"]
    result["environment"] = env
    result["created_at"] = utc_now()
    assert validate_result(result) == []
    json.dumps(env, allow_nan=False)


def test_environment_names_the_device_each_framework_used(result):
    # a TensorFlow encoder that ran on the CPU of a box where torch would use the GPU: the result says "cpu"
    env = environment_info(device="cuda", frameworks={"tensorflow": "cpu"})
    assert env["device"] == "cpu" and env["frameworks"] == {"tensorflow": "cpu"}
    result["environment"] = env
    assert validate_result(result) == []
    assert "frameworks" not in environment_info(device="cpu", frameworks={})  # nothing ran: all embeddings cached
    result["environment"]["frameworks"] = {"Not A Name!": "cpu"}
    assert any("/environment/frameworks" in p for p in validate_result(result))


def test_metrics_summary_drops_into_a_valid_result(result):
    """The contract with runner.metrics: summarize() output fills `metrics`, `folds` and `ci_alternatives` as is."""
    pd = pytest.importorskip("pandas")
    from runner.metrics.summary import summarize

    rows = [{"image_id": f"i{i}", "patient_id": f"p{i // 2}", "label": i % 2, "fold": (i // 2) % 3,
             "prob": (0.3 + 0.4 * (i % 2) + 0.01 * (i % 7)) if i % 5 else 0.5} for i in range(36)]
    summary = summarize(pd.DataFrame(rows), {"bootstrap": {"n": 20, "seed": 0}})
    result["metrics"] = {"auroc": summary["auroc"], "f1": summary["f1"]}
    result["folds"] = summary["folds"]
    result["ci_alternatives"] = summary["ci_alternatives"]
    assert validate_result(result) == []
