"""NuML HDF5 reader: the three hit-column generations, seq_cnt / seq / event_id indexing,
truth mapping, hit truth from edep_table, and one clear error per bad input.

The files are built here in the layout of LArSoft's HDF5Maker (nugraph/numl
numl/NeutrinoML/HDF5Maker_module.cc) after ph5concat indexing as read by pynuml
(nugraph/pynuml pynuml/io/file.py): every column a 2-D dataset (n_rows, k), event_id (n, 3),
``event_id.seq_cnt`` = (event sequence number, row count) for events that have rows.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from gnnu.errors import ConfigError, InputError, SchemaError
from gnnu.events import Flavour, Process
from gnnu.io import open_source
from gnnu.io.numl import GENERATIONS, NuMLReader, process_code

TABLES = ("event_table", "hit_table", "particle_table", "edep_table")

# Visibility thresholds of configs/detectors/dune.yaml (MeV of kinetic energy):
# p 40, π± 10, π0 0, n 10.
# Primaries of every synthetic event, (pdg, momentum GeV/c, counted?): KE = √(p² + m²) − m.
PRIMARIES = [
    (13, 1.0, False),      # muon: not a counted species
    (2212, 0.40, True),    # proton, KE ≈ 82 MeV ≥ 40
    (2212, 0.20, False),   # proton, KE ≈ 21 MeV < 40
    (211, 0.05, False),    # π+, KE ≈ 8.8 MeV < 10
    (-211, 0.30, True),    # π−, KE ≈ 191 MeV
    (111, 0.30, True),     # π0, threshold 0
    (2112, 0.50, True),    # neutron, KE ≈ 125 MeV ≥ 10
]
EXPECTED_RAW = {"n_proton": 1, "n_charged_pion": 1, "n_neutral_pion": 1, "n_neutron": 1}

# (is_cc, nu_pdg) → expected (flavour, is_antinu), cycled over events.
NU_CASES = [((1, 14), (Flavour.NUMU_CC, 0)), ((1, -12), (Flavour.NUE_CC, 1)),
            ((1, 16), (Flavour.NUTAU_CC, 0)), ((0, -14), (Flavour.NC, 1)),
            ((1, 2112), (-1, 0))]


def make_event(i: int, n_hits: int, dune, generation: str) -> dict:
    """One synthetic NuML event (deterministic in i): hits, particles, deposits, truth."""
    rng = np.random.default_rng(i)
    view = rng.integers(0, 3, n_hits)
    wire = rng.integers(0, 800, n_hits)
    time = rng.uniform(0, 4000, n_hits).astype(np.float32)
    hits = {"hit_id": 1000 + rng.permutation(n_hits), "integral": rng.uniform(10, 500, n_hits),
            "rms": rng.uniform(1, 5, n_hits), "tpc": np.zeros(n_hits, int)}
    cfg = dune.config
    pitch = np.array([p.pitch_cm for p in cfg.planes])
    cm_per_tick = cfg.tick_us * cfg.drift_velocity_cm_per_us
    names = GENERATIONS[generation]
    if generation == "proj":
        # proj/drift in cm: wire centre projection and drift coordinate (HDF5Maker 2025).
        hits.update({"plane": view, "wire": wire, "time": time, names[0]: view,
                     names[1]: wire * pitch[view], names[2]: time * cm_per_tick})
    else:
        hits.update({names[0]: view, names[1]: wire.astype(np.float32), names[2]: time})
    pdg = np.array([p[0] for p in PRIMARIES] + [11, 22])
    mom = np.array([p[1] for p in PRIMARIES] + [0.03, 0.1])
    g4 = np.arange(1, len(pdg) + 1)
    parent = np.r_[np.zeros(len(PRIMARIES), int), 1, 6]   # Michel e from the μ, γ from the π0
    process = [b"primary"] * len(PRIMARIES) + [b"Decay", b"Decay"]
    particles = {"g4_id": g4, "type": pdg, "parent_id": parent, "momentum": mom,
                 "start_position": rng.uniform(0, 100, (len(pdg), 3)),
                 "end_position": rng.uniform(0, 100, (len(pdg), 3)),
                 "start_process": np.array(process), "end_process": np.array([b"none"] * len(pdg))}
    # two deposits on every hit except the last (noise): particles g4 1 and 2.
    dep_hits = np.repeat(hits["hit_id"][:-1], 2) if n_hits else np.zeros(0, int)
    n_dep = len(dep_hits)
    edeps = {"hit_id": dep_hits, "g4_id": np.tile([1, 2], n_dep // 2),
             "energy": rng.uniform(0.1, 2.0, n_dep), "x_position": rng.uniform(0, 300, n_dep),
             "y_position": rng.uniform(-500, 500, n_dep), "z_position": rng.uniform(0, 1000, n_dep)}
    (is_cc, nu_pdg), _ = NU_CASES[i % len(NU_CASES)]
    event = {"is_cc": is_cc, "nu_pdg": nu_pdg, "nu_energy": 2.0 + i, "lep_energy": 1.0 + 0.5 * i,
             "nu_vtx": [10.0 + i, -5.0, 100.0]}
    return {"id": (7, 3, 100 + i), "event": event, "hit_table": hits, "particle_table": particles,
            "edep_table": edeps}


def write_numl(path, events, index: str = "seq_cnt", chunks: bool = True):
    """Write ``events`` (from make_event) as a NuML file; ``index`` in seq_cnt, seq, none."""
    with h5py.File(path, "w") as f:
        for table in TABLES:
            rows = [ev["event"] if table == "event_table" else ev[table] for ev in events]
            counts = [1 if table == "event_table" else len(next(iter(r.values()))) for r in rows]
            g = f.create_group(table)
            ids = np.concatenate([np.tile(ev["id"], (c, 1)) for ev, c in zip(events, counts)])
            _column(g, "event_id", ids.astype(np.int32).reshape(-1, 3), chunks)
            for name in rows[0]:
                parts = [np.asarray(r[name]) for r in rows]
                parts = [a.reshape(1, -1) if table == "event_table"
                         else a.reshape(len(a), -1 if len(a) else 1) if a.ndim == 1 else a
                         for a in parts]
                _column(g, name, np.concatenate(parts), chunks)
            seq = np.repeat(np.arange(len(events)), counts)
            if index == "seq_cnt":
                keep = np.asarray(counts) > 0
                sc = np.stack([np.arange(len(events))[keep], np.asarray(counts)[keep]], axis=1)
                g.create_dataset("event_id.seq_cnt", data=sc.astype(np.int64))
            elif index == "seq":
                g.create_dataset("event_id.seq", data=seq.reshape(-1, 1).astype(np.int64))
    return path


def _column(group, name, data, chunks):
    data = np.asarray(data)
    if data.ndim == 1:
        data = data.reshape(-1, 1)
    kw = {"chunks": (max(1, min(len(data), 64)), data.shape[1]), "compression": "gzip"} \
        if chunks and len(data) else {}
    group.create_dataset(name, data=data, **kw)


@pytest.fixture
def events(dune):
    return [make_event(i, n, dune, "global") for i, n in enumerate([30, 0, 45, 12, 60])]


@pytest.mark.parametrize("generation", list(GENERATIONS))
def test_generations_hits_and_positions(tmp_path, dune, generation):
    evs = [make_event(i, 40 + i, dune, generation) for i in range(4)]
    path = write_numl(tmp_path / "a.h5", evs)
    with NuMLReader(path) as f:
        assert len(f) == 4 and f.detector.name == "dune"
        for i, ev in enumerate(evs):
            got = f.read(i)
            h = ev["hit_table"]
            assert got.event_id == (7, 3, 100 + i)
            np.testing.assert_array_equal(got.hits["view"], h[GENERATIONS[generation][0]])
            np.testing.assert_allclose(got.hits["charge"], h["integral"], rtol=1e-6)
            np.testing.assert_allclose(got.hits["width"], h["rms"], rtol=1e-6)
            pos = f.detector.hit_positions(got.hits["view"], got.hits["wire"], got.hits["time"])
            if generation == "proj":  # positions are (proj, drift) in cm
                np.testing.assert_allclose(pos[:, 0], h["proj"], rtol=1e-5)
                np.testing.assert_allclose(pos[:, 1], h["drift"], rtol=1e-5)
                np.testing.assert_array_equal(got.hits["wire"], h["wire"])
            else:
                np.testing.assert_array_equal(got.hits["wire"], h[GENERATIONS[generation][1]])
                np.testing.assert_allclose(got.hits["time"], h[GENERATIONS[generation][2]])
            np.testing.assert_array_equal(
                pos, dune.hit_positions(got.hits["view"], got.hits["wire"], got.hits["time"]))


def test_generation_preference_and_override(tmp_path, dune):
    ev = make_event(0, 20, dune, "global")
    h = ev["hit_table"]
    h.update({"local_plane": h["global_plane"], "local_wire": h["global_wire"] + 5,
              "local_time": h["global_time"]})
    path = write_numl(tmp_path / "a.h5", [ev])
    with NuMLReader(path) as f:   # global_* preferred over local_* (as in pynuml)
        np.testing.assert_array_equal(f[0].hits["wire"], h["global_wire"])
    with NuMLReader(path, generation="local") as f:
        np.testing.assert_array_equal(f[0].hits["wire"], h["global_wire"] + 5)
    with pytest.raises(ConfigError, match="generation 'nope'"):
        NuMLReader(path, generation="nope")


@pytest.mark.parametrize("index", ["seq_cnt", "seq", "none"])
def test_indexing_variants_and_empty_event(tmp_path, events, index):
    path = write_numl(tmp_path / f"{index}.h5", events, index=index)
    with open_source(path, "numl") as f:
        assert [e.n_hits for e in f] == [len(ev["hit_table"]["hit_id"]) for ev in events]
        empty = f[1]
        assert empty.n_hits == 0 and len(empty.particles) == len(PRIMARIES) + 2
        assert set(empty.hits.columns) >= {"view", "wire", "time", "charge", "width", "energy"}
        np.testing.assert_array_equal(f.event_ids(), [ev["id"] for ev in events])
        for i, ev in enumerate(events):
            np.testing.assert_allclose(f[i].hits["time"], ev["hit_table"]["global_time"])


def test_read_range_matches_single_reads(tmp_path, events):
    path = write_numl(tmp_path / "a.h5", events)
    with NuMLReader(path) as f:
        block = f.read_range(1, 5)
        for j, got in enumerate(block):
            one = f[1 + j]
            assert got.event_id == one.event_id and got.truth == one.truth
            for k in one.hits.columns:
                np.testing.assert_array_equal(got.hits[k], one.hits[k])
            for k in one.particles.columns:
                np.testing.assert_array_equal(got.particles[k], one.particles[k])


def test_truth_mapping(tmp_path, events):
    path = write_numl(tmp_path / "a.h5", events)
    with NuMLReader(path) as f:
        table = f.truth()
        for i, ev in enumerate(events):
            t = f[i].truth
            (_, nu_pdg), (flavour, is_antinu) = NU_CASES[i % len(NU_CASES)]
            assert (t.flavour, t.is_antinu, t.nu_pdg) == (flavour, is_antinu, nu_pdg)
            assert t.interaction == -1 and t.mode == -1          # NuML stores no mode
            assert t.nu_energy == pytest.approx(2.0 + i)
            assert t.lep_energy == pytest.approx(1 + 0.5 * i)
            assert t.y == pytest.approx(1 - (1 + 0.5 * i) / (2.0 + i))
            assert (t.vtx_x, t.vtx_y, t.vtx_z) == pytest.approx((10.0 + i, -5.0, 100.0))
            for label, raw in EXPECTED_RAW.items():
                assert getattr(t, f"{label}_raw") == raw and getattr(t, label) == raw
            for k in table:
                np.testing.assert_equal(table[k][i], getattr(t, k))


def test_truth_without_neutrino_info_or_particles(tmp_path, events):
    path = write_numl(tmp_path / "a.h5", events)
    with h5py.File(path, "a") as f:
        for name in ("is_cc", "nu_pdg", "nu_energy", "lep_energy", "nu_vtx"):
            del f["event_table"][name]
        del f["particle_table"]
    with NuMLReader(path) as f:
        t = f[0].truth
        assert (t.flavour, t.is_antinu, t.n_proton, t.n_neutron_raw) == (-1, -1, -1, -1)
        assert np.isnan(t.nu_energy) and f[0].particles is None
        assert "particle" not in f[0].hits and "energy" in f[0].hits
        assert np.all(f.truth()["n_proton"] == -1)


def test_visibility_follows_detector_config(tmp_path, events):
    """Raising the proton threshold above 82 MeV (the counted proton's KE) drops it."""
    import yaml
    from gnnu.config import CONFIG_ROOT
    cfg = yaml.safe_load((CONFIG_ROOT / "detectors" / "dune.yaml").read_text())
    cfg["visibility"]["proton_ke_mev"] = 100.0
    det = tmp_path / "strict.yaml"
    det.write_text(yaml.safe_dump(cfg))
    path = write_numl(tmp_path / "a.h5", events)
    with NuMLReader(path, detector=det) as f:
        assert f[0].truth.n_proton_raw == 0 and f.truth()["n_proton_raw"][0] == 0


def test_hit_truth_from_edeps(tmp_path, events):
    path = write_numl(tmp_path / "a.h5", events)
    with NuMLReader(path) as f:
        ev, got = events[2], f[2]
        h, d = ev["hit_table"], ev["edep_table"]
        for j in (0, 7, len(h["hit_id"]) - 2):
            sel = d["hit_id"] == h["hit_id"][j]
            e = d["energy"][sel]
            assert got.hits["energy"][j] == pytest.approx(e.sum(), rel=1e-6)
            assert got.hits["x"][j] == pytest.approx((e * d["x_position"][sel]).sum() / e.sum(),
                                                     rel=1e-5)
            best_g4 = d["g4_id"][sel][np.argmax(e)]
            assert got.particles["pdg"][got.hits["particle"][j]] == \
                ev["particle_table"]["type"][best_g4 - 1]
        noise = -1   # the last hit has no deposit
        assert got.hits["energy"][noise] == 0 and np.isnan(got.hits["z"][noise])
        assert got.hits["particle"][noise] == -1


def test_particles_parents_and_processes(tmp_path, events):
    path = write_numl(tmp_path / "a.h5", events)
    with NuMLReader(path) as f:
        p = f[3].particles
        n_prim = len(PRIMARIES)
        assert list(p["parent"][:n_prim]) == [-1] * n_prim
        assert p["parent"][n_prim] == 0 and p["pdg"][0] == 13      # Michel e ← μ
        assert p["parent"][n_prim + 1] == 5 and p["pdg"][5] == 111  # γ ← π0
        assert list(p["process"]) == [Process.PRIMARY] * n_prim + [Process.DECAY] * 2
        # total energy √(p² + m²), proton p = 0.4 GeV/c, m = 0.938272 GeV (PDG)
        assert p["energy"][1] == pytest.approx(np.hypot(0.4, 0.93827208816), rel=1e-6)
        assert np.all(np.isnan(p["px"]))
    assert process_code("muMinusCaptureAtRest") == Process.CAPTURE
    assert process_code("conv") == Process.EM and process_code("hIoni") == Process.DELTA
    assert process_code("protonInelastic") == Process.HADRONIC


def test_missing_hit_column_is_schema_error(tmp_path, events):
    path = write_numl(tmp_path / "a.h5", events)
    with h5py.File(path, "a") as f:
        del f["hit_table/integral"]
    with pytest.raises(SchemaError, match=r"a\.h5: missing column hit_table/integral"):
        NuMLReader(path)


def test_incomplete_generation_names_column(tmp_path, dune):
    path = write_numl(tmp_path / "a.h5", [make_event(0, 10, dune, "proj")])
    with h5py.File(path, "a") as f:
        del f["hit_table/drift"]
    with pytest.raises(SchemaError, match="hit_table/drift"):
        NuMLReader(path)


def test_no_position_columns(tmp_path, events):
    path = write_numl(tmp_path / "a.h5", events)
    with h5py.File(path, "a") as f:
        for name in GENERATIONS["global"]:
            del f["hit_table"][name]
    with pytest.raises(SchemaError, match="no hit position columns"):
        NuMLReader(path)


def test_not_a_numl_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = [1]
    with pytest.raises(SchemaError, match="missing group /event_table"):
        NuMLReader(path)


def test_nan_integral_names_event(tmp_path, events):
    events[3]["hit_table"]["integral"][4] = np.nan
    path = write_numl(tmp_path / "a.h5", events)
    with NuMLReader(path) as f:
        f[2]   # other events still read
        with pytest.raises(InputError, match=r"a\.h5: event 3 \(id \(7, 3, 103\)\): "
                                             r"non-finite hit_table/integral"):
            f[3]
        with pytest.raises(InputError, match="event 3"):
            f.validate()


def test_view_outside_detector_names_event(tmp_path, events):
    events[2]["hit_table"]["global_plane"][0] = 3
    path = write_numl(tmp_path / "a.h5", events)
    with NuMLReader(path) as f:
        with pytest.raises(InputError, match=r"event 2 .*global_plane = 3 outside the 3 views"):
            f[2]


def test_inconsistent_index_is_one_error(tmp_path, events):
    path = write_numl(tmp_path / "a.h5", events)
    with h5py.File(path, "a") as f:
        f["hit_table/event_id.seq_cnt"][0, 1] += 1
    with pytest.raises(InputError, match=r"hit_table/event_id\.seq_cnt inconsistent"):
        NuMLReader(path)


def test_index_pointing_at_wrong_rows(tmp_path, events):
    """seq_cnt totals right but split wrongly: rows then carry another event's id."""
    path = write_numl(tmp_path / "a.h5", events)
    with h5py.File(path, "a") as f:
        sc = f["hit_table/event_id.seq_cnt"]
        sc[0, 1] += 5
        sc[1, 1] -= 5   # row 1 is event 2 (event 1 has no hits)
    with NuMLReader(path) as f:
        with pytest.raises(InputError, match=r"event 0 .*carries event id \(7, 3, 102\)"):
            f[0]


def test_duplicate_hit_ids_named(tmp_path, events):
    events[0]["hit_table"]["hit_id"][1] = events[0]["hit_table"]["hit_id"][0]
    path = write_numl(tmp_path / "a.h5", events)
    with NuMLReader(path) as f:
        with pytest.raises(InputError, match="event 0 .*duplicate hit_id"):
            f[0]


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_file_is_one_clear_error(tmp_path, dune, keep):
    evs = [make_event(i, 300, dune, "global") for i in range(20)]
    path = write_numl(tmp_path / "a.h5", evs)
    bad = tmp_path / "trunc.h5"
    bad.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])
    with pytest.raises(InputError, match="trunc.h5"):
        with NuMLReader(bad) as f:
            f.validate()
            f.truth()


def test_corrupt_bytes_and_missing_file(tmp_path):
    bad = tmp_path / "junk.h5"
    bad.write_bytes(b"\x89HDF\r\n" + bytes(range(256)) * 10)
    with pytest.raises(InputError, match="junk.h5: not a readable HDF5 file"):
        NuMLReader(bad)
    with pytest.raises(InputError, match="nope.h5: file not found"):
        NuMLReader(tmp_path / "nope.h5")


def test_corrupt_chunk_names_event(tmp_path, events):
    """Garbage in one compressed chunk of hit_table/integral: open works, that read fails."""
    path = write_numl(tmp_path / "a.h5", events)
    with h5py.File(path, "r") as f:
        info = f["hit_table/integral"].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[info.byte_offset: info.byte_offset + info.size] = b"\xff" * info.size
    path.write_bytes(bytes(data))
    with NuMLReader(path) as f:
        with pytest.raises(InputError, match=r"a\.h5: event 0 .*cannot read hit_table"):
            f[0]
