"""Evaluation: metrics defined once (:mod:`.metrics`), report plots (:mod:`.plots`), and the
report directory of ``gnnu-eval`` — metrics.json, predictions.h5, PNGs (:mod:`.report`), and
``gnnu-compare``'s side-by-side comparison of several reports (:mod:`.compare`, with its inputs
and identity checks in :mod:`.runs` and its tables and plots in :mod:`.render`).

Pure numpy/h5py/matplotlib: nothing here imports torch or a later stage. ``gnnu-compare
--remeasure`` runs gnnu-eval's inference through the :data:`.compare.REMEASURERS` extension point,
which :mod:`gnnu.train.remeasure` fills.
"""

from .compare import (Comparison, ComparisonError, Remeasure, check_identity, compare_runs,
                      load_entries)
from .metrics import (EnergyResolution, EvaluationError, TaskMetrics, check_event_count,
                      class_names, energy_resolution, evaluate_task)
from .report import (Evaluation, Predictions, evaluate, load_metrics, read_predictions,
                     write_predictions, write_report)

__all__ = ["Comparison", "ComparisonError", "EnergyResolution", "Evaluation", "EvaluationError",
           "Predictions", "Remeasure", "TaskMetrics", "check_event_count", "check_identity",
           "class_names", "compare_runs", "energy_resolution", "evaluate", "evaluate_task",
           "load_entries", "load_metrics", "read_predictions", "write_predictions", "write_report"]
