"""The gnnu hit file (docs/design.md#hit-file): round trip, lazy random access, atomic writes, clear errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from conftest import edited_hit_file, make_event
from gnnu.errors import ConfigError, InputError, OutputExistsError, SchemaError
from gnnu.io import open_source
from gnnu.io.hitfile import HitFile, HitFileWriter, write_hits


def _events(n=20, **kw):
    return [make_event(i, n_hits=10 + 7 * i, **kw) for i in range(n)]


def test_round_trip_every_column(tmp_path, dune):
    events = _events()
    path = write_hits(tmp_path / "a.h5", events, dune, generator={"kind": "test"}, seed=7)
    with HitFile(path) as f:
        assert len(f) == len(events)
        assert f.seed == 7 and f.generator == {"kind": "test"}
        assert f.detector.name == "dune" and f.detector.views == ("U", "V", "Z")
        for i in (0, 5, 19, -1):
            got, want = f[i], events[i]
            assert got.event_id == want.event_id
            assert got.truth == want.truth
            for k in want.hits.columns:
                np.testing.assert_array_equal(got.hits[k], want.hits[k])
            for k in want.particles.columns:
                np.testing.assert_array_equal(got.particles[k], want.particles[k])
        np.testing.assert_array_equal(f.event_ids()[:, 2], np.arange(20))
        assert f.truth()["flavour"].tolist() == [e.truth.flavour for e in events]


def test_opened_through_registry_and_iterated(tmp_path, dune):
    path = write_hits(tmp_path / "a.h5", _events(5), dune)
    with open_source(path, "gnnu") as f:
        assert [e.event_id[2] for e in f] == [0, 1, 2, 3, 4]


def test_large_file_flushes_in_blocks(tmp_path, dune, monkeypatch):
    import gnnu.io.hitfile as hf
    monkeypatch.setattr(hf, "_FLUSH_ROWS", 100)  # force many flushes
    events = _events(30)
    path = write_hits(tmp_path / "a.h5", events, dune)
    with HitFile(path) as f:
        for i in (0, 13, 29):
            np.testing.assert_array_equal(f[i].hits["charge"], events[i].hits["charge"])
            assert len(f[i].particles) == len(events[i].particles)


def test_refuses_overwrite_without_force(tmp_path, dune):
    path = write_hits(tmp_path / "a.h5", _events(2), dune)
    with pytest.raises(OutputExistsError, match="a.h5"):
        write_hits(path, _events(3), dune)
    write_hits(path, _events(3), dune, overwrite=True)
    assert len(HitFile(path)) == 3


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path, dune):
    path = write_hits(tmp_path / "a.h5", _events(2), dune)
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with HitFileWriter(path, dune, overwrite=True) as w:
            w.write(make_event(0))
            raise RuntimeError("killed")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5"]


def test_empty_file_is_valid(tmp_path, dune):
    path = write_hits(tmp_path / "e.h5", [], dune)
    assert len(HitFile(path)) == 0


def test_unknown_major_version_refused(tmp_path, dune):
    path = write_hits(tmp_path / "a.h5", _events(2), dune)
    with edited_hit_file(path) as f:
        f.attrs["schema_version"] = "2.0"
    with pytest.raises(SchemaError, match=r"a\.h5.*version 2\.0"):
        HitFile(path)


def test_not_a_hit_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = [1]
    with pytest.raises(SchemaError, match="not a gnnu hit file"):
        HitFile(path)


def test_missing_column_named(tmp_path, dune):
    path = write_hits(tmp_path / "a.h5", _events(2), dune)
    with edited_hit_file(path) as f:
        del f["hits/charge"]
    with pytest.raises(SchemaError, match="/hits/charge"):
        HitFile(path)


def test_nan_charge_names_event(tmp_path, dune):
    events = _events(4)
    events[2].hits.columns["charge"][3] = np.nan
    path = write_hits(tmp_path / "a.h5", events, dune)
    with HitFile(path) as f:
        f[1]  # other events still read
        with pytest.raises(InputError, match=r"a\.h5: event 2 \(id \(1, 0, 2\)\): non-finite hit charge"):
            f[2]
        with pytest.raises(InputError, match="event 2"):
            f.validate()


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_file_is_one_clear_error(tmp_path, dune, keep):
    path = write_hits(tmp_path / "a.h5", _events(40), dune)
    data = path.read_bytes()
    bad = tmp_path / "trunc.h5"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError, match="trunc.h5"):
        with HitFile(bad) as f:
            f.validate()


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.h5: file not found"):
        HitFile(tmp_path / "nope.h5")


def test_seal_refuses_any_edit_before_hdf5_parses(tmp_path, dune):
    """Written files carry the SHA-256 of their content in the HDF5 user block; an edit that
    keeps the file well-formed HDF5 (here one charge value) but is not resealed is refused, as
    are a damaged seal and a truncated file (each: InputError naming the file)."""
    path = write_hits(tmp_path / "a.h5", _events(2), dune)
    assert path.read_bytes().startswith(b"gnnu-hits sha256 ")
    with HitFile(path) as f:
        assert f.sealed
    edited = tmp_path / "edited.h5"
    edited.write_bytes(path.read_bytes())
    with h5py.File(edited, "a") as f:
        f["hits/charge"][0] = 1.0
    with pytest.raises(InputError, match=r"edited\.h5: hit file damaged.*SHA-256"):
        HitFile(edited)
    data = bytearray(path.read_bytes())
    data[3] ^= 0x10                                   # inside the magic
    (tmp_path / "magic.h5").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"magic\.h5: not a readable hit file"):
        HitFile(tmp_path / "magic.h5")
    (tmp_path / "short.h5").write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match=r"short\.h5: hit file damaged"):
        HitFile(tmp_path / "short.h5")


def test_unsealed_files_still_read(tmp_path, dune, monkeypatch):
    """A hit file without a user block (gnnu before the seal) reads without the check."""
    import gnnu.io.hitfile as hitfile

    monkeypatch.setattr(hitfile, "USERBLOCK", 0)
    monkeypatch.setattr(hitfile, "seal", lambda path: None)
    events = _events(3)
    path = write_hits(tmp_path / "old.h5", events, dune)
    assert path.read_bytes().startswith(b"\x89HDF")
    monkeypatch.undo()
    with HitFile(path) as f:
        assert not f.sealed and len(f) == 3
        np.testing.assert_array_equal(f[1].hits["charge"], events[1].hits["charge"])


def test_stale_temporary_of_a_killed_writer_is_removed(tmp_path, dune):
    """A killed writer leaves <out>.tmp-<pid>; the next write of <out> removes it once that
    process is gone, and keeps the temporary file of a writer that is still alive."""
    import os
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"a.h5.tmp-{dead.pid}"
    live = tmp_path / f"a.h5.tmp-{os.getppid()}"
    stale.write_bytes(b"half-written")
    live.write_bytes(b"in progress")
    write_hits(tmp_path / "a.h5", _events(2), dune)
    assert not stale.exists() and live.exists()
    assert len(HitFile(tmp_path / "a.h5")) == 2


def test_writer_refuses_a_filter_that_is_not_byte_reproducible(tmp_path, dune):
    """LZF (h5py's encoder hashes with an uninitialised table) is refused by name; the error lists
    the filters that are offered."""
    with pytest.raises(ConfigError, match="'lzf' is not one of none, gzip"):
        HitFileWriter(tmp_path / "x.h5", dune, compression="lzf")
    assert not list(tmp_path.iterdir())
