"""Pixel maps of a graph dataset's events, rendered on the fly: the CNNs' view of the same data.

``ImageDataset(root, split, image)`` is a view of a dataset written by ``gnnu-build``: it shares
the graph dataset's index (:class:`gnnu.graph.dataset.ShardIndex`), so it holds the same events
of the same split in the same order with the same labels — one source of truth, nothing
duplicated on disk. An item renders the event's stored hits (``/nodes/hit``, schema ≥ 1.1) with
the image config's preset (:func:`gnnu.pixelmap.render`); the dataset stores hits only
(sparse: ~16 bytes per hit, ~50 kB for a 3 k-hit event, against 750 kB for a dense 3 × 500 × 500
uint8 map), so 100 k events need a few GB, not 75.

Each item is a dict:

- ``image``: uint8 tensor [V, H, W] (views in the preset's order; H columns of wires, W time
  bins — or plane rows × cell columns);
- every field of :class:`gnnu.events.Truth` but the vertex as a tensor of shape [1] (integers
  int64, energies float32), ``vertex`` [1, 3] float32 cm and ``event_id`` [1, 3] int64 — the
  same keys, dtypes and shapes as :class:`gnnu.graph.dataset.GraphDataset`'s items.

:func:`collate_images` stacks items into a batch dict: ``image`` [B, V, H, W] uint8 (models
convert to float themselves, so host → device copies stay uint8), labels [B], ``vertex`` and
``event_id`` [B, 3]; ``image`` is the batch's first key.

Centring: ``vertex`` uses the truth vertex stored with the labels (simulation truth; real data
would need a reconstructed vertex), ``centroid`` the charge centroid of each view; pixel-hit
datasets (DUNE CVN's released events, ``pixelize`` builds) use their map's own frame (see
:mod:`gnnu.images.frame`), so the ``dune-cvn`` preset gives back the released maps exactly.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..graph.dataset import ShardIndex
from ..graph.store import require_hits
from .config import ImageConfig
from .frame import HitFrame
from .layouts import IMAGE_LAYOUTS
from ..pixelmap import PixelMapPreset, get_preset, render


def image_preset(image: ImageConfig | PixelMapPreset | str) -> PixelMapPreset:
    """The preset an image config, preset or preset name stands for."""
    return image.preset_object() if isinstance(image, ImageConfig) else get_preset(image)


def check_preset(preset: PixelMapPreset, frame: HitFrame) -> None:
    """ConfigError unless ``preset`` can render hits of ``frame``'s dataset: every view it draws
    exists, the detector kind has an image layout, and the preset's layout (plane-cell or
    wire-time maps) is that one."""
    names = frame.view_names
    if max(preset.views) >= len(names):
        raise ConfigError(f"image preset '{preset.name}' renders views {list(preset.views)}; the "
                          f"dataset's detector has {len(names)} ({', '.join(names)})")
    layout = frame.layout
    if layout is None:
        raise ConfigError(f"image preset '{preset.name}': this dataset's detector kind "
                          f"'{frame.detector.kind}' has no image layout "
                          f"(gnnu.images.layouts: {IMAGE_LAYOUTS.known()})")
    if preset.layout != layout.layout:
        raise ConfigError(f"image preset '{preset.name}' ({preset.layout} maps) does not fit this "
                          f"dataset's hits ({layout.layout}: {layout.detectors})")


class ImageDataset(Dataset):
    """Pixel maps of one split of a gnnu graph dataset (see module docstring).

    ``root``: dataset directory (schema ≥ 1.1); ``split``: ``'train'``, ``'val'``, ``'test'`` or
    ``'all'``; ``image``: an :class:`~gnnu.images.config.ImageConfig`, a preset or a preset name.
    ConfigError when the preset does not fit the dataset's detector (views it lacks, plane-cell
    maps of wire-plane hits or the reverse); InputError for a dataset without stored hits.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 image: ImageConfig | PixelMapPreset | str = "dune-cvn"):
        self.index = ShardIndex(root, split)
        self.path, self.split, self.manifest = self.index.path, split, self.index.manifest
        require_hits(self.manifest, self.path)
        self.preset = image_preset(image)
        self.frame = HitFrame.from_manifest(self.manifest)
        names = self.frame.view_names
        check_preset(self.preset, self.frame)
        #: Channel names, one per rendered view (what a checkpoint records as its inputs).
        self.feature_names = [f"image_{names[v]}" for v in self.preset.views]
        self._vertex = (self.frame.vertex_pixels(self.index.labels(), self.preset)
                        if self.preset.centring == "vertex" else None)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(V, H, W) of every image."""
        return self.preset.shape

    def __len__(self) -> int:
        return len(self.index)

    def render(self, idx: int) -> np.ndarray:
        """The pixel maps of item ``idx``: uint8 [V, H, W]."""
        f, a, b = self.index.nodes(idx)
        columns = self.frame.columns(f["nodes/view"][a:b], f["nodes/hit"][a:b])
        vertex = None
        if self._vertex is not None and np.isfinite(self._vertex[idx]).all():
            vertex = self._vertex[idx]
        return render(columns, self.preset, vertex_pixel=vertex)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} events")
        idx = idx % len(self)
        return {"image": torch.from_numpy(self.render(idx)), **self.index.label_tensors(idx)}

    def labels(self, name: str | None = None):
        """Per-event truth of the whole split without rendering (:meth:`ShardIndex.labels`)."""
        return self.index.labels(name)

    def close(self) -> None:
        """Close the shard files this process opened."""
        self.index.close()


def collate_images(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Items of :class:`ImageDataset` → one batch dict: ``image`` [B, V, H, W] uint8 first, then
    every label concatenated along the event axis ([B], ``vertex`` / ``event_id`` [B, 3])."""
    batch = {"image": torch.stack([it["image"] for it in items])}
    for key in items[0]:
        if key != "image":
            batch[key] = torch.cat([it[key] for it in items])
    return batch
