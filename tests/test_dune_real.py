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
    assert manifest["schema_version"] == "1.2"
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


@needs_finetune
def test_gnnu_eval_on_the_flavour_directories(flavour_dirs, tmp_path, capsys):
    """Before issue 22 the four directories gave 3 × PER_FLAVOUR duplicate ids and gnnu-eval
    refused the dataset after a full pass ("… evaluated more than once")."""
    from gnnu.train.run import TrainOptions, train
    from test_train import TINY

    data = tmp_path / "data"
    assert _build("--input", *[flavour_dirs / n for n in FLAVOUR_DIRS], "--format", "dune-cvn",
                  "--graph", "knn16_dune_cvn_pixels", "--split", "0.5,0.25,0.25", "--out", data) == 0
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "epochs": 1, "batch_size": 8}))
    train(TrainOptions(config=str(cfg), data=str(data), out=str(tmp_path / "run"), epochs=1))
    capsys.readouterr()
    for split in ("train", "test"):
        rc = eval_main(["--checkpoint", str(tmp_path / "run" / "best.ckpt"), "--data", str(data),
                        "--split", split, "--out", str(tmp_path / f"eval-{split}"), "--device", "cpu",
                        "--no-plots"])
        assert rc == 0, capsys.readouterr().err
        m = json.loads((tmp_path / f"eval-{split}" / "metrics.json").read_text())
        assert m["n_events"] == len(GraphDataset(data, split)) > 0
    with DuneCVNReader(flavour_dirs / "nc") as r:
        assert r.event_ids()[:, 0].tolist() == [source_run("nc")] * PER_FLAVOUR
