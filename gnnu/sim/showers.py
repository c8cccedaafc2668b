"""Stochastic electromagnetic cascades of e± and γ (DESIGN §4.1, "Transport").

:func:`cascade` develops the shower of every e±/γ of a batch. All particles of all cascades are
handled together, one *generation* at a time. First every photon of the generation is followed
through its interactions (one vectorised step per interaction: a Compton-scattered photon goes
on in the next step; pairs and Compton electrons are collected). Then every e± (of the
generation and just made) is followed over its **whole life** in one vectorised pass: its
discrete interactions are the points of a Poisson process along its path, its energy along that
path is an affine recurrence solved with cumulative sums, its trajectory a random walk built with
cumulative sums. Its brems photons and δ-rays form the next generation. Particles made below the
cut-off are finished at once. There is no Python loop over particles or steps, only over
generations (≈ the number of e → γ → e alternations of the deepest branch) and over the
interactions of a photon.

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
  energy of the emission (found by one fixed-point step of the energy recurrence from complete
  screening, because that energy depends on the earlier emissions). While the electron slows
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

from ..detectors.common import Material
from .pdg import ELECTRON_MASS_MEV
from .records import Deposits, ParticleBatch, StageOutput

ME = ELECTRON_MASS_MEV
#: 4π N_A r_e² m_e c² (MeV cm²/mol), PDG.
K_BETHE = 0.307075
ALPHA = 1.0 / 137.035999084
R_E_CM = 2.8179403262e-13
AVOGADRO = 6.02214076e23
C_CM_PER_NS = 29.9792458
#: Highland's constants (PDG "Passage of particles through matter", eq. 34.16).
HIGHLAND_MEV = 13.6
HIGHLAND_LOG = 0.038
#: Safety net: a cascade deeper than this is a bug, not physics.
MAX_GENERATIONS = 500


# --------------------------------------------------------------------------------------------
# Cross-section and stopping-power tables
# --------------------------------------------------------------------------------------------

def _phi12(delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Butcher–Messel screening functions Φ1(δ), Φ2(δ) (dimensionless): for δ ≤ 1
    Φ1 = 20.867 − 3.242δ + 0.625δ², Φ2 = 20.209 − 1.930δ − 0.086δ², above both
    21.12 − 4.184 ln(δ + 0.952) (EGS4; Geant4's Bethe–Heitler models use 3Φ1 − Φ2 and
    (3Φ1 + Φ2)/2 of these)."""
    d = np.asarray(delta, np.float64)
    far = 21.12 - 4.184 * np.log(np.maximum(d, 1.0) + 0.952)
    phi1 = np.where(d <= 1.0, 20.867 - 3.242 * d + 0.625 * d * d, far)
    phi2 = np.where(d <= 1.0, 20.209 - 1.930 * d - 0.086 * d * d, far)
    return phi1, phi2


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


def _brems_shape(y: np.ndarray, delta, fz_half: float) -> np.ndarray:
    """Screened Bethe–Heitler bremsstrahlung y·dσ/dy (arbitrary units; Butcher–Messel form)."""
    phi1, phi2 = _phi12(delta)
    return ((1.0 + (1.0 - y) ** 2) * np.maximum(phi1 - fz_half, 0.0)
            - (2.0 / 3.0) * (1.0 - y) * np.maximum(phi2 - fz_half, 0.0))


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
    ``log_e`` (ln MeV): table [n_e, n_u] of v at the quantiles u = 0 … 1 (midpoint rule; a tiny
    floor keeps the CDF increasing where the density vanishes)."""
    v = (np.arange(n_v) + 0.5) / n_v
    dens = pdf(v[None, :], np.exp(log_e)[:, None])
    dens = np.maximum(dens, 1e-9 * dens.max(axis=1, keepdims=True) + 1e-300)
    cdf = np.concatenate([np.zeros((len(log_e), 1)), np.cumsum(dens, axis=1)], axis=1)
    cdf /= cdf[:, -1:]
    edges = np.arange(n_v + 1) / n_v
    u = np.linspace(0.0, 1.0, n_u)
    return np.stack([np.interp(u, c, edges) for c in cdf])


def _sample_inverse_cdf(table: np.ndarray, log_e0: float, dlog_e: float, log_e: np.ndarray,
                        u: np.ndarray) -> np.ndarray:
    """Bilinear interpolation in an :func:`_inverse_cdf_table` at energies ``log_e`` [n]
    (ln MeV, grid start ``log_e0``, step ``dlog_e``) and quantiles ``u`` [n]; returns v [n]."""
    n_e, n_u = table.shape
    fi = np.clip((log_e - log_e0) / dlog_e, 0.0, n_e - 1.000001)
    i = fi.astype(np.int64)
    a = fi - i
    fj = np.minimum(u * (n_u - 1), n_u - 1.000001)
    j = fj.astype(np.int64)
    b = fj - j
    flat = table.ravel()
    k = i * n_u + j
    low = flat[k] + b * (flat[k + 1] - flat[k])
    high = flat[k + n_u] + b * (flat[k + n_u + 1] - flat[k + n_u])
    return low + a * (high - low)


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
    tables of the pair energy sharing and of the Klein–Nishina energy transfer on the ln k grid
    ``sampling_log_k`` = (start, step) (see :meth:`sample_pair`, :meth:`sample_compton`).
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
        if t_mev is None:
            delta = 0.0
        else:
            k = y * t_mev
            e = t_mev + ME
            delta = 136.0 * ME * self.z ** (-1.0 / 3.0) * k / (e * (e - k))
        return _brems_shape(y, delta, self.fz_half) / self.brems_max

    def sample_pair(self, k_mev: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Energy fraction ε ∈ [m_e/k, ½] of the lighter lepton for photons ``k_mev`` [n]
        (> 2 m_e) from uniforms ``u`` [n] (screened Bethe–Heitler, inverse-CDF table)."""
        v = _sample_inverse_cdf(self.pair_table, *self.sampling_log_k, np.log(k_mev), u)
        e0 = ME / k_mev
        return e0 + (0.5 - e0) * v

    def sample_compton(self, k_mev: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Scattered-photon energy fraction ε = k'/k ∈ [1/(1+2κ), 1] for photons ``k_mev`` [n]
        from uniforms ``u`` [n] (Klein–Nishina, inverse-CDF table)."""
        v = _sample_inverse_cdf(self.compton_table, *self.sampling_log_k, np.log(k_mev), u)
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
    return EMTables(x0_cm=material.radiation_length_cm, z=z, cut_mev=cut_mev, log_k=log_k,
                    mu_pair=mu_pair, mu_compton=mu_compton, mu_photo=mu_photo,
                    mu_total=mu_pair + mu_compton + mu_photo, log_t=log_t,
                    dedx=dedx, dedx_min=float(dedx.min()),
                    moller_c=0.5 * K_BETHE * material.z_over_a * material.density_g_cm3,
                    fz_half=fz_half, brems_c=brems_max / brems_norm, brems_max=brems_max,
                    sampling_log_k=(float(log_s[0]), float(log_s[1] - log_s[0])),
                    pair_table=_inverse_cdf_table(lambda v, e: _pair_dsigma_v(v, e, z), log_s),
                    compton_table=_inverse_cdf_table(lambda v, e: _compton_dsigma(v, e / ME),
                                                     log_s))


# --------------------------------------------------------------------------------------------
# Small vectorised helpers
# --------------------------------------------------------------------------------------------

def _seg_cumsum(x: np.ndarray, starts: np.ndarray, gid: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sum of ``x`` (along axis 0) restarting at each group start.

    ``starts`` [g]: first row of each group (groups contiguous, in order); ``gid`` [n]: group of
    each row.
    """
    c = np.cumsum(x, axis=0)
    return c - (c[starts] - x[starts])[gid]


def _frame(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors u, v [n, 3] completing unit directions ``d`` [n, 3] to an orthonormal frame
    (branch-free construction of Duff et al., JCGT 6 (2017) 1)."""
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    sign = np.copysign(1.0, z)
    a = -1.0 / (sign + z)
    b = x * y * a
    return (np.stack([1.0 + sign * x * x * a, sign * b, -sign * x], axis=1),
            np.stack([b, sign + y * y * a, -y], axis=1))


def _rotate(d: np.ndarray, cos_t: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit directions at polar angle acos(``cos_t``) and azimuth ``phi`` about ``d`` [n, 3]."""
    u, v = _frame(d)
    sin_t = np.sqrt(np.maximum(1.0 - cos_t * cos_t, 0.0))
    return (cos_t[:, None] * d + (sin_t * np.cos(phi))[:, None] * u
            + (sin_t * np.sin(phi))[:, None] * v)


def _small_angle_cos(e_total: np.ndarray, r: np.ndarray) -> np.ndarray:
    """cos θ for θ = (m_e/E)·u, u from p(u) ∝ u/(1+u²)² (inverse CDF of uniforms ``r``):
    the angle of a brems photon or of a pair lepton of total energy ``e_total`` (MeV)."""
    return np.cos(np.minimum(ME / e_total * np.sqrt(r / (1.0 - r)), math.pi))


def _isotropic(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` isotropic unit vectors [n, 3]."""
    r = rng.random((2, n))
    c = 2.0 * r[0] - 1.0
    phi = 2.0 * math.pi * r[1]
    s = np.sqrt(1.0 - c * c)
    return np.stack([s * np.cos(phi), s * np.sin(phi), c], axis=1)


def _exit_point(pos: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Where rays from ``pos`` [n, 3] (inside the box lo–hi, cm) along ``d`` [n, 3] leave it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d > 0, (hi - pos) / d, np.where(d < 0, (lo - pos) / d, np.inf))
    return pos + np.clip(t.min(axis=1), 0.0, None)[:, None] * d


@dataclass
class _Particles:
    """Shower particles: kinetic energy ``e`` (MeV), ``pos`` [n, 3] cm, unit ``dir`` [n, 3],
    ``t`` ns, ``owner`` (row of the initiating batch particle), charge ``q`` (0 γ, ±1 e±)."""

    e: np.ndarray
    pos: np.ndarray
    dir: np.ndarray
    t: np.ndarray
    owner: np.ndarray
    q: np.ndarray

    def __len__(self) -> int:
        return len(self.e)

    def select(self, m) -> "_Particles":
        return _Particles(self.e[m], self.pos[m], self.dir[m], self.t[m], self.owner[m], self.q[m])

    @classmethod
    def concat(cls, parts: list["_Particles"]) -> "_Particles":
        parts = [p for p in parts if len(p)]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0),
                       np.zeros(0, np.int64), np.zeros(0, np.int8))
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("e", "pos", "dir", "t", "owner", "q")))


class _Sink:
    """Collects deposits: position [n, 3] cm, energy MeV, step length cm, time ns, owner."""

    def __init__(self):
        self.parts: list[tuple] = []

    def add(self, pos, de, dx, t, owner):
        if len(de):
            self.parts.append((pos, de, dx, t, owner))

    def deposits(self, track_id: np.ndarray) -> Deposits:
        if not self.parts:
            return Deposits()
        pos, de, dx, t, own = (np.concatenate(c) for c in zip(*self.parts))
        return Deposits(pos, de, dx, t, track_id[own].astype(np.int32))


# --------------------------------------------------------------------------------------------
# Photons
# --------------------------------------------------------------------------------------------

def _absorb_photons(g: _Particles, tab: EMTables, lo: np.ndarray, hi: np.ndarray, sink: _Sink,
                    rng: np.random.Generator):
    """Photons below the cut-off: an exponential flight (total attenuation length), then all
    their energy is deposited at that point (dropped if it lies outside the box lo–hi)."""
    s = rng.exponential(1.0, len(g)) / np.interp(np.log(np.maximum(g.e, 1e-6)), tab.log_k,
                                                 tab.mu_total)
    pos = g.pos + s[:, None] * g.dir
    inside = ((pos >= lo) & (pos <= hi)).all(axis=1)
    sink.add(pos[inside], g.e[inside], np.zeros(inside.sum()), (g.t + s / C_CM_PER_NS)[inside],
             g.owner[inside])


def _settle(p: _Particles, tab: EMTables, lo: np.ndarray, hi: np.ndarray, sink: _Sink,
            rng: np.random.Generator) -> _Particles:
    """Finish the new particles ``p`` that fall below the cut-off at once (e±: local deposit, a
    positron's annihilation photons; γ: :func:`_absorb_photons`) and return the others."""
    cut = tab.cut_mev
    soft_e = (p.q != 0) & (p.e <= cut)
    soft_g = (p.q == 0) & (p.e < cut)
    if not (soft_e.any() or soft_g.any()):
        return p
    sink.add(p.pos[soft_e], p.e[soft_e], np.zeros(soft_e.sum()), p.t[soft_e], p.owner[soft_e])
    photons = [p.select(soft_g)]
    ann = soft_e & (p.q > 0)
    if ann.any():
        photons.append(_annihilation_photons(p.pos[ann], p.t[ann], p.owner[ann], rng))
    _absorb_photons(_Particles.concat(photons), tab, lo, hi, sink, rng)
    return p.select(~(soft_e | soft_g))


def _photon_histories(g: _Particles, tab: EMTables, lo: np.ndarray, hi: np.ndarray,
                      sink: _Sink, rng: np.random.Generator) -> tuple[list, np.ndarray]:
    """Follow every photon of ``g`` through its interactions (Compton chains included).

    Returns (the e± made and the scattered photons that fell below the cut-off, as a list of
    :class:`_Particles`; the first interaction point of each photon of ``g`` [n, 3], or where it
    left the box lo–hi).
    """
    made: list[_Particles] = []
    first_end = None
    while len(g):
        k, n = g.e, len(g)
        lk = np.log(np.maximum(k, 1e-6))
        mu_pair = np.interp(lk, tab.log_k, tab.mu_pair)
        mu_pc = mu_pair + np.interp(lk, tab.log_k, tab.mu_compton)
        mu = np.interp(lk, tab.log_k, tab.mu_total)
        r = rng.random((2, n))
        s = -np.log1p(-r[0]) / mu
        pos = g.pos + s[:, None] * g.dir
        t = g.t + s / C_CM_PER_NS
        inside = ((pos >= lo) & (pos <= hi)).all(axis=1)
        if first_end is None:
            first_end = pos.copy()
            if not inside.all():
                first_end[~inside] = _exit_point(g.pos[~inside], g.dir[~inside], lo, hi)
        choice = r[1] * mu
        tracked = inside & (k >= tab.cut_mev)
        pair = tracked & (choice < mu_pair) & (k > 2.0 * ME)
        compton = tracked & ~pair & (choice < mu_pc)
        absorbed = inside & ~pair & ~compton
        sink.add(pos[absorbed], k[absorbed], np.zeros(absorbed.sum()), t[absorbed],
                 g.owner[absorbed])
        if pair.any():
            kp, d, p, tp, own = k[pair], g.dir[pair], pos[pair], t[pair], g.owner[pair]
            m = len(kp)
            r = rng.random((4, m))
            eps = tab.sample_pair(kp, r[0])
            e_minus = np.where(r[1] < 0.5, eps, 1.0 - eps) * kp
            e_both = np.concatenate([e_minus, kp - e_minus])
            phi = 2.0 * math.pi * r[2]
            cos_t = _small_angle_cos(e_both, np.concatenate([r[3], rng.random(m)]))
            dirs = _rotate(np.concatenate([d, d]), cos_t, np.concatenate([phi, phi + math.pi]))
            made.append(_Particles(e_both - ME, np.concatenate([p, p]), dirs,
                                   np.concatenate([tp, tp]), np.concatenate([own, own]),
                                   np.repeat(np.array([-1, 1], np.int8), m)))
        if not compton.any():
            break
        kc, d, p, tc, own = k[compton], g.dir[compton], pos[compton], t[compton], g.owner[compton]
        r = rng.random((2, len(kc)))
        eps = tab.sample_compton(kc, r[0])
        cos_g = np.clip(1.0 - (1.0 - eps) / (eps * kc / ME), -1.0, 1.0)
        d_gamma = _rotate(d, cos_g, 2.0 * math.pi * r[1])
        k_out = eps * kc
        p_e = kc[:, None] * d - k_out[:, None] * d_gamma              # electron momentum, MeV
        made.append(_Particles(kc - k_out, p, p_e / np.linalg.norm(p_e, axis=1, keepdims=True),
                               tc, own, np.full(len(kc), -1, np.int8)))
        g = _Particles(k_out, p, d_gamma, tc, own, np.zeros(len(kc), np.int8))
        soft = k_out < tab.cut_mev
        if soft.any():
            made.append(g.select(soft))
            g = g.select(~soft)
    return made, first_end


# --------------------------------------------------------------------------------------------
# Electrons and positrons
# --------------------------------------------------------------------------------------------

def _annihilation_photons(pos, t, owner, rng) -> _Particles:
    """Two back-to-back 511 keV photons per stopped positron."""
    m = len(t)
    d = _isotropic(m, rng)
    return _Particles(np.full(2 * m, ME), np.concatenate([pos, pos]), np.concatenate([d, -d]),
                      np.concatenate([t, t]), np.concatenate([owner, owner]),
                      np.zeros(2 * m, np.int8))


def _solve_energies(t0, gid, starts, s, eps_ion, log_a, dlt, log_p_floor):
    """Kinetic energies at each electron's Poisson points (an affine recurrence).

    At point j of a life: T_before_j = T_{j−1} − ε_j s_j (ionisation over the free path s_j),
    then T_j = a_j T_before_j − δ_j (a_j = 1 − y_j for a brems photon, δ_j a δ-ray).
    Closed form T_j = P_j (T₀ + Σ_{i≤j} b_i/P_i), P_j = Π a_i = exp(Σ ``log_a``),
    b_i = −a_i ε_i s_i − δ_i. ln P is floored at ``log_p_floor`` (reached only after the electron
    is dead: alive means P ≥ T_c/T₀) to keep the sums finite; T_after is recomputed from T_before
    so it is exact at the point where the electron dies.
    Returns (T_prev, T_before, T_after) [m], MeV.
    """
    a = np.exp(log_a)
    p = np.exp(np.maximum(_seg_cumsum(log_a, starts, gid), log_p_floor))
    t_scan = p * (t0[gid] + _seg_cumsum((-a * eps_ion * s - dlt) / p, starts, gid))
    t_prev = np.empty_like(t_scan)
    t_prev[1:] = t_scan[:-1]
    t_prev[starts] = t0
    t_before = t_prev - eps_ion * s
    return t_prev, t_before, a * t_before - dlt


def _electron_lives(g: _Particles, tab: EMTables, lo: np.ndarray, hi: np.ndarray, h_max: float,
                    sink: _Sink, rng: np.random.Generator) -> tuple[list, np.ndarray]:
    """Follow every e± of ``g`` over its whole life (see the module docstring).

    ``h_max``: sub-step length (cm) of deposits and multiple scattering; lo, hi: the active box.
    Returns (the particles made — brems photons, δ-rays, annihilation photons — as a list of
    :class:`_Particles`; end positions [n, 3]).
    """
    cut, x0 = tab.cut_mev, tab.x0_cm
    end = g.pos.copy()
    made: list[_Particles] = []

    # e± born at or below the cut-off: local deposit (positrons also annihilate)
    low = g.e <= cut
    if low.any():
        sink.add(g.pos[low], g.e[low], np.zeros(low.sum()), g.t[low], g.owner[low])
        pl = low & (g.q > 0)
        if pl.any():
            made.append(_annihilation_photons(g.pos[pl], g.t[pl], g.owner[pl], rng))
    live = np.flatnonzero(~low)
    n = len(live)
    if n == 0:
        return made, end
    t0, pos0, w = g.e[live], g.pos[live], g.dir[live]
    time0, own, q = g.t[live], g.owner[live], g.q[live]

    # --- Poisson points of discrete interactions along each life (plus one terminal point)
    l_max = (t0 - cut) / tab.dedx_min * (1.0 + 1e-9) + 1e-9           # longest possible life, cm
    y_min = cut / t0
    lam_b = (tab.brems_c / x0) * np.log(t0 / cut)                     # brems proposals / cm
    lam = lam_b + np.where(t0 > 2.0 * cut, tab.moller_c / cut, 0.0)   # + δ-ray proposals / cm
    npts = rng.poisson(lam * l_max) + 1
    m = int(npts.sum())
    gid = np.repeat(np.arange(n), npts)
    starts = np.cumsum(npts) - npts
    last = starts + npts - 1
    r = rng.random((5, m))
    u = r[0]
    u[last] = 1.0
    u = u[np.argsort(gid + u * (1.0 - 1e-9), kind="stable")]        # sorted within each life
    L = u * l_max[gid]
    s = np.diff(L, prepend=0.0)
    s[starts] = L[starts]
    l_prev = L - s
    proposal = np.ones(m, bool)
    proposal[last] = False
    is_brem = proposal & (r[1] * lam[gid] < lam_b[gid])
    is_delta = proposal & ~is_brem
    y = np.minimum(y_min[gid] ** r[2], 1.0 - 1e-6)
    log_1my = np.log1p(-y)
    dlt = np.where(is_delta, np.minimum(cut / (1.0 - r[4]), t0[gid]), 0.0)
    floor = (np.log(cut / t0) - 2.0)[gid]
    eps0 = tab.stopping_power(t0)[gid]

    # --- energies. Brems thinning (exact spectrum) needs the energy at each emission, which
    # depends on the earlier emissions: one fixed-point step from complete screening (a second
    # step changes < 0.2 % of the decisions). Then the δ-rays (kept if ≤ T/2) and the stopping
    # power at the energy of each free path.
    ib = np.flatnonzero(is_brem)
    brem = np.zeros(m, bool)
    brem[ib] = r[3, ib] < tab.brems_acceptance(y[ib], None)
    _, t_before, _ = _solve_energies(t0, gid, starts, s, eps0, np.where(brem, log_1my, 0.0), 0.0,
                                     floor)
    brem[ib] = r[3, ib] < tab.brems_acceptance(y[ib], np.maximum(t_before[ib], cut))
    log_a = np.where(brem, log_1my, 0.0)
    t_prev, t_before, _ = _solve_energies(t0, gid, starts, s, eps0, log_a, 0.0, floor)
    dlt[dlt > 0.5 * t_before] = 0.0
    eps_ion = tab.stopping_power(np.maximum(t_prev, cut))
    t_prev, t_before, t_after = _solve_energies(t0, gid, starts, s, eps_ion, log_a, dlt, floor)

    # --- death: first point whose free path ends at the cut, or whose emission drops below it
    die_gap = t_before <= cut
    die = die_gap | (t_after < cut)
    jd = np.flatnonzero(die & (_seg_cumsum(die.astype(np.int32), starts, gid) == 1))
    in_gap = die_gap[jd]
    l_end = np.where(in_gap, l_prev[jd] + (t_prev[jd] - cut) / eps_ion[jd], L[jd])
    swallowed = ~in_gap & (t_after[jd] < 0.0)                        # δ-ray takes all that is left
    dlt[jd[swallowed]] = t_before[jd[swallowed]]
    t_res = np.where(in_gap, cut, np.maximum(t_after[jd], 0.0))
    ion = eps_ion * s
    ion_before = _seg_cumsum(ion, starts, gid) - ion                  # ionisation before gap j

    # --- sub-steps: ionisation, energy, multiple scattering, positions
    nsub = np.maximum(np.ceil(l_end / h_max), 1.0).astype(np.int64)
    sid = np.repeat(np.arange(n), nsub)
    sstart = np.cumsum(nsub) - nsub
    ns = len(sid)
    lb = np.minimum((np.arange(ns) - sstart[sid] + 1) * h_max, l_end[sid])
    la = np.empty(ns)
    la[1:] = lb[:-1]
    la[sstart] = 0.0
    hk = lb - la
    width = float(l_max.max()) + 1.0
    keys = gid * width + L
    ja = np.searchsorted(keys, sid * width + la, side="right")        # free path holding la
    jb = np.minimum(np.searchsorted(keys, sid * width + lb, side="left"), last[sid])
    de = ion_before[jb] - ion_before[ja] + eps_ion[jb] * (lb - l_prev[jb]) \
        - eps_ion[ja] * (la - l_prev[ja])
    t_mid = np.maximum(t_prev[ja] - eps_ion[ja] * (0.5 * (la + lb) - l_prev[ja]), cut)
    p2 = t_mid * (t_mid + 2.0 * ME)
    beta2 = p2 / (t_mid + ME) ** 2
    # Highland θ0² for the path since birth, x(1 + 0.038 ln(x/β²))² with x in X0, differenced
    xa = la / x0
    xb = lb / x0
    fa = xa * (1.0 + HIGHLAND_LOG * np.log(np.maximum(xa, 1e-12) / beta2)) ** 2
    fb = xb * (1.0 + HIGHLAND_LOG * np.log(np.maximum(xb, 1e-12) / beta2)) ** 2
    sigma = HIGHLAND_MEV * np.sqrt(np.maximum(fb - fa, 0.0) / (beta2 * p2))
    kick = rng.standard_normal((ns, 2)) * sigma[:, None]
    ang = _seg_cumsum(kick, sstart, sid) - kick                       # deflection before sub-step
    alpha = np.sqrt(ang[:, 0] ** 2 + ang[:, 1] ** 2)
    uu, vv = _frame(w)
    sinc = np.sinc(alpha / math.pi)
    dirs = (np.cos(alpha)[:, None] * w[sid] + (sinc * ang[:, 0])[:, None] * uu[sid]
            + (sinc * ang[:, 1])[:, None] * vv[sid])
    disp = hk[:, None] * dirs
    p_b = pos0[sid] + _seg_cumsum(disp, sstart, sid)
    p_a = p_b - disp

    # --- leaving the volume: keep the sub-steps up to the first one that ends outside
    out = ~((p_b >= lo) & (p_b <= hi)).all(axis=1)
    l_stop = l_end
    stop = np.ones(n, bool)
    if out.any():
        keep = (_seg_cumsum(out.astype(np.int32), sstart, sid) - out) == 0
        first_out = np.flatnonzero(out & keep)
        l_stop = l_end.copy()
        l_stop[sid[first_out]] = lb[first_out]
        stop[sid[first_out]] = False
        sink.add((p_a + 0.5 * disp)[keep], de[keep], hk[keep],
                 time0[sid[keep]] + 0.5 * (la[keep] + lb[keep]) / C_CM_PER_NS, own[sid[keep]])
    else:
        first_out = np.zeros(0, np.int64)
        sink.add(p_a + 0.5 * disp, de, hk, time0[sid] + 0.5 * (la + lb) / C_CM_PER_NS, own[sid])
    end_live = p_b[sstart + nsub - 1]
    end_live[sid[first_out]] = np.clip(p_b[first_out], lo, hi)
    end[live] = end_live

    # --- residual energy and annihilation at the end of range
    t_end = time0 + l_end / C_CM_PER_NS
    sink.add(end_live[stop], t_res[stop], np.zeros(stop.sum()), t_end[stop], own[stop])
    ann = stop & (q > 0)
    if ann.any():
        made.append(_annihilation_photons(end_live[ann], t_end[ann], own[ann], rng))

    # --- secondaries emitted along the life (before its end and before leaving the volume)
    jd_of = jd[gid]
    j = np.arange(m)
    emitted = (brem | (dlt > 0)) & ((j < jd_of) | ((j == jd_of) & ~in_gap[gid]))
    emitted &= L <= l_stop[gid]
    je = np.flatnonzero(emitted)
    if len(je):
        e_of = gid[je]
        ks = np.minimum((L[je] / h_max).astype(np.int64), nsub[e_of] - 1) + sstart[e_of]
        d_e = dirs[ks]
        p_e = p_a[ks] + (L[je] - la[ks])[:, None] * d_e
        t_e = time0[e_of] + L[je] / C_CM_PER_NS
        tb = t_before[je]
        is_b = brem[je]
        de_ = dlt[je]
        rr = rng.random((2, len(je)))
        cos_moller = np.sqrt(np.clip(de_ * (tb + 2.0 * ME) / (tb * (de_ + 2.0 * ME)), 0.0, 1.0))
        cos_t = np.where(is_b, _small_angle_cos(tb + ME, rr[0]), cos_moller)
        sec = _Particles(np.where(is_b, y[je] * tb, de_), p_e,
                         _rotate(d_e, cos_t, 2.0 * math.pi * rr[1]), t_e, own[e_of],
                         np.where(is_b, 0, -1).astype(np.int8))
        made.append(sec)
    return made, end


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
    d0 = np.tile([0.0, 0.0, 1.0], (n, 1))
    moving = pmag > 0
    d0[moving] = batch.mom[moving] / pmag[moving, None] * 1e3
    q = np.where(apdg == 22, 0, np.where(batch.pdg == 11, -1, 1)).astype(np.int8)
    e = np.where(q == 0, pmag, np.sqrt(pmag * pmag + ME * ME) - ME)
    first = _Particles(e, batch.pos.copy(), d0, batch.time.copy(), np.arange(n), q)
    is_photon = q == 0
    photons, electrons = first.select(is_photon), first.select(~is_photon)

    sink = _Sink()
    end_pos = batch.pos.copy()
    for depth in range(MAX_GENERATIONS):
        if not len(photons) and not len(electrons):
            break
        if len(photons):
            made, end = _photon_histories(photons, tab, lo, hi, sink, rng)
            if depth == 0:
                end_pos[is_photon] = end
            electrons = _Particles.concat([electrons, _settle(_Particles.concat(made), tab, lo, hi,
                                                              sink, rng)])
        photons = _Particles.concat([])
        if len(electrons):
            made, end = _electron_lives(electrons, tab, lo, hi, h_max, sink, rng)
            if depth == 0:
                end_pos[~is_photon] = end[:int((~is_photon).sum())]
            new = _settle(_Particles.concat(made), tab, lo, hi, sink, rng)
            is_new_photon = new.q == 0
            photons, electrons = new.select(is_new_photon), new.select(~is_new_photon)
    else:
        raise RuntimeError(f"EM cascade deeper than {MAX_GENERATIONS} generations")
    return StageOutput(sink.deposits(batch.track_id), ParticleBatch.empty(), end_pos)
