"""The CNN baselines through the same pipeline as the GNNs (issue #5): ``gnnu-train`` renders the
dataset's events as pixel maps (the model config's ``image`` section) and trains; ``gnnu-eval``
renders the same split with the checkpoint's own image config and writes the same report files.
Both run through their command-line entry points (``gnnu.cli.train.main`` / ``gnnu.cli.eval.main``,
what the console scripts call). ResNet18 fine-tunes from a checkpoint such a run wrote
(``params.weights: PATH``). The 2-view NOvA path is tests/test_nova_cnn.py.

Data: the synthetic hit patterns of ``tests/test_train.py`` (a long track, a dense blob, two
short prongs, diffuse low-charge hits for the four flavours), built into a kNN graph dataset;
the CNNs read that very dataset as 3 × 64 × 64 maps (4 wires per column, 24 ticks per bin,
centred on the charge centroid — the synthetic truth vertex is a placeholder; ResNet18's learning
and fine-tuning tests: 3 × 32 × 32, 8 wires × 48 ticks). Chance level: 0.25.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from gnnu.cli.eval import main as eval_main
from gnnu.cli.train import main as train_main
from gnnu.graph.dataset import GraphDataset
from gnnu.train.run import TrainOptions, train
from test_train import make_dataset

IMAGE = {"size": [64, 64], "wires_per_column": 4, "ticks_per_bin": 24.0, "centring": "centroid"}
#: Small versions of the three CNNs (widths cut so a CPU trains them in seconds).
MODELS = {
    "nova_cvn": ({"width": 0.125}, "dune-cvn"),
    "dune_cvn": ({"stem_channels": 8, "channels": [8, 16, 32], "blocks": [1, 1, 1], "se_ratio": 4},
                 "dune-cvn"),
    "resnet18": ({"weights": "none", "input_norm": "none"}, "resnet-rgb"),
}
#: ResNet18 keeps torchvision's widths: its learning test reads 32 × 32 maps instead.
IMAGE_32 = {"size": [32, 32], "wires_per_column": 8, "ticks_per_bin": 48.0}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("cnn_synthetic"), n_events=400)


def _config(tmp_path, name: str, params: dict | None = None, image: dict | None = None,
            heads: dict | None = None, **train) -> str:
    base, preset = MODELS[name]
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"name": name, "params": {**base, **(params or {})},
                  "image": {"preset": preset, **IMAGE, **(image or {})},
                  "heads": {"hidden": [], "dropout": 0.0, "enabled": ["flavour", "nu_energy"],
                            **(heads or {})}},
        "batch_size": 16, "num_workers": 0, "deterministic": True, "optimizer": {"lr": 3e-3},
        **train}))
    return str(cfg)


def _gnnu_train(*argv) -> dict:
    """gnnu-train's entry point (``main(argv)``, what the console script runs) on the CPU;
    returns the run's run.json."""
    args = [str(a) for a in argv]
    assert train_main([*args, "--device", "cpu"]) == 0
    return json.loads((Path(args[args.index("--out") + 1]) / "run.json").read_text())


#: Learning through gnnu-train: (learning rate, epochs, image overrides). ResNet18's BatchNorm
#: running statistics lag its fast-moving weights on these sparse maps: evaluated in eval mode
#: it stays at chance until the cosine schedule has slowed the weights (epochs 4–5).
LEARN = {"dune_cvn": (3e-3, 3, None), "nova_cvn": (3e-3, 3, None), "resnet18": (1e-3, 5, IMAGE_32)}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LEARN))
def test_cnn_learns_through_gnnu_train(name, dataset, tmp_path, capsys):
    """Each CNN (small widths or maps), a few epochs of gnnu-train on ~320 synthetic events read
    as pixel maps: the flavour loss falls by ≥ 30 % and the validation accuracy (eval mode,
    BatchNorm running statistics) reaches ≥ 0.5 (chance 0.25). (Each CNN's learning on its own
    is tests/test_cnn_models.py::test_learns_toy_track_directions.)"""
    lr, epochs, image = LEARN[name]
    record = _gnnu_train("--config", _config(tmp_path, name, image=image, optimizer={"lr": lr}),
                         "--data", dataset, "--out", tmp_path / "run", "--epochs", epochs)
    assert f"gnnu-train: complete: {name}" in capsys.readouterr().out
    hist = record["history"]
    assert record["status"] == "complete" and len(hist) == epochs
    first, last = hist[0]["train/epoch_loss_flavour"], hist[-1]["train/epoch_loss_flavour"]
    assert last <= 0.7 * first, (first, last)
    assert max(h["val/flavour_accuracy"] for h in hist) >= 0.5, [h["val/flavour_accuracy"] for h in hist]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_cnn_trains_and_evaluates_through_the_cli(name, dataset, tmp_path, capsys):
    """One short epoch (48 events) per CNN through gnnu-train's entry point (--epochs,
    --max-events, --set), then gnnu-eval's on the test split: the checkpoint records the rendered
    views as its inputs, and the report is the GNNs' one (docs/design.md#command-line-contract keys, every test event once,
    predictions.h5, PNG plots)."""
    run = tmp_path / "run"
    record = _gnnu_train("--config", _config(tmp_path, name), "--data", dataset, "--out", run,
                         "--epochs", 1, "--max-events", 48, "--set", "max_val_events=16")
    assert f"gnnu-train: complete: {name}" in capsys.readouterr().out
    assert record["status"] == "complete"
    assert yaml.safe_load((run / "config.yaml").read_text())["max_events"] == 48
    meta = torch.load(run / "best.ckpt", map_location="cpu", weights_only=True)["gnnu"]
    assert meta["feature_names"] == ["image_U", "image_V", "image_Z"] and meta["in_features"] == 3
    assert meta["config"]["model"]["image"]["size"] == [64, 64]
    assert record["model"]["flops_per_event"] > 0

    report = tmp_path / "report"
    assert eval_main(["--checkpoint", str(run / "best.ckpt"), "--data", str(dataset),
                      "--split", "test", "--out", str(report)]) == 0
    m = json.loads((report / "metrics.json").read_text())
    assert m["n_events"] == len(GraphDataset(dataset, "test")) > 0 and m["device"] == "cpu"
    assert set(m["per_class"]) == {"numu_cc", "nue_cc", "nutau_cc", "nc"}
    for values in m["per_class"].values():
        assert {"efficiency", "purity", "f1", "auc", "n"} <= set(values)
    assert sum(map(sum, m["confusion"])) == m["n_events"]
    assert m["throughput_events_per_s"] > 0
    assert (report / "predictions.h5").is_file() and list(report.glob("*.png"))


def _state(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_resnet18_fine_tunes_from_a_gnnu_train_checkpoint(dataset, tmp_path, capsys):
    """weights: PATH with a checkpoint written by a real gnnu-train run: pretrain ResNet18 (flavour
    and energy heads, 32 × 32 maps), then fine-tune from its best.ckpt with only the flavour head
    and ``freeze: layer4`` (conv1 … layer3 frozen). The model gnnu-train builds for the second run
    starts with every body tensor and the flavour head of the pretraining checkpoint; the frozen
    part (BatchNorm statistics too) ends the run unchanged, the trained layer4 has moved."""
    from gnnu.models import create_model
    from gnnu.models.registry import load_model_config

    pre = tmp_path / "pre"
    _gnnu_train("--config", _config(tmp_path, "resnet18", image=IMAGE_32, optimizer={"lr": 1e-3}),
                "--data", dataset, "--out", pre, "--epochs", 1, "--max-events", 96,
                "--set", "max_val_events=32")
    pre_state = {k.removeprefix("model."): v for k, v in _state(pre / "best.ckpt").items()}

    (tmp_path / "tune_cfg").mkdir()
    cfg = _config(tmp_path / "tune_cfg", "resnet18", image=IMAGE_32, optimizer={"lr": 1e-3},
                  params={"weights": str(pre / "best.ckpt"), "freeze": "layer4"},
                  heads={"enabled": ["flavour"]})
    # what gnnu-train builds from this config, before any step: the pretrained weights
    model = create_model(load_model_config(yaml.safe_load(open(cfg))["model"]), in_features=3,
                         tasks={"flavour": 4}, regression=("nu_energy",))
    start = model.state_dict()
    assert set(start) == {k for k in pre_state if "nu_energy" not in k}
    for key, value in start.items():
        assert torch.equal(value, pre_state[key]), key

    tune = tmp_path / "tune"
    record = _gnnu_train("--config", cfg, "--data", dataset, "--out", tune, "--epochs", 1,
                         "--max-events", 48, "--set", "max_val_events=16")
    assert record["status"] == "complete"
    assert record["frozen"] == ["encoder.body.conv1", "encoder.body.bn1", "encoder.body.layer1",
                                "encoder.body.layer2", "encoder.body.layer3"]
    saved = yaml.safe_load((tune / "config.yaml").read_text())["model"]["params"]
    assert saved["weights"] == str(pre / "best.ckpt") and saved["freeze"] == "layer4"
    tuned = {k.removeprefix("model."): v for k, v in _state(tune / "last.ckpt").items()}
    frozen = [k for k in tuned if k.startswith(tuple(p + "." for p in record["frozen"]))]
    assert frozen and all(torch.equal(tuned[k], pre_state[k]) for k in frozen)
    moved = [k for k in tuned if k.startswith("encoder.body.layer4.") and k.endswith("weight")
             and not torch.equal(tuned[k], pre_state[k])]
    assert moved, "layer4 trains"


@pytest.mark.slow
def test_eval_refuses_an_image_checkpoint_on_a_dataset_without_hits(dataset, tmp_path, capsys):
    """A CNN checkpoint evaluated on a schema-1.0 copy of the dataset (no stored hits) is one
    clear error line with exit status 2."""
    import shutil

    params, preset = MODELS["nova_cvn"]
    cfg = tmp_path / "cnn.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"name": "nova_cvn", "params": params, "image": {"preset": preset, **IMAGE},
                  "heads": {"hidden": [], "enabled": ["flavour"]}},
        "epochs": 1, "batch_size": 16, "max_events": 32, "max_val_events": 16}))
    train(TrainOptions(config=str(cfg), data=str(dataset), out=str(tmp_path / "run")))
    old = tmp_path / "old"
    shutil.copytree(dataset, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["schema_version"] = "1.0"
    (old / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert eval_main(["--checkpoint", str(tmp_path / "run" / "best.ckpt"), "--data", str(old),
                      "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stores no raw hits" in err[0], err
