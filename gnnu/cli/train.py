"""``gnnu-train``: train a model on a graph dataset (docs/design.md#command-line-contract); the logic is in :mod:`gnnu.train.run`."""

from __future__ import annotations

import argparse
import sys

from .common import parser, run


def build_parser() -> argparse.ArgumentParser:
    p = parser("gnnu-train", "Train a model (GNN or CNN from the registry) on a graph dataset with "
                             "Lightning; writes RUN_DIR/config.yaml, run.json, best.ckpt, last.ckpt "
                             "and TensorBoard logs.")
    p.add_argument("--config", metavar="CFG.yaml",
                   help="training config, or a model config (configs/models/NAME.yaml) trained with "
                        "the defaults of configs/train/default.yaml")
    p.add_argument("--data", metavar="DIR", help="graph dataset built by gnnu-build (overrides 'data:')")
    p.add_argument("--out", metavar="RUN_DIR", required=True, help="run directory")
    p.add_argument("--epochs", type=int, metavar="N", help="number of epochs (overrides 'epochs:')")
    p.add_argument("--max-events", type=int, metavar="N",
                   help="train on the first N training events only (overrides 'max_events:')")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: the GPU(s) when CUDA is available, else the CPU")
    p.add_argument("--init-from", metavar="CKPT",
                   help="fine-tune: start from this checkpoint's matching weights (see 'freeze:'); "
                        "a path or a shipped one, pretrained:NAME (e.g. pretrained:dune-sim)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue the run in RUN_DIR from its last.ckpt (with its config.yaml)")
    mode.add_argument("--force", action="store_true", help="replace the run in RUN_DIR")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a config value by dotted key, e.g. --set optimizer.lr=3e-4 "
                        "--set model.params.widths=[32,64] (values parsed as YAML; repeatable)")
    p.add_argument("--progress", nargs="?", const="bar", default="auto",
                   choices=("auto", "bar", "lines", "none"),
                   help="auto: a progress bar on a terminal, else a line every --progress-every "
                        "steps and one per epoch (events/s, ETA); --progress alone: the bar")
    p.add_argument("--progress-every", type=int, default=100, metavar="N",
                   help="steps between two progress lines")
    return p


def _body(args) -> int:
    from ..train.run import TrainOptions, train

    record = train(TrainOptions(
        config=args.config, data=args.data, out=args.out, epochs=args.epochs,
        max_events=args.max_events, device=args.device, init_from=args.init_from,
        resume=args.resume, force=args.force, overrides=tuple(args.overrides),
        progress=args.progress, progress_every=args.progress_every))
    if record:
        print(summary(record, args.out))
    return 0


def summary(record: dict, out: str) -> str:
    """The closing lines printed by gnnu-train."""
    last = record["history"][-1] if record["history"] else {}
    acc = last.get("val/accuracy")
    model = record["model"]
    return (f"gnnu-train: {record['status']}: {model['name']} ({model['parameters']:,} parameters, "
            f"{model['flops_per_event'] / 1e6:.1f} MFLOP/event) {record['epochs_completed']} epoch(s), "
            f"{record['global_step']} steps on {record['device']} in {record['training_wall_time_s']:.1f} s"
            + f"; val accuracy {_fmt(acc)}"
            + f"; best {record['best']['monitor']} = {_fmt(record['best']['score'])} → {out}"
            + "".join(f"\n  {line}" for line in accounting_lines(record)))


def accounting_lines(record: dict) -> list[str]:
    """One line per split used: events in the split = used + skipped (by the limit's key)."""
    lines = []
    for split, a in (record.get("dataset", {}).get("events") or {}).items():
        if a["used"] + a["skipped"] != a["in_split"]:
            raise RuntimeError(f"event accounting broken for {split}: {a}")
        why = f" ({a['limit_key']} = {a['limit']})" if a["skipped"] else ""
        lines.append(f"{split}: {a['in_split']} events in the split, {a['used']} used{why}, "
                     f"{a['skipped']} skipped")
    d = record.get("dataset", {}).get("domain")
    if d:
        lines.append(f"domain adaptation: {d['drawn_per_epoch']} events per epoch drawn from the "
                     f"{d['in_split']} of {d['path']} ({d['split']})")
    return lines


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def main(argv=None) -> int:
    return run("gnnu-train", _body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
