"""NOvA-like scintillator events through gnnu-build: plane-aware positions and cell adjacency."""

from __future__ import annotations

import numpy as np
import pytest

from gnnu.cli.build import main as build_main
from gnnu.cli.sim import main as sim_main
from gnnu.detectors import load_detector, positions
from gnnu.errors import InputError
from gnnu.graph.edges import AdjacencyEdges, adjacency_edges
from gnnu.graph.features import feature_columns, node_table


@pytest.fixture(scope="module")
def nova():
    return load_detector("nova")


def _cols(view, plane, cell, time):
    n = len(view)
    return {"view": np.array(view), "plane": np.array(plane), "wire": np.array(cell),
            "time": np.array(time, np.float32), "charge": np.ones(n, np.float32),
            "width": np.ones(n, np.float32)}


def test_positions_need_the_plane(nova):
    cols = _cols([0, 1], [0, 1], [10, 10], [0, 0])
    pos = positions(nova, cols)
    assert pos.shape == (2, 2) and pos[1, 0] > pos[0, 0]          # plane 1 lies downstream
    del cols["plane"]
    with pytest.raises(InputError, match="plane"):
        positions(nova, cols)


def test_cell_adjacency_rule(nova):
    """Neighbour cells (±1) on the same plane or the next same-view plane (±2) within 100 ns."""
    #          0: centre   1: cell+1  2: plane+2  3: plane+1 (other view)  4: cell+2  5: +500 ns
    cols = _cols([0, 0, 0, 1, 0, 0], [4, 4, 6, 5, 4, 4], [10, 11, 10, 10, 12, 9],
                 [0, 50, -90, 0, 0, 500])
    nodes = node_table(cols, np.zeros(6, np.int64), nova)
    spec = AdjacencyEdges(wires=1, same_wire=False, planes=1, plane_step=2, window_time=100.0)
    e = adjacency_edges(nodes, spec)
    into_0 = sorted(e[0][e[1] == 0].tolist())
    assert into_0 == [1, 2]            # not the other view, not 2 cells away, not 500 ns later
    assert {(int(a), int(b)) for a, b in e.T} >= {(0, 1), (1, 0), (0, 2), (2, 0), (1, 4), (4, 1)}


def test_time_and_width_features_keep_ns(nova):
    names = [c.name for c in feature_columns(["pos", "time", "width"], nova)]
    assert names == ["wire_cm", "time_cm", "time_ns", "width_ns"]


@pytest.mark.parametrize("graph", ["nova_adjacency", "nova_knn16"])
def test_build_simulated_nova_events(tmp_path, graph):
    from gnnu.graph.dataset import GraphDataset

    hits = tmp_path / "nova.h5"
    assert sim_main(["--detector", "nova", "--events", "12", "--seed", "2", "--out", str(hits),
                     "--flavours", "numu_cc,nue_cc,nc,cosmic"]) == 0
    out = tmp_path / "graphs"
    assert build_main(["--input", str(hits), "--out", str(out), "--graph",
                       graph,
                       "--split", "0.5,0.25,0.25"]) == 0
    ds = GraphDataset(out, split="all")
    assert len(ds) == 12
    d = ds[0]
    assert d.x.shape[1] == 7 and d.edge_index.shape[0] == 2 and d.edge_index.shape[1] > 0
    assert sorted(int(f) for f in ds.labels("flavour")) == [0, 0, 0, 1, 1, 1, 3, 3, 3, 4, 4, 4]
