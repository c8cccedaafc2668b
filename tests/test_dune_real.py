"""Real DUNE events of several sources (issue 22, part 1): unique event ids that do not depend on
the order of ``--input``, duplicates refused at build time, old datasets still readable, and
``gnnu-eval`` on a dataset built from the release's per-flavour directories.

Uses a few events of each flavour directory of ``../shared/data/dune-cvn-finetune`` (copied into
a temporary directory per test session; the events are the release's, MIT licence)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from conftest import REPO
from gnnu.cli.build import main as build_main
from gnnu.cli.eval import main as eval_main
from gnnu.graph.dataset import GraphDataset
from gnnu.io.dune_cvn import DuneCVNReader, source_run
from gnnu.io.hitfile import write_hits

FINETUNE = REPO.parent / "shared" / "data" / "dune-cvn-finetune"
FLAVOUR_DIRS = ("numu", "nue", "nc", "nutau")
PER_FLAVOUR = 6

needs_finetune = pytest.mark.skipif(not FINETUNE.exists(), reason="dune-cvn-finetune not present")


@pytest.fixture(scope="module")
def flavour_dirs(tmp_path_factory):
    """numu/, nue/, nc/, nutau/ with the first PER_FLAVOUR events of each released directory."""
    if not FINETUNE.exists():
        pytest.skip("dune-cvn-finetune not present")
    root = tmp_path_factory.mktemp("cvn")
    for name in FLAVOUR_DIRS:
        (root / name).mkdir()
        for n in range(100, 100 + PER_FLAVOUR):
            for ext in ("gz", "info"):
                shutil.copy(FINETUNE / name / f"event{n}.{ext}", root / name / f"event{n}.{ext}")
    return root


def _build(*args) -> int:
    return build_main([str(a) for a in args])


def _by_id(root) -> dict[tuple, tuple]:
    """event id → (normalised features, edges, flavour, split) of every graph of a dataset."""
    ds = GraphDataset(root, "all")
    splits = {}
    for s in ("train", "val", "test"):
        for row in GraphDataset(root, s).labels("event_id"):
            splits[tuple(int(v) for v in row)] = s
    out = {}
    for i in range(len(ds)):
        d = ds[i]
        key = tuple(int(v) for v in d.event_id[0])
        assert key not in out, f"id {key} twice"
        out[key] = (d.x.numpy(), d.edge_index.numpy(), int(d.flavour), splits[key])
    return out


def test_source_run_depends_on_the_directory_name_only(tmp_path):
    a, b = tmp_path / "a" / "numu", tmp_path / "b" / "numu"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    assert source_run(a) == source_run(b) == source_run("numu")
    runs = {source_run(n) for n in FLAVOUR_DIRS}
    assert len(runs) == 4 and all(0 <= r < 2**31 for r in runs)
    # the rule is part of the dataset contract: its value for "numu" must never change
    assert source_run("numu") == int.from_bytes(
        __import__("hashlib").sha256(b"numu").digest()[:4], "little") & 0x7FFFFFFF


@needs_finetune
def test_flavour_directories_build_with_unique_ids_whatever_the_input_order(flavour_dirs, tmp_path,
                                                                           capsys):
    srcs = [flavour_dirs / n for n in FLAVOUR_DIRS]
    assert _build("--input", *srcs, "--format", "dune-cvn", "--out", tmp_path / "a") == 0
    assert _build("--input", *srcs[::-1], "--format", "dune-cvn", "--out", tmp_path / "b") == 0
    capsys.readouterr()
    a, b = _by_id(tmp_path / "a"), _by_id(tmp_path / "b")
    assert len(a) == 4 * PER_FLAVOUR and set(a) == set(b)
    for key, (x, e, flavour, split) in a.items():
        xb, eb, fb, sb = b[key]
        np.testing.assert_array_equal(x, xb)          # normalised with identical statistics
        np.testing.assert_array_equal(e, eb)
        assert (flavour, split) == (fb, sb)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["schema_version"] == "1.3"
    for src, name in zip(manifest["sources"], FLAVOUR_DIRS):
        assert src["runs"] == [source_run(name)] and src["n_runs"] == 1
    # every id carries its directory's run, the event number is the file's N
    for (run, subrun, event), (_, _, flavour, _) in a.items():
        name = FLAVOUR_DIRS[[source_run(n) for n in FLAVOUR_DIRS].index(run)]
        assert subrun == 0 and 100 <= event < 100 + PER_FLAVOUR
        assert flavour == {"numu": 0, "nue": 1, "nutau": 2, "nc": 3}[name]


@needs_finetune
def test_duplicate_ids_are_refused_at_build_time_naming_source_and_id(flavour_dirs, tmp_path, capsys):
    dup = tmp_path / "numu"
    shutil.copytree(flavour_dirs / "numu", dup)
    shutil.copy(dup / "event101.gz", dup / "event0101.gz")      # also event number 101
    shutil.copy(dup / "event101.info", dup / "event0101.info")
    assert _build("--input", dup, "--format", "dune-cvn", "--out", tmp_path / "d1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    run = source_run(dup)
    assert len(err) == 1 and str(dup) in err[0]
    assert f"event id ({run}, 0, 101) appears twice in this source" in err[0]
    assert not (tmp_path / "d1").exists()
    # the same directory twice: the second one is refused, naming both
    src = flavour_dirs / "nue"
    assert _build("--input", src, src, "--format", "dune-cvn", "--out", tmp_path / "d2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"event id ({source_run(src)}, 0, 100) is also in {src}" in err[0]


def test_two_hit_files_of_one_seed_are_refused(tmp_path, dune, capsys):
    from conftest import make_event

    a = write_hits(tmp_path / "a.h5", [make_event(i) for i in range(5)], dune)
    b = write_hits(tmp_path / "b.h5", [make_event(i, seed=3) for i in range(3)], dune)  # ids (1, 0, 0…2)
    assert _build("--input", a, b, "--out", tmp_path / "ds") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(b) in err[0] and f"event id (1, 0, 0) is also in {a} (row 0)" in err[0]


@needs_finetune
def test_schema_1_1_dataset_still_reads(flavour_dirs, tmp_path, capsys):
    out = tmp_path / "old"
    assert _build("--input", flavour_dirs / "nue", "--format", "dune-cvn", "--out", out) == 0
    capsys.readouterr()
    new = _by_id(out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["schema_version"] = "1.1"
    for s in manifest["sources"]:
        del s["runs"], s["n_runs"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    old = _by_id(out)
    assert set(old) == set(new)
    for k in new:
        np.testing.assert_array_equal(old[k][0], new[k][0])


@pytest.fixture(scope="module")
def tiny_run(flavour_dirs, tmp_path_factory):
    """(dataset, best.ckpt) of a one-epoch TINY EdgeConv on the 24 copied real events, built with
    knn16_dune_cvn_pixels (so the checkpoint records that graph config)."""
    from gnnu.train.run import TrainOptions, train
    from test_train import TINY

    root = tmp_path_factory.mktemp("tiny-real")
    data = root / "data"
    assert _build("--input", *[flavour_dirs / n for n in FLAVOUR_DIRS], "--format", "dune-cvn",
                  "--graph", "knn16_dune_cvn_pixels", "--split", "0.5,0.25,0.25", "--out", data) == 0
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "epochs": 1, "batch_size": 8}))
    train(TrainOptions(config=str(cfg), data=str(data), out=str(root / "run"), epochs=1))
    return data, root / "run" / "best.ckpt"


@needs_finetune
def test_gnnu_eval_on_the_flavour_directories(tiny_run, flavour_dirs, tmp_path, capsys):
    """Before issue 22 the four directories gave 3 × PER_FLAVOUR duplicate ids and gnnu-eval
    refused the dataset after a full pass ("… evaluated more than once")."""
    data, ckpt = tiny_run
    capsys.readouterr()
    for split in ("train", "test"):
        rc = eval_main(["--checkpoint", str(ckpt), "--data", str(data), "--split", split,
                        "--out", str(tmp_path / f"eval-{split}"), "--device", "cpu", "--no-plots"])
        assert rc == 0, capsys.readouterr().err
        m = json.loads((tmp_path / f"eval-{split}" / "metrics.json").read_text())
        assert m["n_events"] == len(GraphDataset(data, split)) > 0
    with DuneCVNReader(flavour_dirs / "nc") as r:
        assert r.event_ids()[:, 0].tolist() == [source_run("nc")] * PER_FLAVOUR


# -- protocol pieces: resplit, shipped checkpoints, gnnu-eval on raw directories ------------------
@needs_finetune
def test_resplit_assigns_folds_and_refits_statistics_on_the_new_training_split(tiny_run, tmp_path):
    from gnnu.graph.resplit import resplit

    data, _ = tiny_run
    ids = [tuple(int(v) for v in r) for r in GraphDataset(data, "all").labels("event_id")]
    split_of = {k: (2 if i % 4 == 0 else 1 if i % 4 == 1 else 0) for i, k in enumerate(ids)}
    m = resplit(data, tmp_path / "re", split_of, rule="test: i mod 4")
    for code, name in enumerate(("train", "val", "test")):
        got = {tuple(int(v) for v in r) for r in GraphDataset(tmp_path / "re", name).labels("event_id")}
        assert got == {k for k, s in split_of.items() if s == code}
        assert m["counts"]["per_split"][name] == len(got)
    # statistics: moments of the raw features of the new training split only
    train = GraphDataset(tmp_path / "re", "train", normalize=False)
    x = np.concatenate([train[i].x.numpy() for i in range(len(train))]).astype(np.float64)
    np.testing.assert_allclose(m["normalisation"]["mean"], x.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(m["normalisation"]["std"], x.std(0), rtol=1e-5, atol=1e-9)
    assert m["split"]["rule"] == "test: i mod 4" and m["resplit"]["source_build_hash"] != m["build_hash"]
    with pytest.raises(Exception, match="no split"):
        resplit(data, tmp_path / "re2", dict(list(split_of.items())[1:]), rule="x")


@needs_finetune
def test_gnnu_eval_builds_raw_directories_with_the_checkpoints_graph_config(tiny_run, flavour_dirs, tmp_path,
                                                                             capsys):
    data, ckpt = tiny_run
    from gnnu.models.checkpoint import load_checkpoint

    assert load_checkpoint(ckpt)["gnnu"]["graph"]["graph_config"]["name"] == "knn16_dune_cvn_pixels"
    out = tmp_path / "report"
    rc = eval_main(["--checkpoint", str(ckpt), "--data", *[str(flavour_dirs / n) for n in FLAVOUR_DIRS],
                    "--out", str(out), "--device", "cpu", "--no-plots"])
    assert rc == 0, capsys.readouterr().err
    built = json.loads((out / "dataset" / "manifest.json").read_text())
    assert built["graph_config"]["name"] == "knn16_dune_cvn_pixels"     # not gnnu-build's default knn16
    assert built["counts"]["per_split"] == {"train": 0, "val": 0, "test": 4 * PER_FLAVOUR}
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_events"] == 4 * PER_FLAVOUR
    # the same events through the built dataset give the same scores
    rc = eval_main(["--checkpoint", str(ckpt), "--data", str(out / "dataset"), "--out", str(tmp_path / "r2"),
                    "--device", "cpu", "--no-plots"])
    assert rc == 0
    assert json.loads((tmp_path / "r2" / "metrics.json").read_text())["accuracy"] == m["accuracy"]


def test_unknown_shipped_checkpoint_is_one_clear_error(tmp_path, capsys):
    from gnnu.models.pretrained import resolve_checkpoint

    assert resolve_checkpoint("runs/x/best.ckpt") == __import__("pathlib").Path("runs/x/best.ckpt")
    rc = eval_main(["--checkpoint", "pretrained:nope", "--data", str(tmp_path), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no shipped checkpoint 'nope'" in err[0] and "pretrained:dune-real" in err[0]


def test_transfer_figures_on_known_predictions():
    """3-class accuracy uses only CC νμ / CC νe / NC events and the argmax over those three scores;
    efficiency at purity 0.9 is the largest efficiency whose selection is ≥ 90 % pure."""
    from gnnu.evaluate.transfer import figures, point_figures

    flavour = np.array([0, 1, 2, 3, 1, 1])
    scores = np.array([[.5, .1, .3, .1],     # νμ → νμ
                       [.1, .2, .6, .1],     # νe: ντ highest, but νe wins among the three
                       [.1, .1, .7, .1],     # ντ: not in the 3-class set
                       [.1, .6, .1, .2],     # NC → νe (wrong)
                       [.1, .7, .1, .1],
                       [.2, .3, .1, .4]])    # νe → NC (wrong)
    f = point_figures(flavour, scores)
    assert f["accuracy_4class"] == pytest.approx(3 / 6)            # events 0, 2, 4
    assert f["accuracy_3class"] == pytest.approx(3 / 5)            # events 0, 1, 4 of 0, 1, 3, 4, 5
    # νe scores of the 3-class events: νμ .1, νe .2, NC .6, νe .7, νe .3 → ranks give AUC 4/6
    assert f["nue_auc"] == pytest.approx(4 / 6)
    assert f["nue_efficiency_at_purity_0.9"] == pytest.approx(1 / 3)   # only score .7 is pure
    full = figures(flavour, scores, fold=np.array([0, 0, 0, 1, 1, 1]), n_boot=50)
    assert full["accuracy_3class"]["ci95"][0] <= 0.6 <= full["accuracy_3class"]["ci95"][1]
    assert len(full["nue_auc"]["per_fold"]) == 2 and full["n_events_3class"] == 5


def test_flavour_figures_tool_reads_a_report_and_leaves_out_unlabelled_events(tmp_path, capsys):
    """tools/flavour_figures.py on a predictions.h5: the figures of the labelled events (those of
    the test above: 3-class accuracy 3/5, 4-class 3/6), the unlabelled one counted and left out."""
    from gnnu.evaluate.report import Predictions, write_predictions

    tool = _load_tool("flavour_figures")
    flavour = np.array([0, 1, 2, 3, 1, 1, -1])
    scores = np.array([[.5, .1, .3, .1], [.1, .2, .6, .1], [.1, .1, .7, .1], [.1, .6, .1, .2],
                       [.1, .7, .1, .1], [.2, .3, .1, .4], [.9, 0, 0, .1]], np.float32)
    report = tmp_path / "eval-test"
    report.mkdir()
    ids = np.stack([np.ones(7, int), np.zeros(7, int), np.arange(7)], 1)
    write_predictions(report / "predictions.h5", Predictions(ids, {"flavour": flavour}, {"flavour": scores}))
    assert tool.main([str(report), "--labels", "toy", "--json", str(tmp_path / "f.json")]) == 0
    out = capsys.readouterr().out
    assert "| toy (6 events, 5 of 3 classes) | 0.600 [" in out
    record = json.loads((tmp_path / "f.json").read_text())["figures"]["toy"]
    assert record["accuracy_4class"]["value"] == pytest.approx(0.5) and record["n_unlabelled_left_out"] == 1
    with pytest.raises(SystemExit, match="missing.*no such predictions file"):
        tool.main([str(tmp_path / "missing")])


def _load_tool(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _cv_dir(root, family: str, scores: np.ndarray, flavour: np.ndarray, name: str = "cv.json"):
    """A cv directory as tools/dune_real.py cv leaves it: two folds, each fold's chosen
    candidate's report (events split by parity)."""
    from gnnu.evaluate.report import Predictions, write_predictions

    root.mkdir(parents=True)
    (root / name).write_text(json.dumps({"folds": 2, "figures": {family: {}},
                                         "chosen": {f"fold{f}/{family}": "c" for f in (0, 1)}}))
    for f in (0, 1):
        rows = np.arange(len(flavour)) % 2 == f
        rep = root / f"fold{f}" / family / "eval-c"
        rep.mkdir(parents=True)
        ids = np.stack([np.full(rows.sum(), 7), np.zeros(rows.sum(), int), np.flatnonzero(rows)], 1)
        write_predictions(rep / "predictions.h5", Predictions(ids, {"flavour": flavour[rows]},
                                                              {"flavour": scores[rows].astype(np.float32)}))
    return root


def test_paired_difference_of_two_cv_families(tmp_path, capsys):
    """tools/dune_real.py paired: B − A on the same events. B right on every event where A is
    right on half of them: 4-class difference +0.5, inside its paired interval; the same
    predictions give 0 with a zero-width interval."""
    tool = _load_tool("dune_real")
    rng = np.random.default_rng(0)
    flavour = np.tile([0, 1, 2, 3], 10)
    right = np.eye(4)[flavour] + rng.uniform(0, 0.1, (40, 4))
    half = np.where((np.arange(40) % 4 < 2)[:, None], right, np.roll(right, 1, axis=1))
    a = _cv_dir(tmp_path / "a", "finetune", half, flavour)
    b = _cv_dir(tmp_path / "b", "dann", right, flavour, name="cv-dann.json")
    assert tool.main(["paired", "--a", f"{a}:finetune", "--b", f"{b}:dann", "--json", str(tmp_path / "p.json")]) == 0
    p = json.loads((tmp_path / "p.json").read_text())["paired"]
    assert p["accuracy_4class"]["difference"] == pytest.approx(0.5)
    assert p["accuracy_4class"]["ci95"][0] <= 0.5 <= p["accuracy_4class"]["ci95"][1]
    assert tool.main(["paired", "--a", f"{a}:finetune", "--b", f"{a}:finetune"]) == 0
    assert "accuracy_4class: +0.000 [+0.000, +0.000]" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no cv.json or cv-\\*.json with the family 'dann'"):
        tool.main(["paired", "--a", f"{a}:dann", "--b", f"{b}:dann"])


# -- the shipped checkpoints ---------------------------------------------------------------------
SHIPPED = ("dune-sim", "dune-real")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_loads_by_name_with_its_card(name):
    import tomllib
    from fnmatch import fnmatch

    from gnnu.models.pretrained import available, model_card, resolve_checkpoint
    from gnnu.train.inference import load_model

    assert name in available()
    path = resolve_checkpoint(f"pretrained:{name}")
    assert path.stat().st_size < 5e6                                    # weights only: a few MB at most
    model, meta, cfg = load_model(f"pretrained:{name}")
    assert meta["graph"]["graph_config"]["name"] == "knn16_dune_cvn_pixels"
    assert meta["feature_names"][:4] == ["wire_cm", "time_cm", "charge", "width_cm"]
    ckpt = __import__("torch").load(path, map_location="cpu", weights_only=True)
    assert set(ckpt) == {"state_dict", "gnnu"}                          # no optimiser or loop state
    card = model_card(f"pretrained:{name}")
    for key in ("data", "commands", "metrics", "gnnu_version", "commit", "device"):
        assert card[key], key
    figs = next(v for k, v in card["metrics"].items() if isinstance(v, dict) and "accuracy_3class" in v)
    assert all(len(figs[k]["ci95"]) == 2 for k in ("accuracy_3class", "nue_auc"))
    # wheels carry them: pyproject's package data covers the file and its card
    pattern = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gnnu.models"]
    rel = path.relative_to(REPO / "gnnu" / "models")
    assert any(fnmatch(str(rel), p) for p in pattern)
    assert any(fnmatch(str(rel.with_suffix(".json")), p) for p in pattern)


def test_init_from_a_shipped_checkpoint(flavour_dirs, tmp_path, capsys):
    """gnnu-train --init-from pretrained:dune-sim loads every weight of the shipped network."""
    from gnnu.cli.train import main as train_main

    data = tmp_path / "data"
    assert _build("--input", *[flavour_dirs / n for n in FLAVOUR_DIRS], "--format", "dune-cvn", "--graph",
                  "knn16_dune_cvn_pixels", "--split", "0.5,0.5,0", "--out", data) == 0
    rc = train_main(["--config", str(REPO / "configs" / "train" / "dune_finetune.yaml"), "--data", str(data),
                     "--out", str(tmp_path / "run"), "--epochs", "1", "--device", "cpu",
                     "--init-from", "pretrained:dune-sim", "--set", "freeze=[encoder]", "--set", "max_events=8"])
    assert rc == 0, capsys.readouterr().err
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    init = run["init_from"]
    assert init["checkpoint"].endswith("dune-sim.ckpt") and not init["reinitialised"] and not init["missing"]
