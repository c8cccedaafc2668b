"""gnnu-demo end to end at toy size: every stage runs (the printed command lines are the real
ones), every artefact exists, and the closing comparison covers the two models on the same
test events."""

from __future__ import annotations

import csv
import json

from gnnu.cli.demo import main
from gnnu.graph.dataset import GraphDataset


def test_demo_runs_every_stage(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["--events", "48", "--epochs", "1", "--workers", "1", "--device", "cpu",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
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


def test_demo_refuses_unknown_models_and_sizes(tmp_path, capsys):
    assert main(["--models", "edgeconv,transformer", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown model config(s) transformer" in err[0], err
    assert main(["--epochs", "0", "--out", str(tmp_path)]) == 2
    assert "--epochs must be ≥ 1" in capsys.readouterr().err
