"""gnnu-demo end to end at toy size: every stage runs (the printed command lines are the real
ones), every artefact exists, the closing comparison covers the two models on the same test
events, and the closing summary carries each stage's event counts (reconciled with the files)
and lists only the comparison files written. A failing stage is one error line naming the
stage. The demo runs once (module fixture); the other tests are cheap."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import re
import shutil

import pytest

import gnnu.demo
from gnnu.cli.demo import main, summary
from gnnu.graph.dataset import GraphDataset
from gnnu.io.hitfile import HitFile


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(out dir, printed stdout, the DemoResult behind the printed summary) of one toy demo."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    results = []
    real = gnnu.demo.run_demo

    def spy(*args, **kwargs):
        results.append(real(*args, **kwargs))
        return results[-1]

    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(buf):
        mp.setattr(gnnu.demo, "run_demo", spy)
        rc = main(["--events", "48", "--epochs", "1", "--workers", "1", "--device", "cpu",
                   "--out", str(out)])
    assert rc == 0
    return out, buf.getvalue(), results[0]


@pytest.mark.slow
def test_demo_runs_every_stage(demo):
    out, printed, _ = demo
    for command in ("$ gnnu-sim", "$ gnnu-build", "$ gnnu-build --inspect", "$ gnnu-train",
                    "$ gnnu-eval", "$ gnnu-compare"):
        assert command in printed, command
    assert printed.count("$ gnnu-train") == 2 and "| edgeconv |" in printed and "| resnet18 |" in printed
    for name in ("events.h5", "event_display.png", "event_views.png", "graphs/manifest.json",
                 "comparison/comparison.md", "comparison/roc.png"):
        assert (out / name).is_file(), name
    n_test = len(GraphDataset(out / "graphs", "test"))
    for model in ("edgeconv", "resnet18"):
        assert (out / "runs" / model / "best.ckpt").is_file()
        metrics = json.loads((out / "runs" / model / "eval-test" / "metrics.json").read_text())
        assert metrics["n_events"] == n_test
    with open(out / "comparison" / "comparison.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["model"] for r in rows} == {"edgeconv", "resnet18"}
    assert {r["speed_source"] for r in rows} == {"remeasured"}
    assert all(int(r["n_events"]) == n_test for r in rows)
    assert "gnnu-demo: done" in printed


@pytest.mark.slow
def test_demo_summary_counts_every_stage(demo):
    """The closing summary's numbers are those of the files each stage wrote, and reconcile."""
    out, printed, res = demo
    tail = printed[printed.index("gnnu-demo: done"):]
    assert "note: event accounting" not in tail
    with HitFile(out / "events.h5") as f:
        simulated = len(f)
    assert f"({simulated} events simulated)" in tail and simulated == 48
    c = json.loads((out / "graphs" / "manifest.json").read_text())["counts"]
    m = re.search(r"graph dataset +\S+ \(read (\d+) events: wrote (\d+) graphs \(train (\d+), "
                  r"val (\d+), test (\d+)\), skipped (\d+)\)", tail)
    assert m, tail
    read, wrote, n_train, n_val, n_test, skipped = map(int, m.groups())
    assert read == simulated == wrote + skipped and wrote == n_train + n_val + n_test
    assert (read, wrote, skipped) == (c["in"], c["out"], c["skipped"])
    assert {"train": n_train, "val": n_val, "test": n_test} == c["per_split"]
    for model in ("edgeconv", "resnet18"):
        m = re.search(rf"{model} +\S+: trained on (\d+) of (\d+) train events, validated on (\d+) "
                      rf"of (\d+) val events; evaluated (\d+) test events", tail)
        assert m, (model, tail)
        run = json.loads((out / "runs" / model / "run.json").read_text())
        metrics = json.loads((out / "runs" / model / "eval-test" / "metrics.json").read_text())
        assert tuple(map(int, m.groups())) == (run["dataset"]["n_train"], n_train,
                                               run["dataset"]["n_val"], n_val, metrics["n_events"])
        assert metrics["n_events"] == n_test
    assert f"({n_test} test events per model)" in tail
    assert res.counts["compared"] == [n_test]


@pytest.mark.slow
def test_demo_lists_only_the_comparison_files_written(demo, tmp_path):
    out, printed, res = demo
    line = next(ln for ln in printed.splitlines() if ln.lstrip().startswith("comparison "))
    listed = line.split(": ", 1)[1].split(", ")
    assert listed == gnnu.demo.comparison_files(out / "comparison") == res.comparison_files
    assert all((out / "comparison" / name).is_file() for name in listed)
    assert "cost_vs_f1.png" in listed                       # remeasured: speeds comparable
    # a comparison without the cost plot (not comparable speeds): not listed
    copy = tmp_path / "comparison"
    shutil.copytree(out / "comparison", copy)
    (copy / "cost_vs_f1.png").unlink()
    files = gnnu.demo.comparison_files(copy)
    assert files == [f for f in res.comparison_files if f != "cost_vs_f1.png"]
    text = summary(dataclasses.replace(res, comparison=copy, comparison_files=files))
    assert "cost_vs_f1.png" not in text and "roc.png" in text


def test_failing_stage_is_one_error_line(tmp_path, capsys):
    """gnnu-sim refuses to overwrite a file it did not write: the demo stops there with one
    stderr line that names the stage and carries gnnu-sim's own error."""
    out = tmp_path / "demo"
    out.mkdir()
    (out / "events.h5").write_text("mine")
    assert main(["--events", "8", "--workers", "1", "--device", "cpu", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("gnnu-demo: error: stage gnnu-sim failed: ") and "events.h5" in err[0]
    assert "--force" in err[0] and "Traceback" not in captured.err
    assert "$ gnnu-sim" in captured.out and "$ gnnu-build" not in captured.out
    assert (out / "events.h5").read_text() == "mine"


def test_stage_error_names_the_stage_and_prints_nothing_itself(tmp_path, capsys):
    with pytest.raises(gnnu.demo.StageFailed) as info:
        gnnu.demo._run(["gnnu-train", "--config", tmp_path / "nowhere.yaml", "--data", tmp_path,
                        "--out", tmp_path / "run"], print, "gnnu-train (edgeconv)")
    assert str(info.value).startswith("stage gnnu-train (edgeconv) failed: ")
    assert "nowhere.yaml" in str(info.value) and info.value.exit_code == 2
    assert capsys.readouterr().err == ""                    # the demo prints the one line


def test_demo_refuses_unknown_models_and_sizes(tmp_path, capsys):
    out = tmp_path / "demo"
    for args, expected in (
            (["--models", "edgeconv,transformer"], "unknown model config(s) transformer"),
            (["--size", "huge"], "unknown demo size 'huge' (known: small, medium, large)"),
            (["--epochs", "0"], "--epochs must be ≥ 1")):
        assert main([*args, "--out", str(out)]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("gnnu-demo: error:") and expected in err[0], err
        assert not out.exists()                            # refused before any work
