"""Figures of the sim → real protocol (issue 22): flavour classification of real DUNE events.

From the four flavour scores of each event (CC νμ, CC νe, CC ντ, NC; ``predictions.h5``'s
``scores/flavour``):

- 4-class accuracy: argmax of the four scores against the true flavour, every event;
- 3-class accuracy: the events of true CC νμ, CC νe or NC (DUNE CVN's and Chappell &
  Whitehead's task), argmax over those three scores;
- νe CC AUC: on those events, the CC νe score against CC νμ + NC;
- νe CC efficiency at purity 0.9: same events and score
  (:func:`gnnu.evaluate.metrics.efficiency_at_purity`).

:func:`figures` adds bootstrap 95 % intervals (events resampled with replacement, seeded) and,
given the fold of each event, the value per fold with their mean and standard deviation.
"""

from __future__ import annotations

import numpy as np

from .metrics import efficiency_at_purity, roc_auc

#: Flavour codes of the 3-class task: CC νμ, CC νe, NC.
THREE_CLASS = (0, 1, 3)
NUE = 1
#: Bootstrap resamples of :func:`figures`.
N_BOOT = 2000
KEYS = ("accuracy_3class", "accuracy_4class", "nue_auc", "nue_efficiency_at_purity_0.9")


def point_figures(flavour: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The four figures (module docstring) of true ``flavour`` [n] and ``scores`` [n, 4]."""
    flavour = np.asarray(flavour, np.int64)
    scores = np.asarray(scores, np.float64)[:, :4]
    three = np.isin(flavour, THREE_CLASS)
    pred3 = np.asarray(THREE_CLASS)[scores[three][:, THREE_CLASS].argmax(1)]
    sig = flavour[three] == NUE
    nue = scores[three][:, NUE]
    defined = 0 < sig.sum() < len(sig)
    return {"accuracy_3class": float(np.mean(pred3 == flavour[three])) if three.any() else float("nan"),
            "accuracy_4class": float(np.mean(scores.argmax(1) == flavour)),
            "nue_auc": float(roc_auc(sig, nue)) if defined else float("nan"),
            "nue_efficiency_at_purity_0.9": efficiency_at_purity(sig, nue, 0.9) if defined else float("nan")}


def figures(flavour: np.ndarray, scores: np.ndarray, fold: np.ndarray | None = None, seed: int = 0,
            n_boot: int = N_BOOT) -> dict:
    """Each figure as {value, ci95 (bootstrap percentile interval)} plus, given ``fold`` [n],
    ``per_fold``, ``fold_mean``, ``fold_std``; and the event counts used."""
    flavour = np.asarray(flavour, np.int64)
    scores = np.asarray(scores, np.float64)
    point = point_figures(flavour, scores)
    rng = np.random.default_rng(seed)
    boots = {k: np.empty(n_boot) for k in point}
    n = len(flavour)
    for b in range(n_boot):
        i = rng.integers(0, n, n)
        for k, v in point_figures(flavour[i], scores[i]).items():
            boots[k][b] = v
    out: dict = {}
    for k, v in point.items():
        lo, hi = np.nanpercentile(boots[k], [2.5, 97.5])
        out[k] = {"value": v, "ci95": [float(lo), float(hi)]}
        if fold is not None:
            per = [point_figures(flavour[fold == f], scores[fold == f])[k] for f in np.unique(fold)]
            out[k].update(per_fold=[float(x) for x in per], fold_mean=float(np.mean(per)),
                          fold_std=float(np.std(per, ddof=1)) if len(per) > 1 else float("nan"))
    out["n_events"] = int(n)
    out["n_events_3class"] = int(np.isin(flavour, THREE_CLASS).sum())
    return out


def table(rows: dict[str, dict], folds: bool = True) -> str:
    """Markdown table of several :func:`figures` results (row name → figures): value [95 %
    interval], and the fold mean ± std where present and ``folds``."""
    lines = ["| | 3-class accuracy | 4-class accuracy | νe CC AUC | νe CC efficiency at purity 0.9 |",
             "|---|---|---|---|---|"]
    for name, fig in rows.items():
        cells = []
        for k in KEYS:
            v = fig[k]
            s = f"{v['value']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]"
            if folds and "fold_mean" in v:
                s += f"; folds {v['fold_mean']:.3f} ± {v['fold_std']:.3f}"
            cells.append(s)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
