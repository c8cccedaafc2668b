"""What a study will do, worked out and checked before any work (:func:`make_plan`).

The plan resolves the config into stages — simulate (when the data are simulated), build (unless
a graph dataset is given), one train + evaluate stage per (model, training size, seed), the
comparison and the report — and refuses, with one :class:`~gnnu.errors.ConfigError` line, what
cannot work:

- an unknown model, model config, graph config, detector or flavour; a typo in any key (the
  config's validation);
- a training size larger than the training events available: counted exactly before anything is
  simulated or built, from the event ids the source will have (gnnu-sim's ids are (seed, 0, i))
  and gnnu-build's split rule (:func:`gnnu.graph.build.assign_split`); the test split must not be
  empty;
- a dataset whose inputs do not fit a model: every model is built once (``create_model``) with
  the dataset's node features or, for a CNN, its image preset checked against the dataset's
  detector (:func:`gnnu.images.dataset.check_preset`); a missing ``init_from`` checkpoint.

Events that ``gnnu-build`` skips (``graph.skip_bad``: e.g. a simulated event with no hit inside a
pixel-map window) are not known in advance: sizes are checked again against the built dataset,
before training starts.

Each run's *settings* (:func:`run_settings`: the resolved training config, the data it is trained
on, the evaluation settings, the ``init_from`` checkpoint) are what ``--resume`` compares with a
finished run's record.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import read_yaml, resolve_config, to_dict
from ..errors import ConfigError, InputError
from .config import ALL, ModelEntry, StudyConfig

#: The study directory's layout.
STUDY_FILE = "study.yaml"
EVENTS_FILE = "events.h5"
GRAPHS_DIR = "graphs"
RUNS_DIR = "runs"
COMPARISON_DIR = "comparison"
REPORT_DIR = "eval-test"
#: A run of another model of the study as ``init_from``: ``run:LABEL``.
RUN_REF = "run:"


@dataclass(frozen=True)
class RunSpec:
    """One training + evaluation: model ``label`` (registry ``model``, ``family`` gnn or cnn)
    trained on the first ``n_train`` events of the training split (``size`` as configured) with
    ``seed`` (``repeat`` of the learning curve)."""

    label: str
    model: str
    family: str
    size: int | str
    n_train: int
    seed: int
    repeat: int

    @property
    def name(self) -> str:
        return f"{self.label} n={self.n_train} seed={self.seed}"

    def directory(self, out: Path) -> Path:
        return out / RUNS_DIR / self.label / f"n{self.n_train}-s{self.seed}"


@dataclass
class Expected:
    """Events per split that the dataset will hold (exact before building, less any events the
    build skips)."""

    per_split: dict[str, int]
    source_events: int
    detector: object
    note: str = ""


@dataclass
class StudyPlan:
    """The resolved study: config, output directory, expected split sizes, the runs in the order
    they run, and per model its training-config source and the ``init_from`` references."""

    cfg: StudyConfig
    out: Path
    expected: Expected
    runs: list[RunSpec]
    model_sources: dict[str, dict] = field(default_factory=dict)
    extra_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def dataset(self) -> Path:
        return Path(self.cfg.data.graphs) if self.cfg.data.graphs else self.out / GRAPHS_DIR

    @property
    def hit_files(self) -> list[Path]:
        if self.cfg.data.simulate:
            return [self.out / EVENTS_FILE]
        return [Path(p) for p in self.cfg.data.hits]

    def headline_size(self, label: str) -> int:
        """The largest training size of model ``label``."""
        return max(r.n_train for r in self.runs if r.label == label)

    def headline_runs(self) -> list[RunSpec]:
        """Per model, the runs at the study's headline (largest) size, every seed."""
        top = max(r.n_train for r in self.runs)
        return [r for r in self.runs if r.n_train == top]

    def stage_count(self) -> int:
        return (bool(self.cfg.data.simulate) + (not self.cfg.data.graphs) + len(self.runs) + 2)


# -- the data the study will have ---------------------------------------------------------------
def _flavours(names) -> tuple:
    from ..events import Flavour

    try:
        return tuple(Flavour.parse(f) for f in names)
    except ValueError as exc:
        raise ConfigError(f"data.simulate.flavours: {exc}") from None


def sim_request(cfg: StudyConfig):
    """The :class:`gnnu.sim.simulate.SimRequest` of a simulated study (ConfigError for bad values)."""
    from ..sim.simulate import EnergyOption, SimRequest

    s = cfg.data.simulate
    return SimRequest(detector=s.detector, n_events=s.events, seed=s.seed,
                      flavours=_flavours(s.flavours), energy=EnergyOption.parse(s.energy))


def _split_counts(ids: np.ndarray, detector_name: str, cfg: StudyConfig) -> dict[str, int]:
    from ..graph.build import assign_split
    from ..graph.store import SPLITS

    split = assign_split(ids, detector_name, cfg.graph.seed, cfg.graph.split)
    return {name: int((split == k).sum()) for k, name in enumerate(SPLITS)}


def expected_data(cfg: StudyConfig) -> Expected:
    """Events per split of the dataset the study will train on (module docstring)."""
    from ..detectors import load_detector

    if cfg.data.graphs:
        from ..graph.store import read_manifest

        manifest = read_manifest(cfg.data.graphs)
        per_split = {k: int(v) for k, v in manifest["counts"]["per_split"].items()}
        return Expected(per_split, int(manifest["counts"]["in"]), None,
                        "counted in the given dataset's manifest")
    if cfg.data.simulate:
        from ..sim.simulate import check_request

        request = sim_request(cfg)
        detector = load_detector(cfg.data.simulate.detector)
        check_request(request, detector)
        n = request.n_events
        ids = np.stack([np.full(n, request.seed), np.zeros(n, np.int64), np.arange(n)], axis=1)
        return Expected(_split_counts(ids, detector.name, cfg), n, detector,
                        "before the build skips any event")
    from ..io.hitfile import HitFile

    ids, detector = [], None
    for path in cfg.data.hits:
        with HitFile(path) as f:
            ids.append(np.asarray(f.event_ids(), np.int64).reshape(-1, 3))
            detector = detector or f.detector
    ids = np.concatenate(ids) if ids else np.zeros((0, 3), np.int64)
    return Expected(_split_counts(ids, detector.name, cfg), len(ids), detector,
                    "before the build skips any event")


# -- models -------------------------------------------------------------------------------------
def model_source(entry: ModelEntry) -> dict:
    """How model ``entry``'s training config is read: ``{"path": YAML}`` (a model or training
    config file) or ``{"base": mapping}``; ConfigError for an unknown model or config."""
    ref = entry.config or entry.name
    return {"path": str(resolve_config("models", ref))}


def train_overrides(cfg: StudyConfig, entry: ModelEntry, run: RunSpec | None,
                    batch_size: int | None = None, n_train: int | None = None,
                    extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """``--set`` overrides of a run: ``training.set``, the model's ``set``, ``extra`` (the
    weights chosen by ``imagenet_if_cached``), then the budget (epochs, early stopping,
    max_steps) and the seed — budget and seed are the study's and come last. ``batch_size`` /
    ``n_train`` size an ``events`` budget."""
    b = cfg.budget(entry.key)
    sets = [*cfg.training.set, *entry.set, *extra]
    if b.kind == "events":
        steps, epochs = events_budget_steps(b.events, n_train or 1, batch_size or 1)
        sets += [f"max_steps={steps}", f"epochs={epochs}", "early_stopping.enabled=false"]
    else:
        sets += [f"epochs={b.epochs}", f"early_stopping.enabled={str(b.early_stopping).lower()}",
                 f"early_stopping.patience={b.patience}", "max_steps=null"]
    if run is not None:
        sets.append(f"seed={run.seed}")
    return tuple(sets)


def events_budget_steps(events: int, n_train: int, batch_size: int) -> tuple[int, int]:
    """(optimiser steps, epochs) that show ``events`` training events to a model trained on
    ``n_train`` events in batches of ``batch_size`` (an epoch is ceil(n_train / batch) steps, its
    last batch partial): whole epochs of n_train events, then the batches of the remainder."""
    per_epoch = math.ceil(n_train / batch_size)
    full, rest = divmod(events, n_train)
    return full * per_epoch + math.ceil(rest / batch_size), full + (rest > 0)


def load_run_config(plan: StudyPlan, entry: ModelEntry, run: RunSpec | None, data: str | None):
    """The resolved :class:`gnnu.train.config.TrainConfig` of one run (or of the model, without
    run-specific values)."""
    from ..train.config import load_train_config

    src = plan.model_sources[entry.key]
    return load_train_config(src["path"], data=data, require_data=False,
                             max_events=run.n_train if run else None,
                             overrides=run_overrides(plan, entry, run))


def run_overrides(plan: StudyPlan, entry: ModelEntry, run: RunSpec | None) -> tuple[str, ...]:
    """The exact ``--set`` list of a run (:func:`train_overrides`, sized by its batch size)."""
    from ..train.config import load_train_config

    extra = plan.extra_sets.get(entry.key, ())
    first = load_train_config(plan.model_sources[entry.key]["path"], require_data=False,
                              overrides=train_overrides(plan.cfg, entry, None, extra=extra))
    n_train = run.n_train if run else plan.expected.per_split["train"]
    return train_overrides(plan.cfg, entry, run, first.batch_size, n_train, extra)


def imagenet_sets(entry: ModelEntry, notes: list[str]) -> tuple[str, ...]:
    """ResNet18 with ``imagenet_if_cached``: ImageNet weights when their file is in the torch hub
    cache, else a random initialisation; the choice goes to ``notes`` (gnnu never downloads)."""
    if not entry.imagenet_if_cached:
        return ()
    from ..models.cnn.resnet18 import imagenet_file

    try:
        path = imagenet_file(None)
    except ConfigError:
        notes.append(f"{entry.key}: torchvision's ImageNet weights are not in the torch hub cache, "
                     "so it trains from a random initialisation (put resnet18-f37072fd.pth there for "
                     "transfer learning; gnnu never downloads)")
        return ("model.params.weights=none",)
    notes.append(f"{entry.key}: fine-tuned from torchvision's ImageNet weights ({path})")
    return ("model.params.weights=imagenet",)


def _planned_frame(detector, graph_cfg):
    """The :class:`gnnu.images.frame.HitFrame` of the dataset the build will write."""
    from ..graph.build import graph_detector
    from ..images.frame import HitFrame

    geom = graph_detector(detector, graph_cfg)
    cfg = getattr(geom, "config", None)
    return HitFrame.from_manifest({"detector": {"views": list(geom.views),
                                                "config": None if cfg is None else to_dict(cfg)}}), geom


def check_models(plan: StudyPlan) -> None:
    """Build every model once on the dataset's inputs (module docstring); ConfigError (or
    InputError for a checkpoint) naming the model when one does not fit."""
    from ..graph.store import require_hits
    from ..images.dataset import check_preset, image_preset
    from ..models import create_model, model_inputs
    from ..models.checkpoint import checkpoint_meta, load_checkpoint
    from ..train.data import dataset_tasks

    cfg = plan.cfg
    if cfg.data.graphs:
        from ..graph.store import read_manifest
        from ..images.frame import HitFrame

        manifest = read_manifest(cfg.data.graphs)
        frame = HitFrame.from_manifest(manifest)
        features = [f["name"] for f in manifest["features"]]
    else:
        from ..graph.config import load_graph_config
        from ..graph.features import feature_columns

        gcfg = load_graph_config(cfg.graph.config)
        frame, geom = _planned_frame(plan.expected.detector, gcfg)
        features = [c.name for c in feature_columns(gcfg.features, geom)]
        manifest = {"counts": {"per_class": {}}}
    for entry in cfg.models:
        where = f"models[{entry.key}]"
        try:
            tcfg = load_run_config(plan, entry, None, None)
            if tcfg.model.name != entry.name:
                raise ConfigError(f"its config is model '{tcfg.model.name}', not '{entry.name}'")
            if model_inputs(entry.name) == "image":
                if cfg.data.graphs:
                    require_hits(manifest, cfg.data.graphs)
                preset = image_preset(tcfg.model.image)
                check_preset(preset, frame)
                inputs = [f"image_{frame.view_names[v]}" for v in preset.views]
            else:
                inputs = features
            create_model(tcfg.model, in_features=len(inputs),
                         tasks=dataset_tasks(manifest, tcfg.num_classes), regression=tcfg.regression)
        except (ConfigError, InputError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
        if entry.init_from and not entry.init_from.startswith(RUN_REF):
            if not Path(entry.init_from).is_file():
                raise ConfigError(f"{where}.init_from: {entry.init_from}: no such checkpoint")
            theirs = checkpoint_meta(load_checkpoint(entry.init_from), entry.init_from)["feature_names"]
            if list(theirs) != list(inputs):
                raise ConfigError(f"{where}.init_from: {entry.init_from} was trained on inputs "
                                  f"{list(theirs)}, this dataset gives {inputs}")


def family(model: str) -> str:
    from ..models import model_inputs

    return "cnn" if model_inputs(model) == "image" else "gnn"


def _run_order(cfg: StudyConfig) -> list[ModelEntry]:
    """Models in config order, except that a model referenced by ``init_from: run:LABEL`` runs
    before the models that use it; ConfigError for an unknown or circular reference."""
    keys = {m.key for m in cfg.models}
    deps = {}
    for m in cfg.models:
        if m.init_from and m.init_from.startswith(RUN_REF):
            ref = m.init_from[len(RUN_REF):]
            if ref not in keys or ref == m.key:
                raise ConfigError(f"models[{m.key}].init_from: '{ref}' is not another model of "
                                  f"this study ({', '.join(sorted(keys))})")
            deps[m.key] = ref
    order, seen = [], set()

    def visit(key, stack=()):
        if key in seen:
            return
        if key in stack:
            raise ConfigError(f"models: init_from references form a cycle ({' → '.join(stack + (key,))})")
        if key in deps:
            visit(deps[key], stack + (key,))
        seen.add(key)
        order.append(cfg.model(key))
    for m in cfg.models:
        visit(m.key)
    return order


def make_plan(cfg: StudyConfig, out: Path, expected: Expected | None = None,
              check: bool = True) -> StudyPlan:
    """Resolve and check everything (module docstring); nothing is written. ``expected``: the
    split sizes (default: counted from the source, :func:`expected_data`); ``check``: build
    every model once (:func:`check_models`)."""
    from ..graph.config import load_graph_config

    if not cfg.data.graphs:
        load_graph_config(cfg.graph.config)           # ConfigError for an unknown graph config
    expected = expected or expected_data(cfg)
    n_avail = expected.per_split["train"]
    if expected.per_split["test"] == 0 or expected.per_split["val"] == 0:
        raise ConfigError(f"data: the split {list(cfg.graph.split)} leaves "
                          f"{expected.per_split['val']} validation and {expected.per_split['test']} "
                          f"test events of {expected.source_events}: simulate more events")
    plan = StudyPlan(cfg, out, expected, [])
    for entry in cfg.models:
        plan.model_sources[entry.key] = model_source(entry)
        plan.extra_sets[entry.key] = imagenet_sets(entry, plan.notes)
    curve = cfg.learning_curve
    all_sizes = [n_avail if s == ALL else s for s in curve.sizes]
    too_big = sorted({s for e in cfg.models for s in (e.sizes or curve.sizes) if s != ALL and s > n_avail})
    if too_big:
        raise ConfigError(f"training size(s) {', '.join(map(str, too_big))} larger than the "
                          f"{n_avail} training events available ({expected.note}; split "
                          f"{list(cfg.graph.split)} of {expected.source_events} events)")
    for entry in _run_order(cfg):
        if entry.sizes is not None:
            sizes = [n_avail if s == ALL else s for s in entry.sizes]
        elif curve.models is None or entry.key in curve.models:
            sizes = all_sizes
        else:
            sizes = [max(all_sizes)]
        fam = family(entry.name)
        for size in sorted(set(sizes)):
            for r in range(curve.repeats):
                plan.runs.append(RunSpec(entry.key, entry.name, fam,
                                         ALL if size == n_avail and ALL in (entry.sizes or curve.sizes)
                                         else size, size, curve.seed + r, r))
    if check:
        check_models(plan)
    return plan


# -- settings: what must match for a finished stage or run to be kept ------------------------------
def digest(obj) -> str:
    """Short sha256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sim_settings(cfg: StudyConfig) -> dict:
    return {"simulate": to_dict(cfg.data.simulate)} if cfg.data.simulate else {}


def build_settings(cfg: StudyConfig) -> dict:
    g = to_dict(cfg.graph)
    g.pop("workers")                         # the output does not depend on it
    return {"graph": g, "sources": sim_settings(cfg) or {"hits": list(cfg.data.hits)}}


def data_settings(cfg: StudyConfig) -> dict:
    """What decides the dataset's events: the simulation and build settings, or the given
    dataset's path (its manifest hash is recorded with each run)."""
    if cfg.data.graphs:
        return {"graphs": str(cfg.data.graphs)}
    return build_settings(cfg)


def run_settings(plan: StudyPlan, run: RunSpec, init_from: dict | None) -> dict:
    """The settings of a run (module docstring): the resolved training config (without the
    dataset path), the data settings, the evaluation batch size and the checkpoint it starts from."""
    entry = plan.cfg.model(run.label)
    tcfg = to_dict(load_run_config(plan, entry, run, None))
    tcfg.pop("data", None)
    return {"train_config": tcfg, "data": data_settings(plan.cfg),
            "budget": to_dict(plan.cfg.budget(run.label)), "init_from": init_from,
            "config_file": plan.model_sources[run.label]["path"],
            "overrides": list(run_overrides(plan, entry, run))}


def differences(old, new, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two settings mappings."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix.rstrip(".") or "(value)"]


def read_saved_config(out: Path) -> dict:
    """The resolved config a study directory was run with (``study.yaml``)."""
    return read_yaml(out / STUDY_FILE)
