"""The CNN baselines through the same pipeline as the GNNs (issue #5): ``gnnu-train`` renders the
dataset's events as pixel maps (the model config's ``image`` section) and trains; ``gnnu-eval``
renders the same split with the checkpoint's own image config and writes the same report files.

Data: the synthetic hit patterns of ``tests/test_train.py`` (a long track, a dense blob, two
short prongs, diffuse low-charge hits for the four flavours), built into a kNN graph dataset;
the CNNs read that very dataset as 3 × 64 × 64 maps (4 wires per column, 24 ticks per bin,
centred on the charge centroid — the synthetic truth vertex is a placeholder). Chance level: 0.25.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from gnnu.cli.eval import main as eval_main
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


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("cnn_synthetic"), n_events=400)


def _config(tmp_path, name: str, **train) -> str:
    params, preset = MODELS[name]
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"name": name, "params": params, "image": {"preset": preset, **IMAGE},
                  "heads": {"hidden": [], "dropout": 0.0, "enabled": ["flavour", "nu_energy"]}},
        "batch_size": 16, "num_workers": 0, "deterministic": True, "optimizer": {"lr": 3e-3},
        **train}))
    return str(cfg)


def test_dune_cvn_learns_through_gnnu_train(dataset, tmp_path):
    """DUNE CVN (small widths), 3 epochs on ~320 synthetic events read as pixel maps: the flavour
    loss falls by ≥ 30 % and the validation accuracy reaches ≥ 0.5 (chance 0.25). (Each CNN's
    learning on its own is tests/test_cnn_models.py::test_learns_toy_track_directions.)"""
    record = train(TrainOptions(config=_config(tmp_path, "dune_cvn", epochs=3), data=str(dataset),
                                out=str(tmp_path / "run")))
    hist = record["history"]
    assert record["status"] == "complete" and len(hist) == 3
    first, last = hist[0]["train/epoch_loss_flavour"], hist[-1]["train/epoch_loss_flavour"]
    assert last < 0.7 * first, (first, last)
    assert max(h["val/flavour_accuracy"] for h in hist) >= 0.5, [h["val/flavour_accuracy"] for h in hist]


@pytest.mark.parametrize("name", list(MODELS))
def test_cnn_trains_and_evaluates_through_the_cli(name, dataset, tmp_path, capsys):
    """One short epoch (48 events) per CNN through gnnu-train, then gnnu-eval on the test split:
    the checkpoint records the rendered views as its inputs, and the report is the GNNs' one
    (DESIGN §10 keys, every test event once, predictions.h5, PNG plots)."""
    run = tmp_path / "run"
    record = train(TrainOptions(config=_config(tmp_path, name, epochs=1, max_events=48,
                                               max_val_events=16),
                                data=str(dataset), out=str(run)))
    assert record["status"] == "complete"
    meta = torch.load(run / "best.ckpt", map_location="cpu", weights_only=True)["gnnu"]
    assert meta["feature_names"] == ["image_U", "image_V", "image_Z"] and meta["in_features"] == 3
    assert meta["config"]["model"]["image"]["size"] == [64, 64]
    assert json.loads((run / "run.json").read_text())["model"]["flops_per_event"] > 0

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
