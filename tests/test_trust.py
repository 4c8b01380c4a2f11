"""Trust: custom code runs only when asked, nothing unpickles untrusted bytes, the site escapes every string,
and no path from a card, a metadata table or a manifest reaches outside the data root."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.support import TASK_ID, make_registry

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("runner", "registry", "leaderboard")

EVIL_MODULE = """\
import os, pathlib
pathlib.Path(os.environ["EVIL_MARKER"]).write_text("custom code ran")


def factory(card, device, weights):
    return lambda x: x.reshape(x.shape[0], -1)[:, : card["embedding"]["dim"]]
"""


@pytest.fixture(scope="module")
def custom_setup(tmp_path_factory):
    """A registry copy with an `adapter: custom` encoder whose module leaves a marker file when imported."""
    root = tmp_path_factory.mktemp("trust")
    registry = make_registry(root / "registry")
    card = (REPO / "encoders" / "random-cnn.yaml").read_text().replace("id: random-cnn", "id: evil-custom")
    card = card.replace("adapter: random-cnn", 'adapter: custom\nentrypoint: "evil_trust_mod:factory"')
    (registry / "encoders" / "evil-custom.yaml").write_text(card)
    (root / "mods").mkdir()
    (root / "mods" / "evil_trust_mod.py").write_text(EVIL_MODULE)
    return {"registry": registry, "mods": root / "mods", "marker": root / "marker"}


def test_custom_code_needs_trust_custom_code(custom_setup, monkeypatch):
    from registry.cards import load_registry
    from runner.encoders import EncoderError, load_encoder

    monkeypatch.setenv("EVIL_MARKER", str(custom_setup["marker"]))
    monkeypatch.syspath_prepend(str(custom_setup["mods"]))
    card = load_registry(custom_setup["registry"]).encoders["evil-custom"].data
    with pytest.raises(EncoderError, match="--trust-custom-code"):
        load_encoder(card, device="cpu")
    assert not custom_setup["marker"].exists() and "evil_trust_mod" not in sys.modules
    encoder = load_encoder(card, device="cpu", trust_custom_code=True)  # the user said yes: now it runs
    assert custom_setup["marker"].read_text() == "custom code ran" and encoder.dim == card["embedding"]["dim"]
    custom_setup["marker"].unlink()


@pytest.mark.parametrize("command", [["encoders", "check", "evil-custom"],
                                     ["eval", "--task", TASK_ID, "--encoder", "evil-custom", "--analyses", "none"]])
def test_cli_refuses_custom_code_without_the_flag(command, custom_setup, demo_data_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{custom_setup['mods']}", "EVIL_MARKER":
           str(custom_setup["marker"]), "CXR_REGISTRY_ROOT": str(custom_setup["registry"]),
           "CXR_CACHE_DIR": str(tmp_path / "cache")}
    if command[0] == "eval":
        command = command + ["--data-root", str(demo_data_dir), "--out", str(tmp_path / "out"), "--workers", "0"]
    proc = subprocess.run([sys.executable, "-c", "from runner.cli.main import app; app()", *command], env=env,
                          check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode in (1, 2), (proc.returncode, proc.stdout, proc.stderr)
    assert "--trust-custom-code" in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
    assert not custom_setup["marker"].exists()


# ---------------------------------------------------------------------------------------------- no pickle

UNSAFE = [
    (re.compile(r"\bpickle\.loads?\("), "pickle.load"),
    (re.compile(r"\b(cloudpickle|dill|joblib)\.load\("), "pickle-based load"),
    (re.compile(r"allow_pickle\s*=\s*True"), "np.load(allow_pickle=True)"),
    (re.compile(r"\byaml\.(load|unsafe_load|full_load)\("), "unsafe YAML load"),
    (re.compile(r"(?<![.\w])(?<!def )(eval|exec)\("), "eval/exec"),  # builtins; model.eval() is fine
]


def python_sources():
    for folder in CODE_DIRS:
        yield from sorted((REPO / folder).rglob("*.py"))


# The one exception: pickle over the pipes between the runner and the child process it starts for TensorFlow (as
# multiprocessing does). Both ends are this code base; no file or network byte goes through it.
PIPE_ONLY = {"runner/encoders/isolation.py": re.compile(r"pickle\.(load\(sys\.stdin\.buffer\)|loads\(data\))")}


def test_no_pickle_or_unsafe_loaders_in_the_code_base():
    found = []
    for path in python_sources():
        rel = path.relative_to(REPO).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if rel in PIPE_ONLY and PIPE_ONLY[rel].search(code):
                continue
            found += [f"{rel}:{number}: {what}" for pattern, what in UNSAFE if pattern.search(code)]
    assert not found, found


def test_every_torch_load_sets_weights_only_true():
    """torch.load unpickles unless weights_only=True; every call (across line breaks) must say so."""
    offenders = []
    for path in python_sources():
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\btorch\.load\(", text):
            call = text[match.end(): match.end() + 400]
            depth, end = 1, 0
            for end, char in enumerate(call):
                depth += {"(": 1, ")": -1}.get(char, 0)
                if depth == 0:
                    break
            if not re.search(r"weights_only\s*=\s*True", call[:end]):
                offenders.append(f"{path.relative_to(REPO)}:{text[: match.start()].count(chr(10)) + 1}")
    assert not offenders, offenders


def test_the_pickle_check_can_fail(tmp_path):
    """The patterns above do match the calls they are meant to catch."""
    bad = ["obj = pickle.load(f)", "np.load(p, allow_pickle=True)", "yaml.load(text)", "joblib.load(p)", "eval(s)"]
    assert not any(p.search("model.eval()") for p, _ in UNSAFE)
    assert all(any(p.search(line) for p, _ in UNSAFE) for line in bad)
    assert not any(p.search("yaml.safe_load(text)") for p, _ in UNSAFE)


# ---------------------------------------------------------------------------------------------- the site

HOSTILE = '"><script>alert(document.domain)</script><img src=x onerror=alert(1)>'


def test_hostile_task_and_dataset_titles_are_inert_on_the_site(tmp_path):
    from leaderboard.site.render import build_site
    from runner.results.result import write_result
    from tests.support import fake_registry, make_reproduced

    reg = fake_registry()
    reg.tasks["effusion-demo"].data.update(title=HOSTILE, description=HOSTILE)
    reg.tasks["effusion-demo"].data["label"]["name"] = HOSTILE
    reg.datasets["demo-cxr"].data["title"] = HOSTILE
    reg.encoders["pixels"].data["title"] = HOSTILE
    result = make_reproduced(reg)
    result["notes"] = HOSTILE
    write_result(result, tmp_path / "results" / "effusion-demo__pixels__reproduced.json")
    site = build_site(tmp_path / "site", tmp_path / "results", reg).parent
    pages = list(site.rglob("*.html"))
    assert pages
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<script>alert" not in text and "<img src=x" not in text, page
    assert any("&lt;script&gt;alert(document.domain)" in p.read_text(encoding="utf-8") for p in pages)


# ---------------------------------------------------------------------------------------------- paths stay inside


def test_dataset_card_paths_cannot_leave_the_data_root(tmp_path):
    from registry.cards import validate_files

    root = make_registry(tmp_path / "registry")
    for name, value in (("dotdot", "../outside.csv"), ("absolute", "/etc/passwd"), ("nested", "a/../../b.csv")):
        card = (REPO / "registry/datasets/demo-cxr.yaml").read_text().replace("id: demo-cxr", f"id: {name}")
        card = card.replace("[metadata.csv]", f"['{value}']")
        path = root / "registry/datasets" / f"{name}.yaml"
        path.write_text(card)
        problems = validate_files([path], root)
        assert any("leaves the data root" in str(p) for p in problems), (name, [str(p) for p in problems])


def test_nih_image_ids_cannot_leave_the_data_root(tmp_path):
    """NIH paths are built from the 'Image Index' column: a hostile id is refused, not joined onto the root."""
    import yaml

    from runner.data import read_index
    from runner.data.tables import DataError

    card = yaml.safe_load((REPO / "registry/datasets/nih-cxr14.yaml").read_text())
    card.pop("fallback_package", None)
    rows = [{"Image Index": f"{i:08d}_000.png", "Finding Labels": "Effusion" if i % 2 else "No Finding",
             "Patient ID": str(i), "View Position": "PA", "Patient Gender": "M", "Patient Age": "50"} for i in range(4)]
    rows[1]["Image Index"] = "../../../etc/passwd"
    pd.DataFrame(rows).to_csv(tmp_path / "Data_Entry_2017.csv", index=False)
    with pytest.raises(DataError, match="leave the data root"):
        read_index(card, tmp_path, ["effusion"])


def test_tampered_manifest_paths_are_refused(tmp_path):
    """A manifest whose rows point outside the data root is refused even when its hash was recomputed to match."""
    from runner.sample.manifest import ManifestError, canonical_frame, content_sha256, read_manifest

    frame = pd.DataFrame({"image_id": ["a", "b"], "patient_id": ["p1", "p2"], "study_id": ["s1", "s2"],
                          "path": ["files/a.dcm", "../../../home/user/.ssh/id_rsa"], "view": ["PA", "PA"],
                          "label": [1, 0], "fold": [0, 1]})
    canon = canonical_frame(frame)
    canon.to_parquet(tmp_path / "manifest.parquet", index=False)
    (tmp_path / "manifest.json").write_text(f'{{"sha256": "{content_sha256(canon, {})}"}}')
    with pytest.raises(ManifestError, match="leave the data root"):
        read_manifest(tmp_path)
