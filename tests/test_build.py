"""gnnu-build (docs/design.md#graph-dataset, #command-line-contract): round trip, splits, normalisation, bad events, overwrite and
compatibility refusals, kill-and-resume, worker independence, --inspect."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import yaml

from conftest import REPO, make_event
from gnnu.cli.build import main
from gnnu.config import CONFIG_ROOT, to_dict
from gnnu.detectors import detector_from_dict
from gnnu.errors import InputError
from gnnu.events import Event, Hits
from gnnu.graph.build import assign_split
from gnnu.graph.config import load_graph_config
from gnnu.graph.dataset import GraphDataset
from gnnu.graph.features import compute_features, feature_columns, node_table
from gnnu.graph.knn import knn
from gnnu.graph.store import SPLITS, shard_name
from gnnu.io.hitfile import write_hits


def graph_config(tmp_path, name="small", **changes):
    """The default knn16 config with ``changes`` (e.g. a small shard size), as a YAML file."""
    data = yaml.safe_load((CONFIG_ROOT / "graphs" / "knn16.yaml").read_text())
    data.update(name=name, **changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def build(capsys, *args) -> tuple[int, str, str]:
    """Run gnnu-build in-process; (exit code, stdout, stderr)."""
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def read_manifest(out) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_round_trip_equals_directly_computed_graphs(tmp_path, dune, capsys):
    events = [make_event(i, n_hits=30 + 3 * i) for i in range(25)]
    src = write_hits(tmp_path / "a.h5", events, dune)
    cfg_path = graph_config(tmp_path, shard_size=8)
    rc, out, _ = build(capsys, "--input", src, "--out", tmp_path / "ds", "--graph", cfg_path)
    assert rc == 0 and "wrote 25 graphs" in out
    manifest = read_manifest(tmp_path / "ds")
    assert len(manifest["shards"]) == 4 and manifest["counts"]["in"] == 25
    cols = feature_columns(load_graph_config(cfg_path).features, dune)
    assert [(f["name"], f["unit"]) for f in manifest["features"]] == [(c.name, c.unit) for c in cols]
    assert [c.name for c in cols] == ["wire_cm", "time_cm", "charge", "width_cm", "view_U", "view_V", "view_Z"]

    ds = GraphDataset(tmp_path / "ds", split="all", normalize=False)
    graphs = {tuple(ds[i].event_id[0].tolist()): ds[i] for i in range(len(ds))}
    assert set(graphs) == {e.event_id for e in events}
    planes = dune.config.planes
    cm_per_tick = dune.config.drift_velocity_cm_per_us * dune.config.tick_us     # 0.08 cm
    for ev in events:
        d = graphs[ev.event_id]
        h = ev.hits
        nodes = node_table(h.columns, np.zeros(len(h), np.int64), dune)
        np.testing.assert_array_equal(d.x.numpy(), compute_features(
            ["pos", "charge", "width", "view"], nodes))
        # the features themselves, from the detector config (docs/design.md#graphs: wire × pitch, time × v × tick)
        pitch = np.array([p.pitch_cm for p in planes])[h["view"]]
        np.testing.assert_allclose(d.x[:, 0].numpy(), h["wire"] * pitch, rtol=1e-6)
        np.testing.assert_allclose(d.x[:, 1].numpy(), h["time"] * cm_per_tick, rtol=1e-6)
        np.testing.assert_array_equal(d.x[:, 2].numpy(), h["charge"])
        np.testing.assert_allclose(d.x[:, 3].numpy(), h["width"] * cm_per_tick, rtol=1e-6)
        np.testing.assert_array_equal(d.x[:, 4:].numpy().argmax(1), h["view"])
        np.testing.assert_array_equal(d.pos.numpy(), d.x[:, :2].numpy())
        # edges: the 16 nearest hits of the same view, straight from knn()
        want = set()
        for v in range(3):
            idx = np.flatnonzero(h["view"] == v)
            e = idx[knn(nodes.pos[idx], 16)]
            want |= set(map(tuple, e.T.tolist()))
        assert set(map(tuple, d.edge_index.T.tolist())) == want and d.edge_index.shape[1] == len(want)
        for k in ("flavour", "interaction", "is_antinu", "n_proton", "n_neutron", "mode", "nu_pdg"):
            assert d[k].tolist() == [getattr(ev.truth, k)]
        assert d.nu_energy.item() == pytest.approx(ev.truth.nu_energy, rel=1e-6)
        assert d.vertex.tolist() == [[ev.truth.vtx_x, ev.truth.vtx_y, ev.truth.vtx_z]]
    # schema ≥ 1.2: each shard's size and sha256 in the manifest
    assert manifest["schema_version"] == "1.3"
    for shard in manifest["shards"]:
        assert shard["bytes"] == (tmp_path / "ds" / shard["file"]).stat().st_size
        assert shard["sha256"] == hashlib.sha256((tmp_path / "ds" / shard["file"]).read_bytes()).hexdigest()
    # schema ≥ 1.1: /nodes/hit keeps each node's hit as read (wire, time, charge, plane −1), in node order
    for i in range(len(ds)):
        f, a, b = ds.index.nodes(i)
        h = events[int(ds[i].event_id[0, 2])].hits
        want = np.stack([h["wire"], h["time"], h["charge"], np.full(len(h), -1)], axis=1)
        np.testing.assert_array_equal(f["nodes/hit"][a:b], want.astype(np.float32))


def test_split_rule_fractions_seed_and_determinism():
    ids = np.stack([np.full(20000, 7), np.zeros(20000), np.arange(20000)], 1)
    split = assign_split(ids, "dune", 0, (0.8, 0.1, 0.1))
    counts = np.bincount(split, minlength=3) / len(ids)
    # binomial: σ(0.8) = sqrt(0.8·0.2/20000) ≈ 0.0028; allow 4σ
    np.testing.assert_allclose(counts, [0.8, 0.1, 0.1], atol=0.012)
    np.testing.assert_array_equal(split, assign_split(ids, "dune", 0, (0.8, 0.1, 0.1)))
    np.testing.assert_array_equal(split[::-1], assign_split(ids[::-1], "dune", 0, (0.8, 0.1, 0.1)))
    assert np.mean(split != assign_split(ids, "dune", 1, (0.8, 0.1, 0.1))) > 0.2
    assert np.mean(split != assign_split(ids, "nova", 0, (0.8, 0.1, 0.1))) > 0.2
    assert set(assign_split(ids, "dune", 0, (1.0, 0.0, 0.0))) == {0}


def _split_by_id(out) -> dict:
    res = {}
    for name in SPLITS:
        for eid in GraphDataset(out, split=name).labels("event_id"):
            res[tuple(eid)] = name
    return res


def test_split_is_stable_when_events_are_added(tmp_path, dune, capsys):
    few = [make_event(i, n_hits=20) for i in range(40)]
    more = [make_event(i, n_hits=20) for i in range(100)][::-1]        # superset, other order
    a = write_hits(tmp_path / "few.h5", few, dune)
    b = write_hits(tmp_path / "more.h5", more[:50], dune)
    c = write_hits(tmp_path / "more2.h5", more[50:], dune)
    assert build(capsys, "--input", a, "--out", tmp_path / "A", "--split", "0.5,0.25,0.25")[0] == 0
    assert build(capsys, "--input", b, c, "--out", tmp_path / "B", "--split", "0.5,0.25,0.25")[0] == 0
    sa, sb = _split_by_id(tmp_path / "A"), _split_by_id(tmp_path / "B")
    assert len(sa) == 40 and len(sb) == 100
    assert all(sb[k] == v for k, v in sa.items())
    assert len(set(sa.values())) == 3


def test_normalisation_uses_the_training_split_only(tmp_path, dune, capsys):
    events = [make_event(i, n_hits=25) for i in range(60)]
    split = assign_split(np.array([e.event_id for e in events]), "dune", 5, (0.6, 0.2, 0.2))
    for ev, s in zip(events, split):
        if s != 0:                      # val/test charges 1000× larger: must not leak into the stats
            ev.hits.columns["charge"] = ev.hits["charge"] * 1000
    src = write_hits(tmp_path / "a.h5", events, dune)
    rc, _, _ = build(capsys, "--input", src, "--out", tmp_path / "ds", "--split", "0.6,0.2,0.2",
                     "--seed", 5, "--graph", graph_config(tmp_path, shard_size=7))
    assert rc == 0
    train = [e for e, s in zip(events, split) if s == 0]
    x = np.concatenate([compute_features(["pos", "charge", "width", "view"],
                                         node_table(e.hits.columns, np.zeros(len(e.hits), np.int64), dune))
                        for e in train]).astype(np.float64)
    feats = read_manifest(tmp_path / "ds")["features"]
    np.testing.assert_allclose([f["mean"] for f in feats], x.mean(0), rtol=1e-9)
    np.testing.assert_allclose([f["std"] for f in feats], x.std(0), rtol=1e-9)
    assert feats[2]["name"] == "charge" and feats[2]["mean"] < 100      # all events: ~10 000
    manifest = read_manifest(tmp_path / "ds")
    assert manifest["normalisation"]["n_nodes"] == len(x) and manifest["normalisation"]["fitted_on"] == "train"


def _bad_events():
    events = [make_event(i, n_hits=30) for i in range(12)]
    events[3].hits.columns["charge"][4] = np.nan
    events[5] = make_event(5, n_hits=0)
    return events


def test_skip_bad_counts_each_reason(tmp_path, dune, capsys):
    src = write_hits(tmp_path / "bad.h5", _bad_events(), dune)
    rc, out, _ = build(capsys, "--input", src, "--out", tmp_path / "ds", "--skip-bad",
                       "--graph", graph_config(tmp_path, shard_size=4))
    assert rc == 0
    assert "read 12 events" in out and "wrote 10 graphs" in out
    assert "skipped 2 (empty event 1, non-finite values 1)" in out
    c = read_manifest(tmp_path / "ds")["counts"]
    assert (c["in"], c["out"], c["skipped"]) == (12, 10, 2) and c["in"] == c["out"] + c["skipped"]
    assert c["skipped_by_reason"] == {"empty event": 1, "non-finite values": 1}
    skipped = read_manifest(tmp_path / "ds")["skipped_events"]
    assert [(s["row"], s["event_id"], s["reason"]) for s in skipped] == [
        (3, [1, 0, 3], "non-finite values"), (5, [1, 0, 5], "empty event")]
    assert 5 not in {int(i[2]) for i in GraphDataset(tmp_path / "ds", "all").labels("event_id")}


def test_bad_event_is_one_clear_error_by_default(tmp_path, dune, capsys):
    src = write_hits(tmp_path / "bad.h5", _bad_events(), dune)
    rc, out, err = build(capsys, "--input", src, "--out", tmp_path / "ds")
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert str(src) in lines[0] and "event 3 (id (1, 0, 3))" in lines[0] and "non-finite" in lines[0]
    assert read_manifest(tmp_path / "ds")["status"] == "in_progress"


def test_empty_events_are_skipped_and_counted_by_default(tmp_path, dune, capsys):
    """docs/design.md#reliability / issue 22: a valid event without hits is not bad input."""
    events = _bad_events()
    events[3] = make_event(3, n_hits=30)          # only the empty event 5 is left
    src = write_hits(tmp_path / "a.h5", events, dune)
    rc, out, _ = build(capsys, "--input", src, "--out", tmp_path / "ds")
    assert rc == 0 and "wrote 11 graphs" in out and "skipped 1 (empty event 1)" in out
    assert "1 valid but empty event(s) skipped" in out
    m = read_manifest(tmp_path / "ds")
    assert m["counts"]["skipped_by_reason"] == {"empty event": 1}
    assert [(e["row"], e["reason"]) for e in m["skipped_events"]] == [(5, "empty event")]


def test_event_with_no_hit_in_the_pixel_window_is_skipped(tmp_path, dune, capsys):
    """knn16_dune_cvn_pixels renders around the truth vertex: an event whose hits all lie
    outside that 500-wire window has hits but no pixel — skipped as "no hit in the window"."""
    events = [make_event(i, n_hits=40) for i in range(6)]
    far = events[2].hits.columns
    far["wire"][:] = 4000 + np.arange(len(far["wire"])) % 7       # > 500 wires from the vertex
    vtx_wire = dune.wire_coordinate(0, 0.0, 100.0) / dune.config.planes[0].pitch_cm
    assert np.all(far["wire"] - vtx_wire > 600)
    src = write_hits(tmp_path / "a.h5", events, dune)
    rc, out, _ = build(capsys, "--input", src, "--out", tmp_path / "ds", "--graph", "knn16_dune_cvn_pixels")
    assert rc == 0, out
    m = read_manifest(tmp_path / "ds")
    assert m["counts"]["skipped_by_reason"] == {"no hit in the window": 1}
    assert m["skipped_events"][0]["row"] == 2 and m["counts"]["out"] == 5


def test_simulated_events_without_hits_build(tmp_path, capsys):
    """Issue 22: gnnu-sim --detector nova --events 200 --seed 5 writes events without hits (the
    first is event 23); a plain gnnu-build of them used to stop there."""
    from gnnu.detectors import load_detector
    from gnnu.sim.simulate import SimRequest, iter_events

    nova = load_detector("nova")
    request = SimRequest(detector="nova", n_events=24, seed=5)     # gnnu-sim's default flavours
    events = list(iter_events(request, nova))
    empty = [e.event_id[2] for e in events if len(e.hits) == 0]
    assert 23 in empty
    src = write_hits(tmp_path / "nova.h5", events, nova)
    rc, out, _ = build(capsys, "--input", src, "--out", tmp_path / "ds", "--graph", "nova_knn16")
    assert rc == 0 and f"skipped {len(empty)} (empty event {len(empty)})" in out
    m = read_manifest(tmp_path / "ds")
    assert m["counts"]["out"] == 24 - len(empty)
    assert sorted(e["event_id"][2] for e in m["skipped_events"]) == sorted(empty)


def test_refuses_to_overwrite_without_force(tmp_path, dune, capsys):
    src = write_hits(tmp_path / "a.h5", [make_event(i, n_hits=20) for i in range(10)], dune)
    out = tmp_path / "ds"
    assert build(capsys, "--input", src, "--out", out)[0] == 0
    rc, _, err = build(capsys, "--input", src, "--out", out)
    assert rc == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    rc, _, err = build(capsys, "--input", src, "--out", out, "--resume", "--seed", 9)
    assert rc == 2 and "cannot resume" in err
    (out / "notes.txt").write_text("mine")
    rc, text, _ = build(capsys, "--input", src, "--out", out, "--force", "--seed", 9)
    assert rc == 0 and "wrote 10 graphs" in text
    assert (out / "notes.txt").read_text() == "mine"          # --force deletes only dataset files
    assert read_manifest(out)["split"]["seed"] == 9


def test_refuses_incompatible_sources(tmp_path, dune, capsys):
    other = detector_from_dict({**to_dict(dune.config), "name": "dune-copy"})
    a = write_hits(tmp_path / "a.h5", [make_event(i, n_hits=20) for i in range(5)], dune)
    b = write_hits(tmp_path / "b.h5", [make_event(i, n_hits=20) for i in range(5)], other)
    rc, _, err = build(capsys, "--input", a, b, "--out", tmp_path / "ds")
    assert rc == 2 and "incompatible" in err and "dune-copy" in err and str(b) in err
    # a config that needs true 3-D positions refuses a source without them
    bare = [Event(e.event_id, e.truth, Hits({k: e.hits[k] for k in ("view", "wire", "time", "charge", "width")}))
            for e in (make_event(i, n_hits=20) for i in range(5))]
    c = write_hits(tmp_path / "c.h5", bare, dune)
    rc, _, err = build(capsys, "--input", c, "--out", tmp_path / "ds3",
                       "--graph", graph_config(tmp_path, name="xyz", features=["pos", "xyz"]))
    assert rc == 2 and "true hit positions" in err and str(c) in err


def _shard_arrays(out) -> dict:
    res = {}
    for path in sorted(out.glob("shard-*.h5")):
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: res.__setitem__((path.name, name), obj[...])
                         if isinstance(obj, h5py.Dataset) else None)
            res[(path.name, "attrs")] = dict(f.attrs)
    return res


def _assert_same_dataset(a, b):
    ra, rb = _shard_arrays(a), _shard_arrays(b)
    assert ra.keys() == rb.keys()
    for key in ra:
        if key[1] == "attrs":
            assert ra[key] == rb[key], key
        else:
            assert ra[key].dtype == rb[key].dtype and ra[key].tobytes() == rb[key].tobytes(), key
    assert read_manifest(a) == read_manifest(b)


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_result(tmp_path, dune, capsys):
    events = [make_event(i, n_hits=1000, particles=False) for i in range(400)]
    src = write_hits(tmp_path / "a.h5", events, dune)
    cfg = graph_config(tmp_path, shard_size=10)               # 40 shards
    assert build(capsys, "--input", src, "--out", tmp_path / "ref", "--graph", cfg)[0] == 0

    out = tmp_path / "ds"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "gnnu.cli.build", "--input", str(src), "--out",
                             str(out), "--graph", cfg], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / shard_name(0)).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert read_manifest(out)["status"] == "in_progress", "the build finished before the kill"
    done = sorted(p.name for p in out.glob("shard-*.h5"))
    assert 0 < len(done) < 40
    (out / shard_name(39)).write_bytes(b"half-written garbage")    # must be redone
    (out / f"{shard_name(38)}.tmp-12345").write_bytes(b"stale")    # must be removed

    rc, text, _ = build(capsys, "--input", src, "--out", out, "--graph", cfg, "--resume")
    assert rc == 0 and "kept from an earlier run" in text
    assert not list(out.glob("*.tmp-*"))
    _assert_same_dataset(out, tmp_path / "ref")
    rc, text, _ = build(capsys, "--input", src, "--out", out, "--graph", cfg, "--resume")
    assert rc == 0 and "40 kept" in text                           # nothing left to do


def test_workers_do_not_change_the_output(tmp_path, dune, capsys):
    src = write_hits(tmp_path / "a.h5", [make_event(i, n_hits=50) for i in range(60)], dune)
    src2 = write_hits(tmp_path / "b.h5", [make_event(i, n_hits=50, seed=1, run=2) for i in range(15)], dune)
    cfg = graph_config(tmp_path, shard_size=10)
    for w in (1, 2):
        assert build(capsys, "--input", src, src2, "--out", tmp_path / f"w{w}", "--graph", cfg,
                     "--workers", w)[0] == 0
    _assert_same_dataset(tmp_path / "w1", tmp_path / "w2")
    assert len(read_manifest(tmp_path / "w1")["shards"]) == 8       # shards never span sources


def _files(d) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_job_array_parts_then_merge_equal_a_single_build_byte_for_byte(tmp_path, dune, capsys):
    """docs/design.md#graphs scale-out: three --shard-index jobs (run out of order, into one directory),
    then --merge: every shard file and manifest.json are byte-identical to one ordinary build."""
    src = write_hits(tmp_path / "a.h5", [make_event(i, n_hits=50) for i in range(60)], dune)
    src2 = write_hits(tmp_path / "b.h5", [make_event(i, n_hits=50, seed=1, run=2) for i in range(15)], dune)
    cfg = graph_config(tmp_path, shard_size=10)                                   # 8 shards
    common = ("--input", src, src2, "--graph", cfg)
    assert build(capsys, *common, "--out", tmp_path / "one")[0] == 0
    parts = tmp_path / "parts"
    for i in (2, 0):
        rc, out, err = build(capsys, *common, "--out", parts, "--shard-index", i, "--num-shards", 3)
        assert rc == 0, err
        assert f"part {i} of 0…2" in out and "--merge" in out
    assert sorted(p.name for p in parts.glob("shard-*.h5")) == \
        [f"shard-{s:05d}.h5" for s in (0, 2, 3, 5, 6)]
    with pytest.raises(InputError, match="did not finish"):          # not a dataset yet
        GraphDataset(parts)
    rc, out, err = build(capsys, *common, "--out", parts, "--merge")
    assert rc == 2 and "cannot merge: 3 of 8 shards missing" in err and "shard-00001.h5" in err
    rc, out, err = build(capsys, *common, "--out", parts, "--shard-index", 1, "--num-shards", 3)
    assert rc == 0, err
    rc, out, err = build(capsys, *common, "--out", parts, "--merge")
    assert rc == 0, err
    assert "read 75 events" in out and "8 shards, 8 kept" in out
    assert _files(parts) == _files(tmp_path / "one")
    assert len(GraphDataset(parts, split="all")) == 75
    rc, out, err = build(capsys, *common, "--out", parts, "--seed", 5, "--shard-index", 0,
                         "--num-shards", 3)                     # other settings: refused, nothing lost
    assert rc == 2 and "cannot add this part" in err and err.count("\n") == 1
    assert _files(parts) == _files(tmp_path / "one")


def test_job_array_arguments_are_checked(tmp_path, dune, capsys):
    src = write_hits(tmp_path / "a.h5", [make_event(i, n_hits=20) for i in range(5)], dune)
    out = tmp_path / "ds"
    for args, message in [(("--shard-index", 0), "go together"),
                          (("--shard-index", 3, "--num-shards", 3), "must be in 0"),
                          (("--shard-index", 0, "--num-shards", 2, "--force"), "other jobs' shards"),
                          (("--merge", "--resume"), "--merge takes no"),
                          (("--merge",), "nothing to merge")]:
        rc, _, err = build(capsys, "--input", src, "--out", out, *args)
        assert rc == 2 and message in err and err.count("\n") == 1, (args, err)
    assert not out.exists() or not list(out.glob("shard-*"))


def test_inspect_reports_counts_features_and_graph_diagnostics(tmp_path, dune, capsys):
    src = write_hits(tmp_path / "a.h5", [make_event(i, n_hits=40) for i in range(30)], dune)
    assert build(capsys, "--input", src, "--out", tmp_path / "ds")[0] == 0
    rc, out, err = build(capsys, "--inspect", tmp_path / "ds", "--samples", "2")
    assert rc == 0 and err == ""
    for text in ("graphs per class and split", "numu_cc", "nue_cc", "nc", "wire_cm", "width_cm",
                 "view_U", "nodes per graph", "mean in-degree", "components per view U",
                 "hops across", "in-degree histogram", "in 30, out 30, skipped 0"):
        assert text in out, text
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  all ")}
    assert sum(map(int, table["all"][:3])) == 30 and table["all"][3] == "30"
    rc, _, err = build(capsys, "--inspect", tmp_path)
    assert rc == 2 and "not a gnnu graph dataset" in err


def test_cli_contract_flags():
    text = subprocess.run([sys.executable, "-m", "gnnu.cli.build", "--help"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    for flag in ("--input", "--format", "--graph", "--out", "--split", "--seed", "--workers",
                 "--resume", "--force", "--skip-bad", "--inspect"):
        assert flag in text
    assert "{gnnu,numl,dune-cvn}" in text


def test_skip_bad_invalid_view_and_too_many_hits(tmp_path, dune, capsys):
    events = [make_event(i, n_hits=30) for i in range(6)]
    events[1].hits.columns["view"][0] = 7                      # the detector has views 0, 1, 2
    events[4] = make_event(4, n_hits=150)                      # above max_hits below
    src = write_hits(tmp_path / "a.h5", events, dune)
    cfg = graph_config(tmp_path, max_hits=100)
    rc, _, err = build(capsys, "--input", src, "--out", tmp_path / "strict", "--graph", cfg)
    assert rc == 2 and "event 1 (id (1, 0, 1)): invalid view id" in err
    rc, out, _ = build(capsys, "--input", src, "--out", tmp_path / "ds", "--graph", cfg, "--skip-bad")
    assert rc == 0 and "skipped 2 (invalid view id 1, too many hits 1)" in out


def test_xyz_feature_and_time_scale(dune):
    from gnnu.graph.features import time_scale

    # DUNE: 0.5 µs ticks × 0.16 cm/µs = 0.08 cm per tick in every view (configs/detectors/dune.yaml)
    np.testing.assert_allclose(time_scale(dune), [0.08] * 3, rtol=1e-6)
    ev = make_event(0, n_hits=5)
    ev.hits.columns["x"][2] = np.nan                            # a noise hit: no true position
    nodes = node_table(ev.hits.columns, np.zeros(5, np.int64), dune, with_xyz=True)
    x = compute_features(["xyz"], nodes)
    assert [c.name for c in feature_columns(["xyz"], dune)] == ["x_cm", "y_cm", "z_cm", "xyz_valid"]
    np.testing.assert_array_equal(x[:, 3], [1, 1, 0, 1, 1])
    np.testing.assert_array_equal(x[2, :3], [0, 0, 0])
    np.testing.assert_array_equal(x[0, :3], [ev.hits["x"][0], ev.hits["y"][0], ev.hits["z"][0]])
