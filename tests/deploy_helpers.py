"""Checkpoints for the deployment tests without training: a model built as gnnu-train builds it,
with random weights and BatchNorm statistics (so every layer matters), saved with the ``gnnu``
block gnnu-train writes."""

from __future__ import annotations

from pathlib import Path

import torch

from gnnu.config import to_dict
from gnnu.models import create_model
from gnnu.train.config import load_train_config
from gnnu.train.data import dataset_tasks, manifest_hash, open_dataset
from gnnu.train.run import graph_record

#: Small model configs of every family (the image ones render 64 × 64 dune-cvn maps).
SMALL_MODELS = {
    "edgeconv": {"name": "edgeconv", "params": {"widths": [16, 16]}, "heads": {"hidden": [16]}},
    "dynedgeconv": {"name": "dynedgeconv", "params": {"k": 6, "widths": [16, 16]},
                    "heads": {"hidden": [16]}},
    "gravnet": {"name": "gravnet", "params": {"blocks": 2, "dense": [16], "out_channels": 8,
                                              "propagate_dimensions": 8, "k": 6},
                "heads": {"hidden": [16]}},
    "dune_cvn": {"name": "dune_cvn", "image": {"preset": "dune-cvn", "size": [64, 64]},
                 "params": {"stem_channels": 8, "channels": [8, 16], "blocks": [1, 1],
                            "se_ratio": 4}, "heads": {"hidden": [], "dropout": 0.0}},
    "nova_cvn": {"name": "nova_cvn", "image": {"preset": "dune-cvn", "size": [64, 64]},
                 "params": {"width": 0.125}, "heads": {"hidden": [], "dropout": 0.0}},
    "resnet18": {"name": "resnet18", "image": {"preset": "resnet-rgb", "size": [64, 64]},
                 "params": {"weights": "none"}, "heads": {"hidden": [], "dropout": 0.0}},
}


def fake_checkpoint(path: Path, model_cfg: dict, data: Path, seed: int = 0,
                    graph: bool = True) -> Path:
    """A gnnu-train-style checkpoint of ``model_cfg`` for dataset ``data`` (random weights).
    ``graph=False``: without the graph record (as checkpoints written before it existed)."""
    torch.manual_seed(seed)
    cfg = load_train_config(base={"model": model_cfg}, data=str(data))
    train = open_dataset(data, "train", cfg.model)
    tasks = dataset_tasks(train.manifest, cfg.num_classes)
    model = create_model(cfg.model, in_features=len(train.feature_names), tasks=tasks,
                         regression=cfg.regression)
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
    meta = {"version": "0.1.0", "config": to_dict(cfg), "feature_names": list(train.feature_names),
            "manifest_hash": manifest_hash(data), "data": str(data), "tasks": tasks,
            "regression": list(cfg.regression), "in_features": len(train.feature_names),
            "feature_stats": getattr(train, "feature_stats", None)}
    if graph:
        meta["graph"] = graph_record(train.manifest)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "gnnu": meta}, path)
    return path
