"""``gnnu-eval``: evaluate a checkpoint on a dataset split (docs/design.md#command-line-contract); the logic is in
:mod:`gnnu.train.inference`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import parser, run


def build_parser() -> argparse.ArgumentParser:
    p = parser("gnnu-eval", "Run a trained checkpoint over one split of a graph dataset (every event "
                            "once) and write metrics.json, predictions.h5 and PNG plots.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="best.ckpt or last.ckpt of a run, or a shipped one: pretrained:NAME "
                        "(pretrained:dune-sim, pretrained:dune-real)")
    p.add_argument("--data", required=True, nargs="+", metavar="DIR",
                   help="graph dataset (same features as training), or raw sources (hit files, DUNE "
                        "CVN directories such as numu nue nc nutau): these are first built into "
                        "REPORT_DIR/dataset with the checkpoint's own graph config (or --graph), "
                        "every event in --split")
    p.add_argument("--format", choices=("gnnu", "numl", "dune-cvn"),
                   help="format of raw --data sources (default: dune-cvn for a directory of "
                        "eventN.gz, else gnnu)")
    p.add_argument("--graph", metavar="CFG.yaml",
                   help="graph config for raw --data sources (default: the one the checkpoint "
                        "was trained with)")
    p.add_argument("--split", choices=("train", "val", "test"), default="test", help="split to evaluate")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="report directory")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: the GPU when CUDA is available, else the CPU")
    p.add_argument("--batch-size", type=int, metavar="N", help="events per batch (default: the training one)")
    p.add_argument("--num-workers", type=int, default=0, metavar="W", help="data-loader processes")
    p.add_argument("--warmup", type=int, default=2, metavar="B",
                   help="batches run once before the timed pass (not counted in the throughput)")
    p.add_argument("--no-plots", action="store_true",
                   help="write metrics.json and predictions.h5 only (gnnu-compare still works)")
    p.add_argument("--force", action="store_true", help="overwrite an existing report")
    p.add_argument("--progress", default="auto", choices=("auto", "bar", "lines", "none"),
                   help="auto: a progress bar on a terminal, else a line every --progress-every "
                        "batches (events/s, ETA)")
    p.add_argument("--progress-every", type=int, default=100, metavar="N",
                   help="batches between two progress lines")
    return p


def _body(args) -> int:
    from ..errors import ConfigError
    from ..train.inference import build_for_checkpoint, evaluate_checkpoint, is_dataset

    data = args.data[0]
    if len(args.data) > 1 or not is_dataset(data):
        data = build_for_checkpoint(args.checkpoint, args.data, Path(args.out) / "dataset",
                                    split=args.split, fmt=args.format, graph=args.graph,
                                    force=args.force)
    elif args.format or args.graph:
        raise ConfigError("--format and --graph apply to raw sources; --data is a built dataset")
    m = evaluate_checkpoint(args.checkpoint, data, args.split, args.out, device=args.device,
                            batch_size=args.batch_size, num_workers=args.num_workers,
                            warmup=args.warmup, force=args.force,
                            plots=not args.no_plots, progress=args.progress,
                            progress_every=args.progress_every)
    rate = m["throughput_events_per_s"]
    acc, f1 = m["accuracy"], m["macro_f1"]
    print(f"gnnu-eval: {m['n_events']} {args.split} events on {m['device']}: "
          f"{m['primary_task']} accuracy {acc if acc is None else round(acc, 4)}, "
          f"macro F1 {f1 if f1 is None else round(f1, 4)}, "
          f"{'n/a' if rate is None else f'{rate:,.0f}'} events/s → {args.out}")
    return 0


def main(argv=None) -> int:
    return run("gnnu-eval", _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
