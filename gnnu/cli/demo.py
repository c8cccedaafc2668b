"""``gnnu-demo``: the ``demo`` study preset on the built-in simulator (README's first command);
the demo is in :mod:`gnnu.demo`, the study in :mod:`gnnu.study`."""

from __future__ import annotations

import shlex
import sys

from .common import parser, run

DESCRIPTION = """\
gnnu's demo: `gnnu-study --config demo` (configs/studies/demo.yaml). Simulates a DUNE-like sample,
builds the graph dataset (the CNN reads the same events as pixel maps), trains and evaluates an
EdgeConv GNN and a ResNet18 CNN for one epoch, compares them on the same test events and writes
OUT/RESULTS.md and OUT/results.json. --size small runs on a CPU in a few minutes; medium and large
are meant for a GPU (--device cuda)."""


def build_parser():
    from ..demo import SIZES

    p = parser("gnnu-demo", DESCRIPTION)
    # no argparse choices: an unknown size is one error line (gnnu.demo.demo_overrides)
    p.add_argument("--size", default="small", metavar="{" + ",".join(SIZES) + "}",
                   help="sample size: small = the demo preset; "
                        + "; ".join(f"{k}: {', '.join(v)}" for k, v in SIZES.items() if v))
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="device for training and evaluation (auto: the GPU when there is one)")
    p.add_argument("--models", metavar="A,B,…", help="keep only these models of the preset")
    p.add_argument("--events", type=int, metavar="N", help="events to simulate (default: the size's)")
    p.add_argument("--epochs", type=int, metavar="N", help="training epochs (default: the size's)")
    p.add_argument("--out", default="demo-out", help="output directory (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes for simulation and graph building (default: the preset's, 2)")
    p.add_argument("--force", action="store_true", help="overwrite an earlier demo in --out")
    return p


def _body(args, argv) -> int:
    from ..demo import run_demo
    from ..study.runner import summary

    models = None if args.models is None else tuple(m for m in args.models.split(",") if m)
    res = run_demo(args.size, args.out, workers=args.workers, force=args.force, device=args.device,
                   events=args.events, epochs=args.epochs, models=models,
                   command=shlex.join(["gnnu-demo", *argv]))
    print(summary(res))
    print("  pictures: " + ", ".join(str(p) for p in res.pictures))
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run("gnnu-demo", lambda a: _body(a, argv), build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
