"""Neutrino flux parametrisations and the energy of generated events.

The *flux* is a probability density per GeV of the (unoscillated) νμ beam, normalised to unit
integral over E > 0. Two shapes, selected by ``beam.spectrum`` (all numbers from the detector's
``beam`` config):

- ``lbnf`` — DUNE/LBNF-like wide-band on-axis beam: a Gamma-shaped core with its maximum at
  ``peak_gev`` and rms ``width_gev``, plus a share ``tail_fraction`` in a broad high-energy tail
  E·exp(−E/``tail_slope_gev``). The DUNE defaults (peak 2.5 GeV, rms 1.1 GeV, 5 % tail of scale
  7 GeV, events up to 60 GeV) put ≈ 92 % of the flux in 0.5–5 GeV, as the DUNE TDR on-axis νμ
  flux does, and give the νμ CC event-energy quantiles of DUNE's released FD events
  (configs/detectors/dune.yaml cites both).
- ``numi_offaxis`` — NuMI-off-axis-like narrow band (the NOvA beam, ≈ 2 GeV): a Gaussian core
  (``peak_gev``, ``width_gev``) from the off-axis pion-decay kinematics, plus the same kind of tail
  (kaon decays).

The *event* energy is drawn from flux × σ(E), truncated to [``e_min_gev``, ``e_max_gev``]:

- σ(E) ∝ E · E²/(E² + E_s²) with E_s = 0.5 GeV, i.e. σ/E flat above ~1 GeV (deep-inelastic
  scaling) and falling below (the quasi-elastic cross-section saturates). Total CC and NC share the
  shape; ν and ν̄ share it too (their different normalisations do not matter: the ν̄ share is set
  by ``beam.antinu_fraction``).
- CC ντ has the threshold of τ production on a free nucleon at rest, E_th = ((m_τ + m_N)² − m_N²)
  /(2 m_N) ≈ 3.46 GeV, and a cross-section suppressed near it by (1 − E_th/E)^1.3 (a rough shape
  of the published σ(ντ)/σ(νμ) ratio: ≈ 0.2 at 5 GeV, ≈ 0.6 at 10 GeV).

Simplifications: every flavour (and NC) uses the νμ flux shape — the far-detector νe and ντ come
from oscillated νμ, and a classifier wants comparable energies per class; no wrong-sign or
intrinsic-νe component; the tables are piecewise linear on a 4 096-point grid.

Sampling is inverse-CDF on a grid built once per (beam config, threshold) and cached.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..detectors.common import Beam
from ..errors import ConfigError, GnnuError
from .pdg import MASS_GEV

#: σ/E falls below this energy scale (GeV): σ ∝ E · E²/(E² + E_s²).
XSEC_TURN_ON_GEV = 0.5
#: Power of the near-threshold suppression of CC ντ: (1 − E_th/E)^p.
TAU_SUPPRESSION_POWER = 1.3
#: Upper end (GeV) of the numerical integrals over the whole flux.
FLUX_E_MAX_GEV = 60.0
#: Points of the sampling grid.
GRID_POINTS = 4096

_NUCLEON_MASS = 0.5 * (MASS_GEV[2212] + MASS_GEV[2112])


def cc_threshold_gev(lepton_mass_gev: float) -> float:
    """Neutrino energy (GeV) above which CC production of a lepton of this mass (GeV/c²) on a free
    nucleon at rest is possible: ((m_l + m_N)² − m_N²)/(2 m_N)."""
    return ((lepton_mass_gev + _NUCLEON_MASS) ** 2 - _NUCLEON_MASS ** 2) / (2 * _NUCLEON_MASS)


#: CC ντ threshold, GeV (≈ 3.46).
TAU_THRESHOLD_GEV = cc_threshold_gev(MASS_GEV[15])


def _tail(e: np.ndarray, beam: Beam) -> np.ndarray:
    lam = beam.tail_slope_gev
    return e * np.exp(-e / lam) / lam ** 2


def _lbnf(e: np.ndarray, beam: Beam) -> np.ndarray:
    # Gamma density E^a exp(-E/θ) with mode a·θ = peak and variance (a + 1)θ² = width².
    r = (beam.width_gev / beam.peak_gev) ** 2
    a = (1 + math.sqrt(1 + 4 * r)) / (2 * r)
    theta = beam.peak_gev / a
    log_norm = math.lgamma(a + 1) + (a + 1) * math.log(theta)
    with np.errstate(divide="ignore"):
        core = np.exp(a * np.log(e) - e / theta - log_norm)
    return (1 - beam.tail_fraction) * core + beam.tail_fraction * _tail(e, beam)


def _numi_offaxis(e: np.ndarray, beam: Beam) -> np.ndarray:
    z = (e - beam.peak_gev) / beam.width_gev
    core = np.exp(-0.5 * z * z) / (beam.width_gev * math.sqrt(2 * math.pi))
    return (1 - beam.tail_fraction) * core + beam.tail_fraction * _tail(e, beam)


#: ``beam.spectrum`` → flux shape (density per GeV, unit integral over E > 0).
SPECTRA = {"lbnf": _lbnf, "numi_offaxis": _numi_offaxis}


def flux(beam: Beam, energy_gev) -> np.ndarray:
    """νμ flux density (per GeV, unit integral over E > 0) at ``energy_gev`` (GeV, any shape)."""
    try:
        shape = SPECTRA[beam.spectrum]
    except KeyError:
        raise ConfigError(f"unknown beam spectrum '{beam.spectrum}' "
                          f"(known: {', '.join(SPECTRA)})") from None
    e = np.asarray(energy_gev, dtype=np.float64)
    return np.where(e > 0, shape(np.maximum(e, 1e-12), beam), 0.0)


def flux_fraction(beam: Beam, lo_gev: float, hi_gev: float) -> float:
    """Fraction of the whole flux (E > 0) between ``lo_gev`` and ``hi_gev`` (GeV)."""
    e = np.linspace(0.0, FLUX_E_MAX_GEV, 60001)
    f = flux(beam, e)
    total = np.trapezoid(f, e)
    sel = (e >= lo_gev) & (e <= hi_gev)
    return float(np.trapezoid(f[sel], e[sel]) / total)


def cross_section_shape(energy_gev, threshold_gev: float = 0.0) -> np.ndarray:
    """Relative total cross-section per nucleon (arbitrary units) at ``energy_gev`` (GeV).

    σ ∝ E · E²/(E² + E_s²); with ``threshold_gev`` > 0 (CC ντ) it is multiplied by
    (1 − E_th/E)^1.3 above the threshold and vanishes below it.
    """
    e = np.asarray(energy_gev, dtype=np.float64)
    sigma = e * e * e / (e * e + XSEC_TURN_ON_GEV ** 2)
    if threshold_gev > 0:
        above = np.clip(1 - threshold_gev / np.maximum(e, 1e-12), 0, None)
        sigma = sigma * above ** TAU_SUPPRESSION_POWER
    return sigma


@functools.lru_cache(maxsize=32)
def _inverse_cdf(beam: Beam, threshold_gev: float) -> tuple[np.ndarray, np.ndarray]:
    lo = max(beam.e_min_gev, threshold_gev)
    if lo >= beam.e_max_gev:
        raise GnnuError(f"no neutrino energy above the {threshold_gev:.2f} GeV threshold within the "
                        f"beam range [{beam.e_min_gev}, {beam.e_max_gev}] GeV")
    grid = np.linspace(lo, beam.e_max_gev, GRID_POINTS)
    pdf = flux(beam, grid) * cross_section_shape(grid, threshold_gev)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    grid.flags.writeable = False
    cdf.flags.writeable = False
    return cdf, grid


def event_energy_pdf(beam: Beam, energy_gev, threshold_gev: float = 0.0) -> np.ndarray:
    """Density (per GeV, unit integral over the beam range) of generated event energies."""
    cdf, grid = _inverse_cdf(beam, threshold_gev)
    e = np.asarray(energy_gev, dtype=np.float64)
    norm = np.trapezoid(flux(beam, grid) * cross_section_shape(grid, threshold_gev), grid)
    inside = (e >= grid[0]) & (e <= grid[-1])
    return np.where(inside, flux(beam, e) * cross_section_shape(e, threshold_gev) / norm, 0.0)


def sample_energy(beam: Beam, rng: np.random.Generator, size: int | None = None,
                  threshold_gev: float = 0.0):
    """Event energies (GeV) from flux × σ within the beam range (and above ``threshold_gev``).

    Returns a float when ``size`` is None, else an array of shape (size,).
    """
    cdf, grid = _inverse_cdf(beam, float(threshold_gev))
    if size is None:
        return float(np.interp(rng.random(), cdf, grid))
    return np.interp(rng.random(size), cdf, grid)
