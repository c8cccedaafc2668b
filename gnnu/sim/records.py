"""Arrays that flow between the simulator's stages.

``generator`` → :class:`Primaries` → ``transport`` (``tracks`` for μ/π±/p/n, ``showers`` for e±/γ,
``decays`` for π0/τ) → :class:`Deposits` + particle table → ``readout`` → :class:`gnnu.events.Hits`.

Units: positions cm, momenta GeV/c, times ns (since the interaction), energies MeV for deposits.

The readout of each detector kind registers in :data:`READOUTS` from its own module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..registry import Registry

if TYPE_CHECKING:
    from ..events import Hits


def _f64(n, *shape):
    return np.zeros((n, *shape), dtype=np.float64)


@dataclass
class ParticleBatch:
    """Particles to transport (or just created), arrays of length n.

    ``track_id`` is the particle's row in the event's particle table: every deposit a particle
    (or the EM cascade it starts) makes carries it. ``parent``/``process`` describe how a
    *new* particle was made (parent = the creator's ``track_id``; see :class:`gnnu.events.Process`).
    """

    pdg: np.ndarray                                   # int32 (n,)
    pos: np.ndarray                                   # float64 (n, 3) cm
    mom: np.ndarray                                   # float64 (n, 3) GeV/c
    time: np.ndarray                                  # float64 (n,) ns
    track_id: np.ndarray = None                       # int32 (n,)
    parent: np.ndarray = None                         # int32 (n,)
    process: np.ndarray = None                        # int8 (n,)

    def __post_init__(self):
        n = len(self.pdg)
        self.pdg = np.asarray(self.pdg, dtype=np.int32)
        self.pos = np.asarray(self.pos, dtype=np.float64).reshape(n, 3)
        self.mom = np.asarray(self.mom, dtype=np.float64).reshape(n, 3)
        self.time = np.asarray(self.time, dtype=np.float64).reshape(n)
        self.track_id = (np.full(n, -1, np.int32) if self.track_id is None
                         else np.asarray(self.track_id, np.int32))
        self.parent = (np.full(n, -1, np.int32) if self.parent is None
                       else np.asarray(self.parent, np.int32))
        self.process = (np.zeros(n, np.int8) if self.process is None
                        else np.asarray(self.process, np.int8))

    def __len__(self) -> int:
        return len(self.pdg)

    @classmethod
    def empty(cls) -> "ParticleBatch":
        return cls(np.zeros(0, np.int32), _f64(0, 3), _f64(0, 3), _f64(0))

    def select(self, mask) -> "ParticleBatch":
        return ParticleBatch(self.pdg[mask], self.pos[mask], self.mom[mask], self.time[mask],
                             self.track_id[mask], self.parent[mask], self.process[mask])

    @classmethod
    def concat(cls, batches: list["ParticleBatch"]) -> "ParticleBatch":
        """All particles of ``batches`` in order (a single non-empty batch is returned as is)."""
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        return cls(*(np.concatenate([getattr(b, k) for b in batches])
                     for k in ("pdg", "pos", "mom", "time", "track_id", "parent", "process")))


@dataclass
class Deposits:
    """Energy deposits (ionisation) along particle paths.

    ``pos`` is the deposit's position (cm, the midpoint of its step), ``de`` the deposited
    energy (MeV), ``dx`` the step length (cm; de/dx feeds recombination), ``time`` ns,
    ``track`` the particle-table row the deposit belongs to, ``step`` [n, 3] (cm, optional) the
    step from its start to its end: the readout spreads the charge along it over the wires it
    crosses (zeros, or ``step`` None for all: point-like at ``pos``).
    """

    pos: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float64))
    de: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    dx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    time: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    track: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    step: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.de)

    def select(self, mask) -> "Deposits":
        return Deposits(self.pos[mask], self.de[mask], self.dx[mask], self.time[mask],
                        self.track[mask], None if self.step is None else self.step[mask])

    def steps(self) -> np.ndarray:
        """[n, 3] float64 step vectors (cm), zeros where a deposit is point-like."""
        if self.step is None:
            return np.zeros((len(self), 3))
        return np.asarray(self.step, np.float64).reshape(len(self), 3)

    @classmethod
    def concat(cls, parts: list["Deposits"]) -> "Deposits":
        """All deposits of ``parts`` in order (a single non-empty part is not copied)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls()
        if len(parts) == 1:
            p = parts[0]
            return cls(p.pos.astype(np.float64, copy=False), p.de, p.dx, p.time,
                       p.track.astype(np.int32, copy=False), p.step)
        steps = (None if all(p.step is None for p in parts)
                 else np.concatenate([p.steps() for p in parts]))
        return cls(np.concatenate([p.pos for p in parts]).astype(np.float64, copy=False),
                   np.concatenate([p.de for p in parts]),
                   np.concatenate([p.dx for p in parts]),
                   np.concatenate([p.time for p in parts]),
                   np.concatenate([p.track for p in parts]).astype(np.int32, copy=False), steps)


@dataclass
class StageOutput:
    """What a transport stage returns for a batch of n input particles.

    ``end_pos`` [n, 3] is where each input particle stopped, decayed, interacted or left the
    volume; ``secondaries`` are new particles to register and transport (their ``parent`` is the
    creator's ``track_id`` and ``process`` says how they were made).
    """

    deposits: Deposits
    secondaries: ParticleBatch
    end_pos: np.ndarray


#: detector kind → readout ``(deposits, detector, rng) → Hits`` (deposits → hits with truth
#: columns); each readout module registers its function with ``@READOUTS.register(kind)``.
READOUTS: Registry[Callable[[Deposits, object, np.random.Generator], "Hits"]] = Registry(
    "readout", modules=("gnnu.sim.readout", "gnnu.sim.scint_readout"))
