"""Re-timing compared models on this machine: ``gnnu-compare --remeasure``.

Every model of a comparison (:class:`gnnu.evaluate.runs.Entry`) is run again through
:func:`gnnu.train.inference.evaluate_checkpoint` — gnnu-eval's own inference and definitions
(model time from the host→device copy to the scores on the host, warm-up batches excluded; GPU
peak = ``max_memory_allocated``, CPU peak = growth of the resident set) — on the same split of
the same dataset with one batch size. Each model runs in its own fresh process (spawned), so no
allocator state, cache or memory peak carries over from another model; the repeats are
interleaved across models (A, B, A, B, …) so slow drifts of the machine hit all alike. Events/s
is the median over the repeats, peak memory the largest.

This is the training stage's side of :func:`gnnu.evaluate.compare.compare_runs`: ``evaluate``
stays free of torch and of later stages, and reaches this module through its
:data:`gnnu.evaluate.compare.REMEASURERS` extension point.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from ..errors import ConfigError, InputError
from ..evaluate.compare import REMEASURERS, Remeasure
from ..evaluate.report import METRICS_FILE
from ..evaluate.runs import ComparisonError, Entry, Speed, _recorded_checkpoint
from .data import manifest_hash
from .inference import evaluate_checkpoint


def _init_worker(filters: list) -> None:
    """A spawned measuring process keeps the parent's warning filters (one-line errors) and
    imports the inference code up front (all workers in parallel, before any timing)."""
    warnings.filters[:] = filters
    from . import inference  # noqa: F401  (imported before any timing)


def _measure(checkpoint: str, data: str, split: str, device: str, batch_size: int, warmup: int,
             out: str) -> dict:
    """One timed pass of gnnu-eval's inference (runs in a worker process)."""
    m = evaluate_checkpoint(checkpoint, data, split, out, device=device, batch_size=batch_size,
                            warmup=warmup, force=True)
    return {"events_per_s": m["throughput_events_per_s"], "peak": m["peak_memory_bytes"],
            "device": m["device"], "precision": (m.get("timing") or {}).get("precision"),
            "n_events": m["n_events"], "manifest_hash": m["dataset"]["manifest_hash"]}


def _checkpoint_of(e: Entry) -> Path:
    """The evaluated checkpoint: as recorded in metrics.json, else the file of that name in the run."""
    ckpt = _recorded_checkpoint(e.metrics)
    if ckpt is None:
        raise InputError("no dataset.checkpoint: cannot re-measure this model", e.report_dir / METRICS_FILE)
    for candidate in [ckpt] + ([e.run_dir / ckpt.name] if e.run_dir else []):
        if candidate.is_file():
            return candidate
    raise InputError(f"the evaluated checkpoint {ckpt} is gone (needed by --remeasure)",
                     e.report_dir / METRICS_FILE)


def _dataset_for(entries: list[Entry], data: str | None) -> Path:
    """The dataset to re-measure on: ``data``, else the first recorded path that exists; its
    manifest hash must be the reports' one."""
    want = entries[0].metrics["dataset"]["manifest_hash"]
    if data is None:
        recorded = [(e.metrics["dataset"].get("path") or "") for e in entries]
        found = [Path(p) for p in recorded if p and Path(p).is_dir()]
        if not found:
            raise ConfigError(f"--remeasure: the dataset the reports name ({', '.join(sorted(set(recorded)))}) "
                              "is not here; give it with --data DIR")
        data = found[0]
    if manifest_hash(data) != want:
        raise ComparisonError(f"--remeasure: {data} is not the dataset the reports were evaluated "
                              f"on (manifest {manifest_hash(data)}, reports {want})")
    return Path(data)


@REMEASURERS.register("checkpoint")
def remeasure(entries: list[Entry], options: Remeasure) -> str:
    """Time every entry's inference again on this machine (module docstring) and replace its
    :class:`Speed`; returns the note describing the measurement. ConfigError for bad options."""
    if options.repeats < 1:
        raise ConfigError(f"--repeats must be ≥ 1, got {options.repeats}")
    if options.warmup < 0:
        raise ConfigError(f"--warmup must be ≥ 0, got {options.warmup}")
    batch = options.batch_size
    if batch is None:
        sizes = {e.speed.batch_size for e in entries}
        if len(sizes) != 1 or None in sizes:
            raise ConfigError("--remeasure: the reports used different or unknown batch sizes "
                              f"({', '.join(f'{e.label}: {e.speed.batch_size}' for e in entries)}); "
                              "choose one with --batch-size")
        batch = sizes.pop()
    if batch < 1:
        raise ConfigError(f"--batch-size must be ≥ 1, got {batch}")
    checkpoints = [_checkpoint_of(e) for e in entries]
    data = _dataset_for(entries, options.data)
    split = entries[0].metrics["dataset"]["split"]
    want = entries[0].metrics["dataset"]["manifest_hash"]
    results: list[list[dict]] = [[] for _ in entries]
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="gnnu-compare-") as tmp, ExitStack() as stack:
        pools = [stack.enter_context(ProcessPoolExecutor(1, mp_context=context, initializer=_init_worker,
                                                         initargs=(list(warnings.filters),)))
                 for _ in entries]
        for started in [pool.submit(int) for pool in pools]:   # start every worker at once
            started.result()
        for _ in range(options.repeats):
            for k, pool in enumerate(pools):
                results[k].append(pool.submit(_measure, str(checkpoints[k]), str(data), split,
                                              options.device, batch, options.warmup,
                                              os.path.join(tmp, str(k))).result())
    for e, runs in zip(entries, results):
        if runs[0]["manifest_hash"] != want or runs[0]["n_events"] != len(e.predictions):
            raise ComparisonError(f"--remeasure: {e.source} re-ran on {runs[0]['n_events']} events "
                                  f"of {runs[0]['manifest_hash']}, not the compared events")
        rates = [r["events_per_s"] for r in runs if r["events_per_s"] is not None]
        e.speed = Speed(statistics.median(rates) if rates else None,
                        max(int(r["peak"]) for r in runs), runs[0]["device"], batch,
                        runs[0]["precision"], source="remeasured")
    return (f"Inference events/s and peak memory re-measured by gnnu-compare on {entries[0].speed.device} "
            f"with batch size {batch}: each model in its own fresh process, {options.warmup} warm-up "
            f"batch(es) excluded, the median events/s and the largest peak memory of "
            f"{options.repeats} pass(es) over the {len(entries[0].predictions)} {split} events, "
            "passes interleaved across models.")
