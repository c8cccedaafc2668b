"""Charged-track and neutron transport (gnnu.sim.tracks) and material tables (gnnu.sim.material).

Physics checks cite their reference values; every stochastic test is seeded.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest

from gnnu.detectors.common import Material, Sternheimer, Transport
from gnnu.detectors.lartpc import Box, LArTPC
from gnnu.events import Process
from gnnu.sim import material, tracks
from gnnu.sim.pdg import MASS_GEV, kinetic_energy
from gnnu.sim.records import ParticleBatch

MU, PI, K, P = (material.SPECIES.index(s) for s in ("mu", "pi", "K", "p"))
M_MU = MASS_GEV[13] * 1e3


def make_batch(pdg, t_mev, pos=(150.0, 0.0, 300.0), direction=(0.0, 0.0, 1.0)) -> ParticleBatch:
    """Particles of kinetic energies ``t_mev`` (MeV) at ``pos`` (cm) moving along ``direction``."""
    pdg = np.atleast_1d(np.asarray(pdg))
    n = len(pdg)
    t = np.broadcast_to(np.asarray(t_mev, np.float64), (n,))
    m = np.array([MASS_GEV[abs(int(c))] for c in pdg]) * 1e3
    p = np.sqrt(t * (t + 2 * m)) * 1e-3
    d = np.asarray(direction, np.float64) / np.linalg.norm(direction)
    return ParticleBatch(pdg, np.tile(pos, (n, 1)), p[:, None] * d, np.zeros(n),
                         np.arange(n, dtype=np.int32))


def kinetic_mev(batch: ParticleBatch) -> np.ndarray:
    return kinetic_energy(batch.pdg, batch.mom) * 1e3


def with_volume(detector, **ranges) -> LArTPC:
    """A copy of ``detector`` with another active volume (cm)."""
    box = dataclasses.asdict(detector.config.active_volume)
    box.update(ranges)
    return LArTPC(dataclasses.replace(detector.config, active_volume=Box(**box)))


@pytest.fixture(scope="module")
def tab(dune):
    return material.tables(dune.config.material, dune.config.transport)


# ----------------------------------------------------------------------------- material tables

def test_tables_cached_and_cheap(dune):
    cfg = dune.config
    start = time.perf_counter()
    material.build_tables(cfg.material, cfg.transport)
    assert time.perf_counter() - start < 0.05
    assert material.tables(cfg.material, cfg.transport) is material.tables(cfg.material, cfg.transport)
    equal_copy = dataclasses.replace(cfg.transport)
    assert material.tables(cfg.material, equal_copy) is material.tables(cfg.material, cfg.transport)


def test_range_table_inverse(tab):
    t = np.geomspace(0.5, 5e4, 500)
    for s in (MU, PI, K, P):
        sp = np.full(len(t), s)
        back = tab.energy_from("range_cm", sp, tab.at("range_cm", sp, t))
        np.testing.assert_allclose(back, t, rtol=1e-4)


def test_minimum_ionising_dedx_muon(tab):
    """PDG (Atomic and nuclear properties, liquid argon): ⟨−dE/dx⟩_min = 1.508 MeV cm²/g
    × 1.396 g/cm³ = 2.105 MeV/cm (Bethe–Bloch with the PDG LAr constants), at βγ ≈ 3.5."""
    t = np.geomspace(50.0, 2000.0, 4000)
    dedx = tab.at("dedx", np.full(len(t), MU), t)
    assert dedx.min() == pytest.approx(2.105, rel=0.05)
    betagamma = math.sqrt((1 + t[dedx.argmin()] / M_MU) ** 2 - 1)
    assert 3.0 < betagamma < 4.0


def test_csda_range_muon_1gev(tab):
    """PDG muon table for liquid argon: CSDA range at T = 1 GeV ≈ 617 g/cm² = 4.42 m."""
    assert tab.at("range_cm", np.array([MU]), np.array([1000.0]))[0] == pytest.approx(442.0, rel=0.05)


def test_csda_range_proton_100mev(tab):
    """PSTAR-scale proton range in LAr at T = 100 MeV: 7–8 cm (accepted: [7.0, 8.0] cm ± 5 %).

    The same integration is checked against a PSTAR value quoted exactly: water (I = 75 eV),
    T = 100 MeV → CSDA range 7.718 g/cm² (NIST PSTAR), within 2 %."""
    r = tab.at("range_cm", np.array([P]), np.array([100.0]))[0]
    assert 7.0 * 0.95 <= r <= 8.0 * 1.05
    water = Material(name="water", Z=10.0, A=18.0153, density_g_cm3=1.0, mean_excitation_ev=75.0,
                     radiation_length_cm=36.08, moliere_radius_cm=9.77, critical_energy_mev=78.3,
                     nuclear_interaction_length_cm=83.3,
                     sternheimer=Sternheimer(x0=0.2400, x1=2.8004, a=0.09116, k=3.4773,
                                             cbar=3.5017))
    water_tab = material.build_tables(water, Transport())
    r_water = water_tab.at("range_cm", np.array([P]), np.array([100.0]))[0]
    assert r_water == pytest.approx(7.718, rel=0.02)


# ----------------------------------------------------------------------------- stopping tracks

def test_stopping_muon_path_length_and_energy(dune, tab):
    """A stopping muon travels its CSDA range (less the track cut-off's residual range) and,
    stopping, deposits its kinetic energy exactly: deposits + δ-ray kinetic energies = T."""
    n, t0 = 150, 400.0
    out = tracks.propagate(make_batch([-13] * n, t0), dune, np.random.default_rng(1))
    path = np.bincount(out.deposits.track, out.deposits.dx, minlength=n)
    csda = (tab.at("range_cm", np.array([MU]), np.array([t0]))[0]
            - tab.at("range_cm", np.array([MU]), np.array([dune.config.transport.track_cutoff_mev]))[0])
    assert path.mean() == pytest.approx(csda, rel=0.02)
    sec = out.secondaries
    delta = sec.process == Process.DELTA
    assert delta.any() and np.all(sec.pdg[delta] == 11)
    visible = (np.bincount(out.deposits.track, out.deposits.de, minlength=n)
               + np.bincount(sec.parent[delta], kinetic_mev(sec)[delta], minlength=n))
    np.testing.assert_allclose(visible, t0, rtol=1e-6)
    # Michel positrons start where the muons stopped, after the muon lifetime (2.197 µs).
    michel = (sec.process == Process.DECAY) & (sec.pdg == -11)
    assert michel.sum() == n
    np.testing.assert_allclose(sec.pos[michel], out.end_pos[sec.parent[michel]])
    assert np.mean(sec.time[michel]) == pytest.approx(2197.0, rel=0.25)


def test_michel_spectrum(dune):
    """Michel spectrum dN/dx ∝ x²(3 − 2x), x = E/E_max, E_max = 52.8 MeV: the sampled maximum
    approaches 52.8 MeV (within 5 %) and the mean is 0.7·E_max (within 5 %)."""
    n = 3000
    out = tracks.propagate(make_batch([-13] * n, 3.0), dune, np.random.default_rng(2))
    sec = out.secondaries
    michel = (sec.process == Process.DECAY) & (sec.pdg == -11)
    assert michel.sum() == n
    energy = kinetic_mev(sec)[michel] + MASS_GEV[11] * 1e3
    assert energy.max() == pytest.approx(52.8, rel=0.05)
    assert energy.max() <= 52.83 * (1 + 1e-9)
    assert energy.mean() == pytest.approx(0.7 * 52.8, rel=0.05)


def test_stopped_negative_muons_mostly_captured(dune):
    """μ− stopping in argon: ~75 % nuclear capture, ~25 % decay (Suzuki, Measday & Roalsvig,
    PRC 35 (1987) 2212: τ(Ar) = 537 ns vs 2197 ns free); captures emit neutrons/photons."""
    n = 2000
    out = tracks.propagate(make_batch([13] * n, 3.0), dune, np.random.default_rng(3))
    sec = out.secondaries
    decayed = np.unique(sec.parent[(sec.process == Process.DECAY) & (sec.pdg == 11)])
    assert len(decayed) / n == pytest.approx(1 - dune.config.material.muon_capture_fraction, abs=0.03)
    captured = sec.process == Process.CAPTURE
    assert set(np.unique(sec.pdg[captured])) <= {2112, 22}
    assert not np.isin(sec.parent[captured], decayed).any()


def test_stopped_pions(dune):
    """π+ at rest → μ+ ν with T_μ = 4.12 MeV (two-body kinematics); stopped π− are absorbed
    (nucleons only, no muon)."""
    # 1.5 MeV: they stop within ~0.03 cm, decays in flight have a ~1e-4 chance.
    out = tracks.propagate(make_batch([211] * 200, 1.5), dune, np.random.default_rng(4))
    sec = out.secondaries
    mu = sec.pdg == -13
    assert mu.sum() == 200 and np.all(sec.process[mu] == Process.DECAY)
    np.testing.assert_allclose(kinetic_mev(sec)[mu], 4.12, rtol=0.01)
    assert np.all(sec.pdg[~mu] == 14)
    out = tracks.propagate(make_batch([-211] * 200, 1.5), dune, np.random.default_rng(50))
    sec = out.secondaries
    assert len(sec) and set(np.unique(sec.pdg)) <= {2212, 2112}
    assert np.all(sec.process == Process.CAPTURE)
    # total nucleon kinetic energy ≤ m_π (minus separation energies)
    per_pion = np.bincount(sec.parent, kinetic_mev(sec), minlength=200)
    assert per_pion.max() < MASS_GEV[211] * 1e3


def test_kaon_decay_modes(dune):
    """K+ → μ+ν (63.56 %) or π+π0 (20.67 %), other modes folded in: μ fraction 0.755."""
    n = 2000
    out = tracks.propagate(make_batch([321] * n, 20.0), dune, np.random.default_rng(6))
    sec = out.secondaries
    n_mu = np.sum(sec.pdg == -13)
    assert n_mu + np.sum(sec.pdg == 211) == n and np.sum(sec.pdg == 111) == n - n_mu
    assert n_mu / n == pytest.approx(0.6356 / (0.6356 + 0.2067), abs=0.03)


# ----------------------------------------------------------------------------- fluctuations, MS

def test_landau_most_probable_loss(dune):
    """Most probable loss of a 1 GeV muon in a 0.3 cm step vs the PDG Landau–Vavilov value
    Δp = ξ[ln(2mc²β²γ²/I) + ln(ξ/I) + 0.200 − β² − δ] (PDG eq. 34.12), within 10 %; the mean
    stays the Bethe–Bloch mean (within 3 %)."""
    det = with_volume(dune, z=(0.0, 30.0))
    out = tracks.propagate(make_batch([13] * 400, 1000.0, pos=(150.0, 0.0, 0.0)), det,
                           np.random.default_rng(7))
    full = np.isclose(out.deposits.dx, 0.3)
    de = out.deposits.de[full]
    cfg = dune.config.material
    gamma = 1 + 990.0 / M_MU          # mid-slab
    bg2 = gamma * gamma - 1
    beta2 = bg2 / gamma ** 2
    xi = 0.5 * material.K_BETHE * cfg.z_over_a * cfg.density_g_cm3 * 0.3 / beta2
    ival = cfg.mean_excitation_ev * 1e-6
    delta = material.density_effect(cfg, np.sqrt(bg2))
    mpv = xi * (math.log(2 * 0.511 * bg2 / ival) + math.log(xi / ival) + 0.2 - beta2 - delta)
    hist, edges = np.histogram(de, bins=np.arange(0.0, 1.5, 0.01))
    smooth = np.convolve(hist, np.ones(5) / 5, mode="same")
    mode = 0.5 * (edges[:-1] + edges[1:])[smooth.argmax()]
    assert mode == pytest.approx(mpv, rel=0.10)
    mean = material.bethe_dedx(cfg, M_MU, np.array([990.0]))[0] * 0.3
    delta_rays = out.secondaries.process == Process.DELTA
    total = out.deposits.de.sum() + kinetic_mev(out.secondaries)[delta_rays].sum()
    assert total / out.deposits.dx.sum() == pytest.approx(mean / 0.3, rel=0.03)


def test_highland_slab(dune):
    """RMS projected angle after a 10 cm LAr slab vs Highland (PDG eq. 34.16):
    θ₀ = 13.6 MeV/(βcp) √(x/X0) [1 + 0.038 ln(x/(X0β²))], within 10 %."""
    det = with_volume(dune, z=(0.0, 10.0))
    n, t0 = 3000, 1000.0
    out = tracks.propagate(make_batch([13] * n, t0, pos=(150.0, 0.0, 0.0)), det,
                           np.random.default_rng(8))
    dep = out.deposits
    assert np.allclose(out.end_pos[:, 2], 10.0)
    last = np.full(n, -1)
    last[dep.track] = np.arange(len(dep))          # the last deposit of each track
    direction = (out.end_pos - dep.pos[last]) / (0.5 * dep.dx[last])[:, None]
    theta_x = np.arctan2(direction[:, 0], direction[:, 2])
    theta_y = np.arctan2(direction[:, 1], direction[:, 2])
    p = math.sqrt(t0 * (t0 + 2 * M_MU))
    beta = p / (t0 + M_MU)
    x0 = dune.config.material.radiation_length_cm
    highland = 13.6 / (beta * p) * math.sqrt(10.0 / x0) * (1 + 0.038 * math.log(10.0 / (x0 * beta ** 2)))
    rms = math.sqrt(0.5 * (np.mean(theta_x ** 2) + np.mean(theta_y ** 2)))
    assert rms == pytest.approx(highland, rel=0.10)


# ----------------------------------------------------------------------------- geometry, neutrons

def test_leaving_muon_stops_at_boundary(dune):
    out = tracks.propagate(make_batch([13, -13], 5000.0, pos=(150.0, 0.0, 1300.0)), dune,
                           np.random.default_rng(9))
    np.testing.assert_allclose(out.end_pos[:, 2], 1400.0)
    assert dune.config.active_volume.contains(out.deposits.pos).all()
    assert not np.any(out.secondaries.process == Process.DECAY)      # no Michel: it left
    path = np.bincount(out.deposits.track, out.deposits.dx, minlength=2)
    assert np.all((path >= 100.0) & (path < 100.5))


def test_empty_batch_and_unknown_species(dune):
    out = tracks.propagate(ParticleBatch.empty(), dune, np.random.default_rng(0))
    assert out.end_pos.shape == (0, 3) and len(out.deposits) == 0 and len(out.secondaries) == 0
    with pytest.raises(ValueError, match="11"):
        tracks.propagate(make_batch([11], 10.0), dune, np.random.default_rng(0))


def test_born_outside_not_transported(dune):
    out = tracks.propagate(make_batch([2212], 100.0, pos=(150.0, 0.0, -5.0)), dune,
                           np.random.default_rng(10))
    assert len(out.deposits) == 0 and len(out.secondaries) == 0
    np.testing.assert_allclose(out.end_pos, [[150.0, 0.0, -5.0]])


def test_neutrons_leave_no_deposits(dune):
    """Neutrons ionise nothing; with probability ``neutron_recoil_probability`` they give one
    proton recoil (HADRONIC) of at most ``neutron_recoil_max_fraction`` of their energy."""
    tr = dune.config.transport
    n, t_n = 3000, 100.0
    batch = make_batch([2112] * n, t_n, pos=(180.0, 0.0, 700.0))
    out = tracks.propagate(batch, dune, np.random.default_rng(11))
    assert len(out.deposits) == 0
    sec = out.secondaries
    assert np.all(sec.pdg == 2212) and np.all(sec.process == Process.HADRONIC)
    assert len(np.unique(sec.parent)) == len(sec)
    expected = tr.neutron_recoil_probability * (1 - math.exp(-700.0 / tr.neutron_recoil_mean_free_path_cm))
    assert len(sec) / n == pytest.approx(expected, abs=0.03)
    assert kinetic_mev(sec).max() <= tr.neutron_recoil_max_fraction * t_n + 1e-9
    np.testing.assert_allclose(sec.pos, out.end_pos[sec.parent])
    gone = np.setdiff1d(np.arange(n), sec.parent)
    np.testing.assert_allclose(out.end_pos[gone, 2], 1400.0)


def test_mixed_batch_same_seed_identical(dune):
    batch = make_batch([13, 2212, 2212, 211, -211, 2112, 321, -13],
                       [2000.0, 300.0, 150.0, 400.0, 200.0, 100.0, 300.0, 50.0])
    a = tracks.propagate(batch, dune, np.random.default_rng(12))
    b = tracks.propagate(batch, dune, np.random.default_rng(12))
    c = tracks.propagate(batch, dune, np.random.default_rng(13))
    for field in ("pos", "de", "dx", "time", "track"):
        np.testing.assert_array_equal(getattr(a.deposits, field), getattr(b.deposits, field))
    for field in ("pdg", "pos", "mom", "time", "parent", "process"):
        np.testing.assert_array_equal(getattr(a.secondaries, field), getattr(b.secondaries, field))
    np.testing.assert_array_equal(a.end_pos, b.end_pos)
    assert not np.array_equal(a.deposits.de, c.deposits.de)
    assert a.end_pos.shape == (len(batch), 3)
    assert 5 not in a.deposits.track                  # the neutron (track 5) ionises nothing
    assert np.all(np.isin(a.deposits.track, batch.track_id))
    assert np.all(np.diff(a.deposits.time[a.deposits.track == 0]) > 0)


def test_hadronic_interaction_probability(dune, tab):
    """The fraction of protons interacting before they stop equals 1 − exp(−∫ dx/λ(T(x))),
    integrated here independently along the CSDA path (midpoint rule on 2000 steps)."""
    n, t0 = 3000, 400.0
    out = tracks.propagate(make_batch([2212] * n, t0, pos=(180.0, 0.0, 200.0)), dune,
                           np.random.default_rng(14))
    sec = out.secondaries
    interacted = len(np.unique(sec.parent[sec.process == Process.HADRONIC]))
    cfg = dune.config
    t = np.linspace(t0, cfg.transport.track_cutoff_mev, 2001)
    mid = 0.5 * (t[1:] + t[:-1])
    dx = -np.diff(t) / material.bethe_dedx(cfg.material, MASS_GEV[2212] * 1e3, mid)
    depth = np.sum(dx / material.interaction_length(cfg.transport, cfg.material, "p", mid))
    elastic_or_not = 1 - math.exp(-depth)
    assert interacted / n == pytest.approx(elastic_or_not, abs=0.03)


def test_proton_ranges_and_bragg_peak(dune, tab):
    """300 MeV protons that do not interact stop after their CSDA range with a Bragg peak:
    the last 2 cm deposit more per cm than the first 2 cm (≈ 3× or more)."""
    out = tracks.propagate(make_batch([2212] * 300, 300.0), dune, np.random.default_rng(15))
    sec = out.secondaries
    clean = np.setdiff1d(np.arange(300), sec.parent[sec.process == Process.HADRONIC])
    dep = out.deposits
    path = np.bincount(dep.track, dep.dx, minlength=300)[clean]
    csda = tab.at("range_cm", np.array([P]), np.array([300.0]))[0]
    assert path.mean() == pytest.approx(csda, rel=0.02)
    t = dep.track
    starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])     # deposits come in track order
    run = np.cumsum(dep.dx)
    travelled = run - np.repeat(run[starts] - dep.dx[starts], np.diff(np.r_[starts, len(t)]))
    left = np.bincount(t, dep.dx, minlength=300)[t] - travelled     # residual path
    one = np.isin(t, clean)
    head = one & (travelled < 2.0)
    tail = one & (left < 2.0)
    assert dep.de[tail].sum() / dep.dx[tail].sum() > 3 * dep.de[head].sum() / dep.dx[head].sum()


def test_config_validation():
    with pytest.raises(ValueError):
        Transport(pion_elastic_fraction=0.6, pion_absorption_fraction=0.5)
    with pytest.raises(ValueError):
        Transport(inelastic_leading_fraction=(0.8, 0.3))
    with pytest.raises(ValueError):
        Transport(fluctuation_collisions=0.0)


def test_stepping_in_rounds_is_seamless(dune, tab, monkeypatch):
    """Tracks stepped in many short rounds (as when a round's plan falls short) keep their CSDA
    path length, energy (within the continuous-loss fluctuations) and a continuous path."""
    monkeypatch.setattr(tracks, "PLAN_FACTOR", 0.0)     # rounds of PLAN_STEPS steps each
    n, t0 = 40, 300.0
    out = tracks.propagate(make_batch([13] * n, t0), dune, np.random.default_rng(16))
    dep = out.deposits
    csda = tab.at("range_cm", np.array([MU]), np.array([t0]))[0]
    path = np.bincount(dep.track, dep.dx, minlength=n)
    assert path.mean() == pytest.approx(csda, rel=0.02)
    delta = out.secondaries.process == Process.DELTA
    visible = (np.bincount(dep.track, dep.de, minlength=n)
               + np.bincount(out.secondaries.parent[delta], kinetic_mev(out.secondaries)[delta],
                             minlength=n))
    assert visible.mean() == pytest.approx(t0, rel=0.02)
    order = np.lexsort((dep.time, dep.track))
    same = np.diff(dep.track[order]) == 0
    gaps = np.linalg.norm(np.diff(dep.pos[order], axis=0), axis=1)[same]
    assert gaps.max() < 1.01 * dune.config.transport.step_cm
