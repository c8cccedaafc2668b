"""``gnnu-build``: turn event sources into a graph dataset, or inspect one (docs/design.md#command-line-contract)."""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError
from ..io.base import READERS
from .common import parse_fractions, parser, run


def build_parser() -> argparse.ArgumentParser:
    p = parser("gnnu-build", "Build a graph dataset (one node per hit) from hit files, NuML files or "
                             "DUNE CVN pixel maps; or inspect a built dataset.")
    p.add_argument("--input", nargs="+", metavar="SRC", help="input sources (files or directories)")
    p.add_argument("--format", choices=tuple(READERS), default="gnnu", help="input format")
    p.add_argument("--graph", metavar="CFG.yaml",
                   help="graph config: YAML path or name under configs/graphs (default: knn16)")
    p.add_argument("--out", metavar="DIR", help="output dataset directory")
    p.add_argument("--split", type=parse_fractions, metavar="a,b,c",
                   help="train,val,test fractions (default: the graph config's, 0.8,0.1,0.1)")
    p.add_argument("--seed", type=int, help="split seed (default: the graph config's, 0)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (output does not depend on it)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue an interrupted build in DIR, keeping its finished shards")
    mode.add_argument("--force", action="store_true", help="replace an existing dataset in DIR")
    p.add_argument("--shard-index", type=int, metavar="I",
                   help="job I of a job array (0-based): build only shards s with s mod N = I into "
                        "the shared DIR (with --num-shards N)")
    p.add_argument("--num-shards", type=int, metavar="N", help="number of jobs in the array")
    p.add_argument("--merge", action="store_true",
                   help="after every --shard-index job: check all shards and write the complete "
                        "manifest (same other arguments)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip bad events (empty, non-finite, unreadable) and count them, instead of stopping")
    p.add_argument("--detector", metavar="NAME",
                   help="detector config for numl/dune-cvn inputs (hit files carry their own)")
    p.add_argument("--inspect", metavar="DIR",
                   help="print counts per class and split, feature and degree statistics of a dataset")
    p.add_argument("--samples", type=int, default=3, help="--inspect: graphs examined with networkx")
    p.add_argument("--verify", metavar="DIR",
                   help="check every shard of a dataset against the manifest (size, sha256), "
                        "its build and its labels")
    return p


def _body(args) -> int:
    if args.verify:
        from ..graph.inspect import verify_dataset
        print(verify_dataset(args.verify))
        return 0
    if args.inspect:
        from ..graph.inspect import inspect_dataset
        print(inspect_dataset(args.inspect, samples=args.samples))
        return 0
    from ..graph.build import BuildOptions, build_dataset

    if not args.input or not args.out:
        raise ConfigError("--input SRC … and --out DIR are required (or --inspect DIR)")
    if (args.shard_index is None) != (args.num_shards is None):
        raise ConfigError("--shard-index and --num-shards go together")
    part = None if args.num_shards is None else (args.shard_index, args.num_shards)
    options = {}
    if args.detector:
        if args.format == "gnnu":
            raise ConfigError("--detector applies to numl and dune-cvn inputs; gnnu hit files "
                              "carry their detector")
        options["detector"] = args.detector
    summary = build_dataset(BuildOptions(
        inputs=tuple(args.input), out=args.out, format=args.format, graph=args.graph,
        split=args.split, seed=args.seed, workers=args.workers, resume=args.resume,
        force=args.force, skip_bad=args.skip_bad, reader_options=options, progress=True,
        part=part, merge=args.merge))
    print(summary.report())
    return 0


def main(argv=None) -> int:
    return run("gnnu-build", _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
