"""Restricted unpickling for the label pickles of DUNE CVN's released pixel maps.

``pickle.load`` on an untrusted file can run arbitrary code: the GLOBAL / STACK_GLOBAL / INST /
OBJ / EXT opcodes look up a callable (``os.system``, ``builtins.eval`` …) through
:meth:`pickle.Unpickler.find_class` and REDUCE calls it. :func:`load` uses an unpickler whose
``find_class`` refuses every lookup, so no callable can ever reach the stack; what remains are the
opcodes that build plain containers and scalars. The result is then checked to hold only plain
lists, tuples, dicts, ints, floats, bools, ``None`` and strings (sets, bytes and bytearrays, which
the opcodes can also build, are refused too) — docs/design.md#reliability.

Every failure is one :class:`gnnu.errors.InputError` naming the file; nothing in the file is
executed.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

from ..errors import InputError

#: The only types a loaded object (and everything inside it) may have.
ALLOWED_TYPES = (list, tuple, dict, int, float, bool, type(None), str)


class _Refused(pickle.UnpicklingError):
    """A forbidden global or type was met."""


class _RefusingUnpickler(pickle.Unpickler):
    """An unpickler that refuses to look up any global (class, function, module attribute)."""

    def find_class(self, module: str, name: str):
        raise _Refused(f"refusing to unpickle global {module}.{name} (only plain lists, tuples, "
                       f"dicts, numbers, strings and None are allowed)")


def _check_types(obj) -> None:
    """Raise :class:`_Refused` if ``obj`` holds anything but :data:`ALLOWED_TYPES` (iterative)."""
    stack, seen = [obj], set()
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind not in ALLOWED_TYPES:
            raise _Refused(f"refusing to unpickle an object of type {kind.__name__} (only plain "
                           f"lists, tuples, dicts, numbers, strings and None are allowed)")
        if kind in (list, tuple, dict):
            if id(item) in seen:  # self-referencing containers are legal pickles
                continue
            seen.add(id(item))
            stack.extend(item.keys() if kind is dict else ())
            stack.extend(item.values() if kind is dict else item)


def loads(data: bytes, where: str | os.PathLike = "<bytes>"):
    """Unpickle ``data`` (bytes) with the restricted unpickler; errors name ``where``."""
    try:
        obj = _RefusingUnpickler(io.BytesIO(data)).load()
        _check_types(obj)
    except _Refused as exc:
        raise InputError(str(exc), where) from None
    except RecursionError:
        raise InputError("not a readable pickle (nested too deeply)", where) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, UnicodeDecodeError, OverflowError, MemoryError) as exc:
        # one line: some of pickle's messages span two
        raise InputError(f"not a readable pickle (corrupt or truncated?): "
                         f"{type(exc).__name__}: {' '.join(str(exc).split())}", where) from None
    return obj


def load(path: str | os.PathLike):
    """Load the pickle at ``path`` admitting only plain data (see module docstring).

    Returns the unpickled object (nested lists/tuples/dicts of ints, floats, bools, None and
    strings). Raises :class:`InputError` naming the file if it is missing, unreadable, corrupt,
    or refers to anything else ("refusing to unpickle …").
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", path) from None
    return loads(data, path)
