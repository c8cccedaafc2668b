"""gnnu-compare: table values = gnnu.evaluate.metrics on the same predictions, refusal of reports
that were not evaluated on identical events, speed comparability, --force, inputs, and one real
gnnu-train → gnnu-eval → gnnu-compare --remeasure run of two GNNs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from gnnu.cli.compare import main
from gnnu.evaluate.metrics import energy_resolution, evaluate_task
from gnnu.evaluate.report import Predictions, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N_EVENTS = 240
CLASSES = ["numu_cc", "nue_cc", "nutau_cc", "nc"]


def truth(n=N_EVENTS, seed=0):
    """Shared truth of the compared events: ids (run 7), flavour labels, true energy (GeV)."""
    rng = np.random.default_rng(seed)
    ids = np.stack([np.full(n, 7), np.zeros(n, int), np.arange(n)], axis=1)
    return ids, rng.integers(0, 4, n), rng.uniform(0.5, 10.0, n)


def model_predictions(boost: float, seed: int, n=N_EVENTS, shuffle=False) -> Predictions:
    """A model's outputs on the shared events: the true class gets a logit boost (bigger boost,
    better model); its own noise (seed); optionally the events in another order."""
    ids, labels, e_true = truth(n)
    rng = np.random.default_rng(100 + seed)
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), labels] += boost
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    e_pred = e_true * (1 + rng.normal(0, 0.1 + 0.05 * seed, n))
    order = rng.permutation(n) if shuffle else np.arange(n)
    return Predictions(ids[order], {"flavour": labels[order]}, {"flavour": scores[order]},
                       e_true[order], e_pred[order])


def make_run(root: Path, name: str, pred: Predictions, *, parameters=1000, flops=2.0e6,
             wall=12.5, device="cpu", batch_size=32, rate=500.0, split="test",
             manifest="sha256:aaaa", report="eval-test") -> Path:
    """A fake run directory (run.json) with a gnnu-eval-like report inside; returns the run dir."""
    run = root / name
    run.mkdir(parents=True, exist_ok=True)
    (run / "run.json").write_text(json.dumps({
        "status": "complete", "device": device, "epochs_completed": 3,
        "training_wall_time_total_s": wall,
        "model": {"name": name, "parameters": parameters, "flops_per_event": flops}}))
    write_report(run / report, pred, split=split, manifest_hash=manifest,
                 expected_n_events=len(pred), device=device, throughput_events_per_s=rate,
                 peak_memory_bytes=3 << 20, timing={"batch_size": batch_size, "precision": "32"},
                 dataset={"checkpoint": str(run / "best.ckpt"), "model": name}, plot_tasks=[])
    return run


def is_png(path: Path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(PNG_SIGNATURE)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def one_error_line(capsys, prog="gnnu-compare") -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{prog}: error:"), err
    return err[0]


@pytest.fixture
def three_runs(tmp_path) -> list[Path]:
    """Three models on the same 240 events, one of them with its events in another order."""
    return [make_run(tmp_path, "weak", model_predictions(0.5, 1), parameters=500, rate=900.0),
            make_run(tmp_path, "medium", model_predictions(1.5, 2, shuffle=True), parameters=5000,
                     rate=400.0, wall=30.0),
            make_run(tmp_path, "strong", model_predictions(3.0, 3), parameters=50000, rate=100.0,
                     flops=9.0e7)]


# -- values ------------------------------------------------------------------------------------
def test_table_values_equal_the_metrics_module(three_runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main([*map(str, three_runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = read_csv(out / "comparison.csv")
    assert len(rows) == 3 * 4                               # one row per model × class
    assert [r["model"] for r in rows[::4]] == ["weak", "medium", "strong"]
    for run, boost, seed, shuffle in ((three_runs[0], 0.5, 1, False), (three_runs[1], 1.5, 2, True),
                                      (three_runs[2], 3.0, 3, False)):
        pred = model_predictions(boost, seed, shuffle=shuffle)
        ref = evaluate_task(pred.labels["flavour"], pred.scores["flavour"], CLASSES, task="flavour",
                            energy=pred.energy_true)
        res = energy_resolution(pred.energy_pred, pred.energy_true)
        mine = [r for r in rows if r["model"] == run.name]
        assert [r["class"] for r in mine] == CLASSES
        for k, r in enumerate(mine):
            assert int(r["n"]) == ref.n[k]
            for key in ("efficiency", "purity", "f1", "auc"):
                assert float(r[key]) == getattr(ref, key)[k], (run.name, key)
            assert float(r["accuracy"]) == ref.accuracy
            assert float(r["macro_f1"]) == ref.macro_f1
            assert float(r["energy_resolution_68"]) == res.resolution_68
        run_json = json.loads((run / "run.json").read_text())
        assert int(mine[0]["parameters"]) == run_json["model"]["parameters"]
        assert float(mine[0]["flops_per_event"]) == run_json["model"]["flops_per_event"]
        assert float(mine[0]["training_wall_time_s"]) == run_json["training_wall_time_total_s"]
        metrics = json.loads((run / "eval-test" / "metrics.json").read_text())
        assert float(mine[0]["events_per_s"]) == metrics["throughput_events_per_s"]
        assert mine[0]["speed_comparable"] == "True" and mine[0]["speed_source"] == "report"
        assert f"| {run.name} | {ref.accuracy:.4f} | {ref.macro_f1:.4f} |" in printed
    # the better model really is better: the comparison is not constant
    acc = {r["model"]: float(r["accuracy"]) for r in rows}
    assert acc["weak"] < acc["medium"] < acc["strong"]

    md = (out / "comparison.md").read_text()
    for title in ("## Summary", "## Efficiency (recall) per class", "## Purity (precision) per class",
                  "## F1 per class", "## AUC per class (one vs rest)"):
        assert title in md
    assert "cpu with batch size 32" in md and "not comparable" not in md
    for name in ("roc.png", "efficiency_vs_energy.png", "cost_vs_f1.png"):
        assert is_png(out / name), name
        assert f"]({name})" in md


# -- refusals ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case, expected", [
    ("manifest", "dataset (manifest hash)"), ("split", "split"), ("events", "evaluated events"),
    ("labels", "true flavour labels"), ("classes", "class names")])
def test_refuses_reports_of_different_events(case, expected, tmp_path, capsys):
    good = make_run(tmp_path, "a", model_predictions(1.0, 1))
    pred = model_predictions(1.0, 2)
    kwargs = {}
    if case == "manifest":
        kwargs["manifest"] = "sha256:bbbb"
    elif case == "split":
        kwargs["split"] = "val"
    elif case == "events":
        ids = pred.event_ids.copy()
        ids[5, 2] = 10_000                          # same count, one other event
        pred = Predictions(ids, pred.labels, pred.scores, pred.energy_true, pred.energy_pred)
    elif case == "labels":
        labels = pred.labels["flavour"].copy()
        labels[3] = (labels[3] + 1) % 4
        pred = Predictions(pred.event_ids, {"flavour": labels}, pred.scores, pred.energy_true)
    elif case == "classes":
        pred = Predictions(pred.event_ids, pred.labels, pred.scores, pred.energy_true,
                           class_names={"flavour": ["numu_cc", "nue_cc", "nc", "other"]})
    bad = make_run(tmp_path, "b", pred, **kwargs)
    out = tmp_path / "cmp"
    assert main([str(good), str(bad), "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert expected in line and str(good) in line and str(bad) in line
    assert not out.exists()


def test_installed_command_refuses_with_exit_code_2(tmp_path):
    a = make_run(tmp_path, "a", model_predictions(1.0, 1))
    b = make_run(tmp_path, "b", model_predictions(1.0, 2), manifest="sha256:other")
    exe = Path(sys.executable).parent / "gnnu-compare"
    proc = subprocess.run([str(exe), str(a), str(b), "--out", str(tmp_path / "cmp")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "sha256:other" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_inconsistent_report_is_refused(tmp_path, capsys):
    run = make_run(tmp_path, "a", model_predictions(1.0, 1))
    metrics = run / "eval-test" / "metrics.json"
    data = json.loads(metrics.read_text())
    data["accuracy"] = 0.99
    metrics.write_text(json.dumps(data))
    assert main([str(run), "--out", str(tmp_path / "cmp")]) == 2
    assert "accuracy" in one_error_line(capsys)


# -- speed columns -----------------------------------------------------------------------------
def test_speeds_from_different_setups_are_marked_and_force_replaces(three_runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    runs = [str(r) for r in three_runs]
    assert main([*runs, "--out", str(out)]) == 0
    assert (out / "cost_vs_f1.png").exists()
    other = make_run(tmp_path, "gpu", model_predictions(2.0, 4), device="NVIDIA H100", batch_size=64,
                     rate=50000.0)
    capsys.readouterr()
    assert main([*runs, str(other), "--out", str(out)]) == 2
    assert "--force" in one_error_line(capsys)
    assert len(read_csv(out / "comparison.csv")) == 12            # untouched
    assert main([*runs, str(other), "--out", str(out), "--force"]) == 0
    rows = read_csv(out / "comparison.csv")
    assert len(rows) == 16 and {r["speed_comparable"] for r in rows} == {"False"}
    assert {r["speed_device"] for r in rows} == {"cpu", "NVIDIA H100"}
    md = (out / "comparison.md").read_text()
    assert "Not comparable" in md and "(50,000)" in md and "--remeasure" in md
    assert not (out / "cost_vs_f1.png").exists()                 # stale plot removed
    assert is_png(out / "roc.png")


def test_remeasure_options_are_checked_before_any_work(tmp_path, capsys):
    a = make_run(tmp_path, "a", model_predictions(1.0, 1), batch_size=16)
    b = make_run(tmp_path, "b", model_predictions(1.0, 2), batch_size=64)
    out = tmp_path / "cmp"
    assert main([str(a), str(b), "--out", str(out), "--remeasure"]) == 2
    assert "--batch-size" in one_error_line(capsys)
    assert main([str(a), str(b), "--out", str(out), "--batch-size", "8"]) == 2
    assert "only apply with --remeasure" in one_error_line(capsys)
    # the checkpoints of these fake runs do not exist
    assert main([str(a), str(b), "--out", str(out), "--remeasure", "--batch-size", "8"]) == 2
    assert "best.ckpt" in one_error_line(capsys)
    assert not out.exists()


# -- inputs ------------------------------------------------------------------------------------
def test_inputs_run_or_report_directories(tmp_path, capsys):
    a = make_run(tmp_path, "a", model_predictions(1.0, 1))
    # a report outside its run directory: found through the checkpoint it names
    b = make_run(tmp_path, "b", model_predictions(2.0, 2), report="../b-report")
    assert (tmp_path / "b-report" / "metrics.json").exists()
    out = tmp_path / "cmp"
    assert main([str(a / "eval-test"), str(tmp_path / "b-report"), "--out", str(out)]) == 0
    rows = read_csv(out / "comparison.csv")
    assert [r["model"] for r in rows[::4]] == ["a", "b"]
    assert [r["run"] for r in rows[::4]] == [str(a), str(b)]
    assert rows[0]["parameters"] == "1000"

    # a run directory with no report inside, with two reports, and something else
    capsys.readouterr()
    assert main([str(b), "--out", str(tmp_path / "x")]) == 2
    assert "run gnnu-eval --checkpoint" in one_error_line(capsys)
    write_report(a / "eval-val", model_predictions(1.0, 1), split="val", manifest_hash="sha256:aaaa",
                 expected_n_events=N_EVENTS, device="cpu", throughput_events_per_s=1.0, plot_tasks=[])
    assert main([str(a), "--out", str(tmp_path / "x")]) == 2
    assert "several reports (eval-test, eval-val)" in one_error_line(capsys)
    assert main([str(a), "--split", "val", "--out", str(tmp_path / "x")]) == 0
    assert read_csv(tmp_path / "x" / "comparison.csv")[0]["split"] == "val"
    assert main([str(tmp_path), "--out", str(tmp_path / "y")]) == 2
    assert "neither a run directory" in one_error_line(capsys)


def test_labels_and_signal_classes(three_runs, tmp_path, capsys):
    runs = [str(r) for r in three_runs]
    out = tmp_path / "cmp"
    assert main([*runs, "--out", str(out), "--labels", "A,B"]) == 2
    assert "2 label(s) for 3 input(s)" in one_error_line(capsys)
    assert main([*runs, "--out", str(out), "--signal", "nue_cc,dark_matter"]) == 2
    assert "dark_matter" in one_error_line(capsys)
    assert main([runs[0], runs[0], "--out", str(out)]) == 2
    assert "given twice" in one_error_line(capsys)
    assert main([*runs, "--out", str(out), "--labels", "A,B,C", "--signal", "nue_cc"]) == 0
    assert [r["model"] for r in read_csv(out / "comparison.csv")[::4]] == ["A", "B", "C"]
    assert is_png(out / "roc.png")


# -- end to end --------------------------------------------------------------------------------
@pytest.mark.slow
def test_end_to_end_two_trained_gnns(tmp_path, capsys):
    """Real runs: a synthetic dataset, gnnu-train of EdgeConv and GravNet (1 epoch), gnnu-eval of
    each into its run directory, then gnnu-compare with speed re-measured on this CPU."""
    from gnnu.cli.eval import main as eval_main
    from gnnu.train.run import TrainOptions, train
    from test_train import SMALL_PARAMS, TINY, make_dataset

    data = make_dataset(tmp_path / "ds", n_events=160)
    runs = []
    for name in ("edgeconv", "gravnet"):
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(yaml.safe_dump({**TINY, "model": {**TINY["model"], "name": name,
                                                         "params": SMALL_PARAMS[name]}}))
        run = tmp_path / name
        train(TrainOptions(config=str(cfg), data=str(data), out=str(run), epochs=1))
        assert eval_main(["--checkpoint", str(run / "best.ckpt"), "--data", str(data), "--out",
                          str(run / "eval-test"), "--device", "cpu", "--batch-size", "8"]) == 0
        runs.append(run)
    out = tmp_path / "cmp"
    capsys.readouterr()
    assert main([*map(str, runs), "--out", str(out), "--remeasure", "--device", "cpu",
                 "--repeats", "1", "--warmup", "1"]) == 0, capsys.readouterr().err
    rows = read_csv(out / "comparison.csv")
    assert [r["model"] for r in rows[::4]] == ["edgeconv", "gravnet"]
    for run, r in zip(runs, rows[::4]):
        record = json.loads((run / "run.json").read_text())
        metrics = json.loads((run / "eval-test" / "metrics.json").read_text())
        assert int(r["parameters"]) == record["model"]["parameters"] > 0
        assert float(r["flops_per_event"]) == record["model"]["flops_per_event"] > 0
        assert float(r["accuracy"]) == pytest.approx(metrics["accuracy"], rel=1e-12)
        assert r["speed_source"] == "remeasured" and r["speed_device"] == "cpu"
        assert r["speed_batch_size"] == "8" and float(r["events_per_s"]) > 0
        assert int(r["n_events"]) == metrics["n_events"]
    assert "re-measured by gnnu-compare on cpu with batch size 8" in (out / "comparison.md").read_text()
    for name in ("roc.png", "efficiency_vs_energy.png", "cost_vs_f1.png"):
        assert is_png(out / name), name
