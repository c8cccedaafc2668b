"""Transport of charged tracks (μ±, π±, K±, p) and neutrons through the detector medium.

:func:`propagate` moves every particle of a batch at once. A charged particle's fate is drawn
up front from the tables of :mod:`gnnu.sim.material` (CSDA range R, proper path P, interaction
depth Θ): it stops after its range, decays in flight where its residual proper path is
P(T₀) − cτ·Exp(1), or interacts where its residual depth is Θ(T₀) − Exp(1) — whichever comes
first. Its path is then cut into steps of ``transport.step_cm`` and all steps of all particles are
built in bulk (flat arrays, segmented cumulative sums), never in a Python loop over steps.

Per step (length ℓ, kinetic energy T(s) = T_R(R₀ − s) from the range table):

- **Mean energy loss** ΔT = T(s) − T(s + ℓ): exactly the Bethe–Bloch mean, so ranges are right.
- **Fluctuations** (Landau-like, valid from the Landau to the Gaussian regime): collisions with
  energy transfer E above T₁ follow the free-electron spectrum ξ/E² (ξ = ½K(Z/A)ρℓ/β²) and are
  sampled explicitly — Poisson-many, ``transport.fluctuation_collisions`` on average, with
  T₁ = ξTmax/(n·Tmax + ξ); the many softer collisions add up to a Gaussian of variance
  ξT₁(1 − β²/2) whose mean makes the total mean ΔT. Where κ = ξ/Tmax > 10 (slow protons) the
  whole loss is Gaussian with Bohr's variance ξTmax(1 − β²/2). For a 1 GeV muon in 0.3 cm of argon
  this gives the PDG most probable loss (eq. 34.12) within a few % and a FWHM of ~3.8ξ (Landau:
  4.0ξ). The spin term of the free-electron spectrum is applied to δ-rays only (the means are kept
  exact either way).
- **δ-rays**: sampled collisions above ``delta_ray_threshold_mev`` (after the spin-0 rejection
  1 − β²E/Tmax) become secondary electrons (pdg 11, process DELTA) emitted at a random point of
  the step with cos θ = (E/p)(p_max/Tmax) (PDG); softer ones are deposited in the step.
- **Multiple scattering**: Highland (PDG eq. 34.16) with X0 from the config. The variance added by
  a step is ℓ·dθ₀²/ds at its midpoint and momentum, θ₀²(s) ∝ (s/X0)(1 + 0.038 ln(s/(X0β²)))² with s
  the path length since the particle's birth (exactly θ₀²(ℓ) for its first step), so a slab of any
  thickness gets Highland's θ₀ (summing per-step Highland angles would underestimate it by ~13 % at
  0.3 cm steps). The two
  projected kicks accumulate as a 2-D random walk in the tangent plane of the initial direction,
  mapped onto the sphere by the exponential map (exact for small total deflections, keeps the
  second moments for large ones); no lateral displacement within a step.
- Deposits sit at step midpoints (``dx`` = ℓ, ``de`` in MeV); times follow β c along the path (ns).

Energy bookkeeping: the kinematics follow the CSDA (no range straggling; δ-ray emission does not
shorten the range). A particle that stops has its fluctuating deposits rescaled so that deposits +
δ-ray kinetic energies equal its kinetic energy exactly (fluctuations redistribute energy along the
track, as they do in reality); particles that exit, decay or interact in flight deposit the CSDA
loss on average only (thick-absorber fluctuations). The final ``track_cutoff_mev`` of a stopping
particle is dumped into its last step.

Stepping rounds: a round steps each particle up to a little beyond its straight-line distance to
the volume boundary (``PLAN_FACTOR``, ``PLAN_STEPS``), so that a long track leaving early is not
stepped to its full range; a particle still inside after its round continues in the next one
(rare). Only a stopping particle's last round is rescaled for exact energy conservation.

End of a track and what it makes (process codes of :class:`gnnu.events.Process`):

- **Leaving** ``active_volume``: the last step is cut at the boundary; ``end_pos`` on the boundary.
  Particles born outside the volume are not transported.
- **Decays** (PDG 2024 lifetimes): π± → μ±ν (in flight, and π+ at rest: T_μ = 4.12 MeV);
  K± → μ±ν (63.56 %) or π±π0 (20.67 %), the other modes folded in proportionally; μ± → Michel e±
  with x = E/E_max from dN/dx ∝ x²(3 − 2x), E_max = (m_μ² + m_e²)/2m_μ = 52.83 MeV, isotropic in the
  muon frame (neutrinos of μ decay are not recorded; the bound-muon spectrum distortion is ignored).
  Products are boosted from the parent frame, start at the decay point, at the decay time.
- **Stopped μ−** form a muonic atom: with ``material.muon_capture_fraction`` they are captured
  (argon ≈ 0.75) after an Exp(``material.muon_minus_lifetime_ns``) delay, emitting
  Poisson(``muon_capture_neutrons_mean``) neutrons with evaporation spectra T·exp(−T/θ) and, with
  ``muon_capture_gamma_probability``, one photon of exponential energy (process CAPTURE); otherwise
  they decay (Michel e−) after the same delay.
- **Stopped π−** are absorbed at once (nuclear star, process CAPTURE): 2 + Poisson nucleons (the
  first a neutron) share m_π minus the separation energy of each, isotropically.
- **Stopped K−** decay like K+ (in reality they are captured; rare in beam events).
- **Hadronic interactions** of π± and p (λ(T) described in :func:`gnnu.sim.material.interaction_length`;
  K± do not interact): pions scatter elastically (a kink: dσ/dt ∝ exp(−b|t|), argon recoil energy
  |t|/2M_A removed), are absorbed (2 + Poisson nucleons, the first a proton for π+ and a neutron
  for π−, sharing T + m_π), exchange their charge (a π0 with the elastic kinematics) or interact
  inelastically; protons scatter elastically or inelastically. Inelastic: the leading hadron keeps a
  U(lo, hi) fraction of T; the rest, less the masses of Poisson(rate·ΔE) extra pions (charge
  +, −, 0 equally likely) and the separation energy of 1 + Poisson knocked-out nucleons (protons with
  probability Z/A), is shared among the products by a flat Dirichlet; directions are drawn around
  the incoming direction with a Fisher–von Mises spread of transverse scale ``hadron_pt_mev``.
  Momentum is not conserved (the nucleus takes the balance); continuing hadrons are new particles
  (process HADRONIC). All probabilities and parameters are named fields of the ``transport`` config.
- **Neutrons** leave no ionisation. With ``neutron_recoil_probability`` one proton recoil occurs at an
  Exp(``neutron_recoil_mean_free_path_cm``) distance along the neutron's line of flight (if still
  inside the volume) with T_p = U(0, ``neutron_recoil_max_fraction``)·T_n at cos θ = √(T_p/T_n)
  (n–p elastic kinematics), returned as a HADRONIC secondary; the neutron's history ends there.
  Otherwise it leaves along a straight line (``end_pos`` on the boundary).
- Antiprotons are transported as protons (no annihilation).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from ..events import Process
from .._jit import jit
from . import material as mat
from .constants import AMU_MEV, C_CM_PER_NS, HIGHLAND_MEV, K_BETHE, highland_log_term
from .directions import rotate, turn_one
from .pdg import MASS_GEV
from .records import Deposits, ParticleBatch, StageOutput

ME = mat.ELECTRON_MASS_MEV
M_MU, M_PI, M_PI0, M_K, M_P, M_N = (MASS_GEV[c] * 1e3 for c in (13, 211, 111, 321, 2212, 2112))
#: Lifetimes (PDG 2024): τ in ns and cτ in cm of μ±, π±, K± (index = table species).
TAU_NS = np.array([np.inf, 2196.9811, 26.033, 12.380, np.inf])
CTAU_CM = TAU_NS * C_CM_PER_NS
#: K± → μ±ν (63.56 %) vs π±π0 (20.67 %); the other modes folded in proportionally.
K_TO_MU_NU = 0.6356 / (0.6356 + 0.2067)
MICHEL_EMAX_MEV = (M_MU * M_MU + ME * ME) / (2.0 * M_MU)
#: Above κ = ξ/Tmax = 10 energy-loss fluctuations are Gaussian (Vavilov → Gauss limit).
KAPPA_GAUSS = 10.0
#: A stepping round covers PLAN_FACTOR × the straight-line distance to the boundary + PLAN_STEPS
#: steps (a numerical choice: tracks that leave are not stepped to their full range).
PLAN_FACTOR, PLAN_STEPS = 1.1, 10

_TRACK_CODES = (13, 211, 321, 2212)                  # |pdg| handled as charged tracks
#: Table species of each |pdg| (index; larger codes map onto the last, _UNKNOWN, entry):
#: _NEUTRON for neutrons, _UNKNOWN for codes not transported.
_NEUTRON, _UNKNOWN = -1, -2
_SPECIES_OF = np.full(max(_TRACK_CODES + (2112,)) + 2, _UNKNOWN, np.intp)
_SPECIES_OF[list(_TRACK_CODES)] = [mat.SPECIES_OF_PDG[c] for c in _TRACK_CODES]
_SPECIES_OF[2112] = _NEUTRON
_PROTON_SPECIES = mat.SPECIES_OF_PDG[2212]
_STOP, _DECAY, _INTERACT = 0, 1, 2
_MICHEL_X = np.linspace(0.0, 1.0, 2001)
_MICHEL_CDF = 2.0 * _MICHEL_X ** 3 - _MICHEL_X ** 4   # ∫ 2x²(3 − 2x) dx


class _Context:
    """What one :func:`propagate` call needs: config pieces, tables, RNG, output collectors."""

    def __init__(self, config, rng: np.random.Generator):
        self.material = config.material
        self.tr = config.transport
        self.tab = mat.tables(config.material, config.transport)
        self.lo = config.active_volume.lo
        self.hi = config.active_volume.hi
        self.rng = rng
        self.xi_per_cm = 0.5 * K_BETHE * config.material.z_over_a * config.material.density_g_cm3
        self.deposits: list[Deposits] = []
        self.secondaries: list[tuple] = []       # (pdg, pos, mom_mev, time, parent, process)

    def emit(self, pdg, pos, mom_mev, time, parent, process: Process):
        """Record new particles: ``pdg`` (code or [n]), ``pos`` [n, 3], momenta ``mom_mev`` [n, 3]
        in MeV/c (converted to GeV/c at the end), ``time`` [n], ``parent`` [n]."""
        n = len(mom_mev)
        if n:
            pdg = np.full(n, pdg, np.int32) if np.ndim(pdg) == 0 else pdg
            self.secondaries.append((pdg, pos, mom_mev, time, parent,
                                     np.full(n, int(process), np.int8)))

    def secondary_batch(self) -> ParticleBatch:
        if not self.secondaries:
            return ParticleBatch.empty()
        pdg, pos, mom, time, parent, process = (np.concatenate(c) for c in zip(*self.secondaries))
        return ParticleBatch(pdg, pos, mom * 1e-3, time, None, parent, process)


def propagate(batch: ParticleBatch, detector, rng: np.random.Generator) -> StageOutput:
    """Transport μ±, π±, p, K± and neutrons of ``batch`` (all at once, vectorised) through the
    detector's material until they stop, decay, interact or leave ``detector.config.active_volume``.

    Deposits (cm, MeV, ns) carry ``track = batch.track_id`` of the particle that made them;
    secondaries (``parent`` = the creator's track_id, ``process`` = DECAY / HADRONIC / DELTA /
    CAPTURE; momenta GeV/c) are returned for the driver to register and send on. ``end_pos`` [n, 3]
    (cm) is where each input particle stopped, decayed, interacted or left the volume. The physics
    and its simplifications are described in the module docstring.
    """
    ctx = _Context(detector.config, rng)
    sp = _SPECIES_OF[np.minimum(np.abs(batch.pdg), len(_SPECIES_OF) - 1)]
    if (sp == _UNKNOWN).any():
        codes = sorted({int(c) for c in batch.pdg[sp == _UNKNOWN]})
        raise ValueError(f"tracks.propagate cannot transport pdg {codes}")
    neutron = sp == _NEUTRON
    if neutron.all():
        end_pos = _neutrons(ctx, batch)
    elif not neutron.any():
        end_pos = _charged(ctx, batch, sp)
    else:
        end_pos = np.empty((len(batch), 3))
        end_pos[neutron] = _neutrons(ctx, batch.select(neutron))
        end_pos[~neutron] = _charged(ctx, batch.select(~neutron), sp[~neutron])
    return StageOutput(Deposits.concat(ctx.deposits), ctx.secondary_batch(), end_pos)


# --------------------------------------------------------------------------- geometry helpers

def _norm(v: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->i", v, v))


def _unit(v: np.ndarray, norm: np.ndarray | None = None) -> np.ndarray:
    """Unit vectors of ``v`` [n, 3] (of lengths ``norm`` [n] if known); zero vectors become +z."""
    n = _norm(v) if norm is None else norm
    out = v / np.where(n > 0, n, 1.0)[:, None]
    zero = n == 0
    if zero.any():
        out[zero] = (0.0, 0.0, 1.0)
    return out


def _rotate(d: np.ndarray, cos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors at polar angle arccos(``cos``) around ``d`` [n, 3], uniform azimuth."""
    return rotate(d, cos, rng.random(len(d)) * (2.0 * math.pi))


def _isotropic(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` isotropic unit vectors [n, 3]."""
    cos = rng.uniform(-1.0, 1.0, n)
    phi = rng.random(n) * (2.0 * math.pi)
    sin = np.sqrt(1.0 - cos * cos)
    return np.stack([sin * np.cos(phi), sin * np.sin(phi), cos], axis=1)


def _vmf_cos(kappa: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """cos θ of the Fisher–von Mises distribution ∝ exp(κ cos θ) (isotropic for κ → 0)."""
    u = rng.random(len(kappa))
    k = np.maximum(kappa, 1e-6)
    cos = 1.0 + np.log(u + (1.0 - u) * np.exp(-2.0 * k)) / k
    return np.minimum(np.maximum(np.where(kappa < 1e-6, 2.0 * u - 1.0, cos), -1.0), 1.0)


def _exit_distance(pos: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Distance (cm) from points ``pos`` [n, 3] inside the box along unit ``d`` to its boundary."""
    t = np.divide(np.where(d > 0, hi - pos, lo - pos), d, out=np.full(d.shape, np.inf),
                  where=d != 0)
    return np.maximum(t.min(axis=1), 0.0)


def _boost(energy: np.ndarray, q: np.ndarray, beta: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Lab momenta [n, 3] of rest-frame four-momenta (``energy``, ``q``) of parents moving with
    velocity ``beta`` [n, 3] (γ = ``gamma``)."""
    bq = np.einsum("ij,ij->i", beta, q)
    return q + beta * (gamma * gamma / (gamma + 1.0) * bq + gamma * energy)[:, None]


def _parent_motion(mass: np.ndarray, t_kin: np.ndarray, d: np.ndarray):
    """Velocity vectors β [n, 3] and γ [n] of particles of ``mass`` (MeV), T (MeV), direction d."""
    gamma = 1.0 + t_kin / mass
    beta = np.sqrt(np.clip(1.0 - 1.0 / (gamma * gamma), 0.0, None))
    return beta[:, None] * d, gamma


def _two_body(mass, m1, m2, beta, gamma, rng):
    """Lab momenta (MeV/c) [n, 3] of an isotropic two-body decay mass → m1 + m2 in flight."""
    n = len(gamma)
    mass, m1, m2 = (np.broadcast_to(np.asarray(x, np.float64), (n,)) for x in (mass, m1, m2))
    pstar = np.sqrt(np.clip((mass ** 2 - (m1 + m2) ** 2) * (mass ** 2 - (m1 - m2) ** 2), 0, None)
                    ) / (2.0 * mass)
    q = pstar[:, None] * _isotropic(n, rng)
    return (_boost(np.sqrt(pstar ** 2 + m1 ** 2), q, beta, gamma),
            _boost(np.sqrt(pstar ** 2 + m2 ** 2), -q, beta, gamma))


def _mass_of(pdg: np.ndarray) -> np.ndarray:
    """Masses (MeV) of the hadrons that interactions emit (p, n, π±, π0)."""
    a = np.abs(pdg)
    return np.where(a == 2212, M_P, np.where(a == 2112, M_N, np.where(a == 211, M_PI, M_PI0)))


# --------------------------------------------------------------------------- charged tracks

def _compete(tab, sp, r0, above, length, fate, idx, table: str, residual_all, code) -> None:
    """Let a process (decay in flight: ``proper_cm``; hadronic interaction: ``depth``) cut the
    paths of particles ``idx`` short, in place. ``residual_all`` [m] is the particle's table value
    at its start minus the sampled amount (cτ·Exp or interaction lengths); the process happens
    where the table value falls to that residual, if that lies before ``length``."""
    if not len(idx):
        return
    s_idx = sp[idx]
    residual = residual_all[idx]
    cut = np.where(above[idx], tab.at_cutoff(table)[s_idx], 0.0)
    hit = residual > cut
    if hit.any():
        i = idx[hit]
        s_at = r0[i] - tab.at("range_cm", s_idx[hit], tab.energy_from(table, s_idx[hit], residual[hit]))
        closer = s_at < length[i]
        length[i[closer]], fate[i[closer]] = s_at[closer], code


def _charged(ctx: _Context, b: ParticleBatch, sp: np.ndarray) -> np.ndarray:
    """Transport the charged particles of ``b`` (table species ``sp`` [m]); returns their end
    positions [m, 3]."""
    tab, tr, rng = ctx.tab, ctx.tr, ctx.rng
    m = len(b)
    mass = tab.mass_mev[sp]
    p_gev = _norm(b.mom)
    p = p_gev * 1e3
    t0 = np.sqrt(p * p + mass * mass) - mass
    d0 = _unit(b.mom, p_gev)
    r0, proper_all, depth_all = tab.at_many(("range_cm", "proper_cm", "depth"), sp, t0)
    above = t0 > tr.track_cutoff_mev
    length = r0 - np.where(above, tab.at_cutoff("range_cm")[sp], 0.0)

    # Fate: stop, decay in flight or interact, whichever comes first (all within the CSDA).
    fate = np.full(m, _STOP)
    draws = rng.standard_exponential((2, m))
    ctau = CTAU_CM[sp]
    _compete(tab, sp, r0, above, length, fate, np.flatnonzero(np.isfinite(ctau)),
             "proper_cm", proper_all - ctau * draws[0], _DECAY)
    _compete(tab, sp, r0, above, length, fate, np.flatnonzero(tab.interacts[sp]),
             "depth", depth_all - draws[1], _INTERACT)

    # Step in rounds: each round plans up to a little beyond the straight-line exit distance
    # (long tracks that leave early are not stepped to their full range); rarely > 1 round.
    pos, d, time = b.pos.copy(), d0.copy(), b.time.copy()
    t_end = t0.copy()                     # kinetic energy where the particle is now (MeV)
    done_s = np.zeros(m)
    inside = ((pos >= ctx.lo) & (pos <= ctx.hi)).all(axis=1)
    exited = ~inside
    todo = inside & (length > 0)
    while todo.any():
        idx = np.flatnonzero(todo)
        reach = _exit_distance(pos[idx], d[idx], ctx.lo, ctx.hi)
        s1 = np.minimum(length[idx], done_s[idx] + PLAN_FACTOR * reach + PLAN_STEPS * tr.step_cm)
        final = s1 >= length[idx]
        walk = _walk(ctx, sp[idx], r0[idx], done_s[idx], s1, t_end[idx], pos[idx], d[idx],
                     time[idx], final & (fate[idx] == _STOP), b.track_id[idx])
        pos[idx], d[idx], time[idx], t_end[idx], exited[idx] = walk
        done_s[idx] = s1
        todo[idx] = ~exited[idx] & ~final

    alive = ~exited
    decaying = alive & ((fate == _DECAY) | ((fate == _STOP) & (sp != _PROTON_SPECIES)))
    if decaying.any():
        i = np.flatnonzero(decaying)
        _decay(ctx, b.pdg[i], sp[i], pos[i], d[i], np.where(fate[i] == _STOP, 0.0, t_end[i]),
               time[i], b.track_id[i])
    interacting = alive & (fate == _INTERACT)
    if interacting.any():
        i = np.flatnonzero(interacting)
        _interact(ctx, b.pdg[i], pos[i], d[i], t_end[i], time[i], b.track_id[i])
    return pos


def _walk(ctx: _Context, sp, r0, s0, s1, e0, pos, d0, t0, stopping, track_id):
    """Step particles from path length ``s0`` to ``s1`` (cm, measured from their birth).

    ``r0``: their initial CSDA ranges; ``e0``, ``pos``, ``d0``, ``t0``: kinetic energy (MeV),
    position, direction, time at s0;
    ``stopping``: the particle stops at s1 (its remaining energy goes into the last step).
    Appends deposits and δ-rays to ``ctx``; returns (end position, end direction, end time,
    kinetic energy at the end (MeV), left-the-volume flag). Step arrays are laid out [3, n]
    (components first) so that cumulative sums run over contiguous memory.
    """
    tab, rng = ctx.tab, ctx.rng
    h = ctx.tr.step_cm
    m = len(sp)
    nst = np.maximum(np.ceil((s1 - s0) / h - 1e-9), 1).astype(np.intp)
    last = nst.cumsum() - 1
    first = last + 1 - nst
    n = int(last[-1] + 1)

    def spread(x):
        """Per-track values [..., m] → per-step values [..., n] (broadcastable if m = 1)."""
        return x if m == 1 else x.repeat(nst, axis=-1)

    trk = np.arange(m).repeat(nst)
    k = np.arange(n) - spread(first)
    s_lo = spread(s0) + k * h
    s_hi = np.minimum(s_lo + h, spread(s1))
    uniform = (sp == sp[0]).all()
    spk = int(sp[0]) if uniform else spread(sp)   # a scalar saves gathers
    massk = tab.mass_mev[spk]
    # Kinetic energies at the step starts [n] and at s1 [m], in one table query.
    t_q = tab.energy_from("range_cm", spk if uniform else np.concatenate([spk, sp]),
                          np.concatenate([spread(r0) - s_lo, r0 - s1]))
    t_lo = t_q[:n]
    t_lo[first] = e0
    t_hi = np.empty(n)
    t_hi[:-1] = t_lo[1:]
    t_hi[last] = np.where(stopping, 0.0, t_q[n:])
    gamma = 1.0 + 0.5 * (t_lo + t_hi) / massk
    bg2 = gamma * gamma - 1.0
    beta2 = bg2 / (gamma * gamma)

    # Multiple scattering: Highland variance increments dθ₀²/ds·ℓ at the step midpoint (exact
    # θ₀²(ℓ) for a particle's first step, where the derivative is singular).
    x0 = ctx.material.radiation_length_cm
    ell = s_hi - s_lo
    log_term = highland_log_term(np.maximum(0.5 * (s_lo + s_hi), 1e-12) / (x0 * beta2))
    growth = ell / x0 * log_term * (log_term + 0.076)         # 0.076 = 2 × HIGHLAND_LOG
    born = first[s0 == 0]
    log_first = highland_log_term(np.maximum(ell[born], 1e-12) / (x0 * beta2[born]))
    growth[born] = ell[born] / x0 * log_first * log_first
    theta = HIGHLAND_MEV * gamma / (massk * bg2) * np.sqrt(np.maximum(growth, 0.0))
    noise = rng.standard_normal((3, n))           # two scattering kicks, one energy-loss variate
    core_noise = noise[2]
    dirs, p_lo, p_hi, end_dir, k_exit = _scatter(first, nst, ell, theta, noise, d0, pos, ctx.lo,
                                                 ctx.hi)

    # Leaving the volume: cut the first step that ends outside at the boundary, drop the rest.
    exited = k_exit < nst
    if exited.any():
        e = first[exited] + k_exit[exited]
        ell[e] = np.minimum(_exit_distance(p_lo[:, e].T, dirs[:, e].T, ctx.lo, ctx.hi), ell[e])
        p_hi[:, e] = p_lo[:, e] + dirs[:, e] * ell[e]
        t_hi[e] = tab.energy_from("range_cm", sp[exited], r0[exited] - s_lo[e] - ell[e])
        end_dir[:, exited] = dirs[:, e]
        keep = k <= spread(k_exit)
        trk, ell, t_lo, t_hi, gamma, bg2, beta2, core_noise = (
            x[keep] for x in (trk, ell, t_lo, t_hi, gamma, bg2, beta2, core_noise))
        if np.ndim(massk):
            massk = massk[keep]
        dirs, p_lo, p_hi = dirs[:, keep], p_lo[:, keep], p_hi[:, keep]
        nst = np.where(exited, k_exit + 1, nst)
        first = nst.cumsum() - nst
        last = first + nst - 1
    stop = stopping & ~exited

    dt = ell / (np.sqrt(beta2) * C_CM_PER_NS)
    t_step = dt.cumsum() - dt
    t_step += spread(t0 - t_step[first])

    de, (j, e_delta) = _energy_loss(ctx, t_lo - t_hi, ell, gamma, bg2, beta2, massk, core_noise)
    # A stopping particle deposits exactly its kinetic energy (deposits + δ-ray energies).
    if stop.any():
        cont = np.add.reduceat(de, first)
        target = t_lo[first] - np.bincount(trk[j], e_delta, minlength=m)
        ok = stop & (cont > 0)
        scale = np.ones(m)
        scale[ok] = np.maximum(target[ok], 0.0) / cont[ok]
        de *= spread(scale)
    mid = (p_lo + 0.5 * dirs * ell).T
    deposits = Deposits(pos=mid, de=de, dx=ell, time=t_step + 0.5 * dt, track=track_id[trk],
                        step=(dirs * ell).T)
    ctx.deposits.append(deposits if ell.all() else deposits.select(ell > 0))
    if len(j):
        frac = rng.random(len(j))
        p_delta = np.sqrt(e_delta * (e_delta + 2.0 * ME))
        ratio = ME / (massk[j] if np.ndim(massk) else massk)
        tmax = 2.0 * ME * bg2[j] / (1.0 + 2.0 * gamma[j] * ratio + ratio * ratio)
        cos = np.clip(e_delta / p_delta * np.sqrt(tmax * (tmax + 2.0 * ME)) / tmax, -1.0, 1.0)
        dj = dirs[:, j].T
        ctx.emit(11, p_lo[:, j].T + (frac * ell[j])[:, None] * dj,
                 p_delta[:, None] * _rotate(dj, cos, rng), t_step[j] + frac * dt[j],
                 track_id[trk[j]], Process.DELTA)
    return p_hi[:, last].T, end_dir.T, t_step[last] + dt[last], t_hi[last], exited


@jit
def _cos_sinc(a2: float) -> tuple[float, float]:
    """cos a and sin(a)/a from a² (Taylor series where a < 0.5, exact elsewhere)."""
    if a2 > 0.25:
        a = math.sqrt(a2)
        return math.cos(a), math.sin(a) / a
    return (1.0 - 0.5 * a2 * (1.0 - a2 / 12.0 * (1.0 - a2 / 30.0)),
            1.0 - a2 / 6.0 * (1.0 - a2 / 20.0 * (1.0 - a2 / 42.0)))


@jit
def _scatter(first, nst, ell, theta, noise, d0, pos, lo, hi):
    """Directions and positions of the steps of every track (compiled).

    Track i's steps are ``first[i]`` … + ``nst[i]`` of the step arrays: lengths ``ell`` (cm),
    Highland widths ``theta`` (rad), two standard normals per step in ``noise[:2]``. A step's
    direction is the exponential map, in the frame of the track's start direction ``d0[i]``, of
    the summed projected deflections before it; the track starts at ``pos[i]``. Returns (step
    directions [3, n], step starts and ends [3, n] each, direction after the last step [3, m],
    index within its track of the first step ending outside the box lo–hi, ``nst`` if none
    [m]).
    """
    m = len(first)
    n = len(ell)
    dirs = np.empty((3, n))
    p_lo = np.empty((3, n))
    p_hi = np.empty((3, n))
    end_dir = np.empty((3, m))
    k_exit = nst.copy()
    for i in range(m):
        wx, wy, wz = d0[i, 0], d0[i, 1], d0[i, 2]
        x, y, z = pos[i, 0], pos[i, 1], pos[i, 2]
        a0 = 0.0
        a1 = 0.0
        for k in range(nst[i] + 1):                  # (k = nst: the direction at the end)
            cos, sinc = _cos_sinc(a0 * a0 + a1 * a1)
            dx, dy, dz = turn_one(wx, wy, wz, cos, sinc * a0, sinc * a1)
            if k == nst[i]:
                end_dir[0, i], end_dir[1, i], end_dir[2, i] = dx, dy, dz
                break
            j = first[i] + k
            dirs[0, j], dirs[1, j], dirs[2, j] = dx, dy, dz
            p_lo[0, j], p_lo[1, j], p_lo[2, j] = x, y, z
            x += dx * ell[j]
            y += dy * ell[j]
            z += dz * ell[j]
            p_hi[0, j], p_hi[1, j], p_hi[2, j] = x, y, z
            if k_exit[i] == nst[i] and not (lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1]
                                            and lo[2] <= z <= hi[2]):
                k_exit[i] = k
            a0 += noise[0, j] * theta[j]
            a1 += noise[1, j] * theta[j]
    return dirs, p_lo, p_hi, end_dir, k_exit


def _energy_loss(ctx: _Context, mean, ell, gamma, bg2, beta2, mass, normal):
    """Fluctuating ionisation per step and explicit δ-rays (see the module docstring).

    ``mean`` [n]: the Bethe–Bloch mean loss of each step (MeV); ``ell`` step lengths (cm);
    ``gamma``, ``bg2`` (β²γ²), ``beta2``, ``mass`` (MeV): the particle at each step; ``normal``
    [n]: standard normal variates for the Gaussian part. Returns (deposited energy [n] MeV,
    (step index [k], δ-ray kinetic energy [k] MeV)).
    """
    rng, tr = ctx.rng, ctx.tr
    tcut = tr.delta_ray_threshold_mev
    nc = tr.fluctuation_collisions
    xi = ctx.xi_per_cm * ell / beta2
    ratio = ME / mass
    tmax = 2.0 * ME * bg2 / (1.0 + 2.0 * gamma * ratio + ratio * ratio)
    inv_tmax = 1.0 / tmax
    landau = (xi < KAPPA_GAUSS * tmax) & (xi > 0)
    span = np.where(landau, nc / np.where(landau, xi, 1.0), 0.0)     # 1/T1 − 1/Tmax
    t1 = 1.0 / (inv_tmax + span)
    # Means of the explicitly sampled collisions: ≤ tcut (no spin term), > tcut (spin-0 term).
    mean_soft = xi * np.log(np.maximum(np.minimum(tmax, tcut) / t1, 1.0))
    mean_hard = xi * np.maximum(np.log(np.maximum(tmax / tcut, 1.0))
                                - beta2 * np.maximum(tmax - tcut, 0.0) * inv_tmax, 0.0)
    core_sd = np.sqrt(xi * t1 * (1.0 - 0.5 * beta2))
    de = mean - mean_soft - mean_hard + core_sd * normal
    np.maximum(de, 0.0, out=de)

    # Collisions above T1: Poisson(nc) per Landau-regime step, drawn as one Poisson(nc · n)
    # number spread uniformly over all n steps (the same process), thinned to Landau steps.
    n = len(mean)
    owner = (rng.random(rng.poisson(nc * n)) * n).astype(np.intp)
    if not landau.all():
        owner = owner[landau[owner]]
    energy = 1.0 / (inv_tmax[owner] + rng.random(len(owner)) * span[owner])
    de += np.bincount(owner, energy, minlength=len(mean))
    hard = np.flatnonzero(energy > tcut)
    j, e_hard = owner[hard], energy[hard]
    np.subtract.at(de, j, e_hard)
    accept = rng.random(len(j)) < 1.0 - beta2[j] * e_hard * inv_tmax[j]
    return de, (j[accept], e_hard[accept])


# --------------------------------------------------------------------------- ends of tracks

def _decay(ctx: _Context, pdg, sp, pos, d, t_kin, time, parent):
    """Decays (in flight where ``t_kin`` > 0, else at rest) and μ−/π− captures at rest."""
    rng, tr, material = ctx.rng, ctx.tr, ctx.material
    n = len(pdg)
    apdg, sign = np.abs(pdg), np.sign(pdg)
    at_rest = t_kin <= 0
    mass = ctx.tab.mass_mev[sp]
    beta, gamma = _parent_motion(mass, t_kin, d)
    tau = TAU_NS[sp].copy()
    mu_minus_rest = at_rest & (pdg == 13)
    if mu_minus_rest.any():
        if material.muon_minus_lifetime_ns is None or material.muon_capture_fraction is None:
            raise ConfigError(f"material '{material.name}' needs muon_minus_lifetime_ns and "
                              f"muon_capture_fraction to handle stopped μ−")
        tau[mu_minus_rest] = material.muon_minus_lifetime_ns
    u = rng.random(n)
    time = time + np.where(at_rest & (pdg != -211), tau * rng.standard_exponential(n), 0.0)

    # μ±: Michel e± unless a stopped μ− is captured.
    captured = mu_minus_rest & (u < (material.muon_capture_fraction or 0.0))
    michel = (apdg == 13) & ~captured
    if michel.any():
        i = np.flatnonzero(michel)
        energy = np.maximum(np.interp(rng.random(len(i)), _MICHEL_CDF, _MICHEL_X)
                            * MICHEL_EMAX_MEV, ME * (1 + 1e-9))
        q = np.sqrt(energy ** 2 - ME ** 2)[:, None] * _isotropic(len(i), rng)
        ctx.emit(11 * sign[i], pos[i], _boost(energy, q, beta[i], gamma[i]), time[i], parent[i],
                 Process.DECAY)
    if captured.any():
        i = np.flatnonzero(captured)
        nn = rng.poisson(tr.muon_capture_neutrons_mean, len(i))
        j = np.repeat(i, nn)
        t_n = rng.gamma(2.0, tr.muon_capture_neutron_temperature_mev, len(j))
        ctx.emit(2112, pos[j], np.sqrt(t_n * (t_n + 2 * M_N))[:, None] * _isotropic(len(j), rng),
                 time[j], parent[j], Process.CAPTURE)
        g = i[rng.random(len(i)) < tr.muon_capture_gamma_probability]
        e_g = rng.exponential(tr.muon_capture_gamma_mev, len(g))
        ctx.emit(22, pos[g], e_g[:, None] * _isotropic(len(g), rng), time[g], parent[g],
                 Process.CAPTURE)

    # π±: μν, except stopped π− (absorbed: nuclear star).
    absorbed = at_rest & (pdg == -211)
    if absorbed.any():
        i = np.flatnonzero(absorbed)
        _star(ctx, np.zeros(len(i)), np.full(len(i), False), pos[i], d[i], time[i], parent[i],
              forward=False, process=Process.CAPTURE)
    to_mu = ((apdg == 211) & ~absorbed) | ((apdg == 321) & (u < K_TO_MU_NU))
    if to_mu.any():
        i = np.flatnonzero(to_mu)
        q_mu, q_nu = _two_body(mass[i], M_MU, 0.0, beta[i], gamma[i], rng)
        ctx.emit(-13 * sign[i], pos[i], q_mu, time[i], parent[i], Process.DECAY)
        ctx.emit(14 * sign[i], pos[i], q_nu, time[i], parent[i], Process.DECAY)
    to_pipi = (apdg == 321) & ~to_mu
    if to_pipi.any():
        i = np.flatnonzero(to_pipi)
        q_pi, q_pi0 = _two_body(M_K, M_PI, M_PI0, beta[i], gamma[i], rng)
        ctx.emit(211 * sign[i], pos[i], q_pi, time[i], parent[i], Process.DECAY)
        ctx.emit(111, pos[i], q_pi0, time[i], parent[i], Process.DECAY)


def _interact(ctx: _Context, pdg, pos, d, t_kin, time, parent):
    """Hadronic interactions of π± and p in flight (see the module docstring)."""
    rng, tr = ctx.rng, ctx.tr
    n = len(pdg)
    u = rng.random(n)
    pion = np.abs(pdg) == 211
    c1 = np.where(pion, tr.pion_elastic_fraction, tr.proton_elastic_fraction)
    c2 = c1 + np.where(pion, tr.pion_absorption_fraction, 0.0)
    c3 = c2 + np.where(pion, tr.pion_charge_exchange_fraction, 0.0)
    elastic, absorb, cex = u < c1, (u >= c1) & (u < c2), (u >= c2) & (u < c3)
    inelastic = u >= c3
    if (elastic | cex).any():
        i = np.flatnonzero(elastic | cex)
        mass = _mass_of(pdg[i])
        p_gev = np.sqrt(t_kin[i] * (t_kin[i] + 2 * mass)) * 1e-3
        t_abs = rng.standard_exponential(len(i)) / tr.elastic_slope_per_gev2      # |t|, GeV²
        cos = np.clip(1.0 - t_abs / (2.0 * np.maximum(p_gev, 1e-9) ** 2), -1.0, 1.0)
        t_new = np.maximum(t_kin[i] - t_abs * 1e6 / (2.0 * ctx.material.A * AMU_MEV), 0.0)
        new_pdg = np.where(cex[i], 111, pdg[i])
        p_new = np.sqrt(t_new * (t_new + 2 * _mass_of(new_pdg)))
        ctx.emit(new_pdg, pos[i], p_new[:, None] * _rotate(d[i], cos, rng), time[i], parent[i],
                 Process.HADRONIC)
    if absorb.any():
        i = np.flatnonzero(absorb)
        _star(ctx, t_kin[i], pdg[i] == 211, pos[i], d[i], time[i], parent[i], forward=True,
              process=Process.HADRONIC)
    if inelastic.any():
        i = np.flatnonzero(inelastic)
        _inelastic(ctx, pdg[i], pos[i], d[i], t_kin[i], time[i], parent[i])


def _emit_shared(ctx: _Context, pdg, owner, energy, pos, d, time, parent, forward, process):
    """Emit hadrons ``pdg`` [k] of events ``owner`` [k] sharing each event's kinetic ``energy``
    (MeV) by a flat Dirichlet; directions forward-peaked around ``d`` (von Mises, transverse
    scale ``hadron_pt_mev``) or isotropic."""
    if not len(pdg):
        return
    rng = ctx.rng
    w = rng.standard_exponential(len(pdg))
    t = energy[owner] * w / np.bincount(owner, w, minlength=len(energy))[owner]
    p = np.sqrt(t * (t + 2.0 * _mass_of(pdg)))
    kappa = p / ctx.tr.hadron_pt_mev if forward else np.zeros(len(p))
    ctx.emit(pdg, pos[owner], p[:, None] * _rotate(d[owner], _vmf_cos(kappa, rng), rng),
             time[owner], parent[owner], process)


def _nucleon_codes(n: int, ctx: _Context) -> np.ndarray:
    """Random nucleon codes: proton with probability Z/A of the material, else neutron."""
    return np.where(ctx.rng.random(n) < ctx.material.z_over_a, 2212, 2112)


def _star(ctx: _Context, t_kin, pi_plus, pos, d, time, parent, forward, process):
    """Pion absorption: 2 + Poisson nucleons (first: p for π+, n for π−) share T + m_π minus
    their separation energies."""
    tr, rng = ctx.tr, ctx.rng
    available = t_kin + M_PI
    count = 2 + rng.poisson(tr.absorption_extra_nucleons_mean, len(t_kin))
    count = np.minimum(count, np.floor(available / tr.nucleon_separation_mev)).astype(np.int64)
    owner = np.repeat(np.arange(len(t_kin)), count)
    codes = _nucleon_codes(len(owner), ctx)
    firsts = np.cumsum(count) - count
    has = count > 0
    codes[firsts[has]] = np.where(pi_plus[has], 2212, 2112)
    _emit_shared(ctx, codes, owner, available - count * tr.nucleon_separation_mev, pos, d, time,
                 parent, forward, process)


def _inelastic(ctx: _Context, pdg, pos, d, t_kin, time, parent):
    """Inelastic π±/p–nucleus interaction: leading hadron + extra pions + knocked-out nucleons."""
    tr, rng = ctx.tr, ctx.rng
    n = len(pdg)
    lo, hi = tr.inelastic_leading_fraction
    t_lead = t_kin * rng.uniform(lo, hi, n)
    rest = t_kin - t_lead
    sep = tr.nucleon_separation_mev
    n_nuc = 1 + rng.poisson(tr.inelastic_extra_nucleons_mean, n)
    n_pi = rng.poisson(tr.inelastic_pions_per_gev * rest * 1e-3)
    n_pi = np.minimum(n_pi, np.floor(np.maximum(rest - n_nuc * sep, 0.0) / M_PI)).astype(np.int64)
    n_nuc = np.minimum(n_nuc, np.floor(rest / sep)).astype(np.int64)
    shared = rest - n_pi * M_PI - n_nuc * sep
    mass = _mass_of(pdg)
    p_lead = np.sqrt(t_lead * (t_lead + 2 * mass))
    cos = _vmf_cos(p_lead / tr.hadron_pt_mev, rng)
    ctx.emit(pdg, pos, p_lead[:, None] * _rotate(d, cos, rng), time, parent, Process.HADRONIC)
    owner = np.concatenate([np.repeat(np.arange(n), n_pi), np.repeat(np.arange(n), n_nuc)])
    pions = np.array([211, -211, 111])[rng.integers(0, 3, int(n_pi.sum()))]
    codes = np.concatenate([pions, _nucleon_codes(int(n_nuc.sum()), ctx)])
    _emit_shared(ctx, codes, owner, shared, pos, d, time, parent, True, Process.HADRONIC)


# --------------------------------------------------------------------------- neutrons

def _neutrons(ctx: _Context, b: ParticleBatch) -> np.ndarray:
    """Neutrons: at most one proton recoil each, no ionisation; returns end positions [n, 3]."""
    rng, tr = ctx.rng, ctx.tr
    n = len(b)
    d = _unit(b.mom)
    p = _norm(b.mom) * 1e3
    t_n = np.sqrt(p * p + M_N * M_N) - M_N
    inside = ((b.pos >= ctx.lo) & (b.pos <= ctx.hi)).all(axis=1)
    reach = np.where(inside, _exit_distance(b.pos, d, ctx.lo, ctx.hi), 0.0)
    dist = rng.exponential(tr.neutron_recoil_mean_free_path_cm, n)
    recoil = (rng.random(n) < tr.neutron_recoil_probability) & (dist < reach) & (t_n > 0)
    frac = rng.uniform(0.0, tr.neutron_recoil_max_fraction, n)
    end = b.pos + np.where(recoil, dist, reach)[:, None] * d
    if recoil.any():
        i = np.flatnonzero(recoil)
        t_p = frac[i] * t_n[i]
        beta_n = p[i] / (t_n[i] + M_N)
        ctx.emit(2212, end[i],
                 np.sqrt(t_p * (t_p + 2 * M_P))[:, None] * _rotate(d[i], np.sqrt(frac[i]), rng),
                 b.time[i] + dist[i] / (beta_n * C_CM_PER_NS), b.track_id[i], Process.HADRONIC)
    return end
