"""Report files: predictions.h5 round trip, metrics.json contract (docs/design.md#command-line-contract), plots, overwrite."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from gnnu.errors import InputError, OutputExistsError, SchemaError
from gnnu.evaluate import plots
from gnnu.evaluate.metrics import EvaluationError, energy_resolution, evaluate_task
from gnnu.evaluate.report import (Predictions, evaluate, load_metrics, read_predictions,
                                  write_predictions, write_report)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TASKS = {"flavour": 4, "is_antinu": 2, "n_proton": 4}


def make_predictions(n=300, seed=0, tasks=TASKS) -> Predictions:
    """Synthetic outputs of a fair classifier: the true class gets a logit boost of 1.5."""
    rng = np.random.default_rng(seed)
    labels, scores = {}, {}
    for task, c in tasks.items():
        y = rng.integers(0, c, n)
        logits = rng.normal(size=(n, c))
        logits[np.arange(n), y] += 1.5
        p = np.exp(logits)
        labels[task] = np.where(rng.random(n) < 0.2, -1, y) if task == "n_proton" else y
        scores[task] = p / p.sum(axis=1, keepdims=True)
    ids = np.stack([np.full(n, 7), np.zeros(n, int), np.arange(n)], axis=1)
    e_true = rng.uniform(0.5, 10, n)
    return Predictions(ids, labels, scores, e_true, e_true * (1 + rng.normal(0, 0.15, n)))


def report(out, pred, **kw):
    args = dict(split="test", manifest_hash="sha256:abc", expected_n_events=len(pred),
                device="cpu", throughput_events_per_s=1234.5, peak_memory_bytes=1 << 20)
    args.update(kw)
    return write_report(out, pred, **args)


def is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(PNG_SIGNATURE)


def test_predictions_round_trip(tmp_path):
    pred = make_predictions()
    pred.meta = {"split": "val", "manifest_hash": "h"}
    path = write_predictions(tmp_path / "p.h5", pred)
    back = read_predictions(path)
    np.testing.assert_array_equal(back.event_ids, pred.event_ids)
    for task in TASKS:
        np.testing.assert_array_equal(back.labels[task], pred.labels[task])
        np.testing.assert_array_equal(back.scores[task], pred.scores[task])
        assert back.class_names[task] == pred.class_names[task]
    np.testing.assert_array_equal(back.energy_true, pred.energy_true)
    np.testing.assert_array_equal(back.energy_pred, pred.energy_pred)
    assert back.meta == {"split": "val", "manifest_hash": "h"}
    assert back.class_names["flavour"] == ["numu_cc", "nue_cc", "nutau_cc", "nc"]
    assert [p.name for p in tmp_path.iterdir()] == ["p.h5"]  # no temporary file left
    with pytest.raises(OutputExistsError):
        write_predictions(path, pred)


def test_predictions_without_energy_and_empty(tmp_path):
    pred = make_predictions(n=0)
    pred = Predictions(pred.event_ids, pred.labels, pred.scores)
    back = read_predictions(write_predictions(tmp_path / "p.h5", pred))
    assert len(back) == 0 and back.energy_true is None and back.energy_pred is None
    assert back.scores["flavour"].shape == (0, 4)


def test_read_predictions_errors(tmp_path):
    with pytest.raises(InputError, match="no such"):
        read_predictions(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match="junk.h5"):
        read_predictions(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["schema"] = "gnnu-hits"
    with pytest.raises(SchemaError, match="other.h5"):
        read_predictions(tmp_path / "other.h5")
    path = write_predictions(tmp_path / "v2.h5", make_predictions(n=5))
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = "2.0"
    with pytest.raises(SchemaError, match="version 2.0"):
        read_predictions(path)


def test_predictions_validation():
    pred = make_predictions(n=10)
    with pytest.raises(ValueError, match="same tasks"):
        Predictions(pred.event_ids, pred.labels, {"flavour": pred.scores["flavour"]})
    with pytest.raises(ValueError, match="class names"):
        Predictions(pred.event_ids, pred.labels, pred.scores, class_names={"flavour": ["a", "b"]})
    with pytest.raises(ValueError, match="unknown task"):
        Predictions(pred.event_ids, {"flavour3": np.zeros(10, int)},
                    {"flavour3": np.full((10, 3), 1 / 3)})
    three = Predictions(pred.event_ids, {"flavour3": np.zeros(10, int)},
                        {"flavour3": np.full((10, 3), 1 / 3)},
                        class_names={"flavour3": ["numu_cc", "nue_cc", "nc"]})
    assert three.class_names["flavour3"] == ["numu_cc", "nue_cc", "nc"]


def test_write_report_writes_every_file_and_the_contract(tmp_path):
    pred = make_predictions()
    out = tmp_path / "report"
    data = report(out, pred, timing={"batch_size": 64})
    expected = {"metrics.json", "predictions.h5", "energy_resolution.png"} | {
        f"{task}_{kind}.png" for task in TASKS
        for kind in ("efficiency_matrix", "purity_matrix", "roc", "scores", "efficiency_vs_energy")}
    assert set(data["files"]) == expected
    assert {p.name for p in out.iterdir()} == expected
    for name in expected - {"metrics.json", "predictions.h5"}:
        assert is_png(out / name), name

    # metrics.json: the docs/design.md#command-line-contract keys, and strict JSON (NaN written as null).
    text = (out / "metrics.json").read_text()
    m = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert m == data == load_metrics(out)
    for key in ("n_events", "accuracy", "per_class", "confusion", "throughput_events_per_s",
                "device", "peak_memory_bytes", "tasks", "energy", "dataset"):
        assert key in m, key
    assert m["n_events"] == 300 and m["device"] == "cpu"
    assert m["throughput_events_per_s"] == 1234.5 and m["peak_memory_bytes"] == 1 << 20
    assert m["dataset"] == {"manifest_hash": "sha256:abc", "split": "test"}
    assert m["timing"] == {"batch_size": 64}
    assert list(m["per_class"]) == ["numu_cc", "nue_cc", "nutau_cc", "nc"]
    assert set(m["per_class"]["nc"]) == {"efficiency", "purity", "f1", "auc", "n"}
    assert set(m["tasks"]) == set(TASKS)
    assert list(m["tasks"]["n_proton"]["per_class"]) == ["0", "1", "2", ">2"]
    assert list(m["tasks"]["is_antinu"]["per_class"]) == ["nu", "antinu"]

    # Values agree with the metrics module on the same arrays.
    ref = evaluate_task(pred.labels["flavour"], pred.scores["flavour"],
                        pred.class_names["flavour"], energy=pred.energy_true)
    assert m["accuracy"] == pytest.approx(ref.accuracy)
    assert m["confusion"] == ref.confusion.tolist()
    assert np.sum(m["confusion"]) == 300
    assert m["per_class"]["nue_cc"]["auc"] == pytest.approx(ref.auc[1])
    np_task = m["tasks"]["n_proton"]
    assert np_task["n_undefined"] == int((pred.labels["n_proton"] == -1).sum()) > 0
    assert np_task["n_labelled"] + np_task["n_undefined"] == 300
    res = energy_resolution(pred.energy_pred, pred.energy_true)
    assert m["energy"]["resolution_68"] == pytest.approx(res.resolution_68)
    assert m["energy"]["bias_median"] == pytest.approx(res.bias)

    back = read_predictions(out)
    assert back.meta == {"manifest_hash": "sha256:abc", "split": "test"}


def test_report_reconciliation_failure_writes_nothing(tmp_path):
    pred = make_predictions(n=50)
    out = tmp_path / "report"
    with pytest.raises(EvaluationError, match="evaluated 50 events but the dataset holds 51"):
        report(out, pred, expected_n_events=51)
    assert not out.exists()


def test_report_overwrite(tmp_path):
    pred = make_predictions(n=120)
    out = tmp_path / "report"
    report(out, pred, plot_tasks=["flavour", "is_antinu"])
    with pytest.raises(OutputExistsError, match="report exists"):
        report(out, pred)
    (out / "config.yaml").write_text("kept: true\n")  # not a report file: left alone
    data = report(out, pred, plot_tasks=["flavour"], overwrite=True)
    names = {p.name for p in out.iterdir()}
    assert not any(name.startswith("is_antinu") for name in names)  # stale plots removed
    assert names == set(data["files"]) | {"config.yaml"}


def test_nan_metrics_are_null_in_json(tmp_path):
    """A class absent from the split has an undefined efficiency: null in metrics.json."""
    pred = make_predictions(n=80, tasks={"flavour": 4})
    labels = pred.labels["flavour"].copy()
    labels[labels == 2] = 0
    pred = Predictions(pred.event_ids, {"flavour": labels}, pred.scores)
    m = report(tmp_path / "r", pred, plot_tasks=[])
    assert m["per_class"]["nutau_cc"]["efficiency"] is None
    assert m["per_class"]["nutau_cc"]["n"] == 0
    assert any("nutau_cc" in note for note in m["tasks"]["flavour"]["notes"])
    assert m["energy"] is None  # no energies given: no resolution block


def test_load_metrics_errors(tmp_path):
    with pytest.raises(InputError, match="no such"):
        load_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text('{"schema": "something-else"}')
    with pytest.raises(SchemaError):
        load_metrics(tmp_path)


@pytest.mark.filterwarnings("error")
def test_plots_degenerate_inputs_are_png_without_warnings(tmp_path):
    """Every label undefined, or a class absent: the plots still come out, with no warning."""
    labels = np.full(20, -1)
    scores = np.full((20, 4), 0.25)
    m = evaluate_task(labels, scores, ["0", "1", "2", ">2"], task="n_neutron",
                      energy=np.linspace(1, 5, 20))
    paths = [
        plots.plot_matrix(m.efficiency_matrix, ["0", "1", "2", ">2"], tmp_path / "eff.png", "e", m.n),
        plots.plot_roc(m, tmp_path / "roc.png", "roc"),
        plots.plot_efficiency_vs_energy(m, tmp_path / "eve.png", "eve"),
        plots.plot_score_distributions("n_neutron", labels, scores, m.class_names,
                                       tmp_path / "scores.png", "scores"),
        plots.plot_energy_resolution(energy_resolution(np.full(3, np.nan), np.ones(3)),
                                     tmp_path / "res.png", "res"),
    ]
    for path in paths:
        assert is_png(path), path.name


def test_display_names():
    assert plots.display_names("flavour", ["numu_cc", "nc"]) == ["CC νμ", "NC"]
    assert plots.display_names("n_charged_pion", ["0", ">2"]) == ["0 π±", ">2 π±"]
    assert plots.display_names("is_antinu", ["nu", "antinu"]) == ["nu", "antinu"]


def test_evaluate_without_regression_head():
    pred = make_predictions(n=40)
    pred = Predictions(pred.event_ids, pred.labels, pred.scores, energy_true=pred.energy_true)
    ev = evaluate(pred)
    assert ev.energy is None
    assert ev.tasks["flavour"].eff_vs_energy is not None
    assert math.isclose(ev.tasks["flavour"].n_vs_energy.sum(), ev.tasks["flavour"].n_labelled)
