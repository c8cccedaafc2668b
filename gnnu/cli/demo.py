"""``gnnu-demo``: the whole gnnu chain on a small simulated sample (README's main job); the
stages are in :mod:`gnnu.demo`."""

from __future__ import annotations

import os
import sys

from .common import parser, run

DESCRIPTION = """\
Simulate a DUNE-like sample and run every gnnu stage on it: gnnu-sim, gnnu-build (graphs; the CNNs
read the same events as pixel maps), gnnu-train and gnnu-eval of one GNN and one CNN, gnnu-compare.
Prints each command before it runs and ends with the comparison table. --size small runs on a CPU
in a few minutes (narrower EdgeConv, 2 epochs: the models learn only a little); medium and large
train the shipped configs and are meant for a GPU (--device cuda)."""


def build_parser():
    from ..demo import DEFAULT_MODELS, SIZES

    p = parser("gnnu-demo", DESCRIPTION)
    # no argparse choices: an unknown size is one error line (gnnu.demo.run_demo), like --models
    p.add_argument("--size", default="small", metavar="{" + ",".join(SIZES) + "}",
                   help="sample size: " + ", ".join(f"{k} = {v.events} events, {v.epochs} epochs"
                                                    for k, v in SIZES.items()))
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="device for training and evaluation (auto: the GPU when there is one)")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), metavar="A,B,…",
                   help="model configs of configs/models/ to train and compare (default: %(default)s)")
    p.add_argument("--events", type=int, metavar="N", help="events to simulate (default: the size's)")
    p.add_argument("--epochs", type=int, metavar="N", help="training epochs (default: the size's)")
    p.add_argument("--out", default="demo-out", help="output directory (default: %(default)s)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes for simulation and graph building (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="overwrite an earlier demo in --out")
    return p


def _body(args) -> int:
    from ..demo import run_demo
    from ..errors import ConfigError

    for flag, value in (("--events", args.events), ("--epochs", args.epochs), ("--workers", args.workers)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be ≥ 1, got {value}")
    # a failing stage raises gnnu.demo.StageFailed (stage name + its error): one line from run()
    res = run_demo(args.size, args.out, workers=args.workers, force=args.force,
                   device=args.device, models=tuple(m for m in args.models.split(",") if m),
                   events=args.events, epochs=args.epochs)
    print(summary(res))
    return 0


def summary(res) -> str:
    """The closing lines of gnnu-demo: where each stage wrote, with the events it counted
    (:class:`gnnu.demo.DemoResult`), and only the comparison files that were written."""
    c = res.counts
    b = c["build"]
    splits = ", ".join(f"{k} {v}" for k, v in b["per_split"].items())
    lines = [f"\ngnnu-demo: done in {res.seconds:.0f} s"]
    lines += [f"  note: {note}" for note in res.notes]
    lines += [f"  hit file        {res.hit_file} ({c['simulated']} events simulated)",
              f"  event display   {res.display}",
              f"  graph dataset   {res.dataset} (read {b['in']} events: wrote {b['out']} graphs "
              f"({splits}), skipped {b['skipped']})",
              f"  graph and maps  {res.views}"]
    for name, run_dir in res.runs.items():
        m = c["models"][name]
        tr, va = m["train"], m["val"]
        lines.append(f"  {name:<15} {run_dir}: trained on {tr['used']} of {tr['in_split']} train "
                     f"events, validated on {va['used']} of {va['in_split']} val events; "
                     f"evaluated {m['test']} test events (report: {run_dir / 'eval-test'})")
    compared = ", ".join(map(str, c["compared"]))
    lines.append(f"  comparison      {res.comparison}/ ({compared} test events per model): "
                 + ", ".join(res.comparison_files))
    return "\n".join(lines)


def main(argv=None) -> int:
    return run("gnnu-demo", _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
