"""The built graph dataset as a PyTorch Geometric ``Dataset`` with fast random access.

``GraphDataset(root, split='train')`` indexes the graphs of one split (``'train'``, ``'val'``,
``'test'`` or ``'all'``) of a dataset written by ``gnnu-build`` (:mod:`gnnu.graph.store`). Only
the small per-graph tables are read at construction; a graph is read on access as its own slice
of the node and edge arrays (a few HDF5 chunks). Shard files are opened lazily in each process
(re-opened after a fork, dropped when pickled), so PyG's ``DataLoader`` works with
``num_workers > 0``. The index of a split (:class:`ShardIndex`: where each event is, its labels,
the open files) is shared with the image dataset, so graphs and images of one dataset have the
same events in the same order with the same labels.

Each item is a ``torch_geometric.data.Data`` with

- ``x`` [n, F] float32: node features, standardised with the manifest's training-split
  statistics ((x − mean) / std) on the columns marked ``normalize`` when ``normalize=True``;
- ``pos`` [n, D] float32 cm; ``view_id`` [n] int64 (the hit's view; ``Data.view`` is a PyG
  method); ``edge_index`` [2, E] int64 (local, row 0 source, row 1 target);
- every field of :class:`gnnu.events.Truth` except the vertex as a tensor of shape [1]
  (integers int64, energies float32): ``flavour``, ``interaction``, ``is_antinu``, ``n_proton``
  …, ``nu_energy``, ``lep_energy`` (GeV) and the inelasticity as ``inelasticity`` (the
  :class:`~gnnu.events.Truth` field ``y``; ``data.y`` is left free for PyG's meaning, a target:
  :func:`gnnu.events.batch_key`);
- ``vertex`` [1, 3] float32 cm and ``event_id`` [1, 3] int64 (run, subrun, event), so a batch
  stacks them to [B, 3].
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch_geometric.data import Data, Dataset

from ..errors import ConfigError, InputError
from ..events import CLASS_LABELS, COUNT_LABELS, NUM_CLASSES, Truth, batch_key
from .store import SPLITS, read_manifest

_VERTEX = ("vtx_x", "vtx_y", "vtx_z")


def _check_labels(graphs, path: Path) -> None:
    """InputError naming the shard and the event when a class label lies outside its classes
    (−1 = undefined is allowed) or a count label is below −1."""
    for name in CLASS_LABELS:
        values = graphs[name][...]
        high = NUM_CLASSES[name] if name not in COUNT_LABELS else np.iinfo(np.int64).max
        bad = np.flatnonzero((values < -1) | (values >= high))
        if len(bad):
            g = int(bad[0])
            raise InputError(f"label {name} = {int(values[g])} is outside "
                             + (f"[-1, {high})" if name not in COUNT_LABELS else "the counts ≥ −1")
                             + f" ({len(bad)} such event(s) in this shard); the shard is damaged: "
                             "rebuild the dataset", path, event=g,
                             event_id=graphs["event_id"][g])


class ShardIndex:
    """Where each event of one split of a graph dataset lives, with its labels, and the shard
    files opened lazily per process — the one index every dataset view shares (graphs here,
    pixel maps in :class:`gnnu.images.dataset.ImageDataset`).

    ``root``: dataset directory; ``split``: ``'train'``, ``'val'``, ``'test'`` or ``'all'``.
    Only the per-graph tables are read at construction. Items are numbered in shard order, and
    within a shard in build order; handles are re-opened after a fork and dropped when pickled.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train"):
        """InputError naming the shard (and event) when a shard is missing, of another size than
        the manifest records, unreadable, of another dataset, or holds an impossible label."""
        if split not in SPLITS + ("all",):
            raise ConfigError(f"unknown split '{split}' (known: {', '.join(SPLITS + ('all',))})")
        self.path = Path(root)
        self.split = split
        self.manifest = read_manifest(self.path)
        self.files = [self.path / s["file"] for s in self.manifest["shards"]]
        self.node_offset, self.edge_offset = [], []
        where, labels = [], {k: [] for k in list(Truth.columns()) + ["event_id"]}
        code = None if split == "all" else SPLITS.index(split)
        for si, path in enumerate(self.files):
            try:
                with h5py.File(path, "r") as f:
                    if f.attrs.get("build_hash") != self.manifest.get("build_hash"):
                        raise InputError("shard of another dataset (its build hash is not the "
                                         "manifest's): copied or swapped in after the build; "
                                         "rebuild the dataset", path)
                    g = f["graphs"]
                    self.node_offset.append(g["node_offset"][...])
                    self.edge_offset.append(g["edge_offset"][...])
                    split_col = g["split"][...]
                    sel = (np.arange(len(split_col)) if code is None
                           else np.flatnonzero(split_col == code))
                    where.append(np.stack([np.full(len(sel), si), sel], 1))
                    _check_labels(g, path)
                    for k in labels:
                        labels[k].append(g[k][...][sel])
            except InputError:
                raise
            except (OSError, KeyError, ValueError, TypeError) as exc:
                raise InputError(f"unreadable shard ({str(exc).splitlines()[0]}); "
                                 f"rebuild the dataset", path) from None
        self.where = np.concatenate(where).astype(np.int64) if where else np.zeros((0, 2), np.int64)
        self._labels = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in labels.items()}
        self._open: dict[int, h5py.File] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.where)

    def nodes(self, idx: int) -> tuple[h5py.File, int, int]:
        """(open shard file, first node row, end node row) of item ``idx``."""
        si, g = (int(v) for v in self.where[idx])
        return self.file(si), int(self.node_offset[si][g]), int(self.node_offset[si][g + 1])

    def edges(self, idx: int) -> tuple[int, int]:
        """(first edge column, end edge column) of item ``idx`` in its shard."""
        si, g = (int(v) for v in self.where[idx])
        return int(self.edge_offset[si][g]), int(self.edge_offset[si][g + 1])

    def labels(self, name: str | None = None):
        """Per-graph truth of the whole split: a dict of [n] arrays (every
        :class:`gnnu.events.Truth` field, plus ``event_id`` [n, 3]), or one array by ``name``."""
        if name is None:
            return {k: v.copy() for k, v in self._labels.items()}
        if name not in self._labels:
            raise KeyError(f"unknown label '{name}' (known: {', '.join(self._labels)})")
        return self._labels[name].copy()

    def label_tensors(self, idx: int) -> dict[str, torch.Tensor]:
        """The truth of item ``idx`` as tensors: every label but the vertex [1] (integers int64,
        energies float32; named by :func:`gnnu.events.batch_key`: the inelasticity ``y`` as
        ``inelasticity``), ``vertex`` [1, 3] float32 cm, ``event_id`` [1, 3] int64."""
        out = {}
        for k, v in self._labels.items():
            if k in _VERTEX or k == "event_id":
                continue
            out[batch_key(k)] = torch.tensor([v[idx]], dtype=torch.float32 if v.dtype.kind == "f" else torch.long)
        out["vertex"] = torch.tensor([[self._labels[k][idx] for k in _VERTEX]], dtype=torch.float32)
        out["event_id"] = torch.from_numpy(self._labels["event_id"][idx].reshape(1, 3).astype(np.int64))
        return out

    def file(self, si: int) -> h5py.File:
        """Shard ``si``, opened once per process."""
        if self._pid != os.getpid():          # forked into a DataLoader worker: own handles
            self._open, self._pid = {}, os.getpid()
        if si not in self._open:
            self._open[si] = h5py.File(self.files[si], "r")
        return self._open[si]

    def close(self) -> None:
        """Close the shard files this process opened."""
        for f in self._open.values():
            f.close()
        self._open = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_open"] = {}
        return state


class GraphDataset(Dataset):
    """Graphs of one split of a gnnu graph dataset (see module docstring).

    ``root``: dataset directory. ``split``: ``'train'``, ``'val'``, ``'test'`` or ``'all'``.
    ``normalize``: standardise ``x`` with the manifest statistics — or with ``feature_stats``
    (``{"mean": [F], "std": [F]}``, as :attr:`feature_stats` gives them), the statistics a model
    was trained with, so a checkpoint sees its training standardisation on any dataset (the
    manifest's are fitted on *this* dataset's training split, which another dataset, e.g. real
    events with no training split, does not share). ``transform``: as in PyG.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", normalize: bool = True,
                 transform=None, feature_stats: dict | None = None):
        self.index = ShardIndex(root, split)
        self.path, self.split, self.manifest = self.index.path, split, self.index.manifest
        self.normalize = normalize
        feats = self.manifest["features"]
        self.feature_names = [f["name"] for f in feats]
        use = np.array([f["normalize"] for f in feats], bool)
        std = np.array([f["std"] for f in feats], np.float64)
        self._mean = np.where(use, [f["mean"] for f in feats], 0.0).astype(np.float32)
        self._std = np.where(use & (std > 0), std, 1.0).astype(np.float32)
        if feature_stats is not None:
            mean, std = (np.asarray(feature_stats[k], np.float32) for k in ("mean", "std"))
            if mean.shape != self._mean.shape or std.shape != self._std.shape or not (std > 0).all():
                raise InputError(f"feature statistics for {len(mean)} features (std > 0) do not fit "
                                 f"this dataset's {len(self._mean)}", self.path)
            self._mean, self._std = mean, std
        super().__init__(None, transform)

    # -- PyG Dataset interface ------------------------------------------------------------------
    def len(self) -> int:
        return len(self.index)

    def get(self, idx: int) -> Data:
        f, a, b = self.index.nodes(idx)
        ea, eb = self.index.edges(idx)
        x = f["nodes/x"][a:b]
        if self.normalize:
            x = (x - self._mean) / self._std
        data = Data(x=torch.from_numpy(np.ascontiguousarray(x, np.float32)),
                    pos=torch.from_numpy(f["nodes/pos"][a:b]),
                    edge_index=torch.from_numpy(f["edges/index"][:, ea:eb].astype(np.int64)),
                    view_id=torch.from_numpy(f["nodes/view"][a:b].astype(np.int64)))
        for k, v in self.index.label_tensors(idx).items():
            data[k] = v
        return data

    # -- extras ---------------------------------------------------------------------------------
    def labels(self, name: str | None = None):
        """Per-graph truth of the whole split without reading graphs (:meth:`ShardIndex.labels`)."""
        return self.index.labels(name)

    @property
    def feature_stats(self) -> dict[str, list[float]]:
        """The standardisation applied to ``x``: per feature ``mean`` and ``std`` (0 and 1 where
        a feature is not standardised); what a checkpoint records (``gnnu.train.run``)."""
        return {"mean": self._mean.tolist(), "std": self._std.tolist()}

    @property
    def num_node_features(self) -> int:
        return len(self.feature_names)

    def close(self) -> None:
        """Close the shard files this process opened."""
        self.index.close()
