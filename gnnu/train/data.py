"""Data for training: a dataset's splits as Lightning data loaders, resumable mid-epoch.

:class:`EventDataModule` serves the ``train`` and ``val`` splits of a dataset as the model reads
them (:func:`open_dataset`, by the registry's :func:`gnnu.models.model_inputs`): graph models get
:class:`gnnu.graph.dataset.GraphDataset` through PyG's ``DataLoader``, image models the same
events of the same splits as pixel maps (:class:`gnnu.images.dataset.ImageDataset`, batches
collated by :func:`gnnu.images.dataset.collate_images`, :func:`make_loader`); sampling, resume
and pinned memory on GPU are the same for both. Evaluation uses the same two functions.
Batch order comes from :class:`EpochSampler` only: a permutation drawn from its own generator
seeded with (seed, epoch), so it depends on nothing else (no global RNG, no worker count).
A run resumed from a checkpoint taken after global step s (one optimiser step per batch)
continues with epoch s // n and skips its first s % n batches, n = batches per epoch: exactly the
batches an uninterrupted run would see next (so the loader needs no state of its own). Under DDP each rank takes every world-size-th
index of the permutation (the training split padded by repeating its first indices so every rank
has the same number of batches, as ``DistributedSampler`` does; validation is not padded).

Also here: the dataset's identity (:func:`manifest_hash`), the classification tasks it offers
(:func:`dataset_tasks`) and class weights from the training split (:func:`class_weights`).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Callable, Iterator

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import Sampler
from torch_geometric.loader import DataLoader

from ..errors import ConfigError, InputError
from ..events import CLASS_LABELS, NUM_CLASSES, Flavour
from ..graph.dataset import GraphDataset
from ..graph.store import MANIFEST
from ..images.dataset import ImageDataset, collate_images
from ..models import model_inputs

#: A dataset view a model reads: graphs, or the same events' pixel maps.
EventDataset = GraphDataset | ImageDataset


def manifest_hash(root: str | Path) -> str:
    """``'sha256:<hex>'`` of the dataset's ``manifest.json`` bytes: the identity of a built dataset."""
    path = Path(root) / MANIFEST
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise InputError(f"cannot read the dataset manifest ({exc.strerror})", path) from None


def dataset_tasks(manifest: dict, overrides: dict[str, int] | None = None) -> dict[str, int]:
    """Classification task → number of classes for a dataset.

    Every label of :data:`gnnu.events.CLASS_LABELS` with :data:`gnnu.events.NUM_CLASSES` classes,
    except ``flavour``, which has no cosmic class unless the dataset's per-class counts contain
    cosmics; ``overrides`` (the config's ``num_classes``) win.
    """
    tasks = dict(NUM_CLASSES)
    per_class = manifest.get("counts", {}).get("per_class", {})
    has_cosmic = any(Flavour.COSMIC.label in counts for counts in per_class.values())
    if not has_cosmic:
        tasks["flavour"] = int(Flavour.COSMIC)
    tasks.update(overrides or {})
    return {t: tasks[t] for t in CLASS_LABELS}


def open_dataset(root: str | Path, split: str, model, feature_stats: dict | None = None) -> EventDataset:
    """The ``split`` of dataset ``root`` as the model config ``model`` reads it: a
    :class:`GraphDataset` (node features standardised with ``feature_stats`` when given — a
    checkpoint's training statistics — else with the dataset's own), or for image models
    (``model_inputs(model.name) == 'image'``) an :class:`ImageDataset` rendered with
    ``model.image``."""
    if model_inputs(model.name) == "image":
        return ImageDataset(root, split, model.image)
    return GraphDataset(root, split, feature_stats=feature_stats)


def make_loader(dataset: EventDataset, batch_size: int, **kwargs):
    """A data loader over ``dataset``: PyG's for graphs, torch's with :func:`collate_images` for
    images. ``kwargs``: the usual ``DataLoader`` options (sampler, num_workers, pin_memory, …)."""
    if isinstance(dataset, ImageDataset):
        return TorchDataLoader(dataset, batch_size=batch_size, collate_fn=collate_images, **kwargs)
    return DataLoader(dataset, batch_size=batch_size, **kwargs)


def to_device(batch, device: torch.device, non_blocking: bool = True):
    """A graph batch (PyG ``Batch``) or image batch (dict of tensors) moved to ``device``."""
    if isinstance(batch, dict):
        return {k: v.to(device, non_blocking=non_blocking) for k, v in batch.items()}
    return batch.to(device, non_blocking=non_blocking)


def check_labels(dataset: EventDataset, tasks: dict[str, int]) -> None:
    """ConfigError if a label of ``dataset`` lies outside its task's classes (−1 = undefined is fine)."""
    for task, n in tasks.items():
        labels = dataset.labels(task)
        bad = (labels < -1) | (labels >= n)
        if bad.any():
            raise ConfigError(f"task '{task}': the {dataset.split} split has label {int(labels[bad][0])} "
                              f"but the model has {n} classes (set num_classes.{task})")


def class_weights(spec, dataset: EventDataset, tasks: dict[str, int],
                  primary_task: str) -> dict[str, torch.Tensor]:
    """Cross-entropy class weights per task from the config's ``class_weights``.

    ``'none'`` → {}; ``'balanced'`` → for every task w_c = N / (C_present · n_c) over the
    training split's labelled events (classes absent from the split get weight 1); a list → the
    primary task; a mapping → those tasks. ConfigError when a list's length is not the task's
    class count. Weights are float32 tensors [C].
    """
    if spec == "none":
        return {}
    if spec == "balanced":
        out = {}
        for task, n in tasks.items():
            labels = dataset.labels(task)
            counts = np.bincount(labels[labels >= 0], minlength=n)[:n].astype(np.float64)
            present = counts > 0
            w = np.ones(n)
            if present.any():
                w[present] = counts.sum() / (present.sum() * counts[present])
            out[task] = torch.tensor(w, dtype=torch.float32)
        return out
    given = {primary_task: spec} if isinstance(spec, list) else dict(spec)
    out = {}
    for task, w in given.items():
        if task not in tasks:
            raise ConfigError(f"class_weights: task '{task}' is not trained")
        if len(w) != tasks[task]:
            raise ConfigError(f"class_weights.{task}: {len(w)} weights for {tasks[task]} classes")
        out[task] = torch.tensor(w, dtype=torch.float32)
    return out


class EpochSampler(Sampler[int]):
    """Indices ``0 … n−1`` for one rank: a (seed, epoch) permutation, or in order.

    ``shuffle``: permute each epoch. ``rank`` / ``world_size``: DDP shard (position i of the
    permuted order goes to rank i mod world_size). ``pad``: repeat leading indices so every rank
    gets ceil(n / world_size). ``step``: optional callable returning the trainer's global step
    when an iteration starts; the sampler then derives the epoch and the batches of it already
    done, (epoch, done) = divmod(step, batches per epoch), and leaves out those ``done ·
    batch_size`` indices — at an epoch start done = 0, after a mid-epoch resume it is exactly the
    part already trained. This is evaluated lazily because Lightning may build the loader before
    it restores the checkpoint. ``draw``: indices per epoch when not n — the permutation repeated
    or cut to that length (the second domain of :class:`~gnnu.train.config.DomainAdaptationConfig`,
    paired batch for batch with the training split).
    """

    def __init__(self, n: int, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1,
                 pad: bool = True, batch_size: int = 1, step: Callable[[], int] | None = None,
                 draw: int | None = None):
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.world_size, self.pad = rank, world_size, pad
        self.batch_size, self.step = batch_size, step
        self.draw = n if draw is None else draw
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Epoch of the next permutation (used when no ``step`` source is given)."""
        self.epoch = epoch

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self) / self.batch_size)

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        if self.draw != self.n and self.n:
            order = (order * math.ceil(self.draw / self.n))[: self.draw]
        if self.world_size > 1 and self.pad and self.draw:
            total = math.ceil(self.draw / self.world_size) * self.world_size
            order += (order * math.ceil(total / self.draw))[: total - self.draw]
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[int]:
        skip = 0
        if self.step is not None:
            self.epoch, done = divmod(int(self.step()), self.batches_per_epoch)
            skip = done * self.batch_size
        return iter(self._indices()[skip:])

    def __len__(self) -> int:
        if self.world_size > 1 and self.pad:
            return math.ceil(self.draw / self.world_size)
        return len(range(self.rank, self.draw, self.world_size))


class EventDataModule(pl.LightningDataModule):
    """Train and validation loaders over a dataset, as graphs or images (see module docstring).

    ``root``: dataset directory; ``model``: the model config (decides graphs or images, and how
    images are rendered); ``batch_size`` events per batch and device; ``num_workers``;
    ``seed``: shuffling seed; ``max_events`` / ``max_val_events``: first events of the split
    used (None: all); ``pin_memory``: page-locked batches for GPU transfer. ``domain``: a
    :class:`~gnnu.train.config.DomainAdaptationConfig`; when it names a dataset, each training
    batch is a dict ``{"main": batch, "other": batch}`` with a batch of that dataset's split
    (standardised with the training split's statistics) beside the usual one.
    """

    def __init__(self, root: str | Path, model, batch_size: int, num_workers: int = 0, seed: int = 0,
                 max_events: int | None = None, max_val_events: int | None = None,
                 pin_memory: bool = False, domain=None):
        super().__init__()
        self.root = Path(root)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.pin_memory = pin_memory
        self.max_events, self.max_val_events = max_events, max_val_events
        self.train_set = open_dataset(self.root, "train", model)
        self.val_set = open_dataset(self.root, "val", model)
        self.n_train = min(len(self.train_set), max_events or len(self.train_set))
        self.n_val = min(len(self.val_set), max_val_events or len(self.val_set))
        for name, n in (("training", self.n_train), ("validation", self.n_val)):
            if n == 0:
                raise InputError(f"the {name} split is empty", self.root)
        self.domain = domain if domain is not None and domain.enabled else None
        self.other_set = None
        if self.domain is not None:
            self.other_set = open_dataset(self.domain.data, self.domain.split, model,
                                          getattr(self.train_set, "feature_stats", None))
            if len(self.other_set) == 0:
                raise InputError(f"domain_adaptation: the {self.domain.split} split is empty",
                                 self.domain.data)
            if list(self.other_set.feature_names) != self.feature_names:
                raise ConfigError(f"domain_adaptation.data {self.domain.data}: inputs "
                                  f"{list(self.other_set.feature_names)} differ from the training "
                                  f"data's {self.feature_names} (build both with one graph config)")

    def accounting(self) -> dict[str, dict]:
        """Events per split: ``{"train": {"in_split", "used", "skipped", "limit_key", "limit"},
        "val": …}`` — every event of the split is either used (the first ``used``) or skipped
        because of ``max_events`` / ``max_val_events`` (``limit``; None: no limit)."""
        out = {}
        for split, dataset, used, key, limit in (
                ("train", self.train_set, self.n_train, "max_events", self.max_events),
                ("val", self.val_set, self.n_val, "max_val_events", self.max_val_events)):
            n = len(dataset)
            out[split] = {"in_split": n, "used": used, "skipped": n - used,
                          "limit_key": key, "limit": limit}
            if not 0 <= used <= n:
                raise RuntimeError(f"event accounting broken: {split} uses {used} of {n} events")
        return out

    def domain_accounting(self) -> dict | None:
        """The second domain's events (None without one): its dataset, split, events in that split
        and events drawn per epoch (as many as training events; a permutation repeated or cut)."""
        if self.other_set is None:
            return None
        return {"path": str(self.domain.data), "split": self.domain.split,
                "in_split": len(self.other_set), "drawn_per_epoch": self.n_train}

    @property
    def feature_names(self) -> list[str]:
        """Node feature names (graphs) or channel names (images): the model's inputs."""
        return list(self.train_set.feature_names)

    @property
    def in_features(self) -> int:
        """Node features per hit (graphs) or input channels = rendered views (images)."""
        return len(self.feature_names)

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, dataset, sampler: EpochSampler, batch_size: int):
        return make_loader(dataset, batch_size, sampler=sampler, num_workers=self.num_workers,
                           pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0,
                           generator=torch.Generator().manual_seed(self.seed))

    def train_dataloader(self):
        rank, world = self._rank()
        trainer = self.trainer
        step = (lambda: trainer.global_step) if trainer is not None else None
        sampler = EpochSampler(self.n_train, shuffle=True, seed=self.seed, rank=rank, world_size=world,
                               batch_size=self.batch_size, step=step)
        main = self._loader(self.train_set, sampler, self.batch_size)
        if self.other_set is None:
            return main
        from lightning.pytorch.utilities import CombinedLoader

        paired = EpochSampler(len(self.other_set), shuffle=True, seed=self.seed + 1, rank=rank,
                              world_size=world, batch_size=self.batch_size, step=step,
                              draw=self.n_train)
        return CombinedLoader({"main": main, "other": self._loader(self.other_set, paired,
                                                                   self.batch_size)},
                              mode="min_size")

    def val_dataloader(self):
        rank, world = self._rank()
        sampler = EpochSampler(self.n_val, shuffle=False, rank=rank, world_size=world, pad=False)
        return self._loader(self.val_set, sampler, self.batch_size)

    def example_batch(self, n: int = 8):
        """The first ``n`` training events as one batch (for FLOP counting)."""
        loader = make_loader(self.train_set, min(n, self.n_train),
                             sampler=list(range(min(n, self.n_train))))
        return next(iter(loader))
