"""Simulated events straight into a gnnu hit file: the library behind ``gnnu-sim`` (and the
simulation stage of ``gnnu-study``).

:func:`write_simulation` runs :func:`gnnu.sim.simulate.iter_events` and writes every event with
:class:`gnnu.io.hitfile.HitFileWriter` (atomically: a temporary file renamed when complete, so an
interrupted run leaves nothing half-written), counting events per flavour, hits and events
without hits; optionally it draws one event per flavour.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..atomic import output_lock
from ..config import to_dict
from ..events import Flavour


@dataclass
class SimulationSummary:
    """What :func:`write_simulation` wrote: ``written`` of ``requested`` events (``per_flavour``
    label → count), ``hits``, ``empty`` events without hits, wall ``seconds``, ``workers``, and
    the ``display`` PNG when one was drawn."""

    path: Path
    requested: int
    written: int
    per_flavour: dict[str, int] = field(default_factory=dict)
    hits: int = 0
    empty: int = 0
    seconds: float = 0.0
    workers: int = 1
    display: Path | None = None

    def report(self) -> str:
        """``gnnu-sim``'s closing line."""
        by_class = ", ".join(f"{k} {v}" for k, v in self.per_flavour.items())
        return (f"gnnu-sim: wrote {self.written} of {self.requested} events ({by_class}; {self.empty} "
                f"without hits) with {self.hits} hits to {self.path} in {self.seconds:.1f} s "
                f"({self.written / max(self.seconds, 1e-9):.0f} events/s, {self.workers} worker(s))")


def write_simulation(request, detector, out: str | os.PathLike, workers: int = 1,
                     force: bool = False, compression: str = "none",
                     display: str | os.PathLike | None = None,
                     progress: Callable[[int], None] | None = None) -> SimulationSummary:
    """Simulate ``request`` (:class:`gnnu.sim.simulate.SimRequest`) in ``detector`` with
    ``workers`` processes into the hit file ``out`` (refused if it exists, unless ``force``);
    ``display``: a PNG with one event per flavour; ``progress(n)`` after each block of n events."""
    from .hitfile import prepare_output

    prepare_output(out, force)                 # (missing directories are made only now)
    with output_lock(out, "gnnu-sim"):         # one writer of OUT at a time
        return _write(request, detector, out, workers, force, compression, display, progress)


def _write(request, detector, out, workers, force, compression, display, progress) -> SimulationSummary:
    from ..display import draw_events, one_per_flavour
    from ..sim.simulate import iter_events
    from .hitfile import HitFileWriter

    info = to_dict(request)
    info["flavours"] = [f.label for f in request.flavours]
    t0 = time.perf_counter()
    per_flavour: Counter = Counter()
    n_hits = n_empty = 0
    shown = {}
    with HitFileWriter(out, detector, generator=info, seed=request.seed, overwrite=force,
                       compression=compression) as w:
        for ev in iter_events(request, detector, workers=workers, progress=progress):
            w.write(ev)
            per_flavour[ev.truth.flavour] += 1
            n_hits += len(ev.hits)
            n_empty += len(ev.hits) == 0
            if display:
                shown.setdefault(ev.truth.flavour, ev)
    summary = SimulationSummary(
        Path(out), request.n_events, w.n_events,
        {Flavour(k).label: v for k, v in sorted(per_flavour.items())}, n_hits, n_empty,
        time.perf_counter() - t0, workers)
    if display:
        summary.display = draw_events(one_per_flavour(list(shown.values())), detector, display)
    return summary
