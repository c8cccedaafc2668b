"""Lightning callbacks of ``gnnu-train``: ``last.ckpt`` for resuming, and the per-epoch history.

:class:`LastCheckpoint` writes ``RUN_DIR/last.ckpt`` (atomically, through Lightning's
``trainer.save_checkpoint``) every ``every_n_steps`` optimiser steps (except after an epoch's
last batch: Lightning would resume that state without the epoch's validation), at the end of
every epoch (after its validation and early-stopping check, where Lightning's ``ModelCheckpoint``
saves too, so a resumed run does not repeat the epoch's end), at the end of training, and when
the process receives SIGTERM (Lightning turns the signal into ``SIGTERMException`` at the next
batch boundary, so the saved state is consistent). A SIGKILL or a crash loses at most
``every_n_steps`` steps (or the current epoch's last steps and validation). It subclasses
Lightning's ``Checkpoint`` so Lightning runs it after the other callbacks (history, early
stopping, best checkpoint): the state it saves already includes their updates.

:class:`History` records, after each validation, the epoch, global step and every logged
``val/*`` and ``train/epoch_*`` / ``train/events_per_s`` value; it is part of the checkpoint,
so a resumed run's history is complete (``run.json`` stores it).

:class:`AtomicCheckpointIO` writes every checkpoint (``best.ckpt`` and ``last.ckpt``) through
:func:`gnnu.atomic.write_torch_atomic`: a full disk or an interrupt leaves the previous checkpoint
whole (Lightning's own writer truncates the file in place). :class:`GracefulInterrupt` makes
Ctrl-C (SIGINT) behave as SIGTERM: the run stops at the next batch boundary and ``last.ckpt`` is
saved (a second Ctrl-C stops at once, without saving).
"""

from __future__ import annotations

import math
import signal
import threading
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ..atomic import write_torch_atomic

#: Prefixes of the logged metrics the history keeps.
HISTORY_PREFIXES = ("val/", "train/epoch_", "train/events_per_s")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, through a temporary file renamed into place."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        write_torch_atomic(path, checkpoint)


class GracefulInterrupt:
    """Around ``trainer.fit``: Ctrl-C (SIGINT) asks Lightning to stop as on SIGTERM (at the next
    batch boundary, ``SIGTERMException``; :class:`LastCheckpoint` saves ``last.ckpt``);
    :attr:`signal` then says ``"SIGINT"``. A second Ctrl-C raises ``KeyboardInterrupt`` at once.
    The previous handler is restored on exit. Only in the main thread (signals go there)."""

    def __init__(self, trainer: pl.Trainer):
        self.trainer = trainer
        self.signal: str | None = None
        self._previous = None

    def _on_sigint(self, signum, frame) -> None:
        if self.signal == "SIGINT":                       # asked twice: stop now
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.signal = "SIGINT"
        self.trainer._signal_connector.received_sigterm = True

    def __enter__(self) -> "GracefulInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class ValidateAtMaxSteps(Callback):
    """A run whose ``max_steps`` ends inside an epoch (``--set max_steps=1``) still validates
    once at its end: at the last step it asks Lightning to stop (``trainer.should_stop``), which
    runs the validation loop after that batch, so ``best.ckpt``, early stopping and the history
    get their ``val/*`` metrics (without it Lightning's EarlyStopping fails on a missing metric)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        last = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if 0 < trainer.max_steps <= trainer.global_step and not last:
            trainer.should_stop = True


class LastCheckpoint(Checkpoint):
    """Save ``path`` every ``every_n_steps`` steps, at each epoch's end, at the end and on SIGTERM."""

    def __init__(self, path: str | Path, every_n_steps: int):
        self.path = str(path)
        self.every_n_steps = every_n_steps

    def _save(self, trainer: pl.Trainer) -> None:
        trainer.save_checkpoint(self.path)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # not after an epoch's last batch: Lightning resumes such a checkpoint without the
        # epoch's validation; the epoch-end save follows instead
        last = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if trainer.global_step % self.every_n_steps == 0 and not last:
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._save(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._save(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):     # SIGTERM, or Ctrl-C (GracefulInterrupt)
            self._save(trainer)


class History(Callback):
    """Per-validation records: ``{'epoch', 'step', <metric>: value …}`` (NaN → None)."""

    def __init__(self):
        self.records: list[dict] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        record = {"epoch": int(trainer.current_epoch), "step": int(trainer.global_step)}
        for key, value in sorted(trainer.callback_metrics.items()):
            if key.startswith(HISTORY_PREFIXES):
                v = float(value)
                record[key] = v if math.isfinite(v) else None
        self.records.append(record)

    def state_dict(self) -> dict:
        return {"records": [dict(r) for r in self.records]}

    def load_state_dict(self, state_dict: dict) -> None:
        self.records = [dict(r) for r in state_dict.get("records", [])]
