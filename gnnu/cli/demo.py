"""``gnnu-demo``: the whole gnnu chain on a small simulated sample (README's main job)."""

from __future__ import annotations

import os
import sys

from .common import parser, run


def build_parser():
    from ..demo import SIZES

    p = parser("gnnu-demo", "Simulate a DUNE-like sample and run every gnnu stage on it.")
    p.add_argument("--size", choices=tuple(SIZES), default="small",
                   help="sample size: " + ", ".join(f"{k} = {v} events" for k, v in SIZES.items()))
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="device for the training stages (DESIGN §10 flag; the demo does not train yet, so it is unused today)")
    p.add_argument("--out", default="demo-out", help="output directory")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--force", action="store_true", help="overwrite an earlier demo in --out")
    return p


def _body(args) -> int:
    from ..demo import run_demo

    res = run_demo(args.size, args.out, workers=args.workers, force=args.force)
    print(f"\ngnnu-demo: done in {res.seconds:.0f} s")
    print(f"  hit file      {res.hit_file}")
    print(f"  event display {res.display}")
    if res.dataset:
        print(f"  graph dataset {res.dataset}")
    return 0


def main(argv=None) -> int:
    return run("gnnu-demo", _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
