"""Detector-independent config sections: material, beam, visibility thresholds, transport.

Every physics number the simulator uses lives in a detector YAML (``configs/detectors/``) and
is validated into these frozen dataclasses; code holds no detector constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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

    @property
    def z_over_a(self) -> float:
        return self.Z / self.A


@dataclass(frozen=True)
class Beam:
    """Neutrino energy spectrum for generated events (GeV).

    ``spectrum`` names a parametrisation in :mod:`gnnu.sim.flux`; ``peak_gev`` and
    ``width_gev`` shape it; energies are drawn within [``e_min_gev``, ``e_max_gev``].
    ``antinu_fraction`` is the fraction of ν̄ among generated neutrino events.
    """

    spectrum: str = "lbnf"
    peak_gev: float = 2.5
    width_gev: float = 1.2
    e_min_gev: float = 0.5
    e_max_gev: float = 10.0
    antinu_fraction: float = 0.3

    def __post_init__(self):
        if not 0 < self.e_min_gev < self.e_max_gev:
            raise ValueError("beam energies need 0 < e_min_gev < e_max_gev")
        if not 0 <= self.antinu_fraction <= 1:
            raise ValueError("beam.antinu_fraction must lie in [0, 1]")


@dataclass(frozen=True)
class Visibility:
    """Kinetic-energy thresholds (MeV) above which a final-state primary is counted
    in the ``n_*`` labels (DESIGN §3.1)."""

    proton_ke_mev: float = 40.0
    charged_pion_ke_mev: float = 10.0
    neutral_pion_ke_mev: float = 0.0
    neutron_ke_mev: float = 10.0


@dataclass(frozen=True)
class Transport:
    """Numerical settings of particle transport (cm, MeV)."""

    step_cm: float = 0.3                      # charged-track step (≤ wire pitch)
    em_step_x0: float = 0.1                   # EM cascade step, in radiation lengths
    em_cutoff_mev: float = 1.0                # e±/γ below this deposit locally
    delta_ray_threshold_mev: float = 10.0     # δ-rays above this are tracked explicitly
    track_cutoff_mev: float = 1.0             # charged tracks below this stop
    neutron_recoil_probability: float = 0.3   # chance a neutron leaves a visible proton recoil
    tables_points: int = 400                  # energy grid of range/dE/dx tables
    extra: dict[str, float] = field(default_factory=dict)  # documented model knobs
