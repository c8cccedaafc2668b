"""Simulator speed: events/s per core on the mixed DUNE-like sample (docs/design.md#performance-method target ≥ 200, goal 500).

Times the whole chain (generator → transport → readout) in one process on the default mixed
sample (νμ CC, νe CC, ντ CC, NC round-robin, LBNF-like spectrum), repeats it and quotes the
median; also the share of each stage, the cost of writing the events to a hit file with each
chunk filter (ms/event, kB/event, read-back ms/event), and, with ``--workers``, the
multi-process rate.

    python tools/bench_sim.py --events 200 --repeats 3 [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict

import numpy as np

from _env import describe
from gnnu.detectors import load_detector
from gnnu.io.hitfile import COMPRESSIONS, HitFile, HitFileWriter
from gnnu.sim import generator, simulate, transport
from gnnu.sim.simulate import SimRequest, iter_events


def _timed(stage_times, name, fn):
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        out = fn(*a, **k)
        stage_times[name] += time.perf_counter() - t0
        return out
    return wrapper


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--detector", default="dune")
    args = ap.parse_args()
    det = load_detector(args.detector)
    stage = defaultdict(float)
    # Instrument the stages (single-process runs only).
    simulate.generator.generate = _timed(stage, "generator", generator.generate)
    simulate.transport.run = _timed(stage, "transport", transport.run)
    simulate.READOUTS.register(det.kind, _timed(stage, "readout", simulate.READOUTS[det.kind]),
                               replace=True)

    # Warm-up (untimed in the rates): the first events load the compiled kernels from numba's
    # on-disk cache (or compile them on a machine's first run).
    t0 = time.perf_counter()
    list(iter_events(SimRequest(detector=args.detector, n_events=8, seed=999), det, workers=1))
    warmup_s = time.perf_counter() - t0
    stage.clear()
    rates, hits = [], []
    for r in range(args.repeats):
        req = SimRequest(detector=args.detector, n_events=args.events, seed=1000 + r)
        t0 = time.perf_counter()
        evs = list(iter_events(req, det, workers=1))
        dt = time.perf_counter() - t0
        rates.append(len(evs) / dt)
        hits.extend(len(e.hits) for e in evs)
    total = sum(stage.values())
    print(describe())
    print(f"\nsingle process, {args.events} events × {args.repeats} repeats (mixed flavours, beam spectrum)")
    print(f"  events/s per core: median {statistics.median(rates):.0f} "
          f"(runs: {', '.join(f'{r:.0f}' for r in rates)})")
    print(f"  warm-up (8 events, loading or compiling the kernels): {warmup_s:.1f} s")
    print(f"  hits per event: median {np.median(hits):.0f}, mean {np.mean(hits):.0f}, "
          f"90% {np.percentile(hits, 90):.0f}")
    for name, t in stage.items():
        print(f"  {name:10s} {100 * t / total:5.1f} % of stage time "
              f"({1e3 * t / (args.events * args.repeats):.2f} ms/event)")
    print(f"\nhit-file writing of the last {len(evs)} events (median of {args.repeats})")
    with tempfile.TemporaryDirectory() as tmp:
        for name in COMPRESSIONS:
            write, read = [], []
            for r in range(args.repeats):
                out = os.path.join(tmp, f"{name}-{r}.h5")
                t0 = time.perf_counter()
                with HitFileWriter(out, det, seed=0, compression=name) as w:
                    w.write_all(evs)
                write.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                with HitFile(out) as f:
                    f.read_range(0, len(f))
                read.append(time.perf_counter() - t0)
            n = len(evs)
            print(f"  {name:5s} write {1e3 * statistics.median(write) / n:.2f} ms/event, "
                  f"read back {1e3 * statistics.median(read) / n:.2f} ms/event, "
                  f"{os.path.getsize(out) / n / 1e3:.0f} kB/event")
    if args.workers > 1:
        req = SimRequest(detector=args.detector, n_events=args.events * args.workers, seed=5000)
        t0 = time.perf_counter()
        n = sum(1 for _ in iter_events(req, det, workers=args.workers))
        dt = time.perf_counter() - t0
        print(f"\n{args.workers} workers, {n} events: {n / dt:.0f} events/s "
              f"({n / dt / args.workers:.0f} per worker)")


if __name__ == "__main__":
    main()
