"""Stochastic electromagnetic cascades of e± and γ (docs/design.md#dune-like-lartpc, "Transport").

:func:`cascade` develops the shower of every e±/γ of a batch. All particles of all cascades are
handled together. Photons advance one interaction per *step*, all live photons in one
vectorised step (a Compton-scattered photon goes on in the next step, one below the cut-off is
absorbed at its next interaction point). The e± they make wait for a *pass* that follows every
waiting e± over its **whole life** at once: its discrete interactions are the points of a
Poisson process along its path, followed point by point and then sub-step by sub-step by two
compiled kernels (:func:`_lives`, :func:`_walks`); e± below the cut-off just deposit their
energy. A pass's brems photons join the live photons, its δ-rays wait for
the next pass. A pass runs when the photons can make no more e± (none left at or above the
cut-off), or at once when a waiting e± is above the critical energy (its own sub-shower would
otherwise start late and lengthen the cascade; softer e± wait for the photons' Compton chains
to end and share a pass with their electrons). Particles are independent, so this order changes
no physics, only the number of steps and passes (≈ the e → γ → e alternations of the deepest
branch, plus Compton chains). There is no Python loop over particles or over the steps of one
particle: photons are vectorised with numpy, e± lives run in compiled loops. Particles are rows
of one array (energy, position, direction, time, owner, charge), so selecting and joining them
costs one numpy call; the random numbers are drawn by numpy in blocks (the kernels take them as
arrays), in an order that depends on this scheduling.

Every deposit carries the ``track_id`` of the batch particle that started its cascade; shower
daughters are not added to the particle table.

Physics (units: MeV, cm, ns) and the simplifications made:

**Photons** — attenuation μ(k) = μ_pair + μ_Compton + μ_photo, tabulated once per material:

- Pair production: μ_pair = 7/(9 X0) · R(k). R(k) is the ratio of the Bethe–Heitler cross-section
  with the Butcher–Messel screening functions Φ1, Φ2 and the Coulomb correction f_c(Z) (as in
  EGS4/Geant4's physics manuals), integrated over the energy sharing ε ∈ [m/k, 1 − m/k], to its
  complete-screening limit; so the high-energy asymptote is exactly the PDG 7/(9 X0) (mean free
  path 9/7 X0) with X0 from the config, and the cross-section falls towards the 2 m_e threshold.
  Nuclear and electron-field pair production are not distinguished (the normalisation to X0 holds
  both), no triplet kinematics. The energy sharing ε is drawn from the same screened differential
  cross-section (inverse-CDF table in (ln k, quantile), bilinear interpolation); each lepton
  leaves at a polar angle θ = (m_e/E)·u with
  u drawn from p(u) ∝ u/(1 + u²)² (leading small-angle behaviour), opposite azimuths.
- Compton scattering off free electrons at rest: Klein–Nishina total cross-section × electron
  density, energy transfer sampled from Klein–Nishina (inverse-CDF table in (ln k, quantile) of
  ln ε); the electron direction follows from momentum conservation. No binding or Doppler
  broadening.
- Photoabsorption: Born-approximation K-shell formula σ = 4√2 α⁴ Z⁵ σ_T (m_e/k)^{7/2} per atom
  (no edges, no other shells — it only matters far below the default cut-off); the photon's
  energy is deposited at the absorption point (the photo-electron's range is neglected).
- A photon below ``transport.em_cutoff_mev`` flies an exponential distance with its total
  attenuation length and deposits all its energy at that one point (its Compton chain is not
  followed).

**Electrons and positrons** (treated alike except for annihilation; kinetic energy T):

- Continuous ionisation loss: Berger–Seltzer *restricted* collision stopping power for
  Møller scattering (ICRU 37 form) with the Sternheimer density effect from the config,
  restricted to energy transfers below the cut T_c = ``em_cutoff_mev``. (It is ≈ 2.0–2.1 MeV/cm
  in LAr from 1 MeV to 10 GeV: an electron's trunk looks minimum-ionising.) The same stopping
  power is used for positrons (Bhabha differences neglected). Inside one free path the loss is
  the mean loss, evaluated at the energy at the start of the free path (no Landau
  fluctuations beyond those made by discrete δ-rays).
- δ-rays (Møller) above T_c are explicit electrons: proposal rate C/T_c per cm with
  C = (K/2)(Z/A)ρ (β = 1) and energy spectrum ∝ 1/ε² (the leading term of the Møller
  cross-section), kept when ε ≤ T/2; the δ-ray leaves at the Møller angle, the primary's
  direction is not changed by it.
- Bremsstrahlung: Bethe–Heitler spectrum with the same Butcher–Messel screening functions as pair
  production, normalised so that its high-energy limit is the PDG complete-screening spectrum
  dN/dy ≈ (1/X0)(4/3 − 4/3 y + y²)/y per cm (radiative loss E/X0) with X0 from the config; at low
  energy screening is incomplete and the loss falls (to ≈ 0.81 E/X0 at 30 MeV, 0.69 at 10 MeV in
  argon). y is the photon's fraction of the electron's *kinetic* energy (≈ total energy above a
  few MeV); no LPM or dielectric suppression, no electron–electron distinction beyond X0.
  Photons are proposed above the fraction y_min = T_c/T₀ fixed at the electron's birth energy
  T₀, at a constant rate along the electron's life, and thinned to the exact spectrum at the
  electron's energy at the emission (the life is followed point by point, so that energy is
  known exactly). While the electron slows
  down this also makes some photons below T_c — they are handled like any photon below the
  cut-off; the spectrum below y_min (≤ (4/3)·T_c/X0 ≈ 0.1 MeV/cm) is not emitted (the electron
  keeps that energy). Photon polar angle θ = (m_e/E)·u as for pairs.
- Multiple scattering: Highland's θ0²(x) = (13.6 MeV/βcp)² (x/X0)(1 + 0.038 ln(x/(X0β²)))² for
  the path x travelled since the particle's birth, split over sub-steps of
  ``transport.em_step_x0``·X0 (so that the summed variance along a path of fixed momentum is
  Highland's, whatever the sub-step), Gaussian projected angles. Directions are the
  exponential map of the summed tangent-plane deflections of the electron's birth frame (exact
  for small angles; it lets a slow electron turn back but is not Brownian motion on the
  sphere). No lateral displacement within a sub-step.
- An electron stops at T_c; its residual energy is deposited at its end point (range ≲ 0.4 cm
  at 1 MeV in LAr). A stopped positron annihilates at rest into two back-to-back 511 keV
  photons (no annihilation in flight). e± born below T_c deposit their energy where they are
  born (a positron then also annihilates).
- Deposits are the ionisation of each sub-step, at its midpoint, with ``dx`` the sub-step length
  (for recombination); point deposits (local absorption, end of range) have ``dx = 0``, the
  readout's convention. Times: every particle moves at c.
- A particle stops being tracked when it leaves ``detector.config.active_volume`` (an electron
  at the end of the first sub-step outside; a photon whose interaction point is outside).

``end_pos`` of an initiating photon is its first interaction point (or where it left the
volume); of an initiating e± the end of its own trajectory (or where it left the volume,
clipped onto the volume's surface).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .._jit import jit
from ..detectors.common import Material
from .constants import (ALPHA, AVOGADRO, C_CM_PER_NS, HIGHLAND_MEV, K_BETHE, R_E_CM,
                        highland_log_term_jit)
from .directions import rotate, turn_one
from .pdg import ELECTRON_MASS_MEV
from .records import Deposits, ParticleBatch, StageOutput

ME = ELECTRON_MASS_MEV
#: Safety net: a cascade longer than this (photon steps) is a bug, not physics.
MAX_STEPS = 1000


# --------------------------------------------------------------------------------------------
# Cross-section and stopping-power tables
# --------------------------------------------------------------------------------------------

@jit
def _phi12_one(d: float) -> tuple[float, float]:
    """Butcher–Messel screening functions Φ1(δ), Φ2(δ) (dimensionless): for δ ≤ 1
    Φ1 = 20.867 − 3.242δ + 0.625δ², Φ2 = 20.209 − 1.930δ − 0.086δ², above both
    21.12 − 4.184 ln(δ + 0.952) (EGS4; Geant4's Bethe–Heitler models use 3Φ1 − Φ2 and
    (3Φ1 + Φ2)/2 of these)."""
    if d <= 1.0:
        return 20.867 - 3.242 * d + 0.625 * d * d, 20.209 - 1.930 * d - 0.086 * d * d
    far = 21.12 - 4.184 * math.log(d + 0.952)
    return far, far


@jit
def _phi12_many(d: np.ndarray) -> np.ndarray:
    out = np.empty((2, len(d)))
    for i in range(len(d)):
        out[0, i], out[1, i] = _phi12_one(d[i])
    return out


def _phi12(delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Φ1(δ), Φ2(δ) of :func:`_phi12_one` for an array ``delta``."""
    d = np.asarray(delta, np.float64)
    phi = _phi12_many(d.ravel())
    return phi[0].reshape(d.shape), phi[1].reshape(d.shape)


def _coulomb_correction(z: float) -> float:
    """Davies–Bethe–Maximon Coulomb correction f_c(Z)."""
    a2 = (ALPHA * z) ** 2
    return a2 * (1.0 / (1.0 + a2) + 0.20206 - 0.0369 * a2 + 0.0083 * a2 ** 2 - 0.002 * a2 ** 3)


def _fz_half(z: float) -> float:
    """F(Z)/2 = (4/3) ln Z + 4 f_c(Z) of the screened Bethe–Heitler formulae."""
    return 0.5 * (8.0 / 3.0 * math.log(z) + 8.0 * _coulomb_correction(z))


def _pair_dsigma(eps: np.ndarray, k: np.ndarray, z: float) -> np.ndarray:
    """Screened Bethe–Heitler dσ/dε (arbitrary units) for photon energy k (MeV), sharing ε."""
    fz_half = _fz_half(z)
    e1e = eps * (1.0 - eps)
    delta = 136.0 * ME * z ** (-1.0 / 3.0) / (k * e1e)
    phi1, phi2 = _phi12(delta)
    return ((eps * eps + (1.0 - eps) ** 2) * np.maximum(phi1 - fz_half, 0.0)
            + (2.0 / 3.0) * e1e * np.maximum(phi2 - fz_half, 0.0))


def _pair_ratio(k: np.ndarray, z: float, n_eps: int = 400) -> np.ndarray:
    """σ_pair(k)/σ_pair(∞) from the screened Bethe–Heitler formula; 0 below 2 m_e."""
    k = np.asarray(k, np.float64)
    fz_half = _fz_half(z)
    sigma_inf = (2.0 / 3.0) * (20.867 - fz_half) + (1.0 / 9.0) * (20.209 - fz_half)
    out = np.zeros_like(k)
    above = k > 2.0 * ME
    ka = k[above][:, None]
    e0 = ME / ka
    frac = (np.arange(n_eps) + 0.5) / n_eps                     # midpoint rule on [ε0, 1 − ε0]
    eps = e0 + (1.0 - 2.0 * e0) * frac[None, :]
    integral = _pair_dsigma(eps, ka, z).mean(axis=1) * (1.0 - 2.0 * e0[:, 0])
    out[above] = integral / sigma_inf
    return out


@jit
def _brems_acceptance_one(y: float, t_mev: float, z: float, fz_half: float,
                          brems_max: float) -> float:
    """Screened Bethe–Heitler bremsstrahlung y·dσ/dy (Butcher–Messel form) of a photon of
    fraction ``y`` of an electron's kinetic energy ``t_mev`` (MeV; < 0: complete screening),
    over its maximum ``brems_max`` (y = 0, complete screening): the probability of keeping a
    photon proposed with dN ∝ dy/y."""
    delta = 0.0
    if t_mev >= 0.0:
        k = y * t_mev
        e = t_mev + ME
        delta = 136.0 * ME * z ** (-1.0 / 3.0) * k / (e * (e - k))
    phi1, phi2 = _phi12_one(delta)
    one_my = 1.0 - y
    return ((1.0 + one_my * one_my) * max(phi1 - fz_half, 0.0)
            - (2.0 / 3.0) * one_my * max(phi2 - fz_half, 0.0)) / brems_max


@jit
def _brems_acceptance_many(y, t_mev, z, fz_half, brems_max):
    out = np.empty(len(y))
    for i in range(len(y)):
        out[i] = _brems_acceptance_one(y[i], t_mev[i], z, fz_half, brems_max)
    return out


def klein_nishina_per_electron(k_mev) -> np.ndarray:
    """Klein–Nishina total Compton cross-section per free electron (cm²) at photon energies
    ``k_mev`` (MeV, any shape)."""
    x = np.asarray(k_mev, np.float64) / ME
    l2 = np.log1p(2.0 * x)
    return 2.0 * math.pi * R_E_CM ** 2 * (
        (1.0 + x) / x ** 2 * (2.0 * (1.0 + x) / (1.0 + 2.0 * x) - l2 / x)
        + l2 / (2.0 * x) - (1.0 + 3.0 * x) / (1.0 + 2.0 * x) ** 2)


def _density_effect(x: np.ndarray, material: Material) -> np.ndarray:
    """Sternheimer density correction δ at x = log10(βγ)."""
    s = material.sternheimer
    two_ln10 = 2.0 * math.log(10.0)
    mid = two_ln10 * x - s.cbar + s.a * np.maximum(s.x1 - x, 0.0) ** s.k
    low = s.delta0 * 10.0 ** (2.0 * (x - s.x0))
    return np.where(x < s.x0, low, mid)


def electron_stopping_power(t_mev, material: Material, cut_mev: float) -> np.ndarray:
    """Restricted collision stopping power of electrons, MeV/cm (Berger–Seltzer, ICRU 37 form).

    ``t_mev``: kinetic energies (any shape, MeV, ≳ 10 keV); energy transfers above ``cut_mev``
    (δ-rays, made explicitly) are excluded; for T < 2·cut this is the unrestricted value.
    Density effect from ``material.sternheimer``. Returns the shape of ``t_mev``.
    """
    t = np.asarray(t_mev, np.float64)
    tau = t / ME
    gam = tau + 1.0
    bg2 = tau * (tau + 2.0)
    beta2 = bg2 / (gam * gam)
    d = np.minimum(cut_mev, 0.5 * t) / ME
    eexc = material.mean_excitation_ev * 1e-6 / ME
    bracket = (np.log(2.0 * (tau + 2.0) / (eexc * eexc)) - 1.0 - beta2 + np.log((tau - d) * d)
               + tau / (tau - d)
               + (0.5 * d * d + (2.0 * tau + 1.0) * np.log1p(-d / tau)) / (gam * gam))
    bracket -= _density_effect(0.5 * np.log10(bg2), material)
    pref = 0.5 * K_BETHE * material.z_over_a * material.density_g_cm3
    return pref * np.maximum(bracket, 0.0) / beta2


def _compton_dsigma(v: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """Klein–Nishina dσ/dv (arbitrary units) for ε = k'/k = ε0^(1−v), ε0 = 1/(1 + 2κ), κ = k/m_e
    (a logarithmic variable resolves the peak at small ε of high-energy photons)."""
    e0 = 1.0 / (1.0 + 2.0 * kappa)
    eps = e0 ** (1.0 - v)
    onecost = (1.0 - eps) / (eps * kappa)
    sin2 = onecost * (2.0 - onecost)
    return (1.0 + eps * eps) * (1.0 - eps * sin2 / (1.0 + eps * eps))


def _pair_dsigma_v(v: np.ndarray, k: np.ndarray, z: float) -> np.ndarray:
    """Screened Bethe–Heitler dσ/dε at ε = ε0 + (½ − ε0)·v, ε0 = m_e/k (the lower half)."""
    e0 = ME / k
    return _pair_dsigma(e0 + (0.5 - e0) * v, k, z)


def _inverse_cdf_table(pdf, log_e: np.ndarray, n_v: int = 512, n_u: int = 129) -> np.ndarray:
    """Inverse CDFs of ``pdf(v [n_e, n_v], e [n_e, 1])`` on v ∈ [0, 1], one row per energy of
    ``log_e`` (ln MeV), tabulated at the quantiles u = 0 … 1 (n_u of them; midpoint rule; a tiny
    floor keeps the CDF increasing where the density vanishes). Returned as the corners of each
    (energy, quantile) cell, [(n_e − 1)·(n_u − 1), 4]: v at (i, j), (i, j+1), (i+1, j),
    (i+1, j+1) for cell i·(n_u − 1) + j, so that sampling gathers them in one call (and from
    one cache line)."""
    v = (np.arange(n_v) + 0.5) / n_v
    dens = pdf(v[None, :], np.exp(log_e)[:, None])
    dens = np.maximum(dens, 1e-9 * dens.max(axis=1, keepdims=True) + 1e-300)
    cdf = np.concatenate([np.zeros((len(log_e), 1)), np.cumsum(dens, axis=1)], axis=1)
    cdf /= cdf[:, -1:]
    edges = np.arange(n_v + 1) / n_v
    u = np.linspace(0.0, 1.0, n_u)
    table = np.stack([np.interp(u, c, edges) for c in cdf])
    return np.stack([table[:-1, :-1], table[:-1, 1:], table[1:, :-1], table[1:, 1:]],
                    axis=-1).reshape(-1, 4)


def _sample_inverse_cdf(cells: np.ndarray, n_u: int, log_e0: float, dlog_e: float,
                        log_e: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Bilinear interpolation in an :func:`_inverse_cdf_table` (``cells``, ``n_u`` quantile
    nodes) at energies ``log_e`` [n] (ln MeV, grid start ``log_e0``, step ``dlog_e``) and
    quantiles ``u`` [n]; returns v [n]."""
    n_i, n_j = len(cells) // (n_u - 1), n_u - 1                       # cells along e and u
    fi = np.minimum(np.maximum((log_e - log_e0) / dlog_e, 0.0), n_i - 1e-6)
    i = fi.astype(np.int64)
    a = fi - i
    fj = np.minimum(u * n_j, n_j - 1e-6)
    j = fj.astype(np.int64)
    b = fj - j
    c00, c01, c10, c11 = cells.take(i * n_j + j, axis=0).T
    low = c00 + b * (c01 - c00)
    return low + a * (c10 + b * (c11 - c10) - low)


@dataclass(frozen=True)
class EMTables:
    """Per-material EM tables (built once by :func:`em_tables`).

    ``log_k`` (ln MeV) grid of photon energies with attenuation coefficients ``mu_pair``,
    ``mu_compton``, ``mu_photo`` and their sum ``mu_total`` (1/cm); ``log_t`` (ln MeV) grid of
    electron kinetic energies with the restricted stopping power ``dedx`` (MeV/cm, cut =
    ``cut_mev``) and its minimum ``dedx_min``; ``moller_c`` = (K/2)(Z/A)ρ (MeV/cm): the δ-ray
    rate above energy ε is ``moller_c/ε`` per cm. Bremsstrahlung: photons with kinetic-energy
    fraction y > y_min are proposed at ``brems_c``·ln(1/y_min)/X0 per cm with dN ∝ dy/y and kept
    with probability :meth:`brems_acceptance` (``brems_max`` = the screened spectrum's maximum,
    at y = 0, E = ∞; ``fz_half`` = F(Z)/2). ``pair_table`` and ``compton_table`` are inverse-CDF
    tables (:func:`_inverse_cdf_table`, ``sampling_n_u`` quantile nodes) of the pair energy
    sharing and of the Klein–Nishina energy transfer on the ln k grid ``sampling_log_k`` =
    (start, step) (see :meth:`sample_pair`, :meth:`sample_compton`).
    """

    x0_cm: float
    z: float
    cut_mev: float
    log_k: np.ndarray
    mu_pair: np.ndarray
    mu_compton: np.ndarray
    mu_photo: np.ndarray
    mu_total: np.ndarray
    log_t: np.ndarray
    dedx: np.ndarray
    dedx_min: float
    moller_c: float
    fz_half: float
    brems_c: float
    brems_max: float
    sampling_log_k: tuple[float, float]
    sampling_n_u: int
    pair_table: np.ndarray
    compton_table: np.ndarray

    def attenuation(self, k_mev: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(μ_pair, μ_Compton, μ_photo) in 1/cm at photon energies ``k_mev`` [n] (MeV)."""
        lk = np.log(np.maximum(k_mev, 1e-3))
        return (np.interp(lk, self.log_k, self.mu_pair), np.interp(lk, self.log_k, self.mu_compton),
                np.interp(lk, self.log_k, self.mu_photo))

    def brems_acceptance(self, y: np.ndarray, t_mev: np.ndarray | None) -> np.ndarray:
        """Probability in [0, 1] of keeping a proposed brems photon of fraction ``y`` [n] of the
        kinetic energy ``t_mev`` [n] (MeV) of the electron; ``None``: complete screening (E = ∞)."""
        y = np.asarray(y, np.float64)
        t = np.full(len(y), -1.0) if t_mev is None else np.asarray(t_mev, np.float64)
        return _brems_acceptance_many(y, t, self.z, self.fz_half, self.brems_max)

    def sample_pair(self, k_mev: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Energy fraction ε ∈ [m_e/k, ½] of the lighter lepton for photons ``k_mev`` [n]
        (> 2 m_e) from uniforms ``u`` [n] (screened Bethe–Heitler, inverse-CDF table)."""
        v = _sample_inverse_cdf(self.pair_table, self.sampling_n_u, *self.sampling_log_k,
                                np.log(k_mev), u)
        e0 = ME / k_mev
        return e0 + (0.5 - e0) * v

    def sample_compton(self, k_mev: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Scattered-photon energy fraction ε = k'/k ∈ [1/(1+2κ), 1] for photons ``k_mev`` [n]
        from uniforms ``u`` [n] (Klein–Nishina, inverse-CDF table)."""
        v = _sample_inverse_cdf(self.compton_table, self.sampling_n_u, *self.sampling_log_k,
                                np.log(k_mev), u)
        return (1.0 + 2.0 * k_mev / ME) ** (v - 1.0)

    def stopping_power(self, t_mev: np.ndarray) -> np.ndarray:
        """Restricted electron stopping power (MeV/cm) at kinetic energies ``t_mev`` [n] (MeV)."""
        return np.interp(np.log(np.maximum(t_mev, 1e-2)), self.log_t, self.dedx)


@functools.lru_cache(maxsize=16)
def em_tables(material: Material, cut_mev: float) -> EMTables:
    """Build (and cache) the EM tables of ``material`` for the cut-off ``cut_mev`` (MeV)."""
    z = float(material.Z)
    n_atoms = material.density_g_cm3 * AVOGADRO / material.A          # 1/cm³
    log_k = np.linspace(math.log(1e-3), math.log(1e5), 500)
    k = np.exp(log_k)
    mu_pair = 7.0 / (9.0 * material.radiation_length_cm) * _pair_ratio(k, z)
    mu_compton = n_atoms * z * klein_nishina_per_electron(k)
    sigma_t = 8.0 * math.pi / 3.0 * R_E_CM ** 2
    mu_photo = n_atoms * 4.0 * math.sqrt(2.0) * ALPHA ** 4 * z ** 5 * sigma_t * (ME / k) ** 3.5
    log_t = np.linspace(math.log(1e-2), math.log(1e5), 400)
    dedx = electron_stopping_power(np.exp(log_t), material, cut_mev)
    fz_half = _fz_half(z)
    a1, a2 = 20.867 - fz_half, 20.209 - fz_half                        # Φ1(0), Φ2(0) − F/2
    brems_max = 2.0 * a1 - 2.0 / 3.0 * a2                             # y·dσ/dy at y = 0
    brems_norm = 4.0 / 3.0 * a1 - a2 / 3.0                            # ∫ y·dσ/dy dy over [0, 1]
    log_s = np.linspace(math.log(2.0 * ME * 1.0001), math.log(1e5), 160)  # sampling grid
    n_u = 129
    return EMTables(x0_cm=material.radiation_length_cm, z=z, cut_mev=cut_mev, log_k=log_k,
                    mu_pair=mu_pair, mu_compton=mu_compton, mu_photo=mu_photo,
                    mu_total=mu_pair + mu_compton + mu_photo, log_t=log_t,
                    dedx=dedx, dedx_min=float(dedx.min()),
                    moller_c=0.5 * K_BETHE * material.z_over_a * material.density_g_cm3,
                    fz_half=fz_half, brems_c=brems_max / brems_norm, brems_max=brems_max,
                    sampling_log_k=(float(log_s[0]), float(log_s[1] - log_s[0])),
                    sampling_n_u=n_u,
                    pair_table=_inverse_cdf_table(lambda v, e: _pair_dsigma_v(v, e, z), log_s,
                                                  n_u=n_u),
                    compton_table=_inverse_cdf_table(lambda v, e: _compton_dsigma(v, e / ME),
                                                     log_s, n_u=n_u))


# --------------------------------------------------------------------------------------------
# Particle rows, deposits and small vectorised helpers
# --------------------------------------------------------------------------------------------

# Shower particles are rows of one float64 array [n, _NCOL] (selecting or joining particles is
# then one numpy call): kinetic energy (MeV), position [3] (cm), unit direction [3], time (ns),
# owner (row of the initiating batch particle, an exact integer) and charge (0 γ, ±1 e±).
_E, _POS, _DIR, _T, _OWNER, _Q = 0, slice(1, 4), slice(4, 7), 7, 8, 9
_NCOL = 10


def _no_particles() -> np.ndarray:
    """No particle rows ([0, _NCOL])."""
    return np.zeros((0, _NCOL))


def _join(parts: list[np.ndarray]) -> np.ndarray:
    """Particle rows of ``parts`` (a list of [k, _NCOL] arrays) as one array."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else _no_particles()


def _small_angle_cos(e_total: np.ndarray, r: np.ndarray) -> np.ndarray:
    """cos θ for θ = (m_e/E)·u, u from p(u) ∝ u/(1+u²)² (inverse CDF of uniforms ``r``):
    the angle of a brems photon or of a pair lepton of total energy ``e_total`` (MeV)."""
    return np.cos(np.minimum(ME / e_total * np.sqrt(r / (1.0 - r)), math.pi))


def _inside(pos: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Whether points ``pos`` [n, 3] (cm) lie in the box lo–hi [3] (bool [n])."""
    c = (pos >= lo) & (pos <= hi)
    return c[:, 0] & c[:, 1] & c[:, 2]                       # (faster than .all(axis=1))


def _rows(g: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The rows of ``g`` [n, k] where ``mask`` [n] holds (as ``g[mask]``, with less overhead)."""
    return g.take(mask.nonzero()[0], axis=0)


def _exit_point(pos: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Where rays from ``pos`` [n, 3] (inside the box lo–hi, cm) along ``d`` [n, 3] leave it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d > 0, (hi - pos) / d, np.where(d < 0, (lo - pos) / d, np.inf))
    return pos + np.clip(t.min(axis=1), 0.0, None)[:, None] * d


def _annihilation_photons(pos: np.ndarray, t: np.ndarray, owner: np.ndarray,
                          rng: np.random.Generator) -> np.ndarray:
    """Two back-to-back 511 keV photons (particle rows [2m, _NCOL]) per positron stopped at
    ``pos`` [m, 3] (cm) at times ``t`` [m] (ns)."""
    m = len(t)
    r = rng.random((2, m))
    c = 2.0 * r[0] - 1.0
    phi = 2.0 * math.pi * r[1]
    s = np.sqrt(1.0 - c * c)
    d = np.array([s * np.cos(phi), s * np.sin(phi), c]).T               # isotropic
    out = np.empty((2 * m, _NCOL))
    out[:, _E] = ME
    out[:m, _POS] = pos
    out[m:, _POS] = pos
    out[:m, _DIR] = d
    out[m:, _DIR] = -d
    out[:m, _T] = t
    out[m:, _T] = t
    out[:m, _OWNER] = owner
    out[m:, _OWNER] = owner
    out[:, _Q] = 0.0
    return out


class _Sink:
    """Collects deposits: position [n, 3] cm, energy MeV, step length cm, time ns, owner."""

    def __init__(self):
        self.steps: list[tuple] = []
        self.points: list[np.ndarray] = []
        self.positrons: list[tuple] = []        # (pos, t, owner) of e+ annihilating at rest

    def add_steps(self, pos, de, dx, t, owner, step=None):
        """Deposits along sub-steps of length ``dx`` (cm); ``step`` [n, 3] their vectors (cm;
        None: point-like)."""
        if len(de):
            self.steps.append((pos, de, dx, t, owner, np.zeros((len(de), 3)) if step is None else step))

    def add_points(self, rows: np.ndarray):
        """Point deposits (``dx`` = 0) of the whole kinetic energy of particle rows ``rows``."""
        if len(rows):
            self.points.append(rows)

    def deposits(self, track_id: np.ndarray) -> Deposits:
        """All deposits, owners mapped to the batch's ``track_id`` [n] (steps, then points)."""
        parts = self.steps
        if self.points:
            p = np.concatenate(self.points)
            parts = parts + [(p[:, _POS], p[:, _E], np.zeros(len(p)), p[:, _T], p[:, _OWNER],
                              np.zeros((len(p), 3)))]
        if not parts:
            return Deposits()
        pos, de, dx, t, own, step = (np.concatenate(c) for c in zip(*parts))
        return Deposits(pos, de, dx, t, track_id[own.astype(np.int64)].astype(np.int32), step)


def _absorb(g: np.ndarray, tab: EMTables, lo: np.ndarray, hi: np.ndarray, sink: _Sink,
            rng: np.random.Generator):
    """Photons ``g`` (particle rows, below the cut-off; moved in place) fly an exponential
    distance with their total attenuation length and deposit all their energy at that point
    (dropped if it lies outside the box lo–hi)."""
    s = rng.exponential(size=len(g)) / np.interp(np.log(np.maximum(g[:, _E], 1e-6)), tab.log_k,
                                                 tab.mu_total)
    g[:, _POS] += s[:, None] * g[:, _DIR]
    g[:, _T] += s / C_CM_PER_NS
    sink.add_points(_rows(g, _inside(g[:, _POS], lo, hi)))


def _stopped_positrons(pos: np.ndarray, t: np.ndarray, owner: np.ndarray, tab: EMTables,
                       sink: _Sink, rng: np.random.Generator) -> np.ndarray:
    """Positrons at rest at ``pos`` [m, 3] (cm, times ``t`` ns) annihilate into two back-to-back
    511 keV photons. Below the cut-off these are only absorbed, which :func:`cascade` does for
    all of them at once at the end (returns no particles); otherwise they are returned as
    particle rows, to be tracked."""
    if ME < tab.cut_mev:
        sink.positrons.append((pos, t, owner))
        return _no_particles()
    return _annihilation_photons(pos, t, owner, rng)


# --------------------------------------------------------------------------------------------
# Photons
# --------------------------------------------------------------------------------------------

def _pair_leptons(g: np.ndarray, tab: EMTables, rng: np.random.Generator) -> np.ndarray:
    """The e− (first m rows) and e+ (last m) made by the photons ``g`` [m, _NCOL] converting
    where they are."""
    m = len(g)
    k = g[:, _E]
    r = rng.random((5, m))
    eps = tab.sample_pair(k, r[0])
    e_minus = np.where(r[1] < 0.5, eps, 1.0 - eps) * k                 # total energies, MeV
    e_both = np.concatenate([e_minus, k - e_minus])
    phi = 2.0 * math.pi * r[2]
    out = np.concatenate([g, g])
    cos_t = _small_angle_cos(e_both, r[3:].ravel())
    out[:, _DIR] = rotate(out[:, _DIR], cos_t, np.concatenate([phi, phi + math.pi]))
    out[:, _E] = e_both - ME
    out[:m, _Q] = -1.0
    out[m:, _Q] = 1.0
    return out


def _photon_step(g: np.ndarray, tab: EMTables, lo: np.ndarray, hi: np.ndarray, sink: _Sink,
                 rng: np.random.Generator):
    """One interaction of every photon of ``g`` (particle rows [n, _NCOL], moved in place to
    its interaction point, an exponential flight with the total attenuation length).

    Outside the box lo–hi the photon is lost; below the cut-off it is absorbed (its energy
    deposited at that point); else it converts or Compton-scatters or is photoabsorbed, in
    proportion to the partial attenuation coefficients. Returns (inside [n]: whether the
    interaction point lies in the box; the scattered photons, the Compton electrons and the
    converting photons, all particle rows).
    """
    k = g[:, _E]
    lk = np.log(np.maximum(k, 1e-6))
    mu_pair = np.interp(lk, tab.log_k, tab.mu_pair)
    mu_pc = mu_pair + np.interp(lk, tab.log_k, tab.mu_compton)
    mu = np.interp(lk, tab.log_k, tab.mu_total)
    r = rng.random((2, len(g)))
    s = -np.log1p(-r[0]) / mu
    g[:, _POS] += s[:, None] * g[:, _DIR]
    g[:, _T] += s / C_CM_PER_NS
    inside = _inside(g[:, _POS], lo, hi)
    choice = r[1] * mu
    tracked = inside & (k >= tab.cut_mev)
    pair = tracked & (choice < mu_pair) & (k > 2.0 * ME)
    compton = tracked & ~pair & (choice < mu_pc)
    sink.add_points(_rows(g, inside & ~(pair | compton)))               # absorbed
    converting = _rows(g, pair)
    g = _rows(g, compton)
    if not len(g):
        return inside, g, g, converting
    k = g[:, _E]
    d = g[:, _DIR]
    r = rng.random((2, len(g)))
    eps = tab.sample_compton(k, r[0])
    cos_g = np.maximum(1.0 - (1.0 - eps) / (eps * k / ME), -1.0)       # (≤ 1: eps ≤ 1)
    d_gamma = rotate(d, cos_g, 2.0 * math.pi * r[1])
    k_out = eps * k
    electrons = g.copy()
    electrons[:, _E] = k - k_out
    p_e = k[:, None] * d - k_out[:, None] * d_gamma                       # electron momentum, MeV
    electrons[:, _DIR] = p_e / np.sqrt(np.einsum("ij,ij->i", p_e, p_e))[:, None]
    electrons[:, _Q] = -1.0
    g[:, _E] = k_out
    g[:, _DIR] = d_gamma
    return inside, g, electrons, converting


# --------------------------------------------------------------------------------------------
# Electrons and positrons
# --------------------------------------------------------------------------------------------

# Rows of the per-point array of :func:`_lives` ([_NPT, m]) and of its per-life array ([_NLIFE, n]).
_PL, _PL_PREV, _PT_PREV, _PT_BEFORE, _PEPS, _PION, _PY, _PDLT, _PBREM = range(9)
_NPT = 9
_LL_END, _LT_RES, _LJD, _LIN_GAP = range(4)
_NLIFE = 4
#: Rows of the sub-step array of :func:`_walks` ([_NSTEP, k]): midpoint x, y, z (cm), ionisation
#: energy (MeV), length (cm), time (ns), life index, step vector x, y, z (cm: its charge is spread
#: over the wires its projection crosses, :meth:`Deposits.step`).
_SX, _SY, _SZ, _SDE, _SDX, _ST, _SLIFE, _SVX, _SVY, _SVZ = range(10)
_NSTEP = 10
_SPOS = slice(_SX, _SZ + 1)
_SVEC = slice(_SVX, _SVZ + 1)
#: Rows of the per-life end array of :func:`_walks` ([_NEND, n]): end position x, y, z (cm),
#: whether it stopped inside (1) or left the box (0).
_EX, _EY, _EZ, _EL_STOP = range(4)
_NEND = 4
_EPOS = slice(_EX, _EZ + 1)
#: Rows of the emission array of :func:`_walks` ([_NEMIT, e]): index of the emitting point,
#: life index, emission position x, y, z (cm), direction of the emitter there (3).
_MPOINT, _MLIFE, _MX, _MY, _MZ, _MDX, _MDY, _MDZ = range(8)
_NEMIT = 8
_MPOS, _MDIR = slice(_MX, _MZ + 1), slice(_MDX, _MDZ + 1)


@jit
def _interp_uniform(x: float, grid: np.ndarray, values: np.ndarray) -> float:
    """Linear interpolation of ``values`` on the uniform ``grid`` at ``x`` (clamped at the ends,
    as ``np.interp``)."""
    n = len(grid)
    if x <= grid[0]:
        return values[0]
    if x >= grid[n - 1]:
        return values[n - 1]
    f = (x - grid[0]) / (grid[1] - grid[0])
    i = min(int(f), n - 2)
    f -= i
    return values[i] + f * (values[i + 1] - values[i])


@jit
def _lives(starts, r, t0, l_max, p_brem, cut, log_t, dedx, z, fz_half, brems_max):
    """Every e± life point by point (the Poisson points along its path, see the module docstring).

    ``starts`` [n]: first point of each life in the point arrays (the last point of a life is
    its terminal point at ``l_max``, the longest possible life); ``r`` [5, m] uniforms per point
    (position along the life, brems or δ-ray, brems fraction, brems thinning, δ-ray energy);
    ``t0`` [n] birth kinetic energies (MeV); ``p_brem`` [n] the brems share of the proposals;
    ``log_t``, ``dedx``: the restricted stopping power on a uniform ln T grid. Over a free path
    the electron loses the stopping power at the energy where it starts times the path; at a
    brems point it keeps a photon of fraction y with the screened spectrum's acceptance at its
    energy there (exact thinning), at a δ-ray point it gives the δ-ray its energy if that is at
    most half of what it has. It dies at the first point whose free path ends at the cut-off
    (``in_gap``: it stops inside that free path) or whose emission leaves it below the cut-off.

    Returns (points [_NPT, m]: path length L at the point, L and T at the previous point (the
    free path's start), T just before the point, stopping power over the free path, ionisation
    before the free path, brems fraction y, δ-ray energy (0 if none), brems kept (1/0); lives
    [_NLIFE, n]: path length and kinetic energy at death, index of the death point, in_gap).
    """
    n = len(starts)
    m = r.shape[1]
    pts = np.zeros((_NPT, m))
    life = np.empty((_NLIFE, n))
    for i in range(n):
        a = starts[i]
        last = starts[i + 1] - 1 if i + 1 < n else m - 1
        u = np.sort(r[0, a:last])
        t_birth = t0[i]
        t = t_birth
        l_prev = 0.0
        ion = 0.0
        for j in range(a, last + 1):
            lj = (u[j - a] if j < last else 1.0) * l_max[i]
            eps = _interp_uniform(math.log(max(max(t, cut), 1e-2)), log_t, dedx)
            t_before = t - eps * (lj - l_prev)
            y = min((cut / t_birth) ** r[2, j], 1.0 - 1e-6)
            keep = 0.0
            dlt = 0.0
            if j < last:
                if r[1, j] < p_brem[i]:
                    if r[3, j] < _brems_acceptance_one(y, max(t_before, cut), z, fz_half,
                                                       brems_max):
                        keep = 1.0
                else:                                    # (δ-rays: only when T₀ > 2 T_c)
                    dlt = min(cut / (1.0 - r[4, j]), t_birth)
                    if dlt > 0.5 * t_before:
                        dlt = 0.0
            t_after = (1.0 - y if keep > 0 else 1.0) * t_before - dlt
            pts[_PL, j] = lj
            pts[_PL_PREV, j] = l_prev
            pts[_PT_PREV, j] = t
            pts[_PT_BEFORE, j] = t_before
            pts[_PEPS, j] = eps
            pts[_PION, j] = ion
            pts[_PY, j] = y
            pts[_PBREM, j] = keep
            in_gap = t_before <= cut
            if in_gap or t_after < cut or j == last:
                if in_gap:
                    life[_LL_END, i] = l_prev + (t - cut) / eps
                    life[_LT_RES, i] = cut
                else:
                    if t_after < 0.0:                    # the δ-ray takes all that is left
                        dlt = t_before
                    life[_LL_END, i] = lj
                    life[_LT_RES, i] = max(t_after, 0.0)
                pts[_PDLT, j] = dlt
                life[_LJD, i] = j
                life[_LIN_GAP, i] = 1.0 if in_gap else 0.0
                break
            pts[_PDLT, j] = dlt
            ion += eps * (lj - l_prev)
            l_prev = lj
            t = t_after
    return pts, life


@jit
def _walks(starts, nsub, kick, pts, life, pos0, w, time0, lo, hi, h_max, x0, cut):
    """The sub-steps of every e± life of :func:`_lives` (``nsub`` [n] of length ``h_max`` cm,
    the last one shorter, up to the death point): ionisation of each (the stopping power of
    the free paths it overlaps), Highland multiple scattering for the path since birth
    differenced over the sub-step (``kick`` [2, Σ nsub] standard normals), direction as the
    exponential map of the summed deflections in the birth frame of ``w`` [n, 3], positions
    from ``pos0`` [n, 3]; a life that leaves the box lo–hi ends with the first sub-step ending
    outside.

    Returns (steps [10, k]: midpoint (3), energy (MeV), length (cm), time (ns), life index,
    step vector (3, cm: the readout spreads the charge along it);
    ends [4, n]: end position (clipped onto the box for a life that left), 1 if it stopped
    inside; emitted [8, e]: point index, life index, position (3), direction (3) of the brems
    photons and δ-rays emitted before the death point and before leaving the box).
    """
    n = len(starts)
    m = pts.shape[1]
    ns = kick.shape[1]
    steps = np.empty((_NSTEP, ns))
    ends = np.empty((_NEND, n))
    emitted = np.empty((_NEMIT, m))
    k_out = 0
    e_out = 0
    sub0 = 0
    for i in range(n):
        a = starts[i]
        jd = int(life[_LJD, i])
        l_end = life[_LL_END, i]
        wx, wy, wz = w[i, 0], w[i, 1], w[i, 2]
        px, py, pz = pos0[i, 0], pos0[i, 1], pos0[i, 2]
        ang0 = 0.0
        ang1 = 0.0
        ja = a
        jb = a
        jp = a
        j_emit = jd - 1 if life[_LIN_GAP, i] > 0 else jd
        left = False
        l_stop = l_end
        for k in range(nsub[i]):
            la = k * h_max
            lb = min((k + 1) * h_max, l_end)
            while ja < jd and pts[_PL, ja] <= la:          # the free path holding la
                ja += 1
            if jb < ja:
                jb = ja
            while jb < jd and pts[_PL, jb] < lb:
                jb += 1
            ion_a = pts[_PION, ja] + pts[_PEPS, ja] * (la - pts[_PL_PREV, ja])
            ion_b = pts[_PION, jb] + pts[_PEPS, jb] * (lb - pts[_PL_PREV, jb])
            hk = lb - la
            l_mid = 0.5 * (la + lb)
            t_mid = max(pts[_PT_PREV, ja] - pts[_PEPS, ja] * (l_mid - pts[_PL_PREV, ja]), cut)
            p2 = t_mid * (t_mid + 2.0 * ME)
            beta2 = p2 / ((t_mid + ME) * (t_mid + ME))
            xa = la / x0
            xb = lb / x0
            fa = xa * highland_log_term_jit(max(xa, 1e-12) / beta2) ** 2
            fb = xb * highland_log_term_jit(max(xb, 1e-12) / beta2) ** 2
            sigma = HIGHLAND_MEV * math.sqrt(max(fb - fa, 0.0) / (beta2 * p2))
            # direction of this sub-step: the deflection summed before it, in the birth frame
            alpha = math.sqrt(ang0 * ang0 + ang1 * ang1)
            sinc = math.sin(alpha) / alpha if alpha > 0.0 else 0.0
            dx, dy, dz = turn_one(wx, wy, wz, math.cos(alpha), sinc * ang0, sinc * ang1)
            ang0 += kick[0, sub0 + k] * sigma
            ang1 += kick[1, sub0 + k] * sigma
            px += hk * dx
            py += hk * dy
            pz += hk * dz
            steps[_SX, k_out] = px - 0.5 * hk * dx
            steps[_SY, k_out] = py - 0.5 * hk * dy
            steps[_SZ, k_out] = pz - 0.5 * hk * dz
            steps[_SDE, k_out] = ion_b - ion_a
            steps[_SDX, k_out] = hk
            steps[_ST, k_out] = time0[i] + l_mid / C_CM_PER_NS
            steps[_SLIFE, k_out] = i
            steps[_SVX, k_out] = hk * dx
            steps[_SVY, k_out] = hk * dy
            steps[_SVZ, k_out] = hk * dz
            k_out += 1
            out = not (lo[0] <= px <= hi[0] and lo[1] <= py <= hi[1] and lo[2] <= pz <= hi[2])
            if out:
                left = True
                l_stop = lb
                ends[_EX, i] = min(max(px, lo[0]), hi[0])
                ends[_EY, i] = min(max(py, lo[1]), hi[1])
                ends[_EZ, i] = min(max(pz, lo[2]), hi[2])
            # the points in this sub-step (L/h_max rounded down; the last sub-step takes the
            # rest) that emitted, before the death point (at it, if the electron dies by that
            # emission) and before leaving the box
            while jp <= j_emit and min(int(pts[_PL, jp] / h_max), nsub[i] - 1) == k:
                lj = pts[_PL, jp]
                if (pts[_PBREM, jp] > 0 or pts[_PDLT, jp] > 0) and lj <= l_stop:
                    emitted[_MPOINT, e_out] = jp
                    emitted[_MLIFE, e_out] = i
                    emitted[_MX, e_out] = px + (lj - lb) * dx
                    emitted[_MY, e_out] = py + (lj - lb) * dy
                    emitted[_MZ, e_out] = pz + (lj - lb) * dz
                    emitted[_MDX, e_out] = dx
                    emitted[_MDY, e_out] = dy
                    emitted[_MDZ, e_out] = dz
                    e_out += 1
                jp += 1
            if out:
                break
        if not left:
            ends[_EX, i] = px
            ends[_EY, i] = py
            ends[_EZ, i] = pz
        ends[_EL_STOP, i] = 0.0 if left else 1.0
        sub0 += nsub[i]
    return steps[:, :k_out], ends, emitted[:, :e_out]


def _electron_lives(g: np.ndarray, tab: EMTables, lo: np.ndarray, hi: np.ndarray, h_max: float,
                    sink: _Sink, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Follow every e± of ``g`` (particle rows [n, _NCOL]) over its whole life (see the module
    docstring).

    ``h_max``: sub-step length (cm) of deposits and multiple scattering; lo, hi: the active box.
    Returns (the particles made — brems photons, δ-rays, annihilation photons — as particle
    rows; end positions [n, 3]).
    """
    cut, x0 = tab.cut_mev, tab.x0_cm
    made: list[np.ndarray] = []

    # e± born at or below the cut-off: local deposit (positrons also annihilate)
    low = g[:, _E] <= cut
    if np.count_nonzero(low):
        soft = _rows(g, low)
        sink.add_points(soft)
        soft = _rows(soft, soft[:, _Q] > 0)
        if len(soft):
            made.append(_stopped_positrons(soft[:, _POS], soft[:, _T], soft[:, _OWNER], tab,
                                           sink, rng))
        live = (~low).nonzero()[0]
        end = g[:, _POS].copy()
        g = g.take(live, axis=0)
    else:
        live, end = None, None
    n = len(g)
    if n == 0:
        return _join(made), end
    t0, pos0, w = g[:, _E], g[:, _POS], g[:, _DIR]
    time0, own = g[:, _T], g[:, _OWNER]

    # --- Poisson points of discrete interactions along each life (plus one terminal point)
    l_max = (t0 - cut) / tab.dedx_min * (1.0 + 1e-9) + 1e-9           # longest possible life, cm
    lam_b = (tab.brems_c / x0) * np.log(t0 / cut)                     # brems proposals / cm
    lam = lam_b + np.where(t0 > 2.0 * cut, tab.moller_c / cut, 0.0)   # + δ-ray proposals / cm
    npts = rng.poisson(lam * l_max) + 1
    starts = npts.cumsum() - npts
    r = rng.random((5, int(npts.sum())))

    # --- each life point by point (compiled): energies, brems thinning, δ-rays, death
    pts, life = _lives(starts, r, t0, l_max, lam_b / lam, cut, tab.log_t, tab.dedx, tab.z,
                       tab.fz_half, tab.brems_max)
    L, t_before, y, dlt, brem = pts[_PL], pts[_PT_BEFORE], pts[_PY], pts[_PDLT], pts[_PBREM]
    l_end, t_res = life[_LL_END], life[_LT_RES]

    # --- sub-steps (compiled): ionisation, multiple scattering, positions, leaving the volume
    nsub = np.maximum(np.ceil(l_end / h_max), 1.0).astype(np.int64)
    kick = rng.standard_normal((2, int(nsub.sum())))
    steps, ends, em = _walks(starts, nsub, kick, pts, life, pos0, w, time0, lo, hi, h_max, x0,
                             cut)
    stop = ends[_EL_STOP] > 0
    sink.add_steps(steps[_SPOS].T, steps[_SDE], steps[_SDX], steps[_ST],
                   own.take(steps[_SLIFE].astype(np.intp)), steps[_SVEC].T)

    # --- end of range (or where the volume was left): end points, residual energy, annihilation
    end_live = ends[_EPOS].T
    t_end = time0 + l_end / C_CM_PER_NS
    sink.add_steps(end_live[stop], t_res[stop], np.zeros(np.count_nonzero(stop)), t_end[stop],
                   own[stop])
    if live is None:
        end = end_live
    else:
        end[live] = end_live
    ann = (g[:, _Q] > 0) & stop
    if np.count_nonzero(ann):
        made.append(_stopped_positrons(end_live[ann], t_end[ann], own[ann], tab, sink, rng))

    # --- secondaries emitted along the life (before its end and before leaving the volume)
    point = em[_MPOINT].astype(np.intp)                              # emitting point of each
    n_emitted = len(point)
    if n_emitted:
        life_of = em[_MLIFE].astype(np.intp)
        emitter_dir = em[_MDIR].T
        l_emit = L[point]                                             # path length there, cm
        t_emit = t_before[point]                                      # emitter's T just before, MeV
        is_brems = brem[point] > 0
        delta_energy = dlt[point]                                     # δ-ray kinetic energy, MeV
        rr = rng.random((2, n_emitted))
        cos_moller = np.sqrt(np.minimum(delta_energy * (t_emit + 2.0 * ME)
                                        / (t_emit * (delta_energy + 2.0 * ME)), 1.0))
        sec = np.empty((n_emitted, _NCOL))
        sec[:, _E] = np.where(is_brems, y[point] * t_emit, delta_energy)
        sec[:, _POS] = em[_MPOS].T
        sec[:, _DIR] = rotate(emitter_dir, np.where(is_brems, _small_angle_cos(t_emit + ME, rr[0]),
                                                    cos_moller),
                               2.0 * math.pi * rr[1])
        sec[:, _T] = time0[life_of] + l_emit / C_CM_PER_NS
        sec[:, _OWNER] = own[life_of]
        sec[:, _Q] = np.where(is_brems, 0.0, -1.0)
        made.append(sec)
    return _join(made), end


# --------------------------------------------------------------------------------------------
# Driver entry point
# --------------------------------------------------------------------------------------------

def cascade(batch: ParticleBatch, detector, rng: np.random.Generator) -> StageOutput:
    """Develop the EM cascade of every e±/γ in ``batch`` (pdg ±11, 22).

    ``batch``: n particles (positions cm, momenta GeV/c, times ns). All deposits of a cascade
    carry the initiating particle's ``batch.track_id``; shower daughters are not added to the
    particle table. ``end_pos`` [n, 3] (cm): photon — its first interaction point (or where it
    left the active volume); e± — the end of its own trajectory (or where it left the volume,
    on the volume's surface). ``secondaries`` is always empty. Deposits: sub-step midpoints
    (``dx`` = sub-step length, cm) and point deposits (``dx`` = 0); ``de`` MeV, ``time`` ns.
    """
    n = len(batch)
    if n == 0:
        return StageOutput(Deposits(), ParticleBatch.empty(), np.zeros((0, 3)))
    apdg = np.abs(batch.pdg)
    em = (apdg == 11) | (apdg == 22)
    if not em.all():
        raise ValueError("showers.cascade got non-EM particles: "
                         f"{np.unique(batch.pdg[~em]).tolist()}")
    cfg = detector.config
    tab = em_tables(cfg.material, float(cfg.transport.em_cutoff_mev))
    h_max = cfg.transport.em_step_x0 * cfg.material.radiation_length_cm
    lo, hi = cfg.active_volume.lo, cfg.active_volume.hi

    pmag = np.linalg.norm(batch.mom, axis=1) * 1e3                    # MeV/c
    first = np.empty((n, _NCOL))
    first[:, _DIR] = [0.0, 0.0, 1.0]
    moving = pmag > 0
    first[moving, _DIR] = batch.mom[moving] / pmag[moving, None] * 1e3
    q = np.where(apdg == 22, 0, np.where(batch.pdg == 11, -1, 1))
    first[:, _E] = np.where(q == 0, pmag, np.sqrt(pmag * pmag + ME * ME) - ME)
    first[:, _POS] = batch.pos
    first[:, _T] = batch.time
    first[:, _OWNER] = np.arange(n)
    first[:, _Q] = q
    is_photon = q == 0
    n_electrons = n - int(np.count_nonzero(is_photon))

    # Photons take one interaction per step; the e± wait (``waiting``; converting photons make
    # their pairs when the e± pass starts) for a pass over their whole lives. The pass runs when
    # the photons can make no more e± (none left at or above the cut-off), or at once when an
    # e± above the critical energy waits: its own sub-shower would otherwise start late and
    # lengthen the cascade, while softer e± can wait for the photons' Compton chains to end and
    # share a pass with their electrons. (Scheduling only: no particle's physics depends on it.)
    sink = _Sink()
    end_pos = batch.pos.copy()
    photons = first[is_photon]
    waiting = [first[~is_photon]] if n_electrons else []
    converting: list[np.ndarray] = []
    waiting_max = np.inf if n_electrons else 0.0                     # MeV
    first_pass = n_electrons > 0
    eager = cfg.material.critical_energy_mev
    for step in range(MAX_STEPS):
        if len(photons):
            if step == 0:
                moved, start = photons, photons[:, _POS].copy()
            inside, photons, electrons, conv = _photon_step(photons, tab, lo, hi, sink, rng)
            if step == 0:                      # the batch photons end at their first interaction
                end_pos[is_photon] = moved[:, _POS]
                if np.count_nonzero(inside) < len(inside):
                    end_pos[np.flatnonzero(is_photon)[~inside]] = _exit_point(
                        start[~inside], moved[~inside, _DIR], lo, hi)
            for new, queue in ((electrons, waiting), (conv, converting)):
                if len(new):
                    queue.append(new)
                    waiting_max = max(waiting_max, new[:, _E].max())
        if (waiting or converting) and (waiting_max > eager or not len(photons)
                                        or photons[:, _E].max() < tab.cut_mev):
            if converting:
                waiting.append(_pair_leptons(_join(converting), tab, rng))
            made, end = _electron_lives(_join(waiting), tab, lo, hi, h_max, sink, rng)
            if first_pass:                     # the batch e± lead the first pass
                end_pos[~is_photon] = end[:n_electrons]
                first_pass = False
            is_new_photon = made[:, _Q] == 0
            photons = _join([photons, _rows(made, is_new_photon)])
            delta_rays = _rows(made, ~is_new_photon)
            waiting = [delta_rays] if len(delta_rays) else []
            converting = []
            waiting_max = delta_rays[:, _E].max() if len(delta_rays) else 0.0
        elif not len(photons):
            break
    else:
        raise RuntimeError(f"EM cascade deeper than {MAX_STEPS} steps")
    if sink.positrons:                         # annihilation photons below the cut-off
        pos, t, own = (np.concatenate(c) for c in zip(*sink.positrons))
        _absorb(_annihilation_photons(pos, t, own, rng), tab, lo, hi, sink, rng)
    return StageOutput(sink.deposits(batch.track_id), ParticleBatch.empty(), end_pos)
