"""GraphDataset: split selection, Data layout, normalisation, labels(), PyG DataLoader workers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from conftest import make_event
from gnnu.errors import ConfigError, InputError
from gnnu.events import CLASS_LABELS
from gnnu.graph.build import BuildOptions, build_dataset
from gnnu.graph.dataset import GraphDataset
from gnnu.io.hitfile import write_hits

N_EVENTS = 48


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    from gnnu.detectors import load_detector

    tmp = tmp_path_factory.mktemp("graphs")
    events = [make_event(i, n_hits=20 + (i % 7) * 5) for i in range(N_EVENTS)]
    src = write_hits(tmp / "a.h5", events, load_detector("dune"))
    cfg = tmp / "g.yaml"
    cfg.write_text("name: small\nfeatures: [pos, charge, log_charge, width, view]\n"
                   "edges: [{kind: knn, k: 6}]\nshard_size: 10\n")
    build_dataset(BuildOptions(inputs=(str(src),), out=str(tmp / "ds"), graph=str(cfg),
                               split=(0.5, 0.25, 0.25)))
    return tmp / "ds"


def test_splits_partition_the_dataset(dataset_dir):
    ids = {name: {tuple(e) for e in GraphDataset(dataset_dir, name).labels("event_id")}
           for name in ("train", "val", "test", "all")}
    assert len(ids["all"]) == N_EVENTS
    assert ids["train"] | ids["val"] | ids["test"] == ids["all"]
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    assert all(ids[s] for s in ("train", "val", "test"))


def test_data_layout(dataset_dir):
    ds = GraphDataset(dataset_dir, "all")
    d = ds[3]
    n = d.num_nodes
    assert d.x.shape == (n, 8) and d.x.dtype == torch.float32
    assert ds.feature_names == ["wire_cm", "time_cm", "charge", "log_charge", "width_cm",
                                "view_U", "view_V", "view_Z"] and ds.num_node_features == 8
    assert d.pos.shape == (n, 2) and d.view_id.shape == (n,) and d.view_id.dtype == torch.long
    assert d.edge_index.dtype == torch.long and d.edge_index.shape[0] == 2
    assert int(d.edge_index.max()) < n and int(d.edge_index.min()) >= 0
    for k in CLASS_LABELS + ("n_proton_raw", "mode", "nu_pdg"):
        assert d[k].shape == (1,) and d[k].dtype == torch.long, k
    for k in ("nu_energy", "lep_energy", "inelasticity"):
        assert d[k].shape == (1,) and d[k].dtype == torch.float32, k
    assert d.y is None                       # PyG's target attribute stays free (not the inelasticity)
    np.testing.assert_array_equal(d.inelasticity.numpy(), ds.labels("y")[3:4].astype(np.float32))
    assert d.vertex.shape == (1, 3) and d.event_id.shape == (1, 3)


def test_normalisation_with_manifest_statistics(dataset_dir):
    raw, norm = GraphDataset(dataset_dir, "val", normalize=False), GraphDataset(dataset_dir, "val")
    feats = json.loads((dataset_dir / "manifest.json").read_text())["features"]
    mean = np.array([f["mean"] for f in feats], np.float32)
    std = np.array([f["std"] for f in feats], np.float32)
    use = np.array([f["normalize"] for f in feats])
    assert use.tolist() == [True] * 5 + [False] * 3          # one-hot columns stay 0/1
    for i in range(len(raw)):
        x, xn = raw[i].x.numpy(), norm[i].x.numpy()
        np.testing.assert_allclose(xn[:, use], (x[:, use] - mean[use]) / std[use], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(xn[:, ~use], x[:, ~use])
        np.testing.assert_allclose(x[:, 3], np.log1p(x[:, 2]), rtol=1e-6)


def test_labels_match_items_without_reading_graphs(dataset_dir):
    ds = GraphDataset(dataset_dir, "train")
    labels = ds.labels()
    ds.close()
    assert len(labels["flavour"]) == len(ds) and labels["event_id"].shape == (len(ds), 3)
    for i in (0, len(ds) - 1):
        d = ds[i]
        assert d.flavour.item() == labels["flavour"][i] and d.event_id[0].tolist() == labels["event_id"][i].tolist()
        assert d.nu_energy.item() == pytest.approx(labels["nu_energy"][i], rel=1e-6)
    with pytest.raises(KeyError, match="unknown label"):
        ds.labels("colour")


def test_dataloader_with_workers_returns_every_graph_once(dataset_dir):
    ds = GraphDataset(dataset_dir, "all")
    ds[0]                                                        # parent opens a shard before forking
    seen = []
    for batch in DataLoader(ds, batch_size=5, shuffle=True, num_workers=2):
        assert batch.event_id.shape == (batch.num_graphs, 3) and batch.flavour.shape == (batch.num_graphs,)
        assert batch.x.shape[0] == batch.batch.shape[0]
        seen.extend(tuple(e) for e in batch.event_id.tolist())
    assert sorted(seen) == sorted(tuple(e) for e in ds.labels("event_id"))
    assert len(seen) == N_EVENTS


def test_errors(dataset_dir, tmp_path):
    with pytest.raises(ConfigError, match="unknown split"):
        GraphDataset(dataset_dir, "validation")
    with pytest.raises(InputError, match="no manifest"):
        GraphDataset(tmp_path)
    manifest = json.loads((dataset_dir / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "status": "in_progress"}))
    with pytest.raises(InputError, match="did not finish"):
        GraphDataset(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "schema_version": "2.0"}))
    with pytest.raises(InputError, match="unsupported graph-dataset schema version 2.0"):
        GraphDataset(tmp_path)
