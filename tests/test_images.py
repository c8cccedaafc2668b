"""The image adapter on datasets (issue #5): ImageDataset shares ids, labels and split with the
graph dataset it comes from; rendering stored hits equals rendering the events themselves; DUNE
CVN's released events come back as the released maps bit for bit; ``pixelize`` builds put
simulated events into exactly that representation; clear errors for presets that do not fit.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from conftest import DUNE_CVN_SAMPLE
from gnnu.errors import ConfigError, InputError
from gnnu.events import batch_key
from gnnu.graph.build import BuildOptions, build_dataset
from gnnu.graph.dataset import GraphDataset
from gnnu.images import DUNE_CVN, RESNET_RGB, ImageConfig, render, vertex_pixels
from gnnu.images.dataset import ImageDataset, collate_images
from gnnu.io.hitfile import write_hits
from gnnu.sim.simulate import NEUTRINO_FLAVOURS, simulate_event
from gnnu.train.data import make_loader

N_SIM = 12


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, dune):
    """12 simulated DUNE-like events (all four flavours) → hit file → kNN graph dataset."""
    root = tmp_path_factory.mktemp("images")
    events = [simulate_event(dune, i, NEUTRINO_FLAVOURS[i % 4], seed=3) for i in range(N_SIM)]
    hits = write_hits(root / "events.h5", events, dune)
    build_dataset(BuildOptions(inputs=(str(hits),), out=str(root / "graphs"), split=(0.5, 0.25, 0.25)))
    return root, {tuple(int(v) for v in e.event_id): e for e in events}


@pytest.mark.parametrize("split", ["train", "val", "test", "all"])
def test_same_events_labels_and_order_as_the_graph_dataset(simulated, split):
    root, _ = simulated
    graphs = GraphDataset(root / "graphs", split)
    images = ImageDataset(root / "graphs", split, "dune-cvn")
    assert len(images) == len(graphs)
    if split == "all":
        assert len(graphs) == N_SIM
    # every label field the graph dataset has (truth of gnnu.events.Truth, raw counts, event id)
    graph_labels, image_labels = graphs.labels(), images.labels()
    assert set(image_labels) == set(graph_labels)
    assert {"flavour", "interaction", "is_antinu", "n_proton", "n_charged_pion", "n_neutral_pion",
            "n_neutron", "n_proton_raw", "nu_energy", "lep_energy", "y", "nu_pdg", "mode",
            "vtx_x", "event_id"} <= set(graph_labels)
    for key, values in graph_labels.items():
        np.testing.assert_array_equal(image_labels[key], values, err_msg=key)
    # per item: the same keys (vtx_* as one vertex [1, 3]), dtypes and values as a graph item
    item_keys = {batch_key(k) for k in graph_labels if not k.startswith("vtx_")} | {"vertex"}
    for k in range(len(graphs)):
        g, im = graphs[k], images[k]
        assert set(im) == item_keys | {"image"}
        for key in item_keys:
            assert im[key].dtype == g[key].dtype and torch.equal(im[key], g[key]), key
        assert im["image"].dtype == torch.uint8 and tuple(im["image"].shape) == DUNE_CVN.shape


def test_rendering_stored_hits_equals_rendering_the_event(simulated, dune):
    """The dataset stores each node's hit as read (/nodes/hit): rendering those equals rendering
    the simulated event with the same truth-vertex centring, for dune-cvn and resnet-rgb."""
    root, events = simulated
    for preset in (DUNE_CVN, RESNET_RGB):
        ds = ImageDataset(root / "graphs", "all", preset.name)
        ids = ds.labels("event_id")
        for k in range(len(ds)):
            ev = events[tuple(int(v) for v in ids[k])]
            t = ev.truth
            vtx = vertex_pixels(dune, [(t.vtx_x, t.vtx_y, t.vtx_z)], preset)[0]
            want = render(ev.hits, preset, vertex_pixel=vtx)
            got = ds[k]["image"].numpy()
            np.testing.assert_array_equal(got, want)
            assert got.any(), "a simulated event leaves charge in its map"


def test_image_overrides_and_centroid_centring(simulated):
    root, events = simulated
    cfg = ImageConfig(preset="dune-cvn", size=(64, 48), wires_per_column=4, ticks_per_bin=32.0,
                      centring="centroid")
    ds = ImageDataset(root / "graphs", "all", cfg)
    assert ds.shape == (3, 64, 48)
    ev = events[tuple(int(v) for v in ds.labels("event_id")[0])]
    np.testing.assert_array_equal(ds[0]["image"].numpy(), render(ev.hits, cfg.preset_object()))


def test_collate_and_loader(simulated):
    root, _ = simulated
    ds = ImageDataset(root / "graphs", "all", "resnet-rgb")
    batch = next(iter(make_loader(ds, 5, shuffle=False)))
    assert list(batch)[0] == "image"
    assert batch["image"].shape == (5, 3, 224, 224) and batch["image"].dtype == torch.uint8
    assert batch["flavour"].shape == (5,) and batch["event_id"].shape == (5, 3)
    assert batch["vertex"].shape == (5, 3)
    one = collate_images([ds[0], ds[1]])
    assert torch.equal(one["image"][1], ds[1]["image"])


def test_presets_that_do_not_fit_are_refused(simulated):
    root, _ = simulated
    with pytest.raises(ConfigError, match="nova-cvn.*plane-cell.*wire-plane"):
        ImageDataset(root / "graphs", "train", "nova-cvn")
    with pytest.raises(ValueError, match="unknown pixel-map preset 'cvn'"):
        ImageDataset(root / "graphs", "train", "cvn")


def test_schema_1_0_dataset_is_refused_with_rebuild_advice(simulated, tmp_path):
    """Datasets written before /nodes/hit existed load as graphs but not as images."""
    import json
    import shutil

    root, _ = simulated
    old = tmp_path / "old"
    shutil.copytree(root / "graphs", old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["schema_version"] = "1.0"
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert len(GraphDataset(old, "all")) == N_SIM
    with pytest.raises(InputError, match="schema 1.0 stores no raw hits.*rebuild"):
        ImageDataset(old, "all", "dune-cvn")


# -- DUNE CVN's released events ---------------------------------------------------------------------
@pytest.mark.skipif(not DUNE_CVN_SAMPLE.exists(), reason="DUNE CVN sample not present")
def test_released_dune_cvn_events_render_back_to_the_released_maps(tmp_path):
    """Pixel maps → one node per non-zero pixel (gnnu-build --format dune-cvn) → ImageDataset with
    the dune-cvn preset gives the 20 released maps back exactly (the map's own frame)."""
    build_dataset(BuildOptions(inputs=(str(DUNE_CVN_SAMPLE),), format="dune-cvn",
                               out=str(tmp_path / "cvn"), split=(0.5, 0.25, 0.25)))
    ds = ImageDataset(tmp_path / "cvn", "all", "dune-cvn")
    assert len(ds) == 20
    for k in range(len(ds)):
        n = int(ds.labels("event_id")[k][2])
        real = np.frombuffer(zlib.decompress((DUNE_CVN_SAMPLE / f"event{n}.gz").read_bytes()),
                             np.uint8).reshape(3, 500, 500)
        np.testing.assert_array_equal(ds[k]["image"].numpy(), real)


def test_pixelize_builds_nodes_from_the_rendered_map(simulated, tmp_path, dune):
    """configs/graphs/knn16_dune_cvn_pixels.yaml: each simulated event is rendered with dune-cvn
    around its truth vertex and becomes one node per non-zero pixel, in the released maps' units
    (column, time bin, pixel value), so its image is the rendering and its node count the map's
    non-zero pixels."""
    root, events = simulated
    build_dataset(BuildOptions(inputs=(str(root / "events.h5"),), graph="knn16_dune_cvn_pixels",
                               out=str(tmp_path / "px"), split=(0.5, 0.25, 0.25)))
    graphs = GraphDataset(tmp_path / "px", "all")
    images = ImageDataset(tmp_path / "px", "all", "dune-cvn")
    assert graphs.manifest["detector"]["config"]["kind"] == "pixelmap"
    for k in range(len(graphs)):
        ev = events[tuple(int(v) for v in graphs.labels("event_id")[k])]
        t = ev.truth
        want = render(ev.hits, DUNE_CVN,
                      vertex_pixel=vertex_pixels(dune, [(t.vtx_x, t.vtx_y, t.vtx_z)], DUNE_CVN)[0])
        assert graphs[k].num_nodes == np.count_nonzero(want)
        np.testing.assert_array_equal(images[k]["image"].numpy(), want)
        f, a, b = graphs.index.nodes(k)
        hit = f["nodes/hit"][a:b]
        assert hit[:, 2].min() >= 1 and hit[:, 2].max() <= 255      # pixel values
        assert hit[:, 0].max() < 500 and hit[:, 1].max() < 500      # column, time bin


def test_pixelize_refuses_3d_features(tmp_path):
    from gnnu.graph.config import load_graph_config

    cfg = tmp_path / "bad.yaml"
    cfg.write_text("name: bad\nfeatures: [pos, charge, xyz]\nedges: [{kind: knn, k: 4}]\n"
                   "pixelize: dune-cvn\n")
    with pytest.raises(ConfigError, match="pixelize: pixel hits have no true 3-D positions"):
        load_graph_config(cfg)
    with pytest.raises(ConfigError, match="pixelize.*nova-cvn"):
        cfg.write_text("name: bad\nfeatures: [pos, charge]\nedges: [{kind: knn, k: 4}]\n"
                       "pixelize: nova-cvn\n")
        load_graph_config(cfg)


def test_stored_hit_table_is_sparse(simulated):
    """Stored per hit: 4 float32 + the view byte — far below a dense 3 × 500 × 500 uint8 map."""
    root, _ = simulated
    ds = ImageDataset(root / "graphs", "all", "dune-cvn")
    f, a, b = ds.index.nodes(0)
    assert f["nodes/hit"].dtype == np.float32 and f["nodes/hit"].shape[1] == 4
    per_event = 17 * (b - a)
    assert per_event < int(np.prod(DUNE_CVN.shape)) / 5


def test_graph_and_maps_picture(simulated, tmp_path):
    """tools/event_views.py's drawing of a DUNE event: the graph of each of the three views, then
    dune-cvn's three view maps and resnet-rgb's three channels plus its RGB composite; nova-cvn
    (plane-cell maps of a segmented detector) is reported as not drawn, with the reason; an event
    number outside the split is an IndexError naming the split size."""
    from gnnu.images.display import draw_event_views, draw_graph_and_maps

    root, _ = simulated
    views = draw_event_views(root / "graphs", 1, tmp_path / "views.png")
    assert views.detector == "dune" and views.presets == ("dune-cvn", "resnet-rgb")
    panels = views.panels
    assert [t.split(":")[0] for t in panels] == [
        "graph, view U", "graph, view V", "graph, view Z",
        "dune-cvn map, view U", "dune-cvn map, view V", "dune-cvn map, view Z",
        "resnet-rgb R = view U", "resnet-rgb G = view V", "resnet-rgb B = view Z",
        "resnet-rgb"], panels
    assert "RGB composite" in panels[-1]
    # every map panel counts its non-zero pixels, and the count is the rendering's
    for ds_name, first in (("dune-cvn", 3), ("resnet-rgb", 6)):
        maps = ImageDataset(root / "graphs", "all", ds_name).render(1)
        for v in range(3):
            assert panels[first + v].endswith(f": {np.count_nonzero(maps[v])} non-zero pixels")
    assert [name for name, _ in views.skipped] == ["nova-cvn"]
    assert "plane-cell" in views.skipped[0][1] and "dune event" in views.skipped[0][1]
    assert any(line.startswith("  not drawn: nova-cvn: ") for line in views.summary())
    data = views.path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000
    assert not list(tmp_path.glob("*.tmp*"))
    only = draw_event_views(root / "graphs", 1, tmp_path / "one.png", presets=("dune-cvn",))
    assert only.presets == ("dune-cvn",) and not only.skipped and len(only.panels) == 6
    with pytest.raises(IndexError, match=f"out of range for {N_SIM} events"):
        draw_graph_and_maps(root / "graphs", N_SIM, tmp_path / "x.png")
    with pytest.raises(ConfigError, match="no image preset fits.*nova-cvn.*plane-cell"):
        draw_graph_and_maps(root / "graphs", 0, tmp_path / "x.png", presets=("nova-cvn",))
