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

pytestmark = pytest.mark.slow          # a whole study, end to end


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


# -- reuse only with the same settings; one error line for bad input -----------------------------
def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tl_study: error: "), err
    assert "Traceback" not in err[0]
    return err[0]


def _swap(argv: list[str], flag: str, value: str) -> list[str]:
    i = argv.index(flag)
    return [*argv[:i + 1], value, *argv[i + 2:]]


def test_finished_runs_record_their_settings(study):
    study_dir, argv = study
    from gnnu.train.data import manifest_hash

    data, ckpt = argv[argv.index("--data") + 1], argv[argv.index("--init-from") + 1]
    for r in _rows(study_dir):
        s = json.loads((Path(r["run_dir"]) / tl_study.SETTINGS_FILE).read_text())
        run_cfg = yaml.safe_load((Path(r["run_dir"]) / "config.yaml").read_text())
        run_cfg.pop("data")
        assert s["config"] == run_cfg                   # what gnnu-train actually trained with
        assert s["epochs"] == 2 and s["set"] == [] and s["manifest_hash"] == manifest_hash(data)
        assert (s["init_from"] is None) == (r["arm"] == "scratch")
        if s["init_from"]:
            assert s["init_from"] == ckpt and s["init_from_sha256"] == tl_study._sha256(ckpt)


@pytest.mark.parametrize("change", ["epochs", "set", "init-from file", "dataset", "no record"])
def test_reuse_with_other_settings_is_refused(change, study, tmp_path, capsys):
    """A study whose settings differ from the finished runs in its --out is refused before any
    work, with one line naming a run and what differs; the same settings (the same checkpoint
    bytes at another path) reuse every run."""
    import shutil

    study_dir, argv = study
    before = {p: p.stat().st_mtime_ns for p in study_dir.glob("runs/*/*")}
    ckpt = argv[argv.index("--init-from") + 1]
    if change == "epochs":
        bad, expected = _swap(argv, "--epochs", "3"), "config.epochs, epochs differ"
    elif change == "set":
        bad, expected = [*argv, "--set", "optimizer.lr=0.02"], "config.optimizer.lr, set differ"
    elif change == "init-from file":
        other = tmp_path / "other.ckpt"                 # another checkpoint …
        shutil.copy(Path(_rows(study_dir)[0]["run_dir"]) / "best.ckpt", other)
        bad, expected = _swap(argv, "--init-from", str(other)), "init_from_sha256 differ"
        same = tmp_path / "same.ckpt"                   # … and the same one elsewhere: reused
        shutil.copy(ckpt, same)
        assert tl_study.main(_swap(argv, "--init-from", str(same))) == 0
        assert "runs →" in capsys.readouterr().out
    elif change == "dataset":
        data = tmp_path / "data"                        # same events, other manifest bytes
        shutil.copytree(argv[argv.index("--data") + 1], data)
        manifest = json.loads((data / "manifest.json").read_text())
        (data / "manifest.json").write_text(json.dumps(manifest, indent=1))
        bad, expected = _swap(argv, "--data", str(data)), "manifest_hash differ"
    else:
        copy = tmp_path / "study"                       # a finished run of an older tl_study
        shutil.copytree(study_dir, copy)
        (copy / "runs" / "scratch-n96-r1" / tl_study.SETTINGS_FILE).unlink()
        bad, expected = _swap(argv, "--out", str(copy)), "scratch-n96-r1: a finished run without"
    assert tl_study.main(bad) == 2
    line = _one_error_line(capsys)
    assert expected in line and "use another --out" in line, line
    assert "/runs/" in line
    assert {p: p.stat().st_mtime_ns for p in study_dir.glob("runs/*/*")} == before


@pytest.mark.parametrize("bad", ["missing dir", "not a dataset", "missing checkpoint", "bad config"])
def test_bad_inputs_are_one_error_line(bad, study, tmp_path, capsys):
    _, argv = study
    out = tmp_path / "out"
    argv = _swap(argv, "--out", str(out))
    if bad == "missing dir":
        argv, expected = _swap(argv, "--data", str(tmp_path / "nowhere")), "nowhere"
    elif bad == "not a dataset":
        (tmp_path / "empty").mkdir()
        argv, expected = _swap(argv, "--data", str(tmp_path / "empty")), "not a gnnu graph dataset"
    elif bad == "missing checkpoint":
        argv, expected = _swap(argv, "--init-from", str(tmp_path / "no.ckpt")), "no.ckpt"
    else:
        (tmp_path / "bad.yaml").write_text("model: edgeconv\nepochz: 3\n")
        argv, expected = _swap(argv, "--config", str(tmp_path / "bad.yaml")), "epochz"
    assert tl_study.main(argv) == 2
    assert expected in _one_error_line(capsys)
    assert not out.exists()


def test_help_says_what_scratch_means(capsys):
    with pytest.raises(SystemExit):
        tl_study.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Kaiming-uniform" in text and "ResNet18" in text and "Kaiming-normal" in text
    assert "Kaiming-uniform" in tl_study.__doc__ and "tl_settings.json" in tl_study.__doc__
