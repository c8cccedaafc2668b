"""Cosmic-ray muons: the background class (flavour 4) of a surface detector, alone or overlaid.

:func:`generate` makes a cosmic-only event (one muon, truth flavour ``COSMIC``);
:func:`overlay` makes Poisson(``cosmics.overlay_mean``) muons at random times in the readout
window, to be added to a neutrino event's primaries. The model, with every number from the
detector's ``cosmics`` section (:class:`gnnu.detectors.scintillator.Cosmics`):

- **Direction**: downward (y is up), azimuth uniform, zenith angle θ with intensity per solid angle
  I(θ) ∝ cos²θ (PDG review "Cosmic rays": the sea-level muon intensity ≈ cos²θ at ~3 GeV), for
  θ ≤ ``max_zenith_deg`` (:func:`sample_directions`).
- **Entry**: ``box`` — rays of those directions uniform over the plane perpendicular to them,
  kept where they cross the active volume, so every face receives muons in proportion to its
  projected area (the zenith distribution of muons entering is then ∝ cos²θ × projected area);
  ``top`` — uniform on the top face, the flux through a horizontal surface I(θ)·cosθ, i.e.
  cosθ distributed ∝ cos³θ. Muons start on the entry face (nudged 1 µm inside).
- **Energy** (total, GeV, in [``e_min_gev``, ``e_max_gev``]): the sea-level spectrum at the
  drawn zenith angle, Gaisser's formula extended to low energies by Guan et al.
  (arXiv:1509.06176):
  dI/dE ∝ [E(1 + 3.64/(E cos^1.29 θ*))]^−2.7 · [1/(1 + 1.1 E cosθ*/115) + 0.054/(1 + 1.1 E
  cosθ*/850)], with cosθ* the curved-atmosphere correction of Chirkin (P1…P5 below). It is used
  as the *conditional* energy distribution at θ (inverse-CDF table in (cosθ, quantile)); the
  angular distribution stays the cos²θ above. No overburden model beyond the ``e_min_gev`` cut.
- **Charge**: μ+ with probability r/(1 + r), r = ``charge_ratio`` (μ+/μ− ≈ 1.25, PDG).
- **Showers**: with ``shower_probability`` a muon radiates one photon at a point uniform along its
  straight chord through the volume, with energy k = y·E from the bremsstrahlung spectrum
  dN/dy ∝ (4/3 − 4/3 y + y²)/y for k ≥ ``shower_min_energy_gev``; the photon flies along the
  muon's direction and the muon starts with E − k (energy is conserved, the muon's loss before
  that point is not modelled). The rate is a knob, not muon radiative physics (which is far rarer
  at a few GeV): it stands for the knock-ons, radiative losses and air-shower remnants that give
  real cosmic samples their occasional showers.

Truth of a cosmic-only event: flavour 4 (COSMIC), interaction 3 (OTHER), mode ``Mode.COSMIC``,
all counts 0, ``is_antinu`` −1 (undefined: not a neutrino), ``nu_pdg`` 0, ``nu_energy`` and ``y``
NaN, ``lep_energy`` the muon's total energy at entry (GeV), vertex its entry point (cm).
Cosmic-only events start at t = 0; overlaid ones at times uniform in the readout window.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..errors import GnnuError
from ..events import Flavour, Interaction, Mode, Truth
from .constants import C_CM_PER_NS
from .pdg import MASS_GEV
from .records import ParticleBatch

M_MU = MASS_GEV[13]
#: Chirkin's curved-atmosphere parameters of cosθ* (Guan et al., arXiv:1509.06176, eq. 2).
P1, P2, P3, P4, P5 = 0.102573, -0.068287, 0.958633, 0.0407253, 0.817285
#: Inverse-CDF table of ln E: nodes in cosθ, points in ln E, quantiles.
_N_COS, _N_E, _N_U = 41, 512, 257
#: Entry points are nudged this far (cm) inside the volume.
_NUDGE_CM = 1e-4


def _config(detector):
    cosmics = getattr(detector.config, "cosmics", None)
    if cosmics is None:
        raise GnnuError(f"detector '{detector.name}' ({detector.kind}) has no cosmic-ray model: "
                        f"flavour 'cosmic' needs a detector with a 'cosmics' section (e.g. nova)")
    return cosmics


def cos_theta_star(cos_theta) -> np.ndarray:
    """Chirkin's effective cosθ* (curved atmosphere) of zenith cosines ``cos_theta`` (any shape)."""
    c = np.asarray(cos_theta, np.float64)
    num = c * c + P1 * P1 + P2 * c ** P3 + P4 * c ** P5
    return np.sqrt(num / (1.0 + P1 * P1 + P2 + P4))


def spectrum(energy_gev, cos_theta) -> np.ndarray:
    """Sea-level muon intensity dI/dE (cm⁻² s⁻¹ sr⁻¹ GeV⁻¹) at total energy ``energy_gev`` and
    zenith cosine ``cos_theta`` (broadcast): Gaisser's formula with Guan et al.'s low-energy
    factor (module docstring)."""
    e = np.asarray(energy_gev, np.float64)
    cs = cos_theta_star(cos_theta)
    low = (e * (1.0 + 3.64 / (e * cs ** 1.29))) ** -2.7
    return 0.14 * low * (1.0 / (1.0 + 1.1 * e * cs / 115.0) + 0.054 / (1.0 + 1.1 * e * cs / 850.0))


@functools.lru_cache(maxsize=8)
def _energy_table(e_min: float, e_max: float) -> np.ndarray:
    """ln E (GeV) at quantiles u = 0…1 [_N_U] for each cosθ node in [0, 1] [_N_COS]."""
    log_e = np.linspace(math.log(e_min), math.log(e_max), _N_E)
    cos = np.linspace(0.0, 1.0, _N_COS)
    e = np.exp(log_e)
    density = spectrum(e[None, :], cos[:, None]) * e[None, :]          # per unit ln E
    steps = 0.5 * (density[:, 1:] + density[:, :-1]) * np.diff(log_e)
    cdf = np.concatenate([np.zeros((_N_COS, 1)), np.cumsum(steps, axis=1)], axis=1)
    cdf /= cdf[:, -1:]
    u = np.linspace(0.0, 1.0, _N_U)
    table = np.stack([np.interp(u, row, log_e) for row in cdf])
    table.flags.writeable = False
    return table


def sample_energies(cos_theta: np.ndarray, cosmics, rng: np.random.Generator) -> np.ndarray:
    """Total muon energies (GeV) [n] at zenith cosines ``cos_theta`` [n] from the spectrum's
    conditional distribution at each angle (bilinear interpolation of the inverse-CDF table)."""
    table = _energy_table(float(cosmics.e_min_gev), float(cosmics.e_max_gev))
    fc = np.clip(cos_theta, 0.0, 1.0) * (_N_COS - 1)
    i = np.minimum(fc.astype(np.int64), _N_COS - 2)
    a = fc - i
    fu = rng.random(len(fc)) * (_N_U - 1)
    j = np.minimum(fu.astype(np.int64), _N_U - 2)
    b = fu - j
    low = table[i, j] + b * (table[i, j + 1] - table[i, j])
    high = table[i + 1, j] + b * (table[i + 1, j + 1] - table[i + 1, j])
    return np.exp(low + a * (high - low))


def sample_directions(n: int, cosmics, rng: np.random.Generator, power: int = 2) -> np.ndarray:
    """``n`` downward unit vectors [n, 3] (y up) with cosθ distributed ∝ cos^power θ on
    [cos(max_zenith), 1] (``power`` 2: intensity per solid angle ∝ cos²θ; 3: flux through a
    horizontal surface) and uniform azimuth."""
    c_min = math.cos(math.radians(cosmics.max_zenith_deg))
    k = power + 1
    lo = max(c_min, 0.0) ** k
    cos = (lo + rng.random(n) * (1.0 - lo)) ** (1.0 / k)
    phi = rng.random(n) * (2.0 * math.pi)
    sin = np.sqrt(np.maximum(1.0 - cos * cos, 0.0))
    return np.stack([sin * np.cos(phi), -cos, sin * np.sin(phi)], axis=1)


def _crossing(start: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Slab test of rays ``start`` + t·``d`` [n, 3] against the box [lo, hi]: (entry t, exit t)
    [n] each; the ray misses where exit ≤ entry."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - start) / d
        t2 = (hi - start) / d
    parallel = d == 0
    outside = (start < lo) | (start > hi)
    t1 = np.where(parallel, np.where(outside, np.inf, -np.inf), t1)
    t2 = np.where(parallel, np.inf, t2)
    return np.minimum(t1, t2).max(axis=1), np.maximum(t1, t2).min(axis=1)


def _entries(n: int, detector, cosmics, rng: np.random.Generator):
    """Directions [n, 3], entry points [n, 3] (cm) and chord lengths [n] (cm) of ``n`` muons."""
    box = detector.config.active_volume
    lo, hi = box.lo, box.hi
    if cosmics.entry == "top":
        d = sample_directions(n, cosmics, rng, power=3)
        pos = np.empty((n, 3))
        r = rng.random((n, 2))
        pos[:, 0] = lo[0] + r[:, 0] * (hi[0] - lo[0])
        pos[:, 1] = hi[1]
        pos[:, 2] = lo[2] + r[:, 1] * (hi[2] - lo[2])
        t_in, t_out = _crossing(pos, d, lo, hi)
        return d, pos, t_out - np.maximum(t_in, 0.0)
    centre, radius = 0.5 * (lo + hi), 0.5 * float(np.linalg.norm(hi - lo))
    dirs, starts, chords = [], [], []
    have = 0
    while have < n:
        m = 4 * (n - have) + 8
        d = sample_directions(m, cosmics, rng)
        # orthonormal u, v ⊥ d: u = normalise(d × ŷ) (d is never vertical-up), v = d × u
        u = np.cross(d, [0.0, 1.0, 0.0])
        norm = np.linalg.norm(u, axis=1)
        u = np.where(norm[:, None] > 1e-9, u / np.maximum(norm, 1e-300)[:, None], [1.0, 0.0, 0.0])
        v = np.cross(d, u)
        rho = radius * np.sqrt(rng.random(m))
        ang = rng.random(m) * (2.0 * math.pi)
        start = (centre + (rho * np.cos(ang))[:, None] * u + (rho * np.sin(ang))[:, None] * v
                 - radius * d)
        t_in, t_out = _crossing(start, d, lo, hi)
        hit = np.flatnonzero(t_out > t_in)[: n - have]
        dirs.append(d[hit])
        starts.append(start[hit] + t_in[hit, None] * d[hit])
        chords.append(t_out[hit] - t_in[hit])
        have += len(hit)
    return np.concatenate(dirs), np.concatenate(starts), np.concatenate(chords)


def _brems_fractions(y_min: np.ndarray, y_max: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Energy fractions y ∈ [y_min, y_max] [n] from dN/dy ∝ (4/3 − 4/3 y + y²)/y: proposals
    ∝ 1/y accepted with probability (4/3 − 4/3 y + y²)/(4/3) (≥ 3/4 for y ≤ 1)."""
    y = np.empty(len(y_min))
    todo = np.arange(len(y_min))
    while len(todo):
        lo, hi = y_min[todo], y_max[todo]
        cand = lo * (hi / lo) ** rng.random(len(todo))
        ok = rng.random(len(todo)) * (4.0 / 3.0) < 4.0 / 3.0 - 4.0 / 3.0 * cand + cand * cand
        y[todo[ok]] = cand[ok]
        todo = todo[~ok]
    return y


def muons(detector, n: int, rng: np.random.Generator, t0_ns=0.0) -> ParticleBatch:
    """``n`` cosmic muons (and their shower photons) entering ``detector``'s active volume.

    ``t0_ns``: entry time (ns) of each muon (scalar or [n]). Returns a :class:`ParticleBatch`:
    the n muons first (pdg ∓13, position = entry point cm, momentum GeV/c, time ns), then the
    photons (pdg 22) of the muons that radiate one.
    """
    cosmics = _config(detector)
    if n == 0:
        return ParticleBatch.empty()
    d, entry, chord = _entries(n, detector, cosmics, rng)
    energy = sample_energies(-d[:, 1], cosmics, rng)
    r = cosmics.charge_ratio
    pdg = np.where(rng.random(n) < r / (1.0 + r), -13, 13).astype(np.int32)
    t0 = np.broadcast_to(np.asarray(t0_ns, np.float64), (n,))
    box = detector.config.active_volume
    entry = np.clip(entry + _NUDGE_CM * d, box.lo, box.hi)

    y_min = cosmics.shower_min_energy_gev / energy
    y_max = 1.0 - M_MU / energy
    shower = np.flatnonzero((rng.random(n) < cosmics.shower_probability) & (y_min < y_max))
    k = _brems_fractions(y_min[shower], y_max[shower], rng) * energy[shower]
    s = rng.random(len(shower)) * chord[shower]
    energy[shower] -= k
    p_mu = np.sqrt(energy * energy - M_MU * M_MU)
    return ParticleBatch(
        np.concatenate([pdg, np.full(len(shower), 22, np.int32)]),
        np.concatenate([entry, entry[shower] + s[:, None] * d[shower]]),
        np.concatenate([p_mu[:, None] * d, k[:, None] * d[shower]]),
        np.concatenate([t0, t0[shower] + s / C_CM_PER_NS]))


def generate(detector, rng: np.random.Generator) -> tuple[Truth, ParticleBatch]:
    """A cosmic-only event: one muon (maybe with a shower photon) entering at t = 0.

    Returns (truth as described in the module docstring, primaries). Raises :class:`GnnuError`
    for a detector without a ``cosmics`` section (the LArTPC).
    """
    batch = muons(detector, 1, rng)
    vertex = batch.pos[0]
    # the muon's energy at entry: what it keeps plus what it radiates later (photons: E = |p|)
    p2 = np.einsum("ij,ij->i", batch.mom, batch.mom)
    energy = math.sqrt(p2[0] + M_MU * M_MU) + float(np.sqrt(p2[1:]).sum())
    truth = Truth(flavour=int(Flavour.COSMIC), interaction=int(Interaction.OTHER), is_antinu=-1,
                  n_proton=0, n_charged_pion=0, n_neutral_pion=0, n_neutron=0,
                  n_proton_raw=0, n_charged_pion_raw=0, n_neutral_pion_raw=0, n_neutron_raw=0,
                  mode=int(Mode.COSMIC), nu_pdg=0,
                  lep_energy=energy,
                  vtx_x=float(vertex[0]), vtx_y=float(vertex[1]), vtx_z=float(vertex[2]))
    return truth, batch


def overlay(detector, rng: np.random.Generator) -> ParticleBatch:
    """Poisson(``cosmics.overlay_mean``) cosmic muons entering at times uniform in the readout
    window (ns), to add to a neutrino event's primaries; empty when the mean is 0 (no random
    numbers are drawn then)."""
    cosmics = _config(detector)
    if cosmics.overlay_mean <= 0:
        return ParticleBatch.empty()
    n = int(rng.poisson(cosmics.overlay_mean))
    w0, w1 = detector.config.readout.readout_window_ns
    return muons(detector, n, rng, w0 + rng.random(n) * (w1 - w0))
