"""The demo pipeline behind ``gnnu-demo``: the whole chain on a small simulated sample.

Stages run so far: simulate a DUNE-like sample (``gnnu-sim``), draw one event per flavour,
and build the kNN graph dataset (``gnnu-build``). Training, evaluation and the GNN-vs-CNN
comparison join this pipeline as those commands arrive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

#: events simulated per demo size
SIZES = {"small": 400, "medium": 4000, "large": 40000}


@dataclass
class DemoResult:
    hit_file: Path
    display: Path
    dataset: Path | None
    seconds: float


def run_demo(size: str = "small", out: str | Path = "demo-out", workers: int = 1,
             force: bool = False, seed: int = 1) -> DemoResult:
    """Run every available stage into ``out``; returns where things were written."""
    from .cli import sim as sim_cli

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    hit_file = out / "events.h5"
    display = out / "event_display.png"
    argv = ["--events", str(SIZES[size]), "--seed", str(seed), "--workers", str(workers),
            "--out", str(hit_file), "--display", str(display)]
    if force:
        argv.append("--force")
    rc = sim_cli.main(argv)
    if rc:
        raise SystemExit(rc)
    dataset = None
    try:
        from .cli import build as build_cli
    except ImportError:  # gnnu-build not installed in this version
        build_cli = None
    if build_cli is not None:
        dataset = out / "graphs"
        argv = ["--input", str(hit_file), "--format", "gnnu", "--out", str(dataset),
                "--seed", str(seed), "--workers", str(workers)]
        if force:
            argv.append("--force")
        rc = build_cli.main(argv)
        if rc:
            raise SystemExit(rc)
        build_cli.main(["--inspect", str(dataset)])
    return DemoResult(hit_file, display, dataset, time.perf_counter() - t0)
