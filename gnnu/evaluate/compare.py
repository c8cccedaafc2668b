"""Several evaluated models side by side on identical events: the library behind ``gnnu-compare``
(docs/design.md#training-and-evaluation, #command-line-contract).

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
as one (:func:`gnnu.atomic.atomic_group`: renamed into place, ``comparison.md`` last, only once
all are complete), and ``out`` is locked for the run (:func:`gnnu.atomic.output_lock`).

Simplifications: only the primary task is compared (the other heads stay in the reports); no
statistical test between models — the efficiency of a class with n true events carries a
binomial uncertainty ≈ sqrt(ε(1 − ε)/n) (noted in the table); speed re-measurement writes
throw-away reports in a temporary directory (the public path of ``gnnu-eval``), which costs
plotting time outside the timed part; training times are as recorded, on whatever device and for
however many epochs each run trained (both listed).

Split by job: :mod:`gnnu.evaluate.runs` finds and reads the inputs and checks their identity,
:mod:`gnnu.evaluate.render` writes the tables, CSV and plots, and re-measuring lives with the
inference it runs, in :mod:`gnnu.train.remeasure` (reached through :data:`REMEASURERS`, so this
torch-free package imports no later stage). Every name is still importable from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..atomic import atomic_group, output_lock, write_text_atomic
from ..errors import ConfigError, OutputExistsError
from ..registry import Registry
from .render import (COST_PLOT, CSV_COLUMNS, CSV_FILE, ENERGY_PLOT, MARKDOWN_FILE,  # noqa: F401
                     OUTPUT_FILES, ROC_PLOT, _plots, _summary_table, csv_text, markdown)
from .report import RUN_FILE  # noqa: F401
from .runs import (ComparisonError, Entry, Speed, check_identity, load_entries,  # noqa: F401
                   load_entry, locate_report)

__all__ = ["COST_PLOT", "CSV_COLUMNS", "CSV_FILE", "ENERGY_PLOT", "MARKDOWN_FILE", "OUTPUT_FILES",
           "REMEASURERS", "ROC_PLOT", "RUN_FILE", "Comparison", "ComparisonError", "Entry",
           "Remeasure", "Speed", "check_identity", "compare_runs", "csv_text", "load_entries",
           "load_entry", "locate_report", "markdown", "reconcile_events", "remeasure"]


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


#: How ``--remeasure`` re-times the models (entries, options → the note describing the
#: measurement). The training stage registers its checkpoint inference here
#: (:mod:`gnnu.train.remeasure`, imported on first use): this package never imports it.
REMEASURERS: Registry[Callable[[list[Entry], Remeasure], str]] = Registry(
    "re-measurer", modules=("gnnu.train.remeasure",))


def remeasure(entries: list[Entry], options: Remeasure) -> str:
    """Time every entry's inference again on this machine (module docstring) and replace its
    :class:`Speed`; returns the note describing the measurement. ConfigError for bad options."""
    return REMEASURERS.lookup("checkpoint")(entries, options)


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
    with output_lock(out, "gnnu-compare"):
        return _compare_locked(sources, out, labels, split, signal, remeasure_with, force)


def _compare_locked(sources, out: Path, labels, split, signal, remeasure_with, force) -> Comparison:
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
    with atomic_group():       # every file renamed into place only once all are written
        c.files, plot_notes = _plots(c, out, classes)
        c.notes += plot_notes
        write_text_atomic(out / CSV_FILE, csv_text(c))
        c.files += [CSV_FILE, MARKDOWN_FILE]
        write_text_atomic(out / MARKDOWN_FILE, markdown(c))
    for name in set(OUTPUT_FILES) - set(c.files):
        (out / name).unlink(missing_ok=True)
    return c
