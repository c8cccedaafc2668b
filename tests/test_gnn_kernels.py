"""The compiled CPU kernels of the GNN operators (gnnu.models.gnn.kernels) against the torch
path they replace: same values and gradients, with padded neighbour tables, nodes without
neighbours, ties and both float precisions; FLOP counting and tracing never see them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnnu.models.gnn.ops import compiled_kernels, edge_max, gravnet_aggregate, neighbour_table


def _table(rng, n: int, k: int, empty: int = 3):
    """A kNN-like edge set: k sources per target (some repeated), the last ``empty`` targets
    without edges, so the table holds padding."""
    src = rng.integers(0, n, size=(n - empty) * k)
    dst = np.repeat(np.arange(n - empty), k)
    keep = rng.random(len(src)) > 0.2                       # uneven in-degrees → padded slots
    edge_index = torch.tensor(np.stack([src[keep], dst[keep]]), dtype=torch.long)
    return neighbour_table(edge_index, n, max_padding=float("inf"))


def _both(fn, *inputs):
    """fn(*inputs) and the gradients of a random projection of it, compiled and in torch."""
    results = []
    for enabled in (True, False):
        xs = [x.detach().clone().requires_grad_() for x in inputs]
        with compiled_kernels(enabled):
            out = fn(*xs)
        outs = out if isinstance(out, tuple) else (out,)
        gen = torch.Generator().manual_seed(1)
        loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)
        grads = torch.autograd.grad(loss, xs)
        results.append(([o.detach() for o in outs], grads))
    return results


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_edge_max_equals_the_torch_path(dtype):
    rng = np.random.default_rng(0)
    n, c = 60, 7
    table = _table(rng, n, 6)
    uv = torch.from_numpy(rng.normal(size=(n, 2 * c))).to(dtype)
    (out_a, g_a), (out_b, g_b) = _both(lambda x: edge_max(x, table), uv)
    assert torch.equal(out_a[0], out_b[0])
    assert torch.all(out_a[0][-3:] == 0)                   # targets without edges
    torch.testing.assert_close(g_a[0], g_b[0])


def test_edge_max_ties_send_the_gradient_to_one_source():
    """Two sources with equal v: the value is their maximum and the gradient goes to one of them
    (a valid subgradient), in both paths the same one (the first slot)."""
    index_edges = torch.tensor([[1, 2, 0], [0, 0, 1]])
    table = neighbour_table(index_edges, 3, max_padding=float("inf"))
    uv = torch.tensor([[0.0, 5.0], [0.0, 2.0], [0.0, 2.0]])
    (out_a, g_a), (out_b, g_b) = _both(lambda x: edge_max(x, table), uv)
    assert out_a[0][0, 0] == 2.0
    torch.testing.assert_close(g_a[0], g_b[0])
    assert (g_a[0][1:, 1] != 0).sum() == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gravnet_aggregate_equals_the_torch_path(dtype):
    rng = np.random.default_rng(2)
    n = 40
    table = _table(rng, n, 5)
    s = torch.from_numpy(rng.normal(size=(n, 3)) * 0.3).to(dtype)
    f = torch.from_numpy(rng.normal(size=(n, 6))).to(dtype)
    (out_a, g_a), (out_b, g_b) = _both(lambda s_, f_: gravnet_aggregate(s_, f_, table, 10.0), s, f)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    for x, y in zip(out_a, out_b):
        torch.testing.assert_close(x, y, **tol)
    assert torch.all(out_a[0][-3:] == 0) and torch.all(out_a[1][-3:] == 0)
    for x, y in zip(g_a, g_b):
        torch.testing.assert_close(x, y, **tol)


def test_compiled_gravnet_gradient_passes_gradcheck():
    rng = np.random.default_rng(3)
    table = _table(rng, 12, 3, empty=1)
    s = torch.from_numpy(rng.normal(size=(12, 2)) * 0.3).requires_grad_()
    f = torch.from_numpy(rng.normal(size=(12, 4))).requires_grad_()
    assert torch.autograd.gradcheck(lambda s_, f_: gravnet_aggregate(s_, f_, table, 10.0), (s, f))


def test_kernels_are_off_for_other_dtypes_and_dispatch_modes():
    """bf16 takes the torch path; under FlopCounterMode (a dispatch mode) too, so FLOPs are
    counted on the operations the torch path would run."""
    from torch.utils.flop_counter import FlopCounterMode

    from gnnu.models.gnn import ops

    rng = np.random.default_rng(4)
    table = _table(rng, 20, 4)
    x = torch.from_numpy(rng.normal(size=(20, 6)).astype(np.float32))
    assert ops.compiled(x) and not ops.compiled(x.bfloat16())
    with FlopCounterMode(display=False):
        assert not ops.compiled(x)
    edge_max(x.bfloat16(), table)                          # runs (torch path)


def test_global_pooling_equals_the_torch_path():
    """mean, max and sum in one compiled pass (values and gradients), an empty graph included."""
    from gnnu.models.gnn import GlobalPooling

    rng = np.random.default_rng(5)
    h = torch.from_numpy(rng.normal(size=(45, 8)))
    batch = torch.tensor([0] * 15 + [1] * 25 + [3] * 5)
    pool = GlobalPooling(("mean", "max", "sum"))
    (a, ga), (b, gb) = _both(lambda x: pool(x, batch, 4), h)
    torch.testing.assert_close(a[0], b[0])
    assert torch.all(a[0][2] == 0)
    torch.testing.assert_close(ga[0], gb[0])


@pytest.mark.parametrize("shortcut", ["batchnorm", "identity"])
@pytest.mark.parametrize("train", [True, False])
def test_bn_add_relu_equals_the_modules(shortcut, train):
    """relu(BN_a(a) + BN_b(b)) compiled == torch's BatchNorm1d modules: values, input and
    parameter gradients, and the running statistics after the step (train) — BatchNorm's own
    semantics, momentum update with the unbiased variance included."""
    from gnnu.models.gnn.ops import bn_add_relu

    rng = np.random.default_rng(6)
    a0 = torch.from_numpy(rng.normal(1.0, 2.0, size=(300, 12)).astype(np.float32))
    b0 = torch.from_numpy(rng.normal(-0.5, 1.5, size=(300, 12)).astype(np.float32))
    results = []
    for enabled in (True, False):
        torch.manual_seed(0)
        bn_a = torch.nn.BatchNorm1d(12)
        bn_b = torch.nn.BatchNorm1d(12) if shortcut == "batchnorm" else None
        for bn in filter(None, (bn_a, bn_b)):
            with torch.no_grad():
                bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-0.3, 0.3)
                bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
            bn.train(train)
        a, b = a0.clone().requires_grad_(), b0.clone().requires_grad_()
        with compiled_kernels(enabled):
            y = bn_add_relu(a, bn_a, b, bn_b)
        gen = torch.Generator().manual_seed(1)
        (y * torch.randn(y.shape, generator=gen)).sum().backward()
        params = [p.grad for bn in filter(None, (bn_a, bn_b)) for p in (bn.weight, bn.bias)]
        stats = [t.clone() for bn in filter(None, (bn_a, bn_b))
                 for t in (bn.running_mean, bn.running_var, bn.num_batches_tracked)]
        results.append((y.detach(), a.grad, b.grad, params, stats))
    (ya, gaa, gba, pa, sa), (yb, gab, gbb, pb, sb) = results
    tol = dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ya, yb, **tol)
    torch.testing.assert_close(gaa, gab, **tol)
    torch.testing.assert_close(gba, gbb, **tol)
    for x, z in zip(pa + sa, pb + sb):
        torch.testing.assert_close(x, z, **tol)
