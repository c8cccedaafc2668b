"""The gnnu hit file (DESIGN §3.2): columnar, schema-versioned, self-describing HDF5.

Layout::

    /hits/<column>        one row per hit (gnnu.events.HIT_COLUMNS) plus ``event`` (event row)
    /events/<column>      one row per event: ``event_id`` [n, 3] (run, subrun, event),
                          ``hit_offset``/``hit_count`` (CSR into /hits), every Truth field,
                          ``particle_offset``/``particle_count`` (CSR into /particles)
    /particles/<column>   optional truth particle table (gnnu.events.PARTICLE_COLUMNS)
    attributes            schema, schema_version, detector (JSON), generator (JSON), seed,
                          software, n_events

Writes are atomic: everything goes to ``<out>.tmp-<pid>`` which is renamed over ``<out>`` only
when complete, so an interrupted run never leaves a file a reader would accept. Reading is
lazy: only the per-event table is loaded; hits are sliced per event (chunked storage, so a read
decompresses only the chunks it touches).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np

from .. import __version__
from ..detectors import detector_from_dict, detector_json
from ..errors import ConfigError, InputError, OutputExistsError, SchemaError
from ..events import HIT_COLUMNS, PARTICLE_COLUMNS, Event, Hits, Particles, Truth
from .base import EventReader, open_hdf5

SCHEMA = "gnnu-hits"
SCHEMA_VERSION = "1.0"
_CHUNK = 65536
_FLUSH_ROWS = 1 << 20


def _major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return -1


def temporary_path(path: Path) -> Path:
    """The sibling temporary file an atomic write goes to first."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def prepare_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Check that ``path`` may be written: refuse an existing file unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: output exists (use --force to overwrite)")
    if not path.parent.exists():
        raise OutputExistsError(f"{path}: directory {path.parent} does not exist")
    return path


class HitFileWriter:
    """Append events to a new hit file; atomic on :meth:`close`, discarded on error.

    Use as a context manager::

        with HitFileWriter(out, detector, generator={...}, seed=1) as w:
            for ev in events:
                w.write(ev)
    """

    def __init__(self, path: str | os.PathLike, detector, generator: dict | None = None,
                 seed: int | None = None, overwrite: bool = False, compression: str = "lzf"):
        self.path = prepare_output(path, overwrite)
        self.tmp = temporary_path(self.path)
        self._f = h5py.File(self.tmp, "w", track_order=True)
        self._compression = compression
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
        for name, dtype in Truth.columns().items():
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
                                           + data.shape[1:], compression=self._compression,
                                           track_times=False)
                ds = self._f[key]
                start = ds.shape[0]
                ds.resize(start + len(data), axis=0)
                ds[start:] = data
                cols[name] = []
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
                for name, dtype in Truth.columns().items():
                    self._f.create_dataset(f"events/{name}", shape=(0,), dtype=dtype)
        self._f.attrs["n_events"] = self.n_events
        self._f.close()
        os.replace(self.tmp, self.path)
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Discard the temporary file; the target path is left untouched."""
        if not self._closed:
            try:
                self._f.close()
            except Exception:  # noqa: BLE001 - closing a broken handle must not mask the cause
                pass
            self.tmp.unlink(missing_ok=True)
            self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_hits(path, events: Iterable[Event], detector, **kwargs) -> Path:
    """Write ``events`` to a new hit file at ``path`` (see :class:`HitFileWriter`)."""
    with HitFileWriter(path, detector, **kwargs) as w:
        w.write_all(events)
    return Path(path)


class HitFile(EventReader):
    """Lazy reader of a gnnu hit file. ``HitFile(path)[i]`` → :class:`Event`.

    Opening validates the schema (name, major version), the required columns and the CSR
    offsets; reading an event checks its values are finite. Every problem is one
    :class:`InputError` naming the file (and event).
    """

    format = "gnnu"
    _FINITE = ("time", "charge", "width")

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._f = open_hdf5(self.path)
        try:
            self._open()
        except InputError:
            self._f.close()
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
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
        for group in ("hits", "events"):
            if group not in self._f:
                raise SchemaError(f"missing group /{group}", self.path)
        required_hits = [k for k, v in HIT_COLUMNS.items() if v[2]]
        for name in required_hits:
            if name not in self._f["hits"]:
                raise SchemaError(f"missing hit column /hits/{name}", self.path)
        for name in ("event_id", "hit_offset", "hit_count"):
            if name not in self._f["events"]:
                raise SchemaError(f"missing event column /events/{name}", self.path)
        self.hit_columns = [k for k in HIT_COLUMNS if k in self._f["hits"]]
        n_hits = {self._f["hits"][k].shape[0] for k in self.hit_columns}
        if len(n_hits) != 1:
            raise InputError("hit columns have different lengths "
                             f"{ {k: self._f['hits'][k].shape[0] for k in self.hit_columns} }", self.path)
        self.n_hits_total = n_hits.pop()
        ev = self._f["events"]
        self._ids = ev["event_id"][...].astype(np.int64).reshape(-1, 3)
        self._offset = ev["hit_offset"][...].astype(np.int64)
        self._count = ev["hit_count"][...].astype(np.int64)
        n = len(self._ids)
        if not (len(self._offset) == len(self._count) == n):
            raise InputError("event table columns have different lengths", self.path)
        if n and (np.any(self._count < 0) or np.any(self._offset < 0)
                  or self._offset[-1] + self._count[-1] != self.n_hits_total
                  or np.any(self._offset[1:] != self._offset[:-1] + self._count[:-1])):
            bad = int(np.flatnonzero(np.r_[self._offset[1:] != self._offset[:-1] + self._count[:-1],
                                           True])[0]) if n > 1 else 0
            raise InputError(f"hit offsets/counts inconsistent with {self.n_hits_total} hits "
                             f"(truncated file?)", self.path, event=bad)
        self._truth = {}
        for name, dtype in Truth.columns().items():
            col = ev.get(name)
            if col is None:
                raise SchemaError(f"missing event column /events/{name}", self.path)
            if col.shape[0] != n:
                raise InputError(f"event column /events/{name} has {col.shape[0]} rows, expected {n}",
                                 self.path)
            self._truth[name] = col[...].astype(dtype)
        self.has_particles = "particles" in self._f and "particle_offset" in ev
        if self.has_particles:
            self._p_offset = ev["particle_offset"][...].astype(np.int64)
            self._p_count = ev["particle_count"][...].astype(np.int64)
        try:
            det = json.loads(attrs.get("detector", "{}"))
            self.detector = detector_from_dict(det, f"{self.path} (detector attribute)")
        except (json.JSONDecodeError, ConfigError) as exc:
            raise InputError(f"invalid detector description: {exc}", self.path) from None
        self.generator = json.loads(attrs.get("generator", "{}") or "{}")
        self.seed = int(attrs.get("seed", -1))
        self.software = str(attrs.get("software", "?"))
        self.schema_version = version

    def __len__(self) -> int:
        return len(self._ids)

    def event_ids(self) -> np.ndarray:
        return self._ids.copy()

    def truth(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._truth.items()}

    def _truth_row(self, i: int) -> Truth:
        return Truth(**{k: v[i].item() for k, v in self._truth.items()})

    def _slice(self, group: str, columns, start: int, stop: int, index: int):
        try:
            return {k: self._f[group][k][start:stop] for k in columns}
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"cannot read /{group} (corrupt or truncated file?): "
                             f"{str(exc).splitlines()[0]}", self.path, event=index,
                             event_id=self._ids[index]) from None

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
        """Events ``start`` ≤ i < ``stop`` with one read per column."""
        if start >= stop:
            return []
        self.check_index(start)
        self.check_index(stop - 1)
        a, b = int(self._offset[start]), int(self._offset[stop - 1] + self._count[stop - 1])
        cols = self._slice("hits", self.hit_columns, a, b, start)
        rel = self._offset[start:stop] - a
        self._check_finite(cols, start, rel)
        parts = None
        if self.has_particles:
            pa = int(self._p_offset[start])
            pb = int(self._p_offset[stop - 1] + self._p_count[stop - 1])
            parts = self._slice("particles", PARTICLE_COLUMNS, pa, pb, start)
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
