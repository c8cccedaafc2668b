"""Atomic output: every file gnnu writes appears complete or not at all (docs/design.md#reliability).

One way to write a file, used by every writer (hit files, shards, manifests, reports, plots,
run records): write under the temporary sibling name ``<name>.tmp-<pid>`` in the same directory
(so the rename cannot cross file systems), flush it to disk (``fsync``), rename it over the
target (``os.replace``: readers see the old file or the new one, never a part), then flush the
directory entry. On any exception — ``KeyboardInterrupt`` and ``SystemExit`` included — the
temporary file is removed and the target is left as it was.

- :func:`atomic_path`: a context manager yielding the temporary path, for writers that need a
  file name (h5py, matplotlib); :class:`AtomicFile` is the same as an object, for writers whose
  lifetime spans several calls (:class:`gnnu.io.hitfile.HitFileWriter`, the shard writer).
- :func:`write_text_atomic`, :func:`write_json_atomic`: whole text or JSON documents.
- One JSON policy (:func:`jsonable`): numpy scalars and arrays become plain numbers and lists,
  NaN and ±inf become ``null``, and non-finite floats never reach the file (``allow_nan=False``):
  every JSON file gnnu writes is strict JSON that any parser reads.

A writer killed hard (SIGKILL, power loss) leaves its ``.tmp-<pid>`` file behind;
:func:`remove_stale_temporaries` deletes those whose process is gone, and ``gnnu-build`` clears
its own in the output directory before it starts.
"""

from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

#: Marker between a target's name and the writer's process id in a temporary file's name.
TMP_MARK = ".tmp-"


def temporary_path(path: str | os.PathLike) -> Path:
    """The sibling temporary file ``<path>.tmp-<pid>`` an atomic write goes to first."""
    path = Path(path)
    return path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files ``<path>.tmp-<pid>`` left by writers that were killed (their
    process no longer exists); a live writer's file is kept. Returns the files removed."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f"{path.name}{TMP_MARK}*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
            continue                         # that writer is still running
        except ProcessLookupError:
            pass
        except PermissionError:              # alive, another user's
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Flush a directory entry (the rename); skipped where the OS cannot open directories."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicFile:
    """One atomic write in progress: write to :attr:`tmp`, then :meth:`commit` or :meth:`discard`.

    ``commit`` fsyncs the temporary file, renames it over :attr:`path` and fsyncs the directory;
    ``discard`` removes the temporary file (the target stays untouched). Both are idempotent
    and a committed write cannot be discarded.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.tmp = temporary_path(self.path)
        self.done = False

    def commit(self) -> Path:
        """Move the finished temporary file into place; returns the target path."""
        if not self.done:
            try:
                _fsync_file(self.tmp)
                os.replace(self.tmp, self.path)
            except BaseException:
                self.discard()
                raise
            self.done = True
            _fsync_dir(self.path.parent)
        return self.path

    def discard(self) -> None:
        """Remove the temporary file, if any; the target path is left as it was."""
        if not self.done:
            self.tmp.unlink(missing_ok=True)
            self.done = True


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield the temporary path to write ``path`` through; on a clean exit it is renamed into
    place, on any exception (interrupts too) it is removed and ``path`` is left as it was::

        with atomic_path(out / "predictions.h5") as tmp:
            with h5py.File(tmp, "w") as f:
                ...
    """
    out = AtomicFile(path)
    try:
        yield out.tmp
    except BaseException:
        out.discard()
        raise
    out.commit()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def jsonable(obj):
    """``obj`` in plain JSON types: numpy scalars and arrays to Python numbers and lists,
    tuples to lists, mapping keys to strings, NaN and ±inf to None (gnnu's one JSON policy)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def json_text(obj, indent: int | None = 2) -> str:
    """``obj`` as strict JSON text (:func:`jsonable`, no NaN), with a final newline."""
    return json.dumps(jsonable(obj), indent=indent, allow_nan=False) + "\n"


def write_json_atomic(path: str | os.PathLike, obj, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON (:func:`json_text`) to ``path`` atomically; returns the path."""
    return write_text_atomic(path, json_text(obj, indent))
