"""Progress of ``gnnu-train`` and ``gnnu-eval``: a bar on a terminal, lines in a log.

:func:`progress_mode` picks what a run shows: ``auto`` (the default) is a tqdm bar when stderr
is a terminal and plain lines otherwise (batch jobs, ``> log``), where a bar's carriage returns
would make an unreadable log; ``bar``, ``lines`` and ``none`` force one. :class:`ProgressLines`
writes one line every ``every`` steps (or batches) and one per epoch, each with the events per
second so far and the estimated time left::

    gnnu-train: epoch 1/4, step 20/40 (50%), 812 events/s, loss 1.31, elapsed 4s, ETA 4s
    gnnu-train: epoch 1/4 done (step 40/40), val/loss 1.05, val/accuracy 0.61, 805 events/s, ETA 12s

:class:`TrainProgress` is the Lightning callback that feeds it.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from lightning.pytorch.callbacks import Callback

from ..errors import ConfigError

MODES = ("auto", "bar", "lines", "none")
#: Steps (training) or batches (evaluation) between two progress lines.
EVERY = 100


def progress_mode(mode: str | bool | None, stream: TextIO | None = None) -> str:
    """``bar``, ``lines`` or ``none`` for the requested ``mode`` (True = ``bar``, False/None =
    ``none``; ``auto``: ``bar`` on a terminal, else ``lines``)."""
    if mode is True:
        return "bar"
    if mode is False or mode is None:
        return "none"
    if mode not in MODES:
        raise ConfigError(f"--progress must be one of {', '.join(MODES)}, got '{mode}'")
    if mode == "auto":
        stream = stream or sys.stderr
        return "bar" if getattr(stream, "isatty", lambda: False)() else "lines"
    return mode


def duration(seconds: float) -> str:
    """``'1h02m'``, ``'3m12s'`` or ``'12s'``."""
    s = int(round(max(seconds, 0)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class ProgressLines:
    """Progress as lines on ``stream``: :meth:`step` after each step (or batch) with the events
    it held, printing every ``every`` steps; :meth:`line` for a line of its own (an epoch's end).
    Rates count events since the first step; the ETA assumes that rate for ``total`` steps."""

    def __init__(self, prog: str, total: int | None, every: int = EVERY, stream: TextIO | None = None):
        if every < 1:
            raise ConfigError(f"progress lines every {every} steps: must be ≥ 1")
        self.prog, self.total, self.every = prog, total, every
        self.stream = stream or sys.stderr
        self.done = self.events = 0
        self.start = 0                       # steps done before this process (a resumed run)
        self.t0 = time.perf_counter()

    def rate(self) -> float:
        dt = time.perf_counter() - self.t0
        return self.events / dt if dt > 0 else 0.0

    def eta(self) -> str:
        if not self.total or self.done <= self.start:
            return "?"
        elapsed = time.perf_counter() - self.t0
        return duration(elapsed / (self.done - self.start) * max(self.total - self.done, 0))

    def step(self, events: int, prefix: str = "", extra: str = "") -> None:
        """One more step of ``events`` events; prints a line every :attr:`every` steps."""
        self.done += 1
        self.events += events
        if self.done % self.every == 0:
            where = f"{self.done}/{self.total} ({100 * self.done / self.total:.0f}%)" if self.total \
                else f"{self.done}"
            self.line(f"{prefix}{where}, {self.rate():.0f} events/s{extra}, elapsed "
                      f"{duration(time.perf_counter() - self.t0)}, ETA {self.eta()}")

    def line(self, text: str) -> None:
        print(f"{self.prog}: {text}", file=self.stream, flush=True)


def _batch_events(batch) -> int:
    """Events in a training batch (a PyG Batch or a dict of tensors, both with ``event_id``; of
    a domain-adversarial pair ``{"main", "other"}``, the training data's)."""
    if isinstance(batch, dict) and "main" in batch:
        batch = batch["main"]
    try:
        return int(batch["event_id"].shape[0])
    except (KeyError, TypeError, AttributeError, IndexError):
        return int(getattr(batch, "num_graphs", 0) or 0)


class TrainProgress(Callback):
    """``gnnu-train``'s progress lines (:class:`ProgressLines`): every ``every`` optimiser steps
    (epoch, step of all, events/s, the step's loss, ETA of the whole run) and after each
    validation (the epoch's validation loss and accuracy). Rank 0 only."""

    def __init__(self, every: int = EVERY, stream: TextIO | None = None):
        self.every, self.stream = every, stream
        self.lines: ProgressLines | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        total = trainer.estimated_stepping_batches
        total = int(total) if total != float("inf") else None
        self.lines = ProgressLines("gnnu-train", total, self.every, self.stream)
        self.lines.done = self.lines.start = int(trainer.global_step)   # a resumed run counts on

    def _epoch(self, trainer) -> str:
        return f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.lines is None or not trainer.is_global_zero:
            return
        loss = trainer.callback_metrics.get("train/loss")
        self.lines.step(_batch_events(batch), prefix=f"{self._epoch(trainer)}, step ",
                        extra="" if loss is None else f", loss {float(loss):.4g}")

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.lines is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        shown = ", ".join(f"{k} {float(m[k]):.4g}" for k in ("val/loss", "val/accuracy") if k in m)
        total = f"/{self.lines.total}" if self.lines.total else ""
        self.lines.line(f"{self._epoch(trainer)} done (step {trainer.global_step}{total}), {shown}, "
                        f"{self.lines.rate():.0f} events/s, elapsed "
                        f"{duration(time.perf_counter() - self.lines.t0)}, ETA {self.lines.eta()}")
