"""On-disk layout of a graph dataset (docs/design.md#graph-dataset), shared by the builder and the readers.

A dataset is a directory::

    manifest.json       see :mod:`gnnu.graph.build` (status, config, sources, features, stats, …)
    shard-00000.h5      one HDF5 file per block of consecutive events of one source

Written by :class:`ShardWriter` and :func:`write_manifest`, read by :func:`read_manifest`,
:func:`finished_shard_result` and :class:`gnnu.graph.dataset.ShardIndex`.

Shard layout (``N`` nodes, ``E`` edges, ``G`` graphs; every array is the concatenation over the
shard's graphs, graph g owning rows ``node_offset[g]:node_offset[g+1]`` and edge columns
``edge_offset[g]:edge_offset[g+1]``)::

    /nodes/x            [N, F] float32   raw (unnormalised) features, manifest order
    /nodes/pos          [N, D] float32   positions, cm
    /nodes/view         [N] int8         view id of each node
    /nodes/hit          [N, 4] float32   the node's hit as read (schema ≥ 1.1): wire (or cell, or
                                         pixel column), time (detector unit: tick, ns or time
                                         bin), charge (ADC·tick, PE or pixel value), plane (−1
                                         where the detector has none) — what images render from
    /edges/index        [2, E] int32     local node indices (row 0 source, row 1 target)
    /graphs/node_offset [G + 1] int64
    /graphs/edge_offset [G + 1] int64
    /graphs/event_id    [G, 3] int64     (run, subrun, event)
    /graphs/source_row  [G] int64        the event's row in its source
    /graphs/split       [G] int8         0 train, 1 val, 2 test
    /graphs/<label>     [G]              every field of gnnu.events.Truth
    attributes          schema, schema_version, shard, source, source_sha256, start, stop,
                        build_hash, result (JSON: counts, skipped events, training-split moments)

Node and edge arrays are chunked (and compressed), so reading one graph touches only the few
chunks that hold it.

Versions: 1.1 added ``/nodes/hit``; 1.0 datasets still load as graphs, and asking one for images
is an error that says to rebuild it (:func:`require_hits`). 1.2 records each shard's size
(``bytes``) and ``sha256`` in the manifest: opening a complete dataset compares every shard's size
(:func:`read_manifest`, one ``stat`` per shard), ``gnnu-build --verify`` every checksum
(:func:`check_shard_files`); 1.0 and 1.1 manifests, without them, still read (unchecked). 1.3: event ids are unique across the
dataset (checked at build time; DUNE CVN directories take their run number from their name) and
the manifest lists each source's run numbers (``sources[].runs``, ``n_runs``); earlier datasets
read as before.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np

from ..atomic import AtomicFile, write_json_atomic
from ..errors import InputError, SchemaError

SCHEMA = "gnnu-graph-dataset"
SHARD_SCHEMA = "gnnu-graph-shard"
SCHEMA_VERSION = "1.3"
#: First schema version whose shards hold ``/nodes/hit`` (images need it).
HITS_SINCE = (1, 1)
MANIFEST = "manifest.json"
#: Split names in code order (split column value = index).
SPLITS = ("train", "val", "test")
#: Rows per chunk of the node arrays and columns per chunk of the edge array.
NODE_CHUNK = 1024
EDGE_CHUNK = 8192


def shard_name(index: int) -> str:
    """File name of shard ``index``."""
    return f"shard-{index:05d}.h5"


def shard_file_record(path: str | os.PathLike) -> dict:
    """``{"bytes": size, "sha256": hex digest}`` of a finished shard file (for the manifest)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return {"bytes": os.path.getsize(path), "sha256": h.hexdigest()}


def check_shard_files(root: str | os.PathLike, manifest: dict, checksums: bool = False) -> int:
    """InputError naming the first shard of ``manifest`` that is missing or whose size (and, with
    ``checksums``, sha256) differs from the manifest's record; returns the shards checked (those
    with a record: manifests before schema 1.2 have none)."""
    root, checked = Path(root), 0
    shards = manifest.get("shards", [])
    if not isinstance(shards, list) or not all(isinstance(s, dict) and isinstance(s.get("file"), str)
                                               for s in shards):
        raise SchemaError("the manifest's shard list is invalid", root / MANIFEST)
    for shard in shards:
        if "bytes" not in shard:
            continue
        path = root / shard["file"]
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            raise InputError("shard missing (deleted or moved after the build); rebuild the "
                             "dataset", path) from None
        except OSError as exc:
            raise InputError(f"shard unreadable ({exc.strerror})", path) from None
        if size != shard["bytes"]:
            raise InputError(f"shard damaged: {size} bytes, the manifest records {shard['bytes']} "
                             f"(truncated or replaced after the build); rebuild the dataset", path)
        if checksums and shard_file_record(path)["sha256"] != shard["sha256"]:
            raise InputError("shard damaged: its sha256 differs from the manifest's (changed or "
                             "replaced after the build); rebuild the dataset", path)
        checked += 1
    return checked


def write_manifest(path: Path, manifest: dict) -> None:
    """Write a dataset's ``manifest.json`` atomically (:func:`gnnu.atomic.write_json_atomic`)."""
    write_json_atomic(path, manifest, indent=1)


def read_manifest(root: str | os.PathLike, complete: bool = True) -> dict:
    """The manifest of dataset ``root``; InputError if missing, invalid, of an unknown major
    version, or (with ``complete``) from a build that has not finished."""
    path = Path(root) / MANIFEST
    if not path.exists():
        raise InputError("not a gnnu graph dataset (no manifest.json)", root)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable manifest: {exc}", path) from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise SchemaError(f"not a gnnu graph-dataset manifest (schema {manifest.get('schema')!r})"
                          if isinstance(manifest, dict) else "manifest is not a JSON object", path)
    version = str(manifest.get("schema_version", "?"))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise SchemaError(f"unsupported graph-dataset schema version {version} (this gnnu reads "
                          f"{SCHEMA_VERSION.split('.')[0]}.x)", path)
    if complete and manifest.get("status") != "complete":
        raise InputError("dataset build did not finish (run gnnu-build again with --resume)", root)
    if complete:
        check_shard_files(root, manifest)     # sizes only: cheap; --verify hashes them
    return manifest


def require_hits(manifest: dict, root: str | os.PathLike) -> None:
    """InputError unless the dataset's shards store the raw hit table ``/nodes/hit`` (schema ≥ 1.1)."""
    version = str(manifest.get("schema_version", "0.0"))
    try:
        major_minor = tuple(int(v) for v in version.split(".")[:2])
    except ValueError:
        major_minor = (0, 0)
    if major_minor < HITS_SINCE:
        raise InputError(f"graph dataset of schema {version} stores no raw hits, which images are "
                         f"rendered from: rebuild it with gnnu-build (schema {SCHEMA_VERSION})", root)


class ShardWriter:
    """Appends graph blocks (:class:`gnnu.graph.block.GraphBlock`) to a shard's temporary file;
    :meth:`close` writes the per-graph tables and renames it into place (:mod:`gnnu.atomic`)."""

    def __init__(self, path: Path, cfg, n_features: int):
        self.path, self._out = path, AtomicFile(path)
        self.n_features = n_features
        self._f = self._out.open_hdf5()        # write guard: a full disk is an OSError, not a crash
        kw = {} if cfg.compression == "none" else {"compression": cfg.compression, "shuffle": True}
        n_dim = 2 if cfg.positions == "view" else 3

        def make(name, dtype, tail, chunk_tail, axis_len):
            shape = (0,) + tail if axis_len == 0 else tail + (0,)
            maxshape = (None,) + tail if axis_len == 0 else tail + (None,)
            chunks = (NODE_CHUNK,) + chunk_tail if axis_len == 0 else chunk_tail + (EDGE_CHUNK,)
            return self._f.create_dataset(name, shape=shape, maxshape=maxshape, dtype=dtype,
                                          chunks=chunks, **kw)
        self._x = make("nodes/x", np.float32, (n_features,), (n_features,), 0)
        self._pos = make("nodes/pos", np.float32, (n_dim,), (n_dim,), 0)
        self._view = make("nodes/view", np.int8, (), (), 0)
        self._hit = make("nodes/hit", np.float32, (4,), (4,), 0)
        self._edges = make("edges/index", np.int32, (2,), (2,), 1)
        self._node_offset, self._edge_offset = [np.zeros(1, np.int64)], [np.zeros(1, np.int64)]
        self.n_nodes = self.n_edges = 0

    def append(self, block) -> None:
        """Add the graphs of ``block`` after those already written."""
        n, e = len(block.x), block.edge_index.shape[1]
        for ds, data in ((self._x, block.x), (self._pos, block.pos), (self._view, block.view),
                         (self._hit, block.hit)):
            ds.resize(self.n_nodes + n, axis=0)
            ds[self.n_nodes:] = data
        self._edges.resize(self.n_edges + e, axis=1)
        self._edges[:, self.n_edges:] = block.edge_index
        self._node_offset.append(block.node_offset[1:] + self.n_nodes)
        self._edge_offset.append(block.edge_offset[1:] + self.n_edges)
        self.n_nodes += n
        self.n_edges += e
        self._out.check()

    def close(self, graphs: dict[str, np.ndarray], attrs: dict) -> None:
        """Write the per-graph tables and attributes, then move the file into place."""
        g = self._f.create_group("graphs")
        g.create_dataset("node_offset", data=np.concatenate(self._node_offset))
        g.create_dataset("edge_offset", data=np.concatenate(self._edge_offset))
        for k, v in graphs.items():
            g.create_dataset(k, data=v)
        self._f.attrs.update(attrs)
        self._f.close()
        self._out.commit()

    def abort(self) -> None:
        """Discard the temporary file."""
        try:
            self._f.close()
        except Exception:  # noqa: BLE001 - closing a broken handle must not mask the cause
            pass
        finally:
            self._out.discard()


def finished_shard_result(path: Path, identity: dict) -> dict | None:
    """The result record stored in the shard ``path`` if the shard is complete (its arrays have
    the sizes the record gives) and its attributes equal ``identity`` (``shard``, ``source``,
    ``source_sha256``, ``start``, ``stop``, ``build_hash``); else None (missing, damaged, from
    other settings or another range)."""
    if not path.exists():
        return None
    try:
        with h5py.File(path, "r") as f:
            a = f.attrs
            if (a.get("schema") != SHARD_SCHEMA or a.get("build_hash") != identity["build_hash"]
                    or int(a["shard"]) != identity["shard"] or int(a["source"]) != identity["source"]
                    or a.get("source_sha256") != identity["source_sha256"]
                    or int(a["start"]) != identity["start"] or int(a["stop"]) != identity["stop"]):
                return None
            result = json.loads(a["result"])
            if (f["nodes/x"].shape[0] != result["n_nodes"] or f["graphs/split"].shape[0] != result["written"]
                    or f["edges/index"].shape[1] != result["n_edges"]):
                return None
            return result
    except (OSError, KeyError, ValueError, TypeError):
        return None
