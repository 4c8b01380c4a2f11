"""runner.analysis.kmeans against scikit-learn's KMeans, kmeans_plusplus and silhouette_score (the reference).

The batched k-means draws other random numbers than scikit-learn, so its partitions are compared with scikit-learn's
the way scikit-learn's own seeds compare with each other: the same chosen k, silhouettes equal where the partitions
agree, a mean ARI against scikit-learn's partitions (8 seeds each) within the range of ARIs between scikit-learn's
partitions from different seeds (its seed-to-seed spread, measured here), and inertias within scikit-learn's range.
Lloyd's iterations themselves are compared exactly: from the same initial centres, the same partition.
"""

import itertools
import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score, silhouette_score
from threadpoolctl import threadpool_limits

from runner.analysis.clustering import cosine_distance_matrix, kmeans_cosine, kmeans_fits, unit_rows
from runner.analysis.kmeans import kmeans_plusplus as batched_plusplus
from runner.analysis.kmeans import kmeans_restarts, lloyd, silhouette_scores

K_VALUES = range(2, 7)
N_INIT = 10
SEEDS = range(8)  # of scikit-learn's KMeans and of ours


def gaussian_mixture(n=360, dim=32, k=4, seed=0):
    """k clusters that differ in direction, overlapping a little."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    return centres[np.arange(n) % k] + rng.normal(scale=0.45, size=(n, dim))


def plain_gaussian(n=300, dim=24, seed=1):
    """No clusters at all: partitions vary from seed to seed."""
    return np.random.default_rng(seed).normal(size=(n, dim))


def embedding_like(n=400, dim=64, seed=2):
    """Like benchmarks/bench_classify.py's data: correlated dimensions, a weak label signal over a few directions."""
    rng = np.random.default_rng(seed)
    label = rng.permutation(np.arange(n) % 2)
    x = rng.normal(size=(n, 8)) @ rng.normal(size=(8, dim)) / 3 + rng.normal(size=(n, dim))
    x[:, rng.choice(dim, 6, replace=False)] += 0.8 * label[:, None]
    return x


DATA = {"gaussian mixture": gaussian_mixture, "plain gaussian": plain_gaussian, "embedding-like": embedding_like}


def _sklearn_fits(unit32, seed):
    with threadpool_limits(limits=1):
        return {k: KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(unit32) for k in K_VALUES}


def _chosen(silhouettes):
    return max(silhouettes, key=lambda k: (silhouettes[k], -k))


@pytest.mark.parametrize("name", list(DATA))
def test_partitions_agree_with_sklearn_as_its_own_seeds_do(name):
    unit = unit_rows(DATA[name]())
    unit32 = unit.astype(np.float32)
    distances = cosine_distance_matrix(unit)
    ours_by_seed = {seed: kmeans_fits(unit, K_VALUES, N_INIT, seed=seed, distances=distances) for seed in SEEDS}
    ours = ours_by_seed[0]
    ours_sil = silhouette_scores(ours, distances=distances)
    sk = {seed: _sklearn_fits(unit32, seed) for seed in SEEDS}
    sk_sil = {k: silhouette_score(distances, sk[0][k].labels_, metric="precomputed") for k in K_VALUES}

    assert _chosen(ours_sil) == _chosen(sk_sil), (ours_sil, sk_sil)
    for k in K_VALUES:
        if adjusted_rand_score(sk[0][k].labels_, ours[k]) == pytest.approx(1.0):
            assert abs(ours_sil[k] - sk_sil[k]) <= 0.001
        # scikit-learn's seed-to-seed spread: the ARIs between its partitions from different seeds. One partition
        # of ours is one draw and can fall at the spread's edge as one of scikit-learn's can, so the ARIs of every
        # seed of ours against every seed of scikit-learn's are averaged
        pairs = [adjusted_rand_score(sk[a][k].labels_, sk[b][k].labels_) for a, b in itertools.combinations(SEEDS, 2)]
        against = np.mean([adjusted_rand_score(ours_by_seed[a][k], sk[b][k].labels_) for a in SEEDS for b in SEEDS])
        assert min(pairs) - 1e-9 <= against <= max(pairs) + 1e-9, (
            f"{name}, k={k}: mean ARI against scikit-learn's partitions {against:.4f}, outside their own spread "
            f"[{min(pairs):.4f}, {max(pairs):.4f}]")
        # the best restarts are as good as scikit-learn's: mean inertia over seeds within scikit-learn's range
        inertia = np.mean([_inertia(unit32, ours_by_seed[seed][k]) for seed in SEEDS])
        sk_inertia = [sk[seed][k].inertia_ for seed in SEEDS]
        assert min(sk_inertia) * (1 - 1e-5) <= inertia <= max(sk_inertia) * (1 + 1e-5)


def _inertia(unit32, labels):
    centres = np.stack([unit32[labels == c].mean(axis=0) for c in range(labels.max() + 1)])
    return float(((unit32 - centres[labels]) ** 2).sum())


def test_clear_clusters_are_found_exactly():
    unit = unit_rows(gaussian_mixture(k=4))
    out = kmeans_cosine(unit, np.arange(len(unit)) % 4, K_VALUES, n_init=N_INIT, seed=0)
    assert out["chosen_k"] == 4 and out["ari"] == pytest.approx(1.0)


@pytest.mark.parametrize(("k", "tol"), [(2, 1e-4), (5, 1e-4), (5, 0.05)])  # tol 0.05: stopped by the centre shift
def test_lloyd_matches_sklearn_from_the_same_initial_centres(k, tol):
    unit32 = unit_rows(embedding_like()).astype(np.float32)
    rng = np.random.default_rng(k)
    initial = unit32[np.stack([rng.choice(len(unit32), k, replace=False) for _ in range(6)])]
    labels, inertia, n_iter = lloyd(unit32, initial, tol=tol)
    for r in range(len(initial)):
        with threadpool_limits(limits=1):
            ref = KMeans(n_clusters=k, init=initial[r], n_init=1, algorithm="lloyd", tol=tol).fit(unit32)
        assert np.array_equal(labels[r], ref.labels_), f"restart {r}"
        assert inertia[r] == pytest.approx(ref.inertia_, rel=1e-5)
        assert n_iter[r] == ref.n_iter_


def test_an_empty_cluster_is_relocated_as_sklearn_does():
    unit32 = unit_rows(gaussian_mixture(k=3)).astype(np.float32)
    nobody = -unit32.mean(axis=0)  # the direction opposite to every row: no row is nearest to it
    nobody /= np.linalg.norm(nobody)
    initial = np.stack([unit32[0], unit32[1], nobody])[None]
    labels, _, _ = lloyd(unit32, initial)
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = KMeans(n_clusters=3, init=initial[0], n_init=1, algorithm="lloyd").fit(unit32)
    assert len(np.unique(labels[0])) == 3
    assert np.array_equal(labels[0], ref.labels_)


def test_seeding_is_as_good_as_sklearns_kmeans_plusplus():
    """Mean k-means++ potential (sum of squared distances to the nearest seed) over many seeds, against sklearn's."""
    unit = unit_rows(embedding_like())
    unit32 = unit.astype(np.float32)
    distances = cosine_distance_matrix(unit)

    def potential(centres):
        return np.min(((unit32[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1).sum()

    k, n = 6, 200
    ours = batched_plusplus(unit32, k, n, np.random.default_rng(0), distances)
    ours_without_matrix = batched_plusplus(unit32, k, n, np.random.default_rng(0))
    assert np.array_equal(ours, ours_without_matrix)  # the matrix only saves the products
    assert all(len(set(row)) == k for row in ours.tolist())
    ours_pot = np.array([potential(unit32[row]) for row in ours])
    sk_pot = np.array([potential(kmeans_plusplus(unit32, k, random_state=s)[0]) for s in range(n)])
    standard_error = np.sqrt(ours_pot.var() / n + sk_pot.var() / n)
    assert abs(ours_pot.mean() - sk_pot.mean()) <= 3 * standard_error
    # and far better than picking seeds uniformly at random, so the comparison can tell
    uniform = np.array([potential(unit32[np.random.default_rng(s).choice(len(unit32), k, replace=False)])
                        for s in range(n)])
    assert uniform.mean() - sk_pot.mean() > 6 * standard_error


def test_silhouettes_equal_sklearns():
    unit = unit_rows(plain_gaussian(n=120))
    distances = cosine_distance_matrix(unit)
    rng = np.random.default_rng(0)
    labelings = {"k3": rng.integers(0, 3, 120), "k7": rng.integers(0, 7, 120),
                 "singleton": np.r_[0, np.ones(119, int)], "gaps": rng.choice([2, 5, 9], 120),
                 "one cluster": np.zeros(120, int)}
    from_matrix = silhouette_scores(labelings, distances=distances)
    from_rows = silhouette_scores(labelings, unit=unit)  # the path above EXACT_MAX_ROWS: blocks made from the rows
    assert from_matrix["one cluster"] is None and from_rows["one cluster"] is None
    for key, labels in labelings.items():
        if key == "one cluster":
            continue
        ref = silhouette_score(distances, labels, metric="precomputed")
        assert abs(from_matrix[key] - ref) <= 1e-12
        assert abs(from_rows[key] - ref) <= 1e-9  # float32 products: the rounding of cosine_distance_matrix's own


def test_result_does_not_depend_on_blas_threads():
    unit = unit_rows(embedding_like())
    with threadpool_limits(limits=1):
        one = kmeans_restarts(unit, 4, N_INIT, seed=3)
    with threadpool_limits(limits=2):
        two = kmeans_restarts(unit, 4, N_INIT, seed=3)
    assert np.array_equal(one.labels, two.labels) and one.inertia == two.inertia
    other = kmeans_restarts(unit, 4, N_INIT, seed=4)
    assert not np.array_equal(one.labels, other.labels) or one.inertia != other.inertia  # the seed is used


def test_duplicate_rows_give_fewer_clusters_without_error():
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(3, 8)), 10, axis=0)  # three distinct rows
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        out = kmeans_cosine(x, None, range(2, 6), n_init=5, seed=0)
    assert out["chosen_k"] == 3
    assert all(s is None or np.isfinite(s) for s in out["silhouette"].values())
