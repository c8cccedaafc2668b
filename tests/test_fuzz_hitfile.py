"""Fuzzing the gnnu hit-file reader (issue #8): truncations, bit flips, overwritten byte runs,
structural HDF5 mutations, an empty event and a 10⁶-hit event.

Hit files are sealed (a SHA-256 of their content in the HDF5 user block, checked before HDF5
parses the file), written with HDF5 metadata checksums (file format ≥ 1.10) and a Fletcher-32
checksum on every data chunk (:mod:`gnnu.io.hitfile`), so a damaged byte cannot pass silently:
the oracle for byte-level damage is strict — rejected, or read exactly as written. (Before the
seal, one overwritten-bytes case here hung inside HDF5's attribute code.) Structural mutations
are resealed after editing — well-formed files written wrongly — so they exercise the reader's
own checks; they have exact oracles too (see :func:`expectation`).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fuzz_hdf5
from conftest import make_event
from fuzzlib import Base, flip_bits, fuzz_settings, judge, read_source, record_outcome, splat
from gnnu.events import HIT_COLUMNS, PARTICLE_COLUMNS, Event, Hits, Truth
from gnnu.io.hitfile import HitFile, seal, write_hits

READER = "gnnu hits"
#: Columns the reader must refuse NaN/inf in (the others may hold NaN, e.g. truth x of noise).
FINITE = ("time", "charge", "width")
CSR = ("events/hit_offset", "events/hit_count", "events/particle_offset", "events/particle_count")


@pytest.fixture(scope="module")
def base(tmp_path_factory, dune):
    """A small hit file (7 events, one of them empty) and its reference reading."""
    root = tmp_path_factory.mktemp("fuzz_hitfile")
    events = [make_event(i, n_hits=n) for i, n in enumerate([25, 40, 0, 33, 17, 60, 8])]
    path = write_hits(root / "base.h5", events, dune)
    reference = read_source(HitFile, path)
    assert not reference.rejected and len(reference.events) == 7
    return Base(root, path, path.read_bytes(), reference.events)


def _check(root, data: bytes, reference, kind: str) -> str:
    path = root / "case.h5"
    path.write_bytes(data)
    return judge(READER, kind, read_source(HitFile, path), reference)


@fuzz_settings(60)
@given(cut=st.floats(0, 1, exclude_max=True))
def test_truncated_files(base, cut):
    root, data, reference = base.root, base.data, base.reference
    assert _check(root, data[: int(cut * len(data))], reference, "truncation") == "rejected"


@fuzz_settings(150)
@given(flips=st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 7)), min_size=1, max_size=4))
def test_bit_flips(base, flips):
    root, data, reference = base.root, base.data, base.reference
    _check(root, flip_bits(data, flips), reference, "bit flips")


@fuzz_settings(60)
@given(start=st.integers(0, 2**31), chunk=st.binary(min_size=1, max_size=64) | st.just(bytes(512)))
def test_overwritten_bytes(base, start, chunk):
    root, data, reference = base.root, base.data, base.reference
    _check(root, splat(data, start, chunk), reference, "overwritten bytes")


# -- structural mutations --------------------------------------------------------------------------
def _row_owner(reference, group: str) -> np.ndarray:
    """Event of each row of /hits or /particles, from the reference reading."""
    key = "hits.view" if group == "hits" else "particles.pdg"
    counts = [len(r[key]) if key in r else 0 for r in reference]
    return np.repeat(np.arange(len(reference)), counts)


def _declared(group: str, column: str) -> np.dtype:
    if group == "hits":
        return HIT_COLUMNS[column][0]
    if group == "particles":
        return PARTICLE_COLUMNS[column][0]
    return Truth.columns().get(column, np.dtype(np.int64))


def _with_values(reference, name: str, values: np.ndarray) -> list[dict]:
    """The reference records with column ``name`` (group/column) holding ``values`` (all rows)."""
    expected = [dict(r) for r in reference]
    group, _, column = name.partition("/")
    values = values.astype(_declared(group, column))
    if group == "events":
        for i, r in enumerate(expected):
            if column == "event_id":
                r["event_id"] = tuple(int(v) for v in values[i])
            else:
                r[f"truth.{column}"] = values[i].item()
        return expected
    owner = _row_owner(reference, group)
    for i, r in enumerate(expected):
        r[f"{group}.{column}"] = values[owner == i]
    return expected


def expectation(m: fuzz_hdf5.Mutation, reference, original: dict) -> tuple[list[dict] | None, bool]:
    """(expected records, must the file be rejected) after mutation ``m`` of the base file, whose
    datasets hold ``original``; ``None`` records: nothing may be read.

    These are the hit file's rules (docs/design.md#hit-file): every required object present, a dataset of
    its exact shape and of a numeric dtype of the right kind (integers for integer columns);
    CSR offsets consistent; time, charge and width finite; unknown objects and attributes
    ignored; optional truth columns and the particle table may be absent (a dangling link is
    absence too, or an error).
    """
    group, _, column = m.name.partition("/")
    if m.op in ("attr_delete", "attr_set", "add") or m.name == "hits/event":
        return reference, False          # the per-hit event index is redundant and never read
    optional_hit = group == "hits" and column in HIT_COLUMNS and not HIT_COLUMNS[column][2]
    particles = m.name in ("particles", "events/particle_offset", "events/particle_count")
    if m.op in ("delete", "link") and (optional_hit or particles):
        drop = (lambda k: k == f"hits.{column}") if optional_hit else (lambda k: k.startswith("particles."))
        return [{k: v for k, v in r.items() if not drop(k)} for r in reference], False
    if m.op in ("delete", "link", "as_group", "reshape", "resize"):
        return None, True
    old = original[m.name]
    if m.op == "retype":
        new = fuzz_hdf5.rewritten(old, m)
        declared = _declared(group, column)
        if new.dtype.kind == "S" or (declared.kind in "iu" and new.dtype.kind == "f"):
            return None, True
    else:
        index, value = m.arg
        new = old.copy()
        new[index] = fuzz_hdf5.cast(value, old.dtype)
    if m.name in CSR:
        return (reference, False) if np.array_equal(new, old) else (None, True)
    non_finite = (group == "hits" and column in FINITE
                  and not np.isfinite(new.astype(np.float64)).all())
    return _with_values(reference, m.name, new), non_finite


@pytest.mark.slow
@fuzz_settings(250)
@given(data=st.data())
def test_structural_mutations(base, data):
    root, path, reference = base.root, base.path, base.reference
    datasets, groups, attrs = fuzz_hdf5.objects(path)
    original = fuzz_hdf5.values(path)
    m = data.draw(fuzz_hdf5.mutations(datasets, groups, attrs))
    case = root / "case.h5"
    fuzz_hdf5.apply(m, path, case)
    seal(case)              # a well-formed file written wrongly: the reader's checks, not the seal
    expected, must_reject = expectation(m, reference, original)
    outcome = judge(READER, m.kind, read_source(HitFile, case), expected, reference, must_reject)
    if m.op == "add":
        assert outcome == "read: identical", "an unknown object or attribute must be ignored"


# -- sizes -----------------------------------------------------------------------------------------
def test_empty_file_and_empty_events(tmp_path, dune):
    """A file without events and a file of only empty events read as such."""
    for n in (0, 3):
        path = write_hits(tmp_path / f"empty{n}.h5", [make_event(i, n_hits=0) for i in range(n)], dune)
        reading = read_source(HitFile, path)
        assert not reading.rejected and len(reading.events) == n
        assert all(len(r["hits.view"]) == 0 for r in reading.records.values())
        record_outcome(READER, "empty events", "read: identical")


def test_million_hit_event(tmp_path, dune):
    """One event of 10⁶ hits (required columns only) reads back exactly."""
    n = 10**6
    rng = np.random.default_rng(6)
    cols = {"view": rng.integers(0, 3, n).astype(np.int8),
            "wire": rng.integers(0, 1000, n).astype(np.int32),
            "time": rng.uniform(0, 6000, n).astype(np.float32),
            "charge": rng.uniform(0, 500, n).astype(np.float32),
            "width": rng.uniform(1, 5, n).astype(np.float32)}
    events = [Event((1, 0, 0), Truth(flavour=0), Hits(cols)),
              Event((1, 0, 1), Truth(flavour=1), Hits({k: v[:5] for k, v in cols.items()}))]
    path = write_hits(tmp_path / "huge.h5", events, dune)
    with HitFile(path) as f:
        got = f.read(0)
        assert len(got.hits) == n and len(f.read(1).hits) == 5
        for k, v in cols.items():
            np.testing.assert_array_equal(got.hits[k], v)
    record_outcome(READER, "10^6-hit event", "read: identical")
