"""What ``gnnu-compare`` writes: the Markdown tables, the tidy CSV and the plots of a
:class:`gnnu.evaluate.compare.Comparison` (numbers formatted, nothing computed here)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import plots

if TYPE_CHECKING:
    from .compare import Comparison
    from .runs import Entry

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
