"""GNN cost on the CPU: parameters, FLOPs/event and ms/event (kNN share) per model, forward and
training step, and EdgeConv's max aggregation through a neighbour table vs the scatter form.

Batch of ``--batch`` random point clouds of ``--nodes`` nodes (2-D positions, stored kNN k = 16
edges in random order, as a dataset would give them), fp32; forward in eval mode, training step
= forward + backward of the summed outputs in train mode; medians of ``--repeats`` after one
warm-up. The two EdgeConv aggregations (:mod:`gnnu.models.gnn.ops`) are timed side by side in
the same run: "scatter" disables the neighbour table.

    python tools/bench_models.py --nodes 1000 --batch 8 --repeats 7
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from _env import describe
from gnnu.graph.knn import knn
from gnnu.models import count_parameters, create_model, flops_per_event
from gnnu.models.gnn.ops import KNNGraph


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--features", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, f = args.nodes, args.features

    def graph():
        pos = (rng.normal(size=(n, 2)) * 50).astype(np.float32)
        x = np.concatenate([pos / 50, rng.normal(size=(n, f - 2))], 1).astype(np.float32)
        edges = torch.from_numpy(knn(pos, 16))[:, torch.randperm(n * 16)]
        return Data(x=torch.from_numpy(x), pos=torch.from_numpy(pos), edge_index=edges)

    batch = Batch.from_data_list([graph() for _ in range(args.batch)])
    knn_time = [0.0]
    original = KNNGraph.forward

    def timed(self, *a):
        t0 = time.perf_counter()
        out = original(self, *a)
        knn_time[0] += time.perf_counter() - t0
        return out

    KNNGraph.forward = timed
    print(describe())
    print(f"\nbatch {args.batch} × {n} nodes, fp32, torch threads {torch.get_num_threads()}")

    def median_time(fn) -> tuple[float, float]:
        fn()
        times, knns = [], []
        for _ in range(args.repeats):
            knn_time[0] = 0.0
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
            knns.append(knn_time[0])
        return statistics.median(times) / args.batch * 1e3, statistics.median(knns) / args.batch * 1e3

    print("| model | aggregation | parameters | MFLOP/event | forward ms/event (kNN) | training step ms/event |")
    print("|---|---|---|---|---|---|")
    for name, aggregation in (("edgeconv", "neighbour table"), ("edgeconv", "scatter"),
                              ("dynedgeconv", "neighbour table"), ("dynedgeconv", "scatter"),
                              ("gravnet", "scatter")):
        torch.manual_seed(0)
        model = create_model(name, in_features=f)
        with _aggregation(aggregation):
            model.eval()
            with torch.no_grad():
                fwd, fwd_knn = median_time(lambda: model(batch))
            model.train()

            def step():
                out = model(batch)
                sum(v.float().sum() for v in out.values()).backward()

            train, _ = median_time(step)
            flops = flops_per_event(model, batch)
        print(f"| {name} | {aggregation} | {count_parameters(model):,} | {flops / 1e6:.1f} | "
              f"{fwd:.2f} ({fwd_knn:.2f}) | {train:.2f} |", flush=True)


@contextlib.contextmanager
def _aggregation(kind: str):
    """EdgeConv's max through the neighbour table (default) or the scatter form."""
    from gnnu.models.gnn import edgeconv

    original = edgeconv.neighbour_table
    if kind == "scatter":
        edgeconv.neighbour_table = lambda *a, **k: None
    try:
        yield
    finally:
        edgeconv.neighbour_table = original


if __name__ == "__main__":
    main()
