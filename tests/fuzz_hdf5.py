"""Structural mutations of HDF5 files for the fuzz tests (used by test_fuzz_hitfile / test_fuzz_numl).

A :class:`Mutation` is drawn by :func:`mutations` from the objects of a base file and applied to
a copy with h5py: delete an object, turn a dataset into a group, change a dataset's dtype or
shape or length, set one value (NaN, ±inf, negative, huge, or an ordinary number), delete or
garble an attribute, add unknown objects, or replace an object by a dangling or external link.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from hypothesis import strategies as st

#: dtypes a dataset may be rewritten with ("S8": fixed-length strings).
RETYPES = ("float64", "float32", "float16", "int64", "int16", "uint8", "S8")
RESHAPES = ("column", "flat", "scalar", "transpose")
INT_VALUES = (-1, 0, 1, 2**31 - 1, -2**31, 2**62, -2**62, 10**6)
FLOAT_VALUES = (np.nan, np.inf, -np.inf, -0.0, -1.0, 1e30, -1e30, 5e-324, 1e-30)
ATTR_VALUES = ("", "garbage", "{not json", "2.0", "99.1", b"\xff\xfe", -1, 2**40, 1.5,
               np.arange(3), "gnnu-hits", "1.0")


@dataclass(frozen=True)
class Mutation:
    """One change to an HDF5 file: ``op`` on object ``name`` with argument ``arg``."""

    op: str
    name: str
    arg: object = None

    @property
    def kind(self) -> str:
        return f"h5 {self.op}"


def objects(path: Path) -> tuple[dict[str, tuple], list[str], dict[str, list[str]]]:
    """(datasets {name: (shape, dtype)}, groups, attribute names per object) of an HDF5 file."""
    datasets, groups, attrs = {}, [], {"/": []}
    with h5py.File(path, "r") as f:
        attrs["/"] = list(f.attrs)

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                datasets[name] = (obj.shape, obj.dtype)
            else:
                groups.append(name)
            if obj.attrs:
                attrs[name] = list(obj.attrs)
        f.visititems(visit)
    return datasets, groups, attrs


@st.composite
def mutations(draw, datasets: dict, groups: list, attrs: dict) -> Mutation:
    """A hypothesis strategy of :class:`Mutation` for a file with these objects."""
    names = sorted(datasets)
    op = draw(st.sampled_from(("delete", "as_group", "retype", "reshape", "resize", "set", "set",
                               "set", "attr_delete", "attr_set", "add", "link")))
    if op in ("attr_delete", "attr_set"):
        owner = draw(st.sampled_from(sorted(attrs)))
        key = draw(st.sampled_from(sorted(attrs[owner]) or ["missing"]))
        value = draw(st.sampled_from(range(len(ATTR_VALUES)))) if op == "attr_set" else None
        return Mutation(op, owner, (key, value))
    if op == "add":
        where = draw(st.sampled_from(["/"] + sorted(groups)))
        return Mutation(op, where, draw(st.sampled_from(("dataset", "group", "attribute"))))
    if op == "delete":
        return Mutation(op, draw(st.sampled_from(names + sorted(groups))))
    if op == "link":
        return Mutation(op, draw(st.sampled_from(names + sorted(groups))),
                        draw(st.sampled_from(("dangling", "external"))))
    name = draw(st.sampled_from(names))
    shape, dtype = datasets[name]
    if op == "retype":
        return Mutation(op, name, draw(st.sampled_from([d for d in RETYPES if np.dtype(d) != dtype])))
    if op == "reshape":
        return Mutation(op, name, draw(st.sampled_from(RESHAPES)))
    if op == "resize":
        return Mutation(op, name, draw(st.sampled_from((-3, -1, 1, 5))))
    if op == "as_group":
        return Mutation(op, name)
    if not shape or shape[0] == 0:
        return Mutation("resize", name, 1)
    index = tuple(draw(st.integers(0, n - 1)) for n in shape)
    if dtype.kind in "iu":
        value = draw(st.sampled_from(INT_VALUES) | st.integers(-1000, 1000))
    elif dtype.kind == "f":
        value = draw(st.sampled_from(FLOAT_VALUES) | st.floats(-1e4, 1e4, width=32))
    else:
        value = draw(st.binary(max_size=8))
    return Mutation("set", name, (index, value))


def cast(value, dtype: np.dtype):
    """``value`` as an element of ``dtype``, as numpy (and h5py) would store it."""
    with np.errstate(all="ignore"):
        return np.array(value).astype(dtype)


def rewritten(values: np.ndarray, m: Mutation) -> np.ndarray | None:
    """The data a retype/reshape/resize mutation writes in place of ``values`` (None: none)."""
    with np.errstate(all="ignore"):
        if m.op == "retype":
            return values.astype(m.arg)
        if m.op == "reshape":
            if m.arg == "column":
                return values.reshape(-1, 1) if values.ndim > 1 else values[:, None]   # [n·k, 1] / [n, 1]
            if m.arg == "flat":
                return values.reshape(-1)[:, None, None] if values.ndim == 1 else values.reshape(-1)
            if m.arg == "scalar":
                return np.array(values.reshape(-1)[0] if values.size else 0, values.dtype)
            return np.ascontiguousarray(values.T if values.ndim > 1 else values[None, :])
        if m.op == "resize":
            if m.arg < 0:
                return values[: max(len(values) + m.arg, 0)]
            return np.concatenate([values, np.zeros((m.arg,) + values.shape[1:], values.dtype)])
    return None


def apply(m: Mutation, src: Path, dst: Path) -> None:
    """Write ``src`` with mutation ``m`` applied to ``dst``."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        if m.op in ("attr_delete", "attr_set"):
            key, value = m.arg
            a = f[m.name].attrs
            if m.op == "attr_delete":
                a.pop(key, None)
            else:
                a[key] = ATTR_VALUES[value]
        elif m.op == "add":
            g = f[m.name]
            if m.arg == "dataset":
                g.create_dataset("zz_unknown_dataset", data=np.arange(7.0))
            elif m.arg == "group":
                g.create_group("zz_unknown_group").attrs["note"] = "from a newer writer"
            else:
                g.attrs["zz_unknown_attribute"] = "from a newer writer"
        elif m.op == "delete":
            del f[m.name]
        elif m.op == "link":
            del f[m.name]
            f[m.name] = (h5py.SoftLink("/nowhere/at/all") if m.arg == "dangling"
                         else h5py.ExternalLink("/nonexistent/other.h5", "/data"))
        elif m.op == "as_group":
            del f[m.name]
            f.create_group(m.name)
        elif m.op == "set":
            index, value = m.arg
            ds = f[m.name]
            ds[index] = cast(value, ds.dtype)
        else:
            values = f[m.name][...]
            del f[m.name]
            f.create_dataset(m.name, data=rewritten(values, m))


def values(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file by name."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[...])
                     if isinstance(obj, h5py.Dataset) else None)
    return out
