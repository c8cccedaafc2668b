"""Draw one event of a gnnu graph dataset as the GNNs and the CNNs see it: the graph of each view
above its pixel maps (gnnu.images.display.draw_graph_and_maps).

    python tools/event_views.py demo-out/graphs --index 0 --split test --out views.png \\
        --presets dune-cvn,resnet-rgb
"""

from __future__ import annotations

import argparse

from gnnu.images.display import draw_graph_and_maps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", help="graph dataset directory written by gnnu-build")
    ap.add_argument("--index", type=int, default=0, help="event number within the split")
    ap.add_argument("--split", default="all", choices=("train", "val", "test", "all"))
    ap.add_argument("--presets", default="dune-cvn,resnet-rgb", help="image presets, one row each")
    ap.add_argument("--out", default="event_views.png", help="PNG to write")
    args = ap.parse_args()
    print(draw_graph_and_maps(args.dataset, args.index, args.out, split=args.split,
                              presets=[p for p in args.presets.split(",") if p]))


if __name__ == "__main__":
    main()
