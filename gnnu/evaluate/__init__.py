"""Evaluation: metrics defined once (:mod:`.metrics`), report plots (:mod:`.plots`), and the
report directory of ``gnnu-eval`` — metrics.json, predictions.h5, PNGs (:mod:`.report`).

Pure numpy/h5py/matplotlib: nothing here imports torch.
"""

from .metrics import (EnergyResolution, EvaluationError, TaskMetrics, check_event_count,
                      class_names, energy_resolution, evaluate_task)
from .report import (Evaluation, Predictions, evaluate, load_metrics, read_predictions,
                     write_predictions, write_report)

__all__ = ["EnergyResolution", "Evaluation", "EvaluationError", "Predictions", "TaskMetrics",
           "check_event_count", "class_names", "energy_resolution", "evaluate", "evaluate_task",
           "load_metrics", "read_predictions", "write_predictions", "write_report"]
