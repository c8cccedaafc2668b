"""Dynamic EdgeConv's feature-space kNN: the projection-pruned search against the matrix products.

Simulates ``--events`` DUNE-like events (seed ``--seed``, as ``tools/bench.py``), takes the first
``--batch`` of them, trains a ``dynedgeconv`` model on that batch for ``--steps`` AdamW steps (so
the features are not those of random weights) and records the inputs of its feature-space kNN
(64- and 128-D). Per graph of at least ``--min-points`` points it prints the share of variance
its lead principal axes hold and the time of :func:`gnnu.graph.bruteforce.knn_projected` and of
:func:`~gnnu.graph.bruteforce.knn_matmul` (k = 16, in-process, alternated, medians of
``--repeats``; both give the exact float64 neighbours up to near-ties, checked). The same for
isotropic Gaussian points (``--iso-points``), where the lead axes hold little of the variance.

    python tools/bench_knn_features.py --events 32 --batch 8 --steps 20 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _env import describe
from bench import setup_model, simulated_dataset
from gnnu.graph import bruteforce
from gnnu.models.gnn.dynedgeconv import DynamicEdgeConv


def features(args) -> list[tuple[int, np.ndarray, torch.Tensor]]:
    """(dimensions, graph pointers, points) of every feature-space kNN input of the trained model."""
    with tempfile.TemporaryDirectory(prefix="gnnu-bench-knn-") as tmp:
        data = simulated_dataset(Path(tmp), args.events, args.seed)
        row = setup_model("dynedgeconv", data, argparse.Namespace(batch=args.batch, precision="fp32",
                                                                   nodes_per_event=None), torch.device("cpu"))
        for _ in range(args.steps):
            row["step_fn"]()
    seen = []

    def keep(module, inputs):
        x, batch = inputs[0], inputs[1]
        knn_input = inputs[2] if len(inputs) > 2 else None
        if knn_input is None and x.shape[1] > bruteforce.EXACT_MAX_DIM:
            ptr = np.concatenate([[0], np.cumsum(np.bincount(batch.numpy()))])
            seen.append((x.shape[1], ptr, x.detach().contiguous().clone()))

    hooks = [m.register_forward_pre_hook(keep) for m in row["model_fn"]().modules()
             if isinstance(m, DynamicEdgeConv)]
    row["infer_fn"]()
    for h in hooks:
        h.remove()
    return seen


def timed_pair(x: torch.Tensor, repeats: int) -> tuple[float, float, bool]:
    """Median seconds of knn_projected (guard off) and knn_matmul on one graph, alternated; equal."""
    n = len(x)
    ptr, count = np.array([0, n]), np.array([16])
    a, b = np.empty(16 * n, np.int64), np.empty(16 * n, np.int64)
    guard = bruteforce.PROJECTED_MIN_VARIANCE
    bruteforce.PROJECTED_MIN_VARIANCE = 0.0
    try:
        tp, tm = [], []
        for r in range(repeats + 1):
            t = time.perf_counter()
            bruteforce.knn_projected(x, ptr, count, False, a)
            tp.append(time.perf_counter() - t)
            t = time.perf_counter()
            bruteforce.knn_matmul(x, ptr, count, False, b)
            tm.append(time.perf_counter() - t)
    finally:
        bruteforce.PROJECTED_MIN_VARIANCE = guard
    return statistics.median(tp[1:]), statistics.median(tm[1:]), bool((a == b).all())


def lead_share(x: torch.Tensor) -> float:
    """Share of the variance on knn_projected's default lead axes."""
    c = x.double() - x.double().mean(0)
    ev = torch.linalg.eigvalsh(c.T @ c)
    lead = max(8, x.shape[1] // 8)
    return float(ev[-lead:].sum() / ev.sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20, help="training steps before recording the features")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--min-points", type=int, default=bruteforce.PROJECTED_MIN_POINTS)
    ap.add_argument("--iso-points", default="3000", help="sizes of the isotropic 64-D clouds")
    args = ap.parse_args()
    print(describe())
    print("\n| features | dimensions | points | lead axes' variance share | projected ms | matrix products ms "
          "| projected speed-up | same neighbours |\n|---|---|---|---|---|---|---|---|")
    rows = [("model, after %d steps" % args.steps, dim, x[ptr[g]:ptr[g + 1]].contiguous())
            for dim, ptr, x in features(args) for g in range(len(ptr) - 1)
            if ptr[g + 1] - ptr[g] >= args.min_points]
    rng = np.random.default_rng(args.seed)
    rows += [("isotropic Gaussian", 64, torch.from_numpy(rng.normal(size=(int(n), 64)).astype(np.float32)))
             for n in args.iso_points.split(",") if n]
    for label, dim, x in rows:
        tp, tm, same = timed_pair(x, args.repeats)
        print(f"| {label} | {dim} | {len(x):,} | {lead_share(x):.2f} | {tp * 1e3:.1f} | {tm * 1e3:.1f} | "
              f"{tm / tp:.2f}× | {'yes' if same else 'no (near-ties)'} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
