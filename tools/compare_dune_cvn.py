"""Realism check: gnnu-simulated events vs DUNE CVN's released pixel maps (docs/design.md#dune-like-lartpc).

Simulates N events (mixed flavours: CC νμ, CC νe, CC ντ, NC round-robin, the detector's beam
spectrum) with the full simulator, renders them with the ``dune-cvn`` preset (3 × 500 × 500,
q·255/1000 saturating) and prints, side by side with the real sample:

- non-zero pixels per view (quantiles; docs/design.md#dune-like-lartpc quotes ~200–2000 for the real events);
- the pixel-value spectrum of non-zero pixels (quantiles and a coarse histogram);
- the spectrum of *track-like* pixels (a pixel alone in its column within ±2 time bins, with a
  non-zero pixel in both neighbouring columns within ±2 bins: a thin line crossing the wires),
  whose lower peak is the minimum-ionising charge per wire — the number the plane gains are
  calibrated against.

    python tools/compare_dune_cvn.py [--events 200] [--seed 0] [--sample DIR] [--plot out.png]
                                     [--centre {vertex,centroid}]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from _env import describe
from gnnu.detectors import load_detector
from gnnu.images import DUNE_CVN, render, vertex_wire_tick

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SAMPLE = REPO.parent / "shared" / "data" / "dune-cvn-sample"
QUANTILES = (5, 25, 50, 75, 95)
VALUE_BINS = (1, 5, 9, 17, 33, 65, 129, 255, 256)     # [lo, hi) edges of the coarse histogram


def load_real(sample: Path) -> np.ndarray:
    """All ``eventN.gz`` maps of the sample, uint8 [n, 3, 500, 500], in N order."""
    files = sorted(sample.glob("event*.gz"), key=lambda f: int(f.name[5:-3]))
    if not files:
        raise SystemExit(f"{sample}: no eventN.gz files (give the sample with --sample DIR)")
    return np.stack([np.frombuffer(zlib.decompress(f.read_bytes()), np.uint8).reshape(3, 500, 500)
                     for f in files])


def simulate_maps(n_events: int, seed: int, centre: str, detector_name: str = "dune"
                  ) -> tuple[np.ndarray, float]:
    """Simulate and render ``n_events`` events (flavours round-robin).

    Returns the maps, uint8 [n, 3, 500, 500], and the time per event (s).
    """
    from gnnu.sim.simulate import NEUTRINO_FLAVOURS, simulate_event

    det = load_detector(detector_name)
    preset = DUNE_CVN if centre == "vertex" else dataclasses.replace(DUNE_CVN, centring="centroid")
    maps = np.zeros((n_events, *preset.shape), np.uint8)
    t0 = time.perf_counter()
    for i in range(n_events):
        ev = simulate_event(det, i, NEUTRINO_FLAVOURS[i % len(NEUTRINO_FLAVOURS)], seed)
        t = ev.truth
        vtx = vertex_wire_tick(det, (t.vtx_x, t.vtx_y, t.vtx_z), preset.views)
        maps[i] = render(ev.hits, preset, vertex_pixel=vtx)
    return maps, (time.perf_counter() - t0) / max(n_events, 1)


def track_like(maps: np.ndarray) -> np.ndarray:
    """Boolean mask of track-like pixels of maps [..., wires, time] (see module docstring)."""
    nz = maps > 0
    pad = [(0, 0)] * (nz.ndim - 2) + [(1, 1), (2, 2)]
    p = np.pad(nz, pad)
    centre = p[..., 1:-1, 2:-2]
    same_col = p[..., 1:-1, 0:-4] | p[..., 1:-1, 1:-3] | p[..., 1:-1, 3:-1] | p[..., 1:-1, 4:]

    def near(shift):
        col = p[..., 1 + shift:p.shape[-2] - 1 + shift, :]
        return (col[..., 0:-4] | col[..., 1:-3] | col[..., 2:-2] | col[..., 3:-1] | col[..., 4:])

    return centre & ~same_col & near(-1) & near(1)


def summarise(maps: np.ndarray) -> dict:
    """Statistics of maps [n, 3, W, T]: non-zero pixels per view, value spectra."""
    values = maps[maps > 0]
    tl = track_like(maps)
    return {
        "n": len(maps),
        "nonzero": (maps > 0).sum(axis=(2, 3)),                     # [n, 3]
        "values": values,
        "track_values": maps[tl],
        "track_median_per_view": [float(np.median(maps[:, v][tl[:, v]])) if tl[:, v].any()
                                  else float("nan") for v in range(maps.shape[1])],
        "saturated": float(np.mean(values == 255)) if len(values) else float("nan"),
    }


def _q(x) -> str:
    if len(x) == 0:
        return "  (none)"
    return " ".join(f"{v:7.0f}" for v in np.percentile(x, QUANTILES))


def report(real: dict, sim: dict) -> str:
    """Side-by-side text table of two :func:`summarise` results."""
    head = "quantiles " + " ".join(f"{q:>6d}%" for q in QUANTILES)
    lines = [f"real events: {real['n']}, simulated events: {sim['n']}", "",
             f"non-zero pixels per view            {head}"]
    for v, name in enumerate("UVZ"):
        lines.append(f"  view {name}  real                      {_q(real['nonzero'][:, v])}")
        lines.append(f"  view {name}  simulated                 {_q(sim['nonzero'][:, v])}")
    rm = np.median(real["nonzero"], axis=0)
    sm = np.median(sim["nonzero"], axis=0)
    lines.append("  median ratio simulated/real (U, V, Z): "
                 + ", ".join(f"{s / r:.2f}" for s, r in zip(sm, rm)))
    lines += ["", f"pixel values (non-zero pixels)      {head}",
              f"  real                                {_q(real['values'])}",
              f"  simulated                           {_q(sim['values'])}",
              f"  saturated (255): real {100 * real['saturated']:.1f} %, "
              f"simulated {100 * sim['saturated']:.1f} %",
              "", f"track-like pixel values (MIP scale)  {head}",
              f"  real                                {_q(real['track_values'])}",
              f"  simulated                           {_q(sim['track_values'])}",
              "  median per view (U, V, Z): real "
              + ", ".join(f"{v:.0f}" for v in real["track_median_per_view"]) + "; simulated "
              + ", ".join(f"{v:.0f}" for v in sim["track_median_per_view"]),
              "", "pixel-value histogram (fraction of non-zero pixels)",
              "  value range     real   simulated"]
    for lo, hi in zip(VALUE_BINS[:-1], VALUE_BINS[1:]):
        fr = np.mean((real["values"] >= lo) & (real["values"] < hi))
        fs = np.mean((sim["values"] >= lo) & (sim["values"] < hi))
        label = f"{lo}" if hi == lo + 1 else f"{lo}-{hi - 1}"
        lines.append(f"  {label:>9s}     {fr:6.3f}   {fs:6.3f}")
    return "\n".join(lines)


def _median_and_busiest(counts: np.ndarray) -> tuple[int, int]:
    """Indices of the event of median and of largest ``counts``."""
    order = np.argsort(counts, kind="stable")
    return int(order[len(order) // 2]), int(order[-1])


def plot(real_maps, sim_maps, real: dict, sim: dict, path: str):
    """Comparison figure: non-zero counts, value spectra, one real and one simulated event."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(16, 10))
    bins = np.logspace(1, 4, 31)
    for v, name in enumerate("UVZ"):
        ax[0, 0].hist(real["nonzero"][:, v], bins, histtype="step", lw=2, density=True,
                      label=f"real {name}", color=f"C{v}")
        ax[0, 0].hist(sim["nonzero"][:, v], bins, histtype="step", ls="--", density=True,
                      label=f"sim {name}", color=f"C{v}")
    ax[0, 0].set(xscale="log", xlabel="non-zero pixels per view", ylabel="density")
    ax[0, 0].legend(fontsize=8)
    vb = np.arange(0, 257, 4)
    for key, title, a in (("values", "all non-zero pixels", ax[0, 1]),
                          ("track_values", "track-like pixels", ax[0, 2])):
        a.hist(real[key], vb, histtype="step", lw=2, density=True, label="real")
        a.hist(sim[key], vb, histtype="step", ls="--", density=True, label="simulated")
        a.set(xlabel="pixel value", ylabel="density", title=title, yscale="log")
        a.legend()
    real_mid, _ = _median_and_busiest(real["nonzero"][:, 2])
    sim_mid, sim_max = _median_and_busiest(sim["nonzero"][:, 2])
    panels = ((ax[1, 0], real_maps[real_mid, 2], f"real event {real_mid} (median activity), Z"),
              (ax[1, 1], sim_maps[sim_mid, 2], f"simulated event {sim_mid} (median activity), Z"),
              (ax[1, 2], sim_maps[sim_max, 2], f"simulated event {sim_max} (busiest), Z"))
    for a, m, title in panels:
        a.imshow(m.T, origin="lower", cmap="gray_r", vmin=0, vmax=120, interpolation="nearest")
        a.set(title=title, xlabel="wire", ylabel="time bin")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200, help="simulated events (default 200)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE,
                    help=f"directory of eventN.gz (default {DEFAULT_SAMPLE})")
    ap.add_argument("--centre", choices=("vertex", "centroid"), default="vertex",
                    help="window centre of the simulated maps (default: true vertex)")
    ap.add_argument("--plot", help="save a PNG comparison figure here")
    args = ap.parse_args(argv)

    real_maps = load_real(args.sample)
    sim_maps, s_per_event = simulate_maps(args.events, args.seed, args.centre)
    real, sim = summarise(real_maps), summarise(sim_maps)
    print(describe())
    print(f"sample: {args.sample}; simulation + rendering {1e3 * s_per_event:.1f} ms/event; "
          f"window centre: {args.centre}\n")
    print(report(real, sim))
    if args.plot:
        plot(real_maps, sim_maps, real, sim, args.plot)
        print(f"\nplot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
