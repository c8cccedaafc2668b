"""Edge builders and graph configs: hand-made tiny events with known answers, and the builder
contract (no self-loops, no duplicates, no edges between events, grouped by target event)."""

from __future__ import annotations

import numpy as np
import pytest

from gnnu.config import CONFIG_ROOT
from gnnu.detectors import DetectorBase
from gnnu.errors import ConfigError
from gnnu.graph.config import load_graph_config
from gnnu.graph.edges import (EDGE_BUILDERS, AdjacencyEdges, CrossViewEdges, DelaunayEdges,
                              KnnEdges, RadiusEdges, build_edges, lex_searchsorted)
from gnnu.graph.features import node_table


class UnitDetector(DetectorBase):
    """Two views; 1 cm per wire and 1 cm per time unit, so positions are (wire, time)."""

    name = "unit"
    views = ("A", "B")

    def hit_positions(self, view, wire, time):
        return np.stack([np.asarray(wire, np.float32), np.asarray(time, np.float32)], axis=1)


def nodes_of(hits):
    """NodeTable from (event, view, wire, time) rows (events non-decreasing)."""
    h = np.array(hits, dtype=np.float64).reshape(-1, 4)
    cols = {"view": h[:, 1].astype(np.int8), "wire": h[:, 2].astype(np.int32),
            "time": h[:, 3].astype(np.float32), "charge": np.ones(len(h), np.float32),
            "width": np.ones(len(h), np.float32)}
    return node_table(cols, h[:, 0].astype(np.int64), UnitDetector())


def pairs(edge_index) -> set[tuple[int, int]]:
    """{(source, target)}."""
    return set(map(tuple, np.asarray(edge_index).T.tolist()))


def undirected(edge_index) -> set[frozenset]:
    return {frozenset(p) for p in pairs(edge_index)}


def test_knn_per_view_known_neighbours():
    # event 0, view A: four hits on a line at wire 0, 1, 3, 7; view B: two hits; event 1: one hit
    n = nodes_of([(0, 0, 0, 5), (0, 1, 0, 5), (0, 0, 1, 5), (0, 0, 3, 5), (0, 1, 50, 5),
                  (0, 0, 7, 5), (1, 0, 1, 5)])
    e = EDGE_BUILDERS["knn"].build(n, KnnEdges(k=2))
    want = {(2, 0), (3, 0),            # wire 0 ← wires 1, 3
            (0, 2), (3, 2),            # wire 1 ← wires 0, 3
            (2, 3), (0, 3),            # wire 3 ← wires 1 (2 cm), 0 (3 cm)
            (3, 5), (2, 5),            # wire 7 ← wires 3, 1
            (4, 1), (1, 4)}            # view B: only each other; event 1: alone, no edges
    assert pairs(e) == want and e.shape[1] == len(want)


def test_knn_same_edges_whether_or_not_hits_come_grouped_by_view():
    """knn_edges skips its view sort when the hits already come grouped by (event, view): the
    edges are the same set either way (hits interleaved across views vs sorted by view)."""
    rng = np.random.default_rng(3)
    hits = sorted((ev, int(rng.integers(0, 2)), int(rng.integers(0, 40)), float(rng.uniform(0, 30)))
                  for ev in range(4) for _ in range(50))
    grouped = nodes_of(hits)                                    # sorted by (event, view)
    order = np.argsort([(h[0] * 1000 + rng.integers(0, 1000)) for h in hits], kind="stable")
    mixed = nodes_of([hits[i] for i in order])                  # views interleaved per event
    assert np.any(np.diff(mixed.view[mixed.batch == 0]) < 0)    # really not grouped by view
    spec = KnnEdges(k=6)
    e_grouped = EDGE_BUILDERS["knn"].build(grouped, spec)
    e_mixed = order[EDGE_BUILDERS["knn"].build(mixed, spec)]       # back to the grouped numbering
    assert pairs(e_mixed) == pairs(e_grouped) and e_mixed.shape == e_grouped.shape


def test_knn_3d_uses_true_positions_and_skips_hits_without_them():
    n = nodes_of([(0, 0, 0, 0), (0, 1, 100, 0), (0, 0, 200, 0), (0, 1, 300, 0)])
    n.xyz = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 5], [np.nan, 0, 0]], np.float32)
    e = EDGE_BUILDERS["knn"].build(n, KnnEdges(k=1, space="3d"))
    assert pairs(e) == {(1, 0), (0, 1), (1, 2)}


def test_radius_exact_and_capped():
    n = nodes_of([(0, 0, 0, 0), (0, 0, 1, 0), (0, 0, 2, 0), (0, 0, 4, 0), (0, 1, 1, 0)])
    e = EDGE_BUILDERS["radius"].build(n, RadiusEdges(r_cm=2.0, max_neighbours=10))
    assert pairs(e) == {(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1), (2, 3), (3, 2)}
    capped = EDGE_BUILDERS["radius"].build(n, RadiusEdges(r_cm=2.0, max_neighbours=1))
    # node 1 has 0 and 2 both at 1 cm: the lower index wins; node 2's nearest is node 1
    assert pairs(capped) == {(1, 0), (0, 1), (1, 2), (2, 3)}


def test_adjacency_neighbouring_wires_within_window():
    n = nodes_of([(0, 0, 10, 0.0), (0, 0, 11, 1.5), (0, 0, 12, 5.0), (0, 0, 10, 2.0),
                  (0, 0, 14, 0.0), (0, 1, 11, 0.0)])
    e = EDGE_BUILDERS["adjacency"].build(n, AdjacencyEdges(wires=1, window_cm=2.0, same_wire=True))
    # 0-1 (next wire, Δt 1.5), 1-3 (Δt 0.5), 0-3 (same wire, Δt 2.0 inclusive); 2 too late for 1
    # (Δt 3.5); wire 14 has no neighbour; the view-B hit never joins view A
    assert undirected(e) == {frozenset({0, 1}), frozenset({1, 3}), frozenset({0, 3})}
    assert len(pairs(e)) == 6
    no_same = EDGE_BUILDERS["adjacency"].build(n, AdjacencyEdges(wires=1, window_cm=2.0, same_wire=False))
    assert undirected(no_same) == {frozenset({0, 1}), frozenset({1, 3})}
    wide = EDGE_BUILDERS["adjacency"].build(n, AdjacencyEdges(wires=2, window_cm=5.0, same_wire=False))
    assert frozenset({0, 2}) in undirected(wide) and frozenset({2, 4}) in undirected(wide)


def test_delaunay_square_line_pair_single_and_duplicates():
    n = nodes_of([(0, 0, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1), (0, 0, 1, 1),      # unit square
                  (0, 1, 0, 0), (0, 1, 1, 1), (0, 1, 2, 2), (0, 1, 3, 3),      # collinear
                  (1, 0, 5, 5), (1, 0, 6, 9),                                  # two hits
                  (1, 1, 4, 4),                                                # alone
                  (2, 0, 0, 0), (2, 0, 4, 0), (2, 0, 0, 3), (2, 0, 0, 3)])     # triangle + duplicate
    e = EDGE_BUILDERS["delaunay"].build(n, DelaunayEdges())
    u = undirected(e)
    square = {p for p in u if p <= {0, 1, 2, 3}}
    assert {frozenset({0, 1}), frozenset({0, 2}), frozenset({1, 3}), frozenset({2, 3})} <= square
    assert len(square) == 5                                   # four sides and one diagonal
    assert {p for p in u if p <= {4, 5, 6, 7}} == {frozenset({4, 5}), frozenset({5, 6}),
                                                   frozenset({6, 7})}
    assert frozenset({8, 9}) in u and not any(10 in p for p in u)
    tri = {p for p in u if p <= {11, 12, 13, 14}}
    assert tri == {frozenset({11, 12}), frozenset({11, 13}), frozenset({12, 13}), frozenset({13, 14})}
    assert len(pairs(e)) == 2 * len(u)                        # both directions of every side


def test_crossview_nearest_in_drift_within_window():
    n = nodes_of([(0, 0, 1, 5.0), (0, 1, 7, 4.9), (0, 1, 8, 5.3), (0, 1, 9, 5.35), (0, 1, 2, 9.0),
                  (1, 1, 3, 5.0)])
    e = EDGE_BUILDERS["crossview"].build(n, CrossViewEdges(window_cm=0.5, max_per_view=2))
    # hit 0 (view A) receives from the two nearest view-B hits in drift; each view-B hit within
    # 0.5 cm receives from hit 0; the other event's hit stays alone
    assert pairs(e) == {(1, 0), (2, 0), (0, 1), (0, 2), (0, 3)}
    # equal |Δ| on both sides (0.25 cm, exact in binary): the two lowest indices win
    tie = nodes_of([(0, 1, 1, 5.25), (0, 1, 2, 4.75), (0, 1, 3, 5.25), (0, 1, 4, 4.75), (0, 0, 0, 5.0)])
    e = EDGE_BUILDERS["crossview"].build(tie, CrossViewEdges(window_cm=0.5, max_per_view=2))
    assert {s for s, t in pairs(e) if t == 4} == {0, 1}


def test_combination_dedupes_and_adds_self_loops():
    n = nodes_of([(0, 0, 0, 0), (0, 0, 1, 0), (0, 1, 0, 0.1), (1, 0, 0, 0), (1, 1, 5, 0)])
    specs = (KnnEdges(k=4), CrossViewEdges(window_cm=1.0, max_per_view=1),
             AdjacencyEdges(wires=1, window_cm=1.0))
    e = build_edges(n, specs, self_loops=True)
    p = pairs(e)
    assert len(p) == e.shape[1], "duplicate edges"
    assert {(i, i) for i in range(5)} <= p and sum(a == b for a, b in p) == 5
    assert (1, 0) in p and (2, 0) in p and (0, 2) in p and (4, 3) in p
    assert np.all(np.lexsort((e[0], e[1])) == np.arange(e.shape[1])), "not sorted by target"
    assert not any(a == b for a, b in pairs(build_edges(n, specs, self_loops=False)))


@pytest.mark.parametrize("spec", [KnnEdges(k=5), RadiusEdges(r_cm=6.0, max_neighbours=4),
                                  AdjacencyEdges(wires=2, window_cm=8.0), DelaunayEdges(),
                                  CrossViewEdges(window_cm=3.0, max_per_view=2)],
                         ids=lambda s: s.kind)
def test_builder_contract_on_random_events(spec):
    rng = np.random.default_rng(5)
    sizes = [0, 1, 2, 30, 7, 60]
    hits = [(ev, rng.integers(0, 2), rng.integers(0, 25), rng.uniform(0, 30))
            for ev, m in enumerate(sizes) for _ in range(m)]
    hits += [(6, 0, 3, 3.0)] * 3                              # coincident hits
    n = nodes_of(hits)
    e = EDGE_BUILDERS[spec.kind].build(n, spec)
    assert e.dtype == np.int64 and e.shape[0] == 2 and e.shape[1] > 0
    assert not np.any(e[0] == e[1]), "self-loop"
    assert len(pairs(e)) == e.shape[1], "duplicate edge"
    assert np.all(n.batch[e[0]] == n.batch[e[1]]), "edge between events"
    assert np.all(np.diff(n.batch[e[1]]) >= 0), "not grouped by target event"
    if spec.kind != "crossview":
        assert np.all(n.view[e[0]] == n.view[e[1]]), "edge between views"
    else:
        assert np.all(n.view[e[0]] != n.view[e[1]])


def test_lex_searchsorted_matches_numpy_on_one_column():
    rng = np.random.default_rng(0)
    data = np.sort(rng.integers(0, 20, 200)).astype(np.float64)
    q = rng.integers(-2, 23, 100).astype(np.float64)
    for side in ("left", "right"):
        np.testing.assert_array_equal(lex_searchsorted([data], [q], side), np.searchsorted(data, q, side))


def test_shipped_graph_configs_load():
    names = sorted(p.stem for p in (CONFIG_ROOT / "graphs").glob("*.yaml"))
    assert {"knn16", "radius", "adjacency", "delaunay", "knn16_crossview"} <= set(names)
    for name in names:
        cfg = load_graph_config(name)
        assert cfg.name == name and cfg.edges
    default = load_graph_config(None)
    assert default.name == "knn16" and default.edges == (KnnEdges(k=16, space="view"),)


@pytest.mark.parametrize("text,match", [
    ("name: x\nedges: [{kind: knn, kk: 3}]\n", r"edges\[0\]: unknown key\(s\) kk"),
    ("name: x\nedges: [{kind: voronoi}]\n", r"edges\[0\]\.kind: unknown edge builder 'voronoi'"),
    ("name: x\nedges: [{kind: knn}]\nshards: 3\n", r"unknown key\(s\) shards"),
    ("name: x\nfeatures: [pos, colour]\nedges: [{kind: knn}]\n", "unknown feature"),
    ("name: x\nedges: [{kind: knn, k: 0}]\n", "k must be"),
    ("name: x\nedges: []\n", "at least one edge builder"),
])
def test_bad_configs_name_file_and_key(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_graph_config(path)
    assert "bad.yaml" in str(info.value)
