"""The flavour figures of issue 22 for any gnnu-eval predictions: 3-class accuracy (the events of
true CC νμ, CC νe or NC; argmax over those three scores), 4-class accuracy, νe CC AUC and νe CC
efficiency at purity 0.9, each with a bootstrap 95 % interval (events resampled, seeded), as
defined in :mod:`gnnu.evaluate.transfer`.

    python tools/flavour_figures.py STUDY/runs/edgeconv/n3553-s0/eval-test [REPORT_OR_FILE …] \\
        [--labels EdgeConv …] [--json OUT.json]

Each input is a ``gnnu-eval`` report directory or its ``predictions.h5``; its ``labels/flavour``
(the truth) and ``scores/flavour`` (the first four columns: CC νμ, CC νe, CC ντ, NC) are read.
Events without a flavour label (−1) are counted and left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def read_flavour(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(true flavour [n], the four flavour scores [n, 4], events left out for lack of a label) of
    a gnnu-eval report or its predictions.h5 (:func:`gnnu.evaluate.report.read_predictions`)."""
    from gnnu.errors import GnnuError
    from gnnu.evaluate.report import read_predictions

    try:
        p = read_predictions(path)
    except GnnuError as exc:
        raise SystemExit(f"flavour_figures: error: {exc}") from None
    if "flavour" not in p.labels or p.scores["flavour"].shape[1] < 4:
        raise SystemExit(f"flavour_figures: error: {path}: no flavour labels with four scores")
    flavour = p.labels["flavour"].astype(np.int64)
    known = flavour >= 0
    return flavour[known], p.scores["flavour"][known, :4].astype(np.float64), int((~known).sum())


def main(argv=None) -> int:
    from gnnu.evaluate.transfer import figures, table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", type=Path, help="gnnu-eval report directories or predictions.h5 files")
    ap.add_argument("--labels", nargs="+", help="row names (default: the input paths)")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    labels = args.labels or [str(p) for p in args.inputs]
    if len(labels) != len(args.inputs):
        ap.error(f"{len(labels)} labels for {len(args.inputs)} inputs")
    rows, record = {}, {}
    for label, path in zip(labels, args.inputs):
        flavour, scores, unlabelled = read_flavour(path)
        fig = figures(flavour, scores, seed=args.seed)
        fig["n_unlabelled_left_out"] = unlabelled
        rows[f"{label} ({fig['n_events']} events, {fig['n_events_3class']} of 3 classes)"] = fig
        record[label] = {"input": str(path), **fig}
    print(table(rows, folds=False))
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(["python", "tools/flavour_figures.py", *map(str, argv or sys.argv[1:])]),
                                         "seed": args.seed, "figures": record}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
