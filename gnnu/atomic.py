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
- :func:`write_text_atomic`, :func:`write_json_atomic`: whole text or JSON documents;
  :func:`write_torch_atomic`: ``torch.save`` (checkpoints, slim weights).
- One JSON policy (:func:`jsonable`): numpy scalars and arrays become plain numbers and lists,
  NaN and ±inf become ``null``, and non-finite floats never reach the file (``allow_nan=False``):
  every JSON file gnnu writes is strict JSON that any parser reads.

A writer killed hard (SIGKILL, power loss) leaves its ``.tmp-<pid>`` file behind;
:func:`remove_stale_temporaries` deletes those whose process is gone, and ``gnnu-build`` clears
its own in the output directory before it starts.

Faults of the file system (docs/design.md#reliability):

- A full disk, an exceeded quota, a read-only file system or a missing permission is an
  ``OSError`` that names the *target* (never the temporary name): :func:`atomic_path` and
  :meth:`AtomicFile.commit` re-raise it so, and :func:`output_error_message` is the one
  translation into the line the command lines print ("no space left on PATH", …).
- torch's writer turns a failed write into ``RuntimeError("unexpected pos …")``;
  :func:`write_torch_atomic` writes through the same guard as HDF5 (below) so a full disk is
  the ``OSError`` it is.
- HDF5 is never handed a failing write: :meth:`AtomicFile.open_hdf5` gives h5py a Python file
  object (:class:`_GuardedIO`) that records the first failed write and drops the later ones, so
  the HDF5 library keeps a consistent state and closes cleanly, and :meth:`AtomicFile.check`
  (called by the writers after every flush, and by ``commit``) raises the recorded error. HDF5
  writing through its own POSIX driver into a full file system instead ends in a segmentation
  fault (h5py 3.16 / HDF5 2.0: the failed chunk writes surface in object deallocation, and the
  file close then crashes); writing through the guard costs nothing measurable (a 240 MB file
  of ten chunked, checksummed datasets: 0.73–0.84 s guarded vs 0.68–0.91 s direct).
- :func:`atomic_group`: several files that belong together (a report: predictions, plots,
  ``metrics.json``) are all written under temporary names first and renamed only when every one
  is complete, so a failure part-way keeps the whole previous report.
- :func:`output_lock`: an advisory lock (``fcntl.flock`` on ``<output>.lock`` beside the
  output) held for a whole run, so a second run into the same output stops at once with
  "OUT is being written by pid N (started …)".
"""

from __future__ import annotations

import contextvars
import errno
import io
import json
import math
import os
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import OutputBusyError

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


def shown_path(path: str | os.PathLike) -> str:
    """``path`` as a user should see it: a temporary ``<name>.tmp-<pid>`` becomes ``<name>``."""
    text = os.fspath(path)
    head, mark, tail = text.rpartition(TMP_MARK)
    return head if mark and tail.isdigit() else text


#: errno → what the command lines say about the output (one line each).
_OUTPUT_ERRNOS = {
    errno.ENOSPC: "no space left on {path}",
    errno.EDQUOT: "disk quota exceeded on {path}",
    errno.EFBIG: "file size limit exceeded writing {path}",
    errno.EROFS: "cannot write {path}: read-only file system",
    errno.EACCES: "cannot write {path}: permission denied",
    errno.EPERM: "cannot write {path}: operation not permitted",
}


def output_error_message(exc: BaseException) -> str | None:
    """The one line for a file-system fault of the output (``OSError`` of :data:`_OUTPUT_ERRNOS`:
    full disk, quota, read-only, permissions), naming the target path; None for anything else."""
    if not isinstance(exc, OSError) or exc.errno not in _OUTPUT_ERRNOS:
        return None
    path = shown_path(exc.filename) if exc.filename else "the output"
    line = _OUTPUT_ERRNOS[exc.errno].format(path=path)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        line += "; nothing half-written was kept: free space and run again"
    return line


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path`` (the target) when it named nothing or the temporary file."""
    if exc.errno is None or (exc.filename and shown_path(exc.filename) != os.fspath(path)
                             and exc.filename != os.fspath(temporary_path(path))):
        return exc
    new = OSError(exc.errno, exc.strerror or os.strerror(exc.errno), os.fspath(path))
    new.__cause__ = exc
    return new


class _GuardedIO(io.RawIOBase):
    """A file object for h5py that never lets a failed write reach the HDF5 library: the first
    ``OSError`` of a write, flush, seek or truncate is kept in :attr:`error` and every later write
    is dropped (the file is discarded anyway). Reads read what is there (zeros past the end)."""

    def __init__(self, path: Path):
        super().__init__()
        self._f = open(path, "w+b", buffering=0)
        self.error: OSError | None = None

    def _failed(self, exc: OSError) -> None:
        if self.error is None:
            self.error = exc

    def readable(self):
        return True

    def writable(self):
        return True

    def seekable(self):
        return True

    def readinto(self, b):
        try:
            return self._f.readinto(b)
        except OSError as exc:
            self._failed(exc)
            return 0

    def write(self, b):
        n = len(memoryview(b).cast("B"))
        if self.error is None:
            try:
                view, done = memoryview(b).cast("B"), 0
                while done < n:
                    done += self._f.write(view[done:])
            except OSError as exc:
                self._failed(exc)
        return n

    def seek(self, offset, whence=0):
        return self._f.seek(offset, whence)

    def tell(self):
        return self._f.tell()

    def truncate(self, size=None):
        if self.error is None:
            try:
                return self._f.truncate(size)
            except OSError as exc:
                self._failed(exc)
        return size

    def flush(self):
        pass

    def close(self):
        if not self._f.closed:
            self._f.close()
        super().close()


class AtomicFile:
    """One atomic write in progress: write to :attr:`tmp`, then :meth:`commit` or :meth:`discard`.

    ``commit`` fsyncs the temporary file, renames it over :attr:`path` and fsyncs the directory;
    ``discard`` removes the temporary file (the target stays untouched). Both are idempotent
    and a committed write cannot be discarded. Inside :func:`atomic_group`, ``commit`` only
    checks the file and leaves the rename to the group's end. An ``OSError`` names :attr:`path`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.tmp = temporary_path(self.path)
        self.done = False
        self._guard: _GuardedIO | None = None

    def open_guarded(self) -> io.RawIOBase:
        """A binary file object writing :attr:`tmp` that never fails a write: the first error is
        kept and raised (naming :attr:`path`) by :meth:`check` and :meth:`commit`."""
        try:
            self._guard = _GuardedIO(self.tmp)
        except OSError as exc:
            raise _naming(exc, self.path)
        return self._guard

    def open_hdf5(self, **kwargs):
        """An ``h5py.File`` writing :attr:`tmp` through the guard (module docstring); close it
        before :meth:`commit`. ``kwargs`` go to ``h5py.File`` (``libver``, ``userblock_size`` …)."""
        import h5py

        self.open_guarded()
        try:
            return h5py.File(self._guard, "w", **kwargs)
        except BaseException:
            self._guard.close()
            self.discard()
            raise

    def check(self) -> None:
        """Raise the first write error the HDF5 guard recorded (naming :attr:`path`), if any."""
        if self._guard is not None and self._guard.error is not None:
            raise _naming(self._guard.error, self.path)

    def _finish(self) -> None:
        if self._guard is not None:
            self._guard.close()
        self.check()
        _fsync_file(self.tmp)

    def commit(self) -> Path:
        """Move the finished temporary file into place; returns the target path."""
        if not self.done:
            try:
                self._finish()
                group = _GROUP.get()
                if group is not None:
                    group.append(self)
                    return self.path
                os.replace(self.tmp, self.path)
            except OSError as exc:
                self.discard()
                raise _naming(exc, self.path)
            except BaseException:
                self.discard()
                raise
            self.done = True
            _fsync_dir(self.path.parent)
        return self.path

    def discard(self) -> None:
        """Remove the temporary file, if any; the target path is left as it was."""
        if not self.done:
            if self._guard is not None:
                self._guard.close()
            self.tmp.unlink(missing_ok=True)
            self.done = True


#: The group of :func:`atomic_group` being written (None outside one).
_GROUP: contextvars.ContextVar[list | None] = contextvars.ContextVar("gnnu_atomic_group", default=None)


@contextmanager
def atomic_group() -> Iterator[None]:
    """Write several files as one: inside, every atomic write (:func:`atomic_path`,
    :class:`AtomicFile`, the ``write_*_atomic`` helpers) stays under its temporary name; at a
    clean exit all are renamed into place (in the order written), on any exception all are
    removed and every target keeps its previous content."""
    if _GROUP.get() is not None:            # nested: the outer group commits
        yield
        return
    pending: list[AtomicFile] = []
    token = _GROUP.set(pending)
    try:
        yield
    except BaseException:
        _GROUP.reset(token)
        for f in pending:
            f.discard()
        raise
    _GROUP.reset(token)
    for i, f in enumerate(pending):
        try:
            os.replace(f.tmp, f.path)
        except OSError as exc:
            for g in pending[i:]:
                g.discard()
            raise _naming(exc, f.path)
        f.done = True
    for directory in {f.path.parent for f in pending}:
        _fsync_dir(directory)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield the temporary path to write ``path`` through; on a clean exit it is renamed into
    place, on any exception (interrupts too) it is removed and ``path`` is left as it was::

        with atomic_path(out / "predictions.h5") as tmp:
            with h5py.File(tmp, "w") as f:
                ...

    An ``OSError`` (full disk, no permission …) is re-raised naming ``path``.
    """
    out = AtomicFile(path)
    try:
        yield out.tmp
    except OSError as exc:
        out.discard()
        raise _naming(exc, out.path)
    except BaseException:
        out.discard()
        raise
    out.commit()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_torch_atomic(path: str | os.PathLike, obj) -> Path:
    """``torch.save(obj)`` to ``path`` atomically, through the guard: a full disk is an
    ``OSError`` naming ``path`` (torch's own writer reports a failed write as a ``RuntimeError``,
    "unexpected pos …", with no errno). Returns the path."""
    import torch

    out = AtomicFile(path)
    try:
        torch.save(obj, out.open_guarded())       # a failed write is kept by the guard, raised by commit
    except BaseException:
        out.discard()
        raise
    return out.commit()


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


# -- one writer per output ---------------------------------------------------------------------
LOCK_SUFFIX = ".lock"


def remove_outputs(directory: str | os.PathLike, names) -> None:
    """Delete the files and folders ``names`` of ``directory`` that exist (a command's own
    outputs before ``--force`` rewrites them), nothing else there."""
    for name in names:
        p = Path(directory) / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of output ``path`` (a file or a directory): ``<path>.lock`` beside it."""
    path = Path(os.path.abspath(path))
    return path.with_name(path.name + LOCK_SUFFIX)


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        who = f"pid {int(info['pid'])}"
        if info.get("host") and info["host"] != socket.gethostname():
            who += f" on {info['host']}"
        return f"{who} (started {info['started']}, {info.get('command', 'gnnu')})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (starting)"


@contextmanager
def output_lock(path: str | os.PathLike, command: str = "gnnu") -> Iterator[Path]:
    """Hold the advisory lock of output ``path`` for the ``with`` block: a second holder stops at
    once with :class:`gnnu.errors.OutputBusyError` "PATH is being written by pid N (started …)".

    ``fcntl.flock`` on :func:`lock_path` (created if needed, missing parent directories too),
    released by the kernel when the process ends however it ends (a stale lock file left by a
    ``kill -9`` is simply taken over); the file, which holds the holder's pid, host, start time
    and ``command``, is removed on exit. Worker processes forked inside share the lock. Where
    ``fcntl`` does not exist (Windows) nothing is locked. An ``OSError`` (read-only, no
    permission, full disk) names ``path``."""
    try:
        import fcntl
    except ImportError:                          # pragma: no cover - Windows
        yield lock_path(path)
        return
    path = Path(path)
    lock = lock_path(path)
    fd = None
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                fd = None
                raise OutputBusyError(f"{path} is being written by {_holder(lock)}; wait for it "
                                      f"to finish or stop it (a lock held by a dead process is "
                                      f"released by the system)") from None
            try:                                 # the holder before us may have removed the file
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
            fd = None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
    except OSError as exc:               # read-only, no permission, full disk: nothing left behind
        if fd is not None:
            lock.unlink(missing_ok=True)
            os.close(fd)
        raise OSError(exc.errno, exc.strerror, os.fspath(path)) from exc
    try:
        yield lock
    finally:
        try:
            lock.unlink()
        except OSError:
            pass
        os.close(fd)
