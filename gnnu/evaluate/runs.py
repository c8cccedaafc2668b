"""The inputs of a comparison: finding each model's report and run record, reading them,
checking each report against its own predictions, and refusing inputs that were not evaluated on
identical events (the part of ``gnnu-compare`` before any number is put side by side; see
:mod:`gnnu.evaluate.compare`)."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError, GnnuError, InputError
from .metrics import (EnergyResolution, EvaluationError, TaskMetrics, check_event_count,
                      energy_resolution, evaluate_task)
from .report import (METRICS_FILE, PREDICTIONS_FILE, RUN_FILE, RUN_TYPES, Predictions, check_types,
                     load_metrics, predictions_have_labels, read_predictions)


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
    check_types(data, RUN_TYPES, path)
    return data


def load_entry(source: str | os.PathLike, split: str | None = None, label: str | None = None) -> Entry:
    """Read one input (:func:`locate_report`), check its report is self-consistent and recompute
    its primary-task metrics. ``label``: the model's name in the tables (default: the run
    directory's name, else the report directory's). InputError naming the file when something
    is missing or inconsistent."""
    given = Path(source)
    pred = given if given.is_file() else given / PREDICTIONS_FILE
    if pred.is_file() and not predictions_have_labels(pred):
        raise ComparisonError(f"{pred}: predictions without truth labels (gnnu-predict on events "
                              f"without truth) cannot be compared: there is nothing to score them "
                              f"against")
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
