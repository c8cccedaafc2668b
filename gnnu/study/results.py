"""A study's results: ``results.json``, ``RESULTS.md`` and the plots, from what the stages wrote.

Metrics of every run are recomputed from its test report's ``predictions.h5`` with the
definitions every gnnu report uses (:func:`gnnu.evaluate.metrics.evaluate_task`): accuracy,
macro F1, per class efficiency, purity and one-vs-rest AUC, and the efficiency of the
``evaluation.signal`` class (νe CC) at ``evaluation.purity`` (0.9) —
:func:`gnnu.evaluate.metrics.efficiency_at_purity`, the best cut on that class's score.

Intervals (68 %), per model and training size:

- with several seeds (``learning_curve.repeats`` > 1): the value is the mean over the seeds and
  the interval mean ± the standard error of the mean (sample standard deviation / √seeds): the
  spread of training, for the mean of that many trainings — it does not include the test
  sample's own statistical uncertainty;
- with one seed: the value is the test-set figure and the interval the 15.87 … 84.13 %
  percentiles of ``evaluation.bootstrap`` resamples of the test events (drawn with replacement,
  numpy generator seeded with ``evaluation.seed``, the same resamples for every model): the test
  sample's statistical uncertainty only.

Cost figures of the headline models: parameters and FLOPs/event from each run's ``run.json``;
inference events/s and peak memory re-measured by the comparison stage (``gnnu-compare
--remeasure``: every model in a fresh process on the study's device, one batch size, passes
interleaved; model time from host→device copy to scores on the host, so reading the dataset and
building graphs or rendering images are *not* included: ``includes_graph_build`` is false);
training events/s = training events processed / training seconds, both summed over the epochs
of each seed's run (validation excluded), as measured while the study trained the models one
after the other on the same device — not interleaved.
"""

from __future__ import annotations

import math
import platform
import subprocess
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import to_dict
from .config import as_dict
from .plan import REPORT_DIR, RunSpec, StudyPlan

RESULTS_SCHEMA = "gnnu-study-results"
RESULTS_VERSION = "1.0"
RESULTS_MD = "RESULTS.md"
RESULTS_JSON = "results.json"
CURVE_PLOT = "learning_curve.png"
COST_PLOT = "cost_vs_f1.png"
ENERGY_PLOT = "efficiency_vs_energy.png"
#: Percentiles of the bootstrap interval (a central 68.27 %).
_LO, _HI = 15.865526, 84.134474


# -- metrics of one set of predictions --------------------------------------------------------------
def _metric_vector(true: np.ndarray, scores: np.ndarray, names, signal: int | None, purity: float,
                   energy=None):
    """(flat {metric: value}, TaskMetrics) of one set of predictions."""
    from ..evaluate.metrics import efficiency_at_purity, evaluate_task

    m = evaluate_task(true, scores, names, task="flavour", energy=energy)
    flat = {"accuracy": m.accuracy, "macro_f1": m.macro_f1}
    for c, name in enumerate(names):
        flat[f"efficiency.{name}"] = float(m.efficiency[c])
        flat[f"purity.{name}"] = float(m.purity[c])
        flat[f"auc.{name}"] = float(m.auc[c])
    if signal is not None:
        flat["signal_efficiency"] = efficiency_at_purity(true == signal, scores[:, signal], purity)
    return flat, m


def _bootstrap(true, scores, names, signal, purity, n: int, seed: int) -> dict[str, list[float]]:
    """{metric: [lo, hi]} percentile interval over ``n`` resamples of the events."""
    rng = np.random.default_rng(seed)
    values: dict[str, list[float]] = {}
    for _ in range(n):
        idx = rng.integers(0, len(true), len(true))
        flat, _ = _metric_vector(true[idx], scores[idx], names, signal, purity)
        for k, v in flat.items():
            values.setdefault(k, []).append(v)
    out = {}
    for k, v in values.items():
        arr = np.asarray(v, np.float64)
        arr = arr[np.isfinite(arr)]
        out[k] = [float(np.percentile(arr, _LO)), float(np.percentile(arr, _HI))] if arr.size else [None, None]
    return out


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (np.floating, np.integer)):
        return _clean(v.item())
    return v


class RunResult:
    """One finished run's test predictions, metrics and run record."""

    def __init__(self, plan: StudyPlan, run: RunSpec):
        import json

        from ..evaluate.report import load_metrics, read_predictions

        self.run = run
        run_dir = run.directory(plan.out)
        report = run_dir / REPORT_DIR
        self.report = load_metrics(report)
        self.predictions = read_predictions(report)
        self.record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        task = self.report["primary_task"]
        keep = self.predictions.labels[task] >= 0
        self.true = self.predictions.labels[task][keep].astype(np.int64)
        self.scores = self.predictions.scores[task][keep]
        self.names = list(self.predictions.class_names[task])
        self.energy = (None if self.predictions.energy_true is None
                       else self.predictions.energy_true[keep])
        ev = plan.cfg.evaluation
        self.signal = self.names.index(ev.signal) if ev.signal in self.names else None
        self.flat, self.task = _metric_vector(self.true, self.scores, self.names, self.signal,
                                              ev.purity, self.energy)

    def order_key(self) -> np.ndarray:
        ids = self.predictions.event_ids
        return np.lexsort(ids.T[::-1])

    def training_rate(self) -> float | None:
        """Training events/s over the run's epochs (validation excluded; :mod:`results` docstring)."""
        rates = [h.get("train/events_per_s") for h in self.record.get("history", [])]
        rates = [r for r in rates if r]
        return float(len(rates) / sum(1.0 / r for r in rates)) if rates else None


# -- aggregation over seeds ---------------------------------------------------------------------
def aggregate(results: list[RunResult], bootstrap: int, seed: int, purity: float) -> dict:
    """{metric: {"value", "interval", "seeds": [...]}} of one model at one size (module docstring)."""
    keys = list(results[0].flat)
    out = {}
    if len(results) > 1:
        for k in keys:
            v = np.asarray([r.flat[k] for r in results], np.float64)
            v = v[np.isfinite(v)]
            if v.size == 0:
                out[k] = {"value": None, "interval": [None, None]}
                continue
            mean = float(v.mean())
            sem = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
            out[k] = {"value": mean, "interval": [_clean(mean - sem), _clean(mean + sem)]}
        method = f"mean ± standard error over {len(results)} seeds"
    else:
        r = results[0]
        iv = _bootstrap(r.true, r.scores, r.names, r.signal, purity, bootstrap, seed)
        for k in keys:
            out[k] = {"value": _clean(r.flat[k]), "interval": [_clean(x) for x in iv.get(k, [None, None])]}
        method = f"bootstrap over the {len(r.true)} test events ({bootstrap} resamples, seed {seed})"
    return {"metrics": out, "interval_method": method, "seeds": [r.run.seed for r in results]}


# -- provenance -----------------------------------------------------------------------------------
def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("torch", "torch_geometric", "lightning", "torchvision", "numpy", "scipy", "numba", "h5py"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(explicit: str | None) -> str:
    """``explicit`` (``--commit`` / ``GNNU_COMMIT``), else the repository's HEAD (with ``-dirty``
    when the tree has changes), else ``unknown``."""
    if explicit:
        return explicit
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return "unknown (no .git: pass --commit)"
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git: pass --commit)"


# -- the results ------------------------------------------------------------------------------------
def collect(plan: StudyPlan, stages, compare: dict, *, device: str, command: str,
            commit: str | None, wall_s: float, notes: list[str]) -> tuple[dict, dict]:
    """(results.json content, extras for the Markdown and plots)."""
    ev = plan.cfg.evaluation
    by_cell: dict[tuple[str, int], list[RunResult]] = {}
    for run in plan.runs:
        r = RunResult(plan, run)
        by_cell.setdefault((run.label, run.n_train), []).append(r)
    first = next(iter(by_cell.values()))[0]
    names = first.names
    # every run must have been tested on the same events (gnnu-compare checks the headline ones)
    ids0 = first.predictions.event_ids[first.order_key()]
    for cell in by_cell.values():
        for r in cell:
            if not np.array_equal(r.predictions.event_ids[r.order_key()], ids0):
                raise RuntimeError(f"{r.run.name}: tested on other events than {first.run.name}")
    cells = {key: aggregate(rs, ev.bootstrap, ev.seed, ev.purity) for key, rs in by_cell.items()}
    top = max(n for _, n in by_cell)
    speeds = compare.get("speeds", {})
    models = []
    for (label, n), rs in by_cell.items():
        if n != top:
            continue
        agg = cells[(label, n)]["metrics"]
        r0 = rs[0]
        sp = speeds.get(label, {})
        rates = [r.training_rate() for r in rs]
        rates = [x for x in rates if x]
        per_class = {c: {"efficiency": agg[f"efficiency.{c}"]["value"],
                         "efficiency_interval": agg[f"efficiency.{c}"]["interval"],
                         "purity": agg[f"purity.{c}"]["value"],
                         "purity_interval": agg[f"purity.{c}"]["interval"],
                         "auc": agg[f"auc.{c}"]["value"], "auc_interval": agg[f"auc.{c}"]["interval"],
                         "n": int((r0.true == k).sum())}
                     for k, c in enumerate(names)}
        sig = agg.get("signal_efficiency", {"value": None, "interval": [None, None]})
        models.append({
            "name": r0.run.model, "label": label, "family": r0.run.family,
            "accuracy": agg["accuracy"]["value"], "accuracy_interval": agg["accuracy"]["interval"],
            "macro_f1": agg["macro_f1"]["value"], "macro_f1_interval": agg["macro_f1"]["interval"],
            "per_class": per_class,
            "signal_efficiency_at_purity": {"class": ev.signal, "purity": ev.purity,
                                            "efficiency": sig["value"], "interval": sig["interval"]},
            "n_test": int(len(r0.true)),
            "inference_events_per_s": _clean(sp.get("events_per_s")),
            "inference_batch_size": sp.get("batch_size"),
            "inference_device": sp.get("device"),
            "precision": sp.get("precision") or r0.record.get("precision"),
            "includes_graph_build": False,
            "training_events_per_s": _clean(float(np.mean(rates))) if rates else None,
            "peak_memory_bytes": sp.get("peak_memory_bytes"),
            "parameters": r0.record["model"]["parameters"],
            "flops_per_event": r0.record["model"]["flops_per_event"],
            "training_events": int(r0.record["dataset"]["events"]["train"]["used"]),
            "validation_events": int(r0.record["dataset"]["events"]["val"]["used"]),
            "epochs": r0.record.get("epochs_completed"),
            "epochs_per_seed": [r.record.get("epochs_completed") for r in rs],
            "training_status": [r.record.get("status") for r in rs],
            "training_wall_time_s": float(np.mean([r.record.get("training_wall_time_total_s") or 0.0
                                                   for r in rs])),
            "budget": plan.cfg.budget(label).describe(),
            "seeds": cells[(label, n)]["seeds"],
            "interval_method": cells[(label, n)]["interval_method"],
        })
    own = [m["label"] for m in models if plan.cfg.model(m["label"]).budget is not None]
    if own:
        notes = [*notes, f"Trained with their own budget (not the study's): {', '.join(own)} "
                         "(see each model's budget in results.json)."]
    curve = {}
    for (label, n), cell in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        m = cell["metrics"]
        curve.setdefault(label, []).append({
            "training_events": n, "seeds": cell["seeds"],
            "accuracy": m["accuracy"]["value"], "accuracy_interval": m["accuracy"]["interval"],
            "macro_f1": m["macro_f1"]["value"], "macro_f1_interval": m["macro_f1"]["interval"],
            "interval_method": cell["interval_method"]})
    build = next((s.counts for s in stages if s.name == "build"), None)
    sim = next((s.counts for s in stages if s.name == "simulate"), None)
    results = {
        "schema": RESULTS_SCHEMA, "schema_version": RESULTS_VERSION,
        "study": plan.cfg.name, "description": plan.cfg.description,
        "device": device, "command": command, "commit": git_commit(commit),
        "gnnu_version": __version__, "versions": library_versions(),
        "n_test": int(len(first.true)), "n_classes": len(names), "class_names": names,
        "classes_present": [c for k, c in enumerate(names) if (first.true == k).any()],
        "headline": {"training_events": top, "budget": to_dict(plan.cfg.training.budget),
                     "budget_description": plan.cfg.training.budget.describe(),
                     "compared_on": compare.get("n_events")},
        "models": models,
        "learning_curve": {"metric": "macro_f1", "models": curve},
        "events": {"simulated": sim, "build": build,
                   "runs": {s.name: s.counts for s in stages if s.name.startswith("train+eval")}},
        "stages": [{"name": s.name, "wall_s": s.seconds, "kept_from_earlier_run": s.kept}
                   for s in stages],
        "wall_time_s": wall_s,
        "intervals": __doc__.split("Intervals (68 %), per model and training size:")[1]
                     .split("Cost figures")[0].strip(),
        "notes": list(notes) + list(compare.get("notes", [])),
        "config": as_dict(plan.cfg),
    }
    extras = {"tasks": {label: rs[0].task for (label, n), rs in by_cell.items() if n == top},
              "cells": cells}
    return results, extras


def _f(v, spec=".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def _iv(value, interval, spec=".3f") -> str:
    if value is None:
        return "n/a"
    lo, hi = interval or (None, None)
    if lo is None or hi is None:
        return _f(value, spec)
    return f"{_f(value, spec)} [{_f(lo, spec)}, {_f(hi, spec)}]"


def _num(v, spec=",.0f") -> str:
    return "n/a" if v is None else format(v, spec)


def _mib(v) -> str:
    return "n/a" if v is None else f"{v / 2**20:,.0f} MiB"


def markdown(results: dict, plots: list[str]) -> str:
    """RESULTS.md."""
    import yaml

    h = results["headline"]
    ms = results["models"]
    sig = ms[0]["signal_efficiency_at_purity"] if ms else {"class": "?", "purity": 0.9}
    lines = [f"# Study `{results['study']}`", ""]
    if results.get("description"):
        lines += [results["description"].strip(), ""]
    lines += [f"Device **{results['device']}**; {results['n_test']} test events, {results['n_classes']} "
              f"classes ({', '.join(results['class_names'])}; present in the test split: "
              f"{', '.join(results['classes_present'])}); headline: every model trained on the same "
              f"{h['training_events']:,} training events, {h['budget_description']}.", "",
              "## Headline", "",
              "Values with their 68 % interval in brackets (see *Intervals* below).", "",
              f"| model | family | accuracy | macro F1 | {sig['class']} efficiency at purity "
              f"{sig['purity']:g} | parameters | FLOPs/event | inference events/s | training "
              "events/s | peak memory | training wall time | epochs |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in ms:
        s = m["signal_efficiency_at_purity"]
        lines.append(f"| {m['label']} | {m['family']} | {_iv(m['accuracy'], m['accuracy_interval'])} | "
                     f"{_iv(m['macro_f1'], m['macro_f1_interval'])} | {_iv(s['efficiency'], s['interval'])} | "
                     f"{_num(m['parameters'])} | {_num(m['flops_per_event'], ',.3g')} | "
                     f"{_num(m['inference_events_per_s'], ',.1f')} | {_num(m['training_events_per_s'], ',.1f')} | "
                     f"{_mib(m['peak_memory_bytes'])} | {_num(m['training_wall_time_s'], ',.0f')} s | "
                     f"{', '.join(str(e) for e in m['epochs_per_seed'])} |")
    if ms:
        bs = {m["inference_batch_size"] for m in ms}
        lines += ["", f"Inference events/s and peak memory: re-measured side by side on "
                      f"{ms[0]['inference_device']} at batch {', '.join(map(str, sorted(bs, key=str)))}, "
                      f"precision {', '.join(sorted({str(m['precision']) for m in ms}))}; model time only "
                      "(reading the dataset and building graphs or rendering images excluded). "
                      "Training events/s: from the study's own training runs on the same device "
                      "(validation excluded), one model after the other."]
        for title, key in (("Efficiency", "efficiency"), ("Purity", "purity"), ("One-vs-rest AUC", "auc")):
            names = list(ms[0]["per_class"])
            lines += ["", f"### {title} per class", "",
                      "| model | " + " | ".join(f"{c} (n = {ms[0]['per_class'][c]['n']})" for c in names) + " |",
                      "|---|" + "---|" * len(names)]
            for m in ms:
                lines.append(f"| {m['label']} | " + " | ".join(
                    _iv(m["per_class"][c][key], m["per_class"][c][f"{key}_interval"]) for c in names) + " |")
    lines += ["", "## Learning curve", "",
              "| model | training events | seeds | accuracy | macro F1 |", "|---|---|---|---|---|"]
    for label, points in results["learning_curve"]["models"].items():
        for p in points:
            lines.append(f"| {label} | {p['training_events']:,} | {len(p['seeds'])} | "
                         f"{_iv(p['accuracy'], p['accuracy_interval'])} | "
                         f"{_iv(p['macro_f1'], p['macro_f1_interval'])} |")
    lines += [""] + [f"![{p}]({p})" for p in plots]
    ev = results["events"]
    lines += ["", "## Events, stage by stage", ""]
    if ev["simulated"]:
        s = ev["simulated"]
        lines.append(f"- simulated: {s['written']} of {s['requested']} requested "
                     f"({', '.join(f'{k} {v}' for k, v in s['per_flavour'].items())}), "
                     f"{s['without_hits']} without hits")
    if ev["build"]:
        b = ev["build"]
        lines.append(f"- built: read {b['in']}, wrote {b['out']} graphs (train {b['per_split']['train']}, "
                     f"val {b['per_split']['val']}, test {b['per_split']['test']}), skipped {b['skipped']}"
                     + (f" ({', '.join(f'{k} {v}' for k, v in b['skipped_by_reason'].items())})"
                        if b["skipped"] else ""))
    for name, c in ev["runs"].items():
        lines.append(f"- {name}: trained on {c['train']['used']} of {c['train']['in_split']} train events "
                     f"({c['train']['skipped']} left out by the size), validated on {c['val']['used']}, "
                     f"tested on {c['test']}")
    lines += ["", "## Intervals", "", results["intervals"], ""]
    if results["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    lines += ["## Provenance", "",
              f"- command: `{results['command']}`",
              f"- commit: `{results['commit']}`; gnnu {results['gnnu_version']}",
              f"- device: {results['device']}",
              "- versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()),
              f"- wall time: {results['wall_time_s']:.0f} s in all; per stage: "
              + "; ".join(f"{s['name']} {'kept' if s['kept_from_earlier_run'] else _num(s['wall_s'], ',.1f') + ' s'}"
                          for s in results["stages"]),
              "", "Resolved config:", "", "```yaml",
              yaml.safe_dump(results["config"], sort_keys=False, allow_unicode=True).rstrip(), "```", ""]
    return "\n".join(lines)


def write_plots(plan: StudyPlan, results: dict, extras: dict) -> list[str]:
    """learning_curve.png, cost_vs_f1.png, efficiency_vs_energy.png (those that can be drawn)."""
    from ..evaluate import plots

    out = plan.out
    written = []
    series = {}
    for label, points in results["learning_curve"]["models"].items():
        pts = [p for p in points if p["macro_f1"] is not None]
        if pts:
            series[label] = ([p["training_events"] for p in pts], [p["macro_f1"] for p in pts],
                             [p["macro_f1_interval"][0] if p["macro_f1_interval"][0] is not None
                              else p["macro_f1"] for p in pts],
                             [p["macro_f1_interval"][1] if p["macro_f1_interval"][1] is not None
                              else p["macro_f1"] for p in pts])
    if series:
        plots.plot_learning_curve(series, out / CURVE_PLOT,
                                  f"{results['study']}: test macro F1 vs training events "
                                  f"({results['n_test']} test events; 68 % intervals)")
        written.append(CURVE_PLOT)
    ms = [m for m in results["models"] if m["inference_events_per_s"] and m["macro_f1"] is not None]
    if ms:
        plots.plot_cost_vs_accuracy(
            [m["label"] for m in ms], [m["inference_events_per_s"] for m in ms],
            [m["macro_f1"] for m in ms], [m["parameters"] for m in ms], out / COST_PLOT,
            f"macro F1 vs inference speed on {results['device']} (marker area ∝ parameters)\n"
            f"{results['n_test']} test events, batch {ms[0]['inference_batch_size']}")
        written.append(COST_PLOT)
    tasks = [(label, t) for label, t in extras["tasks"].items() if t.energy_edges is not None]
    if tasks:
        plots.plot_efficiency_vs_energy_comparison(
            tasks, out / ENERGY_PLOT, f"efficiency vs true neutrino energy — {results['n_test']} "
                                      f"test events, first seed of each model")
        written.append(ENERGY_PLOT)
    return written


def write_results(plan: StudyPlan, stages, compare: dict, *, device: str, command: str,
                  commit: str | None, wall_s: float, notes: list[str]) -> dict:
    """Collect, draw and write results.json and RESULTS.md (RESULTS.md last); returns the
    results.json content."""
    import json

    from ..evaluate.report import _jsonable
    from .runner import write_text

    results, extras = collect(plan, stages, compare, device=device, command=command, commit=commit,
                              wall_s=wall_s, notes=notes)
    drawn = write_plots(plan, results, extras)
    results["plots"] = drawn
    for name in {CURVE_PLOT, COST_PLOT, ENERGY_PLOT} - set(drawn):
        (plan.out / name).unlink(missing_ok=True)
    results = _jsonable(results)
    write_text(plan.out / RESULTS_JSON, json.dumps(results, indent=1, allow_nan=False) + "\n")
    write_text(plan.out / RESULTS_MD, markdown(results, drawn))
    return results
