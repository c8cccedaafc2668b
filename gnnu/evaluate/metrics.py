"""Evaluation metrics, defined once (DESIGN §7) and used by every report and comparison.

Classification (any task of :data:`gnnu.events.CLASS_LABELS`, or any task with explicit class
names): accuracy, confusion matrix (counts, rows = true class), per class efficiency (recall),
purity (precision), F1 and true count, efficiency matrix (rows normalised) and purity matrix
(columns normalised), one-vs-rest ROC curves and AUC, efficiency vs true neutrino energy with
binomial uncertainties, macro-averaged F1. Regression: relative energy residual
(E_reco − E_true)/E_true, its bias and resolution, overall and vs true energy. Event-count
reconciliation: :func:`check_event_count`.

Conventions and simplifications:

- The predicted class is the argmax of the scores (softmax outputs); no cut is tuned on them.
- Events whose label is −1 (undefined, e.g. particle counts of real NC events) are left out of
  that task only, and counted (``n_undefined``).
- F1 is 2·purity·efficiency/(purity + efficiency) (NOvA's definition), computed as
  2·TP/(2·TP + FP + FN), which is the same number wherever purity and efficiency are both
  defined and stays defined (= 0) for a class that is present but never predicted.
- Undefined ratios are NaN, never a division warning: efficiency and AUC of a class with no
  true events in the split, purity of a class never predicted, F1 of a class neither present
  nor predicted, AUC when every labelled event is of the one class. Each gets a note.
- Macro F1 is the mean F1 over the classes that have true events in the split.
- AUC is the trapezoid area under the ROC curve built with tied scores grouped into one step;
  this equals the Mann–Whitney probability P(s⁺ > s⁻) + ½·P(s⁺ = s⁻).
- Binomial uncertainty of an efficiency ε from N events: sqrt(ε(1 − ε)/N). It is 0 at ε = 0
  or 1 (no Wilson or Clopper–Pearson interval).
- Energy: bias = median of the relative residual r; resolution = half-width of the central
  68.27 % interval, (q84.13 − q15.87)/2; ``rms`` = standard deviation of r (ROOT's "RMS").
  Events with a non-finite or non-positive true energy, or a non-finite reconstructed energy,
  are left out and counted (``n_excluded``).
- Efficiency vs energy and resolution vs energy use fixed bins of true neutrino energy
  (default 0–10 GeV in 0.5 GeV steps); events outside the bins are in the totals, not in the bins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import GnnuError
from ..events import COUNT_LABELS, Flavour, Interaction

#: Class names per task, in label-code order (metrics.json keys them by these names).
TASK_CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "flavour": tuple(f.label for f in Flavour),
    "interaction": tuple("other" if i is Interaction.OTHER else i.name for i in Interaction),
    "is_antinu": ("nu", "antinu"),
    **{name: ("0", "1", "2", ">2") for name in COUNT_LABELS},
}

#: Default bins of true neutrino energy (GeV) for efficiency and resolution vs energy.
DEFAULT_ENERGY_EDGES_GEV = np.arange(0.0, 10.0 + 1e-9, 0.5)

#: Central fraction of a Gaussian within ±1σ: the "68 %" of the resolution.
_ONE_SIGMA = 0.682689492


class EvaluationError(GnnuError):
    """Evaluation results that cannot be trusted: events lost or duplicated, non-finite scores."""


def class_names(task: str, n_classes: int | None = None) -> list[str]:
    """Class names of ``task`` in label-code order, the first ``n_classes`` of them if given.

    ``class_names("flavour", 4)`` → ``["numu_cc", "nue_cc", "nutau_cc", "nc"]`` (DUNE has no
    cosmic class). ValueError for an unknown task (pass names explicitly then) or a class count
    the task cannot have.
    """
    if task not in TASK_CLASS_NAMES:
        raise ValueError(f"unknown task '{task}' (known: {', '.join(TASK_CLASS_NAMES)}); "
                         "give its class names explicitly")
    names = TASK_CLASS_NAMES[task]
    if n_classes is None:
        return list(names)
    if not 2 <= n_classes <= len(names):
        raise ValueError(f"task '{task}' has 2 to {len(names)} classes, not {n_classes}")
    return list(names[:n_classes])


def _ratio(num, den) -> np.ndarray:
    """Element-wise num/den as float64, NaN where den == 0 (no warning)."""
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    out = np.full(np.broadcast_shapes(num.shape, den.shape), np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def confusion_matrix(true: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``[C, C]`` int64, ``[t, p]`` = events of true class t predicted as p.

    ``true``, ``pred``: int arrays ``[n]`` with values in ``[0, n_classes)``.
    """
    true = np.asarray(true, np.int64)
    pred = np.asarray(pred, np.int64)
    if true.ndim != 1 or true.shape != pred.shape:
        raise ValueError(f"true and pred must be 1-D of equal length, got {true.shape} and {pred.shape}")
    for name, arr in (("true", true), ("pred", pred)):
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise ValueError(f"{name} classes must lie in [0, {n_classes}), "
                             f"got [{arr.min()}, {arr.max()}]")
    flat = np.bincount(true * n_classes + pred, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)


def efficiency_matrix(confusion: np.ndarray) -> np.ndarray:
    """Confusion matrix with each row divided by its sum ``[C, C]``: P(predicted p | true t).

    The diagonal is the per class efficiency; a row with no events is NaN.
    """
    confusion = np.asarray(confusion)
    return _ratio(confusion, confusion.sum(axis=1, keepdims=True))


def purity_matrix(confusion: np.ndarray) -> np.ndarray:
    """Confusion matrix with each column divided by its sum ``[C, C]``: P(true t | predicted p).

    The diagonal is the per class purity; a column with no predictions is NaN.
    """
    confusion = np.asarray(confusion)
    return _ratio(confusion, confusion.sum(axis=0, keepdims=True))


def per_class_rates(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Per class ``n`` (true count, int), ``efficiency``, ``purity``, ``f1`` (each ``[C]``).

    efficiency = TP/(TP + FN), purity = TP/(TP + FP), F1 = 2·TP/(2·TP + FP + FN)
    (= 2·P·E/(P + E)); NaN where a denominator is zero.
    """
    confusion = np.asarray(confusion)
    tp = np.diag(confusion)
    n_true = confusion.sum(axis=1)
    n_pred = confusion.sum(axis=0)
    return {"n": n_true.astype(np.int64),
            "efficiency": _ratio(tp, n_true),
            "purity": _ratio(tp, n_pred),
            "f1": _ratio(2 * tp, n_true + n_pred)}


def roc_curve(is_signal: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ROC curve: ``(fpr, tpr, thresholds)``, each ``[k + 1]`` for k distinct scores.

    Selecting events with ``score >= thresholds[i]`` keeps a fraction ``tpr[i]`` of the signal
    and ``fpr[i]`` of the background; the curve starts at (0, 0) with threshold +inf. Tied
    scores form a single step. If there is no signal or no background event the curve is
    undefined and three empty arrays are returned.

    ``is_signal``: bool ``[n]``; ``score``: float ``[n]`` (higher = more signal-like).
    """
    is_signal = np.asarray(is_signal, bool)
    score = np.asarray(score, np.float64)
    if is_signal.ndim != 1 or is_signal.shape != score.shape:
        raise ValueError(f"is_signal and score must be 1-D of equal length, "
                         f"got {is_signal.shape} and {score.shape}")
    n_sig = int(is_signal.sum())
    n_bkg = is_signal.size - n_sig
    if n_sig == 0 or n_bkg == 0:
        empty = np.zeros(0)
        return empty, empty, empty
    order = np.argsort(-score, kind="stable")
    s = score[order]
    sig = is_signal[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.cumsum(sig)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    return (np.r_[0.0, fp / n_bkg], np.r_[0.0, tp / n_sig], np.r_[np.inf, s[last_of_tie]])


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Trapezoid area under a ROC curve from :func:`roc_curve`; NaN for an empty curve."""
    fpr = np.asarray(fpr, np.float64)
    tpr = np.asarray(tpr, np.float64)
    if fpr.size < 2:
        return math.nan
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)


def efficiency_at_purity(is_signal: np.ndarray, score: np.ndarray, purity: float) -> float:
    """Highest signal efficiency of a cut ``score >= t`` whose selection has at least ``purity``
    (e.g. νe CC efficiency at purity 0.9 with the νe score): the cuts are the ROC curve's
    thresholds (:func:`roc_curve`, tied scores one step); 0 when no cut reaches the purity, NaN
    without signal events, 1 when every event is signal.

    ``is_signal``: bool ``[n]``; ``score``: float ``[n]``; ``purity`` in (0, 1].
    """
    is_signal = np.asarray(is_signal, bool)
    n_sig = int(is_signal.sum())
    if n_sig == 0:
        return math.nan
    if n_sig == is_signal.size:
        return 1.0
    fpr, tpr, _ = roc_curve(is_signal, score)
    tp, fp = tpr[1:] * n_sig, fpr[1:] * (is_signal.size - n_sig)
    ok = tp / (tp + fp) >= purity - 1e-12
    return float(tpr[1:][ok].max()) if ok.any() else 0.0


def roc_auc(is_signal: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for ``is_signal`` (ties count ½); NaN if undefined."""
    fpr, tpr, _ = roc_curve(is_signal, score)
    return auc(fpr, tpr)


def bin_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each ``x`` for ascending ``edges`` ``[B + 1]``: int ``[n]``, −1 outside or NaN.

    Bins are [e_i, e_i+1) except the last, which includes its upper edge (as numpy.histogram).
    """
    x = np.asarray(x, np.float64)
    edges = np.asarray(edges, np.float64)
    which = np.searchsorted(edges, x, side="right") - 1
    which[x == edges[-1]] = edges.size - 2
    which[(which >= edges.size - 1) | ~np.isfinite(x)] = -1
    return which


def binned_efficiency(passed: np.ndarray, x: np.ndarray, edges: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Efficiency in bins of ``x``: ``(eff, err, n_total, n_passed)``, each ``[len(edges) − 1]``.

    ``passed``: bool ``[n]``; ``x``: float ``[n]`` (same unit as ``edges``, e.g. GeV); values
    outside the edges or NaN are ignored. err = sqrt(eff(1 − eff)/n_total); eff and err are NaN
    in empty bins.
    """
    passed = np.asarray(passed, bool)
    which = bin_index(x, edges)
    inside = which >= 0
    n_bins = len(edges) - 1
    n_total = np.bincount(which[inside], minlength=n_bins)
    n_passed = np.bincount(which[inside & passed], minlength=n_bins)
    eff = _ratio(n_passed, n_total)
    err = np.sqrt(_ratio(eff * (1.0 - eff), n_total))
    return eff, err, n_total, n_passed


def _quantiles(r: np.ndarray) -> tuple[float, float, float]:
    """(median, 68 % half-width, std) of ``r``; NaN for an empty array."""
    if r.size == 0:
        return math.nan, math.nan, math.nan
    lo, med, hi = np.quantile(r, [(1 - _ONE_SIGMA) / 2, 0.5, (1 + _ONE_SIGMA) / 2])
    return float(med), float(hi - lo) / 2.0, float(r.std())


@dataclass
class TaskMetrics:
    """Every classification metric of one task on one split (arrays indexed by class code).

    ``confusion`` ``[C, C]`` counts (rows = true class); ``n``, ``efficiency``, ``purity``,
    ``f1``, ``auc`` ``[C]``; ``roc`` one ``(fpr, tpr)`` pair per class; efficiency vs true
    neutrino energy ``[C, B]`` on ``energy_edges`` (GeV, ``[B + 1]``), None without energies.
    """

    task: str
    class_names: list[str]
    n_labelled: int
    n_undefined: int
    accuracy: float
    confusion: np.ndarray
    n: np.ndarray
    efficiency: np.ndarray
    purity: np.ndarray
    f1: np.ndarray
    auc: np.ndarray
    macro_f1: float
    roc: list[tuple[np.ndarray, np.ndarray]]
    energy_edges: np.ndarray | None = None
    eff_vs_energy: np.ndarray | None = None
    eff_vs_energy_err: np.ndarray | None = None
    n_vs_energy: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def efficiency_matrix(self) -> np.ndarray:
        """Row-normalised confusion matrix ``[C, C]``."""
        return efficiency_matrix(self.confusion)

    @property
    def purity_matrix(self) -> np.ndarray:
        """Column-normalised confusion matrix ``[C, C]``."""
        return purity_matrix(self.confusion)

    def to_dict(self) -> dict:
        """The task's block of metrics.json (plain Python types; NaN stays float NaN)."""
        block = {
            "n_labelled": self.n_labelled,
            "n_undefined": self.n_undefined,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "class_names": list(self.class_names),
            "per_class": {name: {"efficiency": float(self.efficiency[c]),
                                 "purity": float(self.purity[c]),
                                 "f1": float(self.f1[c]),
                                 "auc": float(self.auc[c]),
                                 "n": int(self.n[c])}
                          for c, name in enumerate(self.class_names)},
            "confusion": self.confusion.tolist(),
            "efficiency_matrix": self.efficiency_matrix.tolist(),
            "purity_matrix": self.purity_matrix.tolist(),
            "notes": list(self.notes),
        }
        if self.energy_edges is not None:
            block["efficiency_vs_energy"] = {
                "energy_edges_gev": self.energy_edges.tolist(),
                "per_class": {name: {"efficiency": self.eff_vs_energy[c].tolist(),
                                     "error": self.eff_vs_energy_err[c].tolist(),
                                     "n": self.n_vs_energy[c].tolist()}
                              for c, name in enumerate(self.class_names)},
            }
        return block


def evaluate_task(labels: np.ndarray, scores: np.ndarray, names: list[str] | tuple[str, ...],
                  task: str = "", energy: np.ndarray | None = None,
                  energy_edges: np.ndarray = DEFAULT_ENERGY_EDGES_GEV) -> TaskMetrics:
    """All classification metrics of one task.

    ``labels``: int ``[n]`` true class codes in ``[0, C)`` or −1 (undefined: left out, counted);
    ``scores``: float ``[n, C]`` classifier outputs (softmax), C = ``len(names)``;
    ``energy``: optional float ``[n]`` true neutrino energy (GeV) for efficiency vs energy;
    ``energy_edges``: bin edges in GeV. ValueError on inconsistent shapes or label codes,
    :class:`EvaluationError` on non-finite scores.
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, np.float64)
    n_classes = len(names)
    where = f"task '{task}'" if task else "task"
    if labels.ndim != 1 or scores.shape != (labels.size, n_classes):
        raise ValueError(f"{where}: labels [n] and scores [n, {n_classes}] expected, "
                         f"got {labels.shape} and {scores.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{where}: labels must be integers, got {labels.dtype}")
    bad = (labels < -1) | (labels >= n_classes)
    if bad.any():
        raise ValueError(f"{where}: label {labels[bad][0]} outside [0, {n_classes}) and not −1")
    if not np.isfinite(scores).all():
        raise EvaluationError(f"{where}: {int((~np.isfinite(scores)).any(axis=1).sum())} "
                              "event(s) have non-finite scores")

    defined = labels >= 0
    true = labels[defined].astype(np.int64)
    sc = scores[defined]
    pred = np.argmax(sc, axis=1) if true.size else np.zeros(0, np.int64)
    confusion = confusion_matrix(true, pred, n_classes)
    rates = per_class_rates(confusion)
    notes = []
    n_undefined = int((~defined).sum())
    if n_undefined:
        notes.append(f"{n_undefined} event(s) with undefined label (−1) left out")
    if true.size == 0:
        notes.append("no event with a defined label: every metric is undefined")

    roc, aucs = [], np.full(n_classes, np.nan)
    for c, name in enumerate(names):
        fpr, tpr, _ = roc_curve(true == c, sc[:, c])
        roc.append((fpr, tpr))
        aucs[c] = auc(fpr, tpr)
        if true.size and rates["n"][c] == 0:
            notes.append(f"class '{name}' absent from the split: efficiency and AUC undefined")
        elif true.size and rates["n"][c] == true.size:
            notes.append(f"only class '{name}' present: AUC undefined")
        if true.size and confusion[:, c].sum() == 0:
            notes.append(f"class '{name}' never predicted: purity undefined")

    present = rates["n"] > 0
    macro_f1 = float(rates["f1"][present].mean()) if present.any() else math.nan
    result = TaskMetrics(
        task=task, class_names=list(names), n_labelled=int(true.size), n_undefined=n_undefined,
        accuracy=float(np.trace(confusion) / true.size) if true.size else math.nan,
        confusion=confusion, n=rates["n"], efficiency=rates["efficiency"],
        purity=rates["purity"], f1=rates["f1"], auc=aucs, macro_f1=macro_f1, roc=roc,
        notes=notes)

    if energy is not None:
        energy = np.asarray(energy, np.float64)
        if energy.shape != labels.shape:
            raise ValueError(f"{where}: energy [n] expected, got {energy.shape}")
        e = energy[defined]
        edges = np.asarray(energy_edges, np.float64)
        eff = np.full((n_classes, edges.size - 1), np.nan)
        err = np.full_like(eff, np.nan)
        cnt = np.zeros(eff.shape, np.int64)
        for c in range(n_classes):
            is_c = true == c
            eff[c], err[c], cnt[c], _ = binned_efficiency(pred[is_c] == c, e[is_c], edges)
        result.energy_edges, result.eff_vs_energy = edges, eff
        result.eff_vs_energy_err, result.n_vs_energy = err, cnt
    return result


@dataclass
class EnergyResolution:
    """Relative energy residual r = (E_reco − E_true)/E_true of the regression head.

    ``residuals`` ``[n]`` (events used); ``bias`` = median(r); ``resolution_68`` = half-width
    of the central 68.27 % of r; ``rms`` = std(r); ``mean`` = mean(r). Per bin of true energy
    (``edges`` in GeV, ``[B + 1]``): ``bin_n``, ``bin_bias``, ``bin_resolution_68`` ``[B]``.
    """

    n: int
    n_excluded: int
    mean: float
    bias: float
    resolution_68: float
    rms: float
    residuals: np.ndarray
    edges: np.ndarray
    bin_n: np.ndarray
    bin_bias: np.ndarray
    bin_resolution_68: np.ndarray

    def to_dict(self) -> dict:
        """The ``energy`` block of metrics.json (residuals are in predictions.h5, not here)."""
        return {"quantity": "(E_reco - E_true) / E_true of the neutrino energy",
                "n": self.n, "n_excluded": self.n_excluded, "mean": self.mean,
                "bias_median": self.bias, "resolution_68": self.resolution_68, "rms": self.rms,
                "vs_true_energy": {"energy_edges_gev": self.edges.tolist(),
                                   "n": self.bin_n.tolist(),
                                   "bias_median": self.bin_bias.tolist(),
                                   "resolution_68": self.bin_resolution_68.tolist()}}


def energy_resolution(e_reco: np.ndarray, e_true: np.ndarray,
                      edges: np.ndarray = DEFAULT_ENERGY_EDGES_GEV) -> EnergyResolution:
    """Bias and resolution of reconstructed vs true energy, overall and in bins of true energy.

    ``e_reco``, ``e_true``: float ``[n]`` in GeV; ``edges``: bins of true energy (GeV). Events
    with non-finite or non-positive ``e_true`` or non-finite ``e_reco`` are excluded (counted).
    """
    e_reco = np.asarray(e_reco, np.float64)
    e_true = np.asarray(e_true, np.float64)
    if e_reco.ndim != 1 or e_reco.shape != e_true.shape:
        raise ValueError(f"e_reco and e_true must be 1-D of equal length, "
                         f"got {e_reco.shape} and {e_true.shape}")
    ok = np.isfinite(e_reco) & np.isfinite(e_true) & (e_true > 0)
    r = (e_reco[ok] - e_true[ok]) / e_true[ok]
    med, half, std = _quantiles(r)
    edges = np.asarray(edges, np.float64)
    which = bin_index(e_true[ok], edges)
    n_bins = edges.size - 1
    bin_n = np.bincount(which[which >= 0], minlength=n_bins)
    bin_bias = np.full(n_bins, np.nan)
    bin_res = np.full(n_bins, np.nan)
    for b in np.flatnonzero(bin_n):
        bin_bias[b], bin_res[b], _ = _quantiles(r[which == b])
    return EnergyResolution(n=int(r.size), n_excluded=int((~ok).sum()),
                            mean=float(r.mean()) if r.size else math.nan, bias=med,
                            resolution_68=half, rms=std, residuals=r, edges=edges,
                            bin_n=bin_n.astype(np.int64), bin_bias=bin_bias,
                            bin_resolution_68=bin_res)


def check_event_count(event_ids: np.ndarray, expected: int, split: str,
                      expected_ids: np.ndarray | None = None) -> None:
    """Reconcile the evaluated events with the dataset split; raise if anything was lost.

    ``event_ids``: int ``[n, 3]`` (run, subrun, event) of the evaluated events; ``expected``:
    the split's size in the dataset; ``expected_ids``: optionally the split's ids ``[m, 3]``,
    compared as sets. Raises :class:`EvaluationError` when the count differs, an id repeats
    (e.g. padding added by a distributed sampler) or the id sets differ.
    """
    ids = np.asarray(event_ids)
    if ids.ndim != 2 or ids.shape[1] != 3:
        raise ValueError(f"event_ids must be [n, 3], got {ids.shape}")
    n = ids.shape[0]
    if n != expected:
        raise EvaluationError(f"split '{split}': evaluated {n} events but the dataset holds "
                              f"{expected} ({expected - n:+d} unaccounted for)")
    unique = np.unique(ids, axis=0)
    if unique.shape[0] != n:
        raise EvaluationError(f"split '{split}': {n - unique.shape[0]} event id(s) evaluated "
                              "more than once")
    if expected_ids is not None:
        want = np.unique(np.asarray(expected_ids).reshape(-1, 3), axis=0)
        if want.shape != unique.shape or not np.array_equal(want, unique):
            raise EvaluationError(f"split '{split}': the evaluated event ids differ from the "
                                  "dataset's")
