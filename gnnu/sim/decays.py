"""Prompt decays of π0 and τ± at their production point, and the relativistic kinematics helpers
(boosts, two-body and n-body phase space) the generator shares.

π0 (PDG 2024): γγ 98.823 %, Dalitz e+e−γ 1.174 % (the remaining 3×10⁻⁵ is folded in
proportionally). γγ is isotropic in the π0 rest frame and boosted exactly. In the Dalitz decay the
e+e− mass squared follows the Kroll–Wada spectrum (1/x)(1 − x)³(1 + 2r/x)√(1 − 4r/x), x = m²_ee/m²_π0,
r = m²_e/m²_π0; π0 → γ γ* and γ* → e+e− are then isotropic two-body decays.

τ− (τ+ is its charge conjugate; PDG 2024 branching fractions, renormalised over the listed modes,
which hold 94.2 % of all decays — the K0, η, ω and K* modes are folded in proportionally):

====================  ========  ==========================================================
mode                  BR (PDG)  kinematics in the τ rest frame
====================  ========  ==========================================================
e− ν̄e ντ              17.82 %   V−A Michel spectrum x²(3 − 2x) of the charged lepton
μ− ν̄μ ντ              17.39 %   (x = E/E_max, massless form; the lepton mass limits x), the
                                ν ν̄ pair isotropic in its own rest frame
π− ντ                 10.82 %   two-body
K− ντ                  0.696 %  two-body
π− π0 ντ              25.49 %   via ρ(770) (Breit–Wigner mass), ρ → π π0 isotropic
π− 2π0 ντ              9.26 %   via a1(1260) (Breit–Wigner mass), a1 → 3π by phase space
π− π+ π− ντ            8.99 %   via a1(1260), as above
π− π+ π− π0 ντ         2.74 %   five-body phase space
π− 3π0 ντ              1.04 %   five-body phase space
====================  ========  ==========================================================

Simplifications: decays are at the production point (cτ = 87 µm for the τ, 25 nm for the π0);
the τ is unpolarised and every decay without a matrix element is isotropic phase space; the n-body
phase space is RAMBO's (massless, flat) rescaled to the masses, so it is close to but not exactly
flat for massive products; resonance widths are energy independent.

Every array function here is vectorised over its first axis (one row per decaying system);
4-vectors are (E, px, py, pz) in GeV.
"""

from __future__ import annotations

import functools

import numpy as np

from ..events import Process
from .pdg import MASS_GEV
from .records import Deposits, ParticleBatch, StageOutput

M_PI0 = MASS_GEV[111]
M_PI = MASS_GEV[211]
M_TAU = MASS_GEV[15]
M_E = MASS_GEV[11]

#: π0 branching fraction into e+e−γ (Dalitz), renormalised against γγ.
PI0_DALITZ_FRACTION = 1.174 / (98.823 + 1.174)

#: ρ(770) and a1(1260) mass and width, GeV (PDG 2024).
RHO = (0.77526, 0.1491)
A1 = (1.230, 0.420)

#: τ− decay modes: (label, PDG branching fraction, products besides the ντ, resonance).
TAU_MODES = (
    ("e nu nu", 0.1782, (11, -12), "michel"),
    ("mu nu nu", 0.1739, (13, -14), "michel"),
    ("pi nu", 0.1082, (-211,), None),
    ("K nu", 0.00696, (-321,), None),
    ("pi pi0 nu", 0.2549, (-211, 111), RHO),
    ("pi 2pi0 nu", 0.0926, (-211, 111, 111), A1),
    ("3pi nu", 0.0899, (-211, 211, -211), A1),
    ("3pi pi0 nu", 0.0274, (-211, 211, -211, 111), None),
    ("pi 3pi0 nu", 0.0104, (-211, 111, 111, 111), None),
)
_BR = np.array([m[1] for m in TAU_MODES])
#: Branching fractions used (renormalised over :data:`TAU_MODES`).
TAU_BRANCHING = _BR / _BR.sum()
_SELF_CONJUGATE = (22, 111)


# -- kinematics helpers ----------------------------------------------------------------------
def isotropic(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors uniform on the sphere, shape (n, 3)."""
    u = rng.random((n, 2))
    cos = 2 * u[:, 0] - 1
    sin = np.sqrt(np.maximum(0.0, 1 - cos * cos))
    phi = 2 * np.pi * u[:, 1]
    return np.stack([sin * np.cos(phi), sin * np.sin(phi), cos], axis=1)


def boost(p4: np.ndarray, parent: np.ndarray, parent_mass) -> np.ndarray:
    """Boost 4-vectors ``p4`` (..., 4) from the rest frame of ``parent`` to the frame where it has
    4-momentum ``parent`` (broadcastable to p4; GeV) and mass ``parent_mass`` (GeV/c²).

    Written with γ = E/m and (γ − 1)/β² = γ²/(γ + 1), exact at any boost (no 1 − β² cancellation).
    """
    m = np.asarray(parent_mass, dtype=np.float64)[..., None]
    gamma = parent[..., :1] / m
    beta = parent[..., 1:] / parent[..., :1]
    bp = np.sum(beta * p4[..., 1:], axis=-1, keepdims=True)
    e = p4[..., :1]
    coef = gamma * gamma / (gamma + 1) * bp + gamma * e
    return np.concatenate([gamma * (e + bp), p4[..., 1:] + coef * beta], axis=-1)


def two_body_momentum(mass, m1, m2) -> np.ndarray:
    """Momentum (GeV/c) of either product of a two-body decay at rest (arrays broadcast)."""
    mass = np.asarray(mass, dtype=np.float64)
    s = mass * mass
    lam = (s - (m1 + m2) ** 2) * (s - (m1 - m2) ** 2)
    return np.sqrt(np.maximum(lam, 0.0)) / (2 * mass)


def two_body(mass, m1, m2, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic decay at rest of systems of ``mass`` (n,) into masses ``m1``, ``m2`` (scalars or
    (n,)): the two 4-vectors, each (n, 4), in the parent rest frame."""
    mass = np.atleast_1d(np.asarray(mass, dtype=np.float64))
    p = two_body_momentum(mass, m1, m2)
    d = isotropic(len(mass), rng) * p[:, None]
    e1 = np.sqrt(p * p + np.asarray(m1) ** 2)
    e2 = np.sqrt(p * p + np.asarray(m2) ** 2)
    return (np.concatenate([e1[:, None], d], axis=1),
            np.concatenate([e2[:, None], -d], axis=1))


def phase_space(mass, masses, rng: np.random.Generator, iterations: int = 40) -> np.ndarray:
    """Decay at rest of systems of ``mass`` (n,) GeV into particles of ``masses`` (k,) GeV/c².

    RAMBO (Kleiss, Stirling, Ellis 1986) makes k massless momenta flat in phase space summing to
    (mass, 0); a common scale ξ, found by Newton's method, then puts them on their mass shells:
    Σ √(m² + ξ²p²) = mass. Returns (n, k, 4) rest-frame 4-vectors (momentum conserved exactly,
    energy to ~1e-12 relative). Needs mass > Σ masses.
    """
    mass = np.atleast_1d(np.asarray(mass, dtype=np.float64))
    masses = np.asarray(masses, dtype=np.float64)
    n, k = len(mass), len(masses)
    if k == 2:
        a, b = two_body(mass, masses[0], masses[1], rng)
        return np.stack([a, b], axis=1)
    u = rng.random((n, k, 4))
    cos = 2 * u[..., 0] - 1
    sin = np.sqrt(np.maximum(0.0, 1 - cos * cos))
    phi = 2 * np.pi * u[..., 1]
    q0 = -np.log(u[..., 2] * u[..., 3] + 1e-300)
    q = q0[..., None] * np.stack([sin * np.cos(phi), sin * np.sin(phi), cos], axis=-1)
    big_q0 = q0.sum(axis=1)
    big_q = q.sum(axis=1)
    mq = np.sqrt(big_q0 ** 2 - np.sum(big_q ** 2, axis=1))
    b = -big_q / mq[:, None]
    x = mass / mq
    gamma = big_q0 / mq
    a = 1 / (1 + gamma)
    bq = np.einsum("nj,nkj->nk", b, q)
    p0 = x[:, None] * (gamma[:, None] * q0 + bq)
    pv = x[:, None, None] * (q + b[:, None, :] * q0[..., None] + (a[:, None] * bq)[..., None]
                             * b[:, None, :])
    # Put the massless momenta (|p| = p0) on the mass shells: f(ξ) = Σ √(m² + ξ²p0²) − M = 0.
    # f is convex and increasing with f(1) ≥ 0, so Newton from ξ = 1 converges from above.
    xi = np.ones(n)
    m2 = masses * masses
    p02 = p0 * p0
    for _ in range(iterations):
        e = np.sqrt(m2 + (xi * xi)[:, None] * p02)
        f = e.sum(axis=1) - mass
        if np.all(np.abs(f) <= 1e-13 * mass):
            break
        xi = xi - f / (xi[:, None] * p02 / e).sum(axis=1)
    mom = xi[:, None, None] * pv
    energy = np.sqrt(m2 + np.sum(mom * mom, axis=-1))
    return np.concatenate([energy[..., None], mom], axis=-1)


def breit_wigner(n: int, peak: float, width: float, lo, hi, rng: np.random.Generator) -> np.ndarray:
    """``n`` masses (GeV) from a non-relativistic Breit–Wigner truncated to [lo, hi] (arrays ok)."""
    a = np.arctan(2 * (np.asarray(lo) - peak) / width)
    b = np.arctan(2 * (np.asarray(hi) - peak) / width)
    return peak + 0.5 * width * np.tan(a + (b - a) * rng.random(n))


# -- π0 ----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _kroll_wada_table(points: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    r = (M_E / M_PI0) ** 2
    x = np.geomspace(4 * r, 1.0, points)
    pdf = (1 - x) ** 3 / x * (1 + 2 * r / x) * np.sqrt(np.clip(1 - 4 * r / x, 0, None))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(x))])
    return cdf / cdf[-1], x


def _decay_pi0(p4: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """π0 4-vectors (n, 4) → (product pdg, product 4-vectors, index of the parent row)."""
    n = len(p4)
    dalitz = rng.random(n) < PI0_DALITZ_FRACTION
    pdg, mom, idx = [], [], []
    g = np.flatnonzero(~dalitz)
    if len(g):
        a, b = two_body(np.full(len(g), M_PI0), 0.0, 0.0, rng)
        pdg += [np.full(len(g), 22), np.full(len(g), 22)]
        mom += [boost(a, p4[g], M_PI0), boost(b, p4[g], M_PI0)]
        idx += [g, g]
    d = np.flatnonzero(dalitz)
    if len(d):
        cdf, x = _kroll_wada_table()
        m_ee = M_PI0 * np.sqrt(np.interp(rng.random(len(d)), cdf, x))
        m_ee = np.clip(m_ee, 2 * M_E * (1 + 1e-12), None)
        gamma, virtual = two_body(np.full(len(d), M_PI0), 0.0, m_ee, rng)
        em, ep = two_body(m_ee, M_E, M_E, rng)
        virtual_lab = boost(virtual, p4[d], M_PI0)
        pdg += [np.full(len(d), 22), np.full(len(d), 11), np.full(len(d), -11)]
        mom += [boost(gamma, p4[d], M_PI0), boost(em, virtual_lab, m_ee), boost(ep, virtual_lab, m_ee)]
        idx += [d, d, d]
    return np.concatenate(pdg), np.concatenate(mom), np.concatenate(idx)


# -- τ -----------------------------------------------------------------------------------------
def _michel(n: int, lepton_mass: float, rng: np.random.Generator) -> np.ndarray:
    """Charged-lepton energies (GeV) in the τ rest frame from x²(3 − 2x), x = E/E_max ≥ m/E_max."""
    e_max = (M_TAU ** 2 + lepton_mass ** 2) / (2 * M_TAU)
    x_min = lepton_mass / e_max
    out = np.empty(0)
    while len(out) < n:
        x = x_min + (1 - x_min) * rng.random(2 * (n - len(out)) + 8)
        keep = rng.random(len(x)) < x * x * (3 - 2 * x)
        out = np.concatenate([out, x[keep]])
    return out[:n] * e_max


def _tau_mode(mode: int, n: int, rng: np.random.Generator) -> tuple[list[int], np.ndarray]:
    """``n`` τ− decays at rest in ``mode``: product codes (ντ first) and 4-vectors (n, k, 4)."""
    _, _, products, resonance = TAU_MODES[mode]
    codes = [16, *products]
    m = np.array([MASS_GEV[abs(c)] for c in products])
    tau = np.full(n, M_TAU)
    if resonance == "michel":
        e = _michel(n, m[0], rng)
        p = np.sqrt(np.maximum(e * e - m[0] ** 2, 0.0))
        lep = np.concatenate([e[:, None], isotropic(n, rng) * p[:, None]], axis=1)
        pair = np.concatenate([(M_TAU - e)[:, None], -lep[:, 1:]], axis=1)
        m_pair = np.sqrt(np.maximum(pair[:, 0] ** 2 - np.sum(pair[:, 1:] ** 2, axis=1), 1e-30))
        nu_tau, nu_l = two_body(m_pair, 0.0, 0.0, rng)
        return codes, np.stack([boost(nu_tau, pair, m_pair), lep, boost(nu_l, pair, m_pair)], axis=1)
    if resonance is None:
        return codes, phase_space(tau, np.concatenate([[0.0], m]), rng)
    # τ → resonance ν, resonance → hadrons.
    m_res = breit_wigner(n, *resonance, m.sum() * (1 + 1e-9), M_TAU * (1 - 1e-9), rng)
    nu, res = two_body(tau, 0.0, m_res, rng)
    hadrons = boost(phase_space(m_res, m, rng), res[:, None, :], m_res[:, None])
    return codes, np.concatenate([nu[:, None, :], hadrons], axis=1)


def _decay_tau(p4: np.ndarray, sign: np.ndarray, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """τ 4-vectors (n, 4) and charges' sign (+1 τ−, −1 τ+) → (pdg, 4-vectors, parent row)."""
    mode = np.searchsorted(np.cumsum(TAU_BRANCHING), rng.random(len(p4)) * (1 - 1e-12), side="right")
    pdg, mom, idx = [], [], []
    for k in np.unique(mode):
        rows = np.flatnonzero(mode == k)
        codes, rest = _tau_mode(int(k), len(rows), rng)
        lab = boost(rest, p4[rows][:, None, :], M_TAU)
        conj = np.array([1 if abs(c) in _SELF_CONJUGATE else -1 for c in codes])
        codes = np.array(codes)
        # A τ+ (sign −1) flips every code that is not its own antiparticle.
        c = np.where(sign[rows][:, None] < 0, codes[None, :] * conj[None, :], codes[None, :])
        pdg.append(c.reshape(-1))
        mom.append(lab.reshape(-1, 4))
        idx.append(np.repeat(rows, len(codes)))
    return np.concatenate(pdg), np.concatenate(mom), np.concatenate(idx)


def decay(batch: ParticleBatch, detector, rng: np.random.Generator) -> StageOutput:
    """Prompt decays at the production point of the π0 (pdg 111) and τ± (±15) in ``batch``.

    No deposits; ``end_pos`` = ``batch.pos`` (n, 3) cm; the secondaries (GeV/c momenta) start at
    their parent's position and time, with ``parent`` = the parent's ``track_id`` and ``process`` =
    :attr:`Process.DECAY`, ordered by parent. ``detector`` is not needed (kept for the stage API).
    """
    apdg = np.abs(batch.pdg)
    unknown = (apdg != 111) & (apdg != 15)
    if unknown.any():
        raise ValueError(f"decays.decay cannot decay pdg {sorted(set(batch.pdg[unknown].tolist()))}")
    m = np.where(apdg == 15, M_TAU, M_PI0)
    p4 = np.concatenate([np.sqrt(np.sum(batch.mom ** 2, axis=1) + m * m)[:, None], batch.mom], axis=1)
    pdg, mom, idx = [np.zeros(0, np.int64)], [np.zeros((0, 4))], [np.zeros(0, np.int64)]
    for code, fn in ((111, lambda rows: _decay_pi0(p4[rows], rng)),
                     (15, lambda rows: _decay_tau(p4[rows], np.sign(batch.pdg[rows]), rng))):
        rows = np.flatnonzero(apdg == code)
        if len(rows):
            c, p, i = fn(rows)
            pdg.append(c)
            mom.append(p)
            idx.append(rows[i])
    pdg, mom, idx = np.concatenate(pdg), np.concatenate(mom), np.concatenate(idx)
    order = np.argsort(idx, kind="stable")
    pdg, mom, idx = pdg[order], mom[order], idx[order]
    secondaries = ParticleBatch(pdg, batch.pos[idx], mom[:, 1:], batch.time[idx],
                                parent=batch.track_id[idx],
                                process=np.full(len(idx), Process.DECAY, np.int8))
    return StageOutput(Deposits(), secondaries, batch.pos.copy())
