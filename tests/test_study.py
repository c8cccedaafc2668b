"""gnnu-study (issue 16): configs, refusal and resume, bad input before any work, Ctrl-C then
--resume, results.json's schema and its numbers recomputed from the runs' own reports, the
smoke preset end to end and the gpu preset rehearsed on the CPU (the same code path, tiny scale).

Most tests run a small study on the synthetic flavour-shaped dataset of test_train.py (tiny
EdgeConv, ~1 s an epoch); the presets run the real chain (simulation included) and are slow.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import sigint_as_in_a_terminal
from test_train import TINY, make_dataset

from gnnu.cli.study import main
from gnnu.config import CONFIG_ROOT
from gnnu.study.config import load_study_config

REPO = Path(__file__).resolve().parent.parent
#: Every field the issue requires of results.json, top level and per model.
TOP_FIELDS = ("device", "command", "commit", "n_test", "n_classes", "models", "learning_curve")
MODEL_FIELDS = ("name", "family", "accuracy", "accuracy_interval", "macro_f1", "macro_f1_interval",
                "n_test", "inference_events_per_s", "inference_batch_size", "precision",
                "includes_graph_build", "training_events_per_s", "peak_memory_bytes", "parameters",
                "flops_per_event", "training_events", "epochs")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("study-data"), n_events=400)


def tiny_study(root: Path, data: Path, **changes) -> Path:
    """A study config on the synthetic dataset: the tiny EdgeConv at two sizes and a tiny GravNet
    at the largest only, 2 seeds each; returns its path."""
    tiny = root / "tiny.yaml"
    tiny.write_text(yaml.safe_dump({**TINY, "deterministic": False}))
    cfg = {
        "name": "tiny",
        "data": {"graphs": str(data)},
        "models": [
            {"name": "edgeconv", "config": str(tiny)},
            {"name": "gravnet", "set": ["model.params.blocks=2", "model.params.dense=[16,16]",
                                        "model.params.out_channels=16", "model.params.k=8",
                                        "model.params.propagate_dimensions=8", "model.heads.hidden=[16]"]},
        ],
        "training": {"budget": {"kind": "epochs", "epochs": 2, "patience": 2},
                     "set": ["batch_size=32", "num_workers=0"]},
        "learning_curve": {"sizes": [48, "all"], "repeats": 2, "seed": 0, "models": ["edgeconv"]},
        "evaluation": {"batch_size": 32, "remeasure_repeats": 1, "warmup": 1, "bootstrap": 50},
    }
    for key, value in changes.items():
        cfg[key] = value
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gnnu-study: error: "), err
    return err[0]


def mtimes(out: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/*") if p.is_file()}


@pytest.fixture(scope="module")
def study(tmp_path_factory, data):
    """(study dir, argv, printed output) of one finished tiny study."""
    root = tmp_path_factory.mktemp("study")
    config = tiny_study(root, data)
    out = root / "out"
    argv = ["--config", str(config), "--out", str(out), "--device", "cpu", "--commit", "abc123"]
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    return out, argv, buf.getvalue()


# -- configs ---------------------------------------------------------------------------------------
def test_every_preset_is_a_valid_config():
    names = sorted(p.stem for p in (CONFIG_ROOT / "studies").glob("*.yaml"))
    assert {"smoke", "cpu", "gpu", "gpu-full", "transfer", "demo"} <= set(names)
    for name in names:
        cfg = load_study_config(name)
        assert cfg.models and cfg.name == name


def test_scale_shrinks_events_sizes_and_epochs():
    full = load_study_config("gpu-full")
    small = load_study_config("gpu-full", ("scale=0.01",))
    assert small.data.simulate.events == round(full.data.simulate.events * 0.01)
    assert small.learning_curve.sizes == tuple(s if s == "all" else round(s * 0.01)
                                              for s in full.learning_curve.sizes)
    assert small.training.budget.epochs == math.ceil(full.training.budget.epochs * 0.01)
    assert small.scaled_from == 0.01 and small.scale == 1.0
    assert [m.name for m in small.models] == [m.name for m in full.models]
    assert small.training.set == full.training.set          # precision, batch size: unchanged
    gpu = load_study_config("gpu", ("scale=0.01",))
    assert gpu.training.budget.events == round(load_study_config("gpu").training.budget.events * 0.01)


# -- results ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_results_json_has_every_field(study):
    out, _, _ = study
    r = json.loads((out / "results.json").read_text())
    for key in TOP_FIELDS:
        assert key in r, key
    assert r["device"] == "cpu" and r["commit"] == "abc123" and r["command"].startswith("gnnu-study ")
    assert r["n_classes"] == 4 and r["n_test"] > 0
    assert [m["name"] for m in r["models"]] == ["edgeconv", "gravnet"]
    for m in r["models"]:
        for key in MODEL_FIELDS:
            assert key in m, (m["name"], key)
        assert m["family"] == "gnn" and m["n_test"] == r["n_test"]
        assert m["includes_graph_build"] is False and m["inference_batch_size"] == 32
        for key in ("accuracy", "macro_f1"):
            lo, hi = m[f"{key}_interval"]
            assert lo <= m[key] <= hi
        assert m["inference_events_per_s"] > 0 and m["training_events_per_s"] > 0
        assert m["parameters"] > 0 and m["flops_per_event"] > 0
        for c in r["class_names"]:
            pc = m["per_class"][c]
            assert {"efficiency", "efficiency_interval", "purity", "auc", "auc_interval", "n"} <= set(pc)
    assert set(r["learning_curve"]["models"]) == {"edgeconv", "gravnet"}
    assert [p["training_events"] for p in r["learning_curve"]["models"]["edgeconv"]] == \
        [48, r["models"][0]["training_events"]]
    for name in ("RESULTS.md", "learning_curve.png", "cost_vs_f1.png", "efficiency_vs_energy.png"):
        assert (out / name).stat().st_size > 1000, name


@pytest.mark.slow
def test_numbers_come_from_the_runs_own_reports(study):
    """The headline of a model with 2 seeds is the mean of its runs' test accuracies (each run's
    own metrics.json), with the standard error over the seeds as its interval; parameters,
    epochs and training events are those of the runs' run.json (first seed); speeds are the
    comparison's re-measured ones. (One seed, a bootstrap interval: test_force_replaces_the_study.)"""
    out, _, _ = study
    r = json.loads((out / "results.json").read_text())
    compare = json.loads((out / "stages" / "compare.json").read_text())["counts"]["speeds"]
    for m in r["models"]:
        runs = sorted((out / "runs" / m["label"]).glob(f"n{m['training_events']}-s*"))
        assert len(runs) == len(m["seeds"]) == 2
        acc = [json.loads((d / "eval-test" / "metrics.json").read_text())["accuracy"] for d in runs]
        assert m["accuracy"] == pytest.approx(np.mean(acc))
        sem = np.std(acc, ddof=1) / math.sqrt(len(acc))
        assert m["accuracy_interval"] == pytest.approx([np.mean(acc) - sem, np.mean(acc) + sem])
        assert "standard error over 2 seeds" in m["interval_method"]
        run = json.loads((runs[0] / "run.json").read_text())
        assert m["parameters"] == run["model"]["parameters"]
        assert m["training_events"] == run["dataset"]["events"]["train"]["used"]
        assert m["epochs"] == run["epochs_completed"]
        assert m["inference_events_per_s"] == compare[m["label"]]["events_per_s"]
        assert m["peak_memory_bytes"] == compare[m["label"]]["peak_memory_bytes"]


@pytest.mark.slow
def test_bootstrap_interval_is_seeded(study, tmp_path):
    """The same predictions and seed give the same interval; another seed another one."""
    from gnnu.study.results import _bootstrap

    out, _, _ = study
    from gnnu.evaluate.report import read_predictions

    p = read_predictions(next((out / "runs" / "gravnet").glob("n*")) / "eval-test")
    args = (p.labels["flavour"].astype(np.int64), p.scores["flavour"], p.class_names["flavour"], 1, 0.9, 100)
    a, b, c = _bootstrap(*args, 7), _bootstrap(*args, 7), _bootstrap(*args, 8)
    assert a == b and a != c
    assert a["accuracy"][0] < a["accuracy"][1]


@pytest.mark.slow
def test_results_md_and_summary_count_every_stage(study, data):
    out, _, printed = study
    manifest = json.loads((data / "manifest.json").read_text())["counts"]
    text = (out / "RESULTS.md").read_text()
    for line in ("## Headline", "| edgeconv | gnn |", "| gravnet | gnn |", "## Learning curve",
                 "nue_cc efficiency at purity 0.9", "## Provenance", "commit: `abc123`", "```yaml"):
        assert line in text, line
    tail = printed[printed.index("gnnu-study: tiny done"):]
    n_train, n_test = manifest["per_split"]["train"], manifest["per_split"]["test"]
    assert f"trained on 48 of {n_train} train events ({n_train - 48} left out by the size)" in tail
    assert f"trained on {n_train} of {n_train} train events (0 left out by the size)" in tail
    assert tail.count(f"tested on {n_test}") == 6            # (2 sizes + 1) × 2 seeds
    assert f"2 model(s) on {n_test} test events" in tail
    lines = [ln for ln in printed.splitlines() if ln.startswith("gnnu-study [")]
    assert len(lines) == 8 and all("ETA" in ln for ln in lines)   # 6 runs, compare, results


def test_efficiency_at_purity():
    from gnnu.evaluate.metrics import efficiency_at_purity

    is_sig = np.array([1, 1, 1, 0, 1, 0, 0, 1], bool)
    score = np.array([0.9, 0.8, 0.7, 0.65, 0.6, 0.5, 0.4, 0.1])
    # cuts: top 3 → purity 1, eff 3/5; top 5 → 4/5 = 0.8 purity; top 8 → 5/8
    assert efficiency_at_purity(is_sig, score, 0.9) == pytest.approx(3 / 5)
    assert efficiency_at_purity(is_sig, score, 0.8) == pytest.approx(4 / 5)
    assert efficiency_at_purity(is_sig, score, 0.5) == pytest.approx(1.0)
    assert math.isnan(efficiency_at_purity(np.zeros(8, bool), score, 0.9))    # no signal
    assert efficiency_at_purity(np.ones(8, bool), score, 0.9) == 1.0
    assert efficiency_at_purity(np.array([0, 1], bool), np.array([0.9, 0.1]), 0.9) == 0.0


# -- refusal and resume ------------------------------------------------------------------------------
@pytest.mark.slow
def test_existing_study_dir_is_refused(study, capsys):
    out, argv, _ = study
    before = mtimes(out)
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert str(out) in line and "--resume" in line and "--force" in line
    assert mtimes(out) == before


@pytest.mark.slow
def test_resume_keeps_every_finished_stage(study, capsys):
    out, argv, _ = study
    before = mtimes(out)
    results = json.loads((out / "results.json").read_text())
    assert main([*argv, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("kept from an earlier run") == 7           # 6 runs and the comparison
    assert mtimes(out) == before
    again = json.loads((out / "results.json").read_text())
    assert [m["accuracy"] for m in again["models"]] == [m["accuracy"] for m in results["models"]]
    assert all(s["kept_from_earlier_run"] for s in again["stages"][:-1])


@pytest.mark.slow
@pytest.mark.parametrize("change, expected", [
    ("training.budget.epochs=3", "train_config.epochs"),
    ("training.set=[batch_size=16,num_workers=0]", "train_config.batch_size"),
])
def test_resume_with_changed_settings_is_refused(change, expected, study, capsys):
    out, argv, _ = study
    before = mtimes(out)
    assert main([*argv, "--resume", "--set", change]) == 2
    line = one_error_line(capsys)
    assert "finished stage train+eval edgeconv n=48 seed=0" in line and expected in line, line
    assert mtimes(out) == before


@pytest.mark.slow
def test_force_replaces_the_study(tmp_path, data, capsys):
    config = tiny_study(tmp_path, data, models=[{"name": "edgeconv", "config": str(tmp_path / "tiny.yaml")}],
                        learning_curve={"sizes": [32], "repeats": 1})
    out = tmp_path / "out"
    argv = ["--config", str(config), "--out", str(out), "--device", "cpu"]
    assert main(argv) == 0
    (out / "mine.txt").write_text("not gnnu-study's")
    first = (out / "runs" / "edgeconv" / "n32-s0" / "run.json").stat().st_mtime_ns
    assert main([*argv, "--force", "--set", "learning_curve.sizes=[40]"]) == 0
    m = json.loads((out / "results.json").read_text())["models"][0]
    assert "bootstrap over the" in m["interval_method"] and m["seeds"] == [0]    # one seed
    for key in ("accuracy", "macro_f1"):
        assert m[f"{key}_interval"][0] <= m[key] <= m[f"{key}_interval"][1]
    assert not (out / "runs" / "edgeconv" / "n32-s0").exists()      # the old study is gone …
    assert (out / "runs" / "edgeconv" / "n40-s0" / "run.json").stat().st_mtime_ns > first
    assert (out / "mine.txt").is_file()                              # … and nothing else
    with pytest.raises(SystemExit):                                  # argparse: exclusive flags
        main([*argv, "--resume", "--force"])
    capsys.readouterr()


@pytest.mark.parametrize("bad", ["unknown model", "typo", "size too large", "image preset",
                                 "missing checkpoint", "missing dataset"])
def test_bad_input_is_one_line_before_any_work(bad, tmp_path, data, capsys):
    config = tiny_study(tmp_path, data)
    out = tmp_path / "out"
    one = "learning_curve.models=null"
    sets = {"unknown model": (("models=[{name: edgeconvv}]", one), "edgeconvv"),
            "typo": (("training.budgte.epochs=1",), "budgte"),
            "size too large": (("learning_curve.sizes=[100000]",), "100000 larger than the"),
            "image preset": (("models=[{name: nova_cvn, config: nova_cvn_nova}]", one),
                             "(plane-cell maps) does not fit this dataset's hits (wire-time"),
            "missing checkpoint": (("models=[{name: edgeconv, init_from: /nowhere/x.ckpt}]",),
                                   "/nowhere/x.ckpt: no such checkpoint"),
            "missing dataset": ((f"data.graphs={tmp_path / 'nowhere'}",), "nowhere")}
    changes, expected = sets[bad]
    argv = ["--config", str(config), "--out", str(out), "--device", "cpu"]
    assert main([*argv, *(a for c in changes for a in ("--set", c))]) == 2
    assert expected in one_error_line(capsys)
    assert not out.exists()


def test_unknown_preset_is_one_line(tmp_path, capsys):
    assert main(["--config", "nosuch", "--out", str(tmp_path / "o")]) == 2
    line = one_error_line(capsys)
    assert "unknown study preset 'nosuch'" in line and "smoke" in line


# -- Ctrl-C then --resume ----------------------------------------------------------------------------
@pytest.mark.slow
def test_ctrl_c_then_resume_continues(tmp_path, data):
    """A real SIGINT to a running gnnu-study during a training run: it stops with exit 130 and
    one line saying to --resume; --resume keeps the finished run, continues the interrupted one
    from its last.ckpt, and completes the study."""
    config = tiny_study(tmp_path, data,
                        models=[{"name": "edgeconv", "config": str(tmp_path / "tiny.yaml")}],
                        learning_curve={"sizes": [32, "all"], "repeats": 1},
                        training={"budget": {"kind": "epochs", "epochs": 40, "early_stopping": False},
                                  "set": ["batch_size=16", "num_workers=0"]})
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "gnnu.cli.study", "--config", str(config), "--out", str(out),
            "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_in_a_terminal)
    second = out / "runs" / "edgeconv"
    deadline = time.time() + 600
    try:
        while time.time() < deadline and proc.poll() is None:
            lasts = [p for p in second.glob("n*/last.ckpt") if not p.parent.name.startswith("n32-")]
            if lasts:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (stdout, stderr)
    err = [ln for ln in stderr.splitlines() if ln.startswith("gnnu-study:")]
    assert len(err) == 1 and "--resume" in err[0], stderr
    first = out / "runs" / "edgeconv" / "n32-s0"
    assert json.loads((first / "study-run.json").read_text())["status"] == "complete"
    kept = (first / "run.json").stat().st_mtime_ns
    resumed = proc2 = subprocess.run([*argv, "--resume"], env=env, capture_output=True, text=True,
                                     timeout=600)
    assert proc2.returncode == 0, proc2.stderr
    assert (first / "run.json").stat().st_mtime_ns == kept
    run_dir = next(p for p in second.glob("n*") if p.name != "n32-s0")
    run = json.loads((run_dir / "run.json").read_text())
    assert run["resumed_from"] and run["epochs_completed"] == 40 and run["status"] == "complete"
    assert "kept from an earlier run" in resumed.stdout
    assert json.loads((out / "results.json").read_text())["models"][0]["epochs"] == 40


# -- the presets -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_smoke_preset_end_to_end(tmp_path):
    """gnnu-study --config smoke: simulation, build, 4 runs, comparison and results, with every
    stage's events reconciled (simulated = read by the build = written + skipped; each run's train
    split = built train split = used + left out; every model tested on the built test split)."""
    out = tmp_path / "smoke"
    assert main(["--config", "smoke", "--out", str(out), "--device", "cpu"]) == 0
    r = json.loads((out / "results.json").read_text())
    ev = r["events"]
    assert ev["simulated"]["written"] == ev["simulated"]["requested"] == 160 == ev["build"]["in"]
    assert ev["build"]["in"] == ev["build"]["out"] + ev["build"]["skipped"]
    assert sum(ev["build"]["per_split"].values()) == ev["build"]["out"]
    for name, c in ev["runs"].items():
        assert c["train"]["in_split"] == ev["build"]["per_split"]["train"] == \
            c["train"]["used"] + c["train"]["skipped"], name
        assert c["test"] == ev["build"]["per_split"]["test"] == r["n_test"], name
    assert {m["name"]: m["family"] for m in r["models"]} == {"edgeconv": "gnn", "resnet18": "cnn"}
    assert all(m["inference_events_per_s"] > 0 for m in r["models"])
    assert (out / "events.h5").is_file() and (out / "graphs" / "manifest.json").is_file()
    assert (out / "comparison" / "comparison.md").is_file()


# The gpu preset on the CPU (every model, DUNE CVN at 3 × 500 × 500, bf16-mixed) runs once, through
# tools/gpu_check.sh --rehearse: tests/test_gpu_check.py checks its results.json.


# -- transfer learning (tools/tl_study.py folded in) ---------------------------------------------------
def _tl_config(root: Path, data: Path, init_from: str = "run:pretrain") -> Path:
    """Chappell & Whitehead's protocol as a study on the synthetic dataset with the tiny
    EdgeConv: "pretrained" starts from ``init_from`` (by default a model of the study trained on
    every training event for 4 epochs), "scratch" from its own seeded initialisation, both at 24
    and 96 training events with 2 seeds; a frozen-depth scan (0 and 2 parameter units) at 24."""
    tiny = root / "tiny.yaml"
    tiny.write_text(yaml.safe_dump({**TINY, "deterministic": False}))
    t = str(tiny)
    cfg = {
        "name": "tl", "data": {"graphs": str(data)},
        "models": [
            {"name": "edgeconv", "label": "pretrain", "config": t, "sizes": ["all"],
             "budget": {"kind": "epochs", "epochs": 4, "early_stopping": False}},
            {"name": "edgeconv", "label": "pretrained", "config": t, "init_from": init_from},
            {"name": "edgeconv", "label": "scratch", "config": t},
            {"name": "edgeconv", "label": "freeze-0", "config": t, "init_from": init_from,
             "sizes": [24], "set": ["freeze=0"]},
            {"name": "edgeconv", "label": "freeze-2", "config": t, "init_from": init_from,
             "sizes": [24], "set": ["freeze=2"]},
        ],
        "training": {"budget": {"kind": "epochs", "epochs": 2, "early_stopping": False},
                     "set": ["batch_size=32", "num_workers=0"]},
        "learning_curve": {"sizes": [24, 96], "repeats": 2, "models": ["pretrained", "scratch"]},
        "evaluation": {"batch_size": 32, "remeasure_repeats": 1, "warmup": 1, "bootstrap": 50},
    }
    path = root / "tl.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def tl(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("tl")
    out = root / "out"
    argv = ["--config", str(_tl_config(root, data)), "--out", str(out), "--device", "cpu"]
    assert main(argv) == 0
    return out, argv


def _run(out: Path, label: str, n: int, seed: int) -> dict:
    return json.loads((out / "runs" / label / f"n{n}-s{seed}" / "run.json").read_text())


@pytest.mark.slow
def test_transfer_every_planned_run_and_what_differs(tl, data):
    """Every planned run exists; the arms differ only in the initialisation (the pretrained ones
    loaded the pretraining run's checkpoint, the scratch ones nothing) and the scan only in the
    frozen depth; the subsets are the first N training events."""
    out, _ = tl
    n_all = json.loads((data / "manifest.json").read_text())["counts"]["per_split"]["train"]
    dirs = sorted(f"{p.parent.name}/{p.name}" for p in (out / "runs").glob("*/*"))
    assert dirs == sorted([f"pretrain/n{n_all}-s{s}" for s in (0, 1)]
                          + [f"{a}/n{n}-s{s}" for a in ("pretrained", "scratch") for n in (24, 96)
                             for s in (0, 1)]
                          + [f"freeze-{f}/n24-s{s}" for f in (0, 2) for s in (0, 1)])
    ckpt = str(out / "runs" / "pretrain" / f"n{n_all}-s0" / "best.ckpt")
    for label in ("pretrained", "scratch", "freeze-0", "freeze-2"):
        for n in ((24, 96) if label in ("pretrained", "scratch") else (24,)):
            for seed in (0, 1):
                run = _run(out, label, n, seed)
                assert run["dataset"]["events"]["train"]["used"] == n
                cfg = yaml.safe_load((out / "runs" / label / f"n{n}-s{seed}" / "config.yaml").read_text())
                assert cfg["seed"] == seed
                if label == "scratch":
                    assert run["init_from"] is None
                else:
                    assert run["init_from"]["checkpoint"] == ckpt and run["init_from"]["loaded"] > 0
                frozen = run.get("frozen") or []
                assert len(frozen) == (2 if label == "freeze-2" else 0)


@pytest.mark.slow
def test_transfer_pretraining_helps_at_small_size(tl):
    """The protocol's expected outcome: with 24 training events and 2 epochs a network started
    from a checkpoint that already separates the four patterns beats one started at random."""
    out, _ = tl
    curve = json.loads((out / "results.json").read_text())["learning_curve"]["models"]
    f1 = {arm: next(p["macro_f1"] for p in curve[arm] if p["training_events"] == 24)
          for arm in ("pretrained", "scratch")}
    assert f1["pretrained"] > f1["scratch"] + 0.1, f1
    assert (out / "learning_curve.png").stat().st_size > 5000


@pytest.mark.slow
def test_transfer_changed_checkpoint_is_refused(tmp_path, data, tl, capsys):
    """init_from a checkpoint file: the run records its sha256; the same path with other bytes
    is a changed setting (refused by --resume, naming it), the same bytes elsewhere are not.
    (The two checkpoints: best and last of the transfer study's pretraining run.)"""
    pre_run = next((tl[0] / "runs" / "pretrain").glob("n*"))
    ckpt = tmp_path / "init.ckpt"
    shutil.copy(pre_run / "best.ckpt", ckpt)
    config = tiny_study(tmp_path, data, learning_curve={"sizes": [24], "repeats": 1},
                        models=[{"name": "edgeconv", "config": str(tmp_path / "tiny.yaml"),
                                 "init_from": str(ckpt)}])
    out = tmp_path / "out"
    argv = ["--config", str(config), "--out", str(out), "--device", "cpu"]
    assert main(argv) == 0
    settings = json.loads((out / "runs" / "edgeconv" / "n24-s0" / "study-run.json").read_text())["settings"]
    run_cfg = yaml.safe_load((out / "runs" / "edgeconv" / "n24-s0" / "config.yaml").read_text())
    run_cfg.pop("data")
    assert settings["train_config"] == run_cfg           # what gnnu-train actually trained with
    from gnnu.graph.build import file_sha256
    assert settings["init_from"]["sha256"] == file_sha256(ckpt)
    shutil.copy(pre_run / "last.ckpt", ckpt)
    assert file_sha256(ckpt) != settings["init_from"]["sha256"]
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    assert "init_from.sha256" in one_error_line(capsys)


@pytest.mark.slow
def test_transfer_imagenet_resnet18_protocol(tmp_path, data, monkeypatch):
    """The paper's own form: "pretrained" = torchvision's ImageNet file found in the torch hub
    cache (here a file in torchvision's format the test writes under $TORCH_HOME), "scratch" =
    weights: none, and a freeze scan over the ResNet18 levels; small images keep it quick."""
    import torch
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(123)      # torchvision's format and initialisation scale, other values
    torch.save(torchvision.models.resnet18(weights=None).state_dict(),
               tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    image = ["model.image.size=[64,64]", "model.image.wires_per_column=4",
             "model.image.ticks_per_bin=24.0", "model.image.centring=centroid"]
    cfg = {"name": "tl-resnet", "data": {"graphs": str(data)},
           "models": [{"name": "resnet18", "label": "pretrained", "set": [*image, "model.params.weights=imagenet"]},
                      {"name": "resnet18", "label": "scratch", "set": [*image, "model.params.weights=none"]},
                      {"name": "resnet18", "label": "head-only", "sizes": [16],
                       "set": [*image, "model.params.weights=imagenet", "model.params.freeze=head-only"]}],
           "training": {"budget": {"kind": "epochs", "epochs": 1}, "set": ["batch_size=16", "num_workers=0"]},
           "learning_curve": {"sizes": [16, 32], "repeats": 1, "models": ["pretrained", "scratch"]},
           "evaluation": {"batch_size": 16, "remeasure_repeats": 1, "warmup": 1, "bootstrap": 20}}
    (tmp_path / "tl.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    assert main(["--config", str(tmp_path / "tl.yaml"), "--out", str(out), "--device", "cpu"]) == 0
    for label, weights, frozen in (("pretrained", "imagenet", []), ("scratch", "none", []),
                                   ("head-only", "imagenet", ["encoder.body"])):
        for d in (out / "runs" / label).iterdir():
            run = json.loads((d / "run.json").read_text())
            assert yaml.safe_load((d / "config.yaml").read_text())["model"]["params"]["weights"] == weights
            assert (run.get("frozen") or []) == frozen, (label, run.get("frozen"))
    r = json.loads((out / "results.json").read_text())
    assert {m["label"]: m["family"] for m in r["models"]} == {"pretrained": "cnn", "scratch": "cnn"}


def test_events_budget_shows_the_same_events_at_every_size():
    """Equal events seen: whole epochs of the training set, then the batches of the remainder —
    also when the training set is smaller than a batch."""
    from gnnu.study.plan import events_budget_steps

    for events, n, batch in ((16000, 8000, 64), (1000, 300, 32), (80, 1, 64), (80, 8, 64), (100, 100, 7)):
        steps, epochs = events_budget_steps(events, n, batch)
        per_epoch = math.ceil(n / batch)
        full, rest = divmod(steps, per_epoch)
        seen = full * n + min(rest * batch, n)
        assert events <= seen < events + batch, (events, n, batch, seen)
        assert epochs == math.ceil(events / n)


@pytest.mark.slow
def test_wall_time_budget_stops_training(tmp_path, data):
    """budget kind wall_time: a run allowed 200 epochs stops after its few seconds of training
    (validated and evaluated), and results.json says which budget it had."""
    config = tiny_study(tmp_path, data, models=[{"name": "edgeconv", "config": str(tmp_path / "tiny.yaml")}],
                        learning_curve={"sizes": ["all"], "repeats": 1},
                        training={"budget": {"kind": "wall_time", "wall_time_s": 3, "epochs": 200},
                                  "set": ["batch_size=16", "num_workers=0"]})
    out = tmp_path / "out"
    assert main(["--config", str(config), "--out", str(out), "--device", "cpu"]) == 0
    run = json.loads(next((out / "runs" / "edgeconv").glob("n*/run.json")).read_text())
    assert 1 <= run["epochs_completed"] < 200 and run["training_wall_time_s"] < 60
    m = json.loads((out / "results.json").read_text())["models"][0]
    assert "capped at 3 s of training" in m["budget"] and m["accuracy"] is not None
