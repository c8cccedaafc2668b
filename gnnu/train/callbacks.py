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
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

#: Prefixes of the logged metrics the history keeps.
HISTORY_PREFIXES = ("val/", "train/epoch_", "train/events_per_s")


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
        if isinstance(exception, SIGTERMException):
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
