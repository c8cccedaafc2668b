"""The gnnu hit file (docs/design.md#hit-file): columnar, schema-versioned, self-describing HDF5.

Layout::

    /hits/<column>        one row per hit (gnnu.events.HIT_COLUMNS) plus ``event`` (event row)
    /events/<column>      one row per event: ``event_id`` [n, 3] (run, subrun, event),
                          ``hit_offset``/``hit_count`` (CSR into /hits), every Truth field,
                          ``particle_offset``/``particle_count`` (CSR into /particles)
    /particles/<column>   optional truth particle table (gnnu.events.PARTICLE_COLUMNS)
    attributes            schema, schema_version, detector (JSON), generator (JSON), seed,
                          software, n_events

Writes are atomic (:mod:`gnnu.atomic`): everything goes to ``<out>.tmp-<pid>`` which is renamed
over ``<out>`` only when complete, so an interrupted run never leaves a file a reader would accept (and the
``n_events`` attribute, written last, must match the event table). Reading is lazy: only the
per-event table is loaded; hits are sliced per event (chunked storage, so a read decompresses
only the chunks it touches). Chunks are stored uncompressed by default or gzip-compressed
(:data:`COMPRESSIONS`); either way the same events give the same bytes.

Integrity: files are written in the HDF5 1.10 format, whose metadata (superblock, object
headers, chunk indices) carries checksums, and every data chunk carries a Fletcher-32 checksum,
so damaged bytes the reader uses give an error instead of wrong values (files from older gnnu
versions, without checksums, still read). On top of that a file is *sealed*: its first 512 bytes
are an HDF5 user block holding :data:`SEAL_MAGIC` and the SHA-256 of every byte after the block,
checked before HDF5 parses anything (:func:`check_seal`). Some damaged metadata sends the HDF5
library into an endless loop instead of an error (seen with overwritten attribute bytes); the seal
turns any changed, added or missing byte into one InputError first. Unsealed files (older gnnu
versions, or written by other tools) are read as before. Hashing costs one sequential read of
the file (≈ 1 GB/s) per opening. The reader checks every object it uses: present,
stored in the file (links to other files are refused), the expected shape and a numeric dtype of
the right kind (values are cast to the column's dtype; integers must fit), consistent CSR
offsets for hits and particles, finite time, charge and width.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np

from .. import __version__
from ..atomic import AtomicFile, remove_stale_temporaries
from ..detectors import detector_from_dict, detector_json
from ..errors import ConfigError, InputError, OutputExistsError, SchemaError
from ..events import HIT_COLUMNS, PARTICLE_COLUMNS, Event, Hits, Particles, Truth
from .base import (HDF5_ERRORS, EventReader, cast_column, first_bad_event, hdf5_column, hdf5_group,
                   open_hdf5, register_reader)

SCHEMA = "gnnu-hits"
SCHEMA_VERSION = "1.0"
#: HDF5 file-format bounds: 1.10 objects carry metadata checksums (readable by HDF5 ≥ 1.10).
LIBVER = ("v110", "v110")
_CHUNK = 65536
_FLUSH_ROWS = 1 << 20
#: Chunk filters a hit file can be written with. Both encode the same data to the same bytes on
#: every run, so a seeded ``gnnu-sim`` gives byte-identical files whatever its ``--workers``.
#: h5py's LZF is not offered: its encoder hashes with an uninitialised table, so the same chunk can
#: come out as different (equally valid) bytes from one run to the next. LZF files of older gnnu
#: versions still read. ``tools/bench_sim.py`` (BENCHMARKS.md): ``none`` writes in 0.34 ms/event and
#: takes 136 kB/event; ``gzip`` (level 1, byte shuffle) 1.6 ms/event, 63 kB/event.
COMPRESSIONS = {"none": {}, "gzip": {"compression": "gzip", "compression_opts": 1, "shuffle": True}}
#: HDF5 user block of a sealed hit file: SEAL_MAGIC, the hex SHA-256 of the rest, zero padding.
USERBLOCK = 512
SEAL_MAGIC = b"gnnu-hits sha256 "
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _content_digest(path: Path) -> str:
    """Hex SHA-256 of the bytes of ``path`` after the user block."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(USERBLOCK)
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def seal(path: str | os.PathLike) -> None:
    """Write the seal (module docstring) into the user block of the closed hit file ``path``
    (written with ``userblock_size=USERBLOCK``); done by :meth:`HitFileWriter.close`."""
    stamp = SEAL_MAGIC + _content_digest(Path(path)).encode()
    with open(path, "r+b") as f:
        f.write(stamp.ljust(USERBLOCK, b"\0"))


def check_seal(path: str | os.PathLike) -> bool:
    """Verify the seal of hit file ``path`` before HDF5 opens it: True if sealed and intact,
    False for an unsealed HDF5 file (read without this check); InputError naming the file when
    the seal does not match (damaged, truncated or edited) or the file is neither."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(USERBLOCK)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path) from None
    if head.startswith(_HDF5_SIGNATURE):
        return False
    if not head.startswith(SEAL_MAGIC):
        raise InputError("not a readable hit file: neither a sealed gnnu hit file nor HDF5 "
                         "(damaged header?)", path)
    end = len(SEAL_MAGIC) + 64
    want = head[len(SEAL_MAGIC):end].decode("ascii", "replace")
    if len(head) < USERBLOCK or head[end:].strip(b"\0") or _content_digest(path) != want:
        raise InputError("hit file damaged: its content does not match the SHA-256 sealed into it "
                         "when it was written (truncated, overwritten or edited after writing)", path)
    return True


def _major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return -1


def prepare_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Check that ``path`` may be written: refuse an existing file unless ``overwrite``; create
    missing parent directories (an error names the one that cannot be made)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: output exists (use --force to overwrite)")
    if path.is_dir():
        raise OutputExistsError(f"{path}: is a directory, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputExistsError(f"{path}: cannot create directory {path.parent} "
                                f"({exc.strerror or exc})") from None
    return path


class HitFileWriter:
    """Append events to a new hit file; atomic on :meth:`close`, discarded on error.

    Use as a context manager::

        with HitFileWriter(out, detector, generator={...}, seed=1) as w:
            for ev in events:
                w.write(ev)
    """

    def __init__(self, path: str | os.PathLike, detector, generator: dict | None = None,
                 seed: int | None = None, overwrite: bool = False, compression: str = "none",
                 truth: bool = True):
        if compression not in COMPRESSIONS:
            raise ConfigError(f"hit-file compression {compression!r} is not one of "
                              f"{', '.join(COMPRESSIONS)}")
        self.path = prepare_output(path, overwrite)
        remove_stale_temporaries(self.path)      # left by a killed earlier run
        self._out = AtomicFile(self.path)
        self.tmp = self._out.tmp
        # through the write guard (gnnu.atomic): a full disk is an OSError here, never a crash in HDF5
        self._f = self._out.open_hdf5(track_order=True, libver=LIBVER, userblock_size=USERBLOCK)
        self._filters = COMPRESSIONS[compression]
        #: False: a file without labels (real data): /events holds ids and offsets only.
        self._truth = truth
        self._f.attrs.update({
            "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
            "detector": detector_json(detector), "detector_name": detector.name,
            "generator": json.dumps(generator or {}, sort_keys=True),
            "seed": -1 if seed is None else int(seed),
            "software": f"gnnu {__version__}",
        })
        self._buf: dict[str, dict[str, list]] = {"hits": {}, "events": {}, "particles": {}}
        self._rows = {"hits": 0, "events": 0, "particles": 0}
        self._pending = 0
        self._hit_columns: set[str] | None = None
        self._with_particles: bool | None = None
        self.n_events = 0
        self._closed = False

    # -- buffering ---------------------------------------------------------------------
    def _push(self, group: str, name: str, values: np.ndarray):
        self._buf[group].setdefault(name, []).append(values)

    def write(self, event: Event) -> None:
        """Append one event (hits, truth, and particles if the file has them)."""
        # Column order fixed by HIT_COLUMNS (never set order), so the file layout is reproducible.
        cols = [k for k in HIT_COLUMNS if k in event.hits.columns]
        if self._hit_columns is None:
            self._hit_columns = cols
            self._with_particles = event.particles is not None
        elif cols != self._hit_columns or len(cols) != len(event.hits.columns):
            raise ValueError(f"event {event.event_id}: hit columns {sorted(event.hits.columns)} differ "
                             f"from the file's {self._hit_columns}")
        n = len(event.hits)
        for name in cols:
            self._push("hits", name, np.asarray(event.hits[name], HIT_COLUMNS[name][0]))
        self._push("hits", "event", np.full(n, self.n_events, np.int32))
        self._push("events", "event_id", np.asarray(event.event_id, np.int64).reshape(1, 3))
        self._push("events", "hit_offset", np.array([self._rows["hits"] + self._pending], np.int64))
        self._push("events", "hit_count", np.array([n], np.int64))
        for name, dtype in Truth.columns().items() if self._truth else ():
            self._push("events", name, np.array([getattr(event.truth, name)], dtype))
        if self._with_particles:
            parts = event.particles if event.particles is not None else Particles()
            m = len(parts)
            done = self._rows["particles"] + sum(len(a) for a in self._buf["particles"].get("pdg", []))
            self._push("events", "particle_offset", np.array([done], np.int64))
            self._push("events", "particle_count", np.array([m], np.int64))
            for name, (dtype, _) in PARTICLE_COLUMNS.items():
                self._push("particles", name, np.asarray(parts[name], dtype))
        self._pending += n
        self.n_events += 1
        if self._pending >= _FLUSH_ROWS:
            self.flush()

    def write_all(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.write(ev)

    def flush(self) -> None:
        """Move buffered rows into the HDF5 datasets (resizable, chunked, compressed)."""
        for group, cols in self._buf.items():
            for name, parts in cols.items():
                if not parts:
                    continue
                data = np.concatenate(parts)
                key = f"{group}/{name}"
                if key not in self._f:
                    shape = (0,) + data.shape[1:]
                    self._f.create_dataset(key, shape=shape, maxshape=(None,) + data.shape[1:],
                                           dtype=data.dtype, chunks=(min(_CHUNK, max(len(data), 1024)),)
                                           + data.shape[1:], fletcher32=True, track_times=False,
                                           **self._filters)
                ds = self._f[key]
                start = ds.shape[0]
                ds.resize(start + len(data), axis=0)
                ds[start:] = data
                cols[name] = []
                self._out.check()              # stop at the first failed write (full disk)
        for group in self._rows:
            ref = {"hits": "event", "events": "hit_count", "particles": "pdg"}[group]
            key = f"{group}/{ref}"
            self._rows[group] = self._f[key].shape[0] if key in self._f else 0
        self._pending = 0

    # -- finishing ---------------------------------------------------------------------
    def close(self) -> Path:
        """Finish the file and move it into place atomically; returns the final path."""
        if self._closed:
            return self.path
        self.flush()
        if self.n_events == 0 or "hits/event" not in self._f:
            # Empty file: still valid, with zero-length required columns.
            for name, (dtype, _, required) in HIT_COLUMNS.items():
                if required and f"hits/{name}" not in self._f:
                    self._f.create_dataset(f"hits/{name}", shape=(0,), maxshape=(None,), dtype=dtype)
            for name in ("event",):
                if f"hits/{name}" not in self._f:
                    self._f.create_dataset(f"hits/{name}", shape=(0,), maxshape=(None,), dtype=np.int32)
            if "events/event_id" not in self._f:
                self._f.create_dataset("events/event_id", shape=(0, 3), dtype=np.int64)
                self._f.create_dataset("events/hit_offset", shape=(0,), dtype=np.int64)
                self._f.create_dataset("events/hit_count", shape=(0,), dtype=np.int64)
                for name, dtype in Truth.columns().items() if self._truth else ():
                    self._f.create_dataset(f"events/{name}", shape=(0,), dtype=dtype)
        self._f.attrs["n_events"] = self.n_events
        self._f.close()
        self._out.check()
        seal(self.tmp)
        self._out.commit()
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Discard the temporary file; the target path is left untouched."""
        if not self._closed:
            try:
                self._f.close()
            except Exception:  # noqa: BLE001 - closing a broken handle must not mask the cause
                pass
            self._out.discard()
            self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.close()
            except BaseException:       # e.g. disk full on the last flush: leave no temporary file
                self.abort()
                raise
        else:
            self.abort()


def write_hits(path, events: Iterable[Event], detector, **kwargs) -> Path:
    """Write ``events`` to a new hit file at ``path`` (see :class:`HitFileWriter`)."""
    with HitFileWriter(path, detector, **kwargs) as w:
        w.write_all(events)
    return Path(path)


@register_reader("gnnu")
class HitFile(EventReader):
    """Lazy reader of a gnnu hit file. ``HitFile(path)[i]`` → :class:`Event`.

    Opening validates the schema (name, major version), the required columns and the CSR
    offsets; reading an event checks its values are finite. Every problem is one
    :class:`InputError` naming the file (and event).
    """

    _FINITE = ("time", "charge", "width")

    def __init__(self, path: str | os.PathLike, require_truth: bool = True):
        self.path = Path(path)
        self.require_truth = require_truth
        if not self.path.exists():
            raise InputError("file not found", self.path)
        #: Whether the file carried an intact seal (False: an unsealed file, read unchecked).
        self.sealed = check_seal(self.path)
        self._f = open_hdf5(self.path)
        try:
            self._open()
        except InputError:
            self._f.close()
            raise
        except HDF5_ERRORS as exc:
            self._f.close()
            raise InputError(f"unreadable hit file (corrupt or truncated?): {exc}", self.path) from None

    def _open(self):
        attrs = self._f.attrs
        schema = attrs.get("schema")
        if isinstance(schema, bytes):
            schema = schema.decode()
        if schema != SCHEMA:
            raise SchemaError(f"not a gnnu hit file (schema attribute {schema!r}, expected {SCHEMA!r})",
                              self.path)
        version = str(attrs.get("schema_version", "?"))
        if _major(version) != _major(SCHEMA_VERSION):
            raise SchemaError(f"unsupported hit-file schema version {version} (this gnnu reads "
                              f"{_major(SCHEMA_VERSION)}.x)", self.path)
        hits = hdf5_group(self._f, "hits", self.path)
        ev = hdf5_group(self._f, "events", self.path)
        self.hit_columns = [k for k, (_, _, required) in HIT_COLUMNS.items()
                            if required or hits.get(k, getlink=True) is not None]
        lengths = {k: hdf5_column(hits, k, self.path, HIT_COLUMNS[k][0]).shape[0]
                   for k in self.hit_columns}
        if len(set(lengths.values())) != 1:
            raise InputError(f"hit columns have different lengths {lengths}", self.path)
        self.n_hits_total = lengths["view"]
        self._ids = self._events_column(ev, "event_id", np.int64, 3)
        self._offset = self._events_column(ev, "hit_offset", np.int64)
        self._count = self._events_column(ev, "hit_count", np.int64)
        n = len(self._ids)
        if not (len(self._offset) == len(self._count) == n):
            raise InputError("event table columns have different lengths", self.path)
        n_events = attrs.get("n_events")
        if n_events is not None and int(n_events) != n:
            raise InputError(f"file attribute n_events = {int(n_events)} but the event table has "
                             f"{n} rows (incomplete write?)", self.path)
        self._check_csr(self._offset, self._count, self.n_hits_total, "hit")
        self._truth = {}
        present = [k for k in Truth.columns() if ev.get(k, getlink=True) is not None]
        self.has_truth = bool(present)
        if not present and not self.require_truth:      # a file without labels (real data)
            self._truth = {k: np.full(n, getattr(Truth(), k), d) for k, d in Truth.columns().items()}
        for name, dtype in Truth.columns().items() if (present or self.require_truth) else ():
            self._truth[name] = self._events_column(ev, name, dtype)
            if len(self._truth[name]) != n:
                raise InputError(f"event column /events/{name} has {len(self._truth[name])} rows, "
                                 f"expected {n}", self.path)
        self.has_particles = (self._f.get("particles", getlink=True) is not None
                              and ev.get("particle_offset", getlink=True) is not None)
        if self.has_particles:
            parts = hdf5_group(self._f, "particles", self.path)
            lengths = {k: hdf5_column(parts, k, self.path, dtype).shape[0]
                       for k, (dtype, _) in PARTICLE_COLUMNS.items()}
            if len(set(lengths.values())) != 1:
                raise InputError(f"particle columns have different lengths {lengths}", self.path)
            self._p_offset = self._events_column(ev, "particle_offset", np.int64)
            self._p_count = self._events_column(ev, "particle_count", np.int64)
            if not len(self._p_offset) == len(self._p_count) == n:
                raise InputError("particle offsets/counts do not have one row per event", self.path)
            self._check_csr(self._p_offset, self._p_count, lengths["pdg"], "particle")
        try:
            det = json.loads(attrs.get("detector", "{}"))
            self.detector = detector_from_dict(det, f"{self.path} (detector attribute)")
        except (json.JSONDecodeError, ConfigError) as exc:
            raise InputError(f"invalid detector description: {exc}", self.path) from None
        self.generator = json.loads(attrs.get("generator", "{}") or "{}")
        self.seed = int(attrs.get("seed", -1))
        self.software = str(attrs.get("software", "?"))
        self.schema_version = version

    def _events_column(self, ev, name: str, dtype, width: int | None = None) -> np.ndarray:
        """A whole /events column as ``dtype`` ([n] or [n, width])."""
        values = cast_column(hdf5_column(ev, name, self.path, dtype,
                                         (() if width is None else (width,),))[...], dtype)
        if values is None:
            raise InputError(f"/events/{name} holds values outside the range of {np.dtype(dtype)}",
                             self.path)
        return values

    def _check_csr(self, offset: np.ndarray, count: np.ndarray, total: int, what: str) -> None:
        """InputError naming the first event whose rows do not follow the previous event's."""
        ends = offset + count
        good = (count >= 0) & (offset == np.r_[0, ends[:-1]])
        if good.all() and (ends[-1] == total if len(ends) else total == 0):
            return
        bad = int(np.flatnonzero(~good)[0]) if not good.all() else (len(ends) - 1 if len(ends) else None)
        raise InputError(f"{what} offsets/counts inconsistent with {total} {what}s (truncated "
                         f"file?)", self.path, event=bad)

    def __len__(self) -> int:
        return len(self._ids)

    def event_ids(self) -> np.ndarray:
        return self._ids.copy()

    def truth(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._truth.items()}

    def _truth_row(self, i: int) -> Truth:
        return Truth(**{k: v[i].item() for k, v in self._truth.items()})

    def _slice(self, group: str, columns: dict, start: int, stop: int, index: int):
        """Rows [start, stop) of ``columns`` {name: dtype} of ``group``, cast to their dtypes."""
        out = {}
        try:
            for k, dtype in columns.items():
                out[k] = cast_column(self._f[group][k][start:stop], dtype)
                if out[k] is None:
                    raise InputError(f"/{group}/{k} holds values outside the range of {dtype}",
                                     self.path, event=index, event_id=self._ids[index])
        except HDF5_ERRORS as exc:
            raise InputError(f"cannot read /{group} (corrupt or truncated file?): "
                             f"{str(exc).splitlines()[0]}", self.path, event=index,
                             event_id=self._ids[index]) from None
        return out

    def _check_finite(self, cols: dict, first: int, offsets: np.ndarray):
        for name in self._FINITE:
            bad = ~np.isfinite(cols[name])
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                i = first + int(np.searchsorted(offsets, row, side="right") - 1)
                raise InputError(f"non-finite hit {name} ({cols[name][row]})", self.path,
                                 event=i, event_id=self._ids[i])

    def read(self, index: int) -> Event:
        i = self.check_index(index)
        return self.read_range(i, i + 1)[0]

    def read_range(self, start: int, stop: int) -> list[Event]:
        """Events ``start`` ≤ i < ``stop`` with one read per column; bad input raises the
        InputError of the first bad event, the one ``read`` raises for it."""
        if start >= stop:
            return []
        self.check_index(start)
        self.check_index(stop - 1)
        return first_bad_event(self._read_block, start, stop)

    def _read_block(self, start: int, stop: int) -> list[Event]:
        a, b = int(self._offset[start]), int(self._offset[stop - 1] + self._count[stop - 1])
        cols = self._slice("hits", {k: HIT_COLUMNS[k][0] for k in self.hit_columns}, a, b, start)
        rel = self._offset[start:stop] - a
        self._check_finite(cols, start, rel)
        parts = None
        if self.has_particles:
            pa = int(self._p_offset[start])
            pb = int(self._p_offset[stop - 1] + self._p_count[stop - 1])
            parts = self._slice("particles", {k: v[0] for k, v in PARTICLE_COLUMNS.items()},
                                pa, pb, start)
            prel = self._p_offset[start:stop] - pa
        events = []
        for j, i in enumerate(range(start, stop)):
            lo, hi = rel[j], rel[j] + self._count[i]
            hits = Hits({k: v[lo:hi] for k, v in cols.items()})
            particles = None
            if parts is not None:
                plo, phi = prel[j], prel[j] + self._p_count[i]
                particles = Particles({k: v[plo:phi] for k, v in parts.items()})
            events.append(Event(tuple(int(v) for v in self._ids[i]), self._truth_row(i), hits,
                                particles))
        return events

    def __getitem__(self, index: int) -> Event:
        return self.read(index)

    def close(self) -> None:
        if getattr(self, "_f", None) is not None:
            self._f.close()
            self._f = None
