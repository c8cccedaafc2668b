"""Graph-build speed (docs/design.md#performance-method target: gnnu-build ≥ 1 000 events/s per core at ~1 k hits) and
data-loader speed.

Events are synthetic but shaped like neutrino interactions in the DUNE-like LArTPC, so kNN sees
realistic point clouds: per view, a few straight tracks from a common vertex (one hit per wire
crossed, drift time linear in the wire, small jitter), one electromagnetic-shower-like blob
(hits spread around an axis, widening with depth) and a few isolated noise hits; ~1 000 hits per
event in total. Times are whole-pipeline medians over repeats of:

1. ``make_graphs``: features + kNN edges for in-memory events, in the builder's sub-blocks, and
   the edge builders alone on prepared node tables (the kNN share), then the config's kNN alone
   with the numba backend (cell grid), its k-d tree on every graph, and scipy, side by side;
2. ``gnnu-build`` end to end in one process (read the hit file, build, write shards, manifest);
3. ``GraphDataset`` + PyG ``DataLoader`` (batch 64) graphs/s, with 0 and 2 loader workers.

    python tools/bench_build.py --events 2000 --repeats 3 [--hits 1000] [--graph knn16]
        [--compression none|lzf|gzip]    (overrides the graph config's shard compression)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from _env import describe
from gnnu.detectors import load_detector
from gnnu.events import Event, Hits, Truth
from gnnu.graph.build import SUB_BLOCK, BuildOptions, build_dataset, make_graphs
from gnnu.graph.config import load_graph_config
from gnnu.graph.edges import KnnEdges, build_edges, knn_edges, view_groups
from gnnu.graph.knn import _knn_numba
from gnnu.graph.features import node_table
from gnnu.io.hitfile import write_hits


def realistic_event(i: int, n_hits: int, detector, seed: int = 0) -> Event:
    """A track-and-shower-like event with about ``n_hits`` hits over the detector's views."""
    rng = np.random.default_rng([seed, i])
    n_views = len(detector.views)
    per_view = n_hits // n_views
    cols = {k: [] for k in ("view", "wire", "time", "charge", "width")}
    vtx_wire = rng.uniform(300, 2000, n_views)
    vtx_time = rng.uniform(500, 4000)
    ticks_per_wire = 0.48 / 0.08                      # ~ pitch / (cm per tick): a 45° track
    for v in range(n_views):
        n_track = int(per_view * rng.uniform(0.3, 0.6))
        n_noise = int(per_view * 0.03)
        n_shower = per_view - n_track - n_noise
        wires, times = [], []
        lengths = rng.multinomial(n_track, rng.dirichlet(np.ones(3)))
        for length in lengths:                         # tracks: one hit per wire
            slope = np.tan(rng.uniform(-1.4, 1.4)) * ticks_per_wire
            step = rng.choice([-1, 1])
            w = vtx_wire[v] + step * np.arange(length)
            wires.append(w)
            times.append(vtx_time + slope * (w - vtx_wire[v]) + rng.normal(0, 1.0, length))
        axis = rng.uniform(0, 2 * np.pi)               # shower: widening cone of hits
        depth = rng.exponential(60, n_shower)
        spread = 2 + 0.15 * depth
        along, across = depth, rng.normal(0, 1, n_shower) * spread
        wires.append(vtx_wire[v] + along * np.cos(axis) - across * np.sin(axis))
        times.append(vtx_time + (along * np.sin(axis) + across * np.cos(axis)) * ticks_per_wire)
        wires.append(rng.uniform(0, 2500, n_noise))    # noise hits
        times.append(rng.uniform(0, 4492, n_noise))
        w = np.round(np.concatenate(wires)).astype(np.int32)
        cols["view"].append(np.full(len(w), v, np.int8))
        cols["wire"].append(w)
        cols["time"].append(np.concatenate(times).astype(np.float32))
        cols["charge"].append(rng.gamma(4.0, 60.0, len(w)).astype(np.float32))
        cols["width"].append(rng.uniform(2, 8, len(w)).astype(np.float32))
    hits = Hits({k: np.concatenate(v) for k, v in cols.items()})
    truth = Truth(flavour=i % 4, interaction=i % 3, is_antinu=0, n_proton=1, n_charged_pion=0,
                  n_neutral_pion=0, n_neutron=0, nu_energy=2.5, lep_energy=1.5, y=0.4,
                  vtx_x=100.0, vtx_y=0.0, vtx_z=500.0, nu_pdg=14)
    return Event((seed, 0, i), truth, hits)


def _tree_knn(nodes, k: int) -> np.ndarray:
    """The numba backend's per-view kNN with the k-d tree on every graph (no cell grid)."""
    group = view_groups(nodes)
    perm = np.argsort(group, kind="stable")
    return perm[_knn_numba(nodes.pos[perm], k, group[perm], False, grid=False)]


def _median_rate(fn, n: int, repeats: int) -> tuple[float, list[float]]:
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates), rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--hits", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--graph", default="knn16")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--compression", choices=("none", "lzf", "gzip"),
                    help="shard compression instead of the graph config's")
    args = ap.parse_args()
    det = load_detector("dune")
    cfg = load_graph_config(args.graph)
    work = Path(tempfile.mkdtemp(prefix="gnnu-bench-build-"))
    graph = args.graph
    if args.compression:                   # the same config with other shard compression, as a file
        cfg = replace(cfg, compression=args.compression)
        graph = str(work / f"{cfg.name}.yaml")
        Path(graph).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    events = [realistic_event(i, args.hits, det) for i in range(args.events)]
    n_hits = np.array([len(e.hits) for e in events])
    try:
        src = write_hits(work / "events.h5", events, det)
        print(describe())
        print(f"\n{args.events} synthetic track+shower events, hits per event median "
              f"{np.median(n_hits):.0f}; graph config '{cfg.name}'; {args.repeats} repeats, medians\n")
        t0 = time.perf_counter()
        make_graphs(events[:8], det, cfg)      # load or compile the kNN kernels (grid and tree)
        print(f"  warm-up (8 events, loading or compiling the kernels): "
              f"{time.perf_counter() - t0:.1f} s")
        rows = []

        def core():
            for s in range(0, len(events), SUB_BLOCK):
                make_graphs(events[s:s + SUB_BLOCK], det, cfg)
        med, runs = _median_rate(core, args.events, args.repeats)
        rows.append(("make_graphs (features + edges, in memory)", med, runs, "events/s, 1 core"))

        tables = []
        for s in range(0, len(events), SUB_BLOCK):
            sub = events[s:s + SUB_BLOCK]
            cols = {k: np.concatenate([e.hits[k] for e in sub]) for k in sub[0].hits.columns}
            tables.append(node_table(cols, np.repeat(np.arange(len(sub)), [len(e.hits) for e in sub]), det))
        med, runs = _median_rate(lambda: [build_edges(t, cfg.edges, cfg.self_loops) for t in tables],
                                 args.events, args.repeats)
        rows.append(("edges only (the configured builders)", med, runs, "events/s, 1 core"))
        knn_specs = [s for s in cfg.edges if isinstance(s, KnnEdges)]
        for backend in ("numba", "scipy") if knn_specs else ():      # side by side, same events
            spec = replace(knn_specs[0], backend=backend)
            med, runs = _median_rate(lambda: [knn_edges(t, spec) for t in tables],
                                     args.events, args.repeats)
            rows.append((f"kNN alone, backend {backend}", med, runs, "events/s, 1 core"))
            if backend == "numba" and spec.space == "view":        # its k-d tree on every graph
                med, runs = _median_rate(lambda: [_tree_knn(t, spec.k) for t in tables],
                                         args.events, args.repeats)
                rows.append(("kNN alone, numba k-d tree only", med, runs, "events/s, 1 core"))

        def full():
            build_dataset(BuildOptions(inputs=(str(src),), out=str(work / "ds"), graph=graph,
                                       force=True))
        med, runs = _median_rate(full, args.events, args.repeats)
        rows.append(("gnnu-build end to end (read, build, write)", med, runs, "events/s, 1 core"))
        disk = sum(p.stat().st_size for p in (work / "ds").glob("shard-*.h5"))
        print(f"  dataset: {disk / args.events / 1e3:.0f} kB/event on disk "
              f"(compression: {cfg.compression})")

        import torch
        from torch_geometric.loader import DataLoader
        from gnnu.graph.dataset import GraphDataset

        torch.set_num_threads(1)
        for workers in (0, 2):
            ds = GraphDataset(work / "ds", split="all")

            def load():
                for _ in DataLoader(ds, batch_size=args.batch_size, shuffle=True,
                                    num_workers=workers):
                    pass
            med, runs = _median_rate(load, len(ds), args.repeats)
            rows.append((f"DataLoader batch {args.batch_size}, num_workers={workers}", med, runs,
                         "graphs/s"))
        width = max(len(r[0]) for r in rows)
        for name, med, runs, unit in rows:
            print(f"  {name:{width}s}  {med:8.0f} {unit}  (runs: {', '.join(f'{r:.0f}' for r in runs)})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
