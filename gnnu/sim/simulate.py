"""Event simulation driver: generator → transport → readout, one seeded RNG per event.

Event ``i`` of a run with seed ``s`` uses ``numpy.random.default_rng([s, i])`` for everything,
so an event depends only on (detector, seed, index, flavour, energy option) — never on how
many worker processes made the file or in which order. Event ids are (run = seed, subrun = 0,
event = index).

Flavours are assigned round-robin over the requested list (balanced classes) unless
``mix="random"`` draws them uniformly per event (from the event's own RNG).

``Flavour.COSMIC`` events come from :mod:`gnnu.sim.cosmics` (detectors with a ``cosmics``
section only; the energy option does not apply to them), neutrino events from
:mod:`gnnu.sim.generator`, plus overlaid cosmic muons where the detector's
``cosmics.overlay_mean`` > 0. The readout is the one registered for ``detector.kind``
(:data:`gnnu.sim.records.READOUTS`).

Validated energies: neutrino energies in :data:`ENERGY_RANGE_GEV` (0.1–100 GeV: the DUNE and
NOvA beams with their high-energy tails, the DUNE beam tail to ~60 GeV included). The generator's
mode tables, hadronisation and the cascade model were written and checked for accelerator
neutrinos; beyond 100 GeV nothing was compared, and the cost grows with the energy (a 10⁶ GeV
event used 23.8 GB). ``--energy`` outside the range and a beam whose ``e_max_gev`` exceeds it
are refused with one line. Memory per event is bounded besides
(:data:`gnnu.sim.transport.MAX_DEPOSITS`, :data:`~gnnu.sim.transport.MAX_PARTICLES`): measured
at 100 GeV, a νe CC event makes 7·10⁴ deposits and 134 particles, and the process peaks at
0.22 GB (1000 GeV: 4.8·10⁵ deposits, 0.33 GB).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from ..errors import ConfigError, GnnuError, ignore_interrupts_in_worker
from ..events import Event, Flavour
from . import cosmics, generator, transport
from .records import READOUTS, ParticleBatch

NEUTRINO_FLAVOURS = (Flavour.NUMU_CC, Flavour.NUE_CC, Flavour.NUTAU_CC, Flavour.NC)
#: Neutrino energies (GeV) the simulator is validated for (module docstring).
ENERGY_RANGE_GEV = (0.1, 100.0)


def _check_energy(value: float, what: str) -> None:
    lo, hi = ENERGY_RANGE_GEV
    if not lo <= value <= hi:
        raise ConfigError(f"{what} {value:g} GeV is outside the energies the simulator is "
                          f"validated for ({lo:g}–{hi:g} GeV)")


@dataclass(frozen=True)
class EnergyOption:
    """Neutrino energy choice: the detector's beam spectrum, a flat range, or a fixed value (GeV)."""

    kind: str = "beam"           # beam | flat | fixed
    low: float = 0.0
    high: float = 0.0

    @classmethod
    def parse(cls, text: str) -> "EnergyOption":
        """``'beam'``, ``'1:5'`` (flat in GeV) or ``'2.0'`` (fixed GeV)."""
        text = text.strip()
        if text == "beam":
            return cls()
        try:
            if ":" in text:
                lo, hi = (float(v) for v in text.split(":"))
                if not 0 < lo < hi:
                    raise ValueError
                return cls("flat", lo, hi)
            e = float(text)
            if e <= 0:
                raise ValueError
            return cls("fixed", e, e)
        except ValueError:
            raise ConfigError(f"invalid energy option '{text}' (use 'beam', a range 'MIN:MAX' "
                              f"or a fixed value, in GeV)") from None

    def __post_init__(self):
        if self.kind != "beam":
            for value in {self.low, self.high}:
                _check_energy(value, "--energy")

    def draw(self, rng: np.random.Generator) -> float | None:
        if self.kind == "beam":
            return None
        if self.kind == "fixed":
            return self.low
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class SimRequest:
    """What to simulate: ``n_events`` of ``flavours`` with ``seed`` (see module docstring)."""

    detector: str = "dune"
    n_events: int = 100
    seed: int = 0
    flavours: tuple[Flavour, ...] = NEUTRINO_FLAVOURS
    mix: str = "balanced"        # balanced | random
    energy: EnergyOption = field(default_factory=EnergyOption)

    def __post_init__(self):
        if self.n_events < 0:
            raise ConfigError(f"number of events must be ≥ 0, got {self.n_events}")
        if not self.flavours:
            raise ConfigError("no flavours requested")
        if self.mix not in ("balanced", "random"):
            raise ConfigError(f"mix must be 'balanced' or 'random', got '{self.mix}'")

    def flavour_of(self, index: int, rng: np.random.Generator) -> Flavour:
        if self.mix == "balanced":
            return self.flavours[index % len(self.flavours)]
        return self.flavours[int(rng.integers(len(self.flavours)))]


def simulate_event(detector, index: int, flavour: Flavour, seed: int,
                   energy: EnergyOption | None = None) -> Event:
    """Simulate event ``index`` of run ``seed`` as ``flavour`` in ``detector``.

    Returns the :class:`~gnnu.events.Event` with hits (truth columns included), truth and the
    particle table.
    """
    rng = np.random.default_rng([seed, index])
    energy_gev = (energy or EnergyOption()).draw(rng)
    if flavour == Flavour.COSMIC:
        truth, primaries = cosmics.generate(detector, rng)
    else:
        truth, primaries = generator.generate(flavour, detector, rng, energy_gev=energy_gev)
        if getattr(detector.config, "cosmics", None) is not None:
            primaries = ParticleBatch.concat([primaries, cosmics.overlay(detector, rng)])
    deposits, particles = transport.run(primaries, detector, rng)
    hits = READOUTS.lookup(detector.kind, f"detector '{detector.name}'")(deposits, detector, rng)
    return Event((int(seed), 0, int(index)), truth, hits, particles)


def check_request(request: SimRequest, detector) -> None:
    """Raise :class:`GnnuError` (one line) if ``detector`` cannot make the requested flavours."""
    beam = getattr(detector.config, "beam", None)
    if beam is not None and request.energy.kind == "beam":
        _check_energy(beam.e_max_gev, f"detector '{detector.name}': beam.e_max_gev")
    if Flavour.COSMIC in request.flavours and getattr(detector.config, "cosmics", None) is None:
        raise GnnuError(f"detector '{detector.name}' ({detector.kind}) cannot simulate cosmic-ray "
                        f"events: flavour 'cosmic' needs a detector with a 'cosmics' section "
                        f"(e.g. --detector nova)")


# -- parallel execution --------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(detector_name: str):
    from ..detectors import load_detector
    ignore_interrupts_in_worker()
    _WORKER["detector"] = load_detector(detector_name)


def _run_block(args) -> list[Event]:
    request, start, stop = args
    det = _WORKER["detector"]
    return [_one(det, request, i) for i in range(start, stop)]


def _one(det, request: SimRequest, i: int) -> Event:
    rng = np.random.default_rng([request.seed, i, 1])  # flavour choice only
    return simulate_event(det, i, request.flavour_of(i, rng), request.seed, request.energy)


def iter_events(request: SimRequest, detector, workers: int = 1, block: int = 16,
                progress: Callable[[int], None] | None = None) -> Iterator[Event]:
    """Yield the requested events in index order, made by ``workers`` processes.

    ``progress(n)`` is called after each block with the number of events it held. Raises
    :class:`GnnuError` before simulating anything if the detector cannot make a requested flavour.
    """
    check_request(request, detector)
    blocks = [(request, s, min(s + block, request.n_events))
              for s in range(0, request.n_events, block)]
    if workers <= 1:
        for _, s, e in blocks:
            evs = [_one(detector, request, i) for i in range(s, e)]
            if progress:
                progress(len(evs))
            yield from evs
        return
    ctx = mp.get_context("spawn" if os.name == "nt" else "fork")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(request.detector,)) as pool:
        for evs in pool.imap(_run_block, blocks):
            if progress:
                progress(len(evs))
            yield from evs


def simulate(request: SimRequest, detector, workers: int = 1) -> tuple[list[Event], float]:
    """All events of ``request`` in a list, and the wall time (s) it took."""
    t0 = time.perf_counter()
    events = list(iter_events(request, detector, workers))
    return events, time.perf_counter() - t0
