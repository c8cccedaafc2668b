"""One reader interface for every input format, and the format registry.

A reader opens a source lazily (nothing but the small per-event tables is loaded), knows its
detector geometry, and returns :class:`gnnu.events.Event` objects by index. Every failure on
bad input is a :class:`gnnu.errors.InputError` naming the file (and event).

A new format is one module with an :class:`EventReader` subclass plus one line in
:data:`READERS`.
"""

from __future__ import annotations

import abc
import importlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from ..events import Event, Truth

#: format name → "module:Class" (imported on first use).
READERS = {
    "gnnu": "gnnu.io.hitfile:HitFile",
    "numl": "gnnu.io.numl:NuMLReader",
    "dune-cvn": "gnnu.io.dune_cvn:DuneCVNReader",
}


class EventReader(abc.ABC):
    """Random access to the events of one source (file or directory).

    Subclasses set ``format``, ``path`` and ``detector`` (an object with ``views`` and
    ``hit_positions(view, wire, time) -> [N, 2] cm``) and implement :meth:`__len__`,
    :meth:`read` and :meth:`event_ids`.
    """

    format: str = ""
    path: Path
    detector = None

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
    except OSError as exc:
        raise InputError(f"not a readable HDF5 file (corrupt or truncated?): "
                         f"{str(exc).splitlines()[0]}", path) from None


def open_source(path: str | os.PathLike, format: str, **options) -> EventReader:
    """Open ``path`` with the reader registered for ``format``."""
    if format not in READERS:
        raise InputError(f"unknown input format '{format}' (known: {', '.join(READERS)})", path)
    module, cls = READERS[format].split(":")
    return getattr(importlib.import_module(module), cls)(path, **options)
