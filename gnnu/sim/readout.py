"""LArTPC readout: energy deposits → drifted, diffused charge on the wires → hits.

Chain (every number from ``detector.config``; units cm, ns for deposits, µs for the drift,
ticks for hit times, electrons until the plane gain turns them into ADC·tick):

1. Ar-39 blips (optional) are added as point deposits (``track`` = −1) in the event's region
   of interest.
2. Recombination, modified Box model: ξ = B·(dE/dx)/(ρ·E), R = ln(A + ξ)/ξ; electrons =
   de·R/W_ion.
3. Drift to the anode at constant velocity: arrival tick = (deposit time + drift time)/tick;
   attenuation exp(−t_drift/τ) by the electron lifetime.
4. Diffusion σ = sqrt(2·D·t_drift): transverse displaces each cloud in (y, z), longitudinal
   widens its pulse.
5. Per (plane, wire), charge is grouped in time into pulses → hits: time = charge-weighted
   mean tick, integral = charge × plane gain (``adc_per_electron``), rms = sqrt(charge-weighted
   time variance + charge-weighted σ_L² + shaping²) in ticks; Gaussian noise on the integral;
   integrals below the threshold are dropped.
6. Fake noise hits (optional), then every hit is kept only on an existing wire and inside the
   readout window; hits are returned sorted by (view, wire, time).

Simplifications (deliberate, documented):

- Recombination uses each step's mean dE/dx = de/dx; point deposits (dx = 0: locally absorbed
  e±/γ, blips) use ``recombination.point_dedx_mev_per_cm``. R(ξ) of the modified Box model
  peaks at ξ* ≈ 0.47 (A = 0.93, R ≈ 0.716) and turns over unphysically below it, so ξ is clamped
  at ξ*. No fluctuations of recombination or of the number of electrons (Fano).
- A step (``Deposits.step``: charged tracks and EM sub-steps) spreads its charge uniformly along its
  projection on each plane's wire axis: every wire it crosses gets the share of the step that
  lies over it, as a real wire collects the charge of the track length over its pitch (before
  issue 22 each step's charge went whole to the wire under its midpoint, so a track stepped at
  0.3 cm gave each 0.47 cm wire one or two steps' charge: a comb at 1 and 2 × 22 in the
  ``dune-cvn`` pixel spectrum instead of a MIP peak near 34). The shares arrive at the step
  midpoint's tick. Point deposits (stopping e±, blips) stay points at ``pos``.
- One uniform drift field along x (no space charge, no field distortions); all planes sit at
  the anode, so a cloud arrives at the same tick on every plane. Lifetime attenuation acts on
  the mean charge only.
- Transverse diffusion is sampled with one sub-cloud per deposit: the whole cloud moves by a
  Gaussian (y, z) displacement of rms σ_T (the same displacement seen by all planes), so the
  mean share of charge on neighbouring wires is right (tested) while each deposit still makes
  one entry per plane — three times fewer than integrating the Gaussian over three wires, which
  the speed budget does not allow. Longitudinal diffusion is analytic: it enters the hit width
  and the merging of pulses, not the charge centroid.
- Field response and electronics are one Gaussian pulse of rms ``electronics.shaping_us`` for
  every plane; induction planes are read as unipolar, as after deconvolution, with their own
  gain. No cross-talk, no coherent noise.
- Hit finding is idealised: on a wire, charge arriving within ``pulse_merge_widths`` pulse rms
  of the previous arrival belongs to the same pulse (two equal Gaussians show two peaks only
  when more than 2σ apart); a pulse longer than ``long_pulse_ticks`` is cut into hits of that
  length counted from its start, as LArSoft's GausHitFinder does for long pulse trains
  (``LongPulseWidth`` = 16 ticks). Hit time is the charge-weighted mean arrival tick (the peak of
  a symmetric pulse).
- Electronic noise is one Gaussian of rms ``noise_electrons`` on each hit integral (not per
  tick). Fake noise hits: Poisson(rate × wires) per plane per readout window, uniform in wire
  and time, charge = threshold + an exponential tail of scale ``noise_electrons``, width =
  shaping.
- Ar-39: decays uniform in the region of interest (bounding box of the deposits ±
  ``roi_margin_cm``, clipped to the active volume), Poisson in number at rate × argon mass ×
  readout window, decay times drawn so that their arrivals cover the readout window uniformly;
  kinetic energy from the allowed β shape p·E·(Q − T)² (no Fermi function, no forbidden shape
  factor); each β is a point deposit of its whole kinetic energy.
- Charge arriving more than one readout window before or after the window is discarded before
  hit finding.

Speed: two compiled passes. The first computes every deposit's charge, drift and diffusion and
its wire on each plane, and orders the (plane, deposit) entries by (wire group, tick) with a
counting sort by group over the deposits in tick order (one ``np.argsort``); the second makes the
pulses and hits, their weighted sums and dominant tracks. numpy draws every random number (the
transverse diffusion, the noise), in the same order as the earlier numpy-only readout. The hits come
out sorted, so the few noise hits are merged in by binary search instead of re-sorting everything.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .._jit import jit
from ..events import HIT_COLUMNS, Hits
from .pdg import ELECTRON_MASS_MEV
from .records import READOUTS, Deposits


# -- physics pieces -----------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _xi_peak(a: float) -> float:
    """ξ at which the modified Box R(ξ) = ln(a + ξ)/ξ is largest (root of ξ/(a+ξ) = ln(a+ξ))."""
    lo, hi = 1e-9, 50.0          # g(ξ) = ξ/(a+ξ) − ln(a+ξ) is > 0 below the peak, < 0 above
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if mid / (a + mid) - math.log(a + mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@jit
def _box_r(dedx: float, a: float, b: float, rho_e: float, xi_peak: float) -> float:
    """Modified Box R = ln(A + ξ)/ξ with ξ = B·(dE/dx)/(ρ·E) clamped below at ``xi_peak``."""
    xi = max(b * dedx / rho_e, xi_peak)
    return math.log(a + xi) / xi


@jit
def _box_r_many(dedx, a, b, rho_e, xi_peak):
    out = np.empty(len(dedx))
    for i in range(len(dedx)):
        out[i] = _box_r(dedx[i], a, b, rho_e, xi_peak)
    return out


def recombination(dedx_mev_per_cm, config) -> np.ndarray:
    """Fraction R of ionisation electrons surviving recombination (modified Box model).

    ``dedx_mev_per_cm`` (any shape, MeV/cm); ``config`` a :class:`LArTPCConfig`
    (A, B, density, field). ξ = B·(dE/dx)/(ρ·E) is clamped below at the peak of R(ξ).
    Returns R with the shape of ``dedx_mev_per_cm``.
    """
    rc = config.recombination
    d = np.asarray(dedx_mev_per_cm, np.float64)
    r = _box_r_many(d.ravel(), rc.A, rc.B, config.material.density_g_cm3 * config.efield_kv_per_cm,
                    _xi_peak(rc.A))
    return r.reshape(d.shape)


@functools.lru_cache(maxsize=8)
def _beta_inverse_cdf(endpoint_mev: float, n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Grid (cdf, T) of the allowed β spectrum p·E·(Q − T)² for inverse-CDF sampling (MeV)."""
    t = np.linspace(0.0, endpoint_mev, n)
    e = t + ELECTRON_MASS_MEV
    p = np.sqrt(e * e - ELECTRON_MASS_MEV ** 2)
    pdf = p * e * (endpoint_mev - t) ** 2
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(t))])
    return cdf / cdf[-1], t


def ar39_blips(deposits: Deposits, detector, rng: np.random.Generator) -> Deposits:
    """Radiological Ar-39 β decays around an event, as point deposits (``track`` = −1).

    Region of interest: bounding box of ``deposits`` ± ``radiologicals.roi_margin_cm``,
    clipped to the active volume. Count ~ Poisson(rate [Bq/kg] × argon mass [kg] × readout
    window [s]); decay times (ns, may be negative) make the arrivals at the anode uniform over
    the readout window. Returns an empty :class:`Deposits` for an empty event.
    """
    cfg = detector.config
    rad = cfg.radiologicals
    if len(deposits) == 0:
        return Deposits()
    box = cfg.active_volume
    columns = deposits.pos.T                 # per-column reductions: ≈20× faster than axis=0
    lo = np.maximum([c.min() - rad.roi_margin_cm for c in columns], box.lo)
    hi = np.minimum([c.max() + rad.roi_margin_cm for c in columns], box.hi)
    mass_kg = float(np.prod(np.maximum(hi - lo, 0.0))) * cfg.material.density_g_cm3 * 1e-3
    window_us = cfg.readout_ticks * cfg.tick_us
    n = int(rng.poisson(rad.rate_bq_per_kg * mass_kg * window_us * 1e-6))
    pos = lo + (hi - lo) * rng.random((n, 3))
    drift_us = detector.drift_distance(pos[:, 0]) / cfg.drift_velocity_cm_per_us
    time_ns = (rng.random(n) * window_us - drift_us) * 1e3
    cdf, grid = _beta_inverse_cdf(rad.endpoint_mev)
    energy = np.interp(rng.random(n), cdf, grid)
    return Deposits(pos, energy, np.zeros(n), time_ns, np.full(n, -1, np.int32))


# -- hit building -------------------------------------------------------------------------------
#: The hit columns a LArTPC readout fills (the segmented detectors' ``plane`` is not one).
_COLUMNS = ("view", "wire", "time", "charge", "width", "x", "y", "z", "particle", "energy")


def _empty_hits() -> dict[str, np.ndarray]:
    return {k: np.zeros(0, HIT_COLUMNS[k][0]) for k in _COLUMNS}


def _charge_hits(dep: Deposits, detector, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Hits made by the ionisation charge of ``dep`` (steps 2–5 of the module docstring)."""
    cfg = detector.config
    el = cfg.electronics
    n = len(dep)
    if n == 0:
        return _empty_hits()

    # recombination, drift, lifetime, diffusion and the wires of every plane, then the
    # (plane, deposit) entries sorted by (wire group, tick), in one compiled pass; numpy draws
    # the transverse diffusion and sorts the deposits by tick
    rc = cfg.recombination
    noise = rng.standard_normal((n, 2))
    drift_us = detector.drift_distance(dep.pos[:, 0]) / cfg.drift_velocity_cm_per_us
    tick = (dep.time * 1e-3 + drift_us) / cfg.tick_us
    by_tick = np.argsort(tick)
    group_offset = detector.group_offset
    electrons, sig_l2, dep_of, g, share = _entries(
        dep.pos, dep.steps(), dep.de, dep.dx, drift_us, tick, noise, by_tick,
        cfg.recombination.point_dedx_mev_per_cm, 1e6 / cfg.w_ion_ev, rc.A, rc.B,
        cfg.material.density_g_cm3 * cfg.efield_kv_per_cm, _xi_peak(rc.A),
        cfg.electron_lifetime_ms * 1e3, 2.0 * cfg.diffusion_longitudinal_cm2_per_s,
        detector.ticks_per_cm ** 2, 2.0 * cfg.diffusion_transverse_cm2_per_s,
        float(cfg.readout_ticks), detector.wire_geometry, detector.n_wires_per_plane, group_offset)
    if len(dep_of) == 0:
        return _empty_hits()
    t = tick[dep_of]

    # pulses and hits in one pass over the sorted entries (compiled): the seven weighted sums
    # and the dominant track of every hit
    shaping_ticks = el.shaping_us / cfg.tick_us
    merge_gap = el.pulse_merge_widths * np.sqrt(shaping_ticks ** 2 + sig_l2)
    starts, sums, particle = _pulse_hits(
        g, t, dep_of, share, merge_gap, 1.0 / el.long_pulse_ticks, electrons, tick, sig_l2,
        dep.pos, dep.de, dep.track.astype(np.int64))

    # electronic noise on the integral, threshold, readout window
    qh = sums[:, 0] + rng.standard_normal(len(sums)) * el.noise_electrons
    t_mean = (sums[:, 1] / sums[:, 0]).astype(np.float32)  # the window cut acts on the stored value
    good = (qh >= el.hit_threshold_electrons) & (t_mean >= 0) & (t_mean < cfg.readout_ticks)
    kept = good.nonzero()[0]
    sums, qh, t_mean, particle = (sums.take(kept, axis=0), qh.take(kept), t_mean.take(kept),
                                  particle.take(kept))
    gh = g.take(starts.take(kept))
    qsum = sums[:, 0]
    t_mean64 = sums[:, 1] / qsum
    var = sums[:, 2] / qsum - t_mean64 * t_mean64 + shaping_ticks ** 2
    view = np.searchsorted(group_offset, gh, side="right") - 1
    gain = np.array([p.adc_per_electron for p in cfg.planes])
    return {
        "view": view.astype(np.int8),
        "wire": (gh - group_offset[view]).astype(np.int32),
        "time": t_mean,
        "charge": (qh * gain[view]).astype(np.float32),
        "width": np.sqrt(np.maximum(var, shaping_ticks ** 2)).astype(np.float32),
        "x": (sums[:, 3] / qsum).astype(np.float32),
        "y": (sums[:, 4] / qsum).astype(np.float32),
        "z": (sums[:, 5] / qsum).astype(np.float32),
        "particle": particle.astype(np.int32),
        "energy": sums[:, 6].astype(np.float32),
    }


@jit
def _entries(pos, step, de, dx, drift_us, tick, noise, by_tick, point_dedx, electrons_per_mev, a,
             b, rho_e, xi_peak, lifetime_us, two_dl, ticks_per_cm2, two_dt, readout_ticks,
             geometry, n_wires, group_offset):
    """Per deposit: ionisation electrons reaching the anode (recombination, lifetime) and the
    longitudinal diffusion σ_L² (ticks²); per (plane, deposit, wire) entry, the wire group
    (plane offset + wire) and the share of the deposit's charge on that wire: the cloud,
    displaced by transverse diffusion (``noise`` [n, 2] standard normals scaled by σ_T), spread
    uniformly along the projection of its ``step`` [n, 3] (cm) on the plane's wire axis (one
    entry of share 1 for a point deposit). Only entries on an existing wire, with charge and
    near the readout window (``geometry``, ``n_wires``, ``group_offset``: the detector's
    ``wire_geometry``, ``n_wires_per_plane``, ``group_offset``). Returns (electrons, σ_L²,
    entries' deposits, entries' groups, entries' shares), the entries sorted by (group, tick)
    (``by_tick``: the deposits in tick order; a counting sort by group keeps that order within
    a group)."""
    n = len(de)
    n_planes = len(n_wires)
    electrons = np.empty(n)
    sig_l2 = np.empty(n)
    lo_c = np.zeros((n_planes, n))                 # wire coordinate range (pitch units) …
    hi_c = np.zeros((n_planes, n))
    first = np.full((n_planes, n), -1, np.int64)   # … and the wires it covers, first … last
    last = np.full((n_planes, n), -2, np.int64)
    total = group_offset[n_planes - 1] + n_wires[n_planes - 1]
    count = np.zeros(total + 1, np.int64)
    for i in range(n):
        dedx = de[i] / dx[i] if dx[i] > 0 else point_dedx
        q = (de[i] * electrons_per_mev * _box_r(dedx, a, b, rho_e, xi_peak)
             * math.exp(-drift_us[i] / lifetime_us))
        electrons[i] = q
        drift_s = drift_us[i] * 1e-6
        sig_l2[i] = two_dl * drift_s * ticks_per_cm2
        if not (q > 0 and -readout_ticks < tick[i] < 2 * readout_ticks):
            continue
        sig_t = math.sqrt(two_dt * drift_s)
        y = pos[i, 1] + noise[i, 0] * sig_t
        z = pos[i, 2] + noise[i, 1] * sig_t
        for v in range(n_planes):
            c = (z * geometry[v, 0] + y * geometry[v, 1] - geometry[v, 2]) / geometry[v, 3]
            half = 0.5 * abs(step[i, 2] * geometry[v, 0] + step[i, 1] * geometry[v, 1]) / geometry[v, 3]
            lo, hi = c - half, c + half
            w0 = max(math.floor(lo), 0)
            w1 = min(math.floor(hi), n_wires[v] - 1)
            if w0 > w1:
                continue
            lo_c[v, i], hi_c[v, i] = lo, hi
            first[v, i], last[v, i] = w0, w1
            for w in range(w0, w1 + 1):
                count[group_offset[v] + w + 1] += 1
    for k in range(total):
        count[k + 1] += count[k]                       # first slot of each group
    m = count[total]
    dep_of = np.empty(m, np.int64)
    g = np.empty(m, np.int64)
    share = np.empty(m)
    for v in range(n_planes):
        for u in range(n):
            i = by_tick[u]
            lo, hi = lo_c[v, i], hi_c[v, i]
            for w in range(first[v, i], last[v, i] + 1):
                gi = group_offset[v] + w
                slot = count[gi]
                dep_of[slot] = i
                g[slot] = gi
                share[slot] = (min(hi, w + 1.0) - max(lo, float(w))) / (hi - lo) if hi > lo else 1.0
                count[gi] += 1
    return electrons, sig_l2, dep_of, g, share


@jit
def _pulse_hits(g, t, dep_of, share, merge_gap, inv_long, electrons, tick, sig_l2, pos, de, track):
    """Hits of the (plane, deposit, wire) entries sorted by (wire group ``g``, tick ``t``), each
    carrying the ``share`` of its deposit's charge and energy.

    A new pulse starts where the wire group changes or the gap to the previous arrival exceeds
    the merge distance ``merge_gap`` of the arriving deposit; a pulse is cut into hits of
    1/``inv_long`` ticks counted from its start. Per hit: the first entry, the sums over its
    deposits (``dep_of``) of (q, q·tick, q·(tick² + σ_L²), q·x, q·y, q·z, de), q = ``electrons``
    × share (de likewise), and the track with the most charge (ties to the smaller track id).
    Returns (starts [h], sums [h, 7], particle [h]).
    """
    n = len(t)
    starts = np.empty(n, np.int64)
    h = 0
    pulse_t0 = 0.0
    chunk = 0.0
    for i in range(n):
        if i == 0 or g[i] != g[i - 1] or t[i] - t[i - 1] > merge_gap[dep_of[i]]:
            pulse_t0 = t[i]
            chunk = 0.0
            starts[h] = i
            h += 1
        else:
            c = math.floor((t[i] - pulse_t0) * inv_long)
            if c != chunk:
                chunk = c
                starts[h] = i
                h += 1
    starts = starts[:h]
    sums = np.zeros((h, 7))
    particle = np.empty(h, np.int64)
    for k in range(h):
        a = starts[k]
        b = starts[k + 1] if k + 1 < h else n
        mixed = False
        for i in range(a, b):
            d = dep_of[i]
            q = electrons[d] * share[i]
            sums[k, 0] += q
            sums[k, 1] += q * tick[d]
            sums[k, 2] += q * (tick[d] * tick[d] + sig_l2[d])
            sums[k, 3] += q * pos[d, 0]
            sums[k, 4] += q * pos[d, 1]
            sums[k, 5] += q * pos[d, 2]
            sums[k, 6] += de[d] * share[i]
            mixed |= track[d] != track[dep_of[a]]
        if not mixed:
            particle[k] = track[dep_of[a]]
            continue
        ids = track[dep_of[a:b]]
        order = np.argsort(ids)
        best, best_q = ids[order[0]], -1.0
        run_q = 0.0
        for j in range(b - a):
            run_q += electrons[dep_of[a + order[j]]] * share[a + order[j]]
            if j + 1 == b - a or ids[order[j + 1]] != ids[order[j]]:
                if run_q > best_q:               # ascending ids: ties keep the smaller one
                    best, best_q = ids[order[j]], run_q
                run_q = 0.0
        particle[k] = best
    return starts, sums, particle


def _noise_hits(detector, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Fake electronic-noise hits on every plane (particle −1, no truth position)."""
    cfg = detector.config
    el = cfg.electronics
    n_wires = detector.n_wires_per_plane
    counts = rng.poisson(el.noise_hit_rate_per_wire * n_wires)
    view = np.repeat(np.arange(len(n_wires)), counts)
    n = len(view)
    wire = np.floor(rng.random(n) * n_wires[view]).astype(np.int32)
    last = np.nextafter(np.float32(cfg.readout_ticks), np.float32(0))
    time = np.minimum((rng.random(n) * cfg.readout_ticks).astype(np.float32), last)
    electrons = el.hit_threshold_electrons + rng.exponential(1.0, n) * el.noise_electrons
    gain = np.array([p.adc_per_electron for p in cfg.planes])
    nan = np.full(n, np.nan, np.float32)
    return {
        "view": view.astype(np.int8), "wire": wire, "time": time,
        "charge": (electrons * gain[view]).astype(np.float32),
        "width": np.full(n, el.shaping_us / cfg.tick_us, np.float32),
        "x": nan, "y": nan.copy(), "z": nan.copy(),
        "particle": np.full(n, -1, np.int32), "energy": np.zeros(n, np.float32),
    }


@READOUTS.register("lartpc")
def digitize(deposits: Deposits, detector, rng: np.random.Generator) -> Hits:
    """Deposits (MeV, cm, ns) → hits of one event in a LArTPC ``detector``.

    Columns (length = number of hits): ``view`` (plane index), ``wire``, ``time`` (ticks),
    ``charge`` (ADC·tick), ``width`` (rms, ticks) and truth ``x``, ``y``, ``z`` (charge-weighted
    cm; NaN for noise hits), ``particle`` (track id with the most charge; −1 for noise and
    blips), ``energy`` (MeV deposited, shared like the charge). Sorted by (view, wire, time).
    Radiological blips and noise hits follow ``radiologicals.enabled`` and
    ``electronics.noise_hits``; all randomness comes from ``rng``.
    """
    cfg = detector.config
    dep = deposits
    if cfg.radiologicals.enabled and len(deposits):
        dep = Deposits.concat([deposits, ar39_blips(deposits, detector, rng)])
    cols = _charge_hits(dep, detector, rng)          # already sorted by (view, wire, time)
    if cfg.electronics.noise_hits:
        cols = _merge_sorted(cols, _noise_hits(detector, rng), cfg.readout_ticks)
    return Hits(cols)


def _merge_sorted(hits: dict[str, np.ndarray], extra: dict[str, np.ndarray], readout_ticks: int
                  ) -> dict[str, np.ndarray]:
    """``hits`` (sorted by (view, wire, time)) with the few ``extra`` hits inserted in order."""
    span = 4.0 * readout_ticks        # hit times lie in [0, readout_ticks)

    def key(c):
        return (c["view"].astype(np.float64) * (1 << 20) + c["wire"]) * span + c["time"]

    n, k = len(hits["wire"]), len(extra["wire"])
    extra_key = key(extra)
    by_key = np.argsort(extra_key)
    at = np.searchsorted(key(hits), extra_key[by_key]) + np.arange(k)   # rows of the extra hits
    order = np.empty(n + k, np.intp)
    from_hits = np.ones(n + k, bool)
    from_hits[at] = False
    order[from_hits] = np.arange(n)
    order[at] = n + by_key
    return {c: np.concatenate([v, extra[c]])[order] for c, v in hits.items()}
