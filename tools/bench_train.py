"""Real training speed: ``gnnu-train`` epochs on a fixed graph dataset, data loader included.

Runs the library's training entry point (what ``gnnu-train`` runs) on ``--data`` for ``--epochs``
epochs in a temporary run directory, on the CPU, and prints the wall time per epoch (from the
trainer's own record: loader, forward, backward, optimiser and validation) and the training
events/s the module measured over the training steps. Early stopping and mid-epoch checkpoints
are off, so every run does the same work.

    python tools/bench_train.py --data DIR --model edgeconv [--epochs 2] [--batch 16]

With ``tools/bench_ab.py`` the same command runs alternately in an older checkout (the dataset
must be readable by both):

    python tools/bench_ab.py --base REV --pairs 3 --pattern 'epoch wall time: median ([\\d.]+) s' \\
        -- python tools/bench_train.py --data DIR --model edgeconv
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from _env import describe


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="graph dataset (gnnu-build output)")
    ap.add_argument("--model", default="edgeconv", help="model config name (configs/models)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=0, help="data-loader worker processes")
    ap.add_argument("--max-events", type=int, help="first N training events only")
    args = ap.parse_args()

    from gnnu.config import CONFIG_ROOT
    from gnnu.train.run import TrainOptions, train

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        record = train(TrainOptions(
            config=str(CONFIG_ROOT / "models" / f"{args.model}.yaml"), data=args.data, out=str(out),
            epochs=args.epochs, max_events=args.max_events, device="cpu",
            overrides=(f"batch_size={args.batch}", f"num_workers={args.workers}",
                       "early_stopping.enabled=false", "checkpoint.every_n_steps=1000000",
                       "seed=0")))
        run = json.loads((out / "run.json").read_text())
    epochs = max(1, record["epochs_completed"])
    rates = [h["train/events_per_s"] for h in run["history"] if "train/events_per_s" in h]
    per_epoch = record["training_wall_time_s"] / epochs
    print(describe())
    print(f"model {args.model}, dataset {args.data}, batch {args.batch}, {args.workers} loader "
          f"workers, {epochs} epoch(s), {run['dataset']['n_train']} training events")
    print(f"epoch wall time: median {per_epoch:.2f} s (training + validation, loader included)")
    if rates:
        print(f"training events/s: median {statistics.median(rates):.2f} (per epoch: "
              f"{', '.join(f'{r:.2f}' for r in rates)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
