"""GNN operators and models: correctness of the per-node EdgeConv, neighbour sets, graph
isolation, invariances, cost accounting, and that every model can learn a toy task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from gnnu.config import CONFIG_ROOT
from gnnu.models import MultiTaskHead, count_parameters, create_model, flops_per_event
from gnnu.models.gnn import DynamicEdgeConv, EdgeConv, GlobalPooling, GravNetConv
from gnnu.models.gnn.edgeconv import EdgeConvBlock

MODELS = ("edgeconv", "dynedgeconv", "gravnet")
#: Small versions of each model so the tests stay fast on 2 CPU cores.
SMALL = {
    "edgeconv": {"widths": [16, 32]},
    "dynedgeconv": {"k": 4, "widths": [16, 32]},
    "gravnet": {"blocks": 2, "dense": [16], "space_dimensions": 3, "propagate_dimensions": 8,
                "out_channels": 16, "k": 4},
}
F_IN = 5


def knn_reference(points: np.ndarray, batch: np.ndarray, k: int, include_self: bool) -> set:
    """Brute-force kNN within each graph: the set of (neighbour j, centre i) pairs."""
    pairs = set()
    for g in np.unique(batch):
        idx = np.flatnonzero(batch == g)
        p = points[idx].astype(np.float64)
        d2 = ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)
        if not include_self:
            np.fill_diagonal(d2, np.inf)
        kk = min(k, len(idx) - (0 if include_self else 1))
        nbrs = np.argsort(d2, axis=1, kind="stable")[:, :kk]
        pairs |= {(int(idx[j]), int(idx[i])) for i in range(len(idx)) for j in nbrs[i]}
    return pairs


def edge_set(edge_index: torch.Tensor) -> set:
    return set(map(tuple, edge_index.t().tolist()))


def make_graph(n: int, rng: np.random.Generator, k: int = 6) -> Data:
    """A random graph: pos [n, 2] (cm), x = [pos, 3 noise features], stored edges = 2-D kNN."""
    pos = rng.normal(size=(n, 2)).astype(np.float32)
    x = np.concatenate([pos, rng.normal(size=(n, F_IN - 2))], axis=1).astype(np.float32)
    pairs = sorted(knn_reference(pos, np.zeros(n, int), k, include_self=False))
    edge_index = torch.tensor(pairs, dtype=torch.long).t().reshape(2, -1)
    return Data(x=torch.from_numpy(x), pos=torch.from_numpy(pos), edge_index=edge_index)


def small_model(name: str, tasks=None, regression=("nu_energy",), seed=0, **params):
    torch.manual_seed(seed)
    cfg = {"name": name, "params": {**SMALL[name], **params},
           "heads": {"hidden": [32], "dropout": 0.0}}
    return create_model(cfg, in_features=F_IN, tasks=tasks, regression=regression)


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_graphs_of_different_sizes(name):
    """Outputs per task have the right shape and are finite; every parameter gets a gradient.
    The 3-node graph has fewer nodes than k + 1 (dynamic models: fewer neighbours)."""
    rng = np.random.default_rng(1)
    batch = Batch.from_data_list([make_graph(n, rng) for n in (3, 17, 40)])
    model = small_model(name)
    out = model(batch)
    assert out["flavour"].shape == (3, 5) and out["interaction"].shape == (3, 4)
    assert out["is_antinu"].shape == (3, 2) and out["n_neutron"].shape == (3, 4)
    assert out["nu_energy"].shape == (3,)
    assert all(torch.isfinite(v).all() for v in out.values())
    sum(v.square().mean() for v in out.values()).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", MODELS)
def test_bf16_autocast_forward_backward(name):
    """Mixed precision (bf16 autocast, as used for training on GPUs) runs and stays close to fp32:
    the kNN of half-precision features is taken in float32."""
    rng = np.random.default_rng(13)
    batch = Batch.from_data_list([make_graph(n, rng) for n in (30, 45)])
    model = small_model(name).eval()
    ref = model(batch)["flavour"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)["flavour"]
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), ref, atol=0.05)
    out.float().sum().backward()


@pytest.mark.parametrize("name", MODELS)
def test_no_message_crosses_graph_boundaries(name):
    """Perturbing graph 1 (moved on top of graph 0, new features) leaves graphs 0 and 2 unchanged,
    and graph 0 alone gives the same output as inside the batch (eval mode: BatchNorm frozen)."""
    rng = np.random.default_rng(2)
    graphs = [make_graph(n, rng) for n in (25, 30, 20)]
    model = small_model(name).eval()
    with torch.no_grad():
        before = model(Batch.from_data_list(graphs))
        g1 = graphs[1].clone()
        g1.pos = graphs[0].pos.repeat(2, 1)[:30] + 1e-3
        g1.x = torch.cat([g1.pos, torch.randn(30, F_IN - 2) * 5], dim=1)
        after = model(Batch.from_data_list([graphs[0], g1, graphs[2]]))
        alone = model(Batch.from_data_list([graphs[0]]))
    for key in before:
        assert torch.allclose(before[key][[0, 2]], after[key][[0, 2]], atol=1e-5), key
        assert torch.allclose(before[key][0], alone[key][0], atol=1e-5), key
    assert not torch.allclose(before["flavour"][1], after["flavour"][1], atol=1e-4)


@pytest.mark.parametrize("include_self", [False, True])
def test_dynamic_edgeconv_neighbours_match_bruteforce(include_self):
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.normal(size=(60, 6)).astype(np.float32))
    batch = torch.tensor([0] * 25 + [1] * 35)
    conv = DynamicEdgeConv(6, 8, k=5, include_self=include_self)
    got = edge_set(conv.graph(x, batch))
    assert got == knn_reference(x.numpy(), batch.numpy(), 5, include_self)
    assert len(got) == 60 * 5


@pytest.mark.parametrize("include_self", [False, True])
def test_gravnet_neighbours_match_bruteforce_in_learnt_space(include_self):
    """Neighbours are the k nearest in the learnt coordinates s = W_s x + b_s, per graph."""
    rng = np.random.default_rng(4)
    torch.manual_seed(4)
    x = torch.from_numpy(rng.normal(size=(50, 6)).astype(np.float32))
    batch = torch.tensor([0] * 20 + [1] * 30)
    conv = GravNetConv(6, 8, space_dimensions=3, propagate_dimensions=4, k=6, include_self=include_self)
    s, edge_index = conv.graph(x, batch)
    assert torch.allclose(s, conv.lin_s(x))
    assert edge_set(edge_index) == knn_reference(s.detach().numpy(), batch.numpy(), 6, include_self)


def test_gravnet_operator_matches_formula():
    """x' = tanh(W_o [x, mean_j w_ij f_j, max_j w_ij f_j] + b_o), w_ij = exp(−10 |s_i − s_j|²),
    written out per node with the brute-force neighbour sets."""
    rng = np.random.default_rng(5)
    torch.manual_seed(5)
    x = torch.from_numpy(rng.normal(size=(12, 4)).astype(np.float32))
    conv = GravNetConv(4, 6, space_dimensions=2, propagate_dimensions=3, k=3)
    with torch.no_grad():
        out = conv(x, None)
        s, f = conv.lin_s(x), conv.lin_f(x)
        pairs = knn_reference(s.numpy(), np.zeros(12, int), 3, include_self=False)
        for i in range(12):
            nb = [j for j, c in pairs if c == i]
            m = torch.exp(-10 * (s[nb] - s[i]).pow(2).sum(1, keepdim=True)) * f[nb]
            ref = torch.tanh(conv.lin_out(torch.cat([x[i], m.mean(0), m.max(0).values])))
            assert torch.allclose(out[i], ref, atol=1e-5)


def test_dynedgeconv_first_block_uses_positions():
    """first_knn=pos: the first block's kNN sees pos; later blocks see their input features."""
    rng = np.random.default_rng(6)
    batch = Batch.from_data_list([make_graph(20, rng), make_graph(15, rng)])
    model = small_model("dynedgeconv")
    seen = []
    for block in model.encoder.blocks:
        block.knn.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    model(batch)
    assert torch.equal(seen[0], batch.pos)
    assert seen[1].shape == (35, 16)
    model = small_model("dynedgeconv", first_knn="features")
    seen.clear()
    model.encoder.blocks[0].knn.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    model(batch)
    assert seen[0].shape == (35, F_IN)


@pytest.mark.parametrize("aggregation", ["neighbour table", "scatter"])
@pytest.mark.parametrize("act", [None, "relu", "leaky_relu"])
def test_decomposed_edgeconv_equals_naive(act, aggregation, monkeypatch):
    """Per-node EdgeConv == PyG's per-edge EdgeConv (h_θ = Linear on [x_i, x_j − x_i], max),
    values and gradients, on a graph with duplicate edges, self-loops and isolated targets —
    with the max taken through a neighbour table (dense gather, arg-max backward) and through
    the scatter form."""
    from torch_geometric.nn import EdgeConv as PygEdgeConv

    from gnnu.models.gnn import edgeconv as module
    from gnnu.models.gnn.ops import neighbour_table

    if aggregation == "scatter":
        monkeypatch.setattr(module, "neighbour_table", lambda *a, **k: None)
    else:
        monkeypatch.setattr(module, "neighbour_table",
                            lambda e, n: neighbour_table(e, n, max_padding=float("inf")))

    rng = np.random.default_rng(7)
    n = 30
    x = torch.from_numpy(rng.normal(size=(n, 6)).astype(np.float32))
    src = rng.integers(0, n, 150)
    dst = rng.integers(0, n - 5, 150)          # nodes n−5 … n−1 receive no message
    edge_index = torch.tensor(np.stack([np.r_[src, 3, 3, 4], np.r_[dst, 3, 7, 7]]), dtype=torch.long)
    ours = EdgeConv(6, 9, act=act)
    h = [ours.lin] + ([] if act is None else [nn.ReLU() if act == "relu" else nn.LeakyReLU()])
    naive = PygEdgeConv(nn.Sequential(*h), aggr="max")
    naive.nn[0].load_state_dict(ours.lin.state_dict())      # shares the same Θ, b
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    a, b = ours(xa, edge_index), naive(xb, edge_index)
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.all(a[n - 5:] == 0)
    ga = torch.autograd.grad(a.square().sum(), [xa, ours.lin.weight])
    gb = torch.autograd.grad(b.square().sum(), [xb, naive.nn[0].weight])
    for u, v in zip(ga, gb):
        assert torch.allclose(u, v, atol=1e-4)


def _permute_within_graphs(data: Batch, rng) -> Batch:
    graphs = []
    for g in data.to_data_list():
        perm = torch.from_numpy(rng.permutation(g.num_nodes))
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(g.num_nodes)
        edges = inv[g.edge_index][:, torch.from_numpy(rng.permutation(g.edge_index.size(1)))]
        graphs.append(Data(x=g.x[perm], pos=g.pos[perm], edge_index=edges))
    return Batch.from_data_list(graphs)


def test_pooling_permutation_invariance():
    rng = np.random.default_rng(8)
    h = torch.randn(40, 7)
    batch = torch.tensor([0] * 15 + [1] * 25)
    pool = GlobalPooling(("mean", "max", "sum"))
    out = pool(h, batch, 2)
    perm = torch.from_numpy(rng.permutation(40))
    assert out.shape == (2, 21)
    assert torch.allclose(out, pool(h[perm], batch[perm], 2), atol=1e-5)
    assert torch.allclose(out[0, :7], h[:15].mean(0)) and torch.allclose(out[1, 7:14], h[15:].max(0).values)
    assert torch.allclose(out[1, 14:], h[15:].sum(0), atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_model_permutation_invariance(name):
    """Relabelling the nodes of each graph (edges remapped and shuffled) leaves the pooled
    features unchanged."""
    rng = np.random.default_rng(9)
    data = Batch.from_data_list([make_graph(n, rng) for n in (18, 26)])
    model = small_model(name).eval()
    with torch.no_grad():
        a = model.embed(data)
        b = model.embed(_permute_within_graphs(data, rng))
    assert torch.allclose(a, b, atol=1e-5)


def test_parameter_counts_match_analytic():
    """One layer each: EdgeConv = Linear(2·C_in → C_out); GravNet = W_s, W_f, W_o with biases;
    the heads = trunk + one linear per head."""
    ci, co, s, flr = 5, 7, 3, 4
    assert count_parameters(EdgeConv(ci, co)) == 2 * ci * co + co
    block = EdgeConvBlock(ci, co)   # + BN (2·C_out) + shortcut Linear (no bias) + BN
    assert count_parameters(block) == (2 * ci * co + co) + 2 * co + ci * co + 2 * co
    assert count_parameters(EdgeConvBlock(co, co)) == (2 * co * co + co) + 2 * co  # identity shortcut
    grav = GravNetConv(ci, co, space_dimensions=s, propagate_dimensions=flr, k=3)
    assert count_parameters(grav) == (ci * s + s) + (ci * flr + flr) + ((ci + 2 * flr) * co + co)
    head = MultiTaskHead(10, {"a": 3, "b": 2}, ("nu_energy",), hidden=(8,))
    assert count_parameters(head) == (10 * 8 + 8) + (8 * 3 + 3) + (8 * 2 + 2) + (8 + 1)
    head.heads["a"].requires_grad_(False)
    assert count_parameters(head, trainable_only=True) == count_parameters(head) - (8 * 3 + 3)


class _EdgeConvOnData(nn.Module):
    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, data):
        return self.conv(data.x, data.edge_index)


def test_flops_of_one_edgeconv_layer_are_analytic():
    """2 FLOPs per multiply-add of the per-node [N, C_in]×[C_in, 2 C_out] matmul, plus one FLOP
    per element of the [E, C_out] max reduction; per event = / number of graphs."""
    rng = np.random.default_rng(10)
    data = Batch.from_data_list([make_graph(40, rng), make_graph(60, rng)])
    n, e = data.num_nodes, data.edge_index.size(1)
    flops = flops_per_event(_EdgeConvOnData(EdgeConv(F_IN, 16)), data)
    assert flops == (2 * n * F_IN * 32 + e * 16) / 2


@pytest.mark.parametrize("name", MODELS)
def test_flops_positive_and_linear_in_nodes(name):
    """Default models (YAML): doubling the nodes per event (k = 16 stored edges) about doubles
    the FLOPs per event; the per-event heads make the ratio slightly below 2."""
    rng = np.random.default_rng(11)
    model = create_model(CONFIG_ROOT / "models" / f"{name}.yaml", in_features=F_IN)
    f1 = flops_per_event(model, Batch.from_data_list([make_graph(150, rng, k=16) for _ in range(2)]))
    f2 = flops_per_event(model, Batch.from_data_list([make_graph(300, rng, k=16) for _ in range(2)]))
    assert f1 > 1e6
    assert 1.85 < f2 / f1 <= 2.0
    assert model.training   # mode restored


def _toy_dataset(rng, n_graphs=24):
    """2 classes: hits along a line (track-like) vs an isotropic blob (shower-like), 20–35 hits."""
    graphs, labels = [], []
    for i in range(n_graphs):
        n, cls = int(rng.integers(20, 36)), i % 2
        if cls == 0:
            d = rng.normal(size=2)
            pos = rng.uniform(-1, 1, (n, 1)) * d / np.linalg.norm(d) + 0.03 * rng.normal(size=(n, 2))
        else:
            pos = 0.5 * rng.normal(size=(n, 2))
        g = make_graph(n, rng)
        g.pos = torch.tensor(pos, dtype=torch.float32)
        g.x[:, :2] = g.pos
        g.edge_index = torch.tensor(sorted(knn_reference(pos, np.zeros(n, int), 6, False)),
                                    dtype=torch.long).t()
        graphs.append(g)
        labels.append(cls)
    return Batch.from_data_list(graphs), torch.tensor(labels)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_overfits_toy_two_class_dataset(name):
    """Full-batch Adam on 24 toy events: the cross-entropy falls well below its start."""
    data, labels = _toy_dataset(np.random.default_rng(12))
    model = small_model(name, tasks={"toy": 2}, regression=())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = nn.functional.cross_entropy(model(data)["toy"], labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], losses[::10]


def test_neighbour_table_and_gather_max():
    """The table holds each target's sources in edge order, N in empty slots; gather_max equals
    the scatter max where a target has edges (−∞ elsewhere); refused when padding would exceed
    max_padding × E."""
    from gnnu.models.gnn.ops import gather_max, neighbour_table, segment_max

    edge_index = torch.tensor([[4, 1, 2, 0, 3], [2, 0, 0, 3, 0]])     # targets 0 (×3), 2, 3; 1, 4 none
    t = neighbour_table(edge_index, 5, max_padding=10)
    assert t.index.tolist() == [[1, 2, 3], [5, 5, 5], [4, 5, 5], [0, 5, 5], [5, 5, 5]]
    assert t.has_edges.view(-1).tolist() == [True, False, True, True, False]
    assert neighbour_table(edge_index, 5) is None          # 5 × 3 slots > 2 × 5 edges
    v = torch.randn(5, 4, requires_grad=True)
    got = gather_max(v, t)
    want = segment_max(v.index_select(0, edge_index[0]), edge_index[1], 5)
    assert torch.equal(got[t.has_edges.view(-1)], want[t.has_edges.view(-1)])
    assert torch.isinf(got[~t.has_edges.view(-1)]).all()
    masked = torch.where(t.has_edges, got, torch.zeros_like(got))
    (g,) = torch.autograd.grad(masked.sum(), v)
    assert g.sum().item() == pytest.approx(3 * 4)          # one unit per (target with edges, channel)
    # every node k edges, unsorted (a kNN graph shuffled): the same table as the slot-by-slot build
    kidx = torch.tensor([[1, 2, 0, 2, 0, 1], [0, 0, 1, 1, 2, 2]])[:, torch.tensor([5, 0, 3, 1, 4, 2])]
    assert neighbour_table(kidx, 3).index.tolist() == [[1, 2], [2, 0], [1, 0]]   # edge order kept
