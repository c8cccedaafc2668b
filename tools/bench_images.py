"""Timing of the image side (issue #5): pixel-map rendering alone, per preset, and the image
data loader that feeds the CNNs.

What it measures, in one run, on simulated events (four neutrino flavours round-robin for DUNE;
CC numu, CC nue, NC and cosmic for NOvA; seed ``--seed``), each built with the detector's
default graph config into a temporary dataset (train split only):

- *render only*: :func:`gnnu.pixelmap.render` on hits already in memory (the dataset's stored
  hits read once beforehand, vertex pixels precomputed), i.e. binning + charge scaling + the
  dense uint8 map, per preset: ``dune-cvn`` (3 × 500 × 500) and ``resnet-rgb`` (3 × 224 × 224)
  on DUNE events, ``nova-cvn`` (2 × 100 × 80) on NOvA events; events/s = events / median of
  ``--repeats`` passes over all events (``--warmup`` passes first, not counted);
- *read + render*: :meth:`ImageDataset.__getitem__` (HDF5 read of the event's hits, render,
  labels to tensors), single process;
- *loader*: ``gnnu.train.data.make_loader`` over the whole split with ``--batch`` events per
  batch and each of ``--workers`` worker counts (reading, rendering, collating; worker start-up
  included, as in one epoch).

Prints the machine, versions and the exact command first, then one Markdown table.

    python tools/bench_images.py --events 64 --nova-events 64 --repeats 3 --workers 0,2
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

#: Presets timed on each detector's events.
PRESETS = {"dune": ("dune-cvn", "resnet-rgb"), "nova": ("nova-cvn",)}


def simulated_dataset(root: Path, detector: str, events: int, seed: int) -> Path:
    """``events`` simulated events of ``detector`` → default graph dataset ``root/graphs``
    (events that leave no hit are skipped and counted by the build; the table gives the number
    of events timed)."""
    from gnnu.detectors import load_detector
    from gnnu.events import Flavour
    from gnnu.graph.build import BuildOptions, build_dataset
    from gnnu.io.hitfile import write_hits
    from gnnu.sim.simulate import NEUTRINO_FLAVOURS, simulate_event

    det = load_detector(detector)
    flavours = (NEUTRINO_FLAVOURS if detector == "dune"
                else (Flavour.NUMU_CC, Flavour.NUE_CC, Flavour.NC, Flavour.COSMIC))
    evs = [simulate_event(det, i, flavours[i % len(flavours)], seed) for i in range(events)]
    root.mkdir(parents=True, exist_ok=True)
    write_hits(root / "events.h5", evs, det)
    build_dataset(BuildOptions(inputs=(str(root / "events.h5"),), out=str(root / "graphs"),
                               split=(1.0, 0.0, 0.0), skip_bad=True))     # events without hits
    return root / "graphs"


def median_rate(fn, n: int, warmup: int, repeats: int) -> float:
    """n / median seconds of ``repeats`` calls of ``fn`` (after ``warmup`` untimed calls)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def bench_preset(data: Path, preset: str, args) -> dict:
    from gnnu.images.dataset import ImageDataset
    from gnnu.pixelmap import render
    from gnnu.train.data import make_loader

    ds = ImageDataset(data, "train", preset)
    n = len(ds)
    events = []                                    # (render columns, vertex pixels or None)
    for i in range(n):
        f, a, b = ds.index.nodes(i)
        cols = ds.frame.columns(f["nodes/view"][a:b], f["nodes/hit"][a:b])
        vtx = ds._vertex[i] if ds._vertex is not None and np.isfinite(ds._vertex[i]).all() else None
        events.append(({k: np.asarray(v) for k, v in cols.items()}, vtx))
    hits = sum(len(c["view"]) for c, _ in events) / n
    nonzero = float(np.mean([np.count_nonzero(ds.render(i)) for i in range(n)]))
    row = {"preset": preset, "shape": "×".join(map(str, ds.shape)), "events": n, "hits": hits,
           "nonzero": nonzero,
           "render": median_rate(lambda: [render(c, ds.preset, vertex_pixel=v) for c, v in events],
                                 n, args.warmup, args.repeats),
           "getitem": median_rate(lambda: [ds[i] for i in range(n)], n, args.warmup, args.repeats)}
    for w in args.worker_counts:
        def one_epoch(w=w):
            loader = make_loader(ds, args.batch, shuffle=False, num_workers=w)
            assert sum(int(b["flavour"].numel()) for b in loader) == n
        row[f"loader{w}"] = median_rate(one_epoch, n, min(args.warmup, 1), args.repeats)
    ds.close()
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=64, help="simulated DUNE-like events")
    ap.add_argument("--nova-events", type=int, default=64, help="simulated NOvA-like events")
    ap.add_argument("--batch", type=int, default=16, help="events per loader batch")
    ap.add_argument("--workers", default="0,2", help="loader worker counts, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    args.worker_counts = [int(w) for w in args.workers.split(",") if w != ""]
    print(describe())
    print(f"torch threads {torch.get_num_threads()}, batch {args.batch}, repeats {args.repeats} "
          f"(medians), warmup {args.warmup}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="gnnu-bench-images-") as tmp:
        for detector, n in (("dune", args.events), ("nova", args.nova_events)):
            if n <= 0:
                continue
            t0 = time.perf_counter()
            data = simulated_dataset(Path(tmp) / detector, detector, n, args.seed)
            from gnnu.graph.dataset import GraphDataset

            kept = len(GraphDataset(data, "train"))
            print(f"data: {n} {detector} events simulated, {kept} with hits built "
                  f"({time.perf_counter() - t0:.0f} s to simulate and build)", flush=True)
            for preset in PRESETS[detector]:
                rows.append((detector, bench_preset(data, preset, args)))
    loaders = [f"loader {w} workers events/s" for w in args.worker_counts]
    print("\n| detector | preset | map | events | hits/event | non-zero pixels/event | render only events/s "
          "| read + render events/s | " + " | ".join(loaders) + " |")
    print("|---" * (8 + len(loaders)) + "|")
    for detector, r in rows:
        print(f"| {detector} | {r['preset']} | {r['shape']} | {r['events']} | {r['hits']:,.0f} | "
              f"{r['nonzero']:,.0f} | {r['render']:,.0f} | {r['getitem']:,.0f} | "
              + " | ".join(f"{r[f'loader{w}']:,.0f}" for w in args.worker_counts) + " |")


if __name__ == "__main__":
    main()
