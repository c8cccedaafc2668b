"""tools/tl_study.py: the transfer-learning protocol of Chappell & Whitehead (Eur. Phys. J. C 82
(2022) 1099) — pretrained vs scratch at several training-set sizes, seeded repeats, a frozen-depth
scan — run end to end on the synthetic flavour-shaped dataset of test_train.py with a tiny
EdgeConv ("pretrained" = a gnnu checkpoint trained on the full training split)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import yaml

from test_train import TINY, make_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import tl_study  # noqa: E402

from gnnu.train.run import TrainOptions, train  # noqa: E402


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("tl")
    data = make_dataset(root, n_events=400)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "deterministic": False}))
    train(TrainOptions(config=str(config), out=str(root / "pretrain"), data=str(data), epochs=4))
    argv = ["--config", str(config), "--data", str(data), "--out", str(root / "study"),
            "--sizes", "24,96", "--repeats", "2", "--epochs", "2", "--device", "cpu",
            "--init-from", str(root / "pretrain" / "best.ckpt"),
            "--freeze-key", "freeze", "--freeze-values", "0,2", "--scan-size", "24"]
    assert tl_study.main(argv) == 0
    return root / "study", argv


def _rows(study_dir: Path) -> list[dict]:
    with open(study_dir / "tl_study.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_planned_run_is_in_the_csv(study):
    rows = _rows(study[0])
    # 2 sizes × 2 repeats × 2 arms, plus 2 freeze values × 2 repeats at N = 24
    assert len(rows) == 12
    main = [(r["arm"], int(r["n_train"]), int(r["seed"])) for r in rows if r["freeze"] == ""]
    assert sorted(main) == sorted((a, n, s) for a in ("pretrained", "scratch")
                                  for n in (24, 96) for s in (0, 1))
    assert sorted((r["freeze"], r["seed"]) for r in rows if r["freeze"]) == \
        [("0", "0"), ("0", "1"), ("2", "0"), ("2", "1")]
    for r in rows:                                  # the CSV reports each run's own metrics.json
        m = json.loads((Path(r["run_dir"]) / "eval-test" / "metrics.json").read_text())
        assert float(r["macro_f1"]) == pytest.approx(m["macro_f1"])
        assert 0.0 <= float(r["macro_f1"]) <= 1.0


def test_arms_differ_only_in_the_initialisation(study):
    rows = _rows(study[0])
    for r in rows:
        run = json.loads((Path(r["run_dir"]) / "run.json").read_text())
        assert run["dataset"]["n_train"] == int(r["n_train"])
        if r["arm"] == "scratch":
            assert run["init_from"] is None
        else:
            assert run["init_from"]["loaded"] > 0
        frozen = run.get("frozen") or []
        assert len(frozen) == (int(r["freeze"]) if r["freeze"] else 0)


def test_pretraining_helps_at_small_size(study):
    """The protocol's expected outcome: with 24 training events and 2 epochs a network started
    from a checkpoint that already separates the four patterns beats one started at random."""
    rows = [r for r in _rows(study[0]) if r["freeze"] == "" and r["n_train"] == "24"]
    f1 = {arm: sum(float(r["macro_f1"]) for r in rows if r["arm"] == arm) / 2
          for arm in ("pretrained", "scratch")}
    assert f1["pretrained"] > f1["scratch"] + 0.1, f1


def test_figures_written_and_finished_runs_reused(study, capsys):
    study_dir, argv = study
    for name in ("tl_study.png", "freeze_scan.png"):
        assert (study_dir / name).stat().st_size > 5000
    before = {p: p.stat().st_mtime_ns for p in study_dir.glob("runs/*/run.json")}
    assert tl_study.main(argv) == 0                     # everything already evaluated
    assert {p: p.stat().st_mtime_ns for p in study_dir.glob("runs/*/run.json")} == before


def test_sizes_larger_than_the_training_split_are_refused(study, capsys):
    study_dir, argv = study
    bad = [a if a != "24,96" else "24,100000" for a in argv]
    assert tl_study.main(bad) == 2
    assert "100000" in capsys.readouterr().err


def test_imagenet_resnet18_protocol(tmp_path, monkeypatch):
    """The ResNet18 form of the study (the paper's own): "pretrained" = torchvision's ImageNet
    file found in the torch hub cache (here a file in torchvision's format the test writes under
    $TORCH_HOME), "scratch" = weights: none, and a freeze scan over the ResNet18 levels. Small
    images (64 × 64) keep it quick; the run records say which initialisation each arm had and
    how much of the body each freeze level left training."""
    import torch
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(123)      # torchvision's format and initialisation scale, other values
    torch.save(torchvision.models.resnet18(weights=None).state_dict(),
               tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    data = make_dataset(tmp_path, n_events=120)
    config = tmp_path / "resnet.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "resnet18", "params": {"weights": "imagenet"},
                  "image": {"preset": "resnet-rgb", "size": [64, 64], "wires_per_column": 4,
                            "ticks_per_bin": 24.0, "centring": "centroid"},
                  "heads": {"hidden": [], "enabled": ["flavour"]}},
        "batch_size": 16, "num_workers": 0}))
    argv = ["--config", str(config), "--data", str(data), "--out", str(tmp_path / "study"),
            "--sizes", "16,32", "--repeats", "1", "--epochs", "1", "--device", "cpu",
            "--pretrained-set", "model.params.weights=imagenet",
            "--scratch-set", "model.params.weights=none",
            "--freeze-key", "model.params.freeze", "--freeze-values", "head-only,none",
            "--scan-size", "16"]
    assert tl_study.main(argv) == 0
    rows = _rows(tmp_path / "study")
    assert len(rows) == 2 * 2 + 2
    for r in rows:
        run = json.loads((Path(r["run_dir"]) / "run.json").read_text())
        cfg = yaml.safe_load((Path(r["run_dir"]) / "config.yaml").read_text())
        assert cfg["model"]["params"]["weights"] == ("none" if r["arm"] == "scratch" else "imagenet")
        if r["freeze"]:
            assert cfg["model"]["params"]["freeze"] == r["freeze"]
            frozen = run.get("frozen") or []
            assert (frozen == ["encoder.body"]) == (r["freeze"] == "head-only"), frozen
    assert (tmp_path / "study" / "tl_study.png").is_file()
    assert (tmp_path / "study" / "freeze_scan.png").is_file()
