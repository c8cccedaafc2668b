"""``gnnu-sim``: simulate neutrino events into a gnnu hit file (docs/design.md#command-line-contract)."""

from __future__ import annotations

import sys
from collections import Counter

from tqdm import tqdm

from ..detectors import load_detector
from ..errors import ConfigError
from ..events import Flavour
from .common import parser, run


def build_parser():
    p = parser("gnnu-sim", "Simulate neutrino interactions in a detector and write a gnnu hit file.")
    p.add_argument("--detector", default="dune", help="detector name (configs/detectors/NAME.yaml) or YAML path")
    p.add_argument("--events", type=int, default=100, help="number of events")
    p.add_argument("--seed", type=int, default=0, help="run seed; event i uses RNG seed (seed, i)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (output does not depend on it)")
    p.add_argument("--out", help="output hit file (.h5)")
    p.add_argument("--flavours", default="numu_cc,nue_cc,nutau_cc,nc",
                   help="comma-separated classes: numu_cc, nue_cc, nutau_cc, nc, cosmic (nova only)")
    p.add_argument("--mix", choices=("balanced", "random"), default="balanced",
                   help="balanced: flavours round-robin (equal classes); random: drawn per event")
    p.add_argument("--energy", default="beam",
                   help="neutrino energy: 'beam' (detector spectrum), 'MIN:MAX' flat or a fixed value, GeV")
    p.add_argument("--compression", choices=("none", "gzip"), default="none",
                   help="hit-file chunks: none (fastest, ~140 kB/event) or gzip (~2x smaller, "
                        "~5x slower to write); the same seed gives the same bytes either way")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--display", metavar="PNG", help="draw one event per flavour (every view side by side) to this PNG")
    p.add_argument("--inspect", metavar="FILE", help="validate an existing hit file and print a summary")
    return p


def _inspect(args) -> int:
    from ..display import draw_events, one_per_flavour
    from ..io.hitfile import HitFile

    with HitFile(args.inspect) as f:
        n = f.validate()
        truth = f.truth()
        counts = Counter(int(v) for v in truth["flavour"])
        n_hits = f.n_hits_total
        print(f"{f.path}: {n} events, {n_hits} hits ({n_hits / max(n, 1):.0f} per event), "
              f"detector {f.detector.name}, schema {f.schema_version}, {f.software}, seed {f.seed}")
        for code, c in sorted(counts.items()):
            name = Flavour(code).label if code >= 0 else "undefined"
            print(f"  {name:10s} {c:8d}")
        if args.display:
            shown = one_per_flavour(f.read_range(0, min(n, 200)))
            print(f"display: {draw_events(shown, f.detector, args.display)}")
    return 0


def _simulate(args) -> int:
    from ..io.simulated import write_simulation
    from ..sim.simulate import EnergyOption, SimRequest

    if not args.out:
        raise ConfigError("--out FILE.h5 is required (or --inspect FILE)")
    if args.workers < 1:
        raise ConfigError(f"--workers must be ≥ 1, got {args.workers}")
    try:
        flavours = tuple(Flavour.parse(f) for f in args.flavours.split(",") if f.strip())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    detector = load_detector(args.detector)
    request = SimRequest(detector=args.detector, n_events=args.events, seed=args.seed,
                         flavours=flavours, mix=args.mix, energy=EnergyOption.parse(args.energy))
    with tqdm(total=args.events, unit="ev", desc="gnnu-sim", file=sys.stderr, disable=None) as bar:
        summary = write_simulation(request, detector, args.out, workers=args.workers,
                                   force=args.force, compression=args.compression,
                                   display=args.display, progress=bar.update)
    print(summary.report())
    if summary.display:
        print(f"gnnu-sim: event display written to {summary.display}")
    return 0


def main(argv=None) -> int:
    p = build_parser()
    return run("gnnu-sim", lambda a: _inspect(a) if a.inspect else _simulate(a), p, argv)


if __name__ == "__main__":
    sys.exit(main())
