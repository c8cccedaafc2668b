"""Neutrino–nucleus interaction generator (GENIE-inspired, deliberately simple, not tuned to data).

:func:`generate` makes one interaction: the truth record and the primaries leaving the nucleus.

Flavours and charges
    CC νμ / νe / ντ produce μ∓ / e∓ / τ∓ (the upper sign for ν, the lower for ν̄); NC keeps the
    neutrino (its flavour drawn from ``beam.nc_flavour_fractions``) and stores it as a primary. ν vs
    ν̄ is drawn with ``beam.antinu_fraction`` unless given. The hadrons carry the charge the
    struck nucleons had plus +1 (ν CC), −1 (ν̄ CC) or 0 (NC): νn → μ−p, ν̄p → μ+n, Δ⁺⁺ → pπ+, …

Energy
    Drawn from flux × σ (:mod:`gnnu.sim.flux`) unless given; CC ντ needs E ≥ 3.46 GeV.

Vertex
    Uniform in the active volume shrunk by ``fiducial_margin_cm``. The beam travels along +z.

Modes (:class:`gnnu.events.Mode`) and their energy dependence
    Tables below, interpolated linearly in ln E: QE / RES / DIS shares among those three follow the
    priors (νμ CC: 1 GeV 45/35/20 %, 3 GeV 20/30/50 %, 5 GeV 12.5/25/62.5 %); MEC (2p2h) and
    coherent π are fractions of all events (flux-averaged over the LBNF spectrum ≈ 10 % and ≈ 1 %).
    ν̄ and every CC flavour use the same tables. NC: the elastic ("QE") share is the CC one ×
    :data:`NC_ELASTIC_SCALE` = 0.64 (the rest goes to RES and DIS in proportion): MiniBooNE
    measured σ(NC elastic)/σ(CCQE) = 0.192 ± 0.035 (Aguilar-Arevalo et al., PRD 82 (2010)
    092005), and with σ_NC/σ_CC ≈ 0.3 (docs/design.md#dune-like-lartpc prior) the elastic share of NC events is
    0.192/0.3 = 0.64 of the QE share of CC events; NC 2p2h (unmeasured) keeps the CC share.
    (Before issue 22 NC used the CC QE share: 1.6× too many elastic NC events, about half of
    them a lone neutron, which leaves nothing in the pixel-map window.) When a mode is kinematically
    impossible for the drawn energy and nucleon (DIS below W = 1.4 GeV, RES or COH near threshold),
    the event falls back DIS → RES → QE, COH/MEC → QE, and is labelled with the mode it got.

Kinematics (all exact 4-momentum conservation unless stated)
    The struck nucleon(s) carry a Fermi momentum uniform in the sphere |p| < k_F and the off-shell
    energy √(m² + p²) − E_b (``beam.nuclear``). ν + target go to lepton + hadronic system of
    invariant mass W; the lepton is built in the centre-of-mass frame from (W, Q²) and boosted to the
    lab, the hadronic system is the rest, so it gets ν = E·y (plus the target energy), y = 1 − E_l/E.

    - QE: W = nucleon mass; dσ/dQ² ∝ (1 + Q²/M²)⁻⁴ (dipole axial form factor squared, M = 1.0 GeV);
      Pauli blocking: the outgoing nucleon needs |p| > k_F (else redrawn).
    - MEC: the target is a nucleon pair (np with probability 0.7, otherwise the like pair charge
      conservation allows; ν: np → pp, nn → pn; ν̄: np → nn, pp → pn), W = m₁ + m₂ + ε with ε
      exponential of mean 0.1 GeV, the same Q² shape, isotropic NN emission in the pair frame,
      Pauli blocking on both nucleons.
    - RES: Δ(1232) only: W Breit–Wigner (1.232, Γ = 0.117 GeV, fixed width) in [m_N + m_π, 1.6 GeV],
      Q² ∝ (1 + Q²/1.1²)⁻⁴; the target nucleon is chosen with isospin weights (ν: p : n = 3Z : N,
      ν̄: n : p = 3N : Z, NC: Z : N) and the Δ decays isotropically with Clebsch–Gordan charge
      ratios (Δ⁺ → pπ0 : nπ+ = 2 : 1, Δ⁰ → nπ0 : pπ− = 2 : 1, Δ⁺⁺ → pπ+, Δ⁻ → nπ−).
    - DIS: x ∝ x^−½(1 − x)³ (valence-like), y flat (ν; 15 % sea ∝ (1 − y)²) or ∝ (1 − y)² (ν̄; 15 %
      flat), Q² = 2 M E x y and W² = M² + Q²(1 − x)/x in the target rest frame, W > 1.4 GeV.
      Hadronisation: one nucleon and n − 1 pions, n = 2 + Poisson(⟨n⟩ − 2) with
      ⟨n⟩ = 1.5·(0.1 + 1.42 ln W²) (AGKY-like charged multiplicity × 1.5 for neutrals), capped by
      W; charges π+ : π0 : π− = 1 : 1 : 1 and p : n = 1 : 1, then shifted one unit at a time until
      the total charge is right; momenta from sequential isotropic two-body decays in the W frame
      (W → h₁ + M₁ → h₁ + h₂ + M₂ …, intermediate masses uniform over the free energy: unweighted
      GENBOD, close to but not exactly n-body phase space), no pT squeezing, no strange particles.
    - COH: ν A → l π A with the nucleus untouched and not emitted. y ∝ (1 − y), Q² ∝
      (1 + Q²/m²)⁻² with m = 1 GeV (Rein–Sehgal-like), accepted with the nuclear form factor
      exp(−b|t|min), b = R²/3, R = 1.2 fm·A^⅓ (A from the material); the pion gets E_π = ν exactly
      and a transverse kick |Δ|² ~ exp(−b|Δ|²) around q. Energy is conserved exactly; the nucleus
      takes the momentum mismatch (|Δ| ≲ 0.1 GeV) and its recoil energy (≲ 1 MeV) is neglected.

Final-state interactions (``beam.nuclear``; one intranuclear step per hadron from the vertex, none
for COH)
    pion: absorption on a nucleon pair (π NN → NN), charge exchange (π± N → π0 N′, π0 N → π± N′),
    inelastic scattering that knocks out a nucleon (π N → π N); nucleon: knock-out of a second
    nucleon (N N → N N), pion production (N N → N Δ → N N π). Every step is a 2 → 2 collision with
    nucleons from the Fermi sea (same momentum/energy rule), isotropic in its centre-of-mass frame,
    Pauli-blocked (final nucleons need |p| > k_F), skipped when not energetically possible.
    Probabilities are energy independent; no evaporation nucleons or de-excitation photons; no
    nuclear remnant is emitted. Pauli blocking acts on QE, MEC and FSI nucleons, not RES/DIS ones.

Energy bookkeeping that follows: Σ E_final = E_ν + Σ_struck (√(m² + p_F²) − E_b) and
Σ p_final = E_ν ẑ + Σ_struck p_F, one struck nucleon per final nucleon (COH: Σ E_final = E_ν).

Truth counts are the primaries above the ``visibility`` kinetic-energy thresholds (strictly above);
τ decay products are not primaries (the τ decays in :mod:`gnnu.sim.decays`).
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from ..errors import GnnuError
from ..events import Flavour, Mode, Truth, bucket_count
from . import flux
from .pdg import MASS_GEV
from .records import ParticleBatch

M_P = MASS_GEV[2212]
M_N = MASS_GEV[2112]
M_PI = MASS_GEV[211]
_NUCLEON = {1: 2212, 0: 2112}                 # charge → PDG code
_PION = {1: 211, 0: 111, -1: -211}
_PAIR_CODES = {2: (2212, 2212), 1: (2212, 2112), 0: (2112, 2112)}   # total charge → nucleons
_HADRON_CHARGE = {2212: 1, 2112: 0, 211: 1, 111: 0, -211: -1}
_LEPTON = {Flavour.NUMU_CC: 13, Flavour.NUE_CC: 11, Flavour.NUTAU_CC: 15}
_NEUTRINO = {Flavour.NUMU_CC: 14, Flavour.NUE_CC: 12, Flavour.NUTAU_CC: 16}
_NC_NEUTRINOS = (12, 14, 16)
FM_IN_INV_GEV = 1 / 0.1973269804              # 1 fm = 5.068 GeV⁻¹ (ħc = 0.19733 GeV fm)

# -- mode tables (module docstring) --------------------------------------------------------
#: Energy nodes (GeV); fractions are interpolated linearly in ln E and held constant outside.
MODE_ENERGIES = (0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
#: Shares of QE and RES among QE + RES + DIS (DIS is the rest).
QE_SHARE = (0.85, 0.70, 0.45, 0.29, 0.20, 0.125, 0.07, 0.03)
RES_SHARE = (0.15, 0.27, 0.35, 0.33, 0.30, 0.25, 0.18, 0.10)
#: Fractions of all events in MEC and COH.
MEC_FRACTION = (0.10, 0.12, 0.12, 0.11, 0.10, 0.08, 0.06, 0.04)
COH_FRACTION = (0.004, 0.007, 0.010, 0.012, 0.012, 0.012, 0.012, 0.010)
_LOG_NODES = [math.log(e) for e in MODE_ENERGIES]
#: NC elastic share relative to the CC QE one: σ(NCE)/σ(CCQE) = 0.192 (MiniBooNE, PRD 82
#: (2010) 092005) over σ_NC/σ_CC ≈ 0.3 (module docstring).
NC_ELASTIC_SCALE = 0.192 / 0.3

#: Q² shapes (1 + Q²/M²)^−n: mode → (M² in GeV², n).
Q2_SHAPE = {Mode.QE: (1.0, 4), Mode.MEC: (1.0, 4), Mode.RES: (1.1 ** 2, 4), Mode.COH: (1.0, 2)}
DELTA = (1.232, 0.117)                         # Δ(1232) mass and width, GeV
RES_W_MAX = 1.6                                # GeV
DIS_W_MIN = 1.4                                # GeV
DIS_SEA_FRACTION = 0.15
DIS_CANDIDATES = 16                            # (x, y) pairs drawn at once
MEC_EXCITATION_GEV = 0.1                       # mean of W − m₁ − m₂
NP_PAIR_FRACTION = 0.7
NUCLEAR_RADIUS_FM = 1.2                        # R = r₀ A^⅓
#: Attempts per mode (fresh nucleon and kinematics each) before falling back to a simpler mode.
MAX_TRIES = 12
_FALLBACK = {Mode.DIS: Mode.RES, Mode.RES: Mode.QE, Mode.MEC: Mode.QE, Mode.COH: Mode.QE}


# -- scalar 4-vector helpers (E, px, py, pz) in GeV; one event holds few particles ---------------
def _add(a, b):
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])


def _sub(a, b):
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3])


def _m2(p) -> float:
    return p[0] * p[0] - p[1] * p[1] - p[2] * p[2] - p[3] * p[3]


def _boost(p, frame, mass):
    """``p`` from the rest frame of a system with 4-momentum ``frame`` and ``mass`` to the lab."""
    g = frame[0] / mass
    bx, by, bz = frame[1] / frame[0], frame[2] / frame[0], frame[3] / frame[0]
    bp = bx * p[1] + by * p[2] + bz * p[3]
    c = g * g / (g + 1) * bp + g * p[0]
    return (g * (p[0] + bp), p[1] + c * bx, p[2] + c * by, p[3] + c * bz)


def _direction(u):
    cos = 2 * u() - 1
    sin = math.sqrt(max(0.0, 1 - cos * cos))
    phi = 2 * math.pi * u()
    return (sin * math.cos(phi), sin * math.sin(phi), cos)


def _two_body(total, m1: float, m2: float, u):
    """Isotropic two-body decay of the system ``total`` into masses m1, m2: lab 4-vectors, or None
    when the invariant mass is too small."""
    s = _m2(total)
    if s < (m1 + m2) ** 2 * (1 - 1e-12):
        return None
    mass = math.sqrt(s)
    p = math.sqrt(max(0.0, (s - (m1 + m2) ** 2) * (s - (m1 - m2) ** 2))) / (2 * mass)
    d = _direction(u)
    a = _boost((math.sqrt(p * p + m1 * m1), p * d[0], p * d[1], p * d[2]), total, mass)
    return a, _sub(total, a)


def _power_q2(u, lo: float, hi: float, m2: float, n: int) -> float:
    """Q² in [lo, hi] from (1 + Q²/m2)^−n by inverting its CDF."""
    k = 1 - n
    ga, gb = (1 + lo / m2) ** k, (1 + hi / m2) ** k
    return m2 * ((ga + u() * (gb - ga)) ** (1 / k) - 1)


class _Scatter:
    """ν + target → lepton (mass m) + hadronic system (mass W), in the centre-of-mass frame."""

    __slots__ = ("total", "s", "sqrt_s", "ek", "axis")

    def __init__(self, k, target):
        self.total = _add(k, target)
        self.s = _m2(self.total)
        self.sqrt_s = math.sqrt(self.s) if self.s > 0 else 0.0
        if self.sqrt_s > 0:
            t = self.total
            kstar = _boost(k, (t[0], -t[1], -t[2], -t[3]), self.sqrt_s)
            self.ek = kstar[0]
            self.axis = (kstar[1] / kstar[0], kstar[2] / kstar[0], kstar[3] / kstar[0])

    def lepton_cm(self, m: float, w: float) -> tuple[float, float]:
        """Lepton energy and momentum in the CM frame."""
        s = self.s
        p = math.sqrt(max(0.0, (s - (m + w) ** 2) * (s - (m - w) ** 2))) / (2 * self.sqrt_s)
        return (s + m * m - w * w) / (2 * self.sqrt_s), p

    def q2_range(self, m: float, w: float) -> tuple[float, float] | None:
        if self.sqrt_s <= m + w:
            return None
        e, p = self.lepton_cm(m, w)
        return 2 * self.ek * (e - p) - m * m, 2 * self.ek * (e + p) - m * m

    def final(self, m: float, w: float, q2: float, u):
        """Lab lepton and hadronic-system 4-vectors for (W, Q²), azimuth random; None if outside
        the kinematic limits."""
        e, p = self.lepton_cm(m, w)
        if p <= 0:
            return None
        cos = (2 * self.ek * e - m * m - q2) / (2 * self.ek * p)
        if not -1 <= cos <= 1:
            return None
        sin = math.sqrt(1 - cos * cos)
        ax, ay, az = self.axis
        if abs(az) < 0.9:       # e1 = normalised (ẑ × axis), e2 = axis × e1
            e1 = (-ay, ax, 0.0)
        else:
            e1 = (0.0, -az, ay)
        norm = math.sqrt(e1[0] ** 2 + e1[1] ** 2 + e1[2] ** 2)
        e1 = (e1[0] / norm, e1[1] / norm, e1[2] / norm)
        e2 = (ay * e1[2] - az * e1[1], az * e1[0] - ax * e1[2], ax * e1[1] - ay * e1[0])
        phi = 2 * math.pi * u()
        c1, c2 = sin * math.cos(phi), sin * math.sin(phi)
        lep = (e, *(p * (cos * a + c1 * b + c2 * c) for a, b, c in zip(self.axis, e1, e2)))
        lep = _boost(lep, self.total, self.sqrt_s)
        return lep, _sub(self.total, lep)


class _Uniforms:
    """Uniform numbers from ``rng`` in blocks (a Python float each; deterministic order)."""

    __slots__ = ("rng", "buf")

    def __init__(self, rng):
        self.rng = rng
        self.buf = []

    def __call__(self) -> float:
        if not self.buf:
            self.buf = self.rng.random(64).tolist()
        return self.buf.pop()


class _Interaction:
    """State of one event being generated (neutrino, nucleus model, random numbers)."""

    def __init__(self, energy: float, lepton_mass: float, dq: int, antinu: bool, detector, rng):
        cfg = detector.config
        nuc = cfg.beam.nuclear
        self.energy = energy
        self.k = (energy, 0.0, 0.0, energy)
        self.m_l = lepton_mass
        self.dq = dq                              # charge given to the hadrons
        self.antinu = antinu
        self.nuc = nuc
        self.kf = nuc.fermi_momentum_gev
        self.eb = nuc.binding_energy_gev
        mat = cfg.material
        self.z_frac = mat.Z / mat.A
        radius = NUCLEAR_RADIUS_FM * FM_IN_INV_GEV * mat.A ** (1 / 3)
        self.coh_b = radius * radius / 3          # GeV⁻²
        self.rng = rng
        self.u = _Uniforms(rng)

    # -- nucleus -------------------------------------------------------------------------------
    def nucleon(self, charge: int):
        """A bound nucleon of this charge: Fermi momentum, energy √(m² + p²) − E_b."""
        m = M_P if charge else M_N
        p = self.kf * self.u() ** (1 / 3)
        d = _direction(self.u)
        return (math.sqrt(m * m + p * p) - self.eb, p * d[0], p * d[1], p * d[2])

    def random_charge(self) -> int:
        return 1 if self.u() < self.z_frac else 0

    def blocked(self, *nucleons) -> bool:
        kf2 = self.kf * self.kf
        return any(p[1] * p[1] + p[2] * p[2] + p[3] * p[3] < kf2 for p in nucleons)

    # -- primary modes: each returns (lepton, [(pdg, p4), ...]) or None ------------------------
    def qe(self):
        tq = self.random_charge() if self.dq == 0 else (0 if self.dq > 0 else 1)
        fq = tq + self.dq
        m_f = M_P if fq else M_N
        sc = _Scatter(self.k, self.nucleon(tq))
        lim = sc.q2_range(self.m_l, m_f)
        if lim is None:
            return None
        out = sc.final(self.m_l, m_f, _power_q2(self.u, *lim, *Q2_SHAPE[Mode.QE]), self.u)
        if out is None or self.blocked(out[1]):
            return None
        return out[0], [(_NUCLEON[fq], out[1])]

    def pair(self, gain: int) -> tuple[int, int]:
        """Charges of a struck nucleon pair that will gain charge ``gain``: np with probability
        NP_PAIR_FRACTION, else the like pair that keeps the final charges in {0, 1}."""
        if self.u() < NP_PAIR_FRACTION:
            return 1, 0
        if gain:
            return (0, 0) if gain > 0 else (1, 1)
        return (1, 1) if self.u() < self.z_frac else (0, 0)

    def mec(self):
        u = self.u
        pair = self.pair(self.dq)
        codes = _PAIR_CODES[sum(pair) + self.dq]
        m1, m2 = MASS_GEV[codes[0]], MASS_GEV[codes[1]]
        sc = _Scatter(self.k, _add(self.nucleon(pair[0]), self.nucleon(pair[1])))
        w_max = sc.sqrt_s - self.m_l
        if w_max <= m1 + m2:
            return None
        eps = -MEC_EXCITATION_GEV * math.log(1 - u() * (1 - math.exp(-(w_max - m1 - m2)
                                                                       / MEC_EXCITATION_GEV)))
        w = min(m1 + m2 + eps, w_max - 1e-9)
        lim = sc.q2_range(self.m_l, w)
        if lim is None:
            return None
        out = sc.final(self.m_l, w, _power_q2(u, *lim, *Q2_SHAPE[Mode.MEC]), u)
        if out is None:
            return None
        nn = _two_body(out[1], m1, m2, u)
        if nn is None or self.blocked(*nn):
            return None
        return out[0], [(codes[0], nn[0]), (codes[1], nn[1])]

    def res(self):
        u = self.u
        z, n = self.z_frac, 1 - self.z_frac
        if self.dq > 0:
            tq = 1 if u() < 3 * z / (3 * z + n) else 0
        elif self.dq < 0:
            tq = 0 if u() < 3 * n / (3 * n + z) else 1
        else:
            tq = self.random_charge()
        q_delta = tq + self.dq
        if q_delta == 2:
            n_code, pi_code = 2212, 211
        elif q_delta == -1:
            n_code, pi_code = 2112, -211
        elif u() < 2 / 3:
            n_code, pi_code = _NUCLEON[q_delta], 111
        else:
            n_code, pi_code = _NUCLEON[1 - q_delta], _PION[2 * q_delta - 1]
        m_nuc, m_pi = MASS_GEV[n_code], MASS_GEV[abs(pi_code)]
        sc = _Scatter(self.k, self.nucleon(tq))
        lo, hi = m_nuc + m_pi + 1e-4, min(RES_W_MAX, sc.sqrt_s - self.m_l - 1e-6)
        if hi <= lo:
            return None
        a, b = math.atan(2 * (lo - DELTA[0]) / DELTA[1]), math.atan(2 * (hi - DELTA[0]) / DELTA[1])
        w = DELTA[0] + 0.5 * DELTA[1] * math.tan(a + (b - a) * u())
        lim = sc.q2_range(self.m_l, w)
        if lim is None:
            return None
        out = sc.final(self.m_l, w, _power_q2(u, *lim, *Q2_SHAPE[Mode.RES]), u)
        if out is None:
            return None
        decay = _two_body(out[1], m_nuc, m_pi, u)
        if decay is None:
            return None
        return out[0], [(n_code, decay[0]), (pi_code, decay[1])]

    def dis(self):
        rng = self.rng
        tq = self.random_charge()
        target = self.nucleon(tq)
        sc = _Scatter(self.k, target)
        m = self.m_l
        if sc.sqrt_s <= m + DIS_W_MIN:
            return None
        mt2 = _m2(target)
        mt = math.sqrt(mt2)
        e_rest = (sc.s - mt2) / (2 * mt)
        n = DIS_CANDIDATES
        x = rng.beta(0.5, 4.0, n)
        r = rng.random((2, n))
        sea = r[0] < DIS_SEA_FRACTION
        falling = sea != self.antinu            # ν: valence flat, sea (1−y)²; ν̄: the reverse
        y = np.where(falling, 1 - np.cbrt(1 - r[1]), r[1])
        q2 = 2 * mt * e_rest * x * y
        w2 = mt2 + q2 * (1 - x) / np.maximum(x, 1e-300)
        w = np.sqrt(w2)
        s = sc.s
        e_l = (s + m * m - w2) / (2 * sc.sqrt_s)
        p_l = np.sqrt(np.maximum(0.0, (s - (m + w) ** 2) * (s - (m - w) ** 2))) / (2 * sc.sqrt_s)
        cos = (2 * sc.ek * e_l - m * m - q2) / np.maximum(2 * sc.ek * p_l, 1e-300)
        ok = (w > DIS_W_MIN) & (w < sc.sqrt_s - m) & (np.abs(cos) <= 1) & (x > 0) & (q2 > 0)
        idx = np.flatnonzero(ok)
        if not len(idx):
            return None
        i = idx[0]
        out = sc.final(m, float(w[i]), float(q2[i]), self.u)
        if out is None:
            return None
        return out[0], self.hadronise(out[1], float(w[i]), tq + self.dq)

    def hadronise(self, system, w: float, charge: int):
        """Break the hadronic system (4-vector, mass w) into one nucleon + pions of total ``charge``."""
        u = self.u
        mean = 1.5 * (0.1 + 1.42 * math.log(w * w))
        n_max = 1 + int((w - M_N - 1e-3) / M_PI)
        n = min(2 + int(self.rng.poisson(max(mean - 2, 0.0))), n_max)
        charges = [1 if u() < 0.5 else 0] + [int(3 * u()) - 1 for _ in range(n - 1)]
        d = charge - sum(charges)
        while d:
            step = 1 if d > 0 else -1
            # nucleon charge stays in {0, 1}, pion charges in {−1, 0, 1}
            movable = [i for i, q in enumerate(charges)
                       if (0 if i == 0 else -1) <= q + step <= 1]
            i = movable[int(u() * len(movable))]
            charges[i] += step
            d -= step
        codes = [_NUCLEON[charges[0]]] + [_PION[q] for q in charges[1:]]
        masses = [MASS_GEV[abs(c)] for c in codes]
        # Sequential two-body decays W → h₁ + M₁, M₁ → h₂ + M₂, …, the intermediate masses
        # spread uniformly (sorted) over the available kinetic energy (GENBOD without weights).
        free = w - sum(masses)
        cuts = sorted(u() for _ in range(n - 2))[::-1]
        out = []
        for i, cut in enumerate(cuts):
            rest_mass = sum(masses[i + 1:]) + cut * free
            pair = _two_body(system, masses[i], rest_mass, u)
            out.append((codes[i], pair[0]))
            system = pair[1]
        pair = _two_body(system, masses[-2], masses[-1], u)
        return out + [(codes[-2], pair[0]), (codes[-1], pair[1])]

    def coh(self):
        u = self.u
        e, m = self.energy, self.m_l
        pi_code = 111 if self.dq == 0 else (211 if self.dq > 0 else -211)
        m_pi = MASS_GEV[abs(pi_code)]
        y_lo, y_hi = m_pi / e, 1 - m / e
        if y_hi <= y_lo:
            return None
        a, b = (1 - y_lo) ** 2, (1 - y_hi) ** 2
        for _ in range(8):
            y = 1 - math.sqrt(a - u() * (a - b))
            nu = e * y
            e_l = e - nu
            p_l = math.sqrt(max(0.0, e_l * e_l - m * m))
            lo, hi = 2 * e * (e_l - p_l) - m * m, 2 * e * (e_l + p_l) - m * m
            q2 = _power_q2(u, max(lo, 0.0), hi, *Q2_SHAPE[Mode.COH])
            q_mag = math.sqrt(nu * nu + q2)
            p_pi = math.sqrt(max(0.0, nu * nu - m_pi * m_pi))
            if u() > math.exp(-self.coh_b * (q_mag - p_pi) ** 2):
                continue
            cos = min(1.0, max(-1.0, (2 * e * e_l - m * m - q2) / (2 * e * p_l)))
            sin = math.sqrt(1 - cos * cos)
            phi = 2 * math.pi * u()
            lep = (e_l, p_l * sin * math.cos(phi), p_l * sin * math.sin(phi), p_l * cos)
            q = (-lep[1], -lep[2], e - lep[3])
            kick = math.sqrt(-math.log(1 - u()) / self.coh_b)
            # transverse kick around q: a random direction made perpendicular to q
            d = _direction(u)
            qn = math.sqrt(q[0] ** 2 + q[1] ** 2 + q[2] ** 2)
            qh = (q[0] / qn, q[1] / qn, q[2] / qn)
            dot = d[0] * qh[0] + d[1] * qh[1] + d[2] * qh[2]
            t = (d[0] - dot * qh[0], d[1] - dot * qh[1], d[2] - dot * qh[2])
            tn = math.sqrt(t[0] ** 2 + t[1] ** 2 + t[2] ** 2) or 1.0
            v = tuple(q[i] + kick * t[i] / tn for i in range(3))
            vn = math.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
            pion = (nu, p_pi * v[0] / vn, p_pi * v[1] / vn, p_pi * v[2] / vn)
            return lep, [(pi_code, pion)]
        return None

    # -- final-state interactions --------------------------------------------------------------
    def fsi(self, hadrons):
        """One intranuclear step for each hadron from the vertex (module docstring)."""
        nuc, u = self.nuc, self.u
        out = []
        for code, p in hadrons:
            r = u()
            new = None
            if code in (211, 111, -211):
                if r < nuc.pion_absorption:
                    new = self._absorb(code, p)
                elif r < nuc.pion_absorption + nuc.pion_charge_exchange:
                    new = self._charge_exchange(code, p)
                elif r < nuc.pion_absorption + nuc.pion_charge_exchange + nuc.pion_inelastic:
                    tq = self.random_charge()
                    new = self._collide(p, self.nucleon(tq), code, _NUCLEON[tq])
            else:
                if r < nuc.nucleon_knockout:
                    tq = self.random_charge()
                    new = self._collide(p, self.nucleon(tq), code, _NUCLEON[tq])
                elif r < nuc.nucleon_knockout + nuc.nucleon_pion_production:
                    new = self._pion_production(code, p)
            out.extend(new if new is not None else [(code, p)])
        return out

    def _collide(self, a, b, code1: int, code2: int):
        """a + b → (code1, code2), isotropic in the CM frame; None if impossible or Pauli-blocked."""
        prods = _two_body(_add(a, b), MASS_GEV[abs(code1)], MASS_GEV[abs(code2)], self.u)
        if prods is None:
            return None
        if self.blocked(*(p for c, p in zip((code1, code2), prods) if c in (2212, 2112))):
            return None
        return [(code1, prods[0]), (code2, prods[1])]

    def _absorb(self, code: int, p):
        q = _HADRON_CHARGE[code]
        pair = self.pair(q)
        codes = _PAIR_CODES[sum(pair) + q]
        pair4 = _add(self.nucleon(pair[0]), self.nucleon(pair[1]))
        return self._collide(p, pair4, *codes)

    def _charge_exchange(self, code: int, p):
        if code == 211:
            tq, out = 0, (111, 2212)
        elif code == -211:
            tq, out = 1, (111, 2112)
        else:
            tq = self.random_charge()
            out = (211, 2112) if tq else (-211, 2212)
        return self._collide(p, self.nucleon(tq), *out)

    def _pion_production(self, code: int, p):
        u = self.u
        tq = self.random_charge()
        total = _add(p, self.nucleon(tq))
        q = _HADRON_CHARGE[code] + tq
        allowed = [c for c in (-1, 0, 1) if 0 <= q - c <= 2]
        pi_q = allowed[int(u() * len(allowed))]
        rest_q = q - pi_q
        n_codes = _PAIR_CODES[rest_q]
        if rest_q == 1 and u() < 0.5:
            n_codes = n_codes[::-1]
        m1, m2, m_pi = MASS_GEV[n_codes[0]], MASS_GEV[n_codes[1]], MASS_GEV[abs(_PION[pi_q])]
        s = _m2(total)
        if s <= (m1 + m2 + m_pi) ** 2:
            return None
        lo, hi = m2 + m_pi + 1e-4, math.sqrt(s) - m1 - 1e-6
        a, b = math.atan(2 * (lo - DELTA[0]) / DELTA[1]), math.atan(2 * (hi - DELTA[0]) / DELTA[1])
        w = DELTA[0] + 0.5 * DELTA[1] * math.tan(a + (b - a) * u())
        first = _two_body(total, m1, w, u)
        second = first and _two_body(first[1], m2, m_pi, u)
        if not second or self.blocked(first[0], second[0]):
            return None
        return [(n_codes[0], first[0]), (n_codes[1], second[0]), (_PION[pi_q], second[1])]


def _mode_table(energy: float, nc: bool = False) -> tuple[float, float, float, float, float]:
    """Fractions (MEC, COH, QE, RES, DIS) of all events at ``energy`` (GeV), summing to 1
    (``nc``: NC events, the elastic share scaled by :data:`NC_ELASTIC_SCALE`)."""
    le = math.log(energy)
    i = bisect.bisect_right(_LOG_NODES, le) - 1
    if i < 0:
        i, t = 0, 0.0
    elif i >= len(_LOG_NODES) - 1:
        i, t = len(_LOG_NODES) - 2, 1.0
    else:
        t = (le - _LOG_NODES[i]) / (_LOG_NODES[i + 1] - _LOG_NODES[i])

    def at(table):
        return table[i] + t * (table[i + 1] - table[i])

    mec, coh = at(MEC_FRACTION), at(COH_FRACTION)
    rest = 1 - mec - coh
    qe, res = rest * at(QE_SHARE), rest * at(RES_SHARE)
    dis = 1 - mec - coh - qe - res
    if nc:
        freed = (1 - NC_ELASTIC_SCALE) * qe
        qe = NC_ELASTIC_SCALE * qe
        res, dis = res + freed * res / (res + dis), dis + freed * dis / (res + dis)
    return mec, coh, qe, res, dis


def _choose_mode(energy: float, u: float, nc: bool = False) -> Mode:
    mec, coh, qe, res, _ = _mode_table(energy, nc)
    if u < mec:
        return Mode.MEC
    if u < mec + coh:
        return Mode.COH
    if u < mec + coh + qe:
        return Mode.QE
    if u < mec + coh + qe + res:
        return Mode.RES
    return Mode.DIS


def mode_fractions(energy_gev: float, nc: bool = False) -> dict[Mode, float]:
    """Table fractions of each mode (before kinematic fall-backs) at ``energy_gev`` (GeV), of CC
    or (``nc``) NC events."""
    return dict(zip((Mode.MEC, Mode.COH, Mode.QE, Mode.RES, Mode.DIS), _mode_table(energy_gev, nc)))


def generate(flavour: Flavour, detector, rng: np.random.Generator, energy_gev: float | None = None,
             antinu: bool | None = None) -> tuple[Truth, ParticleBatch]:
    """One neutrino interaction in ``detector`` (module docstring for the model).

    ``energy_gev``: neutrino energy (GeV), else drawn from the detector's beam; ``antinu``: force
    ν̄ (True) or ν (False), else drawn with ``beam.antinu_fraction``.

    Returns the truth (:class:`gnnu.events.Truth`, every field filled; energies GeV, vertex cm)
    and the primaries leaving the nucleus (:class:`ParticleBatch` of n rows: ``pdg`` (n,),
    ``pos`` (n, 3) = the vertex in cm, ``mom`` (n, 3) GeV/c, ``time`` (n,) = 0 ns), the lepton
    (charged lepton for CC, the neutrino for NC) first. Raises :class:`GnnuError` for
    ``Flavour.COSMIC`` (not a neutrino interaction) or an energy below the flavour's threshold.
    """
    try:
        flavour = Flavour(flavour)
    except ValueError:
        raise GnnuError(f"unknown flavour {flavour!r}") from None
    if flavour == Flavour.COSMIC:
        raise GnnuError("the neutrino generator cannot make cosmic-ray events (flavour 'cosmic')")
    cfg = detector.config
    beam = cfg.beam
    u = rng.random()
    is_anti = bool(u < beam.antinu_fraction) if antinu is None else bool(antinu)
    sign = -1 if is_anti else 1
    if flavour == Flavour.NC:
        w = beam.nc_flavour_fractions
        r = rng.random() * sum(w)
        nu_code = _NC_NEUTRINOS[0 if r < w[0] else (1 if r < w[0] + w[1] else 2)]
        lepton_code, lepton_mass, dq = sign * nu_code, 0.0, 0
    else:
        # ν CC makes a negative lepton (PDG code > 0), so the hadrons gain a charge +1; ν̄ the reverse.
        nu_code = _NEUTRINO[flavour]
        lepton_code = sign * _LEPTON[flavour]
        lepton_mass, dq = MASS_GEV[_LEPTON[flavour]], sign
    threshold = flux.cc_threshold_gev(lepton_mass) if flavour != Flavour.NC else 0.0
    if energy_gev is None:
        tau_threshold = flux.TAU_THRESHOLD_GEV if flavour == Flavour.NUTAU_CC else 0.0
        energy = flux.sample_energy(beam, rng, threshold_gev=tau_threshold)
    else:
        energy = float(energy_gev)
        if not (math.isfinite(energy) and energy > threshold):
            raise GnnuError(f"{flavour.pretty} needs a neutrino energy above {threshold:.3f} GeV, "
                            f"got {energy_gev!r}")

    av = cfg.active_volume
    margin = cfg.fiducial_margin_cm
    lo, hi = av.lo + margin, av.hi - margin
    vertex = lo + (hi - lo) * rng.random(3)

    event = _Interaction(energy, lepton_mass, dq, is_anti, detector, rng)
    mode = _choose_mode(energy, event.u(), flavour == Flavour.NC)
    result = None
    while result is None:
        tries = 8 * MAX_TRIES if mode == Mode.QE else MAX_TRIES
        for _ in range(tries):
            result = getattr(event, mode.name.lower())()
            if result is not None:
                break
        else:
            if mode == Mode.QE:
                raise GnnuError(f"no kinematically allowed {flavour.pretty} interaction at "
                                f"E = {energy:.4g} GeV")
            mode = _FALLBACK[mode]
    lepton, hadrons = result
    if mode != Mode.COH:
        hadrons = event.fsi(hadrons)
    particles = [(lepton_code, lepton)] + hadrons
    return _truth(flavour, mode, is_anti, sign * nu_code, energy, lepton[0], vertex, hadrons,
                  cfg.visibility), _batch(particles, vertex)


def _batch(particles, vertex) -> ParticleBatch:
    n = len(particles)
    mom = np.array([p[1:] for _, p in particles], dtype=np.float64)
    return ParticleBatch(np.array([c for c, _ in particles], np.int32),
                         np.repeat(vertex[None, :], n, axis=0), mom, np.zeros(n))


def _truth(flavour, mode, is_anti, nu_pdg, energy, lep_energy, vertex, hadrons, vis) -> Truth:
    counts = {2212: 0, 211: 0, 111: 0, 2112: 0}
    thresholds = {2212: vis.proton_ke_mev, 211: vis.charged_pion_ke_mev,
                  111: vis.neutral_pion_ke_mev, 2112: vis.neutron_ke_mev}
    for code, p in hadrons:
        a = abs(code)
        if a in counts and (p[0] - MASS_GEV[a]) * 1e3 > thresholds[a]:
            counts[a] += 1
    n_p, n_pic, n_pi0, n_n = counts[2212], counts[211], counts[111], counts[2112]
    b_p, b_pic, b_pi0, b_n = bucket_count([n_p, n_pic, n_pi0, n_n]).tolist()
    return Truth(
        flavour=int(flavour), interaction=int(mode.interaction), is_antinu=int(is_anti),
        n_proton=b_p, n_charged_pion=b_pic, n_neutral_pion=b_pi0, n_neutron=b_n,
        n_proton_raw=n_p, n_charged_pion_raw=n_pic, n_neutral_pion_raw=n_pi0, n_neutron_raw=n_n,
        mode=int(mode), nu_pdg=int(nu_pdg), nu_energy=float(energy), lep_energy=float(lep_energy),
        y=float(1 - lep_energy / energy), vtx_x=float(vertex[0]), vtx_y=float(vertex[1]),
        vtx_z=float(vertex[2]))
