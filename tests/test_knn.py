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
    if backend == "scipy":
        return knn(pos, k, batch, include_self, backend="scipy")
    out = knn(torch.from_numpy(pos), k, None if batch is None else torch.from_numpy(batch),
              include_self, backend="torch", **kw)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.long
    return out.numpy()


BACKENDS = [("scipy", {}), ("torch", {}), ("torch", {"block_size": 700}), ("torch", {"block_size": 50})]
IDS = ["scipy", "torch", "torch-padded-groups", "torch-row-blocks"]


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
