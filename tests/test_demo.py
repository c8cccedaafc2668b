"""gnnu-demo = the demo study preset (configs/studies/demo.yaml) at toy size: every stage runs, the
study layout (RESULTS.md, results.json) and the two pictures are written, the closing summary
carries each stage's event counts (reconciled with the files), and bad input or a failing stage
is one error line. The demo runs once (module fixture); the other tests are cheap."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

import gnnu.study.runner
from gnnu.cli.demo import main
from gnnu.errors import InputError
from gnnu.io.hitfile import HitFile
from gnnu.study.config import load_study_config


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(out dir, printed stdout) of one toy demo."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["--events", "60", "--epochs", "1", "--workers", "1", "--device", "cpu",
                   "--out", str(out)])
    assert rc == 0
    return out, buf.getvalue()


@pytest.mark.slow
def test_demo_runs_the_demo_study(demo):
    out, printed = demo
    for name in ("events.h5", "event_display.png", "event_views.png", "graphs/manifest.json",
                 "comparison/comparison.md", "RESULTS.md", "results.json", "learning_curve.png"):
        assert (out / name).is_file(), name
    r = json.loads((out / "results.json").read_text())
    preset = load_study_config("demo")
    assert [m["label"] for m in r["models"]] == [m.key for m in preset.models]
    assert r["study"] == "demo" and r["command"].startswith("gnnu-demo ")
    assert r["config"]["data"]["simulate"]["events"] == 60
    assert r["config"]["graph"]["config"] == preset.graph.config == "knn16_dune_cvn_pixels"
    assert "| edgeconv | gnn |" in (out / "RESULTS.md").read_text()
    assert "gnnu-study: demo done" in printed and "pictures:" in printed


@pytest.mark.slow
def test_demo_summary_counts_every_stage(demo):
    """The closing summary's numbers are those of the files each stage wrote, and reconcile."""
    out, printed = demo
    tail = printed[printed.index("gnnu-study: demo done"):]
    with HitFile(out / "events.h5") as f:
        simulated = len(f)
    assert simulated == 60 and f"{simulated} of 60 events simulated" in tail
    c = json.loads((out / "graphs" / "manifest.json").read_text())["counts"]
    assert c["in"] == simulated == c["out"] + c["skipped"]
    s = c["per_split"]
    assert (f"read {c['in']} events: {c['out']} graphs (train {s['train']}, val {s['val']}, "
            f"test {s['test']}), skipped {c['skipped']}") in tail
    for model in ("edgeconv", "resnet18"):
        run_dir = next((out / "runs" / model).iterdir())
        run = json.loads((run_dir / "run.json").read_text())
        metrics = json.loads((run_dir / "eval-test" / "metrics.json").read_text())
        assert run["dataset"]["events"]["train"]["in_split"] == s["train"]
        assert metrics["n_events"] == s["test"]
        assert (f"trained on {s['train']} of {s['train']} train events (0 left out by the size), "
                f"validated on {run['dataset']['events']['val']['used']} of {s['val']}, tested on "
                f"{s['test']}") in tail
    assert f"2 model(s) on {s['test']} test events" in tail


def test_failing_stage_is_one_error_line(tmp_path, capsys, monkeypatch):
    """A stage's expected failure stops the demo with one stderr line naming the stage and
    carrying the stage's own error; nothing after it runs."""
    def broken(plan):
        raise InputError("the disk said no", plan.out / "events.h5")

    monkeypatch.setattr(gnnu.study.runner, "_simulate", broken)
    out = tmp_path / "demo"
    assert main(["--events", "40", "--workers", "1", "--device", "cpu", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("gnnu-demo: error: stage simulate failed: ") and "the disk said no" in err[0]
    assert "Traceback" not in captured.err and not (out / "graphs").exists()


def test_demo_refuses_unknown_models_and_sizes(tmp_path, capsys):
    out = tmp_path / "demo"
    for args, expected in (
            (["--models", "edgeconv,transformer"], "unknown model(s) transformer of the demo"),
            (["--size", "huge"], "unknown demo size 'huge' (known: small, medium, large)"),
            (["--epochs", "0"], "epochs must be ≥ 1")):
        assert main([*args, "--out", str(out)]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("gnnu-demo: error:") and expected in err[0], err
        assert not out.exists()                            # refused before any work


def test_demo_sizes_and_models_are_study_overrides():
    from gnnu.demo import demo_overrides

    cfg = load_study_config("demo", demo_overrides("medium", models=("edgeconv",)))
    assert cfg.data.simulate.events == 10000 and cfg.training.budget.epochs == 10
    assert [m.key for m in cfg.models] == ["edgeconv"]
    cfg = load_study_config("demo", demo_overrides("small", events=100, epochs=3, workers=1))
    assert (cfg.data.simulate.events, cfg.training.budget.epochs, cfg.data.simulate.workers,
            cfg.graph.workers) == (100, 3, 1, 1)
