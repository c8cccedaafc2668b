"""An evaluation report: ``metrics.json`` + ``predictions.h5`` + PNG plots in one directory.

:class:`Predictions` holds what a model produced on one split: event ids, true labels and
scores per task, true and predicted neutrino energy. :func:`write_report` reconciles the event
count with the dataset (:func:`gnnu.evaluate.metrics.check_event_count`), computes every metric
and writes the report; :func:`read_predictions` and :func:`load_metrics` read it back
(``gnnu-compare`` reuses them).

``predictions.h5`` layout (schema ``gnnu-predictions`` 1.1)::

    /event_id            [n, 3] int64 (run, subrun, event)
    /labels/<task>       [n] int32, −1 = undefined; absent when the events had no truth
                         (``gnnu-predict`` on real data; attribute ``has_labels`` 0)
    /scores/<task>       [n, C] float32, attribute ``class_names`` (JSON list)
    /energy/true         [n] float64, true neutrino energy (GeV)      (optional)
    /energy/pred         [n] float64, regression-head estimate (GeV)  (optional)
    attributes           schema, schema_version, software, n_events, has_labels, meta (JSON:
                         split, manifest hash, dataset, …)

Version 1.1 (issue 18) makes ``/labels`` optional; 1.0 readers stop on a label-less file with
"missing labels", and this reader reads 1.0 files (always labelled) unchanged.

``metrics.json`` (schema ``gnnu-metrics`` 1.0; docs/design.md#command-line-contract): ``n_events``, the primary task's
``accuracy``, ``macro_f1``, ``per_class`` {name: {efficiency, purity, f1, auc, n}}, ``confusion``
(rows = true class), ``throughput_events_per_s``, ``device``, ``peak_memory_bytes``, ``timing``,
``dataset`` {manifest_hash, split, …}, ``tasks`` {task: the same block, every task including the
primary}, ``energy`` (resolution block or null), ``files`` (what the report wrote).

Simplifications: NaN (an undefined metric) is written as JSON ``null``. The files of a report
are written as one (:func:`gnnu.atomic.atomic_group`): all under temporary names, renamed into
place (``metrics.json`` last) only once every one is complete, so a failure (a full disk, an
interrupt) keeps the previous report whole; only a crash between the renames themselves can
mix old and new files.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .. import __version__
from ..atomic import AtomicFile, atomic_group, jsonable, write_json_atomic
from ..errors import InputError, OutputExistsError, SchemaError
from . import plots
from .metrics import (DEFAULT_ENERGY_EDGES_GEV, EnergyResolution, TaskMetrics, check_event_count,
                      class_names, energy_resolution, evaluate_task)

PREDICTIONS_SCHEMA = "gnnu-predictions"
PREDICTIONS_VERSION = "1.1"
METRICS_SCHEMA = "gnnu-metrics"
METRICS_VERSION = "1.0"
METRICS_FILE = "metrics.json"
#: A training run's record, written by gnnu-train (:mod:`gnnu.train.run`), read by gnnu-compare.
RUN_FILE = "run.json"
PREDICTIONS_FILE = "predictions.h5"


@dataclass
class Predictions:
    """A model's outputs on one split, event by event.

    ``event_ids``: int64 ``[n, 3]``; ``labels``: task → int32 ``[n]`` (−1 undefined), or
    empty for events without truth (:attr:`has_labels` False: scores only);
    ``scores``: task → float32 ``[n, C_task]`` (softmax); ``energy_true`` / ``energy_pred``:
    float64 ``[n]`` neutrino energy in GeV or None; ``class_names``: task → names (defaults
    from :func:`gnnu.evaluate.metrics.class_names`, required for tasks it does not know);
    ``meta``: free-form identity (split, manifest hash, …) stored with the file.
    ValueError when shapes or label codes disagree.
    """

    event_ids: np.ndarray
    labels: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    energy_true: np.ndarray | None = None
    energy_pred: np.ndarray | None = None
    class_names: dict[str, list[str]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.event_ids = np.asarray(self.event_ids, np.int64)
        if self.event_ids.ndim != 2 or self.event_ids.shape[1] != 3:
            raise ValueError(f"event_ids must be [n, 3], got {self.event_ids.shape}")
        n = len(self)
        if self.labels and set(self.labels) != set(self.scores):
            raise ValueError(f"labels and scores must cover the same tasks, got "
                             f"{sorted(self.labels)} and {sorted(self.scores)}")
        if not self.scores:
            raise ValueError("predictions need the scores of at least one task")
        has_labels = bool(self.labels)
        labels, scores, names = {}, {}, {}
        for task in self.scores:
            sc = np.asarray(self.scores[task])
            lab = np.asarray(self.labels[task]) if has_labels else np.full(n, -1, np.int32)
            if not np.issubdtype(lab.dtype, np.integer):
                raise ValueError(f"task '{task}': labels must be integers, got {lab.dtype}")
            if lab.shape != (n,) or sc.ndim != 2 or sc.shape[0] != n or sc.shape[1] < 2:
                raise ValueError(f"task '{task}': labels [{n}] and scores [{n}, C ≥ 2] expected, "
                                 f"got {lab.shape} and {sc.shape}")
            task_names = list(self.class_names.get(task) or class_names(task, sc.shape[1]))
            if len(task_names) != sc.shape[1]:
                raise ValueError(f"task '{task}': {len(task_names)} class names for "
                                 f"{sc.shape[1]} score columns")
            if lab.size and (lab.min() < -1 or lab.max() >= sc.shape[1]):
                raise ValueError(f"task '{task}': labels must lie in [0, {sc.shape[1]}) or be −1")
            if has_labels:
                labels[task] = lab.astype(np.int32)
            scores[task] = sc.astype(np.float32)
            names[task] = task_names
        self.labels, self.scores, self.class_names = labels, scores, names
        for name in ("energy_true", "energy_pred"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, np.float64)
                if value.shape != (n,):
                    raise ValueError(f"{name} must be [{n}], got {value.shape}")
                setattr(self, name, value)

    def __len__(self) -> int:
        return self.event_ids.shape[0]

    @property
    def tasks(self) -> list[str]:
        """Task names in insertion order."""
        return list(self.scores)

    @property
    def has_labels(self) -> bool:
        """Whether the events' true labels are known (False: scores of data without truth)."""
        return bool(self.labels)


def write_predictions(path: str | os.PathLike, predictions: Predictions,
                      overwrite: bool = False) -> Path:
    """Write ``predictions`` to the HDF5 file ``path`` atomically (temporary file, then rename).

    OutputExistsError if ``path`` exists and not ``overwrite``; returns the path.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: output exists (use --force to overwrite)")
    n = len(predictions)
    opts = {"compression": "lzf"} if n else {}
    out = AtomicFile(path)
    try:
        with out.open_hdf5() as f:         # write guard: a full disk is an OSError, not a crash
            f.attrs.update({"schema": PREDICTIONS_SCHEMA, "schema_version": PREDICTIONS_VERSION,
                            "software": f"gnnu {__version__}", "n_events": n,
                            "has_labels": int(predictions.has_labels),
                            "meta": json.dumps(jsonable(predictions.meta), allow_nan=False)})
            f.create_dataset("event_id", data=predictions.event_ids, **opts)
            for task in predictions.tasks:
                if predictions.has_labels:
                    f.create_dataset(f"labels/{task}", data=predictions.labels[task], **opts)
                ds = f.create_dataset(f"scores/{task}", data=predictions.scores[task], **opts)
                ds.attrs["class_names"] = json.dumps(predictions.class_names[task])
            for name, value in (("true", predictions.energy_true), ("pred", predictions.energy_pred)):
                if value is not None:
                    ds = f.create_dataset(f"energy/{name}", data=value, **opts)
                    ds.attrs["unit"] = "GeV"
        out.commit()
    except BaseException:
        out.discard()
        raise
    return path


def read_predictions(path: str | os.PathLike) -> Predictions:
    """Read a ``predictions.h5`` (or the one inside a report directory) into :class:`Predictions`.

    InputError naming the file if it is missing, unreadable or inconsistent; SchemaError for
    another schema or an unsupported major version.
    """
    path = Path(path)
    if path.is_dir():
        path = path / PREDICTIONS_FILE
    if not path.is_file():
        raise InputError("no such predictions file", path)
    try:
        with h5py.File(path, "r") as f:
            schema = str(f.attrs.get("schema", ""))
            version = str(f.attrs.get("schema_version", ""))
            if schema != PREDICTIONS_SCHEMA:
                raise SchemaError(f"schema '{schema}' is not {PREDICTIONS_SCHEMA}", path)
            if version.split(".")[0] != PREDICTIONS_VERSION.split(".")[0]:
                raise SchemaError(f"{PREDICTIONS_SCHEMA} version {version} is not supported "
                                  f"(this gnnu reads {PREDICTIONS_VERSION.split('.')[0]}.x)", path)
            labelled = bool(int(f.attrs.get("has_labels", 1)))
            missing = [k for k in ("event_id", "labels", "scores")
                       if k not in f and (labelled or k != "labels")]
            if missing:
                raise SchemaError(f"missing {', '.join(missing)}", path)
            tasks = list(f["scores"])
            energy = f.get("energy", {})
            return Predictions(
                event_ids=f["event_id"][()],
                labels={t: f[f"labels/{t}"][()] for t in tasks} if labelled else {},
                scores={t: f[f"scores/{t}"][()] for t in tasks},
                energy_true=energy["true"][()] if "true" in energy else None,
                energy_pred=energy["pred"][()] if "pred" in energy else None,
                class_names={t: json.loads(f[f"scores/{t}"].attrs["class_names"]) for t in tasks},
                meta=json.loads(f.attrs.get("meta", "{}")))
    except InputError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"unreadable predictions file ({exc})", path) from None


def predictions_have_labels(path: str | os.PathLike) -> bool:
    """Whether the predictions file ``path`` holds true labels (False: ``gnnu-predict`` on data
    without truth); InputError for an unreadable file."""
    try:
        with h5py.File(path, "r") as f:
            return bool(int(f.attrs.get("has_labels", 1))) and "labels" in f
    except OSError as exc:
        raise InputError(f"unreadable predictions file ({exc})", path) from None


@dataclass
class Evaluation:
    """Every metric of one split: per task :class:`TaskMetrics`, and energy resolution or None."""

    tasks: dict[str, TaskMetrics]
    energy: EnergyResolution | None


def evaluate(predictions: Predictions,
             energy_edges: np.ndarray = DEFAULT_ENERGY_EDGES_GEV) -> Evaluation:
    """Compute every metric of every task of ``predictions`` (efficiency vs true energy when
    ``energy_true`` is given, energy resolution when both energies are given)."""
    tasks = {task: evaluate_task(predictions.labels[task], predictions.scores[task],
                                 predictions.class_names[task], task=task,
                                 energy=predictions.energy_true, energy_edges=energy_edges)
             for task in predictions.tasks}
    energy = None
    if predictions.energy_true is not None and predictions.energy_pred is not None:
        energy = energy_resolution(predictions.energy_pred, predictions.energy_true, energy_edges)
    return Evaluation(tasks, energy)


#: The JSON policy under its old private name (code written before :mod:`gnnu.atomic` imports it).
_jsonable = jsonable


def metrics_dict(evaluation: Evaluation, n_events: int, primary_task: str, dataset: dict,
                 throughput_events_per_s: float | None, device: str,
                 peak_memory_bytes: int | None = None, timing: dict | None = None) -> dict:
    """Assemble the metrics.json content (JSON-ready: NaN → None).

    ``dataset``: identity of the evaluated data (at least ``manifest_hash`` and ``split``);
    ``throughput_events_per_s``: inference rate; ``peak_memory_bytes``: on ``device``;
    ``timing``: any further timing figures (batch size, seconds, precision, …).
    """
    if primary_task not in evaluation.tasks:
        raise ValueError(f"primary task '{primary_task}' not among {list(evaluation.tasks)}")
    primary = evaluation.tasks[primary_task].to_dict()
    out = {
        "schema": METRICS_SCHEMA, "schema_version": METRICS_VERSION,
        "software": f"gnnu {__version__}",
        "n_events": int(n_events),
        "primary_task": primary_task,
        "accuracy": primary["accuracy"],
        "macro_f1": primary["macro_f1"],
        "n_labelled": primary["n_labelled"],
        "n_undefined": primary["n_undefined"],
        "class_names": primary["class_names"],
        "per_class": primary["per_class"],
        "confusion": primary["confusion"],
        "throughput_events_per_s": throughput_events_per_s,
        "device": device,
        "peak_memory_bytes": peak_memory_bytes,
        "timing": dict(timing or {}),
        "dataset": dict(dataset),
        "tasks": {task: m.to_dict() for task, m in evaluation.tasks.items()},
        "energy": None if evaluation.energy is None else evaluation.energy.to_dict(),
    }
    return jsonable(out)


def _task_plots(task: str, m: TaskMetrics, predictions: Predictions, out_dir: Path,
                label: str) -> list[Path]:
    """Every plot of one task; returns the paths written."""
    names = plots.display_names(task, m.class_names)
    paths = [
        plots.plot_matrix(m.efficiency_matrix, names, out_dir / f"{task}_efficiency_matrix.png",
                          f"{task}: efficiency matrix (rows sum to 1){label}", m.n),
        plots.plot_matrix(m.purity_matrix, names, out_dir / f"{task}_purity_matrix.png",
                          f"{task}: purity matrix (columns sum to 1){label}", m.n),
        plots.plot_roc(m, out_dir / f"{task}_roc.png", f"{task}: one-vs-rest ROC{label}"),
        plots.plot_score_distributions(task, predictions.labels[task], predictions.scores[task],
                                       m.class_names, out_dir / f"{task}_scores.png",
                                       f"{task}: classifier outputs by true class{label}"),
    ]
    if m.energy_edges is not None:
        paths.append(plots.plot_efficiency_vs_energy(
            m, out_dir / f"{task}_efficiency_vs_energy.png",
            f"{task}: efficiency vs true neutrino energy{label}"))
    return paths


def _previous_files(out_dir: Path) -> list[str]:
    """Files listed by an existing report's metrics.json (empty if none or unreadable)."""
    try:
        files = json.loads((out_dir / METRICS_FILE).read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in files if isinstance(f, str) and Path(f).name == f]


def write_report(out_dir: str | os.PathLike, predictions: Predictions, *, split: str,
                 manifest_hash: str, expected_n_events: int, device: str,
                 throughput_events_per_s: float | None,
                 peak_memory_bytes: int | None = None, primary_task: str = "flavour",
                 expected_ids: np.ndarray | None = None, dataset: dict | None = None,
                 timing: dict | None = None,
                 energy_edges: np.ndarray = DEFAULT_ENERGY_EDGES_GEV,
                 plot_tasks: list[str] | None = None, plots_on: bool = True,
                 overwrite: bool = False) -> dict:
    """Reconcile, evaluate and write ``metrics.json``, ``predictions.h5`` and plots to ``out_dir``.

    ``expected_n_events``: the split's size in the dataset (and optionally ``expected_ids``
    ``[n, 3]``); a mismatch or a duplicated id raises :class:`EvaluationError` before anything
    is written. ``manifest_hash`` / ``split`` / ``dataset`` identify the data;
    ``throughput_events_per_s`` (events/s), ``device`` (e.g. "NVIDIA H100 80GB HBM3" or "cpu"),
    ``peak_memory_bytes`` and ``timing`` describe the inference run. ``plot_tasks``: tasks to
    draw (default all); ``plots_on`` False: no plots at all. An existing report (metrics.json or predictions.h5 in ``out_dir``)
    raises :class:`gnnu.errors.OutputExistsError` unless ``overwrite``; then files listed by the
    old report and not rewritten are removed. Returns the metrics.json content.
    """
    check_event_count(predictions.event_ids, expected_n_events, split, expected_ids)
    if primary_task not in predictions.labels:
        raise ValueError(f"primary task '{primary_task}' not among {predictions.tasks}")
    unknown = sorted(set(plot_tasks or ()) - set(predictions.tasks))
    if unknown:
        raise ValueError(f"plot_tasks {unknown} not among {predictions.tasks}")
    out_dir = Path(out_dir)
    existing = [name for name in (METRICS_FILE, PREDICTIONS_FILE) if (out_dir / name).exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{out_dir}: a report exists ({', '.join(existing)}; "
                                "use --force to overwrite)")
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = _previous_files(out_dir)

    identity = {"manifest_hash": manifest_hash, "split": split, **(dataset or {})}
    predictions = dataclasses.replace(predictions, meta={**predictions.meta, **identity})
    evaluation = evaluate(predictions, energy_edges)
    data = metrics_dict(evaluation, len(predictions), primary_task, identity,
                        throughput_events_per_s, device, peak_memory_bytes, timing)

    label = f" — {split}"
    with atomic_group():       # all files under temporary names, renamed only once all are written
        written = [write_predictions(out_dir / PREDICTIONS_FILE, predictions, overwrite=True)]
        for task in (plot_tasks if plot_tasks is not None else predictions.tasks) if plots_on else ():
            written += _task_plots(task, evaluation.tasks[task], predictions, out_dir, label)
        if evaluation.energy is not None and plots_on:
            written.append(plots.plot_energy_resolution(
                evaluation.energy, out_dir / "energy_resolution.png",
                f"neutrino energy resolution{label}"))
        data["files"] = [p.name for p in written] + [METRICS_FILE]
        write_json_atomic(out_dir / METRICS_FILE, data)
    for name in set(previous) - set(data["files"]):
        (out_dir / name).unlink(missing_ok=True)
    return data


_NUMBER = (int, float)
#: Values of metrics.json that readers compute with: dotted key → accepted types (None = null).
METRICS_TYPES = {"n_events": (int,), "accuracy": _NUMBER + (None,), "macro_f1": _NUMBER + (None,),
                 "throughput_events_per_s": _NUMBER + (None,), "peak_memory_bytes": _NUMBER + (None,),
                 "primary_task": (str,), "device": (str, None), "dataset": (dict,),
                 "timing": (dict, None), "timing.batch_size": (int, None),
                 "timing.precision": (str, None), "per_class": (dict, None)}
#: The same for a gnnu-train run.json.
RUN_TYPES = {"model": (dict, None), "model.parameters": (int, None),
             "model.flops_per_event": _NUMBER + (None,), "model.name": (str, None),
             "training_wall_time_total_s": _NUMBER + (None,), "epochs_completed": (int, None),
             "device": (str, None), "status": (str, None)}


def check_types(data: dict, types: dict[str, tuple], path: str | os.PathLike) -> None:
    """SchemaError naming ``path`` and the key when a value of ``data`` (dotted keys of
    ``types``; absent keys are fine) is not of its accepted types — e.g. a metric written as a
    string, which would otherwise fail as a TypeError deep inside a table."""
    for key, accepted in types.items():
        node, present = data, True
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                present = False
                break
            node = node[part]
        if not present:
            continue
        ok = (node is None and None in accepted) or (
            not isinstance(node, bool) and isinstance(node, tuple(t for t in accepted if t is not None)))
        if isinstance(node, float) and int in accepted and float not in accepted:
            ok = False
        if not ok:
            kinds = [t for t in accepted if not (t is int and float in accepted)]
            names = " or ".join("null" if t is None else {int: "an integer", float: "a number",
                                                           str: "a string", dict: "an object"}[t]
                                for t in kinds)
            shown = repr(node)
            raise SchemaError(f"'{key}' must be {names}, got {shown[:80]}"
                              + ("…" if len(shown) > 80 else ""), path)


def load_metrics(path: str | os.PathLike) -> dict:
    """Read a report's ``metrics.json`` (the file or its directory). Undefined values are None.

    InputError naming the file if missing or not JSON; SchemaError for another schema, an
    unsupported major version or a value of the wrong type (:data:`METRICS_TYPES`).
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no such metrics file", path) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable metrics file ({exc})", path) from None
    if not isinstance(data, dict) or data.get("schema") != METRICS_SCHEMA:
        raise SchemaError(f"not a {METRICS_SCHEMA} file", path)
    version = str(data.get("schema_version", ""))
    if version.split(".")[0] != METRICS_VERSION.split(".")[0]:
        raise SchemaError(f"{METRICS_SCHEMA} version {version} is not supported "
                          f"(this gnnu reads {METRICS_VERSION.split('.')[0]}.x)", path)
    check_types(data, METRICS_TYPES, path)
    return data
