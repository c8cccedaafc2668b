"""Transport driver: routes every particle of an event to the stage that knows its physics.

- μ±, π±, p, K± and neutrons → :mod:`gnnu.sim.tracks` (Bethe–Bloch stepping, multiple
  scattering, δ-rays, hadronic interactions, decays at rest and Michel electrons);
- e± and γ → :mod:`gnnu.sim.showers` (stochastic electromagnetic cascades);
- π0 and τ → :mod:`gnnu.sim.decays` (prompt decays at the production point);
- neutrinos, nuclear fragments and anything else are recorded in the particle table but not
  transported (they leave no ionisation in this model).

Stages return new particles (hadronic products, decay products, Michel electrons); the driver
registers each in the particle table (row = ``track_id``) and loops until nothing is left.
Deposits outside the active volume are dropped (particles leave the detector where they would).
"""

from __future__ import annotations

import numpy as np

from ..events import PARTICLE_COLUMNS, Particles, Process
from . import decays, showers, tracks
from .pdg import mass
from .records import Deposits, ParticleBatch

TRACK_PDGS = (13, 211, 2212, 321, 2112)
EM_PDGS = (11, 22)
DECAY_PDGS = (111, 15)
#: A safety net against runaway secondary production (a bug, not physics).
MAX_GENERATIONS = 50


class _TableBuilder:
    """Accumulates particle-table rows; a row's index is the particle's ``track_id``."""

    def __init__(self):
        self.parts: list[dict[str, np.ndarray]] = []
        self.n = 0
        self.end: dict[int, np.ndarray] = {}

    def register(self, batch: ParticleBatch) -> ParticleBatch:
        n = len(batch)
        batch.track_id = np.arange(self.n, self.n + n, dtype=np.int32)
        m = mass(batch.pdg)
        energy = np.sqrt(np.einsum("ij,ij->i", batch.mom, batch.mom) + m * m)
        self.parts.append({
            "pdg": batch.pdg, "parent": batch.parent, "process": batch.process,
            "start_x": batch.pos[:, 0], "start_y": batch.pos[:, 1], "start_z": batch.pos[:, 2],
            "px": batch.mom[:, 0], "py": batch.mom[:, 1], "pz": batch.mom[:, 2], "energy": energy,
        })
        self.n += n
        return batch

    def set_end(self, track_id: np.ndarray, end_pos: np.ndarray):
        for t, p in zip(track_id, end_pos):
            self.end[int(t)] = p

    def build(self) -> Particles:
        cols = {}
        for name, (dtype, _) in PARTICLE_COLUMNS.items():
            if name.startswith("end_"):
                continue
            cols[name] = (np.concatenate([p[name] for p in self.parts]).astype(dtype)
                          if self.parts else np.zeros(0, dtype))
        end = np.stack([cols["start_x"], cols["start_y"], cols["start_z"]], axis=1).astype(np.float64)
        for t, p in self.end.items():
            end[t] = p
        for i, axis in enumerate("xyz"):
            cols[f"end_{axis}"] = end[:, i].astype(np.float32)
        return Particles({k: cols[k] for k in PARTICLE_COLUMNS})


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
        apdg = np.abs(pending.pdg)
        em = np.isin(apdg, EM_PDGS)
        if em.any():
            # e±/γ wait until no other particle is left, so each event makes one cascade call
            # (its fixed cost dominates small showers); cascades make no secondaries today, but
            # any they make go round the loop like everyone else's.
            em_waiting.append(pending.select(em))
            pending = pending.select(~em)
            apdg = apdg[~em]
        if not len(pending):
            if not em_waiting:
                break
            pending, em_waiting = ParticleBatch.concat(em_waiting), []
            stages = ((EM_PDGS, showers.cascade),)
            apdg = np.abs(pending.pdg)
        else:
            stages = ((TRACK_PDGS, tracks.propagate), (DECAY_PDGS, decays.decay))
        new: list[ParticleBatch] = []
        for pdgs, stage in stages:
            sel = np.isin(apdg, pdgs)
            if not sel.any():
                continue
            batch = pending.select(sel)
            out = stage(batch, detector, rng)
            deposits.append(out.deposits)
            table.set_end(batch.track_id, out.end_pos)
            if len(out.secondaries):
                new.append(table.register(out.secondaries))
        pending = ParticleBatch.concat(new)
    else:
        raise RuntimeError(f"transport did not converge after {MAX_GENERATIONS} generations")
    dep = Deposits.concat(deposits)
    inside = detector.config.active_volume.contains(dep.pos)
    return dep.select(inside), table.build()
