"""Detector-independent config sections: material, beam, visibility thresholds, transport.

Every physics number the simulator uses lives in a detector YAML (``configs/detectors/``) and
is validated into these frozen dataclasses; code holds no detector constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Sternheimer:
    """Density-effect parameters (Sternheimer 1984, as tabulated by the PDG)."""

    x0: float
    x1: float
    a: float
    k: float
    cbar: float
    delta0: float = 0.0


@dataclass(frozen=True)
class Material:
    """Bulk medium. Units: g/cm³, eV, cm, MeV."""

    name: str
    Z: float
    A: float                                  # g/mol
    density_g_cm3: float
    mean_excitation_ev: float
    radiation_length_cm: float
    moliere_radius_cm: float
    critical_energy_mev: float
    nuclear_interaction_length_cm: float
    sternheimer: Sternheimer
    birks_kb_cm_per_mev: float = 0.0          # scintillators only
    # Stopped μ− (muonic atom): lifetime in this medium and the fraction captured by the nucleus
    # (the rest decay to a Michel e−). Needed as soon as a μ− stops; no default on purpose.
    muon_minus_lifetime_ns: float | None = None
    muon_capture_fraction: float | None = None

    def __post_init__(self):
        if self.muon_capture_fraction is not None and not 0 <= self.muon_capture_fraction <= 1:
            raise ValueError("material.muon_capture_fraction must lie in [0, 1]")
        if self.muon_minus_lifetime_ns is not None and self.muon_minus_lifetime_ns <= 0:
            raise ValueError("material.muon_minus_lifetime_ns must be > 0")

    @property
    def z_over_a(self) -> float:
        return self.Z / self.A


@dataclass(frozen=True)
class Nuclear:
    """Target-nucleus model of the interaction generator (:mod:`gnnu.sim.generator`).

    Struck nucleons carry a Fermi momentum drawn uniformly from the sphere |p| < ``fermi_momentum_gev``
    (GeV/c) and the energy sqrt(m² + p²) − ``binding_energy_gev`` (GeV). The final-state interaction
    probabilities are per hadron leaving the primary vertex (one intranuclear step each): a pion is
    absorbed on a nucleon pair, exchanges its charge, or scatters inelastically and knocks a nucleon
    out; a nucleon knocks out a second nucleon or produces a pion.
    """

    fermi_momentum_gev: float = 0.25
    binding_energy_gev: float = 0.030
    pion_absorption: float = 0.15
    pion_charge_exchange: float = 0.07
    pion_inelastic: float = 0.15
    nucleon_knockout: float = 0.30
    nucleon_pion_production: float = 0.03

    def __post_init__(self):
        if not 0 < self.fermi_momentum_gev < 1 or not 0 <= self.binding_energy_gev < 0.1:
            raise ValueError("nuclear: need 0 < fermi_momentum_gev < 1 and 0 ≤ binding_energy_gev < 0.1")
        pion = (self.pion_absorption, self.pion_charge_exchange, self.pion_inelastic)
        nucleon = (self.nucleon_knockout, self.nucleon_pion_production)
        if min(pion + nucleon) < 0 or sum(pion) > 1 or sum(nucleon) > 1:
            raise ValueError("nuclear: FSI probabilities must be ≥ 0 and sum to ≤ 1 per particle kind")


@dataclass(frozen=True)
class Beam:
    """Neutrino beam and interaction model for generated events (energies in GeV).

    ``spectrum`` names a flux parametrisation in :mod:`gnnu.sim.flux` (``lbnf``: wide-band on-axis,
    ``numi_offaxis``: narrow-band); ``peak_gev`` and ``width_gev`` shape its core, ``tail_fraction``
    of the flux sits in a high-energy tail of scale ``tail_slope_gev``. Event energies are drawn from
    flux × cross-section within [``e_min_gev``, ``e_max_gev``]. ``antinu_fraction`` is the fraction
    of ν̄ among generated neutrino events; ``nc_flavour_fractions`` the (νe, νμ, ντ) composition of NC
    events (the oscillated beam at the detector). ``nuclear`` is the target-nucleus model.
    """

    spectrum: Literal["lbnf", "numi_offaxis"] = "lbnf"
    peak_gev: float = 2.5
    width_gev: float = 1.1
    tail_fraction: float = 0.06
    tail_slope_gev: float = 4.0
    e_min_gev: float = 0.5
    e_max_gev: float = 10.0
    antinu_fraction: float = 0.3
    nc_flavour_fractions: tuple[float, float, float] = (0.05, 0.50, 0.45)
    nuclear: Nuclear = field(default_factory=Nuclear)

    def __post_init__(self):
        if not 0 < self.e_min_gev < self.e_max_gev:
            raise ValueError("beam energies need 0 < e_min_gev < e_max_gev")
        if not 0 <= self.antinu_fraction <= 1:
            raise ValueError("beam.antinu_fraction must lie in [0, 1]")
        if not (0 < self.width_gev < self.peak_gev and 0 <= self.tail_fraction < 1
                and self.tail_slope_gev > 0):
            raise ValueError("beam: need 0 < width_gev < peak_gev, 0 ≤ tail_fraction < 1, "
                             "tail_slope_gev > 0")
        if min(self.nc_flavour_fractions) < 0 or sum(self.nc_flavour_fractions) <= 0:
            raise ValueError("beam.nc_flavour_fractions must be ≥ 0 with a positive sum")


@dataclass(frozen=True)
class Visibility:
    """Kinetic-energy thresholds (MeV) above which a final-state primary is counted
    in the ``n_*`` labels (docs/design.md#labels)."""

    proton_ke_mev: float = 40.0
    charged_pion_ke_mev: float = 10.0
    neutral_pion_ke_mev: float = 0.0
    neutron_ke_mev: float = 10.0


@dataclass(frozen=True)
class Transport:
    """Numerical settings of particle transport (cm, MeV)."""

    step_cm: float = 0.3                      # charged-track step (≤ wire pitch)
    em_step_x0: float = 0.025                 # EM sub-step (deposits, multiple scattering), in X0
    em_cutoff_mev: float = 1.0                # e±/γ below this deposit locally; δ-ray/brems cut
    delta_ray_threshold_mev: float = 10.0     # δ-rays above this are tracked explicitly
    track_cutoff_mev: float = 1.0             # charged tracks below this stop
    neutron_recoil_probability: float = 0.3   # chance a neutron leaves a visible proton recoil
    tables_points: int = 400                  # energy grid of range/dE/dx tables
    extra: dict[str, float] = field(default_factory=dict)  # documented model knobs
    # --- charged tracks (gnnu.sim.tracks; model described in its module docstring) ---
    fluctuation_collisions: float = 2.0       # mean explicit δ-electron collisions per step (Landau tail)
    neutron_recoil_mean_free_path_cm: float = 50.0   # distance to the recoil (exponential mean)
    neutron_recoil_max_fraction: float = 0.5  # recoil proton T = U(0, max)·T_n
    hadron_interaction_onset_mev: float = 10.0  # λ(T) = λ_I / ((1 − e^(−T/onset))·(1 + boost·BW))
    pion_resonance_mev: float = 165.0         # Δ(1232) peak of π–nucleus cross-sections (T_π)
    pion_resonance_width_mev: float = 120.0   # its full width
    pion_resonance_boost: float = 1.0         # σ(peak)/σ(high energy) − 1
    pion_elastic_fraction: float = 0.30       # outcome of a π± interaction: elastic kink,
    pion_absorption_fraction: float = 0.25    # absorption (nucleons only),
    pion_charge_exchange_fraction: float = 0.10  # π± → π0; the rest is inelastic
    proton_elastic_fraction: float = 0.35     # outcome of a p interaction: elastic kink, else inelastic
    elastic_slope_per_gev2: float = 140.0     # dσ/dt ∝ exp(−b|t|), b ≈ R²/3 for argon (R ≈ 4.1 fm)
    inelastic_leading_fraction: tuple[float, float] = (0.3, 0.8)  # leading hadron keeps U(lo, hi)·T
    inelastic_extra_nucleons_mean: float = 1.0  # knocked-out nucleons: 1 + Poisson(mean)
    inelastic_pions_per_gev: float = 1.0      # extra pions: Poisson(rate · energy transfer)
    absorption_extra_nucleons_mean: float = 0.5  # π absorption: 2 + Poisson(mean) nucleons
    nucleon_separation_mev: float = 8.5       # energy to free one nucleon (binding)
    hadron_pt_mev: float = 300.0              # transverse-momentum scale of interaction products
    muon_capture_neutrons_mean: float = 1.0   # μ− capture: Poisson(mean) neutrons,
    muon_capture_neutron_temperature_mev: float = 1.5  # T ~ T·exp(−T/θ) (evaporation)
    muon_capture_gamma_probability: float = 0.5  # and maybe one de-excitation photon
    muon_capture_gamma_mev: float = 2.0       # of exponential energy with this mean

    def __post_init__(self):
        fractions = (self.pion_elastic_fraction, self.pion_absorption_fraction,
                     self.pion_charge_exchange_fraction, self.proton_elastic_fraction,
                     self.neutron_recoil_probability, self.neutron_recoil_max_fraction,
                     self.muon_capture_gamma_probability)
        if min(fractions) < 0 or max(fractions) > 1:
            raise ValueError("transport: probabilities and fractions must lie in [0, 1]")
        if (self.pion_elastic_fraction + self.pion_absorption_fraction
                + self.pion_charge_exchange_fraction) > 1:
            raise ValueError("transport: pion elastic + absorption + charge-exchange fractions "
                             "must sum to ≤ 1 (the rest is inelastic)")
        lo, hi = self.inelastic_leading_fraction
        if not 0 <= lo <= hi <= 1:
            raise ValueError("transport.inelastic_leading_fraction needs 0 ≤ lo ≤ hi ≤ 1")
        positive = (self.step_cm, self.fluctuation_collisions, self.neutron_recoil_mean_free_path_cm,
                    self.hadron_interaction_onset_mev, self.pion_resonance_width_mev,
                    self.elastic_slope_per_gev2, self.nucleon_separation_mev, self.hadron_pt_mev,
                    self.muon_capture_neutron_temperature_mev, self.muon_capture_gamma_mev,
                    self.delta_ray_threshold_mev)
        if min(positive) <= 0:
            raise ValueError("transport: lengths, energies, scales and fluctuation_collisions "
                             "must be > 0")
        non_negative = (self.pion_resonance_boost, self.inelastic_extra_nucleons_mean,
                    self.inelastic_pions_per_gev, self.absorption_extra_nucleons_mean,
                    self.muon_capture_neutrons_mean, self.track_cutoff_mev)
        if min(non_negative) < 0:
            raise ValueError("transport: multiplicities, boosts and cut-offs must be ≥ 0")
