"""Transport driver: routes every particle of an event to the stage that knows its physics.

- μ±, π±, p, K± and neutrons → :mod:`gnnu.sim.tracks` (Bethe–Bloch stepping, multiple
  scattering, δ-rays, hadronic interactions, decays at rest and Michel electrons);
- e± and γ → :mod:`gnnu.sim.showers` (stochastic electromagnetic cascades);
- π0 and τ → :mod:`gnnu.sim.decays` (prompt decays at the production point);
- neutrinos, nuclear fragments and anything else are recorded in the particle table but not
  transported (they leave no ionisation in this model).

Stages return new particles (hadronic products, decay products, Michel electrons); the driver
registers each in the particle table (row = ``track_id``) and loops until nothing is left. A stage
must not modify its input batch in place: the particle table shares its arrays.
Deposits outside the active volume are dropped (particles leave the detector where they would).
"""

from __future__ import annotations

import numpy as np

from ..errors import GnnuError
from ..events import PARTICLE_COLUMNS, Particles, Process
from . import decays, showers, tracks
from .pdg import MASS_GEV, mass
from .records import Deposits, ParticleBatch

TRACK_PDGS = (13, 211, 2212, 321, 2112)
EM_PDGS = (11, 22)
DECAY_PDGS = (111, 15)
#: A safety net against runaway secondary production (a bug, not physics).
MAX_GENERATIONS = 50
#: Bounds on one event's memory (52 bytes per deposit): ~70× and ~700× what a 100 GeV νe CC
#: event makes (7·10⁴ deposits, 134 particles); beyond them the event is refused with one line.
MAX_DEPOSITS = 5_000_000
MAX_PARTICLES = 100_000

#: Route of each |pdg| (index; codes beyond the table are not transported): 0 none, else a stage.
_NONE, _TRACK, _EM, _DECAY = 0, 1, 2, 3
_ROUTE = np.zeros(max(TRACK_PDGS + EM_PDGS + DECAY_PDGS) + 2, np.int8)
_ROUTE[list(TRACK_PDGS)], _ROUTE[list(EM_PDGS)], _ROUTE[list(DECAY_PDGS)] = _TRACK, _EM, _DECAY


#: Mass (GeV) of each |pdg| in :data:`gnnu.sim.pdg.MASS_GEV` (index), NaN for other codes.
_MASS = np.full(max(MASS_GEV) + 2, np.nan)
_MASS[list(MASS_GEV)] = list(MASS_GEV.values())


def _mass(pdg: np.ndarray) -> np.ndarray:
    """Masses (GeV) of ``pdg`` [n]; :func:`gnnu.sim.pdg.mass` (which names the code) for codes it
    does not know."""
    m = _MASS[np.minimum(np.abs(pdg), len(_MASS) - 1)]
    return mass(pdg) if np.isnan(m).any() else m


def _check_size(n_deposits: int, n_particles: int) -> None:
    """GnnuError once an event outgrows :data:`MAX_DEPOSITS` or :data:`MAX_PARTICLES`."""
    if n_deposits > MAX_DEPOSITS or n_particles > MAX_PARTICLES:
        raise GnnuError(f"event too large to simulate: {n_deposits:,} energy deposits and "
                        f"{n_particles:,} particles exceed the per-event bounds ({MAX_DEPOSITS:,} "
                        f"deposits, {MAX_PARTICLES:,} particles) that cap its memory")


def _route(pdg: np.ndarray) -> np.ndarray:
    """Stage code (``_NONE``, ``_TRACK``, ``_EM``, ``_DECAY``) of each particle of ``pdg`` [n]."""
    return _ROUTE[np.minimum(np.abs(pdg), len(_ROUTE) - 1)]


class _TableBuilder:
    """Accumulates particle-table rows; a row's index is the particle's ``track_id``."""

    def __init__(self):
        self.parts: list[tuple[np.ndarray, ...]] = []     # (pdg, parent, process, pos, mom, E)
        self.n = 0
        self.ends: list[tuple[np.ndarray, np.ndarray]] = []   # (track_id [k], end_pos [k, 3])

    def register(self, batch: ParticleBatch) -> ParticleBatch:
        n = len(batch)
        batch.track_id = np.arange(self.n, self.n + n, dtype=np.int32)
        m = _mass(batch.pdg)
        energy = np.sqrt(np.einsum("ij,ij->i", batch.mom, batch.mom) + m * m)
        self.parts.append((batch.pdg, batch.parent, batch.process, batch.pos, batch.mom, energy))
        self.n += n
        return batch

    def set_end(self, track_id: np.ndarray, end_pos: np.ndarray):
        self.ends.append((track_id, end_pos))

    def build(self) -> Particles:
        """The particle table; particles without an end point end where they started."""
        if not self.parts:
            return Particles()
        pdg, parent, process, pos, mom, energy = (np.concatenate(c) for c in zip(*self.parts))
        end = pos.copy()
        if self.ends:
            ids, end_pos = (np.concatenate(c) for c in zip(*self.ends))
            end[ids] = end_pos
        pos, end, mom = (a.astype(np.float32) for a in (pos, end, mom))
        cols = {"pdg": pdg, "parent": parent, "process": process, "energy": energy}
        for i, axis in enumerate("xyz"):
            cols[f"start_{axis}"], cols[f"end_{axis}"], cols[f"p{axis}"] = (
                pos[:, i], end[:, i], mom[:, i])
        return Particles({k: cols[k].astype(dtype, copy=False)
                          for k, (dtype, _) in PARTICLE_COLUMNS.items()})


def run(primaries: ParticleBatch, detector, rng: np.random.Generator
        ) -> tuple[Deposits, Particles]:
    """Transport ``primaries`` (and all their descendants) through ``detector``.

    Returns every energy deposit inside the active volume and the event's particle table.
    """
    table = _TableBuilder()
    primaries.process = np.full(len(primaries), Process.PRIMARY, np.int8)
    pending = table.register(primaries)
    em_waiting: list[ParticleBatch] = []
    deposits: list[Deposits] = []
    for _ in range(MAX_GENERATIONS):
        route = _route(pending.pdg)
        em = route == _EM
        if em.any():
            # e±/γ wait until no other particle is left, so each event makes one cascade call
            # (its fixed cost dominates small showers); cascades make no secondaries today, but
            # any they make go round the loop like everyone else's.
            em_waiting.append(pending.select(em))
            pending, route = pending.select(~em), route[~em]
        if not len(pending):
            if not em_waiting:
                break
            pending, em_waiting = ParticleBatch.concat(em_waiting), []
            stages = ((_EM, showers.cascade),)
            route = _route(pending.pdg)
        else:
            stages = ((_TRACK, tracks.propagate), (_DECAY, decays.decay))
        new: list[ParticleBatch] = []
        for code, stage in stages:
            sel = route == code
            if not sel.any():
                continue
            batch = pending if sel.all() else pending.select(sel)
            out = stage(batch, detector, rng)
            deposits.append(out.deposits)
            table.set_end(batch.track_id, out.end_pos)
            if len(out.secondaries):
                new.append(table.register(out.secondaries))
            _check_size(sum(len(d) for d in deposits), table.n)
        pending = ParticleBatch.concat(new)
    else:
        raise RuntimeError(f"transport did not converge after {MAX_GENERATIONS} generations")
    dep = Deposits.concat(deposits)
    box = detector.config.active_volume
    x, y, z = dep.pos.T                  # per-column tests: much faster than an axis-1 reduction
    inside = ((x >= box.x[0]) & (x <= box.x[1]) & (y >= box.y[0]) & (y <= box.y[1])
              & (z >= box.z[0]) & (z <= box.z[1]))
    return (dep if inside.all() else dep.select(inside)), table.build()
