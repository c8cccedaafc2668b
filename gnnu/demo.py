"""The demo pipeline behind ``gnnu-demo``: the whole chain on a small simulated sample.

Stages, each the very command line a user would type (run in-process by
:func:`gnnu.cli.invoke`, printed before it runs):

1. ``gnnu-sim``: a DUNE-like sample, the four flavours in equal numbers, and an event display;
2. ``gnnu-build``: the kNN graph dataset (split 0.8/0.1/0.1), then ``--inspect``; the CNNs read
   the same dataset as pixel maps, so one event is drawn as graph and as maps
   (``event_views.png``, :func:`gnnu.images.display.draw_graph_and_maps`);
3. ``gnnu-train`` of each model (default: EdgeConv and the ResNet18 transfer CNN), then
   ``gnnu-eval`` of its best checkpoint on the test split;
4. ``gnnu-compare --remeasure`` of all of them (inference re-timed side by side, each model in a
   fresh process), whose summary table ends the demo.

Sizes: ``small`` (400 events, 2 epochs; what ``make demo`` runs on a CPU in a few minutes) trains
a narrower EdgeConv (widths 32/64, trunk 64) than ``configs/models/edgeconv.yaml`` — the full
one needs a GPU to be quick — and every model at ``small`` only learns a little (accuracy
somewhat above the 0.25 of chance: 320 training events). ``medium`` (4 000 events, 10 epochs)
and ``large`` (40 000, 20) train the shipped configs unchanged: use them on a GPU.

ResNet18 starts from torchvision's ImageNet weights when that file is in the torch hub cache
(:func:`gnnu.models.cnn.resnet18.imagenet_file`), otherwise from a random initialisation, and
says which (gnnu never downloads).
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import CONFIG_ROOT
from .errors import ConfigError


@dataclass(frozen=True)
class DemoSize:
    """Events simulated, training epochs, and extra ``--set`` overrides per model."""

    events: int
    epochs: int
    overrides: dict = field(default_factory=dict)


#: The narrow EdgeConv of the small demo (a CPU trains it in about a minute an epoch).
_SMALL_EDGECONV = ("model.params.widths=[32,64]", "model.heads.hidden=[64]")
SIZES = {
    "small": DemoSize(400, 2, {"edgeconv": _SMALL_EDGECONV}),
    "medium": DemoSize(4000, 10),
    "large": DemoSize(40000, 20),
}
#: Models trained by default: one GNN, one CNN.
DEFAULT_MODELS = ("edgeconv", "resnet18")


@dataclass
class DemoResult:
    hit_file: Path
    display: Path
    dataset: Path
    views: Path
    runs: dict[str, Path]
    comparison: Path
    table: str
    seconds: float
    notes: list[str] = field(default_factory=list)


def _run(argv: list, log) -> None:
    from .cli import invoke

    argv = [str(a) for a in argv]
    log(f"\n$ {shlex.join(argv)}")
    invoke(argv)


def _resnet18_weights(notes: list[str]) -> tuple[str, ...]:
    """ResNet18's --set for the weights at hand: ImageNet when cached, else random (noted)."""
    from .models.cnn.resnet18 import imagenet_file

    try:
        path = imagenet_file(None)
    except ConfigError:
        notes.append("resnet18: torchvision's ImageNet weights are not in the torch hub cache, so "
                     "it trains from a random initialisation (put resnet18-f37072fd.pth there for "
                     "transfer learning; gnnu never downloads)")
        return ("model.params.weights=none",)
    notes.append(f"resnet18: fine-tuned from the ImageNet weights at {path}")
    return ()


def run_demo(size: str = "small", out: str | os.PathLike = "demo-out", workers: int = 1,
             force: bool = False, seed: int = 1, device: str = "auto",
             models: tuple[str, ...] = DEFAULT_MODELS, events: int | None = None,
             epochs: int | None = None, log=print) -> DemoResult:
    """Run every stage (module docstring) into ``out``; returns where things were written.

    ``size``: a key of :data:`SIZES`; ``events`` / ``epochs`` override its numbers. ``models``:
    model config names under ``configs/models/``. ``device``: as ``gnnu-train --device``.
    ``log``: where progress lines go. Stops at the first failing stage (its command has
    printed its one-line error; :class:`gnnu.cli.CommandFailed` names it).
    """
    if size not in SIZES:
        raise ConfigError(f"unknown demo size '{size}' (known: {', '.join(SIZES)})")
    unknown = [m for m in models if not (CONFIG_ROOT / "models" / f"{m}.yaml").is_file()]
    if unknown or not models:
        known = sorted(p.stem for p in (CONFIG_ROOT / "models").glob("*.yaml"))
        raise ConfigError(f"--models: unknown model config(s) {', '.join(unknown) or '(none given)'} "
                          f"(known: {', '.join(known)})")
    plan = SIZES[size]
    n_events, n_epochs = events or plan.events, epochs or plan.epochs
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    notes: list[str] = []
    again = ["--force"] if force else []
    hit_file, display, dataset = out / "events.h5", out / "event_display.png", out / "graphs"

    _run(["gnnu-sim", "--detector", "dune", "--events", n_events, "--seed", seed,
          "--workers", workers, "--out", hit_file, "--display", display, *again], log)
    _run(["gnnu-build", "--input", hit_file, "--format", "gnnu", "--out", dataset, "--seed", seed,
          "--workers", workers, *again], log)
    _run(["gnnu-build", "--inspect", dataset], log)

    from .images.display import draw_graph_and_maps

    views = draw_graph_and_maps(dataset, 0, out / "event_views.png", split="test")
    log(f"\ngnnu-demo: one test event as graph and as pixel maps → {views}")

    runs: dict[str, Path] = {}
    for name in models:
        run_dir = out / "runs" / name
        sets = list(plan.overrides.get(name, ()))
        if name == "resnet18":
            sets += _resnet18_weights(notes)
        sets.append(f"num_workers={max(0, workers - 1)}")
        _run(["gnnu-train", "--config", CONFIG_ROOT / "models" / f"{name}.yaml", "--data", dataset,
              "--out", run_dir, "--epochs", n_epochs, "--device", device,
              *(a for s in sets for a in ("--set", s)), *again], log)
        _run(["gnnu-eval", "--checkpoint", run_dir / "best.ckpt", "--data", dataset, "--split", "test",
              "--out", run_dir / "eval-test", "--device", device, *again], log)
        runs[name] = run_dir

    comparison = out / "comparison"
    # --remeasure: every model timed again in its own fresh process, side by side, so events/s
    # and peak memory compare like with like (the training runs above share this process).
    _run(["gnnu-compare", *runs.values(), "--out", comparison, "--remeasure", "--device", device,
          *again], log)
    table = (comparison / "comparison.md").read_text(encoding="utf-8")
    return DemoResult(hit_file, display, dataset, views, runs, comparison, table,
                      time.perf_counter() - t0, notes)
