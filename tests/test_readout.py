"""LArTPC readout (gnnu.sim.readout): deposits → hits.

Reference values are from docs/design.md#dune-like-lartpc (DUNE FD: W_ion = 23.6 eV, modified Box A = 0.93,
B = 0.212, 500 V/cm, v_drift = 0.16 cm/µs, τ = 10.4 ms, D_L = 6.2 cm²/s, D_T = 16.3 cm²/s,
Z pitch 4.79 mm) and the ArgoNeuT recombination paper (JINST 8 (2013) P08005).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.special import ndtr

from gnnu.detectors import LArTPC
from gnnu.sim.readout import ar39_blips, digitize, recombination
from gnnu.sim.records import Deposits

Z = 2  # collection plane


def _detector(dune, **electronics):
    """DUNE with noise, noise hits and blips off (and other electronics overrides)."""
    c = dune.config
    el = dataclasses.replace(c.electronics, noise_hits=False, noise_electrons=0.0, **electronics)
    return LArTPC(dataclasses.replace(c, electronics=el,
                                      radiologicals=dataclasses.replace(c.radiologicals,
                                                                        enabled=False)))


@pytest.fixture(scope="module")
def quiet(dune):
    return _detector(dune)


def track(p0, p1, step=0.02, dedx=2.1, track_id=0, time_ns=0.0) -> Deposits:
    """Straight track from p0 to p1 (cm) in steps of ``step`` cm, dE/dx in MeV/cm."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    length = float(np.linalg.norm(p1 - p0))
    n = max(int(math.ceil(length / step)), 1)
    f = (np.arange(n) + 0.5) / n
    dx = np.full(n, length / n)
    return Deposits(p0 + f[:, None] * (p1 - p0), dx * dedx, dx, np.full(n, time_ns),
                    np.full(n, track_id, np.int32))


def points(pos, de=1.0, time_ns=0.0, track_id=0) -> Deposits:
    """Point deposits (dx = 0) at ``pos`` [n, 3] cm."""
    pos = np.atleast_2d(np.asarray(pos, float))
    n = len(pos)
    return Deposits(pos, np.full(n, de, float), np.zeros(n), np.full(n, time_ns, float),
                    np.full(n, track_id, np.int32))


def electrons(hits, det, view):
    sel = hits["view"] == view
    return hits["charge"][sel] / det.config.planes[view].adc_per_electron


def test_recombination_modified_box(dune):
    # ArgoNeuT modified Box at 0.5 kV/cm: a MIP (2.1 MeV/cm) keeps R ≈ 0.70 (docs/design.md#dune-like-lartpc).
    r_mip = float(recombination(2.1, dune.config))
    assert r_mip == pytest.approx(0.705, abs=0.01)
    # R falls with dE/dx (heavily ionising protons recombine more) ...
    assert recombination(10.0, dune.config) < 0.5 < r_mip
    # ... and never exceeds the maximum of ln(A + ξ)/ξ (≈ 0.716 for A = 0.93) at low dE/dx.
    assert float(recombination(0.2, dune.config)) <= 0.7160 + 1e-4


def test_mip_charge_per_collection_wire(quiet):
    # A MIP (2.1 MeV/cm) crossing perpendicular to the Z wires next to the anode:
    # 0.479 cm × 2.1 MeV/cm × R(0.705) / 23.6 eV ≈ 3.0e4 electrons per wire (docs/design.md#dune-like-lartpc).
    hits = digitize(track([1.0, 0.0, 300.0], [1.0, 0.0, 400.0]), quiet, np.random.default_rng(1))
    q = electrons(hits, quiet, Z)
    expected = 0.479 * 2.1 * 0.705 / 23.6e-6
    assert expected == pytest.approx(3.0e4, rel=0.01)
    assert np.median(q) == pytest.approx(expected, rel=0.02)
    # one hit per wire crossed: 100 cm / 0.479 cm ≈ 209 wires, none twice
    z = hits.select(hits["view"] == Z)
    assert len(np.unique(z["wire"])) == len(z) and abs(len(z) - 100 / 0.479) <= 2


def test_track_steps_spread_their_charge_over_the_wires_they_cross(quiet):
    """A wire collects the charge of the track length over its pitch: dE/dx × 0.479 cm × R / W
    ≈ 3.0e4 e for a MIP crossing the Z wires (docs/design.md#dune-like-lartpc), whatever the step length. Stepped at
    0.3 cm (the transport's step_cm) with each step's charge on the wire under its midpoint, a
    wire got one or two steps (1.9e4 or 3.8e4 e: the comb issue 22 found in the pixel spectrum);
    spread along the step (``Deposits.step``) every wire gets the same 3.0e4 e."""
    dep = track([1.0, 0.0, 300.3], [1.0, 0.0, 400.3], step=0.3)
    expected = 0.479 * 2.1 * 0.705 / 23.6e-6
    per_wire = {}
    for steps in (None, np.tile([0.0, 0.0, 1.0], (len(dep), 1)) * dep.dx[:, None]):
        d = Deposits(dep.pos, dep.de, dep.dx, dep.time, dep.track, steps)
        q = electrons(digitize(d, quiet, np.random.default_rng(1)), quiet, Z)[1:-1]   # inner wires
        per_wire[steps is None] = q
    comb, spread = per_wire[True], per_wire[False]
    assert np.std(spread) / np.mean(spread) < 0.06                 # transverse diffusion only
    assert np.median(spread) == pytest.approx(expected, rel=0.02)
    assert np.std(comb) / np.mean(comb) > 0.2                      # the point-deposit comb
    assert spread.sum() == pytest.approx(comb.sum(), rel=0.01)     # same total charge


def test_lifetime_attenuation_at_full_drift(quiet):
    # Charge survives as exp(−t/τ): 359 cm / 0.16 cm/µs = 2244 µs → exp(−2244/10400) = 0.806.
    near = digitize(track([0.5, 0, 300], [0.5, 0, 400]), quiet, np.random.default_rng(2))
    far = digitize(track([359.0, 0, 300], [359.0, 0, 400]), quiet, np.random.default_rng(2))
    ratio = electrons(far, quiet, Z).sum() / electrons(near, quiet, Z).sum()
    expected = math.exp(-(359.0 - 0.5) / 0.16 / 10400.0)
    assert expected == pytest.approx(0.806, abs=0.002)
    assert ratio == pytest.approx(expected, rel=0.01)


def test_longitudinal_diffusion_grows_as_sqrt_t(quiet):
    # A point cloud's hit rms² = shaping² + σ_L², σ_L = sqrt(2 D_L t) (D_L = 6.2 cm²/s):
    # σ_L² ∝ drift time, 2.09 ticks (1.67 mm) at 359 cm.
    xs = np.array([40.0, 90.0, 180.0, 359.0])
    cfg = quiet.config
    shaping = cfg.electronics.shaping_us / cfg.tick_us
    sig2 = []
    for x in xs:
        h = digitize(points([[x, 0.0, 500.0]], de=2.0), quiet, np.random.default_rng(3))
        w = h["width"][h["view"] == Z]
        assert len(w) == 1
        sig2.append(float(w[0]) ** 2 - shaping ** 2)
    t_s = xs / 0.16 * 1e-6
    expected = 2 * 6.2 * t_s / 0.08 ** 2                  # ticks² (0.08 cm of drift per tick)
    np.testing.assert_allclose(sig2, expected, rtol=1e-3)
    assert math.sqrt(expected[-1]) == pytest.approx(2.09, abs=0.01)
    # σ ∝ sqrt(t): quadrupling the drift time doubles σ_L
    assert math.sqrt(sig2[2] / sig2[0]) == pytest.approx(math.sqrt(180 / 40), rel=1e-3)


def test_transverse_diffusion_spreads_charge_to_neighbour_wires(quiet):
    # Clouds centred on a Z wire cell: the share leaking to the neighbours is
    # 2·Φ(−(pitch/2)/σ_T), σ_T = sqrt(2 D_T t) (D_T = 16.3 cm²/s) — 0.37 at full drift,
    # ≈ 0 next to the anode.
    pitch = 0.479
    wire = 1000
    z = (wire + 0.5) * pitch + float(quiet.config.active_volume.z[0])
    for x, n in ((359.0, 4000), (5.0, 500)):
        pos = np.tile([x, 0.0, z], (n, 1))
        h = digitize(points(pos, de=0.1), quiet, np.random.default_rng(4))
        zh = h.select(h["view"] == Z)
        share = zh["charge"][zh["wire"] != wire].sum() / zh["charge"].sum()
        sigma = math.sqrt(2 * 16.3 * x / 0.16 * 1e-6)
        assert share == pytest.approx(2 * ndtr(-(pitch / 2) / sigma), abs=0.03)
    assert sigma < 0.04 and share < 0.01


def test_point_deposit_wire_and_time_match_geometry(dune):
    # Without diffusion, a point deposit lands on detector.wire_index(view, y, z) of every plane
    # at tick = (t + x / v_drift) / tick.
    c = dune.config
    det = LArTPC(dataclasses.replace(_detector(dune).config, diffusion_transverse_cm2_per_s=0.0,
                                     diffusion_longitudinal_cm2_per_s=0.0))
    pos = np.array([[123.4, -56.7, 789.1], [10.0, 300.0, 50.0]])
    h = digitize(points(pos, de=3.0, time_ns=2000.0, track_id=7), det, np.random.default_rng(5))
    assert len(h) == 6
    for i, (x, y, z) in enumerate(pos):
        tick = (2.0 + x / c.drift_velocity_cm_per_us) / c.tick_us
        sel = np.isclose(h["time"], tick, atol=1e-3)
        assert sel.sum() == 3
        for v in range(3):
            hv = h.select(sel & (h["view"] == v))
            assert len(hv) == 1
            assert hv["wire"][0] == det.wire_index(v, y, z)
            np.testing.assert_allclose([hv["x"][0], hv["y"][0], hv["z"][0]], [x, y, z], atol=1e-3)
            assert hv["particle"][0] == 7 and hv["energy"][0] == pytest.approx(3.0)
            assert hv["width"][0] == pytest.approx(c.electronics.shaping_us / c.tick_us)


def test_straight_track_gives_one_hit_per_wire_per_plane(quiet):
    # An oblique track (y, z and a slow drift-time slope) crosses each wire of each plane once:
    # one hit per wire crossed, in every plane.
    p0, p1 = np.array([100.0, -40.0, 300.0]), np.array([112.0, 80.0, 600.0])
    h = digitize(track(p0, p1), quiet, np.random.default_rng(6))
    for v in range(3):
        hv = h.select(h["view"] == v)
        w0, w1 = sorted(int(quiet.wire_index(v, p[1], p[2])) for p in (p0, p1))
        assert len(hv) == len(np.unique(hv["wire"]))
        assert abs(len(hv) - (w1 - w0 + 1)) <= 1


def test_separated_tracks_give_two_hits_overlapping_ones_merge(quiet):
    # Two tracks along z, 10 cm apart in drift (125 ticks ≫ pulse rms 2 ticks): two hits per
    # Z wire. 0.1 cm apart (1.25 ticks < 2 × 2 ticks): one merged hit with the summed charge,
    # wider than a single track's hit.
    def z_hits(dx):
        dep = Deposits.concat([track([100.0, 0, 300], [100.0, 0, 350], track_id=1),
                               track([100.0 + dx, 0, 300], [100.0 + dx, 0, 350], dedx=4.2,
                                     track_id=2)])
        h = digitize(dep, quiet, np.random.default_rng(7))
        return h.select(h["view"] == Z)

    apart = z_hits(10.0)
    per_wire = np.bincount(apart["wire"] - apart["wire"].min())
    assert np.median(per_wire) == 2
    merged = z_hits(0.1)
    per_wire = np.bincount(merged["wire"] - merged["wire"].min())
    assert np.median(per_wire) == 1
    assert np.median(merged["charge"]) == pytest.approx(
        np.median(apart["charge"][apart["particle"] == 1]) * 3, rel=0.1)
    assert np.median(merged["width"]) > np.median(apart["width"])
    # the merged hit belongs to the track that gave most of its charge (twice the dE/dx)
    assert np.mean(merged["particle"] == 2) > 0.95


def test_long_pulse_is_split(quiet):
    # A track along the drift direction on one wire makes a 125-tick pulse train (10 cm /
    # 0.08 cm per tick); it is cut into hits of 16 ticks (LArSoft GausHitFinder LongPulseWidth).
    z = 1044.5 * 0.479                                     # centre of a Z wire cell
    dep = track([5.0, 0.0, z], [15.0, 0.0, z])
    h = digitize(dep, quiet, np.random.default_rng(8))
    z = h.select(h["view"] == Z)
    assert len(np.unique(z["wire"])) == 1
    assert len(z) == math.ceil(125 / 16)
    total = electrons(h, quiet, Z).sum()
    r = float(recombination(2.1, quiet.config))
    att = np.exp(-(dep.pos[:, 0] / 0.16) / 10400.0)
    assert total == pytest.approx((dep.de * r * att).sum() / 23.6e-6, rel=1e-6)


def test_threshold_and_energy_bookkeeping(quiet):
    # Every deposit's energy appears once per plane (all hits above threshold here) ...
    dep = track([100.0, 0, 300], [140.0, 30, 400], step=0.3)
    h = digitize(dep, quiet, np.random.default_rng(9))
    for v in range(3):
        assert h["energy"][h["view"] == v].sum() == pytest.approx(dep.de.sum(), rel=1e-5)
    # ... and a cloud below the hit threshold (7000 e) leaves no hit.
    small = points([[100.0, 0, 300]], de=0.1)              # 0.1 MeV × 0.63 / 23.6 eV ≈ 2.7e3 e
    assert len(digitize(small, quiet, np.random.default_rng(9))) == 0


def test_hits_sorted_and_inside_readout(dune):
    dep = Deposits.concat([track([100.0, 0, 1], [200.0, 50, 1399]),
                           track([5.0, 0, 700], [5.0, 0, 701], time_ns=2.3e6),   # after readout
                           points([[100.0, 5000.0, -5000.0]])])                   # outside wires
    h = digitize(dep, dune, np.random.default_rng(10))
    key = np.lexsort((h["time"], h["wire"], h["view"]))
    assert np.array_equal(key, np.arange(len(h)))
    for v in range(3):
        w = h["wire"][h["view"] == v]
        assert w.min() >= 0 and w.max() < dune.n_wires(v)
    assert h["time"].min() >= 0 and h["time"].max() < dune.config.readout_ticks
    assert not np.any(np.isclose(h["y"], 5000.0))


def test_noise_and_blips_carry_particle_minus_one_and_switch_off(dune, quiet):
    dep = track([100.0, -50, 300], [200.0, 50, 600], step=0.3, track_id=3)
    rng = np.random.default_rng(11)
    noisy = [digitize(dep, dune, rng) for _ in range(20)]
    # noise hits (NaN truth position) and blips exist, and they are all particle −1
    assert all(set(np.unique(h["particle"])) <= {-1, 3} for h in noisy)
    assert sum(int(np.isnan(h["x"]).sum()) for h in noisy) > 0
    blip_hits = [h.select((h["particle"] == -1) & ~np.isnan(h["x"])) for h in noisy]
    assert sum(len(b) for b in blip_hits) > 0
    # switched off by config: only the track's hits, no −1 and no NaN
    clean = digitize(dep, quiet, np.random.default_rng(11))
    assert np.all(clean["particle"] == 3) and not np.isnan(clean["x"]).any()
    # no deposits at all: only noise hits, as configured
    empty = digitize(Deposits(), dune, np.random.default_rng(12))
    assert np.all(empty["particle"] == -1) and np.isnan(empty["x"]).all()
    assert len(digitize(Deposits(), quiet, np.random.default_rng(12))) == 0


def test_noise_hit_rate(dune):
    # Poisson(rate × wires) fake hits per readout window: 0.001 × (3937 + 3937 + 2923).
    rate = dune.config.electronics.noise_hit_rate_per_wire
    n_wires = sum(dune.n_wires(v) for v in range(3))
    counts = [len(digitize(Deposits(), dune, np.random.default_rng(s))) for s in range(200)]
    assert np.mean(counts) == pytest.approx(rate * n_wires, rel=0.1)


def test_ar39_blip_rate_and_spectrum(dune):
    # Ar-39: 1.01 Bq/kg; a 100 cm cube of deposits ± 30 cm margin = 160³ cm³ × 1.396 g/cm³
    # = 5718 kg over the 2246 µs readout window → 12.97 decays per event. Mean β energy of
    # Ar-39: 0.219 MeV (NNDC), endpoint 0.565 MeV.
    corners = Deposits(np.array([[100.0, 0, 300], [200.0, 100, 400]]), np.ones(2), np.ones(2),
                       np.zeros(2), np.zeros(2, np.int32))
    blips = [ar39_blips(corners, dune, np.random.default_rng(s)) for s in range(200)]
    assert np.mean([len(b) for b in blips]) == pytest.approx(12.97, rel=0.05)
    energy = np.concatenate([b.de for b in blips])
    assert energy.max() <= 0.565 and energy.mean() == pytest.approx(0.219, rel=0.05)
    pos = np.concatenate([b.pos for b in blips])
    assert pos.min(axis=0) == pytest.approx([70, -30, 270], abs=1.0)
    assert pos.max(axis=0) == pytest.approx([230, 130, 430], abs=1.0)
    assert all(np.all(b.track == -1) for b in blips)
    # arrivals at the anode cover the readout window
    arrival = np.concatenate([b.time * 1e-3 + b.pos[:, 0] / 0.16 for b in blips])
    assert arrival.min() >= 0 and arrival.max() <= 2246.0


def test_same_seed_same_hits(dune):
    dep = Deposits.concat([track([100.0, -50, 300], [220.0, 50, 700], step=0.3),
                           points(np.random.default_rng(0).normal([150, 0, 500], 20, (300, 3)),
                                  de=0.5, track_id=4)])
    a = digitize(dep, dune, np.random.default_rng(42))
    b = digitize(dep, dune, np.random.default_rng(42))
    c = digitize(dep, dune, np.random.default_rng(43))
    assert a.columns.keys() == b.columns.keys()
    for k in a.columns:
        assert np.array_equal(a[k], b[k], equal_nan=True), k
    assert len(a) != len(c) or not np.array_equal(a["charge"], c["charge"])
