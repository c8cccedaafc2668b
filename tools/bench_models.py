"""GNN forward cost on the CPU: parameters, FLOPs/event and ms/event (kNN share) per model.

Batch of ``--batch`` random point clouds of ``--nodes`` nodes (2-D positions, stored kNN k = 16
edges in random order, as a dataset would give them), fp32, eval mode; medians of ``--repeats``.

    python tools/bench_models.py --nodes 1000 --batch 8 --repeats 7
"""

from __future__ import annotations

import argparse
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
    print(f"\nbatch {args.batch} × {n} nodes, fp32, eval, torch threads {torch.get_num_threads()}")
    for name in ("edgeconv", "dynedgeconv", "gravnet"):
        model = create_model(name, in_features=f).eval()
        times, knns = [], []
        with torch.no_grad():
            model(batch)
            for _ in range(args.repeats):
                knn_time[0] = 0.0
                t0 = time.perf_counter()
                model(batch)
                times.append(time.perf_counter() - t0)
                knns.append(knn_time[0])
        print(f"  {name:12s} params {count_parameters(model):8d}  FLOPs/event "
              f"{flops_per_event(model, batch) / 1e6:7.1f} M  forward {statistics.median(times) / args.batch * 1e3:7.2f}"
              f" ms/event  (kNN {statistics.median(knns) / args.batch * 1e3:6.2f} ms)")


if __name__ == "__main__":
    main()
