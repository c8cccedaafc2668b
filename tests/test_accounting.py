"""Event accounting (docs/design.md#the-house "no silent drops", issue #8): the closing summary every command
prints reconciles — in = out + skipped — and agrees with what it wrote.

- ``gnnu-sim``: requested = written (it never skips), the per-class numbers add up to the
  written events, the hit count and the events without hits are those of the file;
- ``gnnu-build --skip-bad``: read = wrote + skipped, the split and reason numbers add up, the
  manifest holds the same numbers, and every source event is exactly once either a graph of the
  dataset or a listed skipped event (hit files with each kind of bad event; a NuML file with an
  event its reader rejects);
- ``gnnu-train``: for the train and val splits, events in the split (= the manifest's and the
  dataset's count) = used + skipped (``max_events`` / ``max_val_events``), and the model saw
  exactly the used events each epoch; ``run.json`` holds the same numbers;
- ``gnnu-compare``: every report's event count is the printed N, which is the split's count;
- ``gnnu-eval``: for each split, the printed event count = the manifest's split count = the
  dataset's = ``metrics.json`` ``n_events`` = the confusion matrix total = the predictions, one
  per event id of the split.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter

import h5py
import numpy as np
import pytest
import yaml

from conftest import make_event
from gnnu.events import Event, Flavour
from gnnu.graph.dataset import GraphDataset
from gnnu.graph.store import SPLITS
from gnnu.io.hitfile import HitFile, write_hits
from test_build import graph_config


def _counts(text: str) -> dict[str, int]:
    """'numu_cc 3, empty event 1' → {'numu_cc': 3, 'empty event': 1}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, n = part.rpartition(" ")
        out[name] = int(n)
    return out


# -- gnnu-sim ------------------------------------------------------------------------------------
SIM_LINE = re.compile(r"gnnu-sim: wrote (\d+) of (\d+) events \((.*); (\d+) without hits\) with "
                      r"(\d+) hits to (\S+) in ")


@pytest.mark.parametrize("detector,flavours", [
    pytest.param("dune", "numu_cc,nue_cc,nc", marks=pytest.mark.slow),    # a long simulation
    ("nova", "numu_cc,nc,cosmic")])
def test_sim_summary_reconciles_with_the_file(tmp_path, capsys, detector, flavours):
    from gnnu.cli.sim import main

    out = tmp_path / "ev.h5"
    assert main(["--detector", detector, "--events", "14", "--seed", "3", "--flavours", flavours,
                 "--mix", "random", "--out", str(out)]) == 0
    m = SIM_LINE.search(capsys.readouterr().out)
    assert m, "no closing summary"
    written, requested, per_class = int(m[1]), int(m[2]), _counts(m[3])
    empty, hits = int(m[4]), int(m[5])
    assert written == requested == 14 and sum(per_class.values()) == written
    with HitFile(out) as f:
        assert len(f) == written and f.n_hits_total == hits
        truth = Counter(Flavour(int(v)).label for v in f.truth()["flavour"])
        assert dict(truth) == per_class
        assert empty == sum(len(f.read(i).hits) == 0 for i in range(len(f)))


# -- gnnu-build ----------------------------------------------------------------------------------
BUILD_LINE = re.compile(r"gnnu-build: read (\d+) events from (\d+) source\(s\): wrote (\d+) graphs "
                        r"\(([^)]*)\), skipped (\d+)(?: \(([^)]*)\))?")


def _build(capsys, *args) -> dict:
    from gnnu.cli.build import main

    assert main([str(a) for a in args]) == 0
    m = BUILD_LINE.search(capsys.readouterr().out)
    assert m, "no closing summary"
    return {"read": int(m[1]), "sources": int(m[2]), "written": int(m[3]),
            "per_split": _counts(m[4]), "skipped": int(m[5]), "reasons": _counts(m[6] or "")}


def _reconcile(s: dict, out, source_ids: list[np.ndarray]) -> dict:
    """Check a build summary against itself, the manifest and the dataset; returns the manifest."""
    assert s["read"] == s["written"] + s["skipped"], s
    assert sum(s["per_split"].values()) == s["written"] and set(s["per_split"]) == set(SPLITS)
    assert sum(s["reasons"].values()) == s["skipped"]
    assert s["sources"] == len(source_ids) and s["read"] == sum(len(i) for i in source_ids)
    manifest = json.loads((out / "manifest.json").read_text())
    c = manifest["counts"]
    assert (c["in"], c["out"], c["skipped"]) == (s["read"], s["written"], s["skipped"])
    assert c["skipped_by_reason"] == s["reasons"] and c["per_split"] == s["per_split"]
    for split in SPLITS:
        assert sum(c["per_class"][split].values()) == c["per_split"][split]
        assert len(GraphDataset(out, split)) == c["per_split"][split]
    # every source event exactly once: a graph, or a listed skip
    graphs = [tuple(r) for r in GraphDataset(out, "all").labels("event_id")]
    skipped = [tuple(e["event_id"]) for e in manifest["skipped_events"]]
    assert manifest["skipped_events_listed"] == len(skipped) == s["skipped"]
    assert Counter(e["reason"] for e in manifest["skipped_events"]) == Counter(s["reasons"])
    everything = [tuple(r) for ids in source_ids for r in ids]
    assert Counter(graphs) + Counter(skipped) == Counter(everything)
    return manifest


def test_build_skip_bad_reconciles(tmp_path, capsys, dune):
    a = [make_event(i, n_hits=40) for i in range(30)]
    a[3].hits.columns["charge"][2] = np.nan                 # refused by the hit-file reader
    a[5] = make_event(5, n_hits=0)                          # empty
    a[8].hits.columns["view"][0] = 7                        # no view 7 in the detector
    a[11] = make_event(11, n_hits=150)                      # above max_hits below
    a[20].hits.columns["width"][0] = np.inf
    b = [make_event(i, n_hits=30, seed=1) for i in range(17)]
    b = [Event((2, 0, i), e.truth, e.hits, e.particles) for i, e in enumerate(b)]
    b[16] = Event((2, 0, 16), b[16].truth, make_event(16, n_hits=0).hits)
    srcs = [write_hits(tmp_path / "a.h5", a, dune), write_hits(tmp_path / "b.h5", b, dune)]
    out = tmp_path / "ds"
    s = _build(capsys, "--input", *srcs, "--out", out, "--skip-bad",
               "--graph", graph_config(tmp_path, shard_size=8, max_hits=100))
    assert s["reasons"] == {"empty event": 2, "invalid view id": 1, "non-finite values": 2,
                            "too many hits": 1}
    ids = [HitFile(p).event_ids() for p in srcs]
    _reconcile(s, out, ids)
    # a resumed build (all shards kept) reports the same numbers
    r = _build(capsys, "--input", *srcs, "--out", out, "--skip-bad", "--resume",
               "--graph", graph_config(tmp_path, shard_size=8, max_hits=100))
    assert {k: r[k] for k in s} == s


def test_build_numl_reader_errors_reconcile(tmp_path, capsys, dune):
    from test_numl import make_event as numl_event, write_numl

    events = [numl_event(i, n, dune, "global") for i, n in enumerate([30, 0, 45, 12, 20, 8])]
    path = write_numl(tmp_path / "numl.h5", events)
    with h5py.File(path, "r+") as f:                        # a hit row of event 2 claims event 99
        f["hit_table/event_id"][30, 2] = 99
    out = tmp_path / "ds"
    s = _build(capsys, "--input", path, "--format", "numl", "--out", out, "--skip-bad")
    assert s["reasons"] == {"empty event": 1, "reader error": 1}
    manifest = _reconcile(s, out, [np.array([ev["id"] for ev in events])])
    error = next(e for e in manifest["skipped_events"] if e["reason"] == "reader error")
    assert error["row"] == 2 and str(path) in error["message"] and "event 2" in error["message"]


# -- gnnu-eval -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(dataset, best.ckpt) of a one-epoch run on a small synthetic dataset."""
    from gnnu.train.run import TrainOptions, train
    from test_train import TINY, make_dataset

    root = tmp_path_factory.mktemp("accounting")
    data = make_dataset(root / "ds", n_events=120)
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    train(TrainOptions(config=str(root / "tiny.yaml"), data=str(data), out=str(root / "run"),
                       epochs=1, max_events=32, device="cpu"))
    return data, root / "run" / "best.ckpt"


@pytest.mark.slow
@pytest.mark.parametrize("split", SPLITS)
def test_eval_counts_every_event_of_the_split_once(tmp_path, capsys, checkpoint, split):
    from gnnu.cli.eval import main

    data, ckpt = checkpoint
    out = tmp_path / "report"
    assert main(["--checkpoint", str(ckpt), "--data", str(data), "--split", split, "--out",
                 str(out), "--device", "cpu", "--batch-size", "7"]) == 0
    m = re.search(rf"gnnu-eval: (\d+) {split} events on ", capsys.readouterr().out)
    assert m, "no closing summary"
    printed = int(m[1])
    manifest = json.loads((data / "manifest.json").read_text())
    ds = GraphDataset(data, split)
    metrics = json.loads((out / "metrics.json").read_text())
    assert printed == manifest["counts"]["per_split"][split] == len(ds) == metrics["n_events"] > 0
    assert int(np.asarray(metrics["confusion"]).sum()) == printed
    with h5py.File(out / "predictions.h5", "r") as f:
        ids = [tuple(r) for r in f["event_id"][()]]
    assert Counter(ids) == Counter(tuple(r) for r in ds.labels("event_id"))


# -- gnnu-train ----------------------------------------------------------------------------------
TRAIN_LINE = re.compile(r"^  (train|val): (\d+) events in the split, (\d+) used"
                        r"(?: \((max_events|max_val_events) = (\d+)\))?, (\d+) skipped$", re.M)


def _event_counter():
    """A Lightning callback counting the events of every training and validation batch, per epoch."""
    import lightning.pytorch as pl

    class EventCounter(pl.Callback):
        def __init__(self):
            self.train, self.val = Counter(), Counter()

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.train[trainer.current_epoch] += int(batch.num_graphs)

        def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
            self.val[trainer.current_epoch] += int(batch.num_graphs)

    return EventCounter()


@pytest.mark.slow
@pytest.mark.parametrize("limits", [("--max-events", "40", "--set", "max_val_events=5"), ()],
                         ids=["max_events and max_val_events", "whole splits"])
def test_train_summary_reconciles_with_the_splits(tmp_path, capsys, monkeypatch, checkpoint, limits):
    import functools

    import gnnu.train.run as run_module
    from gnnu.cli.train import main
    from test_train import TINY

    data, _ = checkpoint
    counter = _event_counter()
    monkeypatch.setattr(run_module, "TrainOptions",
                        functools.partial(run_module.TrainOptions, callbacks=(counter,)))
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    assert main(["--config", str(tmp_path / "tiny.yaml"), "--data", str(data), "--out", str(out),
                 "--epochs", "2", "--device", "cpu", "--set", "batch_size=16", *limits]) == 0
    printed = {m[1]: m for m in TRAIN_LINE.finditer(capsys.readouterr().out)}
    assert set(printed) == {"train", "val"}, "no per-split accounting in the closing summary"
    manifest = json.loads((data / "manifest.json").read_text())
    run = json.loads((out / "run.json").read_text())
    asked = {"train": 40, "val": 5} if limits else {}
    for split, seen in (("train", counter.train), ("val", counter.val)):
        m = printed[split]
        n, used, skipped = int(m[2]), int(m[3]), int(m[6])
        assert n == manifest["counts"]["per_split"][split] == len(GraphDataset(data, split))
        assert n == used + skipped
        assert used == min(n, asked.get(split, n)) and (skipped > 0) == bool(limits)
        if skipped:
            assert (m[4], int(m[5])) == ({"train": "max_events", "val": "max_val_events"}[split],
                                         asked[split])
        else:
            assert m[4] is None
        assert dict(seen) == {0: used, 1: used}           # each epoch saw exactly the used events
        assert run["dataset"]["events"][split] == {
            "in_split": n, "used": used, "skipped": skipped, "limit": asked.get(split),
            "limit_key": "max_events" if split == "train" else "max_val_events"}
    assert (run["dataset"]["n_train"], run["dataset"]["n_val"]) == (int(printed["train"][3]),
                                                                    int(printed["val"][3]))


# -- gnnu-compare --------------------------------------------------------------------------------
COMPARE_LINE = re.compile(r"gnnu-compare: (\d+) model\(s\), (\w+) on (\d+) (\w+) events \(dataset ")
PER_REPORT = re.compile(r"^  events per report: (.*) \(each = (\d+), the same event ids\)$", re.M)


@pytest.mark.slow
def test_compare_summary_reconciles_with_every_report(tmp_path, capsys, checkpoint):
    from gnnu.cli.compare import main as compare
    from gnnu.cli.eval import main as evaluate
    from gnnu.evaluate.compare import Comparison, ComparisonError, load_entries, reconcile_events

    data, ckpt = checkpoint
    reports = []
    for name, batch in (("a", "5"), ("b", "11")):
        reports.append(tmp_path / name)
        assert evaluate(["--checkpoint", str(ckpt), "--data", str(data), "--split", "test", "--out",
                         str(reports[-1]), "--device", "cpu", "--batch-size", batch]) == 0
    capsys.readouterr()
    out = tmp_path / "cmp"
    assert compare([*map(str, reports), "--out", str(out), "--labels", "a,b"]) == 0
    printed = capsys.readouterr().out
    m, per = COMPARE_LINE.search(printed), PER_REPORT.search(printed)
    assert m and per, "no closing summary with the events of every report"
    n = int(m[3])
    assert (int(m[1]), m[4]) == (2, "test")
    manifest = json.loads((data / "manifest.json").read_text())
    assert n == int(per[2]) == manifest["counts"]["per_split"]["test"] == len(GraphDataset(data, "test"))
    assert _counts(per[1]) == {"a": n, "b": n}
    for report in reports:
        assert json.loads((report / "metrics.json").read_text())["n_events"] == n
    with open(out / "comparison.csv", newline="") as f:
        assert {int(r["n_events"]) for r in csv.DictReader(f)} == {n}
    # the check behind the line: a report counting other events than N is refused
    entries = load_entries(reports, ["a", "b"])
    c = Comparison(entries, "sha256:x", "test", n, "flavour", [], True)
    reconcile_events(c)
    entries[1].metrics["n_events"] = n - 1
    with pytest.raises(ComparisonError, match=rf"on {n} events but b: metrics.json {n - 1}"):
        reconcile_events(c)
