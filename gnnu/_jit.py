"""Compiled kernels: numba's ``njit`` with its on-disk cache in a writable place.

Hot loops that numpy cannot vectorise (per-hit neighbour searches, per-step transport) are
compiled with :func:`jit`. Compiled code is cached on disk, so only the first call on a machine
pays the compile time (a few seconds per kernel); the cache lives in ``$NUMBA_CACHE_DIR`` when
set, else ``$XDG_CACHE_HOME/gnnu/numba`` (default ``~/.cache/gnnu/numba``), so an installation
in a read-only site-packages still caches. Import this module before numba is imported elsewhere
for the cache location to apply.

Kernels take and return numpy arrays only; random numbers are drawn by the caller's
``numpy.random.Generator`` and passed in, so results stay reproducible from a seed.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gnnu" / "numba"))

import numba  # noqa: E402  (after the cache location is set)


def jit(fn=None, **options):
    """``numba.njit(cache=True, nogil=True, **options)``; usable as ``@jit`` or ``@jit(...)``."""
    options = {"cache": True, "nogil": True, **options}
    if fn is None:
        return lambda f: numba.njit(**options)(f)
    return numba.njit(**options)(fn)
