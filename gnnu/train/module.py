r"""One LightningModule for every model family: multi-task loss, validation metrics, optimiser.

:class:`TrainModule` wraps any registry model (:func:`gnnu.models.create_model`): it calls
``model(batch)`` and reads the truth from the batch by name (``batch[task]`` → [B]), so GNNs on
PyG batches and CNNs on image batches train the same way.

Loss (per batch, summed over the heads the model built, each with weight w_h — the training
config's ``loss_weights`` over the model config's ``heads.loss_weights``):

- classification head t: class-weighted cross-entropy over the events whose label is defined
  (label −1 is ignored), :math:`L_t = \sum_i a_{y_i} \ell_i / \sum_i a_{y_i}` with class weights
  a (all 1 without ``class_weights``) — PyTorch's ``cross_entropy(weight=a, ignore_index=-1)``;
- regression target r: mean squared error in the head's own units over the events with a finite
  (and, for a log target, positive) truth. For ``*_energy`` targets with ``energy_target: log``
  (default) the head predicts ln(E/GeV), so the loss is the mean of
  (ln E_pred − ln E_true)² ≈ the squared relative error; with ``linear`` it is in GeV².

A head with no usable truth in a batch contributes 0 (with a zero gradient, so DDP sees every
parameter used). Logged to TensorBoard: ``train/loss`` per step; per epoch ``train/epoch_loss``,
``train/epoch_loss_<head>`` (exact event-weighted means, kept in the checkpoint so a resumed run
reports the same numbers), ``train/events_per_s``; ``val/loss``, ``val/loss_<head>`` (over the whole
validation split), ``val/<task>_accuracy`` and ``val/<task>_macro_f1``
(:func:`gnnu.evaluate.metrics.evaluate_task`), ``val/accuracy`` and ``val/macro_f1`` for the
primary task, and ``val/<target>_resolution`` / ``val/<target>_bias`` for energy targets
(:func:`gnnu.evaluate.metrics.energy_resolution`). Under DDP the sums are reduced and the
validation predictions gathered across ranks.

Optimiser: AdamW; schedule cosine / one-cycle / none, stepped every optimiser step over
``trainer.estimated_stepping_batches`` steps.

Resume: the checkpoint carries the torch RNG states (CPU and CUDA), restored when training
starts, so dropout after a resume draws what an uninterrupted run would have drawn (exact on one
device; under DDP every rank resumes from rank 0's state).
"""

from __future__ import annotations

import math
import time

import lightning.pytorch as pl
import numpy as np
import torch
from torch.nn import functional as F

from ..events import batch_key
from ..evaluate.metrics import EvaluationError, class_names, energy_resolution, evaluate_task
from ..models.heads import decode_target, encode_target, is_log_target
from ..models.checkpoint import frozen_modules
from .config import TrainConfig
from .domain import DomainClassifier, dann_lambda, domain_loss


def task_class_names(task: str, n_classes: int) -> list[str]:
    """Class names of a task for reports: the metrics' names, or ``'0' … 'C−1'`` where unknown."""
    try:
        return class_names(task, n_classes)
    except ValueError:
        return [str(c) for c in range(n_classes)]


def batch_size_of(batch) -> int:
    """Events in a batch: PyG ``num_graphs`` or the length of the primary label."""
    n = getattr(batch, "num_graphs", None)
    return int(n) if n is not None else int(len(batch["flavour"]))


class TrainModule(pl.LightningModule):
    """Trains ``model`` with the multi-task loss of the module docstring.

    Args:
        model: a registry model (``model.loss_weights``, ``model.config``).
        cfg: the training config.
        meta: the checkpoint's ``gnnu`` block (:data:`gnnu.models.checkpoint.META_KEYS`); its
            ``tasks`` (task → classes) and ``regression`` are what the model was offered.
        class_weights: task → float tensor [C] (cross-entropy class weights).
        frozen: frozen parameter prefixes (their modules stay in eval mode).
    """

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, meta: dict,
                 class_weights: dict[str, torch.Tensor] | None = None, frozen: list[str] = ()):
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.meta = meta
        built = dict(model.loss_weights)
        self.class_tasks = {t: int(n) for t, n in meta["tasks"].items() if t in built}
        self.reg_targets = [r for r in meta["regression"] if r in built]
        self.loss_weights = {h: float(cfg.loss_weights.get(h, w)) for h, w in built.items()}
        self.class_weights = {t: w for t, w in (class_weights or {}).items() if t in self.class_tasks}
        self.energy_target = model.config.heads.energy_target
        self._frozen = frozen_modules(model, list(frozen))
        self.domain_cfg = cfg.domain_adaptation if cfg.domain_adaptation.enabled else None
        if self.domain_cfg is not None:
            self.domain_head = DomainClassifier(model.head.in_features, self.domain_cfg.hidden)
        self._train_sums = self._zero_sums()
        self._val_sums = self._zero_sums()
        self._val_outputs: list[dict[str, np.ndarray]] = []
        self._rng_to_restore = None
        self._t0: float | None = None
        self._events = 0
        self._train_seconds = 0.0
        self._total_steps: int | None = None     # optimiser steps of the fit (DANN's λ schedule)

    # -- loss ---------------------------------------------------------------------------------
    @property
    def heads(self) -> list[str]:
        return [*self.class_tasks, *self.reg_targets]

    def _zero_sums(self) -> torch.Tensor:
        """Per head [numerator, denominator] accumulators: float64 [H, 2] (stays on the device)."""
        return torch.zeros(len(self.heads), 2, dtype=torch.float64)

    def head_terms(self, out: dict, batch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per head (numerator, denominator) of its mean loss on this batch (module docstring)."""
        terms = {}
        for task in self.class_tasks:
            logits = out[task].float()
            target = batch[task].view(-1).long()
            ok = target >= 0
            safe = target.clamp(min=0)
            weight = self.class_weights.get(task)
            weight = None if weight is None else weight.to(logits.device)
            ce = F.cross_entropy(logits, safe, weight=weight, reduction="none")
            den = ok.float() if weight is None else weight[safe] * ok
            terms[task] = ((ce * ok).sum(), den.sum())
        for name in self.reg_targets:
            pred = out[name].float().view(-1)
            truth = batch[batch_key(name)].view(-1).float()
            ok = torch.isfinite(truth)
            if is_log_target(name, self.energy_target):
                ok &= truth > 0
            target = encode_target(name, torch.where(ok, truth, torch.ones_like(truth)), self.energy_target)
            sq = (pred - target) ** 2
            terms[name] = ((sq * ok).sum(), ok.float().sum())
        return terms

    def combine(self, terms: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Σ_h w_h · numerator_h / denominator_h (a head without usable truth adds 0)."""
        total = 0.0
        for h, (num, den) in terms.items():
            total = total + self.loss_weights[h] * num / den.clamp(min=1e-12)
        return total

    @staticmethod
    def _accumulate(sums: torch.Tensor, terms) -> torch.Tensor:
        step = torch.stack([torch.stack([num.detach(), den.detach()]) for num, den in terms.values()])
        return sums.to(step.device) + step.double()

    def _means(self, sums: torch.Tensor) -> tuple[float, dict[str, float]]:
        """(weighted total, per-head means) from accumulated sums (reduced across ranks)."""
        sums = sums.to(self.device)
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        values = sums.cpu().numpy()
        per_head = {h: float(n / d) if d > 0 else math.nan for h, (n, d) in zip(self.heads, values)}
        total = sum(self.loss_weights[h] * v for h, v in per_head.items() if not math.isnan(v))
        return total, per_head

    # -- training -----------------------------------------------------------------------------
    def forward(self, batch):
        return self.model(batch)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            for m in self._frozen:
                m.eval()
        return self

    def on_train_start(self) -> None:
        self.train()                        # frozen modules to eval mode (Lightning keeps modes)
        if self._rng_to_restore is not None:
            torch.set_rng_state(self._rng_to_restore["torch"])
            cuda = self._rng_to_restore.get("cuda", [])
            if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda)
            self._rng_to_restore = None

    def training_step(self, batch, batch_idx):
        if self._t0 is None:
            self._t0 = time.perf_counter()
        if self.domain_cfg is not None:
            return self._dann_step(batch["main"], batch["other"])
        terms = self.head_terms(self.model(batch), batch)
        loss = self.combine(terms)
        return self._count(loss, terms, batch)

    def _count(self, loss: torch.Tensor, terms, batch) -> torch.Tensor:
        n = batch_size_of(batch)
        self._train_sums = self._accumulate(self._train_sums, terms)
        self._events += n
        self.log("train/loss", loss, on_step=True, on_epoch=False, batch_size=n)
        return loss

    def _dann_step(self, main, other) -> torch.Tensor:
        """Task loss on ``main`` (+ on ``other`` when its labels train too) + the domain loss of
        both batches behind the gradient reversal (:mod:`gnnu.train.domain`)."""
        cfg = self.domain_cfg
        if self._total_steps is None:            # Lightning's estimate, once per fit
            self._total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        lam = dann_lambda(self.global_step / self._total_steps, cfg.weight)
        z_main, z_other = self.model.embed(main), self.model.embed(other)
        terms = self.head_terms(self.model.head(z_main), main)
        loss = self.combine(terms)
        n_main, n_other = batch_size_of(main), batch_size_of(other)
        if cfg.labels:
            other_loss = self.combine(self.head_terms(self.model.head(z_other), other))
            loss = loss + other_loss
            self.log("train/other_loss", other_loss, on_step=True, on_epoch=False, batch_size=n_other)
        logits = self.domain_head(torch.cat([z_main, z_other]), lam)
        is_other = torch.cat([torch.zeros(n_main, dtype=torch.bool, device=logits.device),
                              torch.ones(n_other, dtype=torch.bool, device=logits.device)])
        d_loss, right = domain_loss(logits, is_other)
        self.log_dict({"train/domain_loss": d_loss, "train/domain_accuracy": right / is_other.numel(),
                       "train/dann_lambda": lam}, on_step=True, on_epoch=False, batch_size=n_main)
        return self._count(loss + d_loss, terms, main)

    # -- validation ---------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        if self._t0 is not None:
            self._train_seconds = time.perf_counter() - self._t0
        self._val_sums = self._zero_sums()
        self._val_outputs = []

    def validation_step(self, batch, batch_idx):
        out = self.model(batch)
        self._val_sums = self._accumulate(self._val_sums, self.head_terms(out, batch))
        record = {}
        for task in self.class_tasks:
            record[f"{task}/labels"] = batch[task].view(-1).cpu().numpy()
            record[f"{task}/scores"] = torch.softmax(out[task].float(), dim=1).cpu().numpy()
        for name in self.reg_targets:
            record[f"{name}/true"] = batch[batch_key(name)].view(-1).double().cpu().numpy()
            record[f"{name}/pred"] = decode_target(name, out[name].float().view(-1),
                                                   self.energy_target).double().cpu().numpy()
        self._val_outputs.append(record)

    def _gathered(self) -> dict[str, np.ndarray]:
        outputs = self._val_outputs
        if self.trainer.world_size > 1:
            every = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(every, outputs)
            outputs = [r for rank in every for r in rank]
        if not outputs:
            return {}
        return {k: np.concatenate([r[k] for r in outputs]) for k in outputs[0]}

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        val_loss, val_heads = self._means(self._val_sums)
        logs = {"val/loss": val_loss, **{f"val/loss_{h}": v for h, v in val_heads.items()}}
        data = self._gathered()
        for task, n_classes in self.class_tasks.items():
            acc, f1 = math.nan, math.nan
            try:
                m = evaluate_task(data[f"{task}/labels"].astype(np.int64), data[f"{task}/scores"],
                                  task_class_names(task, n_classes), task=task)
                acc, f1 = m.accuracy, m.macro_f1
            except EvaluationError:      # non-finite scores: a diverged model
                pass
            logs[f"val/{task}_accuracy"], logs[f"val/{task}_macro_f1"] = acc, f1
            if task == self.cfg.primary_task:
                logs["val/accuracy"], logs["val/macro_f1"] = acc, f1
        for name in self.reg_targets:
            if name.endswith("_energy"):
                res = energy_resolution(data[f"{name}/pred"], data[f"{name}/true"])
                logs[f"val/{name}_resolution"], logs[f"val/{name}_bias"] = res.resolution_68, res.bias
        train_loss, train_heads = self._means(self._train_sums)
        logs["train/epoch_loss"] = train_loss
        logs.update({f"train/epoch_loss_{h}": v for h, v in train_heads.items()})
        if self._train_seconds > 0:
            logs["train/events_per_s"] = self._events / self._train_seconds
        self.log_dict({k: float(v) for k, v in logs.items()})
        self._train_sums = self._zero_sums()
        self._val_outputs = []
        self._t0, self._events, self._train_seconds = None, 0, 0.0

    # -- optimiser ----------------------------------------------------------------------------
    def configure_optimizers(self):
        opt_cfg, sched_cfg = self.cfg.optimizer, self.cfg.schedule
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=opt_cfg.lr, weight_decay=opt_cfg.weight_decay,
                                      betas=tuple(opt_cfg.betas))
        if sched_cfg.name == "none":
            return optimizer
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        if sched_cfg.name == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=steps, eta_min=opt_cfg.lr * sched_cfg.min_lr_ratio)
        else:
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=opt_cfg.lr, total_steps=steps, pct_start=sched_cfg.pct_start)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- checkpoints --------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["gnnu"] = self.meta
        checkpoint["gnnu_rng"] = {"torch": torch.get_rng_state(),
                                  "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}
        checkpoint["gnnu_train_sums"] = self._train_sums.cpu()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._rng_to_restore = checkpoint.get("gnnu_rng")
        sums = checkpoint.get("gnnu_train_sums")
        self._train_sums = sums.clone() if sums is not None else self._zero_sums()
