"""``gnnu-predict``: score events with a trained checkpoint, with or without truth.

:func:`predict` reads each input with its format's reader (``require_truth=False``: hit files
without labels, NuML files without truth tables, DUNE CVN directories holding only
``eventN.gz``), turns blocks of events into the model's inputs exactly as ``gnnu-build`` and the
datasets do — graphs with the checkpoint's own graph config (:func:`gnnu.graph.block.make_graphs`)
standardised with its training statistics, or for CNNs the pixel maps of its image preset — and
writes ``predictions.h5`` in the layout ``gnnu-eval`` writes (:mod:`gnnu.evaluate.report`): every
event id and every head's scores, the labels (and true energy) only when every input has truth.

Before any work: an existing output is refused without ``force``; an input whose representation
(detector hits vs DUNE CVN pixels), detector or node features do not fit the checkpoint is one
InputError naming what differs (:func:`gnnu.deploy.model.require_fit`). Nothing is dropped
silently: events that cannot become an input (empty, too many hits, …, :data:`BAD_REASONS`) are
skipped and counted by reason, in the summary and the file's metadata. Labels a model cannot
hold (e.g. a cosmic for a 4-class flavour head) are written as −1 and counted.

Simplifications: image models centre vertex-centred presets on the truth vertex where the input
has one and on the charge centroid otherwise (real data has no truth vertex; a reconstructed one
would go there); the summary counts the events centred on their centroid.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import ConfigError, InputError, OutputExistsError
from ..evaluate.report import Predictions, write_predictions
from ..graph.block import graph_detector, make_graphs
from ..graph.features import feature_columns
from ..io.base import open_source
from ..models.heads import decode_target
from ..train.run import resolve_accelerator
from .model import Deployable, load_deployable, predict_config, require_fit, standardise

FORMATS = ("gnnu", "numl", "dune-cvn")


@dataclass
class PredictSummary:
    """Counts and timing of one run: events read, scored and skipped by reason."""

    out: Path
    n_in: int = 0
    n_scored: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    labelled: bool = False
    centroid_centred: int = 0
    relabelled: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float | None:
        return self.n_in / self.seconds if self.seconds > 0 else None


def _readers(dep: Deployable, inputs, fmt: str):
    options = dict(dep.graph.get("reader_options") or {}) if fmt == dep.graph.get("format") else {}
    if fmt in ("numl", "dune-cvn") and "detector" not in options:
        det = (dep.graph.get("detector") or {}).get("config") or {}
        base = det.get("base") if det.get("kind") == "pixelmap" else det
        if isinstance(base, dict) and base.get("name"):
            options["detector"] = base["name"]
    readers = []
    try:
        for path in inputs:
            readers.append(open_source(path, fmt, require_truth=False, **options))
    except BaseException:
        for r in readers:
            r.close()
        raise
    return readers


def _image_inputs(dep: Deployable, block, events, frame, preset):
    from ..pixelmap import render

    labels = {k: np.array([getattr(events[i].truth, k) for i in block.index], np.float64)
              for k in ("vtx_x", "vtx_y", "vtx_z")}
    vertex = frame.vertex_pixels(labels, preset) if preset.centring == "vertex" else None
    images, centroid = [], 0
    for g in range(block.n_graphs):
        a, b = block.node_offset[g], block.node_offset[g + 1]
        cols = frame.columns(block.view[a:b], block.hit[a:b])
        v = None
        if vertex is not None and np.isfinite(vertex[g]).all():
            v = vertex[g]
        elif preset.centring == "vertex":
            centroid += 1
        images.append(render(cols, preset, vertex_pixel=v))
    return torch.from_numpy(np.stack(images)) if images else None, centroid


def predict(checkpoint: str | os.PathLike, inputs, fmt: str, out: str | os.PathLike,
            batch_size: int | None = None, device: str = "auto", force: bool = False,
            progress: bool = True) -> PredictSummary:
    """Score every event of ``inputs`` (paths of format ``fmt``) with ``checkpoint`` and write
    ``out`` (predictions.h5 layout); returns the counts."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: '{fmt}' is not one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not force:
        raise OutputExistsError(f"{out}: output exists (use --force to overwrite)")
    if out.is_dir():
        raise OutputExistsError(f"{out}: is a directory, not a file")
    if not inputs:
        raise ConfigError("--input: give at least one source")
    dep = load_deployable(checkpoint)
    batch_size = batch_size or dep.config.batch_size
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be ≥ 1, got {batch_size}")
    dev = torch.device("cuda" if resolve_accelerator(device) == "gpu" else "cpu")
    cfg = predict_config(dep, fmt)
    readers = _readers(dep, inputs, fmt)
    try:
        frame = preset = None
        for reader in readers:                      # every input checked before any work
            gdet = graph_detector(reader.detector, cfg)
            names = [c.name for c in feature_columns(cfg.features, gdet)]
            require_fit(dep, fmt, gdet, names, reader.path)
        if dep.inputs == "image":
            from ..images.dataset import image_preset
            from ..images.frame import HitFrame

            frame = HitFrame.from_manifest({"detector": dep.graph.get("detector") or {}})
            preset = image_preset(dep.config.model.image)
        summary = PredictSummary(out=out, labelled=all(r.has_truth for r in readers))
        model = dep.model.to(dev)
        ids, scores, labels, e_true, e_pred = [], {t: [] for t in dep.tasks}, \
            {t: [] for t in dep.tasks}, [], []
        total = sum(len(r) for r in readers)
        bar = tqdm(total=total, unit="ev", desc="gnnu-predict", file=sys.stderr,
                   disable=None if progress else True)
        t0 = time.perf_counter()
        try:
            for reader in readers:
                gdet = graph_detector(reader.detector, cfg)
                for start in range(0, len(reader), batch_size):
                    events = reader.read_range(start, min(start + batch_size, len(reader)))
                    block = make_graphs(events, reader.detector, cfg)
                    summary.n_in += len(events)
                    for _, reason in block.bad:
                        summary.skipped[reason] = summary.skipped.get(reason, 0) + 1
                    bar.update(len(events))
                    if block.n_graphs == 0:
                        continue
                    with torch.inference_mode():
                        if dep.inputs == "image":
                            image, centroid = _image_inputs(dep, block, events, frame, preset)
                            summary.centroid_centred += centroid
                            output = model({"image": image.to(dev)})
                        else:
                            output = model(_graph_batch(dep, block, dev))
                    kept = [events[i] for i in block.index]
                    summary.n_scored += len(kept)
                    ids.append(np.array([e.event_id for e in kept], np.int64).reshape(-1, 3))
                    for t, c in dep.tasks.items():
                        scores[t].append(torch.softmax(output[t].float(), 1).cpu().numpy())
                        lab = np.array([getattr(e.truth, t) for e in kept], np.int64)
                        bad = (lab < -1) | (lab >= c)
                        if bad.any():
                            summary.relabelled[t] = summary.relabelled.get(t, 0) + int(bad.sum())
                        labels[t].append(np.where(bad, -1, lab).astype(np.int32))
                    e_true.append(np.array([e.truth.nu_energy for e in kept], np.float64))
                    if "nu_energy" in dep.regression:
                        e_pred.append(decode_target("nu_energy", output["nu_energy"].float(),
                                                    dep.model.energy_target).cpu().double().numpy())
        finally:
            bar.close()
        summary.seconds = time.perf_counter() - t0
    finally:
        for r in readers:
            r.close()
    if summary.n_in != summary.n_scored + sum(summary.skipped.values()):
        raise RuntimeError(f"event accounting broken: {summary.n_in} in, {summary.n_scored} "
                           f"scored, {summary.skipped} skipped")
    n_tasks = {t: (np.concatenate(v) if v else np.zeros((0, dep.tasks[t]), np.float32))
               for t, v in scores.items()}
    predictions = Predictions(
        event_ids=np.concatenate(ids) if ids else np.zeros((0, 3), np.int64),
        labels=({t: (np.concatenate(v) if v else np.zeros(0, np.int32)) for t, v in labels.items()}
                if summary.labelled else {}),
        scores=n_tasks,
        energy_true=(np.concatenate(e_true) if e_true else np.zeros(0)) if summary.labelled else None,
        energy_pred=np.concatenate(e_pred) if e_pred else None,
        class_names=dep.class_names,
        meta={"checkpoint": str(dep.path), "model": dep.name, "inputs": [str(p) for p in inputs],
              "format": fmt, "graph_config": cfg.name, "device": str(dev),
              "counts": {"in": summary.n_in, "scored": summary.n_scored,
                         "skipped_by_reason": summary.skipped,
                         "labels_outside_model_classes": summary.relabelled,
                         "centroid_centred": summary.centroid_centred},
              "events_per_s": summary.events_per_s})
    write_predictions(out, predictions, overwrite=force)
    return summary


def _graph_batch(dep: Deployable, block, dev: torch.device):
    from torch_geometric.data import Batch, Data

    x = standardise(block.x, dep.feature_stats)
    graphs = []
    for g in range(block.n_graphs):
        a, b = block.node_offset[g], block.node_offset[g + 1]
        ea, eb = block.edge_offset[g], block.edge_offset[g + 1]
        graphs.append(Data(x=torch.from_numpy(x[a:b]), pos=torch.from_numpy(block.pos[a:b]),
                           edge_index=torch.from_numpy(block.edge_index[:, ea:eb].astype(np.int64))))
    return Batch.from_data_list(graphs).to(dev)
