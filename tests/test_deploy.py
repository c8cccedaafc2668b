"""Issue 18: export forms equal the trained models, gnnu-export writes files that run without gnnu
with parity, gnnu-predict scores events with and without truth, and refuses what does not fit."""

from __future__ import annotations

import re
import shutil
import sys

import h5py
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from conftest import DUNE_CVN_SAMPLE
from deploy_helpers import SMALL_MODELS, fake_checkpoint
from gnnu.cli.export import main as export_main
from gnnu.cli.predict import main as predict_main
from gnnu.evaluate.report import read_predictions
from gnnu.graph.dataset import GraphDataset
from gnnu.graph.knn import knn
from gnnu.io.hitfile import HitFile, HitFileWriter
from gnnu.models import create_model
from gnnu.models.exportable import GraphExport, output_names
from test_train import make_dataset, synthetic_event

GNNS = ("edgeconv", "dynedgeconv", "gravnet")
CNNS = ("dune_cvn", "nova_cvn", "resnet18")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("deploy"), n_events=120)


@pytest.fixture(scope="module")
def ckpts(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return {name: fake_checkpoint(root / f"{name}.ckpt", cfg, data) for name, cfg in SMALL_MODELS.items()}


# -- export forms --------------------------------------------------------------------------------
def _batch(sizes, seed=0, grid=True):
    """Events of the given sizes; positions on a coarse grid (exact distance ties) by default."""
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for n in sizes:
        pos = torch.rand(n, 2, generator=g) * 20
        pos = torch.round(pos) if grid else pos
        graphs.append(Data(x=torch.randn(n, 7, generator=g), pos=pos, edge_index=knn(pos, 4)))
    return Batch.from_data_list(graphs)


def _randomised(cfg):
    model = create_model(cfg, in_features=7).eval()
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def _reference(model, b):
    with torch.no_grad():
        out = model(b)
    return [torch.softmax(out[t], 1) for t in model.head.tasks] + \
        [torch.exp(out[r]) for r in model.head.regression]


@pytest.mark.parametrize("name", GNNS)
def test_export_forms_equal_the_trained_models(name):
    """Eager and TorchScript-compiled export forms give the trained model's scores on batches of
    several events (one of a single node, one smaller than k, grid positions with exact ties)."""
    model = _randomised(SMALL_MODELS[name])
    mean, std = torch.rand(7), torch.rand(7) + 0.5
    form = GraphExport(model, mean, std).eval()
    scripted = torch.jit.script(form)
    for sizes in ((30, 5, 1, 17), (3,), (40, 40)):
        b = _batch(sizes, seed=len(sizes))
        ref = _reference(model, b)
        raw = b.x * std + mean                                # the form standardises itself
        with torch.no_grad():
            for f in (form, scripted):
                got = f(raw, b.pos, b.edge_index, b.batch)
                assert len(got) == len(ref) == len(output_names(model))
                for r, o in zip(ref, got):
                    assert o.shape == r.shape
                    assert torch.allclose(o, r, atol=2e-6, rtol=1e-5), (name, sizes)


# -- gnnu-export ---------------------------------------------------------------------------------
PARITY = re.compile(r"^parity: max \|Δscore\| = (\S+) on (\d+) events$", re.M)


def _export(ckpt, fmt, out, *extra):
    return export_main(["--checkpoint", str(ckpt), "--format", fmt, "--out", str(out), *extra])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["edgeconv", "dune_cvn"])
def test_torchscript_export_verifies_and_carries_metadata(name, ckpts, data, tmp_path, capsys):
    out = tmp_path / f"{name}.pt"
    assert _export(ckpts[name], "torchscript", out, "--verify", str(data), "--events", "5") == 0
    m = PARITY.search(capsys.readouterr().out)
    assert m and float(m.group(1)) <= 1e-4 and int(m.group(2)) == 5
    extra = {"gnnu.json": ""}
    torch.jit.load(str(out), _extra_files=extra)
    import json

    meta = json.loads(extra["gnnu.json"])
    assert meta["gnnu_version"] and meta["model"] == name
    assert [o["name"] for o in meta["outputs"]][0] == "flavour"
    assert meta["outputs"][0]["classes"][:2] == ["numu_cc", "nue_cc"]
    if name == "edgeconv":
        assert [i["name"] for i in meta["inputs"]] == ["x", "edge_index", "batch"]
        assert meta["graph"]["edge_rule"].startswith("knn(") and "k=16" in meta["graph"]["edge_rule"]
        assert meta["features"][0]["unit"] == "cm" and "std" in meta["features"][0]
    else:
        assert meta["inputs"][0]["shape"] == ["B", 3, 64, 64] and meta["image"]["name"] == "dune-cvn"
    # refused overwrite, then parity failure against another checkpoint's weights
    assert _export(ckpts[name], "torchscript", out) == 2
    assert "output exists" in capsys.readouterr().err


@pytest.mark.slow
def test_verify_fails_above_the_tolerance(ckpts, data, tmp_path, capsys):
    other = fake_checkpoint(tmp_path / "other.ckpt", SMALL_MODELS["edgeconv"], data, seed=7)
    out = tmp_path / "e.pt"
    assert _export(other, "torchscript", out) == 0
    from gnnu.deploy.export import verify_export

    worst, n = verify_export(out, "torchscript", ckpts["edgeconv"], data, n_events=4)
    assert worst > 1e-3 and n == 4


def test_missing_onnx_is_one_line(ckpts, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    assert _export(ckpts["edgeconv"], "onnx", tmp_path / "m.onnx") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "onnxscript" in err[0] and "gnnu[export]" in err[0]
    assert not (tmp_path / "m.onnx").exists()


def test_an_op_without_onnx_form_is_named(ckpts, tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnxscript")

    def refuse(*a, **k):
        raise RuntimeError("No ONNX function found for <OpOverload(op='aten.frobnicate', overload='default')>")
    monkeypatch.setattr(torch.onnx, "export", refuse)
    assert _export(ckpts["gravnet"], "onnx", tmp_path / "m.onnx") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "aten.frobnicate" in err[0] and "gravnet" in err[0]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
@pytest.mark.parametrize("name", GNNS + CNNS)
def test_every_family_exports_with_parity(name, fmt, ckpts, data, tmp_path, capsys):
    pytest.importorskip("onnxruntime") if fmt == "onnx" else None
    out = tmp_path / f"{name}.{fmt}"
    assert _export(ckpts[name], fmt, out, "--verify", str(data)) == 0
    m = PARITY.search(capsys.readouterr().out)
    assert m and float(m.group(1)) <= 1e-4
    assert int(m.group(2)) == len(GraphDataset(data, "test")) < 32      # fewer than 32: all of them


# -- readers without truth -----------------------------------------------------------------------
def _hits_without_truth(path, n=12):
    from gnnu.detectors import load_detector

    with HitFileWriter(path, load_detector("dune"), truth=False) as w:
        for i in range(n):
            w.write(synthetic_event(1000 + i))
    return path


def test_hit_file_without_labels(tmp_path):
    path = _hits_without_truth(tmp_path / "real.h5")
    from gnnu.errors import InputError

    with pytest.raises(InputError, match=r"real.h5: .*events/flavour"):
        HitFile(path)
    with HitFile(path, require_truth=False) as r:
        assert not r.has_truth and len(r) == 12
        assert r.read(3).truth.flavour == -1 and np.isnan(r.read(3).truth.nu_energy)


# -- gnnu-predict ----------------------------------------------------------------------------------
def _predict(ckpt, inputs, out, *extra, fmt="gnnu"):
    return predict_main(["--checkpoint", str(ckpt), "--input", *map(str, inputs), "--format", fmt,
                         "--out", str(out), "--device", "cpu", *extra])


@pytest.mark.slow
def test_predict_with_truth_matches_the_dataset_path(ckpts, data, tmp_path, capsys):
    """Scores of a hit file equal the checkpoint's on the built dataset's graphs (same events,
    graphs built on the fly), labels are written, the summary counts every event."""
    from gnnu.deploy.model import load_deployable

    src = data.parent / "events.h5"
    out = tmp_path / "p.h5"
    assert _predict(ckpts["edgeconv"], [src], out, "--batch-size", "16") == 0
    line = capsys.readouterr().out
    assert "120 events read, 120 scored, 0 skipped" in line and "with truth" in line and "events/s" in line
    p = read_predictions(out)
    assert p.has_labels and len(p) == 120 and set(p.tasks) >= {"flavour", "interaction"}
    dep = load_deployable(ckpts["edgeconv"])
    ds = GraphDataset(data, "all", feature_stats=dep.feature_stats)
    row = {tuple(r): i for i, r in enumerate(p.event_ids)}
    with torch.no_grad():
        for i in range(0, len(ds), 17):
            d = ds.get(i)
            want = torch.softmax(dep.model(Batch.from_data_list([d]))["flavour"], 1)[0].numpy()
            j = row[tuple(d.event_id[0].tolist())]
            assert np.allclose(p.scores["flavour"][j], want, atol=1e-5)
            assert p.labels["flavour"][j] == int(d.flavour)


def test_predict_without_truth_and_compare_refuses(ckpts, tmp_path, capsys):
    src = _hits_without_truth(tmp_path / "real.h5")
    out = tmp_path / "p.h5"
    assert _predict(ckpts["gravnet"], [src], out) == 0
    assert "without truth labels" in capsys.readouterr().out
    p = read_predictions(out)
    assert not p.has_labels and len(p) == 12 and p.scores["flavour"].shape == (12, 4)
    with h5py.File(out) as f:
        assert "labels" not in f and f.attrs["schema_version"] == "1.1"
    assert _predict(ckpts["gravnet"], [src], out) == 2                       # exists
    assert "use --force" in capsys.readouterr().err
    from gnnu.cli.compare import main as compare_main

    assert compare_main([str(out), str(out), "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "without truth labels" in err[0]


def test_predict_image_model_on_hits(ckpts, tmp_path, capsys):
    src = _hits_without_truth(tmp_path / "real.h5", n=5)
    assert _predict(ckpts["dune_cvn"], [src], tmp_path / "p.h5") == 0
    line = capsys.readouterr().out
    assert "5 scored" in line and "centred on the charge centroid" in line


def test_pixels_for_a_hit_model_refused_before_any_work(ckpts, tmp_path, capsys):
    if not DUNE_CVN_SAMPLE.exists():
        pytest.skip("DUNE CVN sample not present")
    out = tmp_path / "p.h5"
    assert _predict(ckpts["edgeconv"], [DUNE_CVN_SAMPLE], out, fmt="dune-cvn") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gives pixels" in err[0] and "detector hits" in err[0]
    assert not out.exists()


@pytest.mark.slow
def test_predict_dune_cvn_directory_without_labels(tmp_path, capsys):
    """A DUNE CVN directory holding only eventN.gz, scored by a model trained on DUNE CVN pixels."""
    if not DUNE_CVN_SAMPLE.exists():
        pytest.skip("DUNE CVN sample not present")
    from gnnu.graph.build import BuildOptions, build_dataset

    build_dataset(BuildOptions(inputs=(str(DUNE_CVN_SAMPLE),), format="dune-cvn",
                               out=str(tmp_path / "cvn")))
    ckpt = fake_checkpoint(tmp_path / "c.ckpt", SMALL_MODELS["edgeconv"], tmp_path / "cvn")
    maps = tmp_path / "maps"
    maps.mkdir()
    for p in DUNE_CVN_SAMPLE.glob("event*.gz"):
        shutil.copy(p, maps / p.name)
    out = tmp_path / "p.h5"
    assert _predict(ckpt, [maps], out, fmt="dune-cvn") == 0
    n = len(list(maps.glob("*.gz")))
    assert f"{n} events read, {n} scored" in capsys.readouterr().out
    p = read_predictions(out)
    assert not p.has_labels and len(p) == n
    assert np.allclose(p.scores["flavour"].sum(1), 1, atol=1e-5)
