"""``gnnu-compare``: several evaluated models in one table, on identical events (docs/design.md#training-and-evaluation, #command-line-contract);
the logic is in :mod:`gnnu.evaluate.compare`."""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError
from .common import parser, run

DESCRIPTION = """\
Compare models evaluated by gnnu-eval on the same events: writes comparison.md (summary table:
accuracy, macro F1, energy resolution, parameters, FLOPs/event, inference events/s and peak memory,
training time; per-class efficiency, purity, F1 and AUC), comparison.csv (one row per model x class),
roc.png (all models, one panel per class), efficiency_vs_energy.png and cost_vs_f1.png.

Each input is a run directory of gnnu-train holding one report of gnnu-eval in a sub-directory
(gnnu-eval --checkpoint RUN/best.ckpt --out RUN/eval-test), or a report directory (its run is
found through the checkpoint it names, or as its parent). Inputs evaluated on different datasets
(manifest hash), splits, events or tasks are refused.

Speed and memory: by default the reports' own figures, shown as comparable only when every
report was measured on the same device with the same batch size (else marked "not comparable"
and no cost plot). --remeasure times every model again on this machine on the same events with
one batch size: each model in its own fresh process, warm-up batches excluded, the median of
--repeats passes interleaved across models."""


def build_parser() -> argparse.ArgumentParser:
    p = parser("gnnu-compare", DESCRIPTION)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("inputs", nargs="+", metavar="RUN_OR_REPORT_DIR",
                   help="gnnu-train run directories (with one gnnu-eval report inside) or report directories")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the comparison files")
    p.add_argument("--force", action="store_true", help="overwrite an existing comparison in DIR")
    p.add_argument("--split", choices=("train", "val", "test"),
                   help="use the reports of this split (picks one in run directories with several)")
    p.add_argument("--labels", metavar="A,B,…", type=lambda text: text.split(","),
                   help="model names in the tables, one per input (default: the run directories' names)")
    p.add_argument("--signal", metavar="CLASS,…", type=lambda text: text.split(","),
                   help="classes of the primary task drawn on the ROC figure (default: all)")
    speed = p.add_argument_group("re-measuring inference speed and memory on this machine")
    speed.add_argument("--remeasure", action="store_true",
                       help="time every model again on the same events with one batch size")
    speed.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="with --remeasure: auto = the GPU when CUDA is available, else the CPU")
    speed.add_argument("--batch-size", type=int, metavar="B",
                       help="with --remeasure: events per batch (default: the reports' one, if they agree)")
    speed.add_argument("--repeats", type=int, default=3, metavar="R",
                       help="with --remeasure: timed passes per model (the median is reported)")
    speed.add_argument("--warmup", type=int, default=2, metavar="W",
                       help="with --remeasure: untimed batches before each timed pass")
    speed.add_argument("--data", metavar="DIR",
                       help="with --remeasure: the dataset (default: the path recorded in the reports)")
    return p


def _body(args) -> int:
    from ..evaluate.compare import Remeasure, compare_runs

    given = [flag for flag, value in (("--batch-size", args.batch_size), ("--data", args.data))
             if value is not None]
    if given and not args.remeasure:
        raise ConfigError(f"{', '.join(given)} only apply with --remeasure")
    options = (Remeasure(device=args.device, batch_size=args.batch_size, repeats=args.repeats,
                         warmup=args.warmup, data=args.data) if args.remeasure else None)
    c = compare_runs(args.inputs, args.out, labels=args.labels, split=args.split, signal=args.signal,
                remeasure_with=options, force=args.force)
    print(f"gnnu-compare: {len(c.entries)} model(s), {c.task} on {c.n_events} {c.split} events "
          f"(dataset {c.manifest_hash[:19]}…)")
    counts = c.event_counts()
    print(f"  events per report: {', '.join(f'{label} {n}' for label, n in counts.items())} "
          f"(each = {c.n_events}, the same event ids)")
    print(c.summary_markdown())
    if not c.speed_comparable:
        print("gnnu-compare: events/s and peak memory are not comparable (different devices or "
              "batch sizes): see --remeasure")
    print(f"gnnu-compare: → {args.out}/comparison.md, comparison.csv, {', '.join(f for f in c.files if f.endswith('.png'))}")
    return 0


def main(argv=None) -> int:
    return run("gnnu-compare", _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
