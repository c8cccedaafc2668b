"""Inference with a trained checkpoint over one dataset split: the library behind ``gnnu-eval``.

:func:`evaluate_checkpoint` rebuilds the model from the config stored in the checkpoint
(:mod:`gnnu.models.checkpoint`; loaded with ``weights_only=True`` onto the CPU, so a checkpoint
from a GPU machine works on a CPU-only one), opens the split as the model reads it — graphs, or
for image models the pixel maps rendered with the checkpoint's own ``image`` config, exactly as
in training (:func:`gnnu.train.data.open_dataset`) — refuses a dataset whose node features (or
image channels) differ from the checkpoint's, predicts every event of the split exactly once (sequential order, no sampler,
no padding) and writes the report of :func:`gnnu.evaluate.report.write_report`
(``metrics.json``, ``predictions.h5``, PNG plots), which reconciles the event count and ids with
the dataset.

Measured on the way (``metrics.json``: ``throughput_events_per_s``, ``peak_memory_bytes``,
``timing``):

- throughput = events / model time, where the model time of a batch runs from the host→device
  copy to the scores back on the host (CUDA synchronised); reading and collating the graphs (or
  rendering the images) is timed separately (``timing.data_s``) and not included. The first ``warmup`` batches are run
  once before the timed pass and not counted (they are predicted again in the timed pass).
- peak memory: on a GPU ``torch.cuda.max_memory_allocated`` during the timed pass (statistics
  reset before it); on the CPU (Linux) the largest resident set size sampled every 2 ms from the
  warm-up to the end of the timed pass, minus the resident set size just before it — the memory
  inference itself takes, a lower bound (peaks shorter than 2 ms and memory the allocator had
  already reserved are not seen). Where /proc is missing: the growth of the process's peak
  resident set size (``ru_maxrss``), 0 when inference stays below an earlier peak.

The precision is the one the model was trained with (``bf16-mixed`` → bfloat16 autocast,
``16-mixed`` → float16 autocast on GPU; float32 otherwise and for ``16-mixed`` on the CPU).
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import output_lock
from ..errors import ConfigError, InputError, OutputExistsError
from ..evaluate.report import Predictions, write_report
from ..graph.store import MANIFEST
from ..models import create_model
from ..models.heads import decode_target
from ..models.checkpoint import checkpoint_meta, load_checkpoint, model_state
from ..models.pretrained import resolve_checkpoint
from .config import train_config_from_dict
from .data import make_loader, manifest_hash, open_dataset, to_device
from .module import task_class_names
from .progress import EVERY, ProgressLines, progress_mode
from .run import device_name, resolve_accelerator


def _peak_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)   # Linux reports KiB


_STATM = "/proc/self/statm"


def _rss_bytes() -> int | None:
    """The process's current resident set size (Linux /proc), or None elsewhere."""
    try:
        with open(_STATM) as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class _RssSampler:
    """Largest current RSS seen while running: a thread reads /proc/self/statm every
    ``interval_s``. Peaks shorter than the interval can be missed (a lower bound)."""

    def __init__(self, interval_s: float = 0.002):
        self.interval_s, self.peak = interval_s, _rss_bytes() or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, _rss_bytes() or 0)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes() or 0)


def _autocast(precision: str, device: torch.device):
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "16-mixed" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def load_model(checkpoint: str | Path) -> tuple[torch.nn.Module, dict, object]:
    """(model on the CPU in eval mode, the checkpoint's ``gnnu`` block, its TrainConfig);
    ``checkpoint`` may name a shipped one (``pretrained:NAME``, :mod:`gnnu.models.pretrained`)."""
    checkpoint = resolve_checkpoint(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    meta = checkpoint_meta(ckpt, checkpoint)
    cfg = train_config_from_dict(meta["config"], where=f"{checkpoint}: config")
    model = create_model(cfg.model, in_features=int(meta["in_features"]), tasks=dict(meta["tasks"]),
                         regression=tuple(meta["regression"]))
    try:
        model.load_state_dict(model_state(ckpt))
    except RuntimeError as exc:
        raise InputError(f"weights do not fit the stored model config ({str(exc).splitlines()[0]})",
                         checkpoint) from None
    return model.eval(), meta, cfg


def is_dataset(path: str | Path) -> bool:
    """Whether ``path`` is a graph dataset written by ``gnnu-build`` (it has a manifest)."""
    return (Path(path) / "manifest.json").is_file()


def source_format(path: str | Path) -> str:
    """The input format of a raw source: ``dune-cvn`` for a directory of ``eventN.gz`` maps,
    ``gnnu`` otherwise (a hit file)."""
    p = Path(path)
    return "dune-cvn" if p.is_dir() and any(p.glob("event*.gz")) else "gnnu"


def build_for_checkpoint(checkpoint: str | Path, sources, out: str | Path, split: str = "test",
                         fmt: str | None = None, graph: str | None = None, force: bool = False,
                         workers: int = 1) -> Path:
    """Build raw ``sources`` (hit files, DUNE CVN directories, …) into the dataset ``out`` the
    way ``checkpoint`` was trained: with its recorded graph config (``graph`` overrides it;
    a checkpoint that records none needs ``graph``), every event in ``split``. Returns ``out``.
    Empty events are skipped and counted as gnnu-build does (the manifest says so)."""
    import yaml

    from ..graph.build import BuildOptions, build_dataset
    from ..graph.store import SPLITS

    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}' (known: {', '.join(SPLITS)})")
    checkpoint = resolve_checkpoint(checkpoint)
    meta = checkpoint_meta(load_checkpoint(checkpoint), checkpoint)
    out = Path(out)
    if graph is None:
        recorded = (meta.get("graph") or {}).get("graph_config") or meta.get("graph_config")
        if not recorded:
            raise ConfigError(f"{checkpoint}: the checkpoint records no graph config (trained before "
                              "gnnu 0.1 recorded it): give the one it was trained with (--graph)")
        out.mkdir(parents=True, exist_ok=True)
        graph = str(out.parent / f"{out.name}.graph.yaml")
        Path(graph).write_text(yaml.safe_dump(recorded, sort_keys=False))
    fmts = {fmt or source_format(s) for s in sources}
    if len(fmts) != 1:
        raise ConfigError(f"sources of several formats ({', '.join(sorted(fmts))}): give --format")
    fractions = tuple(1.0 if s == split else 0.0 for s in SPLITS)
    summary = build_dataset(BuildOptions(inputs=tuple(str(s) for s in sources), out=str(out),
                                         format=fmts.pop(), graph=graph, split=fractions,
                                         force=force, workers=workers))
    print(summary.report())
    return out


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path, split: str, out: str | Path,
                        device: str = "auto", batch_size: int | None = None, num_workers: int = 0,
                        warmup: int = 2, force: bool = False, plots: bool = True,
                        progress: str = "none", progress_every: int = EVERY) -> dict:
    """Predict ``split`` of dataset ``data`` with ``checkpoint`` and write the report to ``out``.

    ``device``: ``auto``, ``cpu`` or ``cuda``; ``batch_size``: events per batch (default: the
    training batch size); ``warmup``: untimed batches first; ``force``: overwrite an existing
    report; ``plots``: draw the PNG plots; ``progress``: ``auto``, ``bar``, ``lines`` or ``none``
    (:mod:`gnnu.train.progress`; lines every ``progress_every`` batches). Returns the
    metrics.json content. ``out`` is locked for the run (:func:`gnnu.atomic.output_lock`) and may
    not be a dataset directory.
    """
    if warmup < 0:
        raise ConfigError(f"--warmup must be ≥ 0, got {warmup}")
    out = Path(out)
    if (out / MANIFEST).exists() or (out.exists() and Path(data).exists()
                                     and out.resolve() == Path(data).resolve()):
        raise OutputExistsError(f"{out}: is a graph dataset directory; write the report elsewhere "
                                f"(e.g. RUN_DIR/eval-{split})")
    mode = progress_mode(progress)
    with output_lock(out, "gnnu-eval"):
        return _evaluate(checkpoint, data, split, out, device, batch_size, num_workers, warmup,
                         force, plots, mode, progress_every)


def _evaluate(checkpoint, data, split, out: Path, device, batch_size, num_workers, warmup, force,
              plots, mode, progress_every) -> dict:
    accelerator = resolve_accelerator(device)
    model, meta, cfg = load_model(checkpoint)
    dataset = open_dataset(data, split, cfg.model, meta.get("feature_stats"))
    if list(dataset.feature_names) != list(meta["feature_names"]):
        raise InputError(f"dataset features {dataset.feature_names} differ from the checkpoint's "
                         f"{meta['feature_names']} (rebuild the dataset with the training graph "
                         "config)", data)
    if len(dataset) == 0:
        raise InputError(f"the {split} split is empty", data)
    dev = torch.device("cuda" if accelerator == "gpu" else "cpu")
    model.to(dev)
    built = dict(model.loss_weights)
    tasks = {t: int(n) for t, n in meta["tasks"].items() if t in built}
    regression = [r for r in meta["regression"] if r in built]
    energy_target = model.config.heads.energy_target
    batch_size = batch_size or cfg.batch_size
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be ≥ 1, got {batch_size}")
    loader = make_loader(dataset, batch_size, shuffle=False, num_workers=num_workers,
                         pin_memory=dev.type == "cuda")

    def predict(batch):
        batch = to_device(batch, dev)
        with _autocast(cfg.precision, dev):
            out = model(batch)
        scores = {t: torch.softmax(out[t].float(), dim=1).cpu() for t in tasks}
        energies = {r: decode_target(r, out[r].float(), energy_target).cpu() for r in regression}
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return scores, energies

    rss0, max_rss0 = _rss_bytes(), _peak_rss_bytes()
    sampler = _RssSampler() if rss0 is not None and dev.type != "cuda" else None
    with torch.inference_mode(), (sampler or contextlib.nullcontext()):
        for i, batch in enumerate(loader):
            if i >= warmup:
                break
            predict(batch)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
        ids, labels, scores, e_true, e_pred = [], {t: [] for t in tasks}, {t: [] for t in tasks}, [], []
        model_s = data_s = 0.0
        lines = ProgressLines("gnnu-eval", len(loader), progress_every) if mode == "lines" else None
        bar = tqdm(total=len(dataset), unit="ev", desc="gnnu-eval", file=sys.stderr,
                   disable=mode != "bar")
        t_wall = t_prev = time.perf_counter()
        for batch in loader:
            t0 = time.perf_counter()
            data_s += t0 - t_prev
            s, e = predict(batch)
            t_prev = time.perf_counter()
            model_s += t_prev - t0
            n_batch = int(batch["event_id"].view(-1, 3).shape[0])
            bar.update(n_batch)
            if lines is not None:
                lines.step(n_batch, prefix=f"{split} batch ")
            ids.append(batch["event_id"].view(-1, 3).numpy())
            for t in tasks:
                labels[t].append(batch[t].view(-1).numpy())
                scores[t].append(s[t].numpy())
            e_true.append(batch["nu_energy"].view(-1).double().numpy())
            if "nu_energy" in e:
                e_pred.append(e["nu_energy"].double().numpy())
        wall = time.perf_counter() - t_wall
        bar.close()
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev)
    elif sampler is not None:
        peak = max(0, sampler.peak - rss0)
    else:
        peak = max(0, _peak_rss_bytes() - max_rss0)

    n = len(dataset)
    predictions = Predictions(
        event_ids=np.concatenate(ids),
        labels={t: np.concatenate(v).astype(np.int32) for t, v in labels.items()},
        scores={t: np.concatenate(v) for t, v in scores.items()},
        energy_true=np.concatenate(e_true),
        energy_pred=np.concatenate(e_pred) if e_pred else None,
        class_names={t: task_class_names(t, c) for t, c in tasks.items()},
        meta={"checkpoint": str(checkpoint), "model": cfg.model.name})
    primary = cfg.primary_task if cfg.primary_task in tasks else next(iter(tasks))
    timing = {"batch_size": batch_size, "warmup_batches": warmup, "model_s": model_s,
              "data_s": data_s, "wall_s": wall, "precision": cfg.precision,
              "end_to_end_events_per_s": n / wall if wall > 0 else None,
              "num_workers": num_workers}
    return write_report(
        out, predictions, split=split, manifest_hash=manifest_hash(data), expected_n_events=n,
        expected_ids=dataset.labels("event_id"), device=device_name(accelerator),
        throughput_events_per_s=n / model_s if model_s > 0 else None, peak_memory_bytes=int(peak),
        primary_task=primary, timing=timing, plots_on=plots, overwrite=force,
        dataset={"path": str(data), "checkpoint": str(checkpoint), "model": cfg.model.name,
                 "trained_on": meta["manifest_hash"]})
