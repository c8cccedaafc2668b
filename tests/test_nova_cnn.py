"""The 2-view NOvA path end to end (issue #5): NOvA-like events from ``gnnu-sim --detector nova``
→ ``gnnu-build`` → ``gnnu-train --config configs/models/nova_cvn_nova.yaml`` (NOvA CVN on the
``nova-cvn`` preset's 2 × 100 × 80 plane-cell maps, rendered on the fly from the dataset's
stored hits) → ``gnnu-eval``, every stage through its command-line entry point; and the
side-by-side picture of a NOvA event (graph and the nova-cvn maps; the wire-plane presets
reported as not drawn).

Toy sizes: 24 events (CC νμ, CC νe, NC, cosmic round-robin), NOvA CVN at width 0.125, one epoch.
"""

from __future__ import annotations

import json
import sys

import h5py
import numpy as np
import pytest
import torch

from conftest import REPO
from gnnu.cli import invoke
from gnnu.config import CONFIG_ROOT
from gnnu.graph.dataset import GraphDataset
from gnnu.images import NOVA_CVN
from gnnu.images.dataset import ImageDataset

N_EVENTS = 24


@pytest.fixture(scope="module")
def nova_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("nova_cnn")
    invoke(["gnnu-sim", "--detector", "nova", "--events", N_EVENTS, "--seed", 5,
            "--flavours", "numu_cc,nue_cc,nc,cosmic", "--out", root / "nova.h5"])
    invoke(["gnnu-build", "--input", root / "nova.h5", "--out", root / "graphs",
            "--split", "0.5,0.25,0.25"])
    return root / "graphs"


@pytest.mark.slow
def test_nova_cvn_trains_and_evaluates_on_nova_events_through_the_cli(nova_dataset, tmp_path, capsys):
    data = nova_dataset
    images = ImageDataset(data, "train", "nova-cvn")
    assert images.shape == NOVA_CVN.shape == (2, 100, 80)
    assert images.feature_names == ["image_XZ", "image_YZ"]

    run = tmp_path / "run"
    capsys.readouterr()
    assert invoke(["gnnu-train", "--config", CONFIG_ROOT / "models" / "nova_cvn_nova.yaml",
                   "--data", data, "--out", run, "--epochs", 1, "--device", "cpu",
                   "--set", "model.params.width=0.125", "--set", "batch_size=4",
                   "--set", "num_workers=0"]) == 0
    out = capsys.readouterr().out
    assert "gnnu-train: complete: nova_cvn" in out and "on cpu" in out, out
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "complete" and record["epochs_completed"] == 1
    assert record["model"]["flops_per_event"] > 0
    meta = torch.load(run / "best.ckpt", map_location="cpu", weights_only=True)["gnnu"]
    assert meta["feature_names"] == ["image_XZ", "image_YZ"] and meta["in_features"] == 2
    assert meta["config"]["model"]["image"]["preset"] == "nova-cvn"
    assert meta["tasks"]["flavour"] == 5                 # NOvA adds the cosmic class (docs/design.md#labels)

    report = tmp_path / "report"
    assert invoke(["gnnu-eval", "--checkpoint", run / "best.ckpt", "--data", data,
                   "--split", "test", "--out", report, "--device", "cpu"]) == 0
    assert "test events on cpu" in capsys.readouterr().out
    test = GraphDataset(data, "test")
    m = json.loads((report / "metrics.json").read_text())
    assert m["n_events"] == len(test) > 0 and m["device"] == "cpu" and m["primary_task"] == "flavour"
    assert m["class_names"] == ["numu_cc", "nue_cc", "nutau_cc", "nc", "cosmic"]
    assert set(m["per_class"]) == set(m["class_names"])
    for values in m["per_class"].values():
        assert {"efficiency", "purity", "f1", "auc", "n"} <= set(values)
    assert sum(map(sum, m["confusion"])) == m["n_events"]
    assert sum(v["n"] for v in m["per_class"].values()) == m["n_events"]
    assert 0.0 <= m["accuracy"] <= 1.0 and m["throughput_events_per_s"] > 0
    with h5py.File(report / "predictions.h5") as f:
        np.testing.assert_array_equal(f["event_id"][:], test.labels("event_id"))
        np.testing.assert_array_equal(f["labels/flavour"][:], test.labels("flavour"))
        scores = f["scores/flavour"][:]
    assert scores.shape == (len(test), 5) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)
    assert list(report.glob("flavour_*.png"))


def test_nova_event_views_show_the_two_nova_cvn_maps(nova_dataset, tmp_path):
    """A NOvA event: the graph of views XZ and YZ above nova-cvn's two (plane × cell) maps;
    dune-cvn and resnet-rgb (three wire-plane views) are named as not drawn, with the reason."""
    from gnnu.images.display import draw_event_views

    views = draw_event_views(nova_dataset, 0, tmp_path / "nova.png")
    assert views.detector == "nova" and views.presets == ("nova-cvn",)
    assert [t.split(":")[0] for t in views.panels] == [
        "graph, view XZ", "graph, view YZ", "nova-cvn map, view XZ", "nova-cvn map, view YZ"]
    maps = ImageDataset(nova_dataset, "all", "nova-cvn").render(0)
    for v in range(2):
        assert views.panels[2 + v].endswith(f": {np.count_nonzero(maps[v])} non-zero pixels")
        assert np.count_nonzero(maps[v]) > 0
    assert [name for name, _ in views.skipped] == ["dune-cvn", "resnet-rgb"]
    assert all("nova event" in why for _, why in views.skipped)
    assert views.path.read_bytes().startswith(b"\x89PNG")


def test_event_views_tool_simulates_a_nova_event(tmp_path, capsys, monkeypatch):
    """``python tools/event_views.py --detector nova`` simulates, builds and draws; it prints
    every panel and the presets it did not draw."""
    monkeypatch.syspath_prepend(str(REPO / "tools"))
    sys.modules.pop("event_views", None)
    import event_views

    png = tmp_path / "views.png"
    assert event_views.main(["--detector", "nova", "--events", "2", "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "drawn: nova-cvn map, view XZ" in out and "drawn: nova-cvn map, view YZ" in out
    assert "not drawn: dune-cvn" in out and "not drawn: resnet-rgb" in out
