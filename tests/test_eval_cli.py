"""gnnu-eval: report contents (docs/design.md#command-line-contract), every event once, GPU→CPU checkpoints, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.serialization
import yaml

from gnnu.cli.eval import main
from gnnu.errors import InputError
from gnnu.graph.dataset import GraphDataset
from gnnu.models.checkpoint import load_checkpoint
from gnnu.train.run import TrainOptions, train
from test_train import TINY, make_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset, best.ckpt) of a short edgeconv training on the synthetic dataset."""
    root = tmp_path_factory.mktemp("eval")
    data = make_dataset(root / "ds", n_events=300)
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    train(TrainOptions(config=str(cfg), data=str(data), out=str(root / "run"), epochs=2))
    return data, root / "run" / "best.ckpt"


def _eval(ckpt, data, out, *extra) -> int:
    return main(["--checkpoint", str(ckpt), "--data", str(data), "--split", "test",
                 "--out", str(out), "--device", "cpu", "--batch-size", "16", *extra])


def test_report_has_the_cli_contract_keys_and_every_event_once(trained, tmp_path):
    data, ckpt = trained
    out = tmp_path / "report"
    assert _eval(ckpt, data, out) == 0
    m = json.loads((out / "metrics.json").read_text())
    test = GraphDataset(data, "test")
    assert m["n_events"] == len(test) > 0
    for key in ("accuracy", "per_class", "confusion", "throughput_events_per_s", "device"):
        assert key in m
    assert m["device"] == "cpu" and m["throughput_events_per_s"] > 0 and m["peak_memory_bytes"] >= 0
    assert set(m["per_class"]) == {"numu_cc", "nue_cc", "nutau_cc", "nc"}
    for block in m["per_class"].values():
        assert set(block) == {"efficiency", "purity", "f1", "auc", "n"}
    assert np.asarray(m["confusion"]).sum() == len(test)
    assert m["accuracy"] > 0.25                   # chance level of four balanced classes
    assert m["timing"]["batch_size"] == 16 and m["timing"]["warmup_batches"] == 2
    with h5py.File(out / "predictions.h5") as f:
        ids = f["event_id"][()]
        assert f["scores/flavour"].shape == (len(test), 4)
        assert f["energy/pred"].shape == (len(test),)
    expected = test.labels("event_id")
    assert len({tuple(r) for r in ids}) == len(ids) == len(expected)
    assert {tuple(r) for r in ids} == {tuple(r) for r in expected}
    assert (out / "flavour_efficiency_matrix.png").exists()


def test_no_plots_writes_the_same_metrics_and_no_png(trained, tmp_path):
    """--no-plots: metrics.json (bar timings) and predictions.h5 as with plots, no PNG; the
    files list names only what was written."""
    data, ckpt = trained
    with_plots, without = tmp_path / "plots", tmp_path / "bare"
    assert _eval(ckpt, data, with_plots) == 0 and _eval(ckpt, data, without, "--no-plots") == 0
    assert any(with_plots.glob("*.png")) and not any(without.glob("*.png"))
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (with_plots, without))
    assert sorted(b["files"]) == ["metrics.json", "predictions.h5"]
    for key in ("accuracy", "macro_f1", "per_class", "confusion", "n_events"):
        assert a[key] == b[key]


def test_gpu_checkpoint_loads_on_cpu(trained, tmp_path):
    """A checkpoint whose tensors were saved on 'cuda:0' evaluates on a CPU-only machine: eval
    loads with weights_only=True and map_location='cpu'. The CUDA tags are written by a storage
    location tagger registered only while saving (what torch.save records on a GPU machine)."""
    data, ckpt = trained
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    entry = (0, lambda obj: "cuda:0", lambda obj, location: None)
    torch.serialization._package_registry.insert(0, entry)
    try:
        torch.save(state, tmp_path / "gpu.ckpt")
    finally:
        torch.serialization._package_registry.remove(entry)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "gpu.ckpt", weights_only=True)
    assert _eval(tmp_path / "gpu.ckpt", data, tmp_path / "r_gpu") == 0
    assert _eval(ckpt, data, tmp_path / "r_cpu") == 0
    with h5py.File(tmp_path / "r_gpu" / "predictions.h5") as a, \
            h5py.File(tmp_path / "r_cpu" / "predictions.h5") as b:
        np.testing.assert_allclose(a["scores/flavour"][()], b["scores/flavour"][()], rtol=1e-5, atol=1e-6)


def test_refuses_other_features(trained, tmp_path, capsys):
    data, ckpt = trained
    other = tmp_path / "other"
    shutil.copytree(data, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["features"][2]["name"] = "log_charge"
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert _eval(ckpt, other, tmp_path / "r") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "features" in err[0] and "log_charge" in err[0]
    assert not (tmp_path / "r").exists()


def test_refuses_to_overwrite_a_report_without_force(trained, tmp_path, capsys):
    data, ckpt = trained
    out = tmp_path / "r"
    assert _eval(ckpt, data, out) == 0
    assert _eval(ckpt, data, out) == 2
    assert "--force" in capsys.readouterr().err
    assert _eval(ckpt, data, out, "--force") == 0


class NotATensor:
    """Anything but tensors and plain types must be refused by the weights_only loader."""


def test_checkpoints_load_weights_only(tmp_path):
    torch.save({"state_dict": {}, "payload": NotATensor()}, tmp_path / "evil.ckpt")
    with pytest.raises(InputError, match="not a loadable checkpoint"):
        load_checkpoint(tmp_path / "evil.ckpt")
    with pytest.raises(InputError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_evaluation_standardises_with_the_training_statistics(trained, tmp_path):
    """The checkpoint records the node-feature standardisation of its training dataset and
    gnnu-eval applies it to any dataset: a copy of the dataset whose manifest holds other
    statistics (as a dataset of other events would) gives the same predictions, not
    differently scaled inputs."""
    from gnnu.evaluate.report import read_predictions

    data, ckpt = trained
    meta = load_checkpoint(ckpt)["gnnu"]
    assert meta["feature_stats"] == GraphDataset(data, "train").feature_stats
    other = tmp_path / "other"
    shutil.copytree(data, other)
    manifest = json.loads((other / "manifest.json").read_text())
    for f in manifest["features"]:
        if f["normalize"]:
            f["mean"], f["std"] = f["mean"] + 50.0, f["std"] * 7.0
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert GraphDataset(other, "test").feature_stats != meta["feature_stats"]
    assert _eval(ckpt, data, tmp_path / "a") == 0
    assert _eval(ckpt, other, tmp_path / "b") == 0
    a, b = read_predictions(tmp_path / "a"), read_predictions(tmp_path / "b")
    np.testing.assert_array_equal(a.event_ids, b.event_ids)
    np.testing.assert_allclose(a.scores["flavour"], b.scores["flavour"], rtol=1e-5, atol=1e-6)


def test_cpu_peak_memory_sampler_sees_a_transient_allocation():
    """gnnu-eval's CPU peak memory: the largest sampled RSS minus the RSS before — here 256 MiB
    touched for ~50 ms and freed again must show (the older ru_maxrss growth read 0 whenever the
    process had peaked higher before, e.g. while loading)."""
    import time

    from gnnu.train.inference import _RssSampler, _rss_bytes

    if _rss_bytes() is None:
        pytest.skip("no /proc/self/statm on this platform")
    before = _rss_bytes()
    with _RssSampler() as sampler:
        block = np.ones(256 << 17)            # 256 MiB of float64, written
        time.sleep(0.05)
        del block
    assert sampler.peak - before > 200 << 20
