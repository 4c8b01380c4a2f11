"""What many tests share, in one place: the project's own registry paths (registry.home), what tests/conftest.py
builds once per session, small registries on disk (a tiny task beside the real cards; the crash-safety task), and
fake cards, registry and results that need no files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from filelock import FileLock

from registry.hashing import canonical_json, sha256_of
from registry.home import find_home
from runner.results.result import encoder_ref, task_ref

REPO = Path(__file__).resolve().parents[1]
HOME = find_home(REPO)  # the project's own registry, whatever $CXR_REGISTRY_ROOT says
RESULTS_DIR = HOME.results_dir  # the filed results (the paper's Table 1, the shortcut floors, the demo)
TABLE_PATH = HOME.publications_dir / "shin2025-table1.yaml"  # the paper's Table 1 as a publication record


def session_folder(tmp_path_factory) -> Path:
    """The folder every process of this test session shares: the session's base temporary folder, which fork workers
    (tests/fork_workers.py) inherit; under pytest-xdist, the folder that holds each worker's own."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared_folder(tmp_path_factory, name: str, build) -> Path:
    """`build(folder)` run once per test session, however many processes run it (fork workers, pytest-xdist workers:
    xdist's documented recipe, a file lock in the session's shared folder). A build that failed half way is removed
    and tried again by the next process that asks."""
    return build_once(session_folder(tmp_path_factory) / name, build)


def build_once(folder: Path, build) -> Path:
    """`build(folder)` unless a finished build is there (`<folder>.done`), under `<folder>.lock`: the first process to
    take the lock builds, the others wait for it and find the result."""
    done = folder.with_name(folder.name + ".done")
    with FileLock(str(folder) + ".lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def build_real_site(folder: Path) -> None:
    """The site of the project's own cards and filed results into folder/site, every filed result verified again."""
    from leaderboard.site.render import build_site
    from registry.cards import clear_cache, load_registry

    clear_cache()
    build_site(folder / "site", RESULTS_DIR, load_registry(REPO))


REAL_SITE = "real-site"  # the shared folder's name


def start_real_site_build(shared_root: Path, log: Path) -> subprocess.Popen:
    """build_once of the real site in a process of its own, started as soon as a worker has collected a test that
    needs it: the build (~50 CPU-s) then overlaps the tests instead of holding up the first two that ask for it. It
    verifies with a cache folder of its own (regeneration records are never reused across sessions)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CXR_CACHE_DIR": str(shared_root / "real-site-cache")}
    code = "import sys; from pathlib import Path; from tests.support import build_once, build_real_site; " \
           "build_once(Path(sys.argv[1]), build_real_site)"
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-c", code, str(shared_root / REAL_SITE)], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


class Deferred:
    """A module (or any object) loaded on first attribute access: for a heavy import that only some tests of a module
    need, since every pytest-xdist worker collects (imports) every test module."""

    def __init__(self, load):
        self._load = load

    def __getattr__(self, name):
        if name.startswith("_"):  # pytest probes every module attribute (e.g. `_pytestfixturefunction`) at collection
            raise AttributeError(name)
        return getattr(self._load(), name)


@dataclass(frozen=True)
class RealSite:
    """The site of the project's own cards and filed results (tests/conftest.py `real_site`). Read-only."""

    index: Path  # OUT/index.html
    summary: dict  # OUT/leaderboard.json, what the pages were rendered from

    @property
    def out(self) -> Path:
        return self.index.parent


# ------------------------------------------------------------------ registries on disk


TINY_TASK = """\
extends: _defaults.yaml
id: effusion-tiny
title: Effusion (tiny test task)
description: "Test-only task on the synthetic demo data."
dataset: demo-cxr
label: {id: effusion, name: Effusion}
sampling: {positives: 70, negatives: 70, verify: header}
"""


# For tests of what a run samples, caches, reuses or writes, not of the classifier: the tiny task's folds train on
# ~110 images, too few for early stopping (min_inner_rows), so each fold grew all 500 trees of _defaults-eval.yaml
# (~0.2 CPU-s a fold, ~1 CPU-s a run); 60 trees, as the crash-safety task's, cost about a third of that.
SMALL_FITS = "params: {n_estimators: 60}"


def tiny_task(classifier: str = SMALL_FITS) -> str:
    """TINY_TASK with `classifier: {<classifier>}` (YAML flow-mapping entries) laid over the defaults."""
    return TINY_TASK + f"classifier: {{{classifier}}}\n"


def make_registry_root(root: Path, extra_tasks: dict[str, str]) -> Path:
    """A registry root with the real dataset cards and built-in encoder cards plus test-only task cards."""
    (root / "registry").mkdir(parents=True)
    shutil.copytree(REPO / "registry" / "datasets", root / "registry" / "datasets")
    (root / "tasks").mkdir()
    for defaults in (REPO / "tasks").glob("_defaults*.yaml"):
        shutil.copy(defaults, root / "tasks" / defaults.name)
    for name, text in extra_tasks.items():
        (root / "tasks" / f"{name}.yaml").write_text(text)
    (root / "encoders").mkdir()
    for enc in ("pixels", "random-cnn", "radiomics"):
        shutil.copy(REPO / "encoders" / f"{enc}.yaml", root / "encoders" / f"{enc}.yaml")
    return root


TASK_ID = "crash-demo"
LARGE_TASK_ID = "crash-demo-large"  # 60/60: enough shards for the slow run's 20 kill points


def task_card(task_id: str, per_class: int) -> str:
    return f"""\
# Test-only task: {per_class}/{per_class} demo images, 3 patient-wise folds, a small single-threaded LightGBM.
extends: _defaults.yaml
id: {task_id}
title: Crash-safety test task
dataset: demo-cxr
label: {{id: effusion, name: Effusion}}
sampling: {{positives: {per_class}, negatives: {per_class}, verify: header}}
split: {{method: stratified-group-kfold, folds: 3, seed: 0}}
classifier: {{type: lightgbm, seed: 0, num_threads: 1, params: {{n_estimators: 60}}}}
"""


# Fields of a result that legitimately differ between runs (wall-clock and where it ran).
VOLATILE = ("timings_s", "throughput", "created_at", "environment")


def make_registry(root: Path) -> Path:
    """A copy of the project's cards plus the test-only task card."""
    for sub in ("tasks", "encoders", "registry/datasets"):
        shutil.copytree(REPO / sub, root / sub)
    (root / "tasks" / f"{TASK_ID}.yaml").write_text(task_card(TASK_ID, 30), encoding="utf-8")
    (root / "tasks" / f"{LARGE_TASK_ID}.yaml").write_text(task_card(LARGE_TASK_ID, 60), encoding="utf-8")
    return root


# ------------------------------------------------------------------ fake cards, registry and results (no files)


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

        return _derived(("behaviour", self.kind), self.full, lambda full: sha256_of(behaviour_part(self.kind, full)))

    @property
    def spec(self):
        from registry import specs

        build = {"task": specs.task_spec, "encoder": specs.encoder_spec, "dataset": specs.dataset_spec}[self.kind]
        return _derived(("spec", self.kind), self.full, build)


_DERIVED: dict[tuple, object] = {}  # (what, kind, canonical JSON of the full card) -> its spec / behaviour hash


def _derived(what: tuple, full: dict, make):
    """`make(full)`, computed once per content of the card in this process: a test edits a fake card's `data` in
    place, so the key is the whole card's text, never its identity (the schema walk of a spec costs ~2 ms, and
    a site build asks for each card's spec thousands of times). Specs are frozen; hashes are strings."""
    try:
        key = (*what, canonical_json(full))
    except (TypeError, ValueError):  # a test's deliberately non-JSON card: nothing to key on
        return make(full)
    if key not in _DERIVED:
        if len(_DERIVED) > 4096:
            _DERIVED.clear()
        _DERIVED[key] = make(full)
    return _DERIVED[key]


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


# ------------------------------------------------------------------ reading a built site back


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
    """(disease, dataset, metric group, encoder heading) -> cell, from the table's own headings. The first column is
    the task (one cell: disease and data set, so that one column stays fixed when the table scrolls sideways)."""
    groups = []
    for cell in table["head"][0]:
        groups += [cell["text"]] * int(cell["attrs"].get("colspan", 1))
    names = [c["text"] for c in table["head"][1]]
    out = {}
    for row in table["body"]:
        disease, dataset = row[0]["attrs"]["data-disease"], row[0]["attrs"]["data-dataset"]
        for i, cell in enumerate(row[1:], start=1):
            out[(disease, dataset, groups[i], names[i])] = cell
    return out


def row_label(row) -> tuple[str, str]:
    return row[0]["attrs"]["data-disease"], row[0]["attrs"]["data-dataset"]


def build_fake_site(tmp_path_factory):
    """The paper's reported results plus one reproduced demo result, built on fake cards -> (registry, results, index)."""
    from leaderboard.filing.file_reported import file_reported
    from leaderboard.filing.submit import (
        submit,  # a real, verified run: filed with its predictions and manifest
    )
    from leaderboard.site.render import build_site
    from tests.runs import shared_run

    reg = fake_registry()
    results = tmp_path_factory.mktemp("results")
    file_reported(reg, TABLE_PATH, results)

    submit(shared_run(tmp_path_factory.mktemp("run"), reg, "effusion-demo", "pixels"), reg, results)
    index = build_site(tmp_path_factory.mktemp("site"), results, reg)
    return reg, results, index


# ------------------------------------------------------------------ images and embeddings made by code


def write_dicom(path, stored, **tags) -> None:
    """A one-frame DICOM of the array `stored` (its dtype sets the bits; `tags` add or override DICOM tags)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = tags.pop("photometric", "MONOCHROME2")
    ds.Rows, ds.Columns = stored.shape
    bits = stored.dtype.itemsize * 8
    stored_bits = tags.pop("bits_stored", bits)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, stored_bits, stored_bits - 1
    ds.PixelRepresentation = int(stored.dtype.kind == "i")
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


def stored_pixels(shape, dtype, lo, hi, seed=0):
    """A smooth image with a little noise, values in [lo, hi], as a DICOM stores it (`dtype`)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    smooth = (np.sin(yy / 7.0) + np.cos(xx / 5.0) + 2) / 4
    return np.clip(lo + (hi - lo) * (0.8 * smooth + 0.2 * rng.random(shape)), lo, hi).astype(dtype)


def classifier_card() -> dict:
    """The classifier block every registry task inherits (tasks/_defaults-eval.yaml), on one thread."""
    from registry.cards import load_registry

    return {**load_registry().tasks["effusion-mimic"].data["classifier"], "num_threads": 1}


def data(n=240, dim=16, seed=0, signal=1.5):
    """Embeddings of n images (two per patient, 5 patient-wise folds), the first 3 dimensions `signal` apart between
    the classes -> (x, table of image_id, patient_id, label, fold)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    label = np.arange(n) % 2
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x[:, :3] += signal * label[:, None]
    patients = np.arange(n) // 2  # two images per patient, same fold
    fold = (patients % 5).astype(int)
    table = pd.DataFrame({"image_id": [f"i{i}" for i in range(n)], "patient_id": [f"p{p}" for p in patients],
                          "label": label, "fold": fold})
    return x, table


# ------------------------------------------------------------------ child processes (Linux /proc)


def child_pids(pid: int) -> list[int]:
    """Live child processes of `pid`, from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # fields after the command name: state, ppid, ...
            children.append(int(stat.parent.name))
    return children


def children_after_sigkill(run: subprocess.Popen, ready: str | Path, select=lambda pid: True) -> tuple[list[int], list[int]]:
    """Wait until the run is ready (a line `ready` on its stdout, or the file `ready` exists), note the run's child
    processes that `select` keeps, SIGKILL the run: (those children, the ones still alive up to 10 s later)."""
    import time

    try:
        if isinstance(ready, Path):
            deadline = time.monotonic() + 120
            while not ready.exists() and run.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ready.exists(), run.stderr.read()[-2000:]
        else:
            assert run.stdout.readline().strip() == ready, run.stderr.read()
        children = [pid for pid in child_pids(run.pid) if select(pid)]
        run.kill()
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
        for stream in (run.stdout, run.stderr):
            if stream is not None:
                stream.close()
    return children, still_alive(children)


def still_alive(pids: list[int], wait_s: float = 10.0) -> list[int]:
    """The processes of `pids` still alive after waiting up to `wait_s` seconds for all of them to end (zombies, whose
    parent has not read their status, count as ended)."""
    import time

    deadline = time.monotonic() + wait_s
    while True:
        alive = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                alive.append(pid)
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def run_in_process(args: list[str], env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """A `runner` command through typer's CliRunner, as a CompletedProcess (the registry read afresh, COLUMNS=200); an
    uncaught exception becomes a 'Traceback' in stderr, as the real entry point would print one."""
    import traceback

    from typer.testing import CliRunner

    from registry.cards import clear_cache
    from runner.cli.main import app

    clear_cache()
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", **(env or {})})
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "Traceback (in-process)\n" + "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, stderr)
