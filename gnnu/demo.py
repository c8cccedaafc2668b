"""The demo behind ``gnnu-demo``: the ``demo`` study preset (``configs/studies/demo.yaml``).

``gnnu-demo --out DIR`` is ``gnnu-study --config demo --out DIR`` (:mod:`gnnu.study`): simulate
a DUNE-like sample, build the graph dataset (the CNN reads the same events as pixel maps), train
and evaluate an EdgeConv GNN and a ResNet18 CNN, compare them with inference re-measured side by
side, and write ``DIR/RESULTS.md`` and ``DIR/results.json``. Two pictures are added for a first
look: one simulated event per flavour (``event_display.png``) and one test event as graph and as
the CNN's pixel maps (``event_views.png``).

Sizes: ``small`` is the preset as it is (a CPU run of a few minutes in which the GNN visibly
learns: one epoch, see the preset); ``medium`` (10 000 events, 10 epochs) and ``large`` (40 000,
20) are meant for a GPU. ``events`` / ``epochs`` override the size's numbers, ``models`` keeps
only some of the preset's models. ResNet18 starts from torchvision's ImageNet weights when that
file is in the torch hub cache, otherwise from a random initialisation, and RESULTS.md says
which (gnnu never downloads).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

#: ``--size`` → study-config overrides.
SIZES = {
    "small": (),
    "medium": ("data.simulate.events=10000", "training.budget.epochs=10"),
    "large": ("data.simulate.events=40000", "training.budget.epochs=20"),
}
PRESET = "demo"


def demo_overrides(size: str = "small", events: int | None = None, epochs: int | None = None,
                   workers: int | None = None, models: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The ``--set`` list of a demo: the size's, then the explicit numbers; ConfigError for an
    unknown size or model."""
    if size not in SIZES:
        raise ConfigError(f"unknown demo size '{size}' (known: {', '.join(SIZES)})")
    sets = list(SIZES[size])
    for key, value in (("data.simulate.events", events), ("training.budget.epochs", epochs),
                       ("data.simulate.workers", workers), ("graph.workers", workers)):
        if value is not None:
            if value < 1:
                raise ConfigError(f"{key.rsplit('.', 1)[-1]} must be ≥ 1, got {value}")
            sets.append(f"{key}={value}")
    if models is not None:
        from .study.config import load_study_config

        preset = {m.key: m for m in load_study_config(PRESET).models}
        unknown = [m for m in models if m not in preset]
        if unknown or not models:
            raise ConfigError(f"--models: unknown model(s) {', '.join(unknown) or '(none given)'} "
                              f"of the demo (it has: {', '.join(preset)})")
        import json

        from .config import to_dict

        kept = [{k: v for k, v in to_dict(preset[m]).items() if v not in (None, [], False)}
                for m in models]
        sets.append(f"models={json.dumps(kept)}")          # JSON is YAML: parsed, never eval-ed
    return tuple(sets)


def run_demo(size: str = "small", out: str | os.PathLike = "demo-out", workers: int | None = None,
             force: bool = False, device: str = "auto", events: int | None = None,
             epochs: int | None = None, models: tuple[str, ...] | None = None,
             command: str | None = None, log=print):
    """Run the demo study into ``out`` (module docstring); returns its
    :class:`gnnu.study.StudyResult` with the two pictures added to ``result.pictures``."""
    from .study import StudyOptions, run_study

    res = run_study(StudyOptions(config=PRESET, out=str(out), device=device, force=force,
                                 overrides=demo_overrides(size, events, epochs, workers, models),
                                 command=command or "gnnu-demo", log=log))
    res.pictures = pictures(Path(out))
    return res


def pictures(out: Path) -> list[Path]:
    """``event_display.png`` (one simulated event per flavour) and ``event_views.png`` (the first
    test event as graph and as pixel maps) of a demo study directory."""
    from .display import draw_events, one_per_flavour
    from .images.display import draw_graph_and_maps
    from .io.hitfile import HitFile

    with HitFile(out / "events.h5") as f:
        shown = draw_events(one_per_flavour(f.read_range(0, min(len(f), 40))), f.detector,
                            out / "event_display.png")
    return [shown, draw_graph_and_maps(out / "graphs", 0, out / "event_views.png", split="test")]
