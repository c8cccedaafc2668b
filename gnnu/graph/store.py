"""On-disk layout of a graph dataset (DESIGN §3.3), shared by the builder and the readers.

A dataset is a directory::

    manifest.json       see :mod:`gnnu.graph.build` (status, config, sources, features, stats, …)
    shard-00000.h5      one HDF5 file per block of consecutive events of one source

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
is an error that says to rebuild it (:func:`require_hits`). 1.2: event ids are unique across the
dataset (checked at build time; DUNE CVN directories take their run number from their name) and
the manifest lists each source's run numbers (``sources[].runs``, ``n_runs``); 1.1 datasets read
as before.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import InputError, SchemaError

SCHEMA = "gnnu-graph-dataset"
SHARD_SCHEMA = "gnnu-graph-shard"
SCHEMA_VERSION = "1.2"
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


def write_json_atomic(path: Path, obj) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)


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
