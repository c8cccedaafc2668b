"""A training run: the library behind ``gnnu-train`` (docs/design.md#training-and-evaluation, #command-line-contract).

:func:`train` validates everything first (config, device, dataset, run directory, monitors,
init-from checkpoint), then trains with Lightning and writes ``RUN_DIR/``. Graph models read the
dataset's graphs, image models (``gnnu.models.model_inputs(name) == 'image'``) the same events
as pixel maps rendered with the model config's ``image`` section (:mod:`gnnu.train.data`); their
inputs (``in_features``) are the rendered views. The run directory holds:

- ``config.yaml``: the resolved training config (model config expanded; reloadable as a config);
- ``best.ckpt`` (best validation ``checkpoint.monitor``) and ``last.ckpt`` (see
  :mod:`gnnu.train.callbacks`); both load with ``torch.load(weights_only=True)``
  (:mod:`gnnu.models.checkpoint`);
- ``tensorboard/``: TensorBoard event files (``tensorboard --logdir RUN_DIR``);
- ``run.json``: gnnu and library versions, dataset path and manifest hash, the events of the
  train and val splits (``dataset.events``: in the split = used + skipped by ``max_events`` /
  ``max_val_events``), model name,
  parameter count (total, trainable), FLOPs per event (:func:`gnnu.models.cost.flops_per_event`
  on the first training events), device, precision, world size and strategy, status, epochs and steps done,
  best checkpoint score, the per-epoch history, training wall time (this invocation and the sum
  over resumes), fine-tuning details (loaded / re-initialised tensors, frozen prefixes).

Devices: ``device='auto'`` trains on the GPU(s) when CUDA is available, else on the CPU;
``devices`` / ``num_nodes`` in the config choose DDP across GPUs and machines (``strategy: ddp``
forces it for one process too). Lightning starts
the per-GPU processes itself (``gnnu-train … --set devices=4``); on a cluster start one process per
GPU and let Lightning read the environment, e.g. ``torchrun --nnodes 2 --nproc-per-node 4
$(which gnnu-train) --config C --data D --out R --set num_nodes=2 --set devices=4`` or, under
SLURM, ``srun --ntasks-per-node 4 gnnu-train … --set num_nodes=2 --set devices=4`` (Lightning
detects SLURM and torchrun). Only global rank 0 writes ``config.yaml``, ``run.json`` and
checkpoints. ``batch_size`` is per process. Multi-GPU runs are not covered by the tests.

Resume (``resume=True``): continues from ``RUN_DIR/last.ckpt`` with the run's saved
``config.yaml`` (a ``--config`` given again must resolve to the same config; of its values only
:data:`RESUME_MAY_CHANGE` may be overridden; the dataset must
have the same manifest hash; ``--epochs`` may extend a run whose schedule is ``none`` — a cosine or
one-cycle schedule is fixed to the run's length at its start). A resumed single-device,
``deterministic`` run ends with the same weights and metrics as an uninterrupted one:
data order from :class:`gnnu.train.data.EpochSampler`, RNG state from the checkpoint.
``--resume`` is refused with one line — never a fresh run — when ``RUN_DIR`` is not a run
directory (a mistyped path) or has no ``last.ckpt`` (killed before its first checkpoint: start
it again with ``--force``, which replaces ``best.ckpt``). Ctrl-C and SIGTERM stop at the next
batch boundary, save ``last.ckpt``, set ``run.json``'s status to ``interrupted`` and exit 130 /
143. Every checkpoint is written atomically (:class:`gnnu.train.callbacks.AtomicCheckpointIO`),
and ``RUN_DIR`` is locked for the run (:func:`gnnu.atomic.output_lock`).

Fine-tuning (``init_from``): weights whose names and shapes match are copied from the checkpoint
(a head whose class count differs keeps its new initialisation), the config's ``freeze`` stops
training the selected parameters; when it is null, a model's own ``default_freeze`` prefixes
(set by the ResNet18 transfer model from its params) are frozen the same way. The checkpoint's feature names must equal the dataset's.

Simplifications: a run directory that is not empty is refused unless ``resume`` or ``force``
(``force`` deletes the artefacts listed above, nothing else); under DDP, resume is exact only
up to the ranks' dropout RNG (all ranks continue from rank 0's state); a run directory moved
elsewhere resumes, but Lightning's ``ModelCheckpoint`` then forgets the best score so far (the
next validation replaces ``best.ckpt``).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from .. import __version__
from ..atomic import output_lock, remove_outputs, write_json_atomic, write_text_atomic
from ..config import read_yaml, to_dict
from ..errors import ConfigError, GnnuError, InputError, OutputExistsError
from ..evaluate.report import RUN_FILE
from ..graph.store import read_manifest
from ..models import count_parameters, create_model, flops_per_event
from ..models.checkpoint import checkpoint_meta, freeze, load_checkpoint, load_matching, model_state
from ..models.pretrained import resolve_checkpoint
from .config import TrainConfig, load_train_config
from .data import EventDataModule, check_labels, class_weights, dataset_tasks, manifest_hash
from .progress import EVERY, TrainProgress, progress_mode

CONFIG_FILE = "config.yaml"
BEST = "best.ckpt"
LAST = "last.ckpt"
TB_DIR = "tensorboard"
#: Config keys a resumed run may change (``--set``/flags); the others fix the training path.
RESUME_MAY_CHANGE = ("data", "epochs", "max_steps", "num_workers", "log_every_n_steps")
#: What a run writes (and what ``force`` removes).
ARTEFACTS = (CONFIG_FILE, RUN_FILE, BEST, LAST, TB_DIR)


class TrainingInterrupted(GnnuError):
    """The run received SIGTERM or Ctrl-C; ``last.ckpt`` was saved and ``--resume`` continues it.
    Exit code 128 + the signal: 143 (SIGTERM), 130 (SIGINT)."""

    exit_code = 143

    def __init__(self, message: str, signal_name: str = "SIGTERM"):
        super().__init__(message)
        self.exit_code = 130 if signal_name == "SIGINT" else 143


@dataclass
class TrainOptions:
    """What ``gnnu-train`` was asked for (docs/design.md#command-line-contract).

    ``config``: training or model config (YAML path); ``data``: dataset directory (overrides the
    config's); ``out``: run directory; ``epochs`` / ``max_events``: override the config;
    ``device``: ``auto``, ``cpu`` or ``cuda``; ``init_from``: checkpoint to fine-tune from;
    ``resume`` / ``force``: see module docstring; ``overrides``: ``key=value`` strings;
    ``callbacks``: extra Lightning callbacks; ``progress``: ``auto`` (a bar on a terminal, else
    a line every ``progress_every`` steps and one per epoch: :mod:`gnnu.train.progress`),
    ``bar``, ``lines`` or ``none`` (True/False: bar/none).
    """

    config: str | None
    out: str
    data: str | None = None
    epochs: int | None = None
    max_events: int | None = None
    device: str = "auto"
    init_from: str | None = None
    resume: bool = False
    force: bool = False
    overrides: tuple[str, ...] = ()
    callbacks: tuple = ()
    progress: str | bool = "auto"
    progress_every: int = EVERY


@dataclass
class _Plan:
    cfg: TrainConfig
    out: Path
    accelerator: str
    resume_from: Path | None
    previous: dict = field(default_factory=dict)


def resolve_accelerator(device: str) -> str:
    """``auto`` → ``gpu`` when CUDA is available else ``cpu``; ``cuda`` → ``gpu`` (ConfigError
    without CUDA); ``cpu`` → ``cpu``."""
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got '{device}'")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    return "gpu" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"


def device_name(accelerator: str) -> str:
    """Human-readable device: the GPU's name, or ``cpu``."""
    return torch.cuda.get_device_name(0) if accelerator == "gpu" else "cpu"


def _global_rank() -> int:
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0))


def _config_without_data(cfg: TrainConfig) -> dict:
    d = to_dict(cfg)
    d.pop("data")
    return d


def _plan(opts: TrainOptions) -> _Plan:
    """Resolve the config and the run directory; refuse what cannot work, before any work."""
    out = Path(opts.out)
    saved = out / CONFIG_FILE
    flags = dict(overrides=tuple(opts.overrides), data=opts.data, epochs=opts.epochs,
                 max_events=opts.max_events)
    resuming = opts.resume and saved.exists()
    if opts.resume and opts.force:
        raise ConfigError("--resume and --force exclude each other")
    if opts.resume and not saved.exists():
        # a mistyped directory must not silently start a fresh run
        what = ("does not exist" if not out.exists() else
                f"is not a gnnu-train run directory (no {CONFIG_FILE})")
        raise OutputExistsError(f"{out}: nothing to resume: the directory {what} (check the path; "
                                "a new run is started without --resume)")

    if resuming:
        before = load_train_config(base=read_yaml(saved), require_data=False)
        cfg = load_train_config(base=read_yaml(saved), **flags)
        a, b = to_dict(before), to_dict(cfg)
        changed = sorted(k for k in a if a[k] != b[k] and k not in RESUME_MAY_CHANGE)
        if changed:
            raise ConfigError(f"--resume: {', '.join(changed)} cannot change during a run "
                              f"(only {', '.join(RESUME_MAY_CHANGE)} may)")
        if ((before.epochs, before.max_steps) != (cfg.epochs, cfg.max_steps)
                and cfg.schedule.name != "none"):
            raise ConfigError(f"--resume: changing epochs/max_steps would break the {cfg.schedule.name} "
                              "learning-rate schedule fixed at the start of the run (extend runs "
                              "trained with 'schedule: {name: none}', or fine-tune with --init-from)")
        if opts.config is not None:
            given = load_train_config(opts.config, **{**flags, "data": opts.data or cfg.data})
            a, b = _config_without_data(given), _config_without_data(cfg)
            diff = sorted(k for k in a if a[k] != b[k])
            if diff:
                raise ConfigError(f"--resume: {opts.config} differs from {saved} in "
                                  f"{', '.join(diff)} (resume with the run's own config)")
    elif opts.config is None:
        raise ConfigError("--config CFG.yaml is required (a training or a model config)")
    else:
        cfg = load_train_config(opts.config, **flags)
    accelerator = resolve_accelerator(opts.device)
    if cfg.precision == "16-mixed" and accelerator == "cpu":
        raise ConfigError("precision 16-mixed needs a GPU (use bf16-mixed or 32 on the CPU)")
    read_manifest(cfg.data)                        # InputError now if the dataset is unusable

    previous: dict = {}
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory")
    contents = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    resume_from = None
    if resuming:
        if (out / RUN_FILE).exists():
            previous = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
            old, new = previous.get("dataset", {}).get("manifest_hash"), manifest_hash(cfg.data)
            if old and old != new:
                raise InputError(f"the run was trained on dataset {old}, this one is {new}", cfg.data)
        if not (out / LAST).exists():
            # killed before its first checkpoint: resuming would start over and replace best.ckpt
            raise OutputExistsError(f"{out}: nothing to resume: no {LAST} (the run stopped before "
                                    f"its first checkpoint); start it again with --force"
                                    + (f" (this replaces its {BEST})" if (out / BEST).exists() else ""))
        resume_from = out / LAST
        # a corrupt or hostile last.ckpt: one InputError here (weights_only), not a pickle
        # traceback from inside Lightning
        load_checkpoint(resume_from)
    elif contents and _global_rank() == 0:
        if not opts.force:
            raise OutputExistsError(f"{out}: run directory is not empty (use --resume to continue "
                                    "the run or --force to replace it)")
    return _Plan(cfg, out, accelerator, resume_from, previous)


def _logged_keys(module) -> set[str]:
    keys = {"val/loss", "val/accuracy", "val/macro_f1", "train/epoch_loss"}
    for h in module.heads:
        keys |= {f"val/loss_{h}", f"train/epoch_loss_{h}"}
    for t in module.class_tasks:
        keys |= {f"val/{t}_accuracy", f"val/{t}_macro_f1"}
    for r in module.reg_targets:
        if r.endswith("_energy"):
            keys |= {f"val/{r}_resolution", f"val/{r}_bias"}
    return keys


def _check_monitors(cfg: TrainConfig, module) -> None:
    keys = _logged_keys(module)
    for where, monitor in (("checkpoint.monitor", cfg.checkpoint.monitor),
                           ("early_stopping.monitor", cfg.early_stopping.monitor)):
        if where.startswith("early") and not cfg.early_stopping.enabled:
            continue
        if monitor not in keys:
            raise ConfigError(f"{where}: '{monitor}' is not logged (logged: {', '.join(sorted(keys))})")


def _init_from(model, path: str, feature_names: list[str], model_name: str) -> dict:
    path = str(resolve_checkpoint(path))                   # pretrained:NAME → the shipped file
    ckpt = load_checkpoint(path)
    source_model = None
    if "gnnu" in ckpt:
        meta = checkpoint_meta(ckpt, path)
        theirs = meta["feature_names"]
        if list(theirs) != list(feature_names):
            raise InputError(f"checkpoint features {theirs} differ from the dataset's {feature_names}", path)
        source_model = ((meta.get("config") or {}).get("model") or {}).get("name")
    info = load_matching(model, model_state(ckpt))
    if not info["loaded"]:
        raise InputError("no tensor of the checkpoint matches the model (another architecture?)", path)
    return {"checkpoint": str(path), "model": source_model, "into": model_name, **info}


def _names(names: list[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (f", … ({len(names) - n} more)" if len(names) > n else "")


def init_report(init: dict) -> list[str]:
    """What ``--init-from`` loaded and what not, and why (lines printed by gnnu-train)."""
    n_model = len(init["loaded"]) + len(init["reinitialised"]) + len(init["missing"])
    source = init.get("model") or "unknown model"
    lines = [f"init from {init['checkpoint']} ({source} → {init['into']}): loaded "
             f"{len(init['loaded'])} of the model's {n_model} tensors (same name and shape)"]
    if init["reinitialised"]:
        lines.append(f"  kept new (shape differs: checkpoint → model): " + _names(
            [f"{n} {tuple(a)}→{tuple(b)}" for n, a, b in init["reinitialised"]]))
    if init["missing"]:
        lines.append(f"  kept new (not in the checkpoint): {len(init['missing'])}: "
                     + _names(init["missing"]))
    if init["unused"]:
        lines.append(f"  ignored (not in this model): {len(init['unused'])} checkpoint tensors: "
                     + _names(init["unused"]))
    if init.get("model") and init["model"] != init["into"]:
        lines.append(f"  note: the checkpoint holds a {init['model']} model, this run trains "
                     f"{init['into']}: tensors that match by name and shape across architectures "
                     "need not mean the same thing")
    return lines


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")  # EpochSampler resumes
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")


def graph_record(manifest: dict) -> dict:
    """How a dataset's events became model inputs, from its manifest (stored in checkpoints as
    ``gnnu.graph``): the input format and reader options, the resolved graph config (features,
    edge rule and k, pixelisation), the detector record, the node features with their units and
    what ``Data.pos`` holds."""
    return {"format": manifest.get("format"), "reader_options": manifest.get("reader_options", {}),
            "graph_config": manifest.get("graph_config"), "detector": manifest.get("detector"),
            "features": [{"name": f["name"], "unit": f.get("unit", "")}
                         for f in manifest.get("features", [])],
            "positions": manifest.get("positions")}


def train(opts: TrainOptions) -> dict:
    """Run (or resume) a training; returns the content of ``run.json`` (module docstring)."""
    t_start = time.perf_counter()
    if _global_rank() != 0:          # DDP: rank 0 holds the run directory's lock
        return _train(opts, t_start)
    with output_lock(opts.out, "gnnu-train"):
        return _train(opts, t_start)


def _train(opts: TrainOptions, t_start: float) -> dict:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from .callbacks import (AtomicCheckpointIO, GracefulInterrupt, History, LastCheckpoint,
                            ValidateAtMaxSteps)
    from .module import TrainModule

    progress = progress_mode(opts.progress)
    plan = _plan(opts)
    cfg, out = plan.cfg, plan.out
    _quiet_lightning()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    dm = EventDataModule(cfg.data, cfg.model, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                         seed=cfg.seed, max_events=cfg.max_events, max_val_events=cfg.max_val_events,
                         pin_memory=plan.accelerator == "gpu", domain=cfg.domain_adaptation)
    tasks = dataset_tasks(dm.train_set.manifest, cfg.num_classes)
    check_labels(dm.train_set, tasks)
    check_labels(dm.val_set, tasks)
    if dm.other_set is not None and cfg.domain_adaptation.labels:
        check_labels(dm.other_set, tasks)
    model = create_model(cfg.model, in_features=dm.in_features, tasks=tasks,
                         regression=cfg.regression)
    init = (_init_from(model, opts.init_from, dm.feature_names, cfg.model.name)
            if opts.init_from and plan.resume_from is None else None)
    if init is not None and _global_rank() == 0:
        print("\n".join(f"gnnu-train: {line}" if not line.startswith(" ") else line
                        for line in init_report(init)), flush=True)
    frozen = freeze(model, cfg.freeze if cfg.freeze is not None
                    else getattr(model, "default_freeze", None))   # the model's own, e.g. ResNet18's
    mhash = manifest_hash(cfg.data)
    meta = {"version": __version__, "config": to_dict(cfg), "feature_names": dm.feature_names,
            "manifest_hash": mhash, "data": str(cfg.data), "tasks": tasks,
            "regression": list(cfg.regression), "in_features": dm.in_features,
            # node-feature standardisation of training: what gnnu-eval applies on any dataset
            "feature_stats": getattr(dm.train_set, "feature_stats", None),
            # how the dataset's graphs were built: what gnnu-predict and gnnu-export need
            "graph": graph_record(dm.train_set.manifest)}
    module = TrainModule(model, cfg, meta, class_weights(cfg.class_weights, dm.train_set, tasks,
                                                         cfg.primary_task), frozen)
    _check_monitors(cfg, module)
    flops = flops_per_event(model, dm.example_batch())

    record = {
        "gnnu_version": __version__,
        "versions": {"torch": torch.__version__, "lightning": pl.__version__},
        "status": "running",
        "config": CONFIG_FILE,
        "dataset": {"path": str(cfg.data), "manifest_hash": mhash, "n_train": dm.n_train,
                    "n_val": dm.n_val, "feature_names": dm.feature_names,
                    # per split: events in it = used + skipped (max_events / max_val_events)
                    "events": dm.accounting(),
                    # domain_adaptation's second dataset (null without one)
                    "domain": dm.domain_accounting()},
        "model": {"name": cfg.model.name, "parameters": count_parameters(model),
                  "trainable_parameters": count_parameters(model, trainable_only=True),
                  "flops_per_event": flops, "tasks": {t: tasks[t] for t in module.class_tasks},
                  "regression": list(module.reg_targets)},
        "device": device_name(plan.accelerator),
        "accelerator": plan.accelerator,
        "precision": cfg.precision,
        "resumed_from": str(plan.resume_from) if plan.resume_from else None,
        "init_from": (plan.previous.get("init_from") if plan.resume_from else
                      None if init is None else {"checkpoint": init["checkpoint"],
                                                 "model": init["model"],
                                                 "loaded": len(init["loaded"]),
                                                 "reinitialised": init["reinitialised"],
                                                 "missing": init["missing"],
                                                 "unused": init["unused"]}),
        "frozen": frozen,
        "training_wall_time_total_s": float(plan.previous.get("training_wall_time_total_s", 0.0)),
    }
    if _global_rank() == 0:
        if opts.force:
            remove_outputs(out, ARTEFACTS)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / CONFIG_FILE, yaml.safe_dump(to_dict(cfg), sort_keys=False))
        write_json_atomic(out / RUN_FILE, record)

    history = History()
    callbacks = [
        history,
        LearningRateMonitor(logging_interval="step"),
        ModelCheckpoint(dirpath=out, filename=Path(BEST).stem, monitor=cfg.checkpoint.monitor,
                        mode=cfg.checkpoint.mode, save_top_k=1, enable_version_counter=False,
                        auto_insert_metric_name=False),
        LastCheckpoint(out / LAST, cfg.checkpoint.every_n_steps),
        ValidateAtMaxSteps(),
        *opts.callbacks,
    ]
    if progress == "lines":
        callbacks.append(TrainProgress(opts.progress_every))
    if cfg.early_stopping.enabled:
        es = cfg.early_stopping
        callbacks.insert(1, EarlyStopping(monitor=es.monitor, mode=es.mode, patience=es.patience,
                                          min_delta=es.min_delta, check_finite=True))
    trainer = pl.Trainer(
        accelerator=plan.accelerator, devices=cfg.devices if plan.accelerator == "gpu" else 1,
        num_nodes=cfg.num_nodes, strategy=cfg.strategy, precision=cfg.precision, max_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1, gradient_clip_val=cfg.gradient_clip,
        deterministic="warn" if cfg.deterministic else False, benchmark=False,
        logger=TensorBoardLogger(save_dir=str(out), name=TB_DIR, version=""),
        callbacks=callbacks, enable_progress_bar=progress == "bar", enable_model_summary=False,
        num_sanity_val_steps=0, log_every_n_steps=cfg.log_every_n_steps,
        use_distributed_sampler=False, default_root_dir=str(out),
        plugins=[AtomicCheckpointIO()])

    status = "complete"
    t_fit = time.perf_counter()
    interrupt = GracefulInterrupt(trainer)
    try:
        with interrupt:
            trainer.fit(module, datamodule=dm,
                        ckpt_path=str(plan.resume_from) if plan.resume_from else None,
                        weights_only=True)
    except SIGTERMException:
        status = "interrupted"
    except BaseException as exc:
        second_ctrl_c = isinstance(exc, SystemExit) and interrupt.signal == "SIGINT"
        if trainer.is_global_zero:       # say so in run.json, if the disk still takes it
            record["status"] = "interrupted" if second_ctrl_c else f"failed: {type(exc).__name__}"
            try:
                write_json_atomic(out / RUN_FILE, record)
            except OSError:
                pass
        if second_ctrl_c:                # Lightning exits 1 on KeyboardInterrupt: say 130
            raise KeyboardInterrupt from None
        raise
    wall = time.perf_counter() - t_fit
    if not trainer.is_global_zero:
        return {}

    best_cb = next(c for c in callbacks if isinstance(c, ModelCheckpoint))
    stopped = next((c.stopped_epoch for c in callbacks if isinstance(c, EarlyStopping)), 0)
    if status == "complete" and stopped:
        status = "stopped early"
    record.update({
        "status": status,
        "world_size": trainer.world_size,
        "strategy": type(trainer.strategy).__name__,
        "epochs_completed": int(trainer.current_epoch),
        "global_step": int(trainer.global_step),
        "best": {"checkpoint": BEST, "monitor": cfg.checkpoint.monitor,
                 "score": None if best_cb.best_model_score is None else float(best_cb.best_model_score)},
        "history": history.records,
        "training_wall_time_s": wall,
        "training_wall_time_total_s": record["training_wall_time_total_s"] + wall,
        "setup_time_s": t_fit - t_start,
    })
    write_json_atomic(out / RUN_FILE, record)
    if status == "interrupted":
        how = "Ctrl-C (SIGINT)" if interrupt.signal == "SIGINT" else "SIGTERM"
        raise TrainingInterrupted(f"interrupted by {how} after step {trainer.global_step}; "
                                  f"{out / LAST} saved — continue with: gnnu-train --resume --out "
                                  f"{out}", interrupt.signal or "SIGTERM")
    return record
