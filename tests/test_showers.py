"""Electromagnetic cascades (gnnu.sim.showers): physics validation against reference values.

LAr numbers come from configs/detectors/dune.yaml (PDG): X0 = 14.0 cm, R_M = 9.043 cm,
E_c = 32.84 MeV. Every test is seeded; shower samples are shared between tests (module fixtures)
to keep the file fast.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.optimize import curve_fit

from gnnu.detectors.lartpc import LArTPC
from gnnu.sim import showers
from gnnu.sim.records import ParticleBatch

MIP_MEV_PER_CM = 2.1          # minimum-ionising dE/dx in LAr (DESIGN §4.1 table)
START = np.array([180.0, 0.0, 100.0])   # well inside the DUNE active volume, beam along +z


def shoot(detector, pdg: int, energy_gev: float, n: int, seed: int, start=START,
          direction=(0.0, 0.0, 1.0)):
    """Cascade ``n`` identical particles of kinetic energy ``energy_gev``; returns StageOutput."""
    m = 0.0 if pdg == 22 else 0.51099895e-3
    p = math.sqrt((energy_gev + m) ** 2 - m * m)
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    batch = ParticleBatch(np.full(n, pdg), np.tile(start, (n, 1)), np.tile(p * d, (n, 1)),
                          np.zeros(n), track_id=np.arange(n) + 10)
    return showers.cascade(batch, detector, np.random.default_rng(seed))


def with_transport(detector, **changes) -> LArTPC:
    cfg = detector.config
    return LArTPC(dataclasses.replace(cfg, transport=dataclasses.replace(cfg.transport, **changes)))


def gamma_profile(t, total, a, b):
    """dE/dt = E b (bt)^(a−1) e^(−bt) / Γ(a) (PDG 'Passage of particles', eq. 34.35)."""
    return total * b * (b * t) ** (a - 1.0) * np.exp(-b * t) / math.gamma(a)


def window_energy(dep, depth, length):
    """Energy (MeV) per shower deposited at depth in [0, length) cm; a step deposit counts with
    the fraction of its length (dx, along z) inside the window."""
    half = 0.5 * dep.dx
    inside = np.clip(depth + half, 0.0, length) - np.clip(depth - half, 0.0, length)
    frac = np.where(dep.dx > 0, inside / np.maximum(dep.dx, 1e-12),
                    ((depth >= 0) & (depth < length)).astype(float))
    return dep.de * frac


PROFILE_EDGES = np.arange(0.0, 30.001, 0.25)          # depth bins, X0
RADIUS_EDGES = np.append(np.linspace(0.0, 100.0, 2001), np.inf)   # radial bins, cm


def electron_summary(detector, energy_gev: float, n: int, seed: int, chunk: int = 50) -> dict:
    """Summaries of ``n`` electron showers, simulated ``chunk`` at a time (bounded memory):
    mean longitudinal profile ``profile`` (MeV per depth bin), radial energy histograms of the
    step deposits ``radial_steps`` and of all deposits ``radial_all`` (MeV, about the axis), and
    ``trunk`` (MeV per shower deposited in the first 2.5 cm of depth)."""
    x0 = detector.config.material.radiation_length_cm
    out = {"profile": 0.0, "radial_steps": 0.0, "radial_all": 0.0, "trunk": []}
    for i, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        dep = shoot(detector, 11, energy_gev, m, seed=seed * 1000 + i).deposits
        depth = dep.pos[:, 2] - START[2]
        out["profile"] = out["profile"] + np.histogram(depth / x0, PROFILE_EDGES, weights=dep.de)[0]
        r = np.hypot(dep.pos[:, 0] - START[0], dep.pos[:, 1] - START[1])
        step = dep.dx > 0
        out["radial_steps"] = out["radial_steps"] + np.histogram(r[step], RADIUS_EDGES,
                                                                 weights=dep.de[step])[0]
        out["radial_all"] = out["radial_all"] + np.histogram(r, RADIUS_EDGES, weights=dep.de)[0]
        out["trunk"].append(np.bincount(dep.track - 10, window_energy(dep, depth, 2.5),
                                        minlength=m))
    out["profile"] = out["profile"] / n
    out["trunk"] = np.concatenate(out["trunk"])
    return out


@pytest.fixture(scope="module")
def electron_showers(dune):
    """Summaries of electron showers at 1, 2 and 5 GeV (500, 600, 300 showers): enough that the
    fitted t_max scatters by ≲ 0.08 X0 between seeds."""
    return {e: electron_summary(dune, e, n, seed=100 + i)
            for i, (e, n) in enumerate(((1.0, 500), (2.0, 600), (5.0, 300)))}


def test_photon_mean_conversion_distance(dune):
    """High-energy photons convert after 9/7 X0 on average: 9/7 × 14.0 cm = 18.0 cm
    (PDG 'Passage of particles through matter': σ_pair → 7/(9 X0) for E ≫ m_e). A high cut-off
    keeps the cascades short; it does not change where the photons first interact."""
    n = 3000
    out = shoot(with_transport(dune, em_cutoff_mev=500.0), 22, 5.0, n, seed=1)
    dist = np.linalg.norm(out.end_pos - START, axis=1)
    reference = 9.0 / 7.0 * dune.config.material.radiation_length_cm
    assert reference == pytest.approx(18.0, abs=0.01)
    assert dist.mean() == pytest.approx(reference, rel=0.05)          # stat. error ≈ 1.8 %
    assert np.std(dist) == pytest.approx(dist.mean(), rel=0.08)       # exponential: σ = mean


def test_soft_photons_fly_then_deposit_at_one_point(dune):
    """Photons below the cut-off deposit all their energy at one point after an exponential
    flight; at 0.5 MeV the attenuation length is the Compton one: σ_KN(0.5 MeV) =
    2.89e-25 cm² per electron (Klein–Nishina total cross-section), n_e = ρ N_A Z/A → λ = 9.1 cm
    (photoabsorption adds < 0.5 % at this energy)."""
    n = 4000
    out = shoot(dune, 22, 0.5e-3, n, seed=2)
    dep = out.deposits
    assert len(dep) == n and np.all(dep.dx == 0) and np.allclose(dep.de, 0.5)
    assert np.array_equal(np.sort(dep.track), np.arange(n) + 10)
    mat = dune.config.material
    n_e = mat.density_g_cm3 * 6.02214076e23 * mat.Z / mat.A
    lam = 1.0 / (n_e * 2.89e-25)
    dist = np.linalg.norm(dep.pos - START, axis=1)
    assert dist.mean() == pytest.approx(lam, rel=0.05)                # stat. error ≈ 1.6 %
    assert np.allclose(out.end_pos, dep.pos[np.argsort(dep.track)])    # end = absorption point


def test_longitudinal_maximum(electron_showers):
    """t_max of electron showers (gamma-function fit of the mean profile, t_max = (a−1)/b) vs the
    PDG formula t_max = ln(E/E_c) − 0.5 (X0), E_c = 32.84 MeV.

    Stated tolerance (not 5 %): ±0.45 X0 on each energy and 1.0 ± 0.2 on the slope
    dt_max/d ln E. The PDG's C_e = −0.5 summarises EGS4 fits made mostly at large E/E_c; at
    E/E_c = 30–150 this cascade model peaks 0.15–0.3 X0 earlier (−10 % at 1 GeV, −4 % at 5 GeV),
    insensitive to the cut-off, the sub-step and multiple scattering. (The profile is not exactly
    a gamma function: weighting the fit by the bins' errors moves t_max by another −0.3 X0.)
    """
    x0, ec = 14.0, 32.84
    t_max = {}
    centres = 0.5 * (PROFILE_EDGES[1:] + PROFILE_EDGES[:-1])
    for e_gev, summary in electron_showers.items():
        width = PROFILE_EDGES[1] - PROFILE_EDGES[0]
        (total, a, b), _ = curve_fit(gamma_profile, centres, summary["profile"] / width,
                                     p0=[e_gev * 1e3, 3.0, 0.5])
        t_max[e_gev] = (a - 1.0) / b
        reference = math.log(e_gev * 1e3 / ec) - 0.5
        assert t_max[e_gev] == pytest.approx(reference, abs=0.45), (e_gev, t_max[e_gev], reference)
        assert 0.4 < b < 0.75                                         # PDG: b ≈ 0.5–0.6
        assert total == pytest.approx(e_gev * 1e3, rel=0.05)
    slope = (t_max[5.0] - t_max[1.0]) / math.log(5.0)
    assert slope == pytest.approx(1.0, abs=0.2)


def test_lateral_containment(electron_showers, dune):
    """90 % lateral containment vs the Molière radius R_M = 9.043 cm (PDG: 'on the average only
    about 10 % of the energy lies outside the cylinder with radius R_M'), energy-weighted radial
    distance from the shower axis, integrated over depth, 2 GeV electrons.

    Molière's theory describes the multiple scattering of the shower's e±: the 90 % radius of the
    e± ionisation (step deposits) is within 10 % of R_M. All deposits together reach ≈ 1.3 R_M
    (stated tolerance: between 1.0 and 1.45 R_M): in argon the 1–20 MeV photons that MS-deflected
    electrons radiate fly 12–29 cm (1.4–3.2 R_M) before they Compton-scatter or convert, a halo
    that the PDG rule of thumb (from dense absorbers) does not cover.
    """
    summary = electron_showers[2.0]
    rm = dune.config.material.moliere_radius_cm

    def r90(hist):
        cum = np.cumsum(hist)
        return RADIUS_EDGES[1:][np.searchsorted(cum, 0.9 * cum[-1])]

    assert r90(summary["radial_steps"]) == pytest.approx(rm, rel=0.10)
    assert 1.0 * rm < r90(summary["radial_all"]) < 1.45 * rm


def test_trunk_dedx_electron_one_mip_photon_two(electron_showers, dune):
    """dE/dx over the first 2.5 cm along the initial direction (median over showers): an electron
    is ≈ 1 MIP, a photon from its conversion point ≈ 2 MIP (its e+e− pair shares one path);
    MIP = 2.1 MeV/cm (DESIGN §4.1). This is the e/γ separation cue of LArTPCs."""
    window = 2.5
    e_el = electron_showers[1.0]["trunk"]
    assert np.median(e_el) / window == pytest.approx(MIP_MEV_PER_CM, rel=0.05)

    n = 600
    out = shoot(dune, 22, 1.0, n, seed=3)
    dep = out.deposits
    depth = dep.pos[:, 2] - out.end_pos[dep.track - 10, 2]           # from the conversion point
    e_ph = np.bincount(dep.track - 10, window_energy(dep, depth, window), minlength=n)
    assert np.median(e_ph) / window == pytest.approx(2 * MIP_MEV_PER_CM, rel=0.05)
    gap = out.end_pos[:, 2] - START[2]                               # the conversion gap
    assert np.median(gap) > 5.0


@pytest.mark.parametrize("pdg,extra_mev", [(11, 0.0), (-11, 2 * 0.51099895), (22, 0.0)])
def test_contained_showers_deposit_their_energy(dune, pdg, extra_mev):
    """Energy conservation: a contained e−/γ shower deposits its kinetic energy, an e+ shower
    also the 1.022 MeV of its annihilation (every pair's e+ annihilates, giving back 2 m_e)."""
    n = 40
    out = shoot(dune, pdg, 0.5, n, seed=4, start=np.array([180.0, 0.0, 600.0]))
    per_shower = np.bincount(out.deposits.track - 10, out.deposits.de, minlength=n)
    assert per_shower == pytest.approx(500.0 + extra_mev, rel=0.02)
    assert per_shower.mean() == pytest.approx(500.0 + extra_mev, rel=0.005)


def test_deposits_carry_initiator_ids_and_sane_units(dune):
    """Deposits belong to their initiating particle (batch.track_id), sit at sub-step midpoints
    with dx ≤ the sub-step, and happen no earlier than light from the start allows (ns)."""
    batch = ParticleBatch([11, 22, -11, 22], np.tile(START, (4, 1)),
                          [[0, 0, 0.3], [0, 0.2, 0.1], [0.05, 0, 0], [0, 0, 0.0005]],
                          np.full(4, 7.0), track_id=[3, 8, 11, 42])
    out = showers.cascade(batch, dune, np.random.default_rng(5))
    dep = out.deposits
    assert len(out.secondaries) == 0 and out.end_pos.shape == (4, 3)
    assert set(np.unique(dep.track)) <= {3, 8, 11, 42}
    assert {3, 8, 11} <= set(np.unique(dep.track))
    h = dune.config.transport.em_step_x0 * dune.config.material.radiation_length_cm
    assert np.all((dep.dx >= 0) & (dep.dx <= h + 1e-9)) and np.all(dep.de >= 0)
    light = 7.0 + np.linalg.norm(dep.pos - START, axis=1) / 29.9792458
    assert np.all(dep.time >= light - 1e-6)


def test_same_seed_same_output(dune):
    """Reproducibility: the same seed gives bit-identical deposits and end points."""
    runs = [shoot(dune, 11, 1.0, 3, seed=9) for _ in range(2)]
    a, b = (r.deposits for r in runs)
    for name in ("pos", "de", "dx", "time", "track"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert np.array_equal(runs[0].end_pos, runs[1].end_pos)
    assert not np.array_equal(shoot(dune, 11, 1.0, 3, seed=10).deposits.de.sum(), a.de.sum())


def test_particles_leaving_the_volume_stop(dune):
    """An electron heading out through the downstream face stops being tracked there: no deposit
    lies more than one sub-step beyond the face, its end point is on the face, and almost none of
    its 1 GeV is deposited; a photon that leaves ends on the face too."""
    z_face = dune.config.active_volume.z[1]
    h = dune.config.transport.em_step_x0 * dune.config.material.radiation_length_cm
    start = np.array([180.0, 0.0, z_face - 2.0])
    out = shoot(dune, 11, 1.0, 20, seed=6, start=start)
    assert np.all(out.deposits.pos[:, 2] <= z_face + h)
    assert np.allclose(out.end_pos[:, 2], z_face)
    assert out.deposits.de.sum() / 20 < 20.0
    out = shoot(dune, 22, 5.0, 20, seed=7, start=np.array([180.0, 0.0, z_face - 0.01]))
    left = out.end_pos[:, 2] >= z_face - 1e-9
    assert left.sum() >= 19 and np.allclose(out.end_pos[left, 2], z_face)
