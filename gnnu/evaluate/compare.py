"""Several evaluated models side by side on identical events: the library behind ``gnnu-compare``
(DESIGN §7, §10).

Inputs. Each input is a run directory of ``gnnu-train`` (``run.json``) holding one report of
``gnnu-eval`` (``metrics.json`` + ``predictions.h5``) in a direct sub-directory — e.g.
``gnnu-eval --checkpoint RUN/best.ckpt --out RUN/eval-test`` — or the report directory itself.
A run with several reports is narrowed by ``split`` (or name the report directory). A report's
run directory is the first of: the directory of the checkpoint recorded in ``metrics.json``
(``dataset.checkpoint``), the report directory, its parent, that holds a ``run.json``; without
one, parameters, FLOPs/event and training time are n/a (and noted).

Identity. Every report must have the same dataset manifest hash, split, primary task and class
names, the same set of event ids (compared through a hash of the sorted ids from
``predictions.h5``) and the same true labels for them; otherwise :class:`ComparisonError` names
the inputs on each side and what differs (exit code 2). Each ``predictions.h5`` must also match its
own ``metrics.json`` (event count, no duplicated id, accuracy).

Metrics. Recomputed from ``predictions.h5`` with :func:`gnnu.evaluate.metrics.evaluate_task`
(primary task; efficiency vs true neutrino energy in its default bins) and
:func:`gnnu.evaluate.metrics.energy_resolution`: the same definitions as every report.
Parameters, FLOPs per event, training wall time (summed over resumes), epochs and the training
device come from ``run.json``.

Inference speed and peak memory:

- by default they are the reports' own figures (``throughput_events_per_s``,
  ``peak_memory_bytes`` of ``gnnu-eval``). They share a column only when every report was measured
  on the same device with the same batch size; otherwise the table marks them "not comparable"
  (values in parentheses, each with its own device and batch size), the CSV says
  ``speed_comparable = False`` and no cost-vs-accuracy plot is drawn;
- with :class:`Remeasure` (``--remeasure``) every model is timed again on this machine through
  :func:`gnnu.train.inference.evaluate_checkpoint` (its definitions: model time from the host→device
  copy to the scores on the host, warm-up batches excluded; GPU peak = ``max_memory_allocated``,
  CPU peak = growth of the process's peak RSS) on the same split of the same dataset with one batch
  size. Each model runs in its own fresh process (spawned), so no allocator state, cache or
  memory peak carries over from another model; the repeats are interleaved across models
  (A, B, A, B, …) so slow drifts of the machine hit all alike. Events/s is the median over the
  repeats, peak memory the largest.

Outputs in ``out``: ``comparison.md`` (summary table, per-class efficiency / purity / F1 / AUC
tables, notes, inputs, plots), ``comparison.csv`` (tidy: one row per model × class, model-level
columns repeated), ``roc.png`` (one-vs-rest ROC of every model, a panel per signal class),
``efficiency_vs_energy.png`` (a panel per class, one series per model) and ``cost_vs_f1.png``
(macro F1 vs inference events/s, marker area ∝ parameters). An existing comparison is refused
unless ``force``; then outputs of the old one not written again are removed. Files are written
atomically, ``comparison.md`` last.

Simplifications: only the primary task is compared (the other heads stay in the reports); no
statistical test between models — the efficiency of a class with n true events carries a
binomial uncertainty ≈ sqrt(ε(1 − ε)/n) (noted in the table); speed re-measurement writes
throw-away reports in a temporary directory (the public path of ``gnnu-eval``), which costs
plotting time outside the timed part; training times are as recorded, on whatever device and for
however many epochs each run trained (both listed).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import multiprocessing
import os
import statistics
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomic import write_text_atomic
from ..errors import ConfigError, GnnuError, InputError, OutputExistsError
from . import plots
from .metrics import (EnergyResolution, EvaluationError, TaskMetrics, check_event_count,
                      energy_resolution, evaluate_task)
from .report import METRICS_FILE, PREDICTIONS_FILE, Predictions, load_metrics, read_predictions

#: A training run's record (``gnnu.train.run.RUN_FILE``; not imported: this package stays torch-free).
RUN_FILE = "run.json"
MARKDOWN_FILE = "comparison.md"
CSV_FILE = "comparison.csv"
ROC_PLOT = "roc.png"
ENERGY_PLOT = "efficiency_vs_energy.png"
COST_PLOT = "cost_vs_f1.png"
#: Everything gnnu-compare may write (and what ``force`` replaces).
OUTPUT_FILES = (MARKDOWN_FILE, CSV_FILE, ROC_PLOT, ENERGY_PLOT, COST_PLOT)
#: Columns of comparison.csv, in order.
CSV_COLUMNS = ("model", "class", "n", "efficiency", "purity", "f1", "auc", "accuracy", "macro_f1",
               "energy_resolution_68", "parameters", "flops_per_event", "events_per_s",
               "peak_memory_bytes", "speed_device", "speed_batch_size", "speed_precision",
               "speed_source", "speed_comparable", "training_wall_time_s", "training_device",
               "epochs", "task", "split", "manifest_hash", "n_events", "report", "run")


class ComparisonError(GnnuError):
    """The inputs cannot be compared: different datasets, splits, events, tasks or labels."""


@dataclass
class Speed:
    """Inference figures of one model: ``events_per_s`` (events/s) and ``peak_memory_bytes``
    (bytes) or None, measured on ``device`` with ``batch_size`` events per batch at ``precision``;
    ``source``: ``"report"`` (gnnu-eval's figures) or ``"remeasured"`` (this comparison)."""

    events_per_s: float | None
    peak_memory_bytes: int | None
    device: str | None
    batch_size: int | None
    precision: str | None
    source: str = "report"

    @property
    def setup(self) -> str:
        """``"<device>, batch <B>, <precision>"`` (unknowns as ``?``)."""
        text = f"{self.device or '?'}, batch {self.batch_size or '?'}"
        if self.precision:   # Lightning's names: "32", "bf16-mixed", "16-mixed", …
            text += f", {'fp' if self.precision.isdigit() else ''}{self.precision}"
        return text


@dataclass
class Entry:
    """One compared model: where it came from, its report and run records, its recomputed
    primary-task metrics (:class:`TaskMetrics`) and energy resolution, and its :class:`Speed`."""

    label: str
    source: str
    report_dir: Path
    run_dir: Path | None
    metrics: dict
    run: dict | None
    predictions: Predictions
    task: TaskMetrics
    energy: EnergyResolution | None
    speed: Speed

    def run_value(self, *keys):
        """A value of run.json by nested keys (``run_value("model", "parameters")``), or None."""
        value = self.run
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value


@dataclass
class Remeasure:
    """Re-time every model on this machine (module docstring). ``device``: ``auto``, ``cpu`` or
    ``cuda``; ``batch_size``: events per batch (default: the reports' one when they agree);
    ``repeats``: timed passes per model; ``warmup``: untimed batches first in each pass;
    ``data``: the dataset directory (default: the path recorded in the reports)."""

    device: str = "auto"
    batch_size: int | None = None
    repeats: int = 3
    warmup: int = 2
    data: str | None = None


@dataclass
class Comparison:
    """Everything gnnu-compare reports: the entries, the shared identity of their events
    (``manifest_hash``, ``split``, ``n_events``, primary ``task`` and its ``class_names``),
    whether the speed columns are comparable, notes, and the files written."""

    entries: list[Entry]
    manifest_hash: str
    split: str
    n_events: int
    task: str
    class_names: list[str]
    speed_comparable: bool
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def summary_markdown(self) -> str:
        """The summary table (one row per model) in Markdown."""
        return _summary_table(self)

    def event_counts(self) -> dict[str, int]:
        """Model label → events of its report (``metrics.json`` ``n_events``, which equals its
        predictions); :func:`compare_runs` has checked every one equals ``n_events``."""
        return {e.label: int(e.metrics["n_events"]) for e in self.entries}


# -- finding and reading the inputs -------------------------------------------------------------
def _split_of(report: Path) -> str | None:
    return (load_metrics(report).get("dataset") or {}).get("split")


def locate_report(path: str | os.PathLike, split: str | None = None) -> tuple[Path, Path | None]:
    """``(report directory, run directory or None)`` for one input (module docstring).

    ``path``: a report directory (``metrics.json``) or a run directory (``run.json``) holding one
    report in a direct sub-directory (``split`` picks one of several). InputError naming
    ``path`` when there is no report, several, or the directory is neither.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError("no such run or report directory", path)
    if (path / METRICS_FILE).is_file():
        return path, _run_of(path)
    if not (path / RUN_FILE).is_file():
        raise InputError(f"neither a run directory ({RUN_FILE}) nor an evaluation report "
                         f"({METRICS_FILE})", path)
    reports = [d for d in sorted(path.iterdir()) if (d / METRICS_FILE).is_file()]
    if split is not None:
        reports = [d for d in reports if _split_of(d) == split]
    which = f"{split} " if split else ""
    if not reports:
        wanted = split or "test"
        raise InputError(
            f"no {which}evaluation report in this run directory (no {METRICS_FILE} in its "
            f"sub-directories): run gnnu-eval --checkpoint {path / 'best.ckpt'} --data DATASET "
            f"--split {wanted} --out {path / ('eval-' + wanted)}", path)
    if len(reports) > 1:
        raise InputError(f"holds several {which}reports ({', '.join(d.name for d in reports)}): "
                         "give the report directory" + ("" if split else " or --split"), path)
    return reports[0], path


def _recorded_checkpoint(metrics: dict) -> Path | None:
    ckpt = (metrics.get("dataset") or {}).get("checkpoint")
    return Path(ckpt) if isinstance(ckpt, str) and ckpt else None


def _run_of(report: Path) -> Path | None:
    """The run directory of a report (module docstring), or None."""
    ckpt = _recorded_checkpoint(load_metrics(report))
    for candidate in ([ckpt.parent] if ckpt else []) + [report, report.parent]:
        if (candidate / RUN_FILE).is_file():
            return candidate
    return None


def _read_run(run_dir: Path) -> dict:
    path = run_dir / RUN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable run record ({exc})", path) from None
    if not isinstance(data, dict):
        raise InputError("not a gnnu-train run record (expected a JSON object)", path)
    return data


def load_entry(source: str | os.PathLike, split: str | None = None, label: str | None = None) -> Entry:
    """Read one input (:func:`locate_report`), check its report is self-consistent and recompute
    its primary-task metrics. ``label``: the model's name in the tables (default: the run
    directory's name, else the report directory's). InputError naming the file when something
    is missing or inconsistent."""
    report, run_dir = locate_report(source, split)
    metrics = load_metrics(report)
    where = report / METRICS_FILE
    dataset = metrics.get("dataset") or {}
    for key in ("manifest_hash", "split"):
        if not dataset.get(key):
            raise InputError(f"no dataset.{key}: not written by gnnu-eval", where)
    if split is not None and dataset["split"] != split:
        raise InputError(f"a report of split '{dataset['split']}', not '{split}'", report)
    task = metrics.get("primary_task")
    predictions = read_predictions(report)
    if task not in predictions.labels:
        raise InputError(f"primary task '{task}' of {METRICS_FILE} is not in {PREDICTIONS_FILE}", report)
    try:
        check_event_count(predictions.event_ids, int(metrics.get("n_events", -1)), dataset["split"])
    except EvaluationError as exc:
        raise InputError(f"{PREDICTIONS_FILE} does not match {METRICS_FILE}: {exc}", report) from None
    task_metrics = evaluate_task(predictions.labels[task], predictions.scores[task],
                                 predictions.class_names[task], task=task,
                                 energy=predictions.energy_true)
    recorded = metrics.get("accuracy")
    if recorded is not None and not math.isclose(recorded, task_metrics.accuracy, rel_tol=1e-9):
        raise InputError(f"{PREDICTIONS_FILE} gives accuracy {task_metrics.accuracy:.6g} but "
                         f"{METRICS_FILE} says {recorded:.6g} (files from different evaluations?)",
                         report)
    energy = None
    if predictions.energy_true is not None and predictions.energy_pred is not None:
        energy = energy_resolution(predictions.energy_pred, predictions.energy_true)
    timing = metrics.get("timing") or {}
    speed = Speed(metrics.get("throughput_events_per_s"), metrics.get("peak_memory_bytes"),
                  metrics.get("device"), timing.get("batch_size"), timing.get("precision"))
    return Entry(label=label or (run_dir or report).resolve().name, source=str(source),
                 report_dir=report, run_dir=run_dir, metrics=metrics,
                 run=_read_run(run_dir) if run_dir else None, predictions=predictions,
                 task=task_metrics, energy=energy, speed=speed)


def load_entries(sources: Sequence[str | os.PathLike], labels: Sequence[str] | None = None,
                 split: str | None = None) -> list[Entry]:
    """:func:`load_entry` for every input. ``labels``: one per input (default names that
    collide fall back to the inputs as given). ConfigError for a wrong number of labels,
    repeated labels or the same report given twice."""
    if labels is not None and len(labels) != len(sources):
        raise ConfigError(f"--labels: {len(labels)} label(s) for {len(sources)} input(s)")
    entries = [load_entry(s, split, labels[i] if labels else None) for i, s in enumerate(sources)]
    seen: dict[Path, str] = {}
    for e in entries:
        key = e.report_dir.resolve()
        if key in seen:
            raise ConfigError(f"the report {e.report_dir} is given twice ({seen[key]}, {e.source})")
        seen[key] = e.source
    names = [e.label for e in entries]
    if len(set(names)) < len(names):
        if labels:
            raise ConfigError(f"--labels: repeated label(s) {sorted({n for n in names if names.count(n) > 1})}")
        for e in entries:
            e.label = e.source
    return entries


# -- identity -----------------------------------------------------------------------------------
def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype="<i8").tobytes()).hexdigest()[:12]


def _refuse_if_differ(entries: list[Entry], values: list, what: str) -> None:
    groups: dict = {}
    for e, value in zip(entries, values):
        groups.setdefault(value, []).append(e.source)
    if len(groups) > 1:
        sides = "; ".join(f"{', '.join(sources)}: {value}" for value, sources in groups.items())
        raise ComparisonError(f"cannot compare: the reports differ in {what} — {sides}")


def check_identity(entries: list[Entry]) -> None:
    """Refuse (:class:`ComparisonError`) inputs not evaluated on identical events with the same
    task: manifest hash, split, primary task and class names, the set of event ids, the labels."""
    _refuse_if_differ(entries, [e.metrics["dataset"]["manifest_hash"] for e in entries],
                      "dataset (manifest hash)")
    _refuse_if_differ(entries, [e.metrics["dataset"]["split"] for e in entries], "split")
    _refuse_if_differ(entries, [e.task.task for e in entries], "primary task")
    _refuse_if_differ(entries, [", ".join(e.task.class_names) for e in entries], "class names")
    orders = [np.lexsort(e.predictions.event_ids.T[::-1]) for e in entries]
    _refuse_if_differ(entries, [f"{len(e.predictions)} events, ids {_digest(e.predictions.event_ids[o])}"
                                for e, o in zip(entries, orders)], "evaluated events")
    _refuse_if_differ(entries, [f"labels {_digest(e.predictions.labels[e.task.task][o])}"
                                for e, o in zip(entries, orders)], f"true {entries[0].task.task} labels")


# -- speed --------------------------------------------------------------------------------------
def _comparable_from_reports(entries: list[Entry]) -> tuple[bool, str]:
    setups = {(e.speed.device, e.speed.batch_size) for e in entries}
    if len(setups) == 1 and None not in next(iter(setups)):
        s = entries[0].speed
        return True, (f"Inference events/s and peak memory are gnnu-eval's figures from each report, "
                      f"all measured on {s.device} with batch size {s.batch_size} (measured at "
                      "different times: load on the machine is not controlled; --remeasure times "
                      "the models side by side).")
    listed = "; ".join(f"{e.label}: {e.speed.setup}" for e in entries)
    return False, (f"⚠ Not comparable: the reports' inference figures were measured on different "
                   f"devices or batch sizes, or on an unknown one ({listed}). They are shown in "
                   "parentheses with each model's own setup, and no cost-vs-accuracy plot is "
                   "drawn. Run gnnu-compare --remeasure to time every model on this machine "
                   "with one batch size.")


def _init_worker(filters: list) -> None:
    """A spawned measuring process keeps the parent's warning filters (one-line errors) and
    imports the inference code up front (all workers in parallel, before any timing)."""
    warnings.filters[:] = filters
    import gnnu.train.inference  # noqa: F401


def _measure(checkpoint: str, data: str, split: str, device: str, batch_size: int, warmup: int,
             out: str) -> dict:
    """One timed pass of gnnu-eval's inference (runs in a worker process)."""
    from ..train.inference import evaluate_checkpoint

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
    from ..train.data import manifest_hash  # torch: only when re-measuring

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


# -- tables -------------------------------------------------------------------------------------
def _fmt(value, spec: str = ".4f") -> str:
    """A number for a table: ``n/a`` for None or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def _row(cells) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join([_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)])


def _speed_cells(e: Entry, comparable: bool) -> list[str]:
    rate = _fmt(e.speed.events_per_s, ",.0f")
    memory = _fmt(None if e.speed.peak_memory_bytes is None else e.speed.peak_memory_bytes / 2**20, ".1f")
    if not comparable:
        rate, memory = f"({rate})", f"({memory})"
    return [rate, memory, e.speed.setup + ("" if comparable else " — not comparable")]


def _summary_table(c: Comparison) -> str:
    with_energy = any(e.energy is not None for e in c.entries)
    header = ["model", "accuracy", "macro F1"] + (["E_ν resolution (68 %)"] if with_energy else []) + [
        "parameters", "MFLOP/event", "events/s", "peak memory (MiB)", "inference on",
        "training time (s)", "epochs"]
    rows = []
    for e in c.entries:
        flops = e.run_value("model", "flops_per_event")
        rows.append([e.label, _fmt(e.task.accuracy), _fmt(e.task.macro_f1)]
                    + ([_fmt(e.energy.resolution_68 if e.energy else None)] if with_energy else [])
                    + [_fmt(e.run_value("model", "parameters"), ","),
                       _fmt(None if flops is None else flops / 1e6, ".3g"),
                       *_speed_cells(e, c.speed_comparable),
                       _fmt(e.run_value("training_wall_time_total_s"), ".1f"),
                       _fmt(e.run_value("epochs_completed"), "d")])
    return _table(header, rows)


def _per_class_table(c: Comparison, attribute: str) -> str:
    shown = plots.display_names(c.task, c.class_names)
    n = c.entries[0].task.n
    header = ["model"] + [f"{name} (n = {int(n[k])})" for k, name in enumerate(shown)]
    return _table(header, [[e.label] + [_fmt(v) for v in getattr(e.task, attribute)]
                           for e in c.entries])


def markdown(c: Comparison) -> str:
    """The whole comparison.md text."""
    shown = ", ".join(plots.display_names(c.task, c.class_names))
    parts = [
        f"# gnnu-compare: {len(c.entries)} model(s) on identical events",
        "",
        f"Dataset manifest `{c.manifest_hash}`, split **{c.split}**, {c.n_events} events; "
        f"task **{c.task}** (classes: {shown}). Metrics as defined in `gnnu.evaluate.metrics` "
        "(F1 = 2·purity·efficiency/(purity + efficiency)), recomputed from each report's "
        "predictions.h5.",
        "",
        "## Summary",
        "",
        c.summary_markdown(),
    ]
    for title, attribute in (("Efficiency (recall) per class", "efficiency"),
                             ("Purity (precision) per class", "purity"),
                             ("F1 per class", "f1"), ("AUC per class (one vs rest)", "auc")):
        parts += ["", f"## {title}", "", _per_class_table(c, attribute)]
    parts += ["", "## Notes", ""] + [f"- {note}" for note in c.notes]
    parts += ["", "## Inputs", "",
              _table(["model", "report", "run", "model name", "trained on"],
                     [[e.label, str(e.report_dir), str(e.run_dir) if e.run_dir else "n/a",
                       e.run_value("model", "name") or (e.metrics.get("dataset") or {}).get("model", "n/a"),
                       e.run_value("device") or "n/a"] for e in c.entries])]
    images = [name for name in (ROC_PLOT, ENERGY_PLOT, COST_PLOT) if name in c.files]
    if images:
        parts += ["", "## Plots", ""] + [f"![{name}]({name})" for name in images]
    return "\n".join(parts) + "\n"


def _csv_value(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (np.floating, float)):
        return repr(float(value))
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value)


def csv_text(c: Comparison) -> str:
    """comparison.csv: a header of :data:`CSV_COLUMNS`, then one row per model × class.
    Undefined values are empty; floats are written with full precision."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in c.entries:
        model_level = {
            "model": e.label, "accuracy": e.task.accuracy, "macro_f1": e.task.macro_f1,
            "energy_resolution_68": e.energy.resolution_68 if e.energy else None,
            "parameters": e.run_value("model", "parameters"),
            "flops_per_event": e.run_value("model", "flops_per_event"),
            "events_per_s": e.speed.events_per_s, "peak_memory_bytes": e.speed.peak_memory_bytes,
            "speed_device": e.speed.device, "speed_batch_size": e.speed.batch_size,
            "speed_precision": e.speed.precision, "speed_source": e.speed.source,
            "speed_comparable": c.speed_comparable,
            "training_wall_time_s": e.run_value("training_wall_time_total_s"),
            "training_device": e.run_value("device"), "epochs": e.run_value("epochs_completed"),
            "task": c.task, "split": c.split, "manifest_hash": c.manifest_hash,
            "n_events": c.n_events, "report": str(e.report_dir),
            "run": str(e.run_dir) if e.run_dir else None,
        }
        for k, name in enumerate(c.class_names):
            row = {**model_level, "class": name, "n": e.task.n[k], "efficiency": e.task.efficiency[k],
                   "purity": e.task.purity[k], "f1": e.task.f1[k], "auc": e.task.auc[k]}
            writer.writerow([_csv_value(row[col]) for col in CSV_COLUMNS])
    return buffer.getvalue()


# -- the comparison -----------------------------------------------------------------------------
def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory")
    existing = [name for name in OUTPUT_FILES if (out / name).exists()]
    if existing and not force:
        raise OutputExistsError(f"{out}: a comparison exists ({', '.join(existing)}; "
                                "use --force to overwrite)")


def _signal_classes(names: list[str], signal: Sequence[str] | None) -> list[int]:
    if not signal:
        return list(range(len(names)))
    unknown = [s for s in signal if s not in names]
    if unknown:
        raise ConfigError(f"--signal: unknown class(es) {', '.join(unknown)} (classes: {', '.join(names)})")
    return [names.index(s) for s in signal]


def _notes(entries: list[Entry], speed_note: str) -> list[str]:
    notes = [speed_note,
             "Peak memory: on a GPU torch.cuda.max_memory_allocated during the timed pass; on the "
             "CPU the growth of the process's peak resident set during inference (a lower bound).",
             "Statistical uncertainty: an efficiency ε measured on n true events carries "
             "≈ sqrt(ε(1 − ε)/n); differences between models smaller than that are not significant."]
    no_run = [e.source for e in entries if e.run is None]
    if no_run:
        notes.append(f"No {RUN_FILE} found for {', '.join(no_run)}: parameters, FLOPs/event and "
                     "training time are n/a.")
    devices = {e.run_value("device") for e in entries if e.run is not None}
    if len(devices) > 1:
        notes.append("Training times were measured on different devices: "
                     + "; ".join(f"{e.label}: {e.run_value('device')}" for e in entries if e.run))
    unfinished = [f"{e.label} ({e.run_value('status')})" for e in entries
                  if e.run is not None and e.run_value("status") not in ("complete", "stopped early")]
    if unfinished:
        notes.append(f"Runs that did not complete: {', '.join(unfinished)}.")
    for e in entries:
        notes += [f"{e.label}: {note}" for note in e.task.notes]
    return notes


def _plots(c: Comparison, out: Path, classes: list[int]) -> tuple[list[str], list[str]]:
    """Write the plots; returns (file names, notes about plots left out)."""
    models = [(e.label, e.task) for e in c.entries]
    label = f" — {c.split}, {c.n_events} events"
    written = [plots.plot_roc_comparison(models, classes, out / ROC_PLOT,
                                         f"{c.task}: one-vs-rest ROC{label}").name]
    notes = []
    if all(e.task.energy_edges is not None for e in c.entries):
        written.append(plots.plot_efficiency_vs_energy_comparison(
            models, out / ENERGY_PLOT, f"{c.task}: efficiency vs true neutrino energy{label}").name)
    else:
        notes.append("No efficiency-vs-energy plot: a report has no true neutrino energies.")
    drawn = [e for e in c.entries if e.speed.events_per_s and math.isfinite(e.task.macro_f1)]
    if c.speed_comparable and drawn:  # not comparable: the speed note says why there is no plot
        written.append(plots.plot_cost_vs_accuracy(
            [e.label for e in drawn], [e.speed.events_per_s for e in drawn],
            [e.task.macro_f1 for e in drawn], [e.run_value("model", "parameters") for e in drawn],
            out / COST_PLOT, f"{c.task}: macro F1 vs inference speed (marker area ∝ parameters)\n"
                             f"{c.split}, {c.n_events} events; {drawn[0].speed.setup}").name)
        if len(drawn) < len(c.entries):
            notes.append("Left out of the cost plot (no events/s or undefined macro F1): "
                         + ", ".join(e.label for e in c.entries if e not in drawn) + ".")
    elif c.speed_comparable:
        notes.append("No cost-vs-accuracy plot: no model has an inference rate.")
    return written, notes


def reconcile_events(c: Comparison) -> None:
    """ComparisonError unless every report counts ``c.n_events`` events, in its ``metrics.json``
    and in its predictions (the "on N events" of the summary is every model's N)."""
    off = [f"{e.label}: metrics.json {e.metrics.get('n_events')}, predictions {len(e.predictions)}"
           for e in c.entries
           if not (int(e.metrics.get("n_events", -1)) == len(e.predictions) == c.n_events)]
    if off:
        raise ComparisonError(f"event accounting: the comparison is on {c.n_events} events but "
                              + "; ".join(off))


def compare_runs(sources: Sequence[str | os.PathLike], out: str | os.PathLike, *,
            labels: Sequence[str] | None = None, split: str | None = None,
            signal: Sequence[str] | None = None, remeasure_with: Remeasure | None = None,
            force: bool = False) -> Comparison:
    """Compare the evaluated models of ``sources`` (run or report directories) and write
    comparison.md, comparison.csv and the plots to ``out`` (module docstring).

    ``labels``: model names for the tables (one per source); ``split``: choose the reports of
    this split; ``signal``: class names of the primary task drawn on the ROC figure (default
    all); ``remeasure_with``: re-time inference on this machine; ``force``: replace an existing
    comparison. Raises ComparisonError (not comparable), InputError, ConfigError,
    OutputExistsError — before anything is written.
    """
    out = Path(out)
    _check_out(out, force)
    entries = load_entries(sources, labels, split)
    check_identity(entries)
    first = entries[0]
    classes = _signal_classes(first.task.class_names, signal)
    if remeasure_with is not None:
        comparable, speed_note = True, remeasure(entries, remeasure_with)
    else:
        comparable, speed_note = _comparable_from_reports(entries)
    c = Comparison(entries=entries, manifest_hash=first.metrics["dataset"]["manifest_hash"],
                   split=first.metrics["dataset"]["split"], n_events=len(first.predictions),
                   task=first.task.task, class_names=list(first.task.class_names),
                   speed_comparable=comparable, notes=_notes(entries, speed_note))
    reconcile_events(c)
    out.mkdir(parents=True, exist_ok=True)
    c.files, plot_notes = _plots(c, out, classes)
    c.notes += plot_notes
    write_text_atomic(out / CSV_FILE, csv_text(c))
    c.files += [CSV_FILE, MARKDOWN_FILE]
    for name in set(OUTPUT_FILES) - set(c.files):
        (out / name).unlink(missing_ok=True)
    write_text_atomic(out / MARKDOWN_FILE, markdown(c))
    return c
