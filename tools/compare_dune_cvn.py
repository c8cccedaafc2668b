"""Realism check: gnnu-simulated events vs DUNE CVN's released pixel maps (docs/design.md#dune-like-lartpc, issue 22).

Reads real events (default: the 400 of ``../shared/data/dune-cvn-finetune``, one directory per
flavour with ``.info`` truth; a single directory such as ``dune-cvn-sample`` works too),
simulates events of the same flavours (CC νμ, CC νe, CC ντ, NC; the detector's beam spectrum
unless ``--energy``) with the full simulator, renders them with the ``dune-cvn`` preset
(3 × 500 × 500, q·255/1000 saturating, window on the true vertex) and compares, per flavour:

- occupancy: non-zero pixels per event (the three views together; quantiles 10/50/90 %) and per
  view (median): the number of nodes a GNN sees in the ``knn16_dune_cvn_pixels`` representation;
- the pixel-value (charge) spectrum of non-zero pixels and its MIP peak: the mode of the values
  of *track-like* pixels (a pixel alone in its column within ±2 time bins, with a non-zero pixel
  in both neighbouring columns within ±2 bins: a thin line crossing the wires), the charge per
  wire of a minimum-ionising track that the plane gains are calibrated against;
- visible-energy proxy: the summed pixel value of the event (three views), quantiles;
- with ``--by-energy``: median occupancy in bins of true neutrino energy (real ``.info`` truth),
  which separates the energy spectrum from the detector response.

Ratios simulated/real come with bootstrap 68 % intervals (both samples resampled). Pass marks:
quantile ratios within 1.5× and the MIP peak within 5 % (issue 22).

    python tools/compare_dune_cvn.py [--real DIR] [--per-flavour 1000] [--seed 0]
                                     [--energy beam|A:B|E] [--by-energy] [--markdown]
                                     [--json OUT.json] [--plot out.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import describe  # noqa: E402

from gnnu.events import Flavour  # noqa: E402
from gnnu.pixelmap import DUNE_CVN, render_sparse, vertex_wire_tick  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
DEFAULT_REAL = SHARED / "dune-cvn-finetune"
FLAVOURS = (Flavour.NUMU_CC, Flavour.NUE_CC, Flavour.NUTAU_CC, Flavour.NC)
QUANTILES = (10, 50, 90)
#: Pass marks of issue 22: occupancy quantiles within this factor, MIP peak within this fraction.
QUANTILE_TOLERANCE = 1.5
MIP_TOLERANCE = 0.05
#: True-energy bins (GeV) of ``--by-energy``.
ENERGY_BINS = (0.5, 2.0, 3.0, 5.0, 10.0, 20.0, 70.0)
#: Track-like pixels below this value are not used for the MIP peak (the hit threshold region).
MIP_SEARCH_MIN = 12


@dataclass
class Sample:
    """Per-event statistics of one sample of dune-cvn pixel maps (real or simulated)."""

    name: str
    flavour: list = field(default_factory=list)        # Flavour code per event
    energy: list = field(default_factory=list)         # true ν energy (GeV), NaN if unknown
    nonzero: list = field(default_factory=list)        # [3] non-zero pixels per view
    charge: list = field(default_factory=list)         # [3] summed pixel value per view
    values: dict = field(default_factory=dict)         # flavour → [256] histogram of pixel values
    track: dict = field(default_factory=dict)          # flavour → [256] histogram, track-like pixels
    seconds_per_event: float = float("nan")

    def add(self, flavour: int, energy: float, maps: np.ndarray) -> None:
        """Add one event's maps, uint8 [3, 500, 500]."""
        self.flavour.append(int(flavour))
        self.energy.append(float(energy))
        self.nonzero.append((maps > 0).sum(axis=(1, 2)))
        self.charge.append(maps.sum(axis=(1, 2), dtype=np.int64))
        v = self.values.setdefault(int(flavour), np.zeros(256, np.int64))
        t = self.track.setdefault(int(flavour), np.zeros(256, np.int64))
        v += np.bincount(maps.reshape(-1), minlength=256)
        t += np.bincount(maps[track_like(maps)], minlength=256)

    def arrays(self):
        """(flavour [n], energy [n], nonzero [n, 3], charge [n, 3]) as arrays."""
        return (np.asarray(self.flavour, np.int64), np.asarray(self.energy, np.float64),
                np.asarray(self.nonzero, np.int64).reshape(-1, 3),
                np.asarray(self.charge, np.int64).reshape(-1, 3))


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


def mip_peak(hist: np.ndarray) -> float:
    """Position of the MIP peak of a track-like pixel-value histogram [256]: the maximum of the
    histogram smoothed over 5 values (above :data:`MIP_SEARCH_MIN`, below saturation), refined by
    a parabola through the log-counts of the maximum and its neighbours."""
    h = np.asarray(hist, np.float64).copy()
    h[:MIP_SEARCH_MIN] = 0
    h[255] = 0
    s = np.convolve(h, np.ones(5) / 5, mode="same")
    k = int(np.argmax(s))
    if s[k] <= 0:
        return float("nan")
    if 0 < k < 255 and min(s[k - 1], s[k + 1]) > 0:
        a, b, c = np.log(s[k - 1:k + 2])
        den = a - 2 * b + c
        if den < 0:
            return float(k + 0.5 * (a - c) / den)
    return float(k)


# -- samples ----------------------------------------------------------------------------------------
def real_directories(root: Path) -> list[Path]:
    """The DUNE CVN source directories under ``root``: its sub-directories holding eventN.gz
    (the per-flavour layout), or ``root`` itself."""
    subs = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("event*.gz")))
    return subs or [root]


def load_real(root: Path, limit: int | None = None) -> Sample:
    """Statistics of every real event under ``root`` (``limit``: first events per directory)."""
    from gnnu.io.dune_cvn import DuneCVNReader

    sample = Sample(f"real ({root.name})")
    for d in real_directories(root):
        reader = DuneCVNReader(d)
        truth = reader.truth()
        n = len(reader) if limit is None else min(limit, len(reader))
        for i in range(n):
            sample.add(truth["flavour"][i], truth["nu_energy"][i], reader.read_maps(i))
    return sample


def simulate(per_flavour: int, seed: int, energy: str = "beam", detector: str = "dune",
             flavours=FLAVOURS) -> Sample:
    """Simulate ``per_flavour`` events of each flavour (round-robin, event i of run ``seed``),
    render them with ``dune-cvn`` on the true vertex and collect their statistics."""
    from gnnu.detectors import load_detector
    from gnnu.sim.simulate import EnergyOption, simulate_event

    det = load_detector(detector)
    option = EnergyOption.parse(energy)
    sample = Sample(f"simulated (seed {seed}, energy {energy})")
    maps = np.zeros(DUNE_CVN.shape, np.uint8)
    t0 = time.perf_counter()
    for i in range(per_flavour * len(flavours)):
        flavour = flavours[i % len(flavours)]
        ev = simulate_event(det, i, flavour, seed, option)
        t = ev.truth
        vtx = vertex_wire_tick(det, (t.vtx_x, t.vtx_y, t.vtx_z), DUNE_CVN.views)
        pixels, values = render_sparse(ev.hits, DUNE_CVN, vertex_pixel=vtx)
        maps[:] = 0
        maps.reshape(-1)[pixels] = values
        sample.add(flavour, t.nu_energy, maps)
    sample.seconds_per_event = (time.perf_counter() - t0) / max(len(sample.flavour), 1)
    return sample


# -- comparison -------------------------------------------------------------------------------------
def _bootstrap_ratio(sim: np.ndarray, real: np.ndarray, stat, rng, n_boot: int = 200):
    """stat(sim)/stat(real) and its bootstrap 16–84 % interval."""
    ratio = stat(sim) / stat(real)
    boots = [stat(rng.choice(sim, len(sim))) / stat(rng.choice(real, len(real)))
             for _ in range(n_boot)]
    lo, hi = np.percentile(boots, [16, 84])
    return float(ratio), float(lo), float(hi)


def compare(real: Sample, sim: Sample, seed: int = 0) -> list[dict]:
    """One row per flavour present in both samples (and 'all'): quantiles of occupancy and
    visible charge, per-view medians, MIP peaks, their ratios with intervals, and pass flags."""
    rng = np.random.default_rng(seed)
    rf, re_, rn, rc = real.arrays()
    sf, se, sn, sc = sim.arrays()
    rows = []
    groups = [(Flavour(f).label, [f]) for f in sorted(set(rf) & set(sf))] + [("all", None)]
    for name, codes in groups:
        rsel = np.ones(len(rf), bool) if codes is None else np.isin(rf, codes)
        ssel = np.ones(len(sf), bool) if codes is None else np.isin(sf, codes)
        rocc, socc = rn[rsel].sum(axis=1), sn[ssel].sum(axis=1)
        rq, sq = rc[rsel].sum(axis=1), sc[ssel].sum(axis=1)
        row = {"flavour": name, "n_real": int(rsel.sum()), "n_sim": int(ssel.sum())}
        for q in QUANTILES:
            stat = (lambda x, q=q: np.percentile(x, q))
            row[f"occ_q{q}"] = (float(stat(rocc)), float(stat(socc)))
            row[f"occ_q{q}_ratio"] = _bootstrap_ratio(socc, rocc, stat, rng)
            row[f"charge_q{q}"] = (float(stat(rq)), float(stat(sq)))
            row[f"charge_q{q}_ratio"] = _bootstrap_ratio(sq, rq, stat, rng)
        row["view_median"] = (np.median(rn[rsel], axis=0).tolist(), np.median(sn[ssel], axis=0).tolist())
        rt = sum(real.track[c] for c in (codes or real.track))
        st = sum(sim.track[c] for c in (codes or sim.track))
        rv = sum(real.values[c] for c in (codes or real.values))
        sv = sum(sim.values[c] for c in (codes or sim.values))
        row["mip_peak"] = (mip_peak(rt), mip_peak(st))
        row["mip_ratio"] = row["mip_peak"][1] / row["mip_peak"][0]
        row["value_median"] = (_hist_quantile(rv, 0.5), _hist_quantile(sv, 0.5))
        row["saturated"] = (float(rv[255] / max(rv[1:].sum(), 1)), float(sv[255] / max(sv[1:].sum(), 1)))
        row["window_empty_sim"] = int((sn[ssel].sum(axis=1) == 0).sum())
        row["pass"] = bool(all(1 / QUANTILE_TOLERANCE <= row[f"occ_q{q}_ratio"][0] <= QUANTILE_TOLERANCE
                               for q in QUANTILES)
                           and abs(row["mip_ratio"] - 1) <= MIP_TOLERANCE)
        rows.append(row)
    return rows


def _hist_quantile(hist: np.ndarray, q: float) -> float:
    """Quantile ``q`` of the non-zero values of a [256] value histogram."""
    h = np.asarray(hist[1:], np.float64)
    c = np.cumsum(h)
    return float(1 + np.searchsorted(c, q * c[-1])) if c[-1] > 0 else float("nan")


def by_energy(real: Sample, sim: Sample) -> list[dict]:
    """Median occupancy (three views) per flavour and true-energy bin, real vs simulated."""
    rf, re_, rn, _ = real.arrays()
    sf, se, sn, _ = sim.arrays()
    rows = []
    for f in sorted(set(rf) & set(sf)):
        for lo, hi in zip(ENERGY_BINS[:-1], ENERGY_BINS[1:]):
            r = rn[(rf == f) & (re_ >= lo) & (re_ < hi)].sum(axis=1)
            s = sn[(sf == f) & (se >= lo) & (se < hi)].sum(axis=1)
            rows.append({"flavour": Flavour(f).label, "bin": (lo, hi), "n_real": len(r), "n_sim": len(s),
                         "real": float(np.median(r)) if len(r) else float("nan"),
                         "sim": float(np.median(s)) if len(s) else float("nan")})
    return rows


def energy_quantiles(sample: Sample) -> dict[str, list[float]]:
    """True ν energy quantiles (10/50/90 %) per flavour (GeV)."""
    f, e, _, _ = sample.arrays()
    return {Flavour(c).label: np.nanpercentile(e[f == c], QUANTILES).tolist()
            for c in sorted(set(f)) if np.isfinite(e[f == c]).any()}


def _r(t) -> str:
    return f"{t[0]:.2f} [{t[1]:.2f}, {t[2]:.2f}]"


def report(real: Sample, sim: Sample, rows: list[dict], markdown: bool = False,
           energy_rows: list[dict] | None = None) -> str:
    """The comparison as text (or a Markdown table)."""
    out = []
    if markdown:
        out.append("| flavour | events real / sim | occupancy q10 real / sim (ratio) | q50 | q90 | "
                   "MIP peak real / sim (ratio) | summed charge q50 real / sim (ratio) | pass |")
        out.append("|---|---|---|---|---|---|---|---|")
        for r in rows:
            occ = [f"{r[f'occ_q{q}'][0]:.0f} / {r[f'occ_q{q}'][1]:.0f} ({_r(r[f'occ_q{q}_ratio'])})"
                   for q in QUANTILES]
            out.append(f"| {r['flavour']} | {r['n_real']} / {r['n_sim']} | " + " | ".join(occ)
                       + f" | {r['mip_peak'][0]:.1f} / {r['mip_peak'][1]:.1f} ({r['mip_ratio']:.3f}) | "
                       f"{r['charge_q50'][0]:.0f} / {r['charge_q50'][1]:.0f} ({_r(r['charge_q50_ratio'])}) | "
                       f"{'yes' if r['pass'] else 'no'} |")
    else:
        out.append(f"{real.name}: {len(real.flavour)} events; {sim.name}: {len(sim.flavour)} events "
                   f"({1e3 * sim.seconds_per_event:.1f} ms/event simulated + rendered)")
        out.append("ratios simulated/real with bootstrap 68 % intervals; pass: occupancy quantiles "
                   f"within {QUANTILE_TOLERANCE}x, MIP peak within {100 * MIP_TOLERANCE:.0f} %")
        for r in rows:
            out.append("")
            out.append(f"[{r['flavour']}] real {r['n_real']}, simulated {r['n_sim']}"
                       f" (simulated with an empty window: {r['window_empty_sim']})"
                       f" -> {'PASS' if r['pass'] else 'off'}")
            for q in QUANTILES:
                out.append(f"  occupancy q{q:<2d}   real {r[f'occ_q{q}'][0]:8.0f}  sim {r[f'occ_q{q}'][1]:8.0f}"
                           f"  ratio {_r(r[f'occ_q{q}_ratio'])}")
            for q in QUANTILES:
                out.append(f"  sum charge q{q:<2d} real {r[f'charge_q{q}'][0]:8.0f}  sim "
                           f"{r[f'charge_q{q}'][1]:8.0f}  ratio {_r(r[f'charge_q{q}_ratio'])}")
            out.append("  pixels per view (median U, V, Z): real "
                       + ", ".join(f"{v:.0f}" for v in r["view_median"][0]) + "; sim "
                       + ", ".join(f"{v:.0f}" for v in r["view_median"][1]))
            out.append(f"  MIP peak (track-like pixels) real {r['mip_peak'][0]:.1f}  sim "
                       f"{r['mip_peak'][1]:.1f}  ratio {r['mip_ratio']:.3f}; median pixel value real "
                       f"{r['value_median'][0]:.0f} sim {r['value_median'][1]:.0f}; saturated real "
                       f"{100 * r['saturated'][0]:.1f} % sim {100 * r['saturated'][1]:.1f} %")
        eq_r, eq_s = energy_quantiles(real), energy_quantiles(sim)
        if eq_r:
            out.append("")
            out.append("true ν energy quantiles 10/50/90 % (GeV):")
            for k in eq_r:
                s = eq_s.get(k, [float("nan")] * 3)
                out.append(f"  {k:9s} real " + " ".join(f"{v:6.2f}" for v in eq_r[k])
                           + "   sim " + " ".join(f"{v:6.2f}" for v in s))
    if energy_rows:
        out.append("")
        out.append("median occupancy (three views) per true-energy bin: real / simulated (events)")
        for r in energy_rows:
            out.append(f"  {r['flavour']:9s} {r['bin'][0]:5.1f}-{r['bin'][1]:5.1f} GeV  "
                       f"{r['real']:7.0f} ({r['n_real']:3d}) / {r['sim']:7.0f} ({r['n_sim']:4d})")
    return "\n".join(out)


def plot(real: Sample, sim: Sample, path: str) -> None:
    """Occupancy distributions and track-like pixel spectra per flavour, real vs simulated."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rf, _, rn, _ = real.arrays()
    sf, _, sn, _ = sim.arrays()
    fig, ax = plt.subplots(2, 4, figsize=(18, 8))
    bins = np.logspace(1.5, 4.7, 33)
    for j, f in enumerate(FLAVOURS):
        a = ax[0, j]
        a.hist(rn[rf == f].sum(axis=1), bins, histtype="step", lw=2, density=True, label="real")
        a.hist(sn[sf == f].sum(axis=1), bins, histtype="step", ls="--", density=True, label="simulated")
        a.set(xscale="log", xlabel="non-zero pixels (3 views)", title=f.pretty)
        a.legend(fontsize=8)
        b = ax[1, j]
        for s, ls in ((real, "-"), (sim, "--")):
            h = s.track.get(int(f))
            if h is not None and h.sum():
                b.plot(np.arange(256), h / h.sum(), ls=ls, label=s.name.split(" ")[0])
        b.set(xlabel="track-like pixel value", xlim=(0, 160), yscale="log")
        b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=DEFAULT_REAL,
                    help=f"real events: a directory of per-flavour directories or of eventN.gz "
                         f"(default {DEFAULT_REAL})")
    ap.add_argument("--per-flavour", type=int, default=1000, help="simulated events per flavour")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--energy", default="beam", help="beam (default), a range A:B or a value, GeV")
    ap.add_argument("--by-energy", action="store_true", help="median occupancy per true-energy bin")
    ap.add_argument("--markdown", action="store_true", help="also print the Markdown table")
    ap.add_argument("--json", help="write the comparison rows here")
    ap.add_argument("--plot", help="save a PNG comparison figure here")
    args = ap.parse_args(argv)

    if not args.real.is_dir():
        raise SystemExit(f"{args.real}: not a directory (give the real events with --real DIR)")
    real = load_real(args.real)
    sim = simulate(args.per_flavour, args.seed, args.energy)
    rows = compare(real, sim)
    print(describe())
    print()
    print(report(real, sim, rows, energy_rows=by_energy(real, sim) if args.by_energy else None))
    if args.markdown:
        print()
        print(report(real, sim, rows, markdown=True))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    if args.plot:
        plot(real, sim, args.plot)
        print(f"\nplot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
