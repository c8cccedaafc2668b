"""Running a study: stages in order, each skipped when already finished, with refusal and resume.

:func:`run_study` resolves and checks everything first (:func:`gnnu.study.plan.make_plan`), then
runs the stages through gnnu's library functions — :func:`gnnu.io.simulated.write_simulation`
(gnnu-sim), :func:`gnnu.graph.build.build_dataset` (gnnu-build), :func:`gnnu.train.run.train`
(gnnu-train) and :func:`gnnu.train.inference.evaluate_checkpoint` (gnnu-eval) per run,
:func:`gnnu.evaluate.compare.compare_runs` with ``--remeasure`` (gnnu-compare) — and writes the
results (:mod:`gnnu.study.results`). Every stage's output stays in STUDY_DIR::

    STUDY_DIR/study.yaml                  the resolved config (after --set and scale)
    STUDY_DIR/events.h5                   simulated events (data.simulate)
    STUDY_DIR/graphs/                     the graph dataset (unless data.graphs)
    STUDY_DIR/runs/LABEL/nN-sS/           gnnu-train run (N training events, seed S), its test
                                          report eval-test/ and study-run.json
    STUDY_DIR/comparison/                 gnnu-compare --remeasure of the headline runs
    STUDY_DIR/stages/*.json               simulate, build and compare stage records
    STUDY_DIR/RESULTS.md, results.json, learning_curve.png, cost_vs_f1.png,
    efficiency_vs_energy.png

Stage records. Before a stage runs, its record (``stages/<stage>.json``, or ``study-run.json`` in
a run directory) is written with the stage's *settings* and ``status: started``; when it has
finished, with ``status: complete``, its event counts and wall time. So:

- an existing STUDY_DIR is refused unless ``resume`` (continue) or ``force`` (replace: gnnu-study's
  own outputs are deleted, nothing else);
- ``resume``: a complete stage with the same settings is kept; a complete stage whose settings
  changed is refused before any work, one line naming the stage and the changed keys; a started
  stage with the same settings continues (``gnnu-build --resume`` keeps finished shards,
  ``gnnu-train --resume`` continues from ``last.ckpt``), one with other settings starts again.
- Ctrl-C (or SIGTERM during training, which saves ``last.ckpt``) stops the study with one line;
  the same command with ``--resume`` continues where it stopped.

Progress: one line per stage when it ends, with its event counts, its wall time and the
estimated time left (ETA: per model, seconds per training event·epoch of its finished runs, or of
all models' runs until it has one; build and comparison by the events they handle).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import __version__
from ..atomic import jsonable, output_lock, remove_outputs, write_text_atomic
from ..config import to_dict
from ..errors import ConfigError, GnnuError, InputError, OutputExistsError
from .config import as_dict, load_study_config
from .plan import (COMPARISON_DIR, EVENTS_FILE, GRAPHS_DIR, REPORT_DIR, RUN_REF, RUNS_DIR, STUDY_FILE,
                   Expected, RunSpec, StudyPlan, build_settings, differences, make_plan,
                   run_settings, sim_settings, sim_request)

STAGES_DIR = "stages"
RUN_RECORD = "study-run.json"
#: gnnu-study's own outputs (what ``force`` deletes).
OUTPUTS = (STUDY_FILE, EVENTS_FILE, GRAPHS_DIR, RUNS_DIR, COMPARISON_DIR, STAGES_DIR, "RESULTS.md",
           "results.json", "learning_curve.png", "cost_vs_f1.png", "efficiency_vs_energy.png")


class StageFailed(GnnuError):
    """A stage failed: the message names the stage and carries the stage's own error."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


@contextlib.contextmanager
def failing_stage(name: str):
    """Re-raise a stage's expected failure as :class:`StageFailed` naming the stage (an
    interruption passes through)."""
    try:
        yield
    except (StudyInterrupted, StageFailed):
        raise
    except GnnuError as exc:
        raise StageFailed(f"stage {name} failed: {exc}", exc.exit_code) from exc


class StudyInterrupted(GnnuError):
    """Ctrl-C or SIGTERM stopped the study; ``--resume`` continues it."""

    exit_code = 130


@dataclass
class StudyOptions:
    """What ``gnnu-study`` was asked for: ``config`` (preset name or YAML path), ``out``
    (STUDY_DIR), ``device`` (auto, cpu, cuda), ``resume`` / ``force``, ``overrides``
    (``--set key=value``), ``commit`` (the source commit where the tree has no .git),
    ``command`` (the command line recorded in the results), ``log`` (progress lines)."""

    config: str
    out: str
    device: str = "auto"
    resume: bool = False
    force: bool = False
    overrides: tuple[str, ...] = ()
    commit: str | None = None
    command: str | None = None
    log: Callable[[str], None] = print


@dataclass
class StageTime:
    """One finished stage: ``name``, wall seconds (None when kept from an earlier invocation),
    its event counts."""

    name: str
    seconds: float | None
    counts: dict = field(default_factory=dict)
    kept: bool = False


@dataclass
class StudyResult:
    """Where the study wrote, the stages' times and counts, and the results."""

    out: Path
    plan: StudyPlan
    stages: list[StageTime]
    results: dict
    seconds: float
    summary: str = ""


# -- small file helpers -------------------------------------------------------------------------
def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (gnnu's one writer, :mod:`gnnu.atomic`)."""
    write_text_atomic(path, text)


def write_json(path: Path, data) -> None:
    """``data`` as JSON (anything JSON lacks, such as a path, as its text), atomically."""
    write_text_atomic(path, json.dumps(jsonable(data), indent=1, default=str) + "\n")


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable stage record ({exc})", path) from None
    return data if isinstance(data, dict) else None


# -- the study directory ------------------------------------------------------------------------
def prepare_out(out: Path, resume: bool, force: bool) -> None:
    """Refuse an existing STUDY_DIR without resume/force; with force delete gnnu-study's outputs."""
    if resume and force:
        raise ConfigError("--resume and --force exclude each other")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory")
    contents = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not contents:
        if resume:
            raise OutputExistsError(f"{out}: no study here to resume (run without --resume)")
        return
    if resume:
        if not (out / STUDY_FILE).is_file():
            raise OutputExistsError(f"{out}: not a gnnu-study directory (no {STUDY_FILE}); "
                                    "nothing to resume")
        return
    if not force:
        raise OutputExistsError(f"{out}: a study directory exists and is not empty (use --resume to "
                                "continue it or --force to replace it)")


# -- stage records and resume checks --------------------------------------------------------------
class Stage:
    """A stage's record file and settings; ``state`` is ``complete``, ``started`` (same settings,
    interrupted) or ``new`` (absent, or started with other settings)."""

    def __init__(self, name: str, record: Path, settings: dict):
        self.name, self.record, self.settings = name, record, settings
        self.previous = read_json(record) or {}
        same = not differences(self.previous.get("settings"), settings)
        status = self.previous.get("status")
        self.changed = [] if same else differences(self.previous.get("settings"), settings)
        self.state = ("complete" if status == "complete" and same else
                      "started" if status == "started" and same else
                      "changed" if status == "complete" else "new")

    def refuse_if_changed(self) -> None:
        if self.state == "changed":
            shown = ", ".join(self.changed[:6]) + (f" and {len(self.changed) - 6} more"
                                                   if len(self.changed) > 6 else "")
            raise ConfigError(f"--resume: the finished stage {self.name} ({self.record.parent}) was "
                              f"made with other settings ({shown} changed); use --force or "
                              "another STUDY_DIR")

    def start(self) -> None:
        self.record.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.record, {"stage": self.name, "status": "started", "settings": self.settings,
                                 "gnnu_version": __version__})

    def finish(self, seconds: float, **extra) -> dict:
        record = {"stage": self.name, "status": "complete", "settings": self.settings,
                  "gnnu_version": __version__, "wall_s": seconds, **extra}
        write_json(self.record, record)
        self.previous = record
        return record


# -- ETA ----------------------------------------------------------------------------------------
class Clock:
    """Remaining time of the training stages (module docstring)."""

    def __init__(self, plan: StudyPlan):
        self.plan = plan
        self.rate: dict[str, list[float]] = {}       # label → [seconds, event·epochs]

    def work(self, run: RunSpec) -> float:
        b = self.plan.cfg.budget(run.label)
        if b.kind == "events":
            return float(b.events)
        return float(run.n_train * b.epochs)

    def add(self, run: RunSpec, seconds: float) -> None:
        r = self.rate.setdefault(run.label, [0.0, 0.0])
        r[0] += seconds
        r[1] += self.work(run)

    def left(self, remaining: list[RunSpec]) -> float | None:
        if not remaining:
            return 0.0
        if not self.rate:
            return None
        overall = sum(s for s, _ in self.rate.values()) / max(sum(w for _, w in self.rate.values()), 1e-9)
        total = 0.0
        for run in remaining:
            s, w = self.rate.get(run.label, (0.0, 0.0))
            total += self.work(run) * (s / w if w else overall)
        return total


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "?"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


# -- the stages ---------------------------------------------------------------------------------
def _workers(n: int) -> int:
    return n or os.cpu_count() or 1


def _simulate(plan: StudyPlan) -> dict:
    from ..detectors import load_detector
    from ..io.simulated import write_simulation

    s = plan.cfg.data.simulate
    summary = write_simulation(sim_request(plan.cfg), load_detector(s.detector),
                               plan.out / EVENTS_FILE, workers=_workers(s.workers), force=True)
    return {"requested": summary.requested, "written": summary.written, "per_flavour": summary.per_flavour,
            "hits": summary.hits, "without_hits": summary.empty, "events_per_s":
            summary.written / max(summary.seconds, 1e-9), "workers": summary.workers}


def _build(plan: StudyPlan, resume: bool) -> dict:
    from ..graph.build import BuildOptions, build_dataset

    g = plan.cfg.graph
    summary = build_dataset(BuildOptions(
        inputs=tuple(str(p) for p in plan.hit_files), out=str(plan.out / GRAPHS_DIR), format="gnnu",
        graph=g.config, split=tuple(g.split), seed=g.seed, workers=_workers(g.workers),
        resume=resume, force=not resume, skip_bad=g.skip_bad))
    return {"in": summary.read, "out": summary.written, "skipped": sum(summary.skipped.values()),
            "skipped_by_reason": summary.skipped, "per_split": summary.per_split,
            "nodes": summary.n_nodes, "edges": summary.n_edges}


def _wall_time_callback(seconds: float):
    from lightning.pytorch.callbacks import Timer

    return Timer(duration={"seconds": seconds}, interval="step")


def _train_and_eval(plan: StudyPlan, run: RunSpec, stage: Stage, device: str,
                    init_from: str | None) -> dict:
    from ..train.inference import evaluate_checkpoint
    from ..train.run import RUN_FILE, TrainingInterrupted, TrainOptions, train

    cfg, entry = plan.cfg, plan.cfg.model(run.label)
    run_dir = run.directory(plan.out)
    previous = read_json(run_dir / RUN_FILE) or {}
    done = previous.get("status") in ("complete", "stopped early")
    t0 = time.perf_counter()
    if not (stage.state == "started" and done):
        resume = stage.state == "started" and (run_dir / "config.yaml").is_file()
        b = cfg.budget(run.label)
        callbacks = (_wall_time_callback(b.wall_time_s),) if b.kind == "wall_time" else ()
        src = plan.model_sources[run.label]
        overrides = stage.settings["overrides"]
        try:
            train(TrainOptions(config=None if resume else src["path"], out=str(run_dir),
                               data=str(plan.dataset), device=device, resume=resume,
                               force=not resume, max_events=run.n_train,
                               init_from=None if resume else init_from,
                               overrides=() if resume else overrides, callbacks=callbacks))
        except SystemExit as exc:            # Lightning's answer to Ctrl-C: sys.exit(1)
            raise StudyInterrupted(f"interrupted while training {run.name} (its last.ckpt is kept); "
                                   "run the same command with --resume to continue") from exc
        except TrainingInterrupted as exc:
            raise StudyInterrupted(f"{run.name}: {exc}; run the same command with --resume to "
                                   "continue") from exc
    t_train = time.perf_counter() - t0
    record = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    metrics = evaluate_checkpoint(run_dir / "best.ckpt", plan.dataset, "test", run_dir / REPORT_DIR,
                                  device=device, batch_size=cfg.evaluation.batch_size, force=True,
                                  plots=False)
    events = record["dataset"]["events"]
    return {"train": {"in_split": events["train"]["in_split"], "used": events["train"]["used"],
                      "skipped": events["train"]["skipped"]},
            "val": {"in_split": events["val"]["in_split"], "used": events["val"]["used"],
                    "skipped": events["val"]["skipped"]},
            "test": int(metrics["n_events"]), "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"], "epochs": record.get("epochs_completed"),
            "status": record.get("status"), "train_s": t_train}


def _compare(plan: StudyPlan, runs: list[RunSpec], device: str, force: bool = True) -> dict:
    from ..evaluate.compare import Remeasure, compare_runs

    ev = plan.cfg.evaluation
    c = compare_runs([str(r.directory(plan.out)) for r in runs], plan.out / COMPARISON_DIR,
                     labels=[r.label for r in runs], split="test",
                     remeasure_with=Remeasure(device=device, batch_size=ev.batch_size,
                                              repeats=ev.remeasure_repeats, warmup=ev.warmup,
                                              data=str(plan.dataset)), force=force)
    speeds = {e.label: {"events_per_s": e.speed.events_per_s,
                        "peak_memory_bytes": e.speed.peak_memory_bytes, "device": e.speed.device,
                        "batch_size": e.speed.batch_size, "precision": e.speed.precision}
              for e in c.entries}
    return {"n_events": c.n_events, "speeds": speeds, "notes": c.notes, "files": c.files}


# -- the whole study ------------------------------------------------------------------------------
def _expected_from_manifest(dataset: Path, source_events: int) -> Expected:
    from ..graph.store import read_manifest

    counts = read_manifest(dataset)["counts"]
    return Expected({k: int(v) for k, v in counts["per_split"].items()}, source_events, None,
                    f"as built: {counts['skipped']} of {counts['in']} events skipped")


def _sha256(path: str) -> str:
    from ..graph.build import file_sha256

    return file_sha256(path)


def _init_settings(plan: StudyPlan, run: RunSpec, settings: dict[str, dict]) -> tuple[dict | None, str | None]:
    """(settings record, checkpoint path) of a run's init_from: another run's settings for
    ``run:LABEL``, a file's sha256 for a path."""
    entry = plan.cfg.model(run.label)
    ref = entry.init_from
    if not ref:
        return None, None
    if ref.startswith(RUN_REF):
        label = ref[len(RUN_REF):]
        source = max((r for r in plan.runs if r.label == label), key=lambda r: (r.n_train, -r.seed))
        return ({"run": source.name, "settings": settings[source.name]},
                str(source.directory(plan.out) / "best.ckpt"))
    return {"checkpoint": ref, "sha256": _sha256(ref)}, ref


def _run_stages(plan: StudyPlan) -> tuple[dict[str, Stage], dict[str, str | None]]:
    """Each run's stage (settings resolved, ``init_from`` chained) and checkpoint to start from."""
    settings: dict[str, dict] = {}
    stages: dict[str, Stage] = {}
    inits: dict[str, str | None] = {}
    for run in plan.runs:
        init, path = _init_settings(plan, run, settings)
        settings[run.name] = run_settings(plan, run, init)
        inits[run.name] = path
    for run in plan.runs:
        stages[run.name] = Stage(f"train+eval {run.name}", run.directory(plan.out) / RUN_RECORD,
                                 settings[run.name])
    return stages, inits


def run_study(opts: StudyOptions) -> StudyResult:
    """Run (or resume) the study of ``opts``; one process at a time per study directory (a second
    one stops at once naming the first, :func:`gnnu.atomic.output_lock`)."""
    with output_lock(opts.out, "gnnu-study"):
        return _run_study(opts)


def _run_study(opts: StudyOptions) -> StudyResult:
    """Run (or continue) a study (module docstring); returns what it wrote and measured."""
    from ..train.run import device_name, resolve_accelerator
    from .results import write_results

    t_start = time.perf_counter()
    log = opts.log
    out = Path(opts.out)
    cfg = load_study_config(opts.config, tuple(opts.overrides))
    prepare_out(out, opts.resume, opts.force)
    device = device_name(resolve_accelerator(opts.device))
    stage_times: list[StageTime] = []

    # -- everything checked before any work ------------------------------------------------------
    sim = Stage("simulate", out / STAGES_DIR / "simulate.json", sim_settings(cfg))
    build = Stage("build", out / STAGES_DIR / "build.json", build_settings(cfg))
    if not opts.resume:
        sim.state = build.state = "new"
    for st in ((sim,) if cfg.data.simulate else ()) + ((build,) if not cfg.data.graphs else ()):
        st.refuse_if_changed()
    plan = make_plan(cfg, out)
    if opts.resume and build.state == "complete":
        plan = make_plan(cfg, out, _expected_from_manifest(out / GRAPHS_DIR, plan.expected.source_events),
                         check=False)
    stages, inits = _run_stages_checked(plan, opts.resume)
    if opts.force:
        remove_outputs(out, OUTPUTS)   # gnnu-study's own outputs, nothing else
    out.mkdir(parents=True, exist_ok=True)
    import yaml

    write_text(out / STUDY_FILE, yaml.safe_dump(as_dict(cfg), sort_keys=False, allow_unicode=True))
    n_stages = plan.stage_count()
    k = 0

    def line(name: str, text: str, seconds: float | None, eta: float | None) -> None:
        took = "kept from an earlier run" if seconds is None else f"{fmt_seconds(seconds)}"
        log(f"gnnu-study [{k}/{n_stages}] {name}: {text} ({took}; ETA {fmt_seconds(eta)})")

    log(f"gnnu-study: {cfg.name} → {out}: {n_stages} stages, {len(plan.runs)} training runs on "
        f"{device}; {cfg.training.budget.describe()}")
    try:
        # -- simulate --------------------------------------------------------------------------
        if cfg.data.simulate:
            k += 1
            if sim.state != "complete" or not (out / EVENTS_FILE).is_file():
                sim.start()
                t0 = time.perf_counter()
                with failing_stage("simulate"):
                    counts = _simulate(plan)
                sim.finish(time.perf_counter() - t0, counts=counts)
                build.state = "new"                  # new events: the dataset is built again
            counts = sim.previous["counts"]
            stage_times.append(StageTime("simulate", None if sim.state == "complete" else
                                         sim.previous["wall_s"], counts, sim.state == "complete"))
            line("simulate", f"{counts['written']} of {counts['requested']} events "
                 f"({', '.join(f'{k2} {v}' for k2, v in counts['per_flavour'].items())}; "
                 f"{counts['without_hits']} without hits)", stage_times[-1].seconds, None)
        # -- build -----------------------------------------------------------------------------
        if not cfg.data.graphs:
            k += 1
            kept = build.state == "complete"
            if not kept:
                resume = build.state == "started" and (out / GRAPHS_DIR).is_dir()
                build.start()
                t0 = time.perf_counter()
                with failing_stage("build"):
                    counts = _build(plan, resume)
                build.finish(time.perf_counter() - t0, counts=counts)
            counts = build.previous["counts"]
            stage_times.append(StageTime("build", None if kept else build.previous["wall_s"], counts, kept))
            line("build", f"read {counts['in']} events: {counts['out']} graphs (train "
                 f"{counts['per_split']['train']}, val {counts['per_split']['val']}, test "
                 f"{counts['per_split']['test']}), skipped {counts['skipped']}"
                 + (f" {counts['skipped_by_reason']}" if counts["skipped"] else ""),
                 stage_times[-1].seconds, None)
            # sizes again, against what was built (skipped events are known only now)
            built = make_plan(cfg, out, _expected_from_manifest(out / GRAPHS_DIR, counts["in"]),
                              check=False)
            if [r.name for r in built.runs] != [r.name for r in plan.runs]:
                plan = built
                stages, inits = _run_stages_checked(plan, opts.resume)
        # -- train + evaluate ------------------------------------------------------------------
        clock = Clock(plan)
        for i, run in enumerate(plan.runs):
            k += 1
            st = stages[run.name]
            kept = st.state == "complete" and (run.directory(out) / REPORT_DIR / "metrics.json").is_file()
            if not kept:
                st.start()
                t0 = time.perf_counter()
                with failing_stage(f"train+eval {run.name}"):
                    counts = _train_and_eval(plan, run, st, opts.device, inits[run.name])
                seconds = time.perf_counter() - t0
                st.finish(seconds, counts=counts)
                clock.add(run, counts["train_s"])
            counts = st.previous["counts"]
            stage_times.append(StageTime(f"train+eval {run.name}", None if kept else st.previous["wall_s"],
                                         counts, kept))
            tr = counts["train"]
            line(f"train+eval {run.name}",
                 f"trained on {tr['used']} of {tr['in_split']} train events, {counts['epochs']} "
                 f"epoch(s) ({counts['status']}), validated on {counts['val']['used']}; test accuracy "
                 f"{_f(counts['accuracy'])}, macro F1 {_f(counts['macro_f1'])} on {counts['test']} events",
                 stage_times[-1].seconds, clock.left(plan.runs[i + 1:]))
        # -- compare (inference re-measured side by side) --------------------------------------
        k += 1
        headline = [r for r in plan.headline_runs() if r.repeat == 0]
        compare = Stage("compare", out / STAGES_DIR / "compare.json",
                        {"runs": {r.label: stages[r.name].settings for r in headline},
                         "evaluation": to_dict(cfg.evaluation), "device": device})
        kept = opts.resume and compare.state == "complete"
        if not kept:
            compare.start()
            t0 = time.perf_counter()
            with failing_stage("compare"):
                counts = _compare(plan, headline, opts.device)
            compare.finish(time.perf_counter() - t0, counts=counts)
        counts = compare.previous["counts"]
        stage_times.append(StageTime("compare", None if kept else compare.previous["wall_s"], counts, kept))
        line("compare", f"{len(headline)} model(s) on the same {counts['n_events']} test events, "
             f"inference re-measured side by side on {device}", stage_times[-1].seconds, 0.0)
        # -- results ---------------------------------------------------------------------------
        k += 1
        t0 = time.perf_counter()
        results = write_results(plan, stage_times, counts, device=device,
                                 command=opts.command or "", commit=opts.commit,
                                 wall_s=time.perf_counter() - t_start, notes=plan.notes)
        stage_times.append(StageTime("results", time.perf_counter() - t0, {}))
        line("results", "RESULTS.md, results.json and the plots written", stage_times[-1].seconds, 0.0)
    except KeyboardInterrupt:
        raise StudyInterrupted("interrupted; run the same command with --resume to continue") from None
    return StudyResult(out, plan, stage_times, results, time.perf_counter() - t_start)


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _run_stages_checked(plan: StudyPlan, resume: bool):
    stages, inits = _run_stages(plan)
    for st in stages.values():
        if not resume:
            st.state = "new"
        st.refuse_if_changed()
    return stages, inits


def summary(res: StudyResult) -> str:
    """The closing lines of gnnu-study: every stage's event counts, the headline and the files."""
    r = res.results
    lines = [f"\ngnnu-study: {r['study']} done in {fmt_seconds(res.seconds)} → {res.out}"]
    for st in res.stages:
        c = st.counts
        took = "kept" if st.kept else fmt_seconds(st.seconds)
        if st.name == "simulate":
            text = f"{c['written']} of {c['requested']} events simulated, {c['without_hits']} without hits"
        elif st.name == "build":
            text = (f"read {c['in']} events: {c['out']} graphs (train {c['per_split']['train']}, val "
                    f"{c['per_split']['val']}, test {c['per_split']['test']}), skipped {c['skipped']}"
                    + (f" {c['skipped_by_reason']}" if c["skipped"] else ""))
        elif st.name.startswith("train+eval"):
            text = (f"trained on {c['train']['used']} of {c['train']['in_split']} train events "
                    f"({c['train']['skipped']} left out by the size), validated on {c['val']['used']} "
                    f"of {c['val']['in_split']}, tested on {c['test']}")
        elif st.name == "compare":
            text = f"{len(c['speeds'])} model(s) on {c['n_events']} test events ({res.out / COMPARISON_DIR})"
        else:
            text = ", ".join(["RESULTS.md", "results.json", *r.get("plots", [])])
        lines.append(f"  {st.name:<34} {text} [{took}]")
    h = r["headline"]
    lines.append(f"  headline: {h['training_events']:,} training events, {h['budget_description']}; "
                 f"{r['n_test']} test events")
    for m in r["models"]:
        lo, hi = m["accuracy_interval"]
        iv = "" if lo is None else f" [{lo:.3f}, {hi:.3f}]"
        lines.append(f"    {m['label']:<22} accuracy {_f(m['accuracy'])}{iv}, macro F1 {_f(m['macro_f1'])}, "
                     f"{_f(m['inference_events_per_s'])} inference events/s")
    return "\n".join(lines)
