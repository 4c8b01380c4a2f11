"""Start-up: a fully cached `runner eval` loads no torch, TensorFlow, UMAP (numba), Ray or scikit-learn.

Each run is a real `runner eval` subprocess; a wrapper records `sys.modules` when the process exits. The first run
(cache cold) must import torch to embed with random-cnn, which shows the check can fail; the second, all cached,
must not import any of the heavy stacks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import TINY_TASK, make_registry_root

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "tensorflow", "umap", "numba", "ray", "keras", "triton")

HOOK = """
import atexit, json, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "runner"
runpy.run_module("runner.cli.main", run_name="__main__")
"""


def _eval_modules(tmp_path: Path, registry_root: Path, demo: Path, name: str, *extra: str) -> tuple[set[str], str]:
    modules_file = tmp_path / f"{name}.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CXR_REGISTRY_ROOT": str(registry_root),
           "CXR_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", HOOK, str(modules_file), "eval", "--task", "effusion-tiny", "--encoder", "random-cnn",
         "--data-root", str(demo), "--out", str(tmp_path / "runs"), "--analyses", "none", *extra],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(json.loads(modules_file.read_text())), proc.stdout


def test_cached_eval_imports_no_heavy_stack(tmp_path, demo_data_dir):
    # what is imported, not how much is embedded or fitted: 30 + 30 images, 60 trees a fold (48 training images are
    # too few for early stopping: each fold grew all 500 of the defaults')
    small = TINY_TASK.replace("positives: 70, negatives: 70", "positives: 30, negatives: 30")
    assert small != TINY_TASK
    small += "classifier: {params: {n_estimators: 60}}\n"
    root = make_registry_root(tmp_path / "reg", {"effusion-tiny": small})
    cold, _ = _eval_modules(tmp_path, root, demo_data_dir, "cold")
    assert "torch" in cold  # the cold run embeds with random-cnn: the hook sees real imports
    # all embeddings cached, classifier and metrics computed again
    warm, stdout = _eval_modules(tmp_path, root, demo_data_dir, "warm", "--recompute")
    assert "AUROC" in stdout and "reused" not in stdout and "lightgbm" in warm
    heavy = sorted(m for m in warm if m.split(".")[0] in HEAVY)
    assert heavy == [], f"a fully cached eval imported {heavy[:10]}"
    # nor scikit-learn (LightGBM would import it: runner.classify.fit_processes.import_lightgbm) or SciPy's statistics
    # (the metrics are numpy; the t quantile comes from scipy.special): ~1.5 s of the warm start between them
    scientific = sorted(m for m in warm if m.split(".")[0] == "sklearn" or m.startswith("scipy.stats"))
    assert scientific == [], f"a fully cached eval imported {scientific[:10]}"
    # nor does the cold run, which samples the manifest: its k-fold split is runner.classify.inner_split's, so
    # scikit-learn (~1.4 CPU-s to import) stays out of every k-fold `runner eval` (the hook sees torch: it can fail)
    assert sorted(m for m in cold if m.split(".")[0] == "sklearn") == []
    # the same inputs again: the result there stands (runner.results.reuse), so not even the classifier stack is loaded
    reused, stdout = _eval_modules(tmp_path, root, demo_data_dir, "reused")
    assert "AUROC" in stdout and "reused" in stdout
    loaded = sorted(m for m in reused if m.split(".")[0] in (*HEAVY, "lightgbm", "sklearn", "scipy"))
    assert loaded == [], f"a reused result still imported {loaded[:10]}"
    result = json.loads((tmp_path / "runs" / "effusion-tiny" / "random-cnn" / "result.json").read_text())
    assert result["environment"]["device"] == "cpu"


def test_lightgbm_without_sklearn_keeps_its_sklearn_api_reachable():
    """import_lightgbm leaves scikit-learn out; scikit-learn and LightGBM's LGBMClassifier still work afterwards."""
    code = """
import sys, numpy as np
from runner.classify.fit_processes import import_lightgbm, lightgbm_classifier
import_lightgbm()
print("sklearn" in sys.modules)
from runner.analysis.transfer import lightgbm_fit_predict
x = np.random.default_rng(0).normal(size=(200, 4)); y = (x[:, 0] > 0).astype(int)
print((float(lightgbm_fit_predict(x, y, x[:1], {"n_estimators": 5})[0]) > 0.5) == bool(y[0]))
"""
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "True"]


def test_the_command_modules_import_no_numerical_stack(tmp_path):
    """`runner --help` imports every command module: none of them imports numpy (or anything heavier) at module
    level, so `runner validate`, `show` and `list` start without it (~0.07 CPU-s a process for numpy alone)."""
    modules_file = tmp_path / "help.json"
    proc = subprocess.run([sys.executable, "-c", HOOK, str(modules_file), "--help"],
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0 and "demo-data" in proc.stdout, proc.stderr[-2000:]
    loaded = set(json.loads(modules_file.read_text()))
    assert "runner.cli.commands.encoders" in loaded and "typer" in loaded  # the hook saw the real imports
    heavy = sorted(m for m in loaded if m.split(".")[0] in (*HEAVY, "numpy", "pandas", "pyarrow", "scipy", "sklearn",
                                                              "lightgbm", "pydicom", "PIL", "matplotlib", "jinja2"))
    assert heavy == [], f"`runner --help` imported {heavy[:10]}"
