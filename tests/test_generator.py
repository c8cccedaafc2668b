"""Interaction generator, flux and prompt decays (gnnu.sim.generator / flux / decays).

Statistical checks are seeded and use enough events that the stated tolerances are several
standard errors wide; the reference values (docs/design.md#dune-like-lartpc priors, PDG numbers) are cited per test.
"""

from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from gnnu.detectors import LArTPC, load_detector
from gnnu.detectors.common import Beam
from gnnu.errors import GnnuError
from gnnu.events import Flavour, Interaction, Mode, Process, bucket_count
from gnnu.sim import decays, flux, generator
from gnnu.sim.pdg import MASS_GEV, charge, kinetic_energy, mass
from gnnu.sim.records import ParticleBatch


@pytest.fixture(scope="module")
def det():
    return load_detector("dune")


def _events(det, flavour, n, seed, **kw):
    rng = np.random.default_rng(seed)
    return [generator.generate(flavour, det, rng, **kw) for _ in range(n)]


@pytest.fixture(scope="module")
def mixed(det):
    """2 000 beam events of each neutrino flavour (ν and ν̄ as the beam draws them)."""
    return {f: _events(det, f, 2000, 100 + int(f))
            for f in (Flavour.NUMU_CC, Flavour.NUE_CC, Flavour.NUTAU_CC, Flavour.NC)}


def _no_fsi(det):
    nuc = dataclasses.replace(det.config.beam.nuclear, pion_absorption=0.0, pion_charge_exchange=0.0,
                              pion_inelastic=0.0, nucleon_knockout=0.0, nucleon_pion_production=0.0)
    beam = dataclasses.replace(det.config.beam, nuclear=nuc)
    return LArTPC(dataclasses.replace(det.config, beam=beam))


# -- flux ----------------------------------------------------------------------------------------
def test_lbnf_flux_peak_and_fraction(det):
    """docs/design.md#dune-like-lartpc / DUNE TDR: on-axis νμ flux peaks near 2.5 GeV with ~92 % of it in 0.5–5 GeV."""
    beam = det.config.beam
    e = np.linspace(0.05, 20, 20000)
    assert e[np.argmax(flux.flux(beam, e))] == pytest.approx(2.5, abs=0.1)
    assert flux.flux_fraction(beam, 0.5, 5.0) == pytest.approx(0.92, abs=0.015)
    assert flux.flux_fraction(beam, 5.0, flux.FLUX_E_MAX_GEV) > 0.05      # a high-energy tail
    assert flux.flux_fraction(beam, 0.0, flux.FLUX_E_MAX_GEV) == pytest.approx(1.0, abs=1e-3)


def test_numi_offaxis_is_narrow_band():
    """NOvA's 14 mrad off-axis NuMI beam: a narrow peak near 2 GeV, most of the flux in 1–3 GeV."""
    beam = Beam(spectrum="numi_offaxis", peak_gev=2.0, width_gev=0.45, tail_fraction=0.05)
    e = np.linspace(0.05, 20, 20000)
    assert e[np.argmax(flux.flux(beam, e))] == pytest.approx(2.0, abs=0.05)
    assert flux.flux_fraction(beam, 1.0, 3.0) > 0.85
    wide = Beam()
    assert flux.flux_fraction(wide, 1.0, 3.0) < flux.flux_fraction(beam, 1.0, 3.0) - 0.2


def test_cross_section_shape():
    """σ/E is flat above a few GeV (DIS scaling; PDG 'neutrino cross sections' review) and falls
    below ~1 GeV."""
    e = np.array([0.5, 1.0, 3.0, 10.0])
    per_e = flux.cross_section_shape(e) / e
    assert per_e[3] == pytest.approx(per_e[2], rel=0.03)
    assert per_e[0] < 0.6 * per_e[3] and per_e[1] < per_e[2]


def test_sampled_energies_follow_flux_times_cross_section(det):
    beam = det.config.beam
    rng = np.random.default_rng(7)
    sample = flux.sample_energy(beam, rng, size=20000)
    assert sample.min() >= beam.e_min_gev and sample.max() <= beam.e_max_gev
    grid = np.linspace(beam.e_min_gev, beam.e_max_gev, 20001)
    pdf = flux.event_energy_pdf(beam, grid)
    cdf = np.concatenate([[0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    assert cdf[-1] == pytest.approx(1.0, abs=1e-3)
    assert stats.kstest(sample, lambda x: np.interp(x, grid, cdf)).pvalue > 0.01
    # σ ∝ E pushes the event spectrum above the flux: its mean exceeds the flux mean in range.
    f = flux.flux(beam, grid)
    assert sample.mean() > np.trapezoid(f * grid, grid) / np.trapezoid(f, grid) + 0.3


def test_nutau_threshold(det, mixed):
    """CC ντ: τ production needs E > ((m_τ + m_N)² − m_N²)/(2 m_N) ≈ 3.46 GeV (≈ 3.5 GeV)."""
    assert flux.TAU_THRESHOLD_GEV == pytest.approx(3.46, abs=0.01)
    energies = np.array([t.nu_energy for t, _ in mixed[Flavour.NUTAU_CC]])
    assert energies.min() > flux.TAU_THRESHOLD_GEV
    assert np.mean(energies > 3.5) > 0.999
    # suppressed near threshold: far fewer ντ than νμ events just above it, relative to 6–10 GeV
    numu = np.array([t.nu_energy for t, _ in mixed[Flavour.NUMU_CC]])
    ratio_tau = np.mean(energies < 4.5) / np.mean(energies > 6)
    ratio_mu = np.mean((numu > 3.46) & (numu < 4.5)) / np.mean(numu > 6)
    assert ratio_tau < 0.5 * ratio_mu
    with pytest.raises(GnnuError, match="above 3.4"):
        generator.generate(Flavour.NUTAU_CC, det, np.random.default_rng(0), energy_gev=3.0)


def test_cosmic_request_raises(det):
    with pytest.raises(GnnuError, match="cosmic"):
        generator.generate(Flavour.COSMIC, det, np.random.default_rng(0))


# -- modes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("energy, prior", [(1.0, (0.45, 0.35, 0.20)), (3.0, (0.20, 0.30, 0.50)),
                                           (5.0, (0.125, 0.25, 0.625))])
def test_mode_fractions_vs_energy(det, energy, prior):
    """docs/design.md#dune-like-lartpc priors for νμ CC, shares among QE/RES/DIS: 1 GeV 45/35/20 %, 3 GeV 20/30/50 %,
    5 GeV 10–15/25/60 %. 3 000 events: binomial error ≤ 0.9 %; tolerance 5 points absolute."""
    events = _events(det, Flavour.NUMU_CC, 3000, seed=int(energy * 10), energy_gev=energy,
                     antinu=False)
    c = collections.Counter(Mode(t.mode) for t, _ in events)
    n3 = c[Mode.QE] + c[Mode.RES] + c[Mode.DIS]
    got = np.array([c[Mode.QE], c[Mode.RES], c[Mode.DIS]]) / n3
    np.testing.assert_allclose(got, prior, atol=0.05)
    for t, _ in events:
        assert t.interaction == Mode(t.mode).interaction
        assert t.nu_energy == energy


def test_flux_averaged_mec_and_coh(mixed):
    """docs/design.md#dune-like-lartpc: flux-averaged MEC ~10 %, COH ~1 % of νμ CC (2 000 events: ±0.7 % / ±0.2 %)."""
    c = collections.Counter(Mode(t.mode) for t, _ in mixed[Flavour.NUMU_CC])
    n = len(mixed[Flavour.NUMU_CC])
    assert 0.07 < c[Mode.MEC] / n < 0.13
    assert 0.004 < c[Mode.COH] / n < 0.022
    assert {Interaction(Mode(m).interaction) for m in c} == set(Interaction)


def test_nc_single_pi0_fraction(mixed):
    """docs/design.md#dune-like-lartpc: single-π0 (one π0, no charged pion) is ~20–30 % of NC (2 000 events: ±1 %)."""
    nc = mixed[Flavour.NC]
    single = [np.sum(b.pdg == 111) == 1 and not np.any(np.abs(b.pdg) == 211) for _, b in nc]
    assert 0.18 < np.mean(single) < 0.32


# -- truth ---------------------------------------------------------------------------------------
def test_truth_consistency(det, mixed):
    lepton = {Flavour.NUMU_CC: 13, Flavour.NUE_CC: 11, Flavour.NUTAU_CC: 15}
    neutrino = {Flavour.NUMU_CC: 14, Flavour.NUE_CC: 12, Flavour.NUTAU_CC: 16}
    av, margin = det.config.active_volume, det.config.fiducial_margin_cm
    for flavour, events in mixed.items():
        anti = np.array([t.is_antinu for t, _ in events])
        # ν̄ share from beam.antinu_fraction = 0.3; binomial σ = 1 % at 2 000 events
        assert abs(anti.mean() - det.config.beam.antinu_fraction) < 0.04
        for t, b in events:
            sign = -1 if t.is_antinu else 1
            assert t.flavour == flavour and t.interaction == Mode(t.mode).interaction
            if flavour == Flavour.NC:
                assert abs(t.nu_pdg) in (12, 14, 16) and b.pdg[0] == t.nu_pdg
            else:
                # μ− (PDG 13) for νμ CC, μ+ (−13) for ν̄μ CC, etc.
                assert t.nu_pdg == sign * neutrino[flavour] and b.pdg[0] == sign * lepton[flavour]
                assert charge(b.pdg[:1])[0] == -sign
            assert np.sign(t.nu_pdg) == sign
            m = mass(b.pdg[:1])[0]
            assert t.lep_energy == pytest.approx(math.sqrt(b.mom[0] @ b.mom[0] + m * m), rel=1e-12)
            assert t.y == pytest.approx(1 - t.lep_energy / t.nu_energy) and 0 <= t.y < 1
            vtx = np.array([t.vtx_x, t.vtx_y, t.vtx_z])
            assert av.contains(vtx[None], margin)[0]
            assert np.all(b.pos == vtx) and np.all(b.time == 0)
    forced = _events(det, Flavour.NUMU_CC, 50, seed=5, antinu=True)
    assert all(t.is_antinu == 1 and b.pdg[0] == -13 for t, b in forced)


def test_counts_agree_with_primaries_and_thresholds(det, mixed):
    vis = det.config.visibility
    cuts = {2212: vis.proton_ke_mev, 211: vis.charged_pion_ke_mev, 111: vis.neutral_pion_ke_mev,
            2112: vis.neutron_ke_mev}
    names = {2212: "proton", 211: "charged_pion", 111: "neutral_pion", 2112: "neutron"}
    seen = collections.Counter()
    for events in mixed.values():
        for t, b in events:
            hadrons = b.select(slice(1, None))
            ke = kinetic_energy(hadrons.pdg, hadrons.mom) * 1e3
            for code, cut in cuts.items():
                n = int(np.sum((np.abs(hadrons.pdg) == code) & (ke > cut)))
                assert getattr(t, f"n_{names[code]}_raw") == n
                assert getattr(t, f"n_{names[code]}") == bucket_count(n)
                seen[(code, min(n, 3))] += 1
    # every bucket of every count occurs (the labels are learnable, not constant)
    assert all(seen[(code, k)] > 0 for code in cuts for k in range(4))


def test_energy_momentum_and_charge_conservation(det, mixed):
    """Exact 4-momentum conservation with off-shell struck nucleons (generator docstring):
    Σ E_final = E_ν + Σ_struck (√(m² + p_F²) − E_b), one struck nucleon per final nucleon (B), so
    Σ E_final − E_ν − Σ m_N lies in B·[−E_b, T_F,max − E_b] (± m_n − m_p, which nucleon was struck
    is not recorded) and |Σ p_final − E_ν ẑ| ≤ B·k_F. COH leaves the nucleus untouched: Σ E_final
    = E_ν. Charge: the final state carries the struck nucleons' charge, 0 ≤ Q ≤ B."""
    nuc = det.config.beam.nuclear
    kf, eb = nuc.fermi_momentum_gev, nuc.binding_energy_gev
    t_max = math.hypot(MASS_GEV[2212], kf) - MASS_GEV[2212]
    dm = MASS_GEV[2112] - MASS_GEV[2212]
    for events in mixed.values():
        for t, b in events:
            m = mass(b.pdg)
            e = np.sum(np.sqrt(np.sum(b.mom ** 2, axis=1) + m * m))
            nucleons = np.isin(np.abs(b.pdg), (2212, 2112))
            n_b = int(nucleons.sum())
            excess = e - t.nu_energy - m[nucleons].sum()
            missing_p = np.linalg.norm(b.mom.sum(axis=0) - [0, 0, t.nu_energy])
            q = int(charge(b.pdg).sum())
            if t.mode == Mode.COH:
                assert n_b == 0 and abs(excess) < 1e-9 and missing_p < 0.5 and q == 0
                continue
            assert n_b >= 1
            assert -n_b * (eb + dm) - 1e-9 <= excess <= n_b * (t_max - eb + dm) + 1e-9
            assert missing_p <= n_b * kf + 1e-9
            assert 0 <= q <= n_b


def test_charges_without_fsi(det):
    """Charge conservation at the vertex (FSI off): νn → μ−p and ν̄p → μ+n for QE; the hadrons
    carry the struck nucleons' charge + 1 (ν) or − 1 (ν̄): Δ++ / Δ+ from νp / νn, Δ0 / Δ− for ν̄;
    one struck nucleon for QE/RES/DIS, two for MEC, none for COH (ν A → μ− π+ A)."""
    clean = _no_fsi(det)
    struck = {Mode.QE: 1, Mode.RES: 1, Mode.DIS: 1, Mode.MEC: 2, Mode.COH: 0}
    for anti, lepton, nucleon in ((False, 13, 2212), (True, -13, 2112)):
        dq = -1 if anti else 1
        events = _events(clean, Flavour.NUMU_CC, 1500, seed=11, energy_gev=3.0, antinu=anti)
        assert {Mode(t.mode) for t, _ in events} == set(struck)
        for t, b in events:
            mode = Mode(t.mode)
            nucleons = int(np.isin(b.pdg, (2212, 2112)).sum())
            target_q = int(charge(b.pdg[1:]).sum()) - dq
            assert nucleons == struck[mode] and 0 <= target_q <= struck[mode]
            if mode == Mode.QE:
                assert b.pdg.tolist() == [lepton, nucleon]
            elif mode == Mode.RES:
                assert len(b) == 3 and np.sum(np.isin(np.abs(b.pdg), (211, 111))) == 1
            elif mode == Mode.COH:
                assert b.pdg.tolist() == [lepton, 211 * dq]


def test_same_seed_same_output(det):
    def run(seed):
        rng = np.random.default_rng(seed)
        return [generator.generate(Flavour(i % 4), det, rng) for i in range(40)]
    a, b, c = run(3), run(3), run(4)
    for (ta, ba), (tb, bb) in zip(a, b):
        assert ta == tb
        for k in ("pdg", "pos", "mom", "time"):
            np.testing.assert_array_equal(getattr(ba, k), getattr(bb, k))
    assert [t for t, _ in a] != [t for t, _ in c]


# -- decays --------------------------------------------------------------------------------------
def _random_batch(code, n, rng):
    p = rng.uniform(0, 5, n)[:, None] * decays.isotropic(n, rng)
    code = np.asarray(code)
    pdg = np.broadcast_to(code, (n,)).astype(np.int32)
    return ParticleBatch(pdg, rng.uniform(0, 100, (n, 3)), p, rng.uniform(0, 10, n),
                         track_id=np.arange(n) + 7)


def _four_momentum_sums(out, batch):
    sec = out.secondaries
    m = mass(sec.pdg)
    p4 = np.concatenate([np.sqrt(np.sum(sec.mom ** 2, axis=1) + m * m)[:, None], sec.mom], axis=1)
    rows = sec.parent - 7
    total = np.zeros((len(batch), 4))
    np.add.at(total, rows, p4)
    return total, rows


def test_pi0_decay_kinematics(det):
    """π0 → γγ: invariant mass = m_π0 (134.977 MeV, PDG) to 1e-6 relative, momentum conserved;
    Dalitz e+e−γ in 1.174 % of decays (PDG): 20 000 decays expect 235 ± 15."""
    rng = np.random.default_rng(21)
    batch = _random_batch(111, 20000, rng)
    out = decays.decay(batch, det, rng)
    assert len(out.deposits) == 0
    np.testing.assert_array_equal(out.end_pos, batch.pos)
    sec = out.secondaries
    assert np.all(sec.process == Process.DECAY)
    np.testing.assert_array_equal(sec.pos, batch.pos[sec.parent - 7])
    np.testing.assert_array_equal(sec.time, batch.time[sec.parent - 7])
    total, rows = _four_momentum_sums(out, batch)
    inv = np.sqrt(total[:, 0] ** 2 - np.sum(total[:, 1:] ** 2, axis=1))
    np.testing.assert_allclose(inv, decays.M_PI0, rtol=1e-6)
    np.testing.assert_allclose(total[:, 1:], batch.mom, atol=1e-9)
    n_products = np.bincount(rows, minlength=len(batch))
    assert set(n_products.tolist()) == {2, 3}
    n_dalitz = int(np.sum(n_products == 3))
    assert abs(n_dalitz - 0.01174 * 20000) < 4 * math.sqrt(0.01174 * 20000)
    assert collections.Counter(sec.pdg.tolist()) == {22: 2 * 20000 - n_dalitz, 11: n_dalitz,
                                                      -11: n_dalitz}


def _tau_mode_of(codes):
    return tuple(sorted(abs(c) for c in codes if abs(c) not in (12, 14, 16)) +
                 sorted(c for c in codes if abs(c) in (12, 14, 16)))


@pytest.mark.parametrize("sign", [1, -1])
def test_tau_decays(det, sign):
    """τ branching fractions (PDG 2024, renormalised over the modeled modes) within 4 binomial σ;
    4-momentum and charge conserved; a ντ (ν̄τ for τ+) in every decay."""
    rng = np.random.default_rng(31 + sign)
    n = 20000
    batch = _random_batch(15 * sign, n, rng)
    out = decays.decay(batch, det, rng)
    sec = out.secondaries
    total, rows = _four_momentum_sums(out, batch)
    inv = np.sqrt(np.maximum(total[:, 0] ** 2 - np.sum(total[:, 1:] ** 2, axis=1), 0))
    np.testing.assert_allclose(inv, decays.M_TAU, rtol=1e-6)
    np.testing.assert_allclose(total[:, 1:], batch.mom, atol=1e-8)
    q = np.zeros(n, int)
    np.add.at(q, rows, charge(sec.pdg))
    assert np.all(q == -sign)
    split = np.split(sec.pdg, np.flatnonzero(np.diff(rows)) + 1)
    assert all(np.sum(codes == 16 * sign) == 1 for codes in split)
    counts = collections.Counter(_tau_mode_of(codes * sign) for codes in split)
    for (label, _, products, _), br in zip(decays.TAU_MODES, decays.TAU_BRANCHING):
        expected = n * br
        got = counts.pop(_tau_mode_of([16, *products]))
        assert abs(got - expected) < 4 * math.sqrt(expected * (1 - br)), label
    assert not counts
    # V−A Michel spectrum x²(3 − 2x): ⟨E_e⟩ = 0.7 · m_τ/2 in the τ rest frame (checked at rest)
    rest = ParticleBatch(np.full(20000, 15 * sign), np.zeros((20000, 3)), np.zeros((20000, 3)),
                         np.zeros(20000), track_id=np.arange(20000))
    sec = decays.decay(rest, det, rng).secondaries
    e = np.linalg.norm(sec.mom[np.abs(sec.pdg) == 11], axis=1)
    assert e.mean() == pytest.approx(0.7 * decays.M_TAU / 2, rel=0.02)


def test_phase_space_conserves_and_is_on_shell():
    rng = np.random.default_rng(5)
    masses = np.array([0.0, MASS_GEV[211], MASS_GEV[111], MASS_GEV[211], MASS_GEV[2212]])
    m_parent = rng.uniform(1.5, 4.0, 500)
    ps = decays.phase_space(m_parent, masses, rng)
    np.testing.assert_allclose(ps[..., 0].sum(axis=1), m_parent, rtol=1e-12)
    np.testing.assert_allclose(ps[..., 1:].sum(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(ps[..., 0] ** 2 - np.sum(ps[..., 1:] ** 2, axis=-1),
                               np.broadcast_to(masses ** 2, ps.shape[:2]),
                               atol=1e-12)


def test_decay_rejects_other_particles(det):
    batch = _random_batch(211, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="211"):
        decays.decay(batch, det, np.random.default_rng(0))


def test_nc_elastic_share_follows_the_measured_nce_to_ccqe_ratio(det):
    """σ(NC elastic)/σ(CCQE) = 0.192 ± 0.035 (MiniBooNE, PRD 82 (2010) 092005); with σ_NC/σ_CC ≈ 0.3
    (docs/design.md#dune-like-lartpc) an NC event is elastic 0.64 times as often as a CC event is QE. 3 000 NC events
    at 3 GeV: binomial error of the elastic share ≈ 0.6 %."""
    events = _events(det, Flavour.NC, 3000, seed=33, energy_gev=3.0, antinu=False)
    c = collections.Counter(Mode(t.mode) for t, _ in events)
    cc = generator.mode_fractions(3.0)
    nc = generator.mode_fractions(3.0, nc=True)
    assert nc[Mode.QE] / cc[Mode.QE] == pytest.approx(0.192 / 0.3, rel=1e-9)
    assert sum(nc.values()) == pytest.approx(1.0)
    assert c[Mode.QE] / len(events) == pytest.approx(nc[Mode.QE], abs=0.025)
    assert c[Mode.QE] / len(events) < 0.8 * cc[Mode.QE]
