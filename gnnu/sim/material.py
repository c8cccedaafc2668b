"""Stopping-power, range and path tables of a material, sampled by interpolation.

:func:`tables` builds (once per process and per (material, transport) config, ~1 ms) a
:class:`MaterialTables` holding, for each species in :data:`SPECIES` (e, μ, π, K, p) and on a log
grid of ``transport.tables_points`` kinetic energies:

- ``dedx``: mean collision stopping power −dE/dx (MeV/cm). Heavy particles: the PDG Bethe–Bloch
  formula (PDG Review "Passage of particles through matter", eq. 34.5) with the full Tmax and the
  Sternheimer density-effect correction δ(βγ) (eq. 34.7; parameters and I from the config).
  Electrons: the Rohrlich–Carlson (Møller) collision formula with the same δ (ICRU 37; PDG §34.2.8).
- ``range_cm``: CSDA range R(T) = ∫₀ᵀ dT'/S(T') (cm).
- ``proper_cm``: proper path to stop, P(T) = ∫₀^R(T) dr/(βγ) (cm): a particle of lifetime τ at
  kinetic energy T decays in flight iff cτ·Exp(1) < P(T); it then decays where the residual P
  equals P(T) − cτ·Exp(1). Exact within the CSDA.
- ``depth``: hadronic interaction depth Θ(T) = ∫₀^R(T) dr/λ(T(r)) (number of interaction lengths
  to stop), for π± and p only (a placeholder for the others); λ(T) is described at
  :func:`interaction_length`.

Queries (:meth:`MaterialTables.at`, :meth:`MaterialTables.energy_from`) are vectorised over mixed
species: linear interpolation of log–log values on uniform grids (direct indexing, no search;
inverse tables are resampled onto a uniform grid of 4× the points).

Simplifications: no shell or Barkas/Bloch corrections (they matter below a few MeV for protons,
i.e. for the last ~0.1 mm of a track); below the table's lowest energy (βγ ≈ 0.045, or 10 keV for
electrons) every table is continued as a power law with the slope of its first interval; electron
tables hold collision losses only (bremsstrahlung is the EM-shower stage's business); muon radiative
losses (relevant above ~100 GeV in argon) are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import to_json
from ..detectors.common import Material, Transport
from .constants import K_BETHE
from .pdg import ELECTRON_MASS_MEV, MASS_GEV

#: Species with tables, in table order; :data:`SPECIES_OF_PDG` maps |pdg| onto their indices.
SPECIES = ("e", "mu", "pi", "K", "p")
SPECIES_OF_PDG = {11: 0, 13: 1, 211: 2, 321: 3, 2212: 4}
_MASS_MEV = np.array([MASS_GEV[11], MASS_GEV[13], MASS_GEV[211], MASS_GEV[321],
                      MASS_GEV[2212]]) * 1e3
_T_HIGH_MEV = 1.0e5            # table top: 100 GeV kinetic energy
_COLUMNS = ("dedx", "range_cm", "proper_cm", "depth")


def density_effect(material: Material, betagamma: np.ndarray) -> np.ndarray:
    """Sternheimer density-effect correction δ(βγ) (dimensionless), PDG eq. 34.7.

    ``2 ln10 · x − C̄`` above x1, plus ``a (x1 − x)^k`` between x0 and x1, and
    ``δ0 · 10^(2(x − x0))`` below x0 (conductors; 0 for insulators), with x = log10(βγ).
    """
    s = material.sternheimer
    x = np.log10(np.maximum(betagamma, 1e-12))
    delta = 2.0 * math.log(10.0) * x - s.cbar
    mid = (x >= s.x0) & (x < s.x1)
    delta = np.where(mid, delta + s.a * np.maximum(s.x1 - x, 0.0) ** s.k, delta)
    return np.where(x < s.x0, s.delta0 * 10.0 ** (2.0 * (x - s.x0)), delta)


def bethe_dedx(material: Material, mass_mev: float, t_mev: np.ndarray) -> np.ndarray:
    """Mean collision stopping power (MeV/cm) of a charge-1 particle of mass ``mass_mev``.

    Heavy particles: PDG Bethe–Bloch with Tmax = 2mₑβ²γ² / (1 + 2γmₑ/M + (mₑ/M)²) and the density
    effect. Electrons (``mass_mev`` = mₑ): Rohrlich–Carlson collision formula for Møller
    scattering, ½K(Z/A)/β² [ln(τ²(τ+2)/(2(I/mₑ)²)) + F(τ) − δ], F = 1 − β² + (τ²/8 − (2τ+1)ln2)/(τ+1)².
    ``t_mev``: kinetic energies (any shape); the result has the same shape.
    """
    t = np.asarray(t_mev, np.float64)
    gamma = 1.0 + t / mass_mev
    bg2 = gamma * gamma - 1.0
    beta2 = bg2 / (gamma * gamma)
    ival = material.mean_excitation_ev * 1e-6
    delta = density_effect(material, np.sqrt(bg2))
    pref = K_BETHE * material.z_over_a * material.density_g_cm3 / beta2
    if mass_mev == ELECTRON_MASS_MEV:
        tau = t / ELECTRON_MASS_MEV
        f = 1.0 - beta2 + (tau * tau / 8.0 - (2.0 * tau + 1.0) * math.log(2.0)) / (tau + 1.0) ** 2
        log = np.log(tau * tau * (tau + 2.0) / (2.0 * (ival / ELECTRON_MASS_MEV) ** 2))
        return 0.5 * pref * (log + f - delta)
    ratio = ELECTRON_MASS_MEV / mass_mev
    tmax = 2.0 * ELECTRON_MASS_MEV * bg2 / (1.0 + 2.0 * gamma * ratio + ratio * ratio)
    log = np.log(2.0 * ELECTRON_MASS_MEV * bg2 * tmax / (ival * ival))
    return pref * (0.5 * log - beta2 - 0.5 * delta)


def interaction_length(transport: Transport, material: Material, species: str,
                       t_mev: np.ndarray) -> np.ndarray:
    """Hadronic interaction length λ(T) (cm) of π± or p; ``inf`` for other species.

    λ(T) = λ_I / f(T) with λ_I = ``material.nuclear_interaction_length_cm`` (the high-energy
    inelastic length) and f(T) = (1 − exp(−T/T_on)) · (1 + b·BW(T)): an onset below
    T_on = ``transport.hadron_interaction_onset_mev`` (Coulomb barrier, Pauli blocking) and, for pions
    only, the Δ(1232) resonance as a Breit–Wigner of unit height centred on
    ``pion_resonance_mev`` with full width ``pion_resonance_width_mev``, scaled by
    ``pion_resonance_boost`` (π–argon cross-sections peak at about twice their high-energy value
    near T_π ≈ 160 MeV).
    """
    t = np.asarray(t_mev, np.float64)
    if species not in ("pi", "p"):
        return np.full(t.shape, np.inf)
    f = -np.expm1(-t / transport.hadron_interaction_onset_mev)
    if species == "pi":
        half = 0.5 * transport.pion_resonance_width_mev
        bw = half * half / ((t - transport.pion_resonance_mev) ** 2 + half * half)
        f = f * (1.0 + transport.pion_resonance_boost * bw)
    return material.nuclear_interaction_length_cm / np.maximum(f, 1e-300)


def _cumulative(log_t: np.ndarray, integrand: np.ndarray, first: float) -> np.ndarray:
    """∫ integrand dT on the grid, integrating T·integrand over ln T (trapezoid), from ``first``."""
    g = np.exp(log_t) * integrand
    steps = 0.5 * (g[1:] + g[:-1]) * np.diff(log_t)
    return first + np.concatenate([[0.0], np.cumsum(steps)])


class _Lookup:
    """Linear interpolation of y(x) on uniform per-species grids, for mixed species at once.

    ``x`` [S, n]: increasing abscissae (logs); ``y`` [S, n]: ordinates (logs). Non-uniform ``x`` are
    resampled onto ``resample`` uniform points first. Below a grid the first interval's power law
    continues; above it the last value is kept.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, resample: int | None = None):
        if resample is not None:
            grid = np.linspace(x[:, 0], x[:, -1], resample, axis=1)
            y = np.array([np.interp(g, xs, ys) for g, xs, ys in zip(grid, x, y)])
            x = grid
        self.n = x.shape[1]
        self.x0 = x[:, 0].copy()
        self.inv_dx = 1.0 / (x[:, 1] - x[:, 0])
        self.y = y.ravel().copy()
        self.dy = np.append(np.diff(self.y), 0.0)   # y[i + 1] − y[i] (unused across species)
        self.low_slope = y[:, 1] - y[:, 0]          # per grid cell
        self.top = self.n - 1 - 1e-9

    def cell(self, species: np.ndarray, log_x: np.ndarray):
        """Where ``log_x`` (= ln x) falls for each element's ``species`` (int array or scalar):
        (flat grid index, weight within the cell, distance below the grid in cells (≤ 0))."""
        f = (log_x - self.x0[species]) * self.inv_dx[species]
        below = np.minimum(f, 0.0)
        np.maximum(f, 0.0, out=f)
        np.minimum(f, self.top, out=f)
        i = f.astype(np.intp)
        w = f - i
        i += species * self.n
        return i, w, below

    def interpolate(self, y: np.ndarray, dy: np.ndarray, low_slope: np.ndarray, species, cell):
        """Ordinates ``y`` (flat, with increments ``dy``) at ``cell`` (see :meth:`cell`)."""
        i, w, below = cell
        return y[i] + w * dy[i] + below * low_slope[species]

    def __call__(self, species: np.ndarray, log_x: np.ndarray) -> np.ndarray:
        """ln y at ``log_x`` (= ln x) for each element's ``species`` (int array, same shape)."""
        return self.interpolate(self.y, self.dy, self.low_slope, species, self.cell(species, log_x))


@dataclass(frozen=True, eq=False)
class MaterialTables:
    """Tables of one material for every species of :data:`SPECIES` (see the module docstring).

    ``log_t`` [S, n]: ln of the kinetic-energy grid (MeV); ``columns[name]`` [S, n]: ln of column
    ``name`` ∈ ``dedx`` (MeV/cm), ``range_cm``, ``proper_cm`` (cm), ``depth`` (interaction lengths;
    a placeholder for species that do not interact, see ``interacts``); ``mass_mev`` [S];
    ``cutoff_mev``: the transport's track cut-off, where :meth:`at_cutoff` evaluates the columns.
    """

    mass_mev: np.ndarray
    log_t: np.ndarray
    columns: dict[str, np.ndarray]
    interacts: np.ndarray          # bool [S]: species with hadronic interactions (π±, p)
    cutoff_mev: float = 0.0

    def __post_init__(self):
        forward = {k: _Lookup(self.log_t, v) for k, v in self.columns.items()}
        inverse = {k: _Lookup(self.columns[k], self.log_t, resample=4 * self.log_t.shape[1])
                   for k in ("range_cm", "proper_cm", "depth")}
        object.__setattr__(self, "_forward", forward)
        object.__setattr__(self, "_inverse", inverse)
        every = np.arange(len(SPECIES))
        cut = np.full(len(SPECIES), self.cutoff_mev)
        object.__setattr__(self, "_cut", {k: self.at(k, every, cut) for k in self.columns})

    def at_cutoff(self, name: str) -> np.ndarray:
        """Column ``name`` at the track cut-off energy, per species [S] (0 if the cut-off is 0)."""
        return self._cut[name] if self.cutoff_mev > 0 else np.zeros(len(SPECIES))

    def at(self, name: str, species: np.ndarray, t_mev: np.ndarray) -> np.ndarray:
        """Column ``name`` (``dedx``, ``range_cm``, ``proper_cm`` or ``depth``) at kinetic energies
        ``t_mev`` (MeV) of species indices ``species`` (int, same shape)."""
        return np.exp(self._forward[name](species, np.log(np.maximum(t_mev, 1e-300))))

    def at_many(self, names: tuple[str, ...], species: np.ndarray, t_mev: np.ndarray
                ) -> list[np.ndarray]:
        """:meth:`at` for several columns at once (they share the energy grid)."""
        first = self._forward[names[0]]
        cell = first.cell(species, np.log(np.maximum(t_mev, 1e-300)))
        return [np.exp(first.interpolate(lk.y, lk.dy, lk.low_slope, species, cell))
                for lk in (self._forward[k] for k in names)]

    def energy_from(self, name: str, species: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`at` for the increasing columns ``range_cm``, ``proper_cm`` and
        ``depth``: the kinetic energy (MeV) where column ``name`` equals ``value``; 0 where
        ``value`` ≤ 0 (e.g. T(R) at zero residual range)."""
        value = np.asarray(value, np.float64)
        t = np.exp(self._inverse[name](species, np.log(np.maximum(value, 1e-300))))
        return np.where(value > 0.0, t, 0.0)

    @staticmethod
    def species(name: str) -> int:
        """Index of species ``name`` (``e``, ``mu``, ``pi``, ``K``, ``p``)."""
        return SPECIES.index(name)


def build_tables(material: Material, transport: Transport) -> MaterialTables:
    """Compute :class:`MaterialTables` (uncached; use :func:`tables`)."""
    n = int(transport.tables_points)
    if n < 16:
        raise ValueError(f"transport.tables_points must be ≥ 16, got {n}")
    rows = {c: [] for c in _COLUMNS}
    log_ts = []
    for s, name in enumerate(SPECIES):
        m = _MASS_MEV[s]
        t_lo = max(1e-3 * m, 0.01)
        log_t = np.linspace(math.log(t_lo), math.log(_T_HIGH_MEV), n)
        t = np.exp(log_t)
        dedx = bethe_dedx(material, m, t)
        if np.any(dedx <= 0):
            raise ValueError(f"Bethe–Bloch stopping power is not positive for {name} in "
                             f"{material.name} (check mean_excitation_ev)")
        gamma = 1.0 + t / m
        betagamma = np.sqrt(gamma * gamma - 1.0)
        # Below the grid S ∝ T^-a, R ∝ T^(1+a): R(t_lo) = t_lo / ((1 + a) S(t_lo)).
        a = -(math.log(dedx[1]) - math.log(dedx[0])) / (log_t[1] - log_t[0])
        r0 = t_lo / ((1.0 + a) * dedx[0])
        range_cm = _cumulative(log_t, 1.0 / dedx, r0)
        # P ∝ T^(1/2 + a) below the grid (βγ ∝ T^½).
        proper = _cumulative(log_t, 1.0 / (dedx * betagamma), r0 / betagamma[0] * (1 + a) / (0.5 + a))
        inv_lambda = 1.0 / interaction_length(transport, material, name, t)
        if name in ("pi", "p"):
            depth = _cumulative(log_t, inv_lambda / dedx, r0 * inv_lambda[0] * (1 + a) / (2 + a))
        else:
            depth = range_cm * 1e-9       # placeholder: never queried (``interacts`` is False)
        log_ts.append(log_t)
        for c, v in zip(_COLUMNS, (dedx, range_cm, proper, depth)):
            rows[c].append(np.log(v))
    return MaterialTables(mass_mev=_MASS_MEV.copy(), log_t=np.array(log_ts),
                          columns={c: np.array(v) for c, v in rows.items()},
                          interacts=np.array([name in ("pi", "p") for name in SPECIES]),
                          cutoff_mev=float(transport.track_cutoff_mev))


_CACHE_BY_ID: dict[tuple[int, int], tuple[Material, Transport, MaterialTables]] = {}
_CACHE_BY_VALUE: dict[str, MaterialTables] = {}


def tables(material: Material, transport: Transport) -> MaterialTables:
    """The :class:`MaterialTables` of ``material`` under ``transport`` settings, built once per
    process and config (cached by identity, then by value)."""
    key = (id(material), id(transport))
    hit = _CACHE_BY_ID.get(key)
    if hit is not None and hit[0] is material and hit[1] is transport:
        return hit[2]
    value_key = to_json(material) + to_json(transport)
    tab = _CACHE_BY_VALUE.get(value_key)
    if tab is None:
        tab = _CACHE_BY_VALUE[value_key] = build_tables(material, transport)
    _CACHE_BY_ID[key] = (material, transport, tab)
    return tab
