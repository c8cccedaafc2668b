"""Fuzzing the NuML HDF5 reader (issue #8): truncations, bit flips, overwritten byte runs and
structural HDF5 mutations (:mod:`fuzz_hdf5`) of a small NuML file in HDF5Maker's layout after
ph5concat indexing (built with :func:`test_numl.write_numl`).

NuML files come from LArSoft (HDF5 "earliest" format, gzip chunks with zlib's Adler-32, no
metadata checksums), so a flipped bit can be undetectable: such a byte-level case may read,
but then every event must still be one the reader could return for *some* valid file
(:func:`plausible`: finite hit values, view ids of the detector, parents and hit→particle links
inside the event, labels in range, 32-bit integers that fit). Structural mutations have exact
oracles (:func:`expectation`): the columns the reader maps one to one (hit charge/width/time/
wire/view, the event table's truth) directly, the particle and deposit tables (and hit ids)
through :func:`model_event`, an independent per-event model of what the reader must return
(or reject) for the mutated values; changes of the row index (``event_id``,
``event_id.seq_cnt``) must be rejected; unknown objects must be ignored.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fuzz_hdf5
from fuzzlib import (Base, difference, flip_bits, fuzz_settings, judge, read_source, record_outcome,
                     splat)
from gnnu.events import HIT_COLUMNS, PARTICLE_COLUMNS, Truth, bucket_count
from gnnu.io.numl import NuMLReader, process_code
from gnnu.sim.pdg import MASS_GEV
from test_numl import make_event, write_numl

READER = "numl"
HITS_PER_EVENT = [30, 0, 45, 12, 20]          # event 1 has no hits (but particles)
N_VIEWS = 3
#: Objects the reader never uses: any change to them must leave the reading identical.
IGNORED = {"hit_table/tpc", "particle_table/end_process", "event_table/event_id.seq_cnt"}
#: Objects whose absence (or damage) makes the file unreadable.
REQUIRED = {"event_table", "hit_table", "event_table/event_id", "event_table/is_cc",
            "event_table/nu_pdg", "hit_table/event_id", "hit_table/integral", "hit_table/rms",
            "hit_table/global_plane", "hit_table/global_wire", "hit_table/global_time",
            "particle_table/event_id", "particle_table/g4_id", "particle_table/type",
            "particle_table/parent_id", "particle_table/momentum", "edep_table/event_id",
            "edep_table/hit_id", "edep_table/g4_id", "edep_table/energy"}
#: Row-index objects: any change of their values must be rejected.
INDEX = {f"{t}/{c}" for t in ("hit_table", "particle_table", "edep_table")
         for c in ("event_id", "event_id.seq_cnt")} | {"event_table/event_id"}
#: hit_table column → (hit field, dtype); the mapping of the "global" generation.
DIRECT_HITS = {"integral": "charge", "rms": "width", "global_time": "time",
               "global_wire": "wire", "global_plane": "view"}
DIRECT_EVENTS = {"is_cc", "nu_pdg", "nu_energy", "lep_energy", "nu_vtx"}
HIT_TRUTH = ("x", "y", "z", "energy", "particle")
INT32 = (-2**31, 2**31 - 1)


@pytest.fixture(scope="module")
def base(tmp_path_factory, dune):
    """A NuML file of 5 events (one without hits) and its reference reading."""
    root = tmp_path_factory.mktemp("fuzz_numl")
    events = [make_event(i, n, dune, "global") for i, n in enumerate(HITS_PER_EVENT)]
    path = write_numl(root / "base.h5", events)
    reference = read_source(NuMLReader, path)
    assert not reference.rejected and len(reference.events) == len(HITS_PER_EVENT)
    assert [len(r["hits.view"]) for r in reference.events] == HITS_PER_EVENT
    base = Base(root, path, path.read_bytes(), reference.events)
    base.visibility = dune.config.visibility
    original = fuzz_hdf5.values(path)
    # the model reproduces the reader on the valid file, so its mutated predictions mean something
    assert not any(difference(model_event(original, original, i, r, base.visibility), r)
                   for i, r in enumerate(base.reference))
    return base


# -- what any NuML event read may look like -----------------------------------------------------
def plausible(rec: dict) -> None:
    """Assert ``rec`` is an event the reader may return for some valid NuML file."""
    assert isinstance(rec["event_id"], tuple) and len(rec["event_id"]) == 3
    assert all(INT32[0] <= v <= INT32[1] for v in rec["event_id"])
    hits = {k[5:]: v for k, v in rec.items() if k.startswith("hits.")}
    parts = {k[10:]: v for k, v in rec.items() if k.startswith("particles.")}
    assert len({len(v) for v in hits.values()}) == 1, "hit columns of different lengths"
    for k, v in hits.items():
        assert v.dtype == HIT_COLUMNS[k][0], f"hits.{k} has dtype {v.dtype}"
    for k in ("time", "charge", "width"):
        assert np.isfinite(hits[k]).all(), f"non-finite hits.{k} accepted"
    assert ((hits["view"] >= 0) & (hits["view"] < N_VIEWS)).all()
    n_particles = len(parts["pdg"]) if parts else 0
    if parts:
        assert len({len(v) for v in parts.values()}) == 1, "particle columns of different lengths"
        for k, v in parts.items():
            assert v.dtype == PARTICLE_COLUMNS[k][0], f"particles.{k} has dtype {v.dtype}"
        assert ((parts["parent"] >= -1) & (parts["parent"] < n_particles)).all()
    if "particle" in hits:
        assert ((hits["particle"] >= -1) & (hits["particle"] < n_particles)).all()
    t = {k[6:]: v for k, v in rec.items() if k.startswith("truth.")}
    assert t["flavour"] in (-1, 0, 1, 2, 3) and t["is_antinu"] in (-1, 0, 1)
    assert t["interaction"] == -1 and t["mode"] == -1
    for label in ("n_proton", "n_charged_pion", "n_neutral_pion", "n_neutron"):
        assert t[label] == int(bucket_count(t[f"{label}_raw"]))
    assert all(INT32[0] <= v <= INT32[1] for k, v in t.items() if isinstance(v, int))


# -- byte-level damage ----------------------------------------------------------------------------
def _check(base, data: bytes, kind: str) -> str:
    """Read damaged bytes: rejected, identical, or "changed, undetectable" if plausible. Only
    here is there no exact oracle: NuML files carry no metadata checksums, so a damaged byte
    that HDF5 still parses yields a different *valid* file — a table's name garbled into an
    unknown one (the file then has no such table; the one such case in the tally), a fill value,
    a dimension or chunk address changed — and what it holds is defined only by the HDF5
    library's own reading of the damaged metadata, which the test cannot predict independently."""
    path = base.root / "case.h5"
    path.write_bytes(data)
    return judge(READER, kind, read_source(NuMLReader, path), base.reference,
                 plausible=plausible)


@fuzz_settings(30)
@given(cut=st.floats(0, 1, exclude_max=True))
def test_truncated_files(base, cut):
    assert _check(base, base.data[: int(cut * len(base.data))], "truncation") == "rejected"


@fuzz_settings(100)
@given(flips=st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 7)), min_size=1, max_size=4))
def test_bit_flips(base, flips):
    _check(base, flip_bits(base.data, flips), "bit flips")


@fuzz_settings(40)
@given(start=st.integers(0, 2**31), chunk=st.binary(min_size=1, max_size=64) | st.just(bytes(512)))
def test_overwritten_bytes(base, start, chunk):
    _check(base, splat(base.data, start, chunk), "overwritten bytes")


# -- structural mutations -------------------------------------------------------------------------
def _owners(original: dict, table: str) -> np.ndarray:
    """Event of each row of ``table`` (from its seq_cnt index in the unmutated file)."""
    sc = original[f"{table}/event_id.seq_cnt"]
    return np.repeat(sc[:, 0], sc[:, 1])


def _flat(values: np.ndarray) -> np.ndarray:
    return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values


def _expected_truth(rec: dict, ev: dict, i: int) -> None:
    """Set the event-table truth of ``rec`` from the event-table columns ``ev`` (docs/design.md#labels)."""
    is_cc, pdg = bool(ev["is_cc"][i] != 0), int(ev["nu_pdg"][i])
    apdg = abs(pdg)
    rec["truth.flavour"] = (3 if not is_cc else 0 if apdg == 14 else 1 if apdg == 12
                            else 2 if apdg == 16 else -1)
    rec["truth.is_antinu"] = 0 if pdg > 0 else 1 if pdg < 0 else -1
    rec["truth.nu_pdg"] = pdg
    nu = float(ev["nu_energy"][i]) if "nu_energy" in ev else float("nan")
    lep = float(ev["lep_energy"][i]) if "lep_energy" in ev else float("nan")
    rec["truth.nu_energy"], rec["truth.lep_energy"] = nu, lep
    with np.errstate(all="ignore"):
        rec["truth.y"] = float(1.0 - lep / nu) if nu > 0 else float("nan")
    for j, c in enumerate("xyz"):
        rec[f"truth.vtx_{c}"] = float(ev["nu_vtx"][i, j]) if "nu_vtx" in ev else float("nan")


def _derived(reference, original: dict, table: str, column: str, new: np.ndarray | None):
    """(expected records, must reject) when ``table/column`` holds ``new`` (None: deleted)."""
    expected = [dict(r) for r in reference]
    if table == "event_table":
        ev = {c: _flat(original[f"event_table/{c}"]) for c in DIRECT_EVENTS}
        if new is None:
            del ev[column]
        else:
            ev[column] = _flat(new)
        if not INT32[0] <= int(ev["nu_pdg"].min()) <= int(ev["nu_pdg"].max()) <= INT32[1]:
            return None, True
        for i, rec in enumerate(expected):
            _expected_truth(rec, ev, i)
        return expected, False
    values = _flat(new)
    if column != "global_wire" and column != "global_plane":
        values = values.astype(np.float32)
        if not np.isfinite(values).all():
            return None, True
    elif column == "global_plane":
        if not ((values >= 0) & (values < N_VIEWS)).all():
            return None, True
        values = values.astype(np.int8)
    else:
        if not np.isfinite(values).all():
            return None, True
        values = np.rint(values.astype(np.float64))
        if not (INT32[0] <= values.min() and values.max() <= INT32[1]):
            return None, True
        values = values.astype(np.int32)
    owner = _owners(original, "hit_table")
    for i, rec in enumerate(expected):
        rec[f"hits.{DIRECT_HITS[column]}"] = values[owner == i]
    return expected, False


def _without(reference, drop) -> list[dict]:
    return [{k: v for k, v in r.items() if not drop(k)} for r in reference]


def _deleted(m, reference, original):
    """(expected, must reject) after deleting object ``m.name`` (or replacing it by a link)."""
    table, _, column = m.name.partition("/")
    if m.name in REQUIRED:
        return None, True
    if column.endswith("seq_cnt"):
        return reference, False                   # rows are then matched by event_id
    if m.name == "particle_table":
        expected = _without(reference, lambda k: k.startswith("particles.") or k == "hits.particle")
        for rec in expected:
            for label in ("n_proton", "n_charged_pion", "n_neutral_pion", "n_neutron"):
                rec[f"truth.{label}"] = rec[f"truth.{label}_raw"] = -1
        return expected, False
    if m.name in ("edep_table", "hit_table/hit_id"):
        return _without(reference, lambda k: k in {f"hits.{c}" for c in HIT_TRUTH}), False
    if table == "edep_table" and column.endswith("_position"):
        return _without(reference, lambda k: k in ("hits.x", "hits.y", "hits.z")), False
    if m.name == "particle_table/start_process":
        expected = [dict(r) for r in reference]
        for rec in expected:
            rec["particles.process"] = np.full(len(rec["particles.pdg"]), -1, np.int8)
        return expected, False
    if table == "particle_table" and column.endswith("_position"):
        end = column.split("_")[0]
        expected = [dict(r) for r in reference]
        for rec in expected:
            for c in "xyz":
                rec[f"particles.{end}_{c}"] = np.full(len(rec["particles.pdg"]), np.nan, np.float32)
        return expected, False
    if table == "event_table" and column in DIRECT_EVENTS:
        return _derived(reference, original, table, column, None)
    raise AssertionError(f"no oracle for deleting {m.name}")


#: |PDG| counted by each count label and the visibility field with its threshold (docs/design.md#labels).
COUNTED = {"n_proton": (2212, "proton_ke_mev"), "n_charged_pion": (211, "charged_pion_ke_mev"),
           "n_neutral_pion": (111, "neutral_pion_ke_mev"), "n_neutron": (2112, "neutron_ke_mev")}


def _rows_of(original: dict, table: str, i: int) -> np.ndarray:
    """Row numbers of event ``i`` in ``table`` (from its unmutated seq_cnt index)."""
    owner = _owners(original, table)
    return np.flatnonzero(owner == i)


def model_event(values: dict, original: dict, i: int, ref: dict, visibility) -> dict | None:
    """What NuMLReader must return for event ``i`` when the particle table, the deposit table
    and ``hit_table/hit_id`` hold ``values`` (the file's datasets; row index as in ``original``,
    other columns as in the reference record ``ref``); None: the event must be rejected.

    Written independently of the reader, one particle and one deposit at a time (docs/design.md#labels and
    the NuML mapping): integers must fit in int32, g4 ids and hit ids be unique in the event and
    every deposit's hit id name a hit of the event, process names be text; a particle's parent
    is the row of the particle whose g4 id is its parent id (else −1), its energy √(p² + m²);
    a hit's energy is the sum of its deposits, its position their energy-weighted mean (NaN
    unless the sum is > 0), its particle the one of its largest (non-NaN, first on ties) deposit.
    """
    def col(name, rows):
        a = values[name][rows]
        return a[:, 0] if a.ndim == 2 and a.shape[1] == 1 else a

    hits, parts, deps = (_rows_of(original, t, i) for t in ("hit_table", "particle_table",
                                                            "edep_table"))
    ints = {name: [int(v) for v in col(name, rows)] for name, rows in (
        ("hit_table/hit_id", hits), ("particle_table/g4_id", parts), ("particle_table/type", parts),
        ("particle_table/parent_id", parts), ("edep_table/hit_id", deps),
        ("edep_table/g4_id", deps))}
    if any(not INT32[0] <= v <= INT32[1] for vs in ints.values() for v in vs):
        return None
    hit_id, g4, pdg, parent_id, dep_hit, dep_g4 = ints.values()
    hit_of = {h: k for k, h in enumerate(hit_id)}
    part_of = {g: k for k, g in enumerate(g4)}
    if len(hit_of) < len(hit_id) or len(part_of) < len(g4) or any(h not in hit_of for h in dep_hit):
        return None
    try:
        names = [v.decode() for v in col("particle_table/start_process", parts)]
    except UnicodeDecodeError:
        return None
    rec = dict(ref)
    momentum = [np.float64(p) for p in col("particle_table/momentum", parts)]
    energy = []
    for p, code in zip(momentum, pdg):
        m = MASS_GEV.get(abs(code), np.nan)
        energy.append(np.sqrt(p * p + m * m))
    rec["particles.pdg"] = np.array(pdg, np.int32)
    rec["particles.parent"] = np.array([part_of.get(p, -1) for p in parent_id], np.int32)
    rec["particles.process"] = np.array([process_code(n) for n in names], np.int8)
    rec["particles.energy"] = np.array(energy, np.float64).astype(np.float32)
    for end in ("start", "end"):
        pos = values[f"particle_table/{end}_position"][parts]
        for j, c in enumerate("xyz"):
            rec[f"particles.{end}_{c}"] = pos[:, j].astype(np.float32)
    for c in ("px", "py", "pz"):
        rec[f"particles.{c}"] = np.full(len(parts), np.nan, np.float32)
    for label, (code, field) in COUNTED.items():
        m, threshold = MASS_GEV[code], getattr(visibility, field)
        n = sum(1 for q, par, p in zip(pdg, parent_id, momentum)
                if par == 0 and abs(q) == code and (np.sqrt(p * p + m * m) - m) * 1e3 >= threshold)
        rec[f"truth.{label}_raw"], rec[f"truth.{label}"] = n, int(bucket_count(n))
    weight = [np.float64(w) for w in col("edep_table/energy", deps)]
    where = {c: [np.float64(v) for v in col(f"edep_table/{c}_position", deps)] for c in "xyz"}
    total = [np.float64(0.0)] * len(hits)
    moment = {c: [np.float64(0.0)] * len(hits) for c in "xyz"}
    largest = [None] * len(hits)
    with np.errstate(all="ignore"):
        for d, h in enumerate(dep_hit):
            k = hit_of[h]
            total[k] += weight[d]
            for c in "xyz":
                moment[c][k] += weight[d] * where[c][d]
            if not np.isnan(weight[d]) and (largest[k] is None or weight[d] > weight[largest[k]]):
                largest[k] = d
        rec["hits.energy"] = np.array(total, np.float64).astype(np.float32)
        for c in "xyz":
            mean = [moment[c][k] / t if t > 0 else np.nan for k, t in enumerate(total)]
            rec[f"hits.{c}"] = np.array(mean, np.float64).astype(np.float32)
    rec["hits.particle"] = np.array([-1 if d is None else part_of.get(dep_g4[d], -1)
                                     for d in largest], np.int32)
    return rec


def expectation(m: fuzz_hdf5.Mutation, reference, original: dict, mutated=None, visibility=None):
    """(expected records, must the file be rejected) after mutation ``m``; an expected record
    None: that event must be rejected. ``mutated()`` gives the mutated file's datasets (for the
    particle and deposit tables, :func:`model_event`, with the detector's ``visibility``)."""
    table, _, column = m.name.partition("/")
    if m.op in ("attr_delete", "attr_set", "add") or m.name in IGNORED:
        return reference, False
    if m.op in ("delete", "link"):
        return _deleted(m, reference, original)
    if m.op in ("as_group", "resize"):
        return None, True
    old = original[m.name]
    if m.op == "reshape":
        new = fuzz_hdf5.rewritten(old, m)
        if new.shape == old.shape:
            return reference, False
        if old.ndim == 2 and old.shape[1] == 1 and new.shape == old.shape[:1]:
            return reference, False               # (n,) for (n, 1): the same column
        return None, True
    if m.op == "retype":
        new = fuzz_hdf5.rewritten(old, m)
        if old.dtype.kind == "S":
            return reference, False               # process names fit in 8 bytes
        if new.dtype.kind == "S" or (old.dtype.kind in "iu" and new.dtype.kind == "f"):
            return None, True                     # numbers as text; integers as floats
    else:
        index, value = m.arg
        new = old.copy()
        new[index] = fuzz_hdf5.cast(value, old.dtype)
    if np.array_equal(new, old, equal_nan=old.dtype.kind == "f"):
        return reference, False
    if m.name in INDEX:
        return None, True
    if new.dtype.kind in "iu" and (new.min() < INT32[0] or new.max() > INT32[1]):
        return None, True                         # HDF5Maker writes 32-bit integers
    if table == "hit_table" and column in DIRECT_HITS:
        return _derived(reference, original, table, column, new)
    if table == "event_table" and column in DIRECT_EVENTS:
        return _derived(reference, original, table, column, new)
    if table in ("particle_table", "edep_table") or m.name == "hit_table/hit_id":
        values = mutated()
        return [model_event(values, original, i, r, visibility)
                for i, r in enumerate(reference)], False
    raise AssertionError(f"no oracle for {m}")


@pytest.mark.slow
@fuzz_settings(200)
@given(data=st.data())
def test_structural_mutations(base, data):
    root, path, reference = base.root, base.path, base.reference
    datasets, groups, attrs = fuzz_hdf5.objects(path)
    original = fuzz_hdf5.values(path)
    m = data.draw(fuzz_hdf5.mutations(datasets, groups, attrs))
    # text columns (process names) cannot be rewritten as numbers
    assume(not (m.op == "retype" and original[m.name].dtype.kind == "S" and m.arg != "S8"))
    case = root / "case.h5"
    fuzz_hdf5.apply(m, path, case)
    expected, must_reject = expectation(m, reference, original, lambda: fuzz_hdf5.values(case),
                                        base.visibility)
    # exact oracles only: a structural mutation leaves a file whose correct read is known (in a
    # file that must be rejected, the events still read must be those of the reference)
    outcome = judge(READER, m.kind, read_source(NuMLReader, case),
                    expected if expected is not None else reference, reference, must_reject)
    if m.op in ("add", "attr_set", "attr_delete") or (m.name in IGNORED and m.op != "link"):
        assert outcome == "read: identical", "an unused or unknown object must be ignored"


#: Columns :func:`model_event` predicts: every value of these may change (row index excepted).
MODELLED = ("particle_table/g4_id", "particle_table/type", "particle_table/parent_id",
            "particle_table/momentum", "particle_table/start_position",
            "particle_table/end_position", "particle_table/start_process", "edep_table/hit_id",
            "edep_table/g4_id", "edep_table/energy", "edep_table/x_position",
            "edep_table/y_position", "edep_table/z_position", "hit_table/hit_id")


@st.composite
def _model_mutations(draw, original: dict) -> fuzz_hdf5.Mutation:
    """Set one value of a particle/deposit/hit-id column: to another row's value (duplicate ids,
    links to another particle or hit, ties), a neighbour of it, its negative (also one large
    enough to make a hit's deposit sum negative), or a special value."""
    # deposit energies weigh three derived hit columns (energy, position, particle): drawn 3×
    name = draw(st.sampled_from(MODELLED + ("edep_table/energy",) * 2))
    old = original[name]
    index = tuple(draw(st.integers(0, n - 1)) for n in old.shape)
    other = old[tuple(draw(st.integers(0, n - 1)) for n in old.shape)]
    if old.dtype.kind == "S":
        value = draw(st.sampled_from((other, b"conv", b"nCapture", b"", b"\xff\xfe", b"Decay\x80"))
                     | st.binary(max_size=8))
    elif old.dtype.kind in "iu":
        value = draw(st.sampled_from((other, other + 1, other - 1, 0, -other))
                     | st.sampled_from(fuzz_hdf5.INT_VALUES))
    else:
        value = draw(st.sampled_from((other, -other, 0.0, 2 * other, -10 - abs(other))
                                     + fuzz_hdf5.FLOAT_VALUES))
    return fuzz_hdf5.Mutation("set", name, (index, value))


@pytest.mark.slow
@fuzz_settings(120)
@given(data=st.data())
def test_particle_and_deposit_values(base, data):
    """Values of the particle and deposit tables (and hit ids), which the reader combines
    (parent links, hit truth, counts), against the exact model :func:`model_event`."""
    original = fuzz_hdf5.values(base.path)
    ms = data.draw(st.lists(_model_mutations(original), min_size=1, max_size=3))
    case, step = base.root / "case.h5", base.root / "step.h5"
    fuzz_hdf5.apply(ms[0], base.path, case)
    for m in ms[1:]:                      # several values at once: combined links, ties, sums
        case.replace(step)
        fuzz_hdf5.apply(m, step, case)
    values = fuzz_hdf5.values(case)
    expected = [model_event(values, original, i, r, base.visibility)
                for i, r in enumerate(base.reference)]
    judge(READER, "h5 set: particle/edep", read_source(NuMLReader, case), expected,
          base.reference)


# -- sizes ----------------------------------------------------------------------------------------
def test_file_of_empty_events(tmp_path, dune):
    """Events without hits, deposits or particles read as empty events."""
    events = [make_event(i, 0, dune, "global") for i in range(3)]
    for ev in events:
        ev["particle_table"] = {k: v[:0] for k, v in ev["particle_table"].items()}
    path = write_numl(tmp_path / "empty.h5", events)
    reading = read_source(NuMLReader, path)
    assert not reading.rejected and len(reading.events) == 3
    assert all(len(r["hits.view"]) == 0 and len(r["particles.pdg"]) == 0
               for r in reading.records.values())
    record_outcome(READER, "empty events", "read: identical")


def _expected_big(values: dict, ev: dict, i: int, visibility) -> dict:
    """The record event ``i`` of a file written by write_numl must read as, computed column by
    column from the written ``ev`` (hits, and the two deposits per hit make_event writes) and,
    for particles and counts, :func:`model_event` without the hit loop (too slow for 10⁶ hits)."""
    h, d = ev["hit_table"], ev["edep_table"]
    n = len(h["integral"])
    rec = {"event_id": tuple(ev["id"]), "truth.interaction": -1, "truth.mode": -1}
    _expected_truth(rec, {c: _flat(values[f"event_table/{c}"]) for c in DIRECT_EVENTS}, i)
    no_hits = dict(values)
    for t in ("hit_table", "edep_table"):
        no_hits[f"{t}/event_id.seq_cnt"] = np.zeros((0, 2), np.int64)
    rec = model_event(values, no_hits, i, rec, visibility)
    e = np.asarray(d["energy"], np.float64).reshape(-1, 2)          # hits 0..n−2, two each
    total = np.r_[e[:, 0] + e[:, 1], 0.0]
    rec.update({"hits.view": np.asarray(h["global_plane"]).astype(np.int8),
                "hits.wire": np.rint(np.asarray(h["global_wire"], np.float64)).astype(np.int32),
                "hits.time": np.asarray(h["global_time"], np.float32),
                "hits.charge": np.asarray(h["integral"]).astype(np.float32),
                "hits.width": np.asarray(h["rms"]).astype(np.float32),
                "hits.energy": total.astype(np.float32),
                # g4 ids 1, 2 are particle rows 0, 1; the larger deposit wins, the first on ties
                "hits.particle": np.r_[(e[:, 1] > e[:, 0]).astype(np.int32), -1]})
    with np.errstate(invalid="ignore"):
        for c in "xyz":
            p = np.asarray(d[f"{c}_position"], np.float64).reshape(-1, 2)
            moment = np.r_[e[:, 0] * p[:, 0] + e[:, 1] * p[:, 1], 0.0]
            rec[f"hits.{c}"] = np.where(total > 0, moment / total, np.nan).astype(np.float32)
    assert len(rec["hits.view"]) == n
    return rec


def test_million_hit_event(tmp_path, dune):
    """An event of 10⁶ hits (2·10⁶ deposits) next to a small one reads back exactly — single
    reads, the block read and truth() — within the watchdog, and the reading's peak memory
    stays a small multiple of the file's size (no per-row Python objects, no quadratic
    lookups)."""
    import time
    import tracemalloc

    events = [make_event(0, 10**6, dune, "global"), make_event(1, 5, dune, "global")]
    path = write_numl(tmp_path / "huge.h5", events, chunks=False)
    values = fuzz_hdf5.values(path)
    expected = [_expected_big(values, ev, i, dune.config.visibility) for i, ev in enumerate(events)]
    del values
    tracemalloc.start()
    t0 = time.perf_counter()
    reading = read_source(NuMLReader, path)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert judge(READER, "10^6-hit event", reading, expected) == "read: identical"
    size = path.stat().st_size
    assert peak < 8 * size, f"reading used {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"
    assert seconds < 60, f"reading a 10⁶-hit event three times took {seconds:.1f} s"
