"""runner.analysis.clustering: cosine k-means with silhouette-chosen k, UMAP figure."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runner.analysis import clustering
from runner.analysis.clustering import kmeans_cosine, umap_figure
from runner.metrics.scores import MetricsInputError

# tests/conftest.py: after the other files. test_analyses_integration (the first file after the RUN_EARLY ones)
# compiles umap-learn early in a session; this file's UMAP fit started at the same moment on another worker would
# wait for that compile (the numba cache lock) instead of running other tests.
RUN_LATE = True


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
    # draw=False (a regeneration, whose folder is thrown away): the same block, the figures named but not drawn
    named = umap_figure(x, labels % 2, tmp_path / "n.png", tmp_path / "n.svg", seed=0, draw=False)
    assert named == {**out, "figure": {"png": "n.png", "svg": "n.svg"}}
    assert not (tmp_path / "n.png").exists() and not (tmp_path / "n.svg").exists()


# The probe runs `_import_umap` in a new process, numba not yet loaded, with umap-learn replaced by a stand-in that
# imports numba and notes the cache folder numba read then: the real import would compile umap-learn's functions
# (~14 s with an empty cache), and what is checked is only where numba was pointed before it loaded.
NUMBA_PROBE = """
import importlib.abc, importlib.machinery, importlib.util, json, sys
from pathlib import Path
real = importlib.util.find_spec("umap")

class StandInUmap(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec("umap", self, origin=real.origin) if name == "umap" else None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        import numba
        module.numba_cache_dir_at_import = numba.core.config.CACHE_DIR
        module.umap_ = importlib.util.module_from_spec(importlib.machinery.ModuleSpec("umap.umap_", None))

sys.meta_path.insert(0, StandInUmap())
from runner.analysis.clustering import _import_umap, numba_cache_dir, umap_will_compile
assert "numba" not in sys.modules, "numba loaded before the probe"
umap = _import_umap()
before = umap_will_compile()
import numba
from numba.core.caching import UserProvidedCacheLocator
umap_py = str(Path(real.origin).parent / "umap_.py")
subdir = numba_cache_dir() / UserProvidedCacheLocator.get_suitable_cache_subpath(umap_py)
subdir.mkdir(parents=True, exist_ok=True)
(subdir / "umap_.fuzzy_simplicial_set-1.py311.nbi").write_bytes(b"")  # what a compiled function leaves
print(json.dumps({"cache_dir": numba.core.config.CACHE_DIR, "cache_dir_at_umap_import": umap.numba_cache_dir_at_import,
                  "before": before, "after": umap_will_compile()}))
"""


@pytest.mark.parametrize("user_dir", [False, True])
def test_numba_cache_lives_in_the_project_cache_unless_the_user_says(tmp_path, user_dir):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), CXR_CACHE_DIR=str(tmp_path / "cache"))
    if user_dir:
        env["NUMBA_CACHE_DIR"] = str(tmp_path / "mine")
    proc = subprocess.run([sys.executable, "-c", NUMBA_PROBE], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["cache_dir"] == str(tmp_path / ("mine" if user_dir else "cache/numba"))
    assert out["cache_dir_at_umap_import"] == out["cache_dir"]  # set before umap's import loads numba
    assert out["before"] is True and out["after"] is False  # an empty cache compiles; umap entries there do not


def test_umap_says_before_a_fit_that_compiles(tmp_path, monkeypatch, capsys):
    x, labels = directional_clusters(2, per=30)
    for compiles in (True, False):
        monkeypatch.setattr(clustering, "umap_will_compile", lambda compiles=compiles: compiles)
        umap_figure(x, labels % 2, tmp_path / "u.png", seed=0)
        said = capsys.readouterr().err
        assert ("compiles umap-learn's numba code" in said) is compiles


def test_umap_imports_pynndescent_only_when_a_fit_uses_it(tmp_path, monkeypatch):
    """pynndescent compiles its numba code as it is imported (~13 CPU-s with an empty cache): umap-learn is imported
    without it, and the first use of one of its names in umap.umap_ imports it and puts the real names there. A
    stand-in pynndescent package plays the real one (which would compile), and umap.umap_ gets its names back after."""
    import types

    x, labels = directional_clusters(2, per=30)
    umap_figure(x, labels % 2, tmp_path / "u.png", seed=0)  # a fit on precomputed distances
    assert not [m for m in sys.modules if m.startswith("pynndescent")]
    umap_ = sys.modules["umap.umap_"]
    for _, umap_name in clustering.PYNNDESCENT_NAMES.values():
        monkeypatch.setattr(umap_, umap_name, getattr(umap_, umap_name))  # undone after the test

    class NNDescent:
        pass

    package = {"pynndescent": {"NNDescent": NNDescent}, "pynndescent.distances": {"named_distances": {"euclidean": 1}},
               "pynndescent.sparse": {"sparse_named_distances": {}}}
    for name, names in package.items():
        module = types.ModuleType(name)
        vars(module).update(names)
        monkeypatch.setitem(sys.modules, name, module)
    assert not isinstance(object(), umap_.NNDescent) and isinstance(NNDescent(), umap_.NNDescent)  # a first use
    assert [getattr(umap_, umap_name) is package[module][name]
            for module, (name, umap_name) in clustering.PYNNDESCENT_NAMES.items()] == [True, True, True]
    assert "euclidean" in umap_.pynn_named_distances


def test_nearest_indices_are_umap_learns_fast_knn_indices():
    """umap-learn's `fast_knn_indices` (its Python source, run without numba: a stable argsort per row) gives the
    same neighbours, ties included; a UMAP fit uses ours (no numba compile for it)."""
    umap = clustering._import_umap()
    rng = np.random.default_rng(0)
    distances = np.round(rng.random((40, 40)), 1).astype(np.float32)  # many ties
    np.fill_diagonal(distances, 0.0)
    for k in (1, 5, 39):
        ours = clustering.nearest_indices(distances, k)
        assert ours.dtype == np.int32
        np.testing.assert_array_equal(ours, umap.utils.fast_knn_indices.py_func(distances, k))
    assert umap.umap_.fast_knn_indices is clustering.nearest_indices
