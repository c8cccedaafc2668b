"""``gnnu-study``: a whole GNN-vs-CNN study from one config (the stages are in :mod:`gnnu.study`)."""

from __future__ import annotations

import os
import shlex
import sys

from .common import parser, run

DESCRIPTION = """\
Run a study: simulate (or read) events, build the graph dataset, train and evaluate every model at
every training size and seed, compare them on the same test events (inference re-measured side by
side on this device), and write STUDY_DIR/RESULTS.md and results.json. --config is a preset of
configs/studies (smoke, cpu, gpu, gpu-full, transfer, demo) or a YAML path. An existing STUDY_DIR
is refused unless --resume (finished stages are kept; a finished stage whose settings changed is
refused) or --force (replace it)."""


def build_parser():
    p = parser("gnnu-study", DESCRIPTION)
    p.add_argument("--config", required=True, metavar="NAME|PATH", help="study config: preset name or YAML path")
    p.add_argument("--out", required=True, metavar="STUDY_DIR", help="study directory")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="device for training, evaluation and timing (auto: the GPU when there is one)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the study in STUDY_DIR")
    mode.add_argument("--force", action="store_true", help="replace the study in STUDY_DIR")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a study-config key (dotted), e.g. scale=0.01 or training.budget.epochs=2")
    p.add_argument("--commit", default=os.environ.get("GNNU_COMMIT"),
                   help="source commit recorded in the results where the tree has no .git "
                        "(default: $GNNU_COMMIT, else git's HEAD)")
    return p


def _body(args, argv) -> int:
    from ..study import StudyOptions, run_study
    from ..study.runner import summary

    command = shlex.join(["gnnu-study", *argv])
    res = run_study(StudyOptions(config=args.config, out=args.out, device=args.device,
                                 resume=args.resume, force=args.force, overrides=tuple(args.set),
                                 commit=args.commit, command=command))
    print(summary(res), flush=True)
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run("gnnu-study", lambda a: _body(a, argv), build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
