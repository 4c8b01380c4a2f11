"""runner.analysis.clustering: cosine k-means with silhouette-chosen k, UMAP figure."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runner.analysis import clustering
from runner.analysis.clustering import kmeans_cosine, umap_figure
from runner.metrics.scores import MetricsInputError


def directional_clusters(k, per=40, dim=12, seed=0):
    """k clusters that differ in direction (what cosine distance sees), with varying norms."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 5
    x = np.vstack([(c + rng.normal(scale=0.3, size=(per, dim))) * rng.uniform(0.5, 3, size=(per, 1)) for c in centres])
    return x, np.repeat(np.arange(k), per)


@pytest.mark.parametrize("true_k", [3, 5])
def test_silhouette_recovers_true_k(true_k):
    x, labels = directional_clusters(true_k)
    out = kmeans_cosine(x, labels, k_values=range(2, 8), n_init=5, seed=0)
    assert out["chosen_k"] == true_k
    assert set(out["silhouette"]) == {str(k) for k in range(2, 8)}
    assert out["ari"] == pytest.approx(1.0) and out["nmi"] == pytest.approx(1.0)


def test_k_range_is_checked():
    x, labels = directional_clusters(2, per=3)
    with pytest.raises(MetricsInputError, match="k values"):
        kmeans_cosine(x, labels, k_values=[1, 2])


def test_umap_figure_writes_png_and_svg(tmp_path):
    x, labels = directional_clusters(2, per=30)
    out = umap_figure(x, labels % 2, tmp_path / "u.png", tmp_path / "u.svg", seed=0)
    assert (tmp_path / "u.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "u.svg").read_bytes()[:500]
    assert out["umap"]["random_state"] == 0


NUMBA_PROBE = """
import json, sys
from runner.analysis.clustering import _import_umap, numba_cache_dir, umap_will_compile
before = umap_will_compile()
_import_umap()
import numba
from numba.core.caching import UserProvidedCacheLocator
import umap.umap_
subdir = numba_cache_dir() / UserProvidedCacheLocator.get_suitable_cache_subpath(umap.umap_.__file__)
subdir.mkdir(parents=True, exist_ok=True)
(subdir / "umap_.fuzzy_simplicial_set-1.py311.nbi").write_bytes(b"")  # what a compiled function leaves
print(json.dumps({"cache_dir": numba.core.config.CACHE_DIR, "before": before, "after": umap_will_compile()}))
"""


@pytest.mark.parametrize("user_dir", [False, True])
def test_numba_cache_lives_in_the_project_cache_unless_the_user_says(tmp_path, user_dir, compiled_numba_cache):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), CXR_CACHE_DIR=str(tmp_path / "cache"))
    if user_dir:
        env["NUMBA_CACHE_DIR"] = str(tmp_path / "mine")
    # pynndescent's machine code from the session's cache: importing umap loads it instead of compiling it again
    # (~14 s each); no umap entry is copied, so the folder is still one in which a UMAP fit compiles (`before`)
    for folder in compiled_numba_cache.glob("pynndescent_*"):
        shutil.copytree(folder, tmp_path / ("mine" if user_dir else "cache/numba") / folder.name)
    proc = subprocess.run([sys.executable, "-c", NUMBA_PROBE], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["cache_dir"] == str(tmp_path / ("mine" if user_dir else "cache/numba"))
    assert out["before"] is True and out["after"] is False  # an empty cache compiles; umap entries there do not


def test_umap_says_before_a_fit_that_compiles(tmp_path, monkeypatch, capsys):
    x, labels = directional_clusters(2, per=30)
    for compiles in (True, False):
        monkeypatch.setattr(clustering, "umap_will_compile", lambda compiles=compiles: compiles)
        umap_figure(x, labels % 2, tmp_path / "u.png", seed=0)
        said = capsys.readouterr().err
        assert ("compiles umap-learn's numba code" in said) is compiles
