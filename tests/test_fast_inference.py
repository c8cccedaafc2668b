"""The fast EdgeConv inference path (gnnu.models.gnn.fast; issue 21): same outputs as the model.

On a gnnu-build dataset (synthetic events, kNN-16 per view, built by the CPU's numba kNN): the
padded, node-budget-batched path gives ``model(batch)``'s outputs in float32, with the stored
graph and with the graph rebuilt by the torch kNN (the GPU's graph builder, run here on the CPU);
bf16 stays within its tolerance; ``torch.compile`` of it (slow: C++ compilation on the CPU) gives
the same outputs. tests/test_gpu.py runs the same comparisons with the path on a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from test_train import make_dataset

from gnnu.graph.dataset import GraphDataset
from gnnu.models import create_model
from gnnu.models.gnn.fast import FastEdgeConv, chunk_events

TINY_EDGECONV = {"name": "edgeconv", "params": {"widths": [16, 32]},
                 "heads": {"hidden": [32], "dropout": 0.1}}


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Batch:
    """12 events (3 views, 64–72 hits each) with their stored kNN-16 graphs."""
    ds = GraphDataset(make_dataset(tmp_path_factory.mktemp("fast"), 24), "all")
    return Batch.from_data_list([ds[i] for i in range(12)])


def model_for(batch, cfg=TINY_EDGECONV, seed=0):
    torch.manual_seed(seed)
    model = create_model(cfg, in_features=batch.x.size(1))
    # trained-looking BatchNorm statistics (fresh ones are 0 / 1 and would hide a wrong order)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def assert_outputs_close(got: dict, want: dict, rtol: float, atol: float):
    assert set(got) == set(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        assert got[name].dtype == torch.float32, name
        torch.testing.assert_close(got[name], want[name], rtol=rtol, atol=atol, msg=name)


def test_chunks_respect_the_budgets():
    sizes = np.array([5, 5, 5, 20, 1, 1, 1, 1])
    assert chunk_events(sizes, 12, 8) == [(0, 2), (2, 3), (3, 4), (4, 8)]
    assert chunk_events(sizes, 100, 3) == [(0, 3), (3, 6), (6, 8)]
    assert chunk_events(np.array([], np.int64), 10, 2) == []


@pytest.mark.parametrize("graphs", ["stored", "knn"])
def test_float32_equals_the_model(batch, graphs):
    """Several packs (node budget 300: a few events each, padded) give model(batch)'s outputs
    to float32 rounding, with the stored graph and with the kNN rebuilt by the torch backend."""
    model = model_for(batch)
    with torch.no_grad():
        want = model(batch)
    fast = FastEdgeConv(model, graphs=graphs, node_budget=300, graph_budget=4)
    packs = fast.packs(batch)
    assert len(packs) == 3 and all(p.x.shape == (300, batch.x.size(1)) for p in packs)
    assert all(p.index.shape == (300, 16) for p in packs)
    assert_outputs_close(fast(batch), want, rtol=1e-5, atol=1e-5)
    assert not model.training


def test_knn_tables_hold_the_stored_neighbour_sets(batch):
    """The graph the path builds (torch kNN per event and view) has, node for node, the
    neighbours gnnu-build stored (numba kNN): tables compared as sets, in float32 and float64."""
    for dtype in (torch.float32, torch.float64):
        fast = FastEdgeConv(model_for(batch), graphs="knn", knn_dtype=dtype, node_budget=10**6)
        stored = FastEdgeConv(model_for(batch), graphs="stored", node_budget=10**6)
        (a,), (b,) = fast.packs(batch), stored.packs(batch)
        n = batch.num_nodes
        # the kNN pack may order nodes by (event, view): map both back to node identities
        assert torch.equal(a.x[:n], b.x[:n]), "nodes were already grouped by view"
        for i in range(n):
            assert set(a.index[i].tolist()) == set(b.index[i].tolist()), i


def test_bf16_stays_within_its_tolerance(batch):
    model = model_for(batch)
    with torch.no_grad():
        want = model(batch)
    got = FastEdgeConv(model, graphs="knn", precision="bf16", node_budget=400)(batch)
    assert_outputs_close(got, want, rtol=0.05, atol=0.05)
    margin = want["flavour"].topk(2, dim=1).values
    sure = (margin[:, 0] - margin[:, 1]) > 0.1
    assert torch.equal(got["flavour"].argmax(1)[sure], want["flavour"].argmax(1)[sure])


def test_an_event_larger_than_the_budget_gets_its_own_pack(batch):
    model = model_for(batch)
    with torch.no_grad():
        want = model(batch)
    fast = FastEdgeConv(model, graphs="stored", node_budget=50, graph_budget=2)
    packs = fast.packs(batch)
    sizes = torch.bincount(batch.batch).tolist()                # 48 (NC) or 72 hits
    assert [p.num_graphs for p in packs] == [1] * 12
    # an event over the budget: padded to a multiple of NODE_ROUND; the others to the budget
    assert [p.x.size(0) for p in packs] == [4096 if n > 50 else 50 for n in sizes]
    assert_outputs_close(fast(batch), want, rtol=1e-5, atol=1e-5)


def test_refuses_other_models_and_bad_arguments(batch):
    gravnet = create_model({"name": "gravnet", "params": {"blocks": 1, "k": 4}}, in_features=batch.x.size(1))
    with pytest.raises(ValueError, match="edgeconv model only"):
        FastEdgeConv(gravnet)
    with pytest.raises(ValueError, match="precision"):
        FastEdgeConv(model_for(batch), precision="fp8")
    with pytest.raises(ValueError, match="graphs"):
        FastEdgeConv(model_for(batch), graphs="radius")


@pytest.mark.slow
def test_compiled_equals_the_model(batch):
    """torch.compile of the padded forward (C++ on the CPU: minutes on 2 shared cores): the
    same outputs as the model in float32, every pack of one shape compiled once."""
    model = model_for(batch)
    with torch.no_grad():
        want = model(batch)
    fast = FastEdgeConv(model, graphs="knn", compile=True, node_budget=300, graph_budget=4)
    assert_outputs_close(fast(batch), want, rtol=1e-4, atol=1e-4)
    first = fast.compile_s
    assert first > 0 and len(fast._shapes) == 1
    assert_outputs_close(fast(batch), want, rtol=1e-4, atol=1e-4)
    assert fast.compile_s == first                           # no second compilation
