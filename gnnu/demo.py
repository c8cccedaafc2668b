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

A stage that fails stops the demo with one error line naming the stage and the stage's own
error (:class:`StageFailed`). The result carries each stage's event counts, read back from what
the stage wrote (:class:`DemoResult`).

ResNet18 starts from torchvision's ImageNet weights when that file is in the torch hub cache
(:func:`gnnu.models.cnn.resnet18.imagenet_file`), otherwise from a random initialisation, and
says which (gnnu never downloads).
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import CONFIG_ROOT
from .errors import ConfigError, GnnuError


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


class StageFailed(GnnuError):
    """A stage of the demo failed: the message names the stage and carries its own error."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class DemoResult:
    """Where the demo wrote things, and the events each stage counted.

    ``counts``: ``simulated`` (events in the hit file); ``build`` (the manifest's ``in``,
    ``out``, ``skipped``, ``per_split``); ``models`` = {name: {``train``, ``val``: run.json's
    ``dataset.events`` of the split (``in_split``, ``used``, ``skipped``, …), ``test``: events
    in the test report}}; ``compared``: events per model in comparison.csv.
    ``comparison_files``: the files the comparison actually wrote.
    """

    hit_file: Path
    display: Path
    dataset: Path
    views: Path
    runs: dict[str, Path]
    comparison: Path
    table: str
    seconds: float
    notes: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    comparison_files: list[str] = field(default_factory=list)


def _run(argv: list, log, stage: str | None = None) -> None:
    """Print and run one command line as a stage; StageFailed (naming ``stage``, default the
    command) when it fails, with the command's own one-line error in the message."""
    from .cli import invoke
    from .cli.common import stage as as_stage

    argv = [str(a) for a in argv]
    stage = stage or argv[0]
    log(f"\n$ {shlex.join(argv)}")
    try:
        with as_stage():
            rc = invoke(argv, check=False)
    except GnnuError as exc:
        raise StageFailed(f"stage {stage} failed: {exc}", exc.exit_code) from exc
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        raise StageFailed(f"stage {stage} failed: {where}no space left on the device "
                          f"({exc.strerror or exc})") from exc
    if rc:
        raise StageFailed(f"stage {stage} failed: exited with status {rc}", rc)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def comparison_files(comparison: Path) -> list[str]:
    """The files of a gnnu-compare output directory that exist (plots it could not draw are
    absent), in gnnu-compare's order."""
    from .evaluate.compare import COST_PLOT, CSV_FILE, ENERGY_PLOT, MARKDOWN_FILE, ROC_PLOT

    return [name for name in (MARKDOWN_FILE, CSV_FILE, ROC_PLOT, ENERGY_PLOT, COST_PLOT)
            if (comparison / name).is_file()]


def accounting_problems(counts: dict) -> list[str]:
    """What does not reconcile in ``counts`` (:class:`DemoResult`): simulated = read by the
    build = written + skipped, each model's train/val split = the built split = used + skipped,
    its test report and the comparison = the built test split. Empty when all agree."""
    b, problems = counts["build"], []
    if counts["simulated"] != b["in"]:
        problems.append(f"simulated {counts['simulated']} events, gnnu-build read {b['in']}")
    if b["in"] != b["out"] + b["skipped"] or sum(b["per_split"].values()) != b["out"]:
        problems.append(f"gnnu-build read {b['in']} = wrote {b['out']} {b['per_split']} + "
                        f"skipped {b['skipped']} does not add up")
    for name, m in counts["models"].items():
        for split in ("train", "val"):
            a = m[split]
            if not a["in_split"] == b["per_split"][split] == a["used"] + a["skipped"]:
                problems.append(f"{name}: {split} split {a} vs {b['per_split'][split]} built")
        if m["test"] != b["per_split"]["test"]:
            problems.append(f"{name}: evaluated {m['test']} of {b['per_split']['test']} test events")
    if counts["compared"] != [b["per_split"]["test"]]:
        problems.append(f"comparison on {counts['compared']} events, test split "
                        f"{b['per_split']['test']}")
    return problems


def _counts(hit_file: Path, dataset: Path, runs: dict[str, Path], comparison: Path) -> dict:
    """Each stage's event counts, read back from what it wrote (:class:`DemoResult`)."""
    from .io.hitfile import HitFile

    with HitFile(hit_file) as f:
        simulated = len(f)
    c = _read_json(dataset / "manifest.json")["counts"]
    models = {}
    for name, run_dir in runs.items():
        events = _read_json(run_dir / "run.json")["dataset"]["events"]
        models[name] = {"train": events["train"], "val": events["val"],
                        "test": int(_read_json(run_dir / "eval-test" / "metrics.json")["n_events"])}
    with open(comparison / "comparison.csv", newline="", encoding="utf-8") as f:
        compared = sorted({int(r["n_events"]) for r in csv.DictReader(f)})
    return {"simulated": simulated,
            "build": {k: c[k] for k in ("in", "out", "skipped", "per_split")},
            "models": models, "compared": compared}


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
    ``log``: where progress lines go. Stops at the first failing stage with
    :class:`StageFailed` (naming the stage, with its error; the stage prints nothing itself).
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
    _run(["gnnu-build", "--inspect", dataset], log, "gnnu-build --inspect")

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
              *(a for s in sets for a in ("--set", s)), *again], log, f"gnnu-train ({name})")
        _run(["gnnu-eval", "--checkpoint", run_dir / "best.ckpt", "--data", dataset, "--split", "test",
              "--out", run_dir / "eval-test", "--device", device, *again], log, f"gnnu-eval ({name})")
        runs[name] = run_dir

    comparison = out / "comparison"
    # --remeasure: every model timed again in its own fresh process, side by side, so events/s
    # and peak memory compare like with like (the training runs above share this process).
    _run(["gnnu-compare", *runs.values(), "--out", comparison, "--remeasure", "--device", device,
          *again], log)
    table = (comparison / "comparison.md").read_text(encoding="utf-8")
    counts = _counts(hit_file, dataset, runs, comparison)
    notes += [f"event accounting: {p}" for p in accounting_problems(counts)]
    return DemoResult(hit_file, display, dataset, views, runs, comparison, table,
                      time.perf_counter() - t0, notes, counts, comparison_files(comparison))
