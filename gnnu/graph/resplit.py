"""A built graph dataset with another train/val/test assignment (k-fold cross-validation).

``gnnu-build`` assigns splits by a hash of the event id (:func:`gnnu.graph.build.assign_split`),
which cannot express folds. :func:`resplit` copies a complete dataset to a new directory with the
split of every event given by its id, and refits the normalisation statistics on the new
training split (raw features are stored, so nothing else changes): the same graphs, the same
order, the same labels — only ``/graphs/split`` of each shard and the manifest's statistics,
counts and split rule differ. The protocol of :mod:`tools/dune_real.py` (issue 22) builds one
such dataset per fold of the 400 real DUNE events.

The manifest keeps the source dataset's fields and records ``resplit`` = {source dataset,
its build hash, the rule text}; ``build_hash`` becomes the sha256 of the source's build hash and
the assignment, so two assignments are never taken for one dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np

from ..errors import ConfigError, InputError, OutputExistsError
from ..events import Flavour
from .store import MANIFEST, SPLITS, read_manifest, shard_file_record, write_json_atomic


def _class_name(code: int) -> str:
    return Flavour(int(code)).label if 0 <= code < len(Flavour) else "undefined"


def _moments(x: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    xs = x.astype(np.float64)
    mean = xs.mean(axis=0) if len(xs) else np.zeros(x.shape[1])
    return len(xs), mean, ((xs - mean) ** 2).sum(axis=0)


def resplit(src: str | os.PathLike, dst: str | os.PathLike, split_of: dict[tuple[int, int, int], int],
            rule: str, force: bool = False) -> dict:
    """Copy dataset ``src`` to ``dst`` with event id → split code (0 train, 1 val, 2 test) from
    ``split_of``, which must cover every event; returns the new manifest. ``rule`` describes
    the assignment (stored in the manifest). Refuses an existing ``dst`` unless ``force``."""
    from .build import _combine_moments

    src, dst = Path(src), Path(dst)
    manifest = read_manifest(src)
    if dst.exists():
        if not force:
            raise OutputExistsError(f"{dst}: exists (use force to replace it)")
        shutil.rmtree(dst)
    bad = {v for v in split_of.values() if v not in (0, 1, 2)}
    if bad:
        raise ConfigError(f"split codes must be 0, 1 or 2, got {sorted(bad)}")
    digest = hashlib.sha256(json.dumps([manifest["build_hash"], sorted(
        [list(k) + [v] for k, v in split_of.items()])]).encode()).hexdigest()
    dst.mkdir(parents=True)
    shards = []
    n_feat = len(manifest["features"])
    moments, per_split = [], {s: 0 for s in SPLITS}
    per_class: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    seen = 0
    for shard in manifest["shards"]:
        tmp = dst / (shard["file"] + ".tmp")
        shutil.copyfile(src / shard["file"], tmp)
        with h5py.File(tmp, "r+") as f:
            ids = f["graphs/event_id"][...]
            try:
                split = np.array([split_of[tuple(int(v) for v in row)] for row in ids], np.int8)
            except KeyError as exc:
                raise InputError(f"event id {exc.args[0]} has no split in the assignment",
                                 src / shard["file"]) from None
            f["graphs/split"][...] = split
            f.attrs["build_hash"] = digest          # the shard belongs to the new dataset
            offsets = f["graphs/node_offset"][...]
            train_nodes = np.repeat(split == 0, np.diff(offsets))
            moments.append(_moments(f["nodes/x"][...][train_nodes]))
            flavour = f["graphs/flavour"][...]
            for c, name in enumerate(SPLITS):
                per_split[name] += int((split == c).sum())
                for fl in np.unique(flavour[split == c]):
                    key = _class_name(fl)
                    per_class[name][key] = per_class[name].get(key, 0) + int(((split == c) & (flavour == fl)).sum())
            seen += len(ids)
        os.replace(tmp, dst / shard["file"])
        shards.append({**shard, **shard_file_record(dst / shard["file"])})
    if seen != len(split_of):
        raise InputError(f"the assignment names {len(split_of)} events, the dataset holds {seen}", src)
    n_train, mean, m2 = _combine_moments(moments, n_feat)
    std = np.sqrt(m2 / n_train) if n_train else np.ones(n_feat)
    new = dict(manifest)
    new["shards"] = shards
    new["build_hash"] = digest
    new["resplit"] = {"source": str(src.resolve()), "source_build_hash": manifest["build_hash"],
                      "rule": rule}
    new["split"] = {**manifest["split"], "rule": rule, "fractions": None}
    new["features"] = [{**c, "mean": float(m), "std": float(s)}
                       for c, m, s in zip(manifest["features"], mean, std)]
    new["normalisation"] = {**manifest["normalisation"], "n_nodes": n_train, "mean": mean.tolist(),
                            "std": std.tolist()}
    new["counts"] = {**manifest["counts"], "per_split": per_split,
                     "per_class": {s: dict(sorted(c.items())) for s, c in per_class.items()}}
    write_json_atomic(dst / MANIFEST, new)
    return new
