"""A third detector kind needs no change inside gnnu (docs/design.md#adding-a-detector).

The toy pad TPC of ``tests/toy`` is its geometry file and its readout file, one registry line
each. Through the public command lines it is simulated (gnnu-sim, with its event display), built
into graphs (gnnu-build) and read back; image rendering, for which it registers no layout, is
refused with one line naming that."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import REPO
from gnnu.cli import invoke
from gnnu.config import read_yaml
from gnnu.detectors import DETECTOR_KINDS, load_detector, positions
from gnnu.errors import ConfigError
from gnnu.graph.dataset import GraphDataset
from gnnu.io.hitfile import HitFile
from gnnu.pixelmap import PixelMapPreset
from gnnu.sim.records import READOUTS

import toy.geometry  # noqa: F401  (registers the kind "toypad")
import toy.readout  # noqa: F401  (registers its readout)


@pytest.fixture(scope="module")
def toy_yaml(tmp_path_factory):
    dune = read_yaml(REPO / "configs" / "detectors" / "dune.yaml")
    cfg = {"name": "toypad", "kind": "toypad", "description": "toy pixel-pad TPC (tests)",
           "pad_pitch_cm": 2.0, "drift_velocity_cm_per_us": 0.16, "threshold_mev": 0.2,
           "active_volume": {"x": [0.0, 200.0], "y": [-150.0, 150.0], "z": [0.0, 500.0]},
           "fiducial_margin_cm": 30.0,
           **{k: dune[k] for k in ("material", "beam", "visibility", "transport")}}
    path = tmp_path_factory.mktemp("toy") / "toypad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def simulated(toy_yaml, tmp_path_factory):
    out = tmp_path_factory.mktemp("toy-run")
    invoke(f"gnnu-sim --detector {toy_yaml} --events 12 --seed 3 --out {out / 'toy.h5'} "
           f"--display {out / 'toy.png'}")
    return out


def test_registered_from_its_own_files_only():
    assert DETECTOR_KINDS["toypad"].geometry is toy.geometry.PadTPC
    assert READOUTS["toypad"] is toy.readout.digitize
    assert "toypad" not in read_yaml(REPO / "configs" / "detectors" / "dune.yaml").values()


def test_simulated_hits_lie_on_the_pads_of_their_deposits(simulated, toy_yaml):
    det = load_detector(toy_yaml)
    with HitFile(simulated / "toy.h5") as f:
        assert f.detector.kind == "toypad" and len(f) == 12
        events = [f.read(i) for i in range(len(f))]
    n_hits = [len(e.hits) for e in events]
    assert sum(n_hits) > 100 and min(n_hits) >= 0
    for ev in events:
        h = ev.hits
        pos = positions(det, h)                                   # pad centres (z, y), cm
        truth = np.stack([h["z"], h["y"]], axis=1)                # charge-weighted deposit position
        assert np.all(np.abs(pos - truth) <= det.config.pad_pitch_cm / 2 + 1e-3)
        assert np.all(h["charge"] >= det.config.threshold_mev) and np.all(h["view"] == 0)
    assert (simulated / "toy.png").stat().st_size > 10_000           # the event display


def test_built_into_graphs_with_positions_of_the_pads(simulated, toy_yaml, tmp_path):
    invoke(f"gnnu-build --input {simulated / 'toy.h5'} --out {tmp_path / 'graphs'}")
    manifest = json.loads((tmp_path / "graphs" / "manifest.json").read_text())
    assert manifest["detector"]["name"] == "toypad" and manifest["counts"]["in"] == 12
    names = [f["name"] for f in manifest["features"]]
    assert names == ["wire_cm", "time_cm", "charge", "width_us", "view_ZY"]   # width: no drift axis
    ds = GraphDataset(tmp_path / "graphs", "all", normalize=False)
    det = load_detector(toy_yaml)
    with HitFile(simulated / "toy.h5") as f:
        for i in range(len(ds)):
            g = ds[i]
            hits = f.read(int(g.event_id.view(-1)[2])).hits     # event id (seed, 0, row)
            n = len(hits)
            assert g.x.shape[0] == n and g.edge_index.shape[1] == min(16, n - 1) * n   # kNN, k = 16
            np.testing.assert_array_equal(g.pos.numpy(), positions(det, hits))


def test_rendering_without_an_image_layout_is_one_clear_error(simulated, tmp_path):
    from gnnu.images.dataset import ImageDataset

    invoke(f"gnnu-build --input {simulated / 'toy.h5'} --out {tmp_path / 'graphs'}")
    one_view = PixelMapPreset("one-view", views=(0,), n_wires=64, n_time_bins=64, ticks_per_bin=1.0)
    with pytest.raises(ConfigError, match="detector kind 'toypad' has no image layout"):
        ImageDataset(tmp_path / "graphs", "all", one_view)
