"""Draw one event of a gnnu graph dataset as the GNNs and the CNNs see it: the graph of each view
above its pixel maps, one row per image preset that fits the event's detector
(gnnu.images.display.draw_event_views); presets that do not fit are named, with the reason, in
the figure and in the printed output.

    python tools/event_views.py demo-out/graphs --index 0 --split test --out views.png
    python tools/event_views.py --detector nova --index 0 --out nova_views.png    # simulates
    python tools/event_views.py --detector dune --presets dune-cvn,resnet-rgb

Without a dataset, ``--detector`` simulates ``--events`` events (``gnnu-sim``, flavours
round-robin: CC numu, CC nue, NC and, for nova, cosmic) and builds them with the detector's
default graph config (``gnnu-build``) in a temporary directory first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from gnnu.cli import invoke
from gnnu.images.display import draw_event_views

FLAVOURS = {"dune": "numu_cc,nue_cc,nc", "nova": "numu_cc,nue_cc,nc,cosmic"}


def simulated_dataset(root: Path, detector: str, events: int, seed: int) -> Path:
    """``events`` simulated events of ``detector`` → graph dataset ``root/graphs`` (all in
    the training split, so every index is one event of split 'all' and 'train')."""
    invoke(["gnnu-sim", "--detector", detector, "--events", events, "--seed", seed,
            "--flavours", FLAVOURS[detector], "--out", root / "events.h5"])
    invoke(["gnnu-build", "--input", root / "events.h5", "--out", root / "graphs",
            "--split", "1,0,0"])
    return root / "graphs"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", help="graph dataset directory written by gnnu-build")
    ap.add_argument("--detector", choices=sorted(FLAVOURS),
                    help="without a dataset: simulate and build events of this detector first")
    ap.add_argument("--events", type=int, default=4, help="events to simulate (with --detector)")
    ap.add_argument("--seed", type=int, default=1, help="simulation seed (with --detector)")
    ap.add_argument("--index", type=int, default=0, help="event number within the split")
    ap.add_argument("--split", default="all", choices=("train", "val", "test", "all"))
    ap.add_argument("--presets", default="",
                    help="image presets to try, comma-separated (default: all; those that do not "
                         "fit the detector are reported, not drawn)")
    ap.add_argument("--out", default="event_views.png", help="PNG to write")
    args = ap.parse_args(argv)
    if (args.dataset is None) == (args.detector is None):
        ap.error("give a dataset directory or --detector (to simulate one), not both")
    presets = [p for p in args.presets.split(",") if p] or None
    with tempfile.TemporaryDirectory(prefix="gnnu-views-") as tmp:
        data = (Path(args.dataset) if args.dataset
                else simulated_dataset(Path(tmp), args.detector, args.events, args.seed))
        views = draw_event_views(data, args.index, args.out, split=args.split, presets=presets)
    print("\n".join(views.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
