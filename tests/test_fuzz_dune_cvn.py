"""Fuzzing the DUNE CVN pixel-map reader and its restricted unpickler (issue #8).

Base: three real events of the released sample (``event4/10/18.gz``) and the real
``partition.p``. Cases:

- pixel maps (zlib streams, Adler-32 checked): truncations, bit flips, overwritten byte runs,
  appended bytes — rejected, or read exactly as before; well-formed zlib streams of other content
  (random sparse maps, all-zero maps, wrong sizes, decompression bombs, gzip or raw-deflate
  wrappers, an empty file, a directory in place of the file) — rejected, or one hit per non-zero
  pixel of exactly that map;
- ``partition.p`` bytes (pickles carry no checksum): truncations, bit flips, overwritten bytes —
  rejected, or labels a valid pickle could hold (:func:`plausible`); generated pickles of every
  protocol (plain data, wrong shapes and types, out-of-range labels, sets, bytes, complex
  numbers, class instances, objects whose ``__reduce__`` calls a function) — rejected exactly
  when invalid, and read exactly when valid; nothing in a pickle ever runs;
- ``eventN.info`` text (the other truth layout): generated files with numbers, NaN/inf, huge
  and negative values, words, missing lines, odd line ends and bytes that are not UTF-8 —
  rejected exactly when the documented rules say so, read exactly otherwise.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import shutil
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import DUNE_CVN_SAMPLE
from fuzzlib import (Base, event_record, flip_bits, fuzz_settings, judge, read_source,
                     record_outcome, splat)
from gnnu.errors import InputError
from gnnu.events import bucket_count
from gnnu.io.dune_cvn import CC_NU_PDG, LABEL_ORDER, MAP_SHAPE, PIXEL_WIDTH_BINS, DuneCVNReader

pytestmark = pytest.mark.skipif(not DUNE_CVN_SAMPLE.exists(), reason="DUNE CVN sample not present")

READER = "dune-cvn"
EVENTS = (4, 10, 18)
MAP_BYTES = int(np.prod(MAP_SHAPE))
LABEL_RANGE = {"is_antinu": (-1, 1), "flavour": (0, 3), "interaction": (-1, 3),
               "n_proton": (-1, 3), "n_charged_pion": (-1, 3), "n_neutral_pion": (-1, 3),
               "n_neutron": (-1, 3)}
INT32_MAX = 2**31 - 1


def _sample_dir(root, truth: str = "partition"):
    root.mkdir(parents=True, exist_ok=True)
    for n in EVENTS:
        shutil.copy(DUNE_CVN_SAMPLE / f"event{n}.gz", root / f"event{n}.gz")
    if truth == "partition":
        shutil.copy(DUNE_CVN_SAMPLE / "partition.p", root / "partition.p")
    return root


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The three-event sample directory and its reference reading."""
    root = _sample_dir(tmp_path_factory.mktemp("fuzz_dune_cvn") / "base")
    reference = read_source(DuneCVNReader, root)
    assert not reference.rejected and len(reference.events) == len(EVENTS)
    return Base(root, root, (root / f"event{EVENTS[1]}.gz").read_bytes(), reference.events)


def _case_dir(base, name: str):
    """A fresh copy of the base directory (``name/base`` below the base's parent: the same
    directory name, so the same run number, :func:`gnnu.io.dune_cvn.source_run`)."""
    case = base.root.parent / name / base.root.name
    if case.exists():
        shutil.rmtree(case)
    shutil.copytree(base.root, case)
    return case


# -- pixel maps: byte-level damage ----------------------------------------------------------------
def _check_map(base, data: bytes, kind: str) -> str:
    case = _case_dir(base, "map")
    (case / f"event{EVENTS[1]}.gz").write_bytes(data)
    return judge(READER, f"map {kind}", read_source(DuneCVNReader, case), base.reference)


@pytest.mark.slow
@fuzz_settings(25)
@given(cut=st.floats(0, 1, exclude_max=True))
def test_truncated_maps(base, cut):
    assert _check_map(base, base.data[: int(cut * len(base.data))], "truncation") == "rejected"


@pytest.mark.slow
@fuzz_settings(60)
@given(flips=st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 7)), min_size=1, max_size=3))
def test_map_bit_flips(base, flips):
    _check_map(base, flip_bits(base.data, flips), "bit flips")


@fuzz_settings(25)
@given(start=st.integers(0, 2**31), chunk=st.binary(min_size=1, max_size=64))
def test_map_overwritten_bytes(base, start, chunk):
    _check_map(base, splat(base.data, start, chunk), "overwritten bytes")


@fuzz_settings(10)
@given(tail=st.binary(min_size=1, max_size=64))
def test_map_with_appended_bytes(base, tail):
    """Bytes after the end of the zlib stream (a concatenated or overwritten file) are damage."""
    assert _check_map(base, base.data + tail, "appended bytes") == "rejected"


# -- pixel maps: well-formed zlib streams of other content ----------------------------------------
def _expected_hits(maps: np.ndarray) -> dict:
    """One hit per non-zero pixel, in (view, wire, time bin) order (docs/design.md#images, #dune-like-lartpc)."""
    view, wire, time = np.nonzero(maps)
    q = maps[view, wire, time]
    return {"hits.view": view.astype(np.int8), "hits.wire": wire.astype(np.int32),
            "hits.time": time.astype(np.float32), "hits.charge": q.astype(np.float32),
            "hits.width": np.full(len(q), PIXEL_WIDTH_BINS, np.float32)}


MAP_KINDS = ("random map", "empty map", "saturated map", "wrong size", "bomb", "gzip wrapper",
             "raw deflate", "empty file", "directory")


def map_file(kind: str, level: int, n: int, seed: int):
    """(file bytes, or None for a directory; the map it must read as, or None: refused)."""
    if kind in ("random map", "empty map", "saturated map"):
        maps = np.zeros(MAP_SHAPE, np.uint8)
        if kind == "saturated map":
            maps[:] = 255
        elif kind == "random map":
            rng = np.random.default_rng(seed)
            maps.reshape(-1)[rng.integers(0, MAP_BYTES, n)] = rng.integers(1, 256, n)
        return zlib.compress(maps.tobytes(), level), maps
    if kind == "wrong size":
        sizes = (0, 1, MAP_BYTES - 1, MAP_BYTES + 1, 500 * 500, 2 * MAP_BYTES)
        return zlib.compress(bytes(sizes[n % len(sizes)]), level), None
    if kind == "bomb":
        return zlib.compress(bytes(50 * MAP_BYTES), 9), None
    raw = np.zeros(MAP_SHAPE, np.uint8).tobytes()
    if kind == "gzip wrapper":
        return gzip.compress(raw, max(level, 1)), None
    if kind == "raw deflate":
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
        return c.compress(raw) + c.flush(), None
    return (b"", None) if kind == "empty file" else (None, None)


def _check_content(base, kind: str, data: bytes | None, maps: np.ndarray | None) -> None:
    d = _case_dir(base, "content")
    target = d / f"event{EVENTS[1]}.gz"
    target.unlink()
    if data is None:
        target.mkdir()
    else:
        target.write_bytes(data)
    expected = [dict(r) for r in base.reference]
    if maps is not None:
        expected[1].update(_expected_hits(maps))
    outcome = judge(READER, f"map {kind}", read_source(DuneCVNReader, d), expected,
                    base.reference, must_reject=maps is None)
    if maps is not None:
        assert outcome != "rejected", f"a valid {kind} was refused"


@fuzz_settings(25)
@given(level=st.integers(0, 9), n=st.integers(1, 3000), seed=st.integers(0, 2**32 - 1))
def test_random_maps(base, level, n, seed):
    """A valid stream of any sparse map reads as one hit per non-zero pixel of that map."""
    _check_content(base, "random map", *map_file("random map", level, n, seed))


@pytest.mark.parametrize("kind,n", [(k, 0) for k in MAP_KINDS if k not in ("random map", "wrong size")]
                         + [("wrong size", n) for n in range(6)])
def test_other_map_contents(base, kind, n):
    _check_content(base, kind, *map_file(kind, 6, n, 0))


@pytest.mark.slow
def test_decompression_bomb_is_refused_without_inflating_it(tmp_path):
    """A valid zlib stream of 1 GiB of zeros (1 MiB on disk) is refused after inflating at most
    one map + 1 byte: memory stays flat and the refusal is immediate."""
    import resource
    import time

    chunk = bytes(1 << 24)
    c = zlib.compressobj(9)
    head = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)   # identical for every repetition
    tail = c.flush()[:-4]                                       # last block, then Adler-32
    adler = 1
    for _ in range(64):
        adler = zlib.adler32(chunk, adler)
    bomb = head + block * 63 + tail + adler.to_bytes(4, "big")
    assert len(bomb) < 2 << 20
    d = _sample_dir(tmp_path / "bomb")
    (d / f"event{EVENTS[0]}.gz").write_bytes(bomb)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with DuneCVNReader(d) as f, pytest.raises(InputError, match="more than 750000 bytes") as err:
        f.read(0)
    assert time.perf_counter() - t0 < 2 and f"event{EVENTS[0]}.gz: event 0" in str(err.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000      # kB
    record_outcome(READER, "map bomb (1 GiB)", "rejected")


# -- partition pickles ----------------------------------------------------------------------------
def plausible(rec: dict) -> None:
    """Labels a valid partition pickle could give (every value in its range, ν PDG derived)."""
    t = {k[6:]: v for k, v in rec.items() if k.startswith("truth.")}
    for name, (lo, hi) in LABEL_RANGE.items():
        assert type(t[name]) is int and lo <= t[name] <= hi, f"{name} = {t[name]!r}"
    if t["flavour"] < 3 and t["is_antinu"] >= 0:
        assert t["nu_pdg"] == CC_NU_PDG[t["flavour"]] * (-1 if t["is_antinu"] else 1)
    else:
        assert t["nu_pdg"] == 0


def _check_pickle(base, data: bytes, kind: str, expected=None, must_reject=False) -> str:
    d = _case_dir(base, "pickle")
    (d / "partition.p").write_bytes(data)
    return judge(READER, f"pickle {kind}", read_source(DuneCVNReader, d),
                 base.reference if expected is None else expected, base.reference, must_reject,
                 plausible=plausible if expected is None else None)


@fuzz_settings(20)
@given(cut=st.floats(0, 1, exclude_max=True))
def test_truncated_pickles(base, cut):
    data = (base.root / "partition.p").read_bytes()
    assert _check_pickle(base, data[: int(cut * len(data))], "truncation") == "rejected"


@pytest.mark.slow
@fuzz_settings(50)
@given(flips=st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 7)), min_size=1, max_size=3))
def test_pickle_bit_flips(base, flips):
    _check_pickle(base, flip_bits((base.root / "partition.p").read_bytes(), flips), "bit flips")


@fuzz_settings(25)
@given(start=st.integers(0, 2**31), chunk=st.binary(min_size=1, max_size=32))
def test_pickle_overwritten_bytes(base, start, chunk):
    _check_pickle(base, splat((base.root / "partition.p").read_bytes(), start, chunk),
                  "overwritten bytes")


class Executes:
    """An object whose unpickling would call a function (here: create a marker file)."""

    marker = None

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


class Plain:
    """A class instance (pickled as a global reference to this class)."""

    def __init__(self):
        self.value = 1


_SCALARS = (st.integers(-4, 4) | st.sampled_from((2**31, -2**63, 2**70)) | st.booleans()
            | st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=3))
_FORBIDDEN = st.sampled_from(("set", "frozenset", "bytes", "bytearray", "complex", "instance",
                              "executes"))


def _forbidden(name: str):
    return {"set": {1, 2}, "frozenset": frozenset({3}), "bytes": b"\x00\x01",
            "bytearray": bytearray(b"ab"), "complex": 1 + 2j, "instance": Plain(),
            "executes": Executes()}[name]


@st.composite
def partitions(draw):
    """(object to pickle, is it a valid partition, expected labels by event number or None)."""
    labels = {}
    for n in EVENTS:
        if draw(st.integers(0, 9)) == 0:
            continue                                          # no entry for this event
        entry = [draw(st.integers(lo, hi)) for lo, hi in LABEL_RANGE.values()]
        if draw(st.integers(0, 11)) == 0:                     # one bad value
            entry[draw(st.integers(0, 6))] = draw(_SCALARS)
        if draw(st.integers(0, 12)) == 0:
            entry = entry[:draw(st.integers(0, 8))]           # wrong number of labels
        container = draw(st.sampled_from((list, tuple)))
        key = draw(st.sampled_from((str(n), f"event{n}", n, float(n))))
        labels[key] = container(entry)
    shape = draw(st.sampled_from(("list", "list", "list", "tuple", "tuple", "dict only",
                                  "three parts", "ids as dict", "forbidden value", "forbidden id")))
    ids = [str(k) for k in labels]
    if shape == "forbidden value" and labels:
        labels[next(iter(labels))] = _forbidden(draw(_FORBIDDEN))
    if shape == "forbidden id":
        ids.append(_forbidden(draw(_FORBIDDEN)))
    obj = {"list": [ids, labels], "tuple": (ids, labels), "dict only": labels,
           "three parts": [ids, labels, ids], "ids as dict": [{}, labels],
           "forbidden value": [ids, labels], "forbidden id": [ids, labels]}[shape]
    valid = shape in ("list", "tuple") or (shape == "forbidden value" and not labels)
    expected, seen = {}, {}
    for key, entry in labels.items():
        ok = (isinstance(entry, (list, tuple)) and len(entry) == 7
              and all(type(v) is int for v in entry)
              and all(lo <= v <= hi for v, (lo, hi) in zip(entry, LABEL_RANGE.values())))
        if not ok or seen.get(str(key), tuple(entry)) != tuple(entry):
            valid = False
        seen[str(key)] = tuple(entry) if ok else None
    for n in EVENTS:
        expected[n] = seen.get(str(n), seen.get(f"event{n}"))
    return obj, valid, expected


def _label_records(base, labels: dict) -> list:
    """The reference records with the labels of ``labels`` (None: the event is rejected)."""
    out = []
    for n, rec in zip(EVENTS, base.reference):
        entry = labels[n]
        if entry is None:
            out.append(None)
            continue
        rec = dict(rec)
        lab = dict(zip(LABEL_ORDER, entry))
        for k, v in lab.items():
            rec[f"truth.{k}"] = v
        cc = lab["flavour"] < 3 and lab["is_antinu"] >= 0
        rec["truth.nu_pdg"] = CC_NU_PDG[lab["flavour"]] * (-1 if lab["is_antinu"] else 1) if cc else 0
        out.append(rec)
    return out


@pytest.mark.slow
@fuzz_settings(80)
@given(case=partitions(), protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_generated_pickles(base, case, protocol, tmp_path_factory):
    obj, valid, labels = case
    marker = base.root.parent / "executed"
    Executes.marker = marker
    data = pickle.dumps(obj, protocol=protocol)
    expected = _label_records(base, labels)
    d = _case_dir(base, "pickle")
    (d / "partition.p").write_bytes(data)
    reading = read_source(DuneCVNReader, d)
    assert not marker.exists(), "unpickling ran code"
    if not valid:
        assert reading.open_error is not None, "an invalid partition pickle was accepted"
        record_outcome(READER, "pickle generated", "rejected")
        return
    assert reading.open_error is None, f"a valid partition pickle was refused: {reading.open_error}"
    for i, rec in enumerate(expected):
        if rec is None:
            assert isinstance(reading.events[i], Exception), "event without labels was read"
            assert "no labels" in str(reading.events[i])
    judge(READER, "pickle generated",
          type(reading)(events=[r for r in reading.events if isinstance(r, dict)]),
          [r for r in expected if r is not None], None)


# -- .info truth files ----------------------------------------------------------------------------
_NUMBER = (st.integers(-20, 20).map(str) | st.sampled_from(("nan", "inf", "-inf", "1e300", "-1e300",
                                                            "2147483648", "1e10", "3.5", "-0",
                                                            "0x10", "1_0", "", "one", " 7 "))
           | st.floats(-1e3, 1e3).map(repr))


@st.composite
def info_files(draw):
    """(bytes of an eventN.info file, its values as text lines) — mostly valid, sometimes not."""
    code = draw(st.integers(0, 15))
    flavour = code // 4
    pdg = CC_NU_PDG[flavour] * draw(st.sampled_from((1, -1))) if flavour < 3 else 0
    values = [str(code), repr(draw(st.floats(0.1, 20))), repr(draw(st.floats(0, 10))), "0", "0",
              "0", "1.0", str(pdg)] + [str(draw(st.integers(0, 6))) for _ in range(4)]
    for _ in range(draw(st.integers(0, 2))):
        values[draw(st.integers(0, 11))] = draw(_NUMBER)
    cut = draw(st.sampled_from((12, 12, 12, 13, 11, 5, 0)))
    values = (values + ["99"])[:cut]
    end = draw(st.sampled_from(("\n", "\n", "\r\n", "\r")))
    data = (end.join(values) + end).encode()
    if draw(st.integers(0, 15)) == 0:
        data = data[:-1] + b"\xff\xfe"
    return data


def _parse_info(data: bytes):
    """The documented reading of an .info file (dune_cvn module docstring): Truth fields, or
    None when the file must be refused."""
    try:
        lines = [line.strip() for line in data.decode().splitlines()]
        values = [float(v) for v in lines[:12]]
    except (UnicodeDecodeError, ValueError):
        return None
    if len(values) < 12:
        return None
    code, nu_e, lep_e, pdg, counts = values[0], values[1], values[2], values[7], values[8:12]
    if not (code.is_integer() and 0 <= code <= 15):
        return None
    if not all(math.isfinite(c) and c.is_integer() and 0 <= c <= INT32_MAX for c in counts):
        return None
    if not (math.isfinite(nu_e) and math.isfinite(lep_e)):
        return None
    flavour, interaction = int(code) // 4, int(code) % 4
    nu_pdg, is_antinu = 0, -1
    if flavour < 3:
        if not (pdg.is_integer() and abs(int(pdg)) == CC_NU_PDG[flavour]):
            return None
        nu_pdg, is_antinu = int(pdg), int(pdg < 0)
    raw = [int(c) for c in counts]
    names = ("n_proton", "n_charged_pion", "n_neutral_pion", "n_neutron")
    t = {"flavour": flavour, "interaction": interaction, "is_antinu": is_antinu, "nu_pdg": nu_pdg,
         "nu_energy": nu_e, "lep_energy": lep_e, "y": 1.0 - lep_e / nu_e if nu_e > 0 else math.nan}
    for name, r in zip(names, raw):
        t[name], t[f"{name}_raw"] = int(bucket_count(r)), r
    return t


@pytest.fixture(scope="module")
def info_base(tmp_path_factory):
    """One sample event with a valid .info file and its reference reading."""
    root = tmp_path_factory.mktemp("fuzz_info")
    shutil.copy(DUNE_CVN_SAMPLE / f"event{EVENTS[1]}.gz", root / f"event{EVENTS[1]}.gz")
    (root / f"event{EVENTS[1]}.info").write_text("5\n3.0\n1.0\n0\n0\n0\n1.0\n12\n1\n0\n2\n4\n")
    reading = read_source(DuneCVNReader, root)
    assert not reading.rejected
    return Base(root, root, b"", reading.events)


@pytest.mark.slow
@fuzz_settings(80)
@given(data=info_files())
def test_info_files(info_base, data):
    (info_base.root / f"event{EVENTS[1]}.info").write_bytes(data)
    truth = _parse_info(data)
    expected = None
    if truth is not None:
        rec = dict(info_base.reference[0])
        rec.update({f"truth.{k}": v for k, v in truth.items()})
        expected = [rec]
    outcome = judge(READER, "info text", read_source(DuneCVNReader, info_base.root), expected,
                    info_base.reference, must_reject=truth is None)
    if truth is not None:
        assert outcome != "rejected", f"a valid .info file was refused: {data!r}"


def test_reference_record_shape(base):
    """The fuzz oracle's records hold what the reader returns (hits and labels of the sample)."""
    with DuneCVNReader(base.root) as f:
        rec = event_record(f.read(1))
        maps = f.read_maps(1)
    for k, v in _expected_hits(maps).items():
        np.testing.assert_array_equal(rec[k], v)
    assert len(rec["hits.view"]) > 100
