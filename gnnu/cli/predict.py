"""``gnnu-predict``: score events (with or without truth) with a trained checkpoint; the logic is
in :mod:`gnnu.deploy.predict`."""

from __future__ import annotations

import argparse
import sys

from .common import parser, run


def build_parser() -> argparse.ArgumentParser:
    p = parser("gnnu-predict", "Score every event of the inputs with a checkpoint (graphs built on "
                               "the fly with its own graph config and normalisation) and write "
                               "predictions.h5: event ids, every head's scores, and the labels when "
                               "the inputs have truth.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a run's best.ckpt, or pretrained:NAME")
    p.add_argument("--input", required=True, nargs="+", metavar="SRC", help="hit files, NuML files or DUNE CVN directories")
    p.add_argument("--format", default="gnnu", choices=("gnnu", "numl", "dune-cvn"), help="input format")
    p.add_argument("--out", required=True, metavar="FILE", help="predictions file (HDF5) to write")
    p.add_argument("--batch-size", type=int, metavar="N", help="events per batch (default: the training one)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: the GPU when CUDA is available, else the CPU")
    p.add_argument("--force", action="store_true", help="overwrite an existing FILE")
    return p


def _body(args) -> int:
    from ..deploy.predict import predict

    s = predict(args.checkpoint, args.input, args.format, args.out, batch_size=args.batch_size,
                device=args.device, force=args.force)
    skipped = sum(s.skipped.values())
    why = ", ".join(f"{n} {r}" for r, n in sorted(s.skipped.items()))
    rate = s.events_per_s
    notes = []
    if s.centroid_centred:
        notes.append(f"{s.centroid_centred} maps centred on the charge centroid (no truth vertex)")
    if s.relabelled:
        notes.append("labels outside the model's classes written as -1: "
                     + ", ".join(f"{t} {n}" for t, n in s.relabelled.items()))
    print(f"gnnu-predict: {s.n_in} events read, {s.n_scored} scored, {skipped} skipped"
          f"{f' ({why})' if why else ''}; {'with' if s.labelled else 'without'} truth labels; "
          f"{'n/a' if rate is None else f'{rate:,.1f}'} events/s → {args.out}"
          + "".join(f"; {n}" for n in notes))
    return 0


def main(argv=None) -> int:
    return run("gnnu-predict", _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
