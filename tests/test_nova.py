"""NOvA-like segmented scintillator (issue 7, docs/design.md#nova-like-segmented-scintillator): geometry, readout (attenuation,
Birks), cosmic rays, the NuMI spectrum, hit files with planes, displays and the nova-cvn preset.

References (cited again where used): NOvA FD 896 planes × 384 cells, cells 3.9 cm × 6.0 cm
(interior) × 15.5 m (Fermilab news 2013; NOvA TDR FERMILAB-DESIGN-2007-01); cosmic-muon
intensity ∝ cos²θ and μ+/μ− ≈ 1.25 (PDG Review of Particle Physics, "Cosmic rays");
Birks, Proc. Phys. Soc. A 64 (1951) 874; NuMI 14 mrad off-axis beam peaked at ≈ 2 GeV (NOvA TDR).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from gnnu.cli.sim import main
from gnnu.detectors import detector_from_dict, load_detector
from gnnu.detectors.scintillator import Scintillator
from gnnu.display import draw_events
from gnnu.errors import ConfigError
from gnnu.events import Flavour, Hits, Interaction, Mode
from gnnu.images import NOVA_CVN, get_preset, render
from gnnu.io.hitfile import HitFile, write_hits
from gnnu.sim import cosmics, flux, scint_readout, tracks, transport
from gnnu.sim.material import bethe_dedx
from gnnu.sim.records import Deposits, ParticleBatch
from gnnu.sim.simulate import simulate_event

MUON_MASS_MEV = 105.6583755


@pytest.fixture(scope="module")
def nova():
    return load_detector("nova")


def _with(detector, **sections):
    """A copy of ``detector`` with config sections' fields replaced (``cosmics={...}``)."""
    cfg = detector.config
    new = {k: dataclasses.replace(getattr(cfg, k), **v) for k, v in sections.items()}
    return Scintillator(dataclasses.replace(cfg, **new))


# -- geometry ---------------------------------------------------------------------------------
def test_geometry_cell_count_and_view_alternation(nova):
    """NOvA FD: 896 planes of 384 cells (344 064 channels), XZ and YZ planes alternating."""
    assert (nova.n_planes, nova.n_cells, nova.n_wires(0), nova.n_wires(1)) == (896, 384, 384, 384)
    assert nova.n_planes * nova.n_cells == 344_064
    assert nova.views == ("XZ", "YZ")
    assert nova.plane_view(np.arange(6)).tolist() == [0, 1, 0, 1, 0, 1]
    assert nova.planes_of_view(1)[:3].tolist() == [1, 3, 5] and len(nova.planes_of_view(0)) == 448
    # cells 15.5 m long (Fermilab news 2013): the plane width 384 × 4.05 cm
    assert nova.cell_length_cm == pytest.approx(1555.2)


def test_active_volume_must_match_segmentation(nova):
    data = dataclasses.asdict(nova.config)
    data["segmentation"]["n_planes"] = 100
    with pytest.raises(ConfigError, match="does not match the segmentation"):
        detector_from_dict(data, "test")


def test_cell_position_and_scintillator_interior(nova):
    """Plane p sits at z = (p + ½)·6.6 cm; cell c of a view at (c + ½)·4.05 cm from the edge."""
    pos = nova.hit_positions([0, 1, 0], [0, 383, 100], [0.0, 0.0, 5.0], plane=[0, 1, 894])
    assert pos.shape == (3, 2) and pos.dtype == np.float32
    np.testing.assert_allclose(
        pos, [[3.3, -775.575], [9.9, 775.575], [5903.7, -777.6 + 100.5 * 4.05]], atol=1e-3)
    with pytest.raises(ValueError, match="plane"):
        nova.hit_positions([0], [0], [0.0])
    # a cell's scintillator (3.9 × 6.0 cm) vs its PVC walls; distance to the readout end
    centre = [-777.6 + 10.5 * 4.05, 100.0, 6.6 * 4.5]          # plane 4 (XZ), cell 10
    wall_x = [-777.6 + 11 * 4.05, 100.0, 6.6 * 4.5]            # between cells 10 and 11
    wall_z = [centre[0], 100.0, 6.6 * 5]                        # between planes 4 and 5
    plane, view, cell, inside, dist = nova.locate(np.array([centre, wall_x, wall_z]))
    assert (plane[0], view[0], cell[0]) == (4, 0, 10)
    assert inside.tolist() == [True, False, False]
    assert dist[0] == pytest.approx(777.6 - 100.0)              # vertical cells read at the top


# -- tracks in cells --------------------------------------------------------------------------
def test_forward_muon_lights_one_or_two_cells_per_plane(nova):
    """Muons at α = 10° to the beam in the x–z plane cross 6.0 cm of scintillator per plane:
    without threshold ≈ 1 + (6.0·tanα − 0.15 cm wall)/4.05 ≈ 1.22 cells per XZ plane and 1 per
    YZ plane (constant y); the 12 PE threshold drops thin corner clips, so fewer, but ≥ 1."""
    a = math.radians(10.0)
    y = -777.6 + (np.array([150, 170, 190, 210]) + 0.5) * 4.05        # YZ cell centres
    x = np.array([-500.0, -200.0, 100.0, 400.0])                      # apart: no shared cells
    n = len(y)
    muons = ParticleBatch(np.full(n, 13), np.stack([x, y, np.full(n, 1000.0)], 1),
                          np.tile([2.0 * math.sin(a), 0.0, 2.0 * math.cos(a)], (n, 1)), np.zeros(n))
    deposits, particles = transport.run(muons, nova, np.random.default_rng(5))
    end_plane = int((particles["end_z"][:n].min() - 1.0) // 6.6)
    crossed = np.arange(int(1000 // 6.6) + 1, end_plane)
    assert len(crossed) > 100
    is_xz = nova.plane_view(crossed) == 0
    geometric = 1 + (6.0 * math.tan(a) - 0.15) / 4.05

    def cells_per_plane(detector):
        hits = scint_readout.digitize(deposits, detector, np.random.default_rng(6))
        own = hits.select(hits["particle"] < n)                       # the muons' own hits
        counts = np.zeros((n, nova.n_planes), int)
        np.add.at(counts, (own["particle"], own["plane"]), 1)
        return counts[:, crossed]

    ideal = cells_per_plane(_with(nova, readout={"threshold_pe": 0.0, "noise_pe": 0.0}))
    assert ideal[:, is_xz].mean() == pytest.approx(geometric, abs=0.08)
    assert ideal[:, ~is_xz].mean() == pytest.approx(1.0, abs=0.05)
    real = cells_per_plane(nova)
    fired = real > 0
    assert fired.mean() > 0.97                                        # a MIP passes the threshold
    assert 1.0 <= real[:, is_xz][fired[:, is_xz]].mean() <= ideal[:, is_xz].mean()
    assert real[:, ~is_xz][fired[:, ~is_xz]].mean() < 1.05 and real.max() <= 2


# -- readout ------------------------------------------------------------------------------------
def _mip_deposits(nova, distances, n_cells=384):
    """One MIP-like deposit (10 MeV in the scintillator over its 6 cm depth) in each cell of the
    XZ planes 0, 2, 4, …, one plane per distance from the readout end (top)."""
    scale = scint_readout.scintillator_energy(1.0, nova.config)
    pos, plane_of = [], []
    for k, d in enumerate(distances):
        x = -777.6 + (np.arange(n_cells) + 0.5) * 4.05
        pos.append(np.stack([x, np.full(n_cells, 777.6 - d), np.full(n_cells, 6.6 * (2 * k + 0.5))],
                            axis=1))
        plane_of.append(np.full(n_cells, 2 * k))
    pos = np.concatenate(pos)
    n = len(pos)
    return Deposits(pos, np.full(n, 10.0 / scale), np.full(n, 6.0), np.zeros(n),
                    np.zeros(n, np.int32)), np.concatenate(plane_of)


def test_light_attenuation_follows_configured_law(nova):
    """PE vs distance to the readout end follows A(d)/A(0) of the looped two-exponential fibre,
    and the hit time carries the fibre delay d / 17 cm/ns (nova.yaml)."""
    ro = nova.config.readout
    length = nova.cell_length_cm

    def collected(d):       # Σ w [e^(−d/λ) + e^(−(2L − d)/λ)]: both ways round the loop
        return sum(w * (np.exp(-d / lam) + np.exp(-(2 * length - d) / lam))
                   for lam, w in zip(ro.attenuation_lengths_cm, ro.attenuation_weights))

    def law(d):
        return collected(d) / collected(0.0)

    distances = np.array([50.0, 400.0, 800.0, 1200.0, 1500.0])
    np.testing.assert_allclose(scint_readout.attenuation(distances, ro, length), law(distances),
                               rtol=1e-12)
    assert scint_readout.attenuation(0.0, ro, length) == pytest.approx(1.0)

    deposits, _ = _mip_deposits(nova, distances)
    hits = scint_readout.digitize(deposits, nova, np.random.default_rng(11))
    assert len(hits) > 0.99 * 5 * 384                           # ≥ 28 PE: nearly every cell fires
    mean_pe = np.array([hits["charge"][hits["plane"] == 2 * k].mean() for k in range(5)])
    np.testing.assert_allclose(mean_pe / mean_pe[0], law(distances) / law(distances[0]), rtol=0.04)
    # a MIP at the far end gives ≈ 30 PE (NOvA TDR design figure, the yield's calibration)
    quench = 1 / (1 + nova.config.material.birks_kb_cm_per_mev * 10.0 / 6.0)
    expected = 10.0 * quench * ro.light_yield_pe_per_mev * law(distances)
    np.testing.assert_allclose(mean_pe, expected, rtol=0.04)
    assert 25 < 10.0 * ro.light_yield_pe_per_mev * law(length) < 35
    mean_t = np.array([hits["time"][hits["plane"] == 2 * k].mean() for k in range(5)])
    np.testing.assert_allclose(mean_t, distances / ro.fibre_light_speed_cm_per_ns, atol=2.5)


def test_birks_quenching_suppresses_the_proton_bragg_peak(nova):
    """Birks (1951): L ∝ E/(1 + kB·dE/dx). A stopping proton's last cm (dE/dx ≳ 30 MeV/cm) loses
    ≳ 25 % of its light, a MIP < 2 %."""
    rng = np.random.default_rng(2)
    proton = ParticleBatch([2212], [[0.0, 2.0, 3000.0]], [[0.0, 0.0, 0.5]], [0.0], track_id=[0])
    out = tracks.propagate(proton, nova, rng)
    dep = out.deposits.select(out.deposits.dx > 0)
    e = scint_readout.scintillator_energy(dep.de, nova.config)
    ratio = scint_readout.quenched_energy(e, dep.dx, nova.config) / e
    kb = nova.config.material.birks_kb_cm_per_mev
    np.testing.assert_allclose(ratio, 1 / (1 + kb * e / dep.dx), rtol=1e-12)
    residual = np.linalg.norm(out.end_pos[0] - dep.pos, axis=1)
    peak = residual < 1.0
    plateau = residual > 0.8 * residual.max()
    assert peak.any() and plateau.any()
    assert np.average(ratio[peak], weights=e[peak]) < 0.75
    assert np.average(ratio[plateau], weights=e[plateau]) > 0.85
    # the whole track: quenched light well below unquenched
    assert (ratio * e).sum() / e.sum() < 0.9
    # a minimum-ionising muon (1.78 MeV/cm in the scintillator) is barely quenched
    mip = scint_readout.quenched_energy(np.array([1.78 * 6.0]), np.array([6.0]), nova.config)
    assert mip[0] / (1.78 * 6.0) == pytest.approx(1 / (1 + kb * 1.78), rel=1e-9)
    assert mip[0] / (1.78 * 6.0) > 0.98


# -- material and beam ----------------------------------------------------------------------------
def test_material_is_the_documented_mixture(nova):
    """Recompute the PVC(+15 % TiO2) + scintillator mixture (PDG element X0: H 63.04, C 42.70,
    O 34.24, Cl 19.28, Ti 16.16 g/cm²; I: polyethylene 57.4, PVC 108.2, TiO2 179.5 eV) by the
    rules in nova.yaml; and μ− in carbon: τ = 2026.3 ns (Suzuki et al., PRC 35 (1987) 2212)."""
    seg = nova.config.segmentation
    f_v = seg.scintillator_volume_fraction
    rho_s = 0.855
    rho_w = 1 / (0.85 / 1.38 + 0.15 / 4.23)
    rho = f_v * rho_s + (1 - f_v) * rho_w
    m_pvc = 2 * 12.0107 + 3 * 1.00794 + 35.453
    m_tio2 = 47.867 + 2 * 15.9994
    comp = {   # mass fraction in the mixture, Z/A, X0 (g/cm²), I (eV)
        "scint": (f_v * rho_s / rho, 0.146 / 1.00794 + 0.854 * 6 / 12.0107,
                  1 / (0.146 / 63.04 + 0.854 / 42.70), 57.4),
        "pvc": (0.85 * (1 - f_v) * rho_w / rho, 32 / m_pvc,
                1 / ((3 * 1.00794 / 63.04 + 2 * 12.0107 / 42.70 + 35.453 / 19.28) / m_pvc), 108.2),
        "tio2": (0.15 * (1 - f_v) * rho_w / rho, 38 / m_tio2,
                 1 / ((47.867 / 16.16 + 31.9988 / 34.24) / m_tio2), 179.5),
    }
    z_over_a = sum(w * za for w, za, _, _ in comp.values())
    x0 = 1 / sum(w / x for w, _, x, _ in comp.values())
    mean_i = math.exp(sum(w * za * math.log(i) for w, za, _, i in comp.values()) / z_over_a)
    mat = nova.config.material
    assert mat.density_g_cm3 == pytest.approx(rho, rel=2e-3)
    assert mat.z_over_a == pytest.approx(z_over_a, rel=2e-3)
    assert mat.radiation_length_cm == pytest.approx(x0 / rho, rel=2e-3)
    assert mat.mean_excitation_ev == pytest.approx(mean_i, rel=2e-3)
    ro = nova.config.readout
    assert ro.scintillator_z_over_a == pytest.approx(comp["scint"][1], rel=1e-3)
    # minimum ionisation of the mixture: between PVC (1.78) and polyethylene (2.08 MeV cm²/g)
    dedx_min = bethe_dedx(mat, MUON_MASS_MEV, np.geomspace(50, 5e4, 400)).min() / mat.density_g_cm3
    assert 1.95 < dedx_min < 2.08
    assert mat.muon_minus_lifetime_ns == 2026.3
    assert mat.muon_capture_fraction == pytest.approx(1 - 2026.3 / 2196.98, abs=0.002)


def test_numi_spectrum_peaks_near_2_gev(nova):
    """NuMI 14 mrad off-axis (NOvA TDR): a narrow band peaked at ≈ 2 GeV; carbon target
    (k_F = 221 MeV/c, Moniz et al., PRL 26 (1971) 445)."""
    beam = nova.config.beam
    e = np.linspace(0.05, 10, 4000)
    assert e[np.argmax(flux.flux(beam, e))] == pytest.approx(2.0, abs=0.05)
    sample = flux.sample_energy(beam, np.random.default_rng(3), size=20000)
    counts, edges = np.histogram(sample, bins=np.arange(0.5, 10.01, 0.25))
    assert 1.75 <= edges[np.argmax(counts)] < 2.5
    assert ((sample > 1) & (sample < 3)).mean() > 0.75
    assert beam.nuclear.fermi_momentum_gev == 0.221 and nova.config.material.A == 12.0


# -- cosmics --------------------------------------------------------------------------------------
def test_cosmic_zenith_angles_follow_cos2(nova):
    """PDG: the sea-level muon intensity per solid angle ∝ cos²θ, so cosθ has the CDF cos³θ; the
    flux through the horizontal top face adds a factor cosθ (CDF cos⁴θ). All muons go down."""
    cfg = dataclasses.replace(nova.config.cosmics, max_zenith_deg=90.0)
    rng = np.random.default_rng(7)
    d = cosmics.sample_directions(20000, cfg, rng)
    assert (d[:, 1] < 0).all()
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, rtol=1e-12)
    cos = -d[:, 1]
    assert stats.kstest(cos, lambda c: c ** 3).pvalue > 0.01
    assert stats.kstest(cos, lambda c: c).pvalue < 1e-6         # isotropic is rejected
    phi = np.arctan2(d[:, 2], d[:, 0])
    assert stats.kstest(phi, stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > 0.01

    top = _with(nova, cosmics={"entry": "top", "max_zenith_deg": 90.0})
    batch = cosmics.muons(top, 5000, rng)
    mu = np.abs(batch.pdg) == 13
    p = batch.mom[mu]
    cos_top = -p[:, 1] / np.linalg.norm(p, axis=1)
    assert (cos_top > 0).all()
    assert np.allclose(batch.pos[mu, 1], 777.6, atol=1e-3)     # on the top face
    assert stats.kstest(cos_top, lambda c: c ** 4).pvalue > 0.01
    assert stats.kstest(cos_top, lambda c: c ** 3).pvalue < 1e-6


def test_cosmic_entries_charge_ratio_and_showers(nova):
    """Box entry: muons start on the volume's faces, sides included; μ+/μ− ≈ 1.25 (PDG);
    about ``shower_probability`` of them radiate a shower photon."""
    rng = np.random.default_rng(8)
    batch = cosmics.muons(nova, 4000, rng)
    mu = np.abs(batch.pdg) == 13
    assert mu.sum() == 4000
    box = nova.config.active_volume
    pos = batch.pos[mu]
    assert box.contains(pos).all()
    on_face = np.minimum(np.abs(pos - box.lo), np.abs(pos - box.hi)).min(axis=1) < 1e-3
    assert on_face.all()
    side = np.abs(pos[:, 1] - box.hi[1]) > 1e-3
    assert 0.05 < side.mean() < 0.6
    assert (batch.mom[mu, 1] < 0).all()
    n_plus = (batch.pdg[mu] == -13).sum()
    expected = 4000 * 1.25 / 2.25
    assert abs(n_plus - expected) < 4 * math.sqrt(4000 * 0.25)
    energy = np.sqrt((batch.mom[mu] ** 2).sum(axis=1) + (MUON_MASS_MEV * 1e-3) ** 2)
    photons = batch.pdg == 22
    assert 0.03 < photons.sum() / 4000 < 0.07                  # shower_probability 0.05
    assert energy.max() <= 100.0 and (energy >= 0.5).mean() > 0.95
    assert box.contains(batch.pos[photons]).all()


def test_cosmic_energy_spectrum(nova):
    """The Gaisser/Guan spectrum gives the PDG vertical intensity above 1 GeV, ≈ 70 m⁻² s⁻¹ sr⁻¹
    (PDG "Cosmic rays"), and the sampler reproduces its mean at a given angle; inclined muons are
    harder (≈ 4.9 GeV mean at the vertical above 0.5 GeV, ≈ 9 GeV at 60°)."""
    e = np.geomspace(1.0, 1e4, 20001)
    vertical = np.trapezoid(cosmics.spectrum(e, 1.0), e) * 1e4            # per m²
    assert vertical == pytest.approx(70.0, rel=0.15)
    cfg = nova.config.cosmics
    e = np.geomspace(cfg.e_min_gev, cfg.e_max_gev, 20001)
    rng = np.random.default_rng(4)
    for cos in (1.0, 0.5):
        f = cosmics.spectrum(e, cos)
        mean = np.trapezoid(f * e, e) / np.trapezoid(f, e)
        sample = cosmics.sample_energies(np.full(20000, cos), cfg, rng)
        assert sample.mean() == pytest.approx(mean, rel=0.05)
        assert cfg.e_min_gev <= sample.min() and sample.max() <= cfg.e_max_gev
    assert 4.0 < cosmics.sample_energies(np.ones(20000), cfg, rng).mean() < 6.0


def test_cosmic_event_truth_and_hits(nova):
    ev = simulate_event(nova, 3, Flavour.COSMIC, seed=4)
    t = ev.truth
    assert (t.flavour, t.interaction, t.mode) == (4, int(Interaction.OTHER), int(Mode.COSMIC))
    assert (t.n_proton, t.n_charged_pion, t.n_neutral_pion, t.n_neutron) == (0, 0, 0, 0)
    assert t.n_proton_raw == 0 and t.is_antinu == -1 and t.nu_pdg == 0
    assert math.isnan(t.nu_energy) and t.lep_energy > 0.5
    assert nova.config.active_volume.contains(np.array([[t.vtx_x, t.vtx_y, t.vtx_z]]))[0]
    assert len(ev.hits) > 10 and (ev.hits["particle"] == 0).mean() > 0.5
    assert abs(ev.particles["pdg"][0]) == 13 and ev.particles["py"][0] < 0


def test_cosmic_overlay_in_readout_window(nova):
    """overlay_mean > 0 adds Poisson-many muons at times uniform in the readout window; with the
    default 0 a neutrino event has no cosmic primaries."""
    plain = simulate_event(nova, 1, Flavour.NUMU_CC, seed=9)
    primaries = plain.particles["parent"] == -1
    assert not (np.abs(plain.particles["pdg"][primaries][1:]) == 13).any()
    busy = _with(nova, cosmics={"overlay_mean": 4.0})
    rng = np.random.default_rng(1)
    counts = [len(cosmics.overlay(busy, rng)) for _ in range(200)]
    assert 3.3 < np.mean(counts) < 4.9
    ev = simulate_event(busy, 1, Flavour.NUMU_CC, seed=9)
    assert ev.truth == plain.truth
    n_nu = int(primaries.sum())
    extra = ev.particles["pdg"][ev.particles["parent"] == -1][n_nu:]
    assert len(extra) >= 1 and np.isin(extra, (13, -13, 22)).all()
    w0, w1 = nova.config.readout.readout_window_ns
    assert ((ev.hits["time"] >= w0) & (ev.hits["time"] < w1)).all()
    assert len(ev.hits) >= len(plain.hits)


def test_same_seed_same_event(nova):
    a = simulate_event(nova, 2, Flavour.NUE_CC, seed=5)
    b = simulate_event(nova, 2, Flavour.NUE_CC, seed=5)
    for k in a.hits.columns:
        np.testing.assert_array_equal(a.hits[k], b.hits[k])
    assert list(a.hits.columns) == ["view", "wire", "time", "charge", "width", "plane",
                                    "x", "y", "z", "particle", "energy"]


# -- files, displays, images, CLI -------------------------------------------------------------
def test_hit_file_round_trip_keeps_planes(tmp_path, nova):
    events = [simulate_event(nova, i, f, seed=1) for i, f in
              enumerate((Flavour.NUMU_CC, Flavour.COSMIC, Flavour.NC))]
    path = write_hits(tmp_path / "nova.h5", events, nova, seed=1)
    with HitFile(path) as f:
        assert f.detector.kind == "scintillator" and f.detector.config == nova.config
        assert "plane" in f.hit_columns
        for ev, back in zip(events, (f[i] for i in range(len(events)))):
            for k in ev.hits.columns:
                np.testing.assert_array_equal(back.hits[k], ev.hits[k])
            assert back.truth.flavour == ev.truth.flavour
        pos = f.detector.hit_positions(back.hits["view"], back.hits["wire"], back.hits["time"],
                                       plane=back.hits["plane"])
        assert pos.shape == (len(back.hits), 2)


def test_gnnu_sim_nova_writes_every_class_and_a_display(tmp_path, nova):
    out, png = tmp_path / "f.h5", tmp_path / "d.png"
    argv = ["--detector", "nova", "--events", "8", "--seed", "3",
            "--flavours", "numu_cc,nue_cc,nc,cosmic", "--out", str(out), "--display", str(png)]
    assert main(argv) == 0
    with HitFile(out) as f:
        flavours = f.truth()["flavour"].tolist()
        assert flavours == [0, 1, 3, 4] * 2
        shown = [f[i] for i in range(4)]
    assert png.stat().st_size > 20_000
    import matplotlib.image
    height, width = matplotlib.image.imread(png).shape[:2]
    assert height > 1.5 * width                                 # four rows of two views
    truth_png = draw_events(shown, nova, tmp_path / "truth.png", truth=True)
    assert truth_png.stat().st_size > 20_000


def test_lartpc_refuses_cosmics_in_one_line(tmp_path, capsys):
    out = tmp_path / "x.h5"
    assert main(["--detector", "dune", "--events", "2", "--flavours", "numu_cc,cosmic",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cosmic" in err and "nova" in err
    assert not out.exists()


def test_nova_cvn_preset_renders_two_views_of_100_planes_by_80_cells(nova):
    """NOvA CVN (Aurisano et al., JINST 11 (2016) P09001): two views, 100 planes × 80 cells."""
    assert get_preset("nova-cvn") is NOVA_CVN and NOVA_CVN.shape == (2, 100, 80)
    ev = simulate_event(nova, 0, Flavour.NUMU_CC, seed=1)
    m = render(ev.hits, "nova-cvn")
    assert m.shape == (2, 100, 80) and m.dtype == np.uint8
    assert (np.count_nonzero(m, axis=(1, 2)) > 5).all()
    # row r holds planes 2r and 2r + 1; the window starts at the first plane; cells centred
    h = Hits({"view": np.array([0, 1, 0], np.int8), "wire": np.array([200, 50, 210], np.int32),
              "plane": np.array([10, 11, 30], np.int32), "time": np.zeros(3, np.float32),
              "charge": np.array([40.0, 2000.0, 40.0], np.float32),
              "width": np.ones(3, np.float32)})
    m = render(h, NOVA_CVN)
    assert m[1, 0, 40] == 255                                   # saturates at 255
    assert m[0, 0, 35] == math.ceil(40 * 255 / 1000) and m[0, 10, 45] > 0
    with pytest.raises(ValueError, match="plane"):
        render(Hits({k: h[k] for k in ("view", "wire", "time", "charge", "width")}), NOVA_CVN)
