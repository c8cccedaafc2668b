"""Segmented-scintillator readout: energy deposits → light in each cell → hits (PE, ns).

Chain (every number from ``detector.config``; cm, ns, MeV, PE):

1. Each deposit is placed in its cell (:meth:`gnnu.detectors.scintillator.Scintillator.locate`):
   plane from z, cell from the view's transverse coordinate. Deposits in a PVC wall or outside
   the cells are dead (no light).
2. The transport ran in the PVC + scintillator mixture, so a deposit inside the scintillator is
   scaled by the electron-density ratio (ρ·Z/A)_scint / (ρ·Z/A)_mixture: the energy the
   scintillator itself receives along that step (:func:`scintillator_energy`).
3. Birks quenching: visible energy E_q = E / (1 + kB·dE/dx) with dE/dx = E/dx in the
   scintillator (``material.birks_kb_cm_per_mev``; point deposits, dx = 0, use
   ``readout.point_dedx_mev_per_cm``) (:func:`quenched_energy`).
4. Light collected at the readout end: mean PE = E_q · yield · A(d)/A(0), d = distance from the
   deposit to the cell's readout end, with the fibre attenuation of :func:`attenuation`.
5. Per cell, light arriving within ``hit_merge_ns`` of the previous arrival forms one hit
   (arrival = deposit time + d / fibre light speed). The hit's photoelectron count is Poisson
   with the summed mean; then Gaussian electronics noise (``noise_pe``), digitisation to
   1/``adc_per_pe`` PE, the threshold ``threshold_pe``, and the readout window.
6. Hit time = mean arrival time (weighted by the expected light) + Gaussian
   ``time_resolution_ns``; width = √(weighted arrival-time variance + resolution²) in ns.

Hit columns: ``view`` (0 XZ, 1 YZ), ``wire`` (cell number), ``plane``, ``time`` (ns), ``charge``
(PE), ``width`` (ns) and truth ``x, y, z`` (light-weighted mean position, cm), ``particle`` (the
track that gave the most light), ``energy`` (MeV deposited in the scintillator, before
quenching). Hits are sorted by (view, plane, cell, time).

Simplifications (deliberate, documented):

- The light of one hit is a single Poisson draw (the sum of its deposits' Poisson means); no APD
  gain fluctuations (excess noise), no photon-statistics of the scintillation itself, no
  saturation of the electronics.
- The arrival time uses the direct fibre path only; the light taking the loop arrives later but
  is counted in the same hit. No scintillation decay time, no pulse shape: the hit time is the
  light-weighted mean arrival smeared by the time resolution.
- No APD dark-noise or electronics-noise hits and no cross-talk; dead walls are the cells'
  geometric PVC shell only (no module gaps).
- The energy scaling of step 2 uses the mean electron density (it ignores the slightly different
  ln term of Bethe–Bloch in PVC and scintillator): a deposit in the mixture carries the mean
  loss of the mixture, and the scintillator gets its electron-density share.
"""

from __future__ import annotations

import numpy as np

from ..events import HIT_COLUMNS, Hits
from .records import READOUTS, Deposits

#: Hit columns this readout fills, in the data model's order (``plane`` included).
COLUMNS = tuple(HIT_COLUMNS)


def attenuation(distance_cm, readout, cell_length_cm: float) -> np.ndarray:
    """Relative light collected from distance ``distance_cm`` (any shape, cm) to the readout end
    of a cell ``cell_length_cm`` long: A(d)/A(0), 1 at d = 0 (``readout``: the
    :class:`~gnnu.detectors.scintillator.ScintReadout` section).

    A(d) = Σ_k w_k [exp(−d/λ_k) + exp(−(2L − d)/λ_k)] for a looped fibre (light also travels the
    other way round the loop: to the far end and back), or Σ_k w_k exp(−d/λ_k) without the loop.
    """
    def collected(dist):
        out = np.zeros(np.shape(dist))
        for lam, w in zip(readout.attenuation_lengths_cm, readout.attenuation_weights):
            out = out + w * np.exp(-dist / lam)
            if readout.looped_fibre:
                out = out + w * np.exp(-(2.0 * cell_length_cm - dist) / lam)
        return out

    return collected(np.asarray(distance_cm, np.float64)) / collected(0.0)


def scintillator_energy(de_mev, config) -> np.ndarray:
    """Energy (MeV, shape of ``de_mev``) that the scintillator receives for a deposit ``de_mev``
    computed in the transport mixture: de · (ρ·Z/A)_scint / (ρ·Z/A)_mixture."""
    ro, mat = config.readout, config.material
    scale = (ro.scintillator_density_g_cm3 * ro.scintillator_z_over_a
             / (mat.density_g_cm3 * mat.z_over_a))
    return np.asarray(de_mev, np.float64) * scale


def quenched_energy(e_mev, dx_cm, config) -> np.ndarray:
    """Birks-quenched visible energy E / (1 + kB·dE/dx) (MeV) of scintillator deposits ``e_mev``
    over steps ``dx_cm`` (cm; 0 = point deposit, quenched at ``point_dedx_mev_per_cm``)."""
    e = np.asarray(e_mev, np.float64)
    dx = np.asarray(dx_cm, np.float64)
    dedx = np.where(dx > 0, e / np.where(dx > 0, dx, 1.0), config.readout.point_dedx_mev_per_cm)
    return e / (1.0 + config.material.birks_kb_cm_per_mev * dedx)


def _empty() -> dict[str, np.ndarray]:
    return {k: np.zeros(0, HIT_COLUMNS[k][0]) for k in COLUMNS}


def _dominant(hit: np.ndarray, track: np.ndarray, weight: np.ndarray, n_hits: int) -> np.ndarray:
    """Per hit, the track with the largest summed ``weight`` (ties: the smaller track id).
    ``hit``, ``track``, ``weight`` [n] per deposit; returns int32 [n_hits]."""
    span = int(track.max()) + 2                             # track ids ≥ −1
    key, inverse = np.unique(hit * span + (track + 1), return_inverse=True)
    total = np.bincount(inverse, weights=weight, minlength=len(key))
    pair_hit, pair_track = key // span, key % span - 1
    order = np.lexsort((pair_track, -total, pair_hit))      # by hit, then most light, then id
    first = order[np.concatenate([[True], pair_hit[order][1:] != pair_hit[order][:-1]])]
    out = np.full(n_hits, -1, np.int32)
    out[pair_hit[first]] = pair_track[first]
    return out


@READOUTS.register("scintillator")
def digitize(deposits: Deposits, detector, rng: np.random.Generator) -> Hits:
    """Deposits (MeV, cm, ns) → hits of one event in a segmented-scintillator ``detector``.

    Returns :class:`gnnu.events.Hits` with the columns listed in the module docstring (length =
    number of hits), sorted by (view, plane, cell, time). All randomness comes from ``rng``.
    """
    cfg = detector.config
    ro = cfg.readout
    if len(deposits) == 0:
        return Hits(_empty())
    plane, view, cell, inside, distance = detector.locate(deposits.pos)
    arrival = deposits.time + distance / ro.fibre_light_speed_cm_per_ns
    w0, w1 = ro.readout_window_ns
    margin = ro.hit_merge_ns + 5.0 * ro.time_resolution_ns
    keep = inside & (deposits.de > 0) & (arrival > w0 - margin) & (arrival < w1 + margin)
    if not keep.any():
        return Hits(_empty())
    idx = np.flatnonzero(keep)
    energy = scintillator_energy(deposits.de[idx], cfg)
    light = (quenched_energy(energy, deposits.dx[idx], cfg) * ro.light_yield_pe_per_mev
             * attenuation(distance[idx], ro, detector.cell_length_cm))
    channel = plane[idx] * detector.n_cells + cell[idx]
    t = arrival[idx]

    # hits: sorted by (channel, arrival); a new hit where the channel changes or light pauses
    order = np.lexsort((t, channel))
    idx, energy, light = idx[order], energy[order], light[order]
    channel, t = channel[order], t[order]
    new = np.empty(len(t), bool)
    new[0] = True
    new[1:] = (channel[1:] != channel[:-1]) | (np.diff(t) > ro.hit_merge_ns)
    starts = np.flatnonzero(new)
    hit_of = np.cumsum(new) - 1
    n = len(starts)

    def total(values):
        return np.add.reduceat(values, starts)

    mu = total(light)                       # > 0: every kept deposit gives some light
    t_mean = total(light * t) / mu
    t_var = np.maximum(total(light * t * t) / mu - t_mean * t_mean, 0.0)
    pos = deposits.pos[idx]
    xyz = [total(light * pos[:, k]) / mu for k in range(3)]

    pe = rng.poisson(mu) + rng.standard_normal(n) * ro.noise_pe
    charge = np.round(pe * ro.adc_per_pe) / ro.adc_per_pe
    time = t_mean + rng.standard_normal(n) * ro.time_resolution_ns
    good = (charge >= ro.threshold_pe) & (time >= w0) & (time < w1)
    particle = _dominant(hit_of, deposits.track[idx], light, n)
    hit_plane = channel[starts] // detector.n_cells
    cols = {
        "view": detector.plane_view(hit_plane),
        "wire": (channel[starts] % detector.n_cells).astype(np.int32),
        "plane": hit_plane.astype(np.int32),
        "time": time.astype(np.float32),
        "charge": charge.astype(np.float32),
        "width": np.sqrt(t_var + ro.time_resolution_ns ** 2).astype(np.float32),
        "x": xyz[0].astype(np.float32), "y": xyz[1].astype(np.float32),
        "z": xyz[2].astype(np.float32),
        "particle": particle,
        "energy": total(energy).astype(np.float32),
    }
    cols = {k: v[good] for k, v in cols.items()}
    order = np.lexsort((cols["time"], cols["wire"], cols["plane"], cols["view"]))
    return Hits({k: np.ascontiguousarray(cols[k][order], HIT_COLUMNS[k][0]) for k in COLUMNS})
