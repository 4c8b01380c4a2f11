"""runner.analysis.clustering: cosine k-means with silhouette-chosen k, UMAP figure."""

import numpy as np
import pytest

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
