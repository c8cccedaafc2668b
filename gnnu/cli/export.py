"""``gnnu-export``: a checkpoint as a TorchScript or ONNX file, optionally checked for parity on a
dataset; the logic is in :mod:`gnnu.deploy.export`."""

from __future__ import annotations

import argparse
import sys

from .common import parser, run


def build_parser() -> argparse.ArgumentParser:
    p = parser("gnnu-export", "Write a trained checkpoint as a TorchScript or ONNX file that runs "
                              "without gnnu (raw node features or pixel maps in, every head's "
                              "scores out; metadata inside), and check it against the checkpoint.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="best.ckpt / last.ckpt of a run, or pretrained:NAME")
    p.add_argument("--format", required=True, choices=("torchscript", "onnx"))
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write (.pt / .onnx)")
    p.add_argument("--verify", metavar="DATASET_DIR",
                   help="run the written file in a fresh process without gnnu on this dataset's "
                        "test split and compare with the checkpoint (fails above 1e-4)")
    p.add_argument("--events", type=int, default=32, metavar="N",
                   help="events compared by --verify (fewer if the split has fewer)")
    p.add_argument("--force", action="store_true", help="overwrite an existing FILE")
    return p


def _body(args) -> int:
    from ..deploy.export import PARITY_TOLERANCE, ParityError, export_checkpoint, verify_export

    meta = export_checkpoint(args.checkpoint, args.format, args.out, force=args.force)
    inputs = ", ".join(f"{i['name']} {i['dtype']}{i['shape']}" for i in meta["inputs"])
    print(f"gnnu-export: {meta['model']} → {args.out} ({args.format}); inputs {inputs}; "
          f"outputs {', '.join(o['name'] for o in meta['outputs'])}")
    if args.verify:
        worst, n = verify_export(args.out, args.format, args.checkpoint, args.verify, args.events)
        print(f"parity: max |Δscore| = {worst:.3g} on {n} events")
        if not worst <= PARITY_TOLERANCE:
            raise ParityError(f"{args.out}: max |Δscore| {worst:.3g} exceeds {PARITY_TOLERANCE:g}")
    return 0


def main(argv=None) -> int:
    return run("gnnu-export", _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
