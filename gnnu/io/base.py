"""One reader interface for every input format, and the format registry.

A reader opens a source lazily (nothing but the small per-event tables is loaded), knows its
detector geometry, and returns :class:`gnnu.events.Event` objects by index. Every failure on
bad input is a :class:`gnnu.errors.InputError` naming the file (and event).

A new format is one module with an :class:`EventReader` subclass registered by
``@register_reader("name")`` (:data:`READERS`; its module is listed there so that it is imported
on the first lookup).
"""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError, SchemaError
from ..events import Event, Truth
from ..registry import Registry


class EventReader(abc.ABC):
    """Random access to the events of one source (file or directory).

    Subclasses set ``format``, ``path`` and ``detector`` (an object with ``views`` and
    ``hit_positions(view, wire, time) -> [N, 2] cm``) and implement :meth:`__len__`,
    :meth:`read` and :meth:`event_ids`.
    """

    format: str = ""
    path: Path
    detector = None
    #: Whether the source carries event-level truth (labels). Readers opened with
    #: ``require_truth=False`` accept a source without it; its events then have the undefined
    #: :class:`gnnu.events.Truth` (−1 labels, NaN energies and vertex).
    has_truth: bool = True

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of events in the source."""

    @abc.abstractmethod
    def read(self, index: int) -> Event:
        """Event number ``index`` (0-based row); InputError naming file and event if bad."""

    @abc.abstractmethod
    def event_ids(self) -> np.ndarray:
        """[n, 3] int64 array of (run, subrun, event) for every event, in row order."""

    def read_range(self, start: int, stop: int) -> list[Event]:
        """Events ``start`` ≤ i < ``stop``; readers override this when a block read is faster."""
        return [self.read(i) for i in range(start, stop)]

    def truth(self) -> dict[str, np.ndarray]:
        """Event-level truth columns (see :class:`gnnu.events.Truth`) for all events."""
        rows = [self.read(i).truth for i in range(len(self))]
        return {k: np.array([getattr(t, k) for t in rows], dtype=d)
                for k, d in Truth.columns().items()}

    def validate(self, block: int = 1024) -> int:
        """Read every event once (finite values, readable data); returns the event count.
        The first bad event raises its InputError."""
        for start in range(0, len(self), block):
            self.read_range(start, min(start + block, len(self)))
        return len(self)

    def __iter__(self) -> Iterator[Event]:
        block = 256
        for start in range(0, len(self), block):
            yield from self.read_range(start, min(start + block, len(self)))

    def check_index(self, index: int) -> int:
        """Validate a 0-based event index (negative counts from the end)."""
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"{self.path}: event {index} out of range (file holds {n} events)")
        return index

    def close(self) -> None:
        """Release file handles (safe to call twice)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_hdf5(path: Path):
    """Open an HDF5 file read-only; a missing, corrupt or truncated file is one InputError."""
    import h5py

    if not path.exists():
        raise InputError("file not found", path)
    try:
        return h5py.File(path, "r")
    except (OSError, RuntimeError) as exc:
        raise InputError(f"not a readable HDF5 file (corrupt or truncated?): "
                         f"{str(exc).splitlines()[0]}", path) from None


#: What h5py raises on damaged files: OSError (I/O, filters, checksums), RuntimeError (broken
#: metadata, e.g. a bad link or object-header checksum), KeyError / ValueError / TypeError
#: (missing or malformed objects). Readers turn these into one InputError.
HDF5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)


def _hard_object(group, name: str, path: Path, kind: type, what: str):
    """``group[name]`` if it is an object of type ``kind`` stored in this file (a hard link);
    SchemaError naming the file and object otherwise (missing, wrong kind, soft or external
    link — gnnu never follows a link to another file)."""
    import h5py

    where = f"{group.name.rstrip('/')}/{name}"
    link = group.get(name, getlink=True)
    if link is None:
        raise SchemaError(f"missing {what} {where}", path)
    if not isinstance(link, h5py.HardLink):
        raise SchemaError(f"{where} is a {type(link).__name__}, not a {what} stored in the file",
                          path)
    obj = group[name]
    if not isinstance(obj, kind):
        raise SchemaError(f"{where} is not a {what}", path)
    return obj


def hdf5_group(group, name: str, path: Path):
    """The HDF5 group ``group[name]``; SchemaError naming the file if it is missing, not a
    group, or a link."""
    import h5py

    return _hard_object(group, name, path, h5py.Group, "group")


def hdf5_column(group, name: str, path: Path, dtype, trailing=((),)):
    """``group[name]`` checked to be a dataset of numbers fit to be read as ``dtype``.

    The dataset must be stored in the file (not a group or a link) with shape ``(n, *t)`` for
    one ``t`` of ``trailing`` (``((),)`` for a 1-D column, ``((3,),)`` for ``[n, 3]``) and a
    numeric dtype; an integer ``dtype`` needs integers (:func:`cast_column` later checks the
    values fit). Raises SchemaError naming the file and the dataset.
    """
    import h5py

    obj = _hard_object(group, name, path, h5py.Dataset, "dataset")
    kind = obj.dtype.kind
    if kind not in "iuf" or (np.dtype(dtype).kind in "iu" and kind == "f"):
        raise SchemaError(f"{obj.name} has dtype {obj.dtype}, expected {np.dtype(dtype)}", path)
    if len(obj.shape) < 1 or tuple(obj.shape[1:]) not in {tuple(t) for t in trailing}:
        want = " or ".join(str(("n",) + tuple(t)).replace("'", "") for t in trailing)
        raise SchemaError(f"{obj.name} has shape {obj.shape}, expected {want}", path)
    return obj


def cast_column(values: np.ndarray, dtype) -> np.ndarray | None:
    """``values`` as ``dtype``; None if an integer value does not fit in ``dtype``."""
    dtype = np.dtype(dtype)
    if values.dtype == dtype:
        return values
    out = values.astype(dtype)
    if dtype.kind in "iu" and not np.array_equal(out, values):
        return None
    return out


def first_bad_event(read_block, start: int, stop: int) -> list[Event]:
    """``read_block(start, stop)``, a reader's one-pass read of events ``start`` ≤ i < ``stop``;
    if it fails, the InputError of the first event that fails when read alone, so a block read
    names the same event (the first bad one) as reading its events one by one. A block read
    reports the first failing *check*, which may concern a later event or, for a damaged chunk,
    the block's first event; the events are reread one by one only on this error path."""
    try:
        return read_block(start, stop)
    except InputError as exc:
        if stop - start == 1:
            raise
        block_error = exc
    for i in range(start, stop):
        read_block(i, i + 1)
    raise block_error


#: format name → reader class; the modules below register their readers when imported.
READERS: Registry[type[EventReader]] = Registry(
    "input format", modules=("gnnu.io.hitfile", "gnnu.io.numl", "gnnu.io.dune_cvn"))


def register_reader(name: str):
    """Class decorator: register an :class:`EventReader` subclass as the reader of format
    ``name`` (also its ``format`` attribute)."""
    def decorate(cls: type[EventReader]) -> type[EventReader]:
        cls.format = name
        return READERS.register(name, cls)
    return decorate


def open_source(path: str | os.PathLike, format: str, **options) -> EventReader:
    """Open ``path`` with the reader registered for ``format``."""
    if format not in READERS:
        raise InputError(READERS.unknown(format), path)
    return READERS[format](path, **options)
