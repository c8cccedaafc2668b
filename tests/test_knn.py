"""gnnu.graph.knn: every backend equals a brute-force numpy reference, ties included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnnu.graph.knn import knn


def reference_knn(pos: np.ndarray, k: int, batch, include_self: bool) -> np.ndarray:
    """Brute force: per centre (ascending), neighbours by (squared distance, index)."""
    n = len(pos)
    batch = np.zeros(n, np.int64) if batch is None else np.asarray(batch)
    src, dst = [], []
    for i in range(n):
        cand = np.flatnonzero(batch == batch[i])
        if not include_self:
            cand = cand[cand != i]
        d2 = (pos[cand, 0] - pos[i, 0]) ** 2
        for c in range(1, pos.shape[1]):
            d2 = d2 + (pos[cand, c] - pos[i, c]) ** 2
        chosen = cand[np.lexsort((cand, d2))[:k]]
        src.extend(chosen)
        dst.extend([i] * len(chosen))
    return np.array([src, dst], dtype=np.int64).reshape(2, -1)


def _points(sizes, dim, seed):
    rng = np.random.default_rng(seed)
    batch = np.repeat(np.arange(len(sizes)), sizes)
    return rng.normal(size=(len(batch), dim)), batch


def _run(backend, pos, k, batch, include_self, **kw):
    if backend in ("numba", "scipy"):
        return knn(pos, k, batch, include_self, backend=backend)
    out = knn(torch.from_numpy(pos), k, None if batch is None else torch.from_numpy(batch),
              include_self, backend="torch", **kw)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.long
    return out.numpy()


BACKENDS = [("numba", {}), ("scipy", {}), ("torch", {}), ("torch", {"block_size": 700}),
            ("torch", {"block_size": 50})]
IDS = ["numba", "scipy", "torch", "torch-padded-groups", "torch-row-blocks"]


@pytest.mark.parametrize("backend,kw", BACKENDS, ids=IDS)
@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("include_self", [False, True])
def test_batches_of_different_sizes_match_reference(backend, kw, dim, include_self):
    # graphs smaller than k (1, 2, 5 points) must connect to all their points
    pos, batch = _points([1, 2, 5, 17, 40, 3, 120], dim, seed=dim)
    want = reference_knn(pos, 16, batch, include_self)
    got = _run(backend, pos, 16, batch, include_self, **kw)
    np.testing.assert_array_equal(got, want)
    assert np.all(batch[got[0]] == batch[got[1]]), "edge across graphs"


@pytest.mark.parametrize("backend,kw", BACKENDS, ids=IDS)
@pytest.mark.parametrize("n,k", [(1, 4), (2, 1), (300, 16), (64, 63)])
def test_single_graph_sizes(backend, kw, n, k):
    pos, _ = _points([n], 2, seed=n)
    for include_self in (False, True):
        np.testing.assert_array_equal(_run(backend, pos, k, None, include_self, **kw),
                                      reference_knn(pos, k, None, include_self))


@pytest.mark.parametrize("backend,kw", BACKENDS, ids=IDS)
def test_ties_go_to_the_lower_index(backend, kw):
    # integer grid: many equal distances, also at the k-th place
    grid = np.stack(np.meshgrid(np.arange(9.0), np.arange(7.0)), -1).reshape(-1, 2)
    pos = np.concatenate([grid, grid[:20], np.zeros((25, 2))])       # plus duplicates
    batch = np.repeat([0, 1, 2], [len(grid), 20, 25])
    for k in (1, 3, 4, 5, 8):
        for include_self in (False, True):
            np.testing.assert_array_equal(_run(backend, pos, k, batch, include_self, **kw),
                                          reference_knn(pos, k, batch, include_self))


def _view_like(seed: int, n: int) -> np.ndarray:
    """Hits of one detector view in (wire, drift) cm: straight tracks one hit per wire (0.479 cm
    pitch), a shower blob, coincident hits, hits on one wire, noise far from everything."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(3):
        w = np.arange(n // 6) * 0.479
        parts.append(np.stack([w, 50 + np.tan(rng.uniform(-1.5, 1.5)) * w
                               + rng.normal(0, 0.05, len(w))], 1))
    parts.append(rng.normal([30, 60], [4, 8], (n // 4, 2)))
    parts.append(np.repeat(parts[-1][:5], 4, axis=0))                    # coincident hits
    parts.append(np.stack([np.full(30, 12 * 0.479), np.arange(30) * 0.08], 1))  # one wire
    parts.append(rng.uniform([-500, -500], [1500, 3000], (12, 2)))       # isolated noise
    return np.round(np.concatenate(parts), 3)            # rounded: many exact distance ties


@pytest.mark.parametrize("include_self", [False, True])
def test_numba_equals_scipy_on_detector_like_views(include_self):
    """The default backend of gnnu-build (numba) picks exactly scipy's neighbours on view-shaped
    hit clouds, including the ~5 000-hit views of large showers, and the brute force on a smaller one."""
    views = [_view_like(s, n) for s, n in ((1, 300), (2, 1000), (3, 5000), (4, 60))]
    pos = np.concatenate(views)
    batch = np.repeat(np.arange(len(views)), [len(v) for v in views])
    got = knn(pos, 16, batch, include_self, backend="numba")
    np.testing.assert_array_equal(got, knn(pos, 16, batch, include_self, backend="scipy"))
    small = views[0]
    np.testing.assert_array_equal(knn(small, 16, None, include_self, backend="numba"),
                                  reference_knn(small, 16, None, include_self))


def test_numba_in_higher_dimensions_and_degenerate_clouds():
    """Exact in any dimension (feature space), and for points all on one line or all equal."""
    pos, batch = _points([40, 200], 6, seed=5)
    np.testing.assert_array_equal(knn(pos, 8, batch, backend="numba"),
                                  reference_knn(pos, 8, batch, False))
    line = np.stack([np.arange(100.0) % 7, np.zeros(100)], 1)
    same = np.zeros((40, 3))
    for p in (line, same):
        np.testing.assert_array_equal(knn(p, 5, None, backend="numba"), reference_knn(p, 5, None, False))


def test_auto_picks_the_compiled_search_for_every_dimension_on_the_cpu(monkeypatch):
    import gnnu.graph.knn as mod

    calls = []
    monkeypatch.setattr(mod, "has_torch_cluster", lambda: False)
    for name in ("_knn_numba", "_knn_scipy"):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _n=name, _r=real: calls.append(_n) or _r(*a))
    knn(np.zeros((10, 3)), 2)
    knn(torch.zeros(10, 2), 2)
    knn(np.zeros((10, 8)), 2)
    knn(torch.zeros(10, 64), 2)
    assert calls == ["_knn_numba"] * 4


@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("dim", [4, 7, 16, 64])
def test_brute_force_equals_the_reference_in_learnt_and_feature_spaces(dim, include_self):
    """4–8 coordinates (GravNet's learnt space): the exact bucketed brute force, identical to the
    float64 reference in order too; more (dynamic EdgeConv's features): the matrix-product
    distances re-ranked exactly, identical here (random points have no near-ties). Graphs
    smaller than k + the candidate margin, and of one point, included."""
    pos, batch = _points([300, 700, 20, 9, 1], dim, seed=dim)
    p32 = pos.astype(np.float32)
    for p, ref in ((pos, pos), (torch.from_numpy(p32), p32.astype(np.float64))):
        got = knn(p, 16, batch, include_self=include_self, backend="numba")
        np.testing.assert_array_equal(got, reference_knn(ref, 16, batch, include_self))


@pytest.mark.parametrize("block_size", [None, 5000], ids=["padded-blocks", "row-blocks"])
@pytest.mark.parametrize("dim", [16, 64])
def test_torch_backend_in_feature_spaces_equals_the_reference(dim, block_size):
    """Beyond 8 coordinates the torch backend (dynamic EdgeConv on a GPU) takes matrix-product
    distances and re-ranks the best candidates exactly: identical to the float64 reference here
    (random points have no near-ties), graphs smaller than k + the margin and of one point
    included, in padded blocks and in row blocks of one large graph."""
    pos, batch = _points([300, 120, 20, 9, 1], dim, seed=dim)
    for include_self in (False, True):
        np.testing.assert_array_equal(_run("torch", pos, 16, batch, include_self, block_size=block_size),
                                      reference_knn(pos, 16, batch, include_self))


@pytest.mark.slow
def test_torch_backend_compiled_distances_equal_the_reference(monkeypatch):
    """The GPU's one-pass compiled distances (TORCH_FUSED; torch.compile, here with the CPU's C++
    backend: about a minute) give the reference's neighbours, ties on an integer grid included,
    in 2 to 4 dimensions, with and without self."""
    import gnnu.graph.knn as mod

    monkeypatch.setitem(mod.TORCH_FUSED, "cpu", True)
    grid = np.stack(np.meshgrid(np.arange(9.0), np.arange(7.0)), -1).reshape(-1, 2)
    pos = np.concatenate([grid, grid[:20], np.zeros((25, 2))])
    batch = np.repeat([0, 1, 2], [len(grid), 20, 25])
    cases = [(pos, batch, k) for k in (1, 4, 8)] + [(*_points([1, 2, 5, 17, 40, 3, 120], d, seed=d), 16)
                                                     for d in (3, 4)]
    for p, b, k in cases:
        for include_self in (False, True):
            np.testing.assert_array_equal(_run("torch", p, k, b, include_self),
                                          reference_knn(p, k, b, include_self))
    assert mod.TORCH_FUSED["cpu"], "the compiled pass fell back to the eager one"


def test_exact_brute_force_keeps_the_lower_index_at_ties():
    """A 4-D integer lattice: distances tie everywhere, the k-th place included; the bucketed
    brute force takes the lower index, as the reference and the k-d tree do."""
    grid = np.stack(np.meshgrid(*[np.arange(4.0)] * 4, indexing="ij"), -1).reshape(-1, 4)
    got = knn(grid, 10, None, backend="numba")
    np.testing.assert_array_equal(got, reference_knn(grid, 10, None, False))


def test_exact_brute_force_with_more_coincident_points_than_a_bucket():
    """300 identical 4-D points (bf16-rounded learnt coordinates collapse like this) among 200
    others: one bucket holds them all; the result still equals the reference."""
    rng = np.random.default_rng(9)
    pos = np.concatenate([np.zeros((300, 4)), rng.normal(size=(200, 4))])
    for include_self in (False, True):
        np.testing.assert_array_equal(knn(pos, 16, None, include_self, backend="numba"),
                                      reference_knn(pos, 16, None, include_self))


def test_matmul_brute_force_is_centred_against_a_shared_offset():
    """float32 features sharing a large offset (a cluster ~8 from the origin, spread 1e-4): the
    product's rounding (~1e-7 × |p|² ≈ 6e-6) would swamp the squared distances (~1e-7) and pick
    neighbours at random without the centring; with it, the chosen neighbours' exact distances
    equal the float64 reference's to 1e-5 (only near-ties may swap) and each list is ordered."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(1, 64))
    pos = (base + 1e-4 * rng.normal(size=(400, 64))).astype(np.float32)   # a tight cluster
    got = knn(torch.from_numpy(pos), 8, None, backend="numba")
    ref = reference_knn(pos.astype(np.float64), 8, None, False)
    p = pos.astype(np.float64)
    d = lambda e: np.linalg.norm(p[e[0]] - p[e[1]], axis=1).reshape(-1, 8)
    dg, dr = d(got), d(ref)
    assert np.all(np.diff(dg, axis=1) >= 0)
    np.testing.assert_allclose(dg, dr, rtol=1e-5)


def test_types_and_devices_follow_the_input():
    pos, batch = _points([30, 10], 2, seed=3)
    out = knn(pos.astype(np.float32), 4, batch)
    assert isinstance(out, np.ndarray) and out.dtype == np.int64 and out.shape == (2, 40 * 4)
    t = knn(torch.from_numpy(pos).float(), 4, torch.from_numpy(batch), backend="torch")
    assert t.device.type == "cpu" and t.shape == (2, 160)
    # the same neighbour pairs whichever backend (float32 here, so compare as sets)
    assert sorted(map(tuple, t.numpy().T)) == sorted(map(tuple, out.T))


def test_bad_arguments():
    pos = np.zeros((4, 2))
    with pytest.raises(ValueError, match="sorted"):
        knn(pos, 2, np.array([1, 0, 0, 1]))
    with pytest.raises(ValueError, match="k must"):
        knn(pos, 0)
    with pytest.raises(ValueError, match="backend"):
        knn(pos, 2, backend="faiss")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_backend_on_cuda_stays_on_device():
    pos, batch = _points([3, 50, 700, 10], 3, seed=7)
    out = knn(torch.from_numpy(pos).cuda(), 16, torch.from_numpy(batch).cuda())
    assert out.is_cuda
    np.testing.assert_array_equal(out.cpu().numpy(), reference_knn(pos, 16, batch, False))


def test_torch_cluster_matches_reference():
    pytest.importorskip("torch_cluster")
    pos, batch = _points([1, 5, 40, 200], 3, seed=11)
    for include_self in (False, True):
        got = knn(torch.from_numpy(pos), 16, torch.from_numpy(batch), include_self,
                  backend="torch_cluster").numpy()
        want = reference_knn(pos, 16, batch, include_self)
        # torch-cluster computes in its own precision: compare neighbour sets per centre
        assert sorted(map(tuple, got.T)) == sorted(map(tuple, want.T))


def _clouds(rng):
    """2-D point sets that stress a cell grid: tie-heavy lattices, lines along either axis, all
    points equal, a dense core with a far sparse halo, a large coordinate offset, rounded values."""
    n = 150
    yield rng.normal(size=(n, 2))
    yield rng.integers(0, 12, (n, 2)).astype(float)                        # lattice: ties
    yield rng.integers(0, 500, (n, 2)) * np.array([0.479, 0.08])            # wire/tick pixels
    yield np.stack([np.arange(n) * 0.5, np.zeros(n)], 1)                    # horizontal line
    yield np.stack([np.full(n, 3.0), rng.normal(size=n)], 1)                # vertical line
    yield np.full((n, 2), 5.0)                                              # all coincident
    core = rng.normal(size=(n, 2)) * 1e-4
    core[:15] += rng.uniform(-1e4, 1e4, (15, 2))                            # core + far halo
    yield core
    yield rng.normal(size=(n, 2)) * 1e-3 + 1e6                              # offset far from 0
    yield np.round(rng.normal(size=(n, 2)) * 10, 1)


@pytest.mark.parametrize("include_self", [False, True])
def test_cell_grid_equals_the_kd_tree_on_hard_clouds(include_self):
    """The 2-D numba backend (cell grid, gnnu.graph.cellgrid) chooses exactly the k-d tree's
    neighbours, in the same order, on clouds that stress a grid, for several k."""
    from gnnu.graph.cellgrid import knn_compiled
    from gnnu.graph.knn import _centres, graph_pointers

    rng = np.random.default_rng(7)
    clouds = list(_clouds(rng))
    sizes = [len(c) for c in clouds] + [1, 2, 17]
    pos = np.concatenate(clouds + [rng.normal(size=(s, 2)) for s in (1, 2, 17)])
    ptr = graph_pointers(np.repeat(np.arange(len(sizes)), sizes), len(pos))
    for k in (1, 4, 16, 40):
        _, dst = _centres(ptr, k, include_self)
        tree, grid = np.empty((2, len(dst)), np.int64), np.empty((2, len(dst)), np.int64)
        searched = sum(s > (0 if include_self else 1) for s in sizes)     # graphs with neighbours
        assert knn_compiled(pos, ptr, k, include_self, tree, False) == searched
        crowded = knn_compiled(pos, ptr, k, include_self, grid, True)
        np.testing.assert_array_equal(tree[1], dst)
        np.testing.assert_array_equal(grid, tree, err_msg=f"k={k}")
        # the all-coincident cloud and the 1e-4 core in a 1e4 halo are too crowded for any grid
        # of ≤ CELLS_PER_POINT cells per point: those two go to the k-d tree, the rest do not
        assert crowded == 2
    np.testing.assert_array_equal(knn(clouds[1], 5, None, include_self, backend="numba"),
                                  reference_knn(clouds[1], 5, None, include_self))


def test_numba_backend_refuses_non_finite_positions():
    pos = np.zeros((5, 2))
    pos[3, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        knn(pos, 2, backend="numba")


def test_distances_that_round_to_one_value_order_by_index():
    """Points on the unit circle around the origin: their squared distances to it differ in the
    last bits, yet many round to the same distance. Order is by (distance, index), so the grid's
    ranking by d² must defer to the distance there (its exact fallback); grid = k-d tree = the
    numpy (sqrt(d²), index) order. (scipy computes these distances differently in the last bit,
    see the knn module's note on near-ties, so it is not the reference here.)"""
    from gnnu.graph.cellgrid import knn_compiled
    from gnnu.graph.knn import _centres, graph_pointers

    rng = np.random.default_rng(11)
    a = rng.uniform(0, 2 * np.pi, 300)
    pos = np.concatenate([[[0.0, 0.0]], np.stack([np.cos(a), np.sin(a)], 1)])
    d2 = pos[:, 0] * pos[:, 0] + pos[:, 1] * pos[:, 1]          # the kernels' arithmetic
    d = np.sqrt(d2)
    ptr = graph_pointers(None, len(pos))
    for k in (5, 40, 120):
        _, dst = _centres(ptr, k, False)
        tree, grid = np.empty((2, len(dst)), np.int64), np.empty((2, len(dst)), np.int64)
        knn_compiled(pos, ptr, k, False, tree, False)
        knn_compiled(pos, ptr, k, False, grid, True)
        np.testing.assert_array_equal(grid, tree)
        others = np.arange(1, len(pos))
        want = others[np.lexsort((others, d[others]))[:k]]      # (distance, index)
        np.testing.assert_array_equal(grid[0, :k], want)
        by_d2 = others[np.lexsort((others, d2[others]))[:k]]
        assert not np.array_equal(by_d2, want), "case not made: d² order equals distance order"


def _features(n, dim, rank, seed, offset=0.0):
    """Post-ReLU-like features: a low-rank signal plus noise, shifted by a shared ``offset``."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, dim))
    return np.maximum(signal + 0.3 * rng.normal(size=(n, dim)), 0.0) + offset


@pytest.mark.parametrize("dim,rank", [(16, 3), (64, 6), (128, 10)])
@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_projected_search_equals_the_exact_search(dim, rank, include_self, dtype):
    """knn_projected (dynamic EdgeConv's features in graphs of ≥ PROJECTED_MIN_POINTS points)
    prunes on principal-axis projections, a lower bound of the distance, and computes the
    survivors' distances in float64: the same neighbours in the same order as the exact bucketed
    search (knn_exact) and the numpy reference, on features with an offset shared by all points,
    in a batch of two graphs, a graph smaller than k included; for float32 features (the model's)
    and bfloat16 ones (under autocast) those of their values in float64."""
    from gnnu.graph import bruteforce

    features = torch.from_numpy(np.concatenate([_features(1500, dim, rank, dim, offset=5.0),
                                                _features(1100, dim, rank, dim + 1),
                                                _features(10, dim, rank, dim + 2)])).to(dtype)
    pos = features.double().numpy()
    batch = np.repeat([0, 1, 2], [1500, 1100, 10])
    ptr = np.array([0, 1500, 2600, 2610])
    count = np.array([16, 16, 10 if include_self else 9])          # the small graph: all its points
    got, exact = (np.empty(int(np.dot(count, np.diff(ptr))), np.int64) for _ in range(2))
    bruteforce.knn_projected(features, ptr, count, include_self, got)
    bruteforce.knn_exact(pos, ptr, count, include_self, exact)
    np.testing.assert_array_equal(got, exact)
    if dim == 64:
        np.testing.assert_array_equal(got, reference_knn(pos, 16, batch, include_self)[0])


def test_projected_search_on_degenerate_clouds():
    """Points spanning fewer dimensions than the projection keeps (rank 2 in 64-D: the rest |r|
    is rounding noise), and 300 coincident points among 900 others (one bucket holds them all,
    ties everywhere): still the exact search's neighbours, ties to the lower index."""
    from gnnu.graph import bruteforce

    rng = np.random.default_rng(4)
    flat = rng.normal(size=(1200, 2)) @ rng.normal(size=(2, 64))
    same = np.concatenate([np.ones((300, 64)), _features(900, 64, 4, 5)])
    for pos in (flat, same):
        for include_self in (False, True):
            ptr, count = np.array([0, len(pos)]), np.array([16])
            got, exact = np.empty(16 * len(pos), np.int64), np.empty(16 * len(pos), np.int64)
            bruteforce.knn_projected(torch.from_numpy(pos), ptr, count, include_self, got)
            bruteforce.knn_exact(pos, ptr, count, include_self, exact)
            np.testing.assert_array_equal(got, exact)


def test_feature_spaces_take_the_projected_search_for_large_graphs(monkeypatch):
    """knn of more than EXACT_MAX_DIM coordinates: graphs of ≥ PROJECTED_MIN_POINTS points go
    to knn_projected, smaller ones to knn_matmul, and the edges equal the reference either way."""
    from gnnu.graph import bruteforce

    seen = {"matmul": [], "projected": []}
    for name in seen:
        real = getattr(bruteforce, f"knn_{name}")
        monkeypatch.setattr(bruteforce, f"knn_{name}",
                            lambda *a, _n=name, _r=real, **kw: seen[_n].append(list(kw["graphs"])) or _r(*a, **kw))
    monkeypatch.setattr(bruteforce, "PROJECTED_MIN_POINTS", 200)
    pos = _features(450, 32, 4, 8)
    batch = np.repeat([0, 1, 2], [100, 250, 100])
    got = knn(torch.from_numpy(pos.astype(np.float32)), 8, batch, backend="numba")
    assert seen == {"matmul": [[0, 2]], "projected": [[1]]}
    np.testing.assert_array_equal(got, reference_knn(pos.astype(np.float32).astype(np.float64), 8, batch, False))


def test_isotropic_features_go_to_the_matrix_product_search(monkeypatch):
    """Where the lead principal axes hold little of the variance (isotropic random points in
    64-D), the projection's bound prunes little: knn_projected hands the graph to knn_matmul,
    and a structured graph of the same batch stays with the projection; the edges equal the
    reference either way."""
    from gnnu.graph import bruteforce

    handed = []
    real = bruteforce.knn_matmul
    monkeypatch.setattr(bruteforce, "knn_matmul",
                        lambda *a, **kw: handed.append(list(kw["graphs"])) or real(*a, **kw))
    rng = np.random.default_rng(2)
    pos = np.concatenate([rng.normal(size=(300, 64)), _features(300, 64, 4, 3)])
    ptr, count = np.array([0, 300, 600]), np.array([8, 8])
    got = np.empty(8 * 600, np.int64)
    bruteforce.knn_projected(torch.from_numpy(pos), ptr, count, False, got)
    assert handed == [[0]]
    np.testing.assert_array_equal(got, reference_knn(pos, 8, np.repeat([0, 1], 300), False)[0])
