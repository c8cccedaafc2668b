"""Report plots (PNG): efficiency and purity matrices, ROC curves, efficiency vs true energy,
score distributions, energy resolution; and the overlays of ``gnnu-compare`` (ROC curves and
efficiency vs energy of several models, cost vs accuracy).

Every function draws one figure from the numbers of :mod:`gnnu.evaluate.metrics` (nothing is
recomputed differently here) and writes it atomically (temporary file, then rename). Figures are
built on matplotlib's object API with the Agg canvas, so no display and no pyplot global state
are involved.

Simplifications: score histograms use 50 fixed bins on [0, 1] (softmax outputs); ROC curves
with more than 5000 points are drawn through 5000 evenly spaced ones (the AUC comes from the
full curve); the residual histogram shows [−1, 1] and reports how many events fall outside;
NaN cells of a matrix (no events in that row or column) are left blank and marked "–";
in the cost-vs-accuracy scatter the marker area grows linearly with the parameter count
(models without a known count get the smallest marker).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic import atomic_path
from ..events import Flavour
from .metrics import EnergyResolution, TaskMetrics

_SCORE_BINS = np.linspace(0.0, 1.0, 51)
_RESIDUAL_RANGE = (-1.0, 1.0)
_ROC_POINTS = 5000
_COUNT_PARTICLE = {"n_proton": "p", "n_charged_pion": "π±", "n_neutral_pion": "π⁰",
                   "n_neutron": "n"}


def display_names(task: str, names: Sequence[str]) -> list[str]:
    """Class names as shown on plots: flavour labels become "CC νμ", "NC", …, count buckets get
    their particle ("0 p", ">2 π±"); other names are unchanged."""
    if task in _COUNT_PARTICLE:
        return [f"{name} {_COUNT_PARTICLE[task]}" for name in names]
    if task != "flavour":
        return list(names)
    out = []
    for name in names:
        try:
            out.append(Flavour.parse(name).pretty)
        except ValueError:
            out.append(name)
    return out


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _grid(n: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    """A figure with ``n`` panels of ``width`` × ``height`` inches in a near-square grid (one row
    up to 3 panels); returns it and the ``n`` axes (unused grid cells hidden)."""
    cols = n if n <= 3 else math.ceil(math.sqrt(n))
    rows = -(-n // cols)
    fig = _figure(width * cols, height * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _thin(fpr: np.ndarray, tpr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A ROC curve with at most ``_ROC_POINTS`` evenly spaced points (for drawing only)."""
    if fpr.size <= _ROC_POINTS:
        return fpr, tpr
    keep = np.unique(np.linspace(0, fpr.size - 1, _ROC_POINTS).astype(np.int64))
    return fpr[keep], tpr[keep]


def _roc_axes(ax, title: str) -> None:
    """Diagonal, limits, labels and legend of a ROC panel."""
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="random (AUC = 0.5)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false-positive rate (fraction of other classes selected)")
    ax.set_ylabel("true-positive rate (efficiency)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def plot_matrix(matrix: np.ndarray, names: Sequence[str], path: str | os.PathLike,
                title: str, counts: np.ndarray | None = None) -> Path:
    """Annotated heat map of a ``[C, C]`` efficiency or purity matrix (rows = true class).

    ``counts``: optional true-class counts ``[C]`` shown with the row labels.
    """
    matrix = np.asarray(matrix, np.float64)
    n = len(names)
    fig = _figure(1.6 + 1.05 * n, 1.2 + 0.95 * n)
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(matrix), cmap="Blues", vmin=0.0, vmax=1.0)
    for t in range(n):
        for p in range(n):
            v = matrix[t, p]
            text = "–" if not np.isfinite(v) else f"{v:.3f}"
            ax.text(p, t, text, ha="center", va="center", fontsize=9,
                    color="white" if np.isfinite(v) and v > 0.6 else "black")
    rows = list(names) if counts is None else [f"{name}\n(n = {int(k)})"
                                               for name, k in zip(names, counts)]
    ax.set_xticks(range(n), list(names))
    ax.set_yticks(range(n), rows)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="fraction")
    return _save(fig, path)


def plot_roc(metrics: TaskMetrics, path: str | os.PathLike, title: str) -> Path:
    """One-vs-rest ROC curves of every class of a task on one figure, AUC in the legend."""
    names = display_names(metrics.task, metrics.class_names)
    fig = _figure(5.4, 4.8)
    ax = fig.add_subplot()
    for c, (fpr, tpr) in enumerate(metrics.roc):
        _roc_line(ax, fpr, tpr, metrics.auc[c], names[c])
    _roc_axes(ax, title)
    return _save(fig, path)


def _roc_line(ax, fpr: np.ndarray, tpr: np.ndarray, area: float, label: str) -> None:
    """One ROC curve with its AUC in the legend (an empty curve only gets a legend entry)."""
    fpr, tpr = _thin(fpr, tpr)
    if fpr.size:
        ax.plot(fpr, tpr, lw=1.5, label=f"{label} (AUC = {area:.3f})")
    else:
        ax.plot([], [], lw=1.5, label=f"{label} (AUC undefined)")


def plot_efficiency_vs_energy(metrics: TaskMetrics, path: str | os.PathLike, title: str) -> Path:
    """Efficiency of each class vs true neutrino energy (GeV) with binomial error bars.

    Needs ``metrics`` computed with energies (``metrics.energy_edges`` set).
    """
    if metrics.energy_edges is None:
        raise ValueError(f"task '{metrics.task}': metrics were computed without true energies")
    names = display_names(metrics.task, metrics.class_names)
    edges = metrics.energy_edges
    centres = 0.5 * (edges[1:] + edges[:-1])
    half = 0.5 * np.diff(edges)
    fig = _figure(6.0, 4.4)
    ax = fig.add_subplot()
    for c, name in enumerate(names):
        filled = metrics.n_vs_energy[c] > 0
        ax.errorbar(centres[filled], metrics.eff_vs_energy[c][filled],
                    xerr=half[filled], yerr=metrics.eff_vs_energy_err[c][filled],
                    fmt="o", ms=3, capsize=0, label=f"{name} (n = {int(metrics.n[c])})")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("true neutrino energy (GeV)")
    ax.set_ylabel("efficiency (fraction of true class selected)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_score_distributions(task: str, labels: np.ndarray, scores: np.ndarray,
                             names: Sequence[str], path: str | os.PathLike, title: str) -> Path:
    """Per class c, the distribution of the classifier output for c, one histogram per true class.

    ``labels``: int ``[n]`` (−1 events are skipped); ``scores``: float ``[n, C]``. Log y axis.
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, np.float64)
    shown = display_names(task, names)
    n = len(names)
    fig, axes = _grid(n, 4.2, 3.4)
    for c in range(n):
        ax = axes[c]
        drawn = False
        for t in range(n):
            counts = np.histogram(scores[labels == t, c], _SCORE_BINS)[0]
            if counts.any():
                ax.stairs(counts, _SCORE_BINS, label=f"true {shown[t]}")
                drawn = True
        if drawn:
            ax.set_yscale("log")
            ax.legend(fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"classifier output for {shown[c]}")
        ax.set_ylabel("events per 0.02")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_energy_resolution(res: EnergyResolution, path: str | os.PathLike, title: str) -> Path:
    """Histogram of (E_reco − E_true)/E_true with bias and resolution, and both vs true energy."""
    fig = _figure(10.5, 4.2)
    ax, ax2 = fig.subplots(1, 2)
    r = res.residuals
    inside = (r >= _RESIDUAL_RANGE[0]) & (r <= _RESIDUAL_RANGE[1])
    ax.hist(r[inside], bins=80, range=_RESIDUAL_RANGE, histtype="step", color="C0")
    ax.set_xlim(*_RESIDUAL_RANGE)
    ax.set_xlabel("(E_reco − E_true) / E_true of the neutrino energy")
    ax.set_ylabel(f"events per {np.diff(_RESIDUAL_RANGE)[0] / 80:.3f}")
    ax.text(0.03, 0.97, f"n = {res.n} ({int((~inside).sum())} outside the axis, "
                        f"{res.n_excluded} without valid energies)\n"
                        f"bias (median) = {res.bias:+.3f}\n"
                        f"resolution (68 %) = {res.resolution_68:.3f}\n"
                        f"RMS = {res.rms:.3f}",
            transform=ax.transAxes, va="top", fontsize=8)
    edges = res.edges
    centres = 0.5 * (edges[1:] + edges[:-1])
    filled = res.bin_n > 0
    ax2.plot(centres[filled], res.bin_bias[filled], "o-", ms=3, label="bias (median)")
    ax2.plot(centres[filled], res.bin_resolution_68[filled], "s-", ms=3,
             label="resolution (68 % half-width)")
    ax2.axhline(0.0, color="grey", lw=0.8)
    ax2.set_xlim(edges[0], edges[-1])
    ax2.set_xlabel("true neutrino energy (GeV)")
    ax2.set_ylabel("relative residual")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


# -- overlays of several models (gnnu-compare) --------------------------------------------------
def plot_roc_comparison(models: Sequence[tuple[str, TaskMetrics]], classes: Sequence[int],
                        path: str | os.PathLike, title: str) -> Path:
    """One-vs-rest ROC curves of several models of the same task on one figure: a panel per
    class code in ``classes``, one curve per model (``(label, metrics)`` pairs), AUC in the legend."""
    task = models[0][1].task
    names = display_names(task, models[0][1].class_names)
    fig, axes = _grid(len(classes), 5.0, 4.6)
    for ax, c in zip(axes, classes):
        for label, m in models:
            fpr, tpr = m.roc[c]
            _roc_line(ax, fpr, tpr, m.auc[c], label)
        _roc_axes(ax, f"{names[c]} vs the rest (n = {int(models[0][1].n[c])})")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_efficiency_vs_energy_comparison(models: Sequence[tuple[str, TaskMetrics]],
                                         path: str | os.PathLike, title: str) -> Path:
    """Efficiency vs true neutrino energy (GeV) of several models: a panel per class, one series
    per model with binomial error bars, the models' points side by side within each energy bin.
    Every metrics object needs energies (``energy_edges``)."""
    for label, m in models:
        if m.energy_edges is None:
            raise ValueError(f"{label}: metrics were computed without true energies")
    first = models[0][1]
    names = display_names(first.task, first.class_names)
    fig, axes = _grid(len(names), 5.0, 3.8)
    for c, ax in enumerate(axes):
        for k, (label, m) in enumerate(models):
            edges = m.energy_edges
            width = np.diff(edges)
            # models side by side within each bin, so their error bars do not hide each other
            x = edges[:-1] + width * (k + 1) / (len(models) + 1)
            filled = m.n_vs_energy[c] > 0
            ax.errorbar(x[filled], m.eff_vs_energy[c][filled], yerr=m.eff_vs_energy_err[c][filled],
                        fmt="os^vDP<>"[k % 8], ms=3.5, capsize=0, label=label)
        ax.set_xlim(first.energy_edges[0], first.energy_edges[-1])
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("true neutrino energy (GeV)")
        ax.set_ylabel("efficiency")
        ax.set_title(f"{names[c]} (n = {int(first.n[c])})", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_learning_curve(series: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float],
                                                 Sequence[float]]],
                        path: str | os.PathLike, title: str, score_label: str = "macro F1") -> Path:
    """A score against the number of training events (log axis), one line per model:
    ``series`` = {label: (x training events, y score, lo, hi)} with a band (or error bars for a
    single point) from lo to hi (e.g. a 68 % interval)."""
    fig = _figure(6.0, 4.4)
    ax = fig.add_subplot()
    sizes: set[int] = set()
    for k, (label, (x, y, lo, hi)) in enumerate(series.items()):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        order = np.argsort(x)
        x, y, lo, hi = x[order], y[order], lo[order], hi[order]
        sizes.update(int(v) for v in x)
        ax.errorbar(x, y, yerr=[np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)],
                    marker="os^vDP<>"[k % 8], ms=4, capsize=3, color=f"C{k % 10}", label=label)
        if x.size > 1:
            ax.fill_between(x, lo, hi, alpha=0.15, color=f"C{k % 10}")
    ax.set_xscale("log")
    ticks = sorted(sizes)
    ax.set_xticks(ticks, [f"{n:,}" for n in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training events")
    ax.set_ylabel(score_label)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_cost_vs_accuracy(labels: Sequence[str], events_per_s: Sequence[float],
                          score: Sequence[float], parameters: Sequence[int | None],
                          path: str | os.PathLike, title: str, score_label: str = "macro F1",
                          rate_label: str = "inference events/s") -> Path:
    """Scatter of a model quality (``score``, e.g. macro F1) against inference speed
    (``events_per_s``, log axis), marker area ∝ parameter count, each point labelled.

    All sequences ``[M]``; ``parameters`` may hold None (unknown: smallest marker). ValueError
    when a rate is missing or not positive or a score is not finite (leave such models out).
    """
    rate = np.asarray(events_per_s, np.float64)
    score = np.asarray(score, np.float64)
    if not (np.isfinite(rate).all() and (rate > 0).all() and np.isfinite(score).all()):
        raise ValueError("every model needs a positive events/s and a finite score")
    known = [p for p in parameters if p]
    biggest = max(known, default=1)
    sizes = [40.0 + 600.0 * (p or 0) / biggest for p in parameters]
    fig = _figure(6.0, 4.6)
    ax = fig.add_subplot()
    for k, label in enumerate(labels):
        ax.scatter(rate[k], score[k], s=sizes[k], alpha=0.6, color=f"C{k % 10}",
                   edgecolors="black", linewidths=0.5)
        params = f"{parameters[k]:,} par." if parameters[k] else "parameters n/a"
        ax.annotate(f"{label}\n({params})", (rate[k], score[k]), xytext=(6, 6),
                    textcoords="offset points", fontsize=8)
    ax.set_xscale("log")
    plain = ticker.LogFormatter(labelOnlyBase=False)
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    lo, hi = rate.min(), rate.max()
    ax.set_xlim(lo / 2.0, hi * 3.0)
    ax.set_ylim(max(0.0, score.min() - 0.1), min(1.0, score.max() + 0.1) + 0.02)
    ax.set_xlabel(f"{rate_label} (log scale)")
    ax.set_ylabel(score_label)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)
