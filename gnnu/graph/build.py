"""Build a graph dataset from event sources (DESIGN §3.3): the library behind ``gnnu-build``.

:func:`build_dataset` reads one or more sources of one format (:func:`gnnu.io.open_source`),
turns every event into a graph (:func:`make_graphs`: node features, positions, edges) and writes
the directory described in :mod:`gnnu.graph.store`: shards of ``shard_size`` consecutive events
of one source, then ``manifest.json``.

Manifest: gnnu version, ``status`` (``in_progress`` while building, ``complete`` at the end),
``build_hash`` (sha256 of everything that decides the output: resolved graph config, format and
reader options, source hashes, split fractions and seed), the resolved graph config, the
detector, the sources with their sha256 hashes and run numbers, feature names/units with their normalisation
statistics, the split rule, counts in/out/skipped (by reason, and the skipped events), counts per
split and class, and the shard list.

Guarantees:

- Deterministic: a shard depends only on its source range and the build settings, so the output
  is identical for any ``workers`` and after a resume.
- Atomic shards: each is written to a temporary file and renamed; ``resume`` keeps every shard
  whose recorded source, range and build hash match and redoes missing or unreadable ones.
  An existing directory is refused unless ``force`` (our files are deleted first) or ``resume``.
- Scale-out: ``part=(i, n)`` (``--shard-index i --num-shards n``) builds only the shards s with
  s mod n = i into a shared directory, so n batch jobs build a dataset together; a final
  ``merge`` run checks that every shard is finished (listing the missing ones otherwise) and
  writes the complete manifest. Shards do not depend on who built them, and the merge combines
  the same per-shard records in the same order, so the result equals a single-machine build byte
  for byte (uncompressed or gzip shards).
- Split: event i goes to train/val/test by a hash of (seed, detector name, run, subrun, event)
  (:func:`assign_split`): no file names or positions involved, so adding events or files never
  moves an existing event.
- Event ids: every event of a dataset has its own (run, subrun, event); an id that repeats
  within a source, or is already in an earlier source, stops the build before anything is
  written, with one line naming the source and the id. DUNE CVN directories get their run
  number from their name (:func:`gnnu.io.dune_cvn.source_run`), so the release's per-flavour
  directories build together; the runs of each source are listed in the manifest.
- Normalisation statistics (mean, std per feature) come from the training split only, as
  float64 moments per shard combined in the order (source sha256, first row) (Chan et al.'s
  pairwise update), so listing the inputs in another order gives the same statistics (and the
  same graphs per event id, the split being a hash of the id). Shards keep
  raw features; :class:`gnnu.graph.dataset.GraphDataset` standardises on reading.
- No silent drops: bad events (more than ``max_hits`` hits, view ids outside the detector,
  non-finite values, reader errors) stop the build with one error naming the file and event, or
  with ``skip_bad`` are skipped and counted by reason; valid but empty events (no hit, or no hit
  inside the window of the config's pixel-map representation, :data:`EMPTY_REASONS`) are always
  skipped and counted, and the summary says so; ``in = out + skipped``.
- Sources must agree on the detector (name and full config); a config that needs true 3-D
  positions refuses sources without them.

Simplifications: the "source identity" in the split hash is the detector name (the same event id
from two different simulations of one detector must differ in run number, as gnnu-sim's
(seed, 0, index) ids do); a reader error on a block is retried event by event only with
``skip_bad``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import h5py
import numpy as np

from .. import __version__
from ..config import to_dict
from ..errors import ConfigError, InputError, OutputExistsError
from ..events import Event, Flavour, Truth
from .pixelize import is_pixel_maps, pixel_geometry, pixelize_events
from ..io.base import open_source
from ..io.hitfile import temporary_path
from .config import GraphConfig, load_graph_config
from .edges import build_edges
from .features import compute_features, feature_columns, node_table
from .store import (EDGE_CHUNK, MANIFEST, NODE_CHUNK, SCHEMA, SCHEMA_VERSION, SHARD_SCHEMA, SPLITS,
                    read_manifest, shard_name, write_json_atomic)

#: Reasons an event is rejected (default) or skipped (``skip_bad``), by code.
BAD_REASONS = {1: "empty event", 2: "too many hits", 3: "invalid view id", 4: "non-finite values",
               5: "no hit in the window"}
#: Reasons of valid but empty events (no hit at all, or none inside the window of the graph
#: config's pixel-map representation): skipped and counted by default, never an error (DESIGN §9).
EMPTY_REASONS = (BAD_REASONS[1], BAD_REASONS[5])
READER_ERROR = "reader error"
#: Skipped events listed one by one in the manifest (all are counted).
MAX_LISTED_SKIPS = 1000
_HIT_INPUTS = ("view", "wire", "time", "charge", "width")
#: Events turned into graphs at once inside a shard (bounds memory; output does not depend on it).
SUB_BLOCK = 128


# -- split ------------------------------------------------------------------------------------
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
SPLIT_RULE = ("h = splitmix64 chain over (seed ^ identity, run, subrun, event) with identity = first 8 "
              "bytes (little-endian) of sha256(detector name); u = (h >> 11) / 2**53; train if "
              "u < f_train, val if u < f_train + f_val, else test (gnnu.graph.build.assign_split)")


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def split_uniform(event_ids: np.ndarray, identity: str, seed: int) -> np.ndarray:
    """[n] float64 in [0, 1): the split hash of each (run, subrun, event) row of ``event_ids``."""
    ids = np.asarray(event_ids, np.int64).reshape(-1, 3).astype(np.uint64)
    ident = int.from_bytes(hashlib.sha256(identity.encode()).digest()[:8], "little")
    h = _mix(np.full(len(ids), (int(seed) ^ ident) & (2**64 - 1), np.uint64))
    for c in range(3):
        h = _mix(h ^ (ids[:, c] + _GOLDEN))
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def assign_split(event_ids: np.ndarray, identity: str, seed: int, fractions) -> np.ndarray:
    """[n] int8 split of each event: 0 train, 1 val, 2 test (see :data:`SPLIT_RULE`)."""
    edges = np.cumsum(np.asarray(fractions, np.float64))[:-1]
    return np.searchsorted(edges, split_uniform(event_ids, identity, seed), side="right").astype(np.int8)


# -- events → graphs ----------------------------------------------------------------------------
@dataclass
class GraphBlock:
    """Graphs of a block of events, concatenated (see :mod:`gnnu.graph.store` for the shapes).

    ``index``: position in the input list of each graph's event; ``bad``: (position, reason) of
    every rejected event.
    """

    x: np.ndarray
    pos: np.ndarray
    view: np.ndarray
    hit: np.ndarray
    edge_index: np.ndarray
    node_offset: np.ndarray
    edge_offset: np.ndarray
    index: np.ndarray
    bad: list[tuple[int, str]]

    @property
    def n_graphs(self) -> int:
        return len(self.node_offset) - 1


def graph_detector(detector, cfg: GraphConfig):
    """The geometry the graphs are built in: the source's, or with ``cfg.pixelize`` that of its
    pixel maps (:func:`gnnu.graph.pixelize.pixel_geometry`; a source of those maps keeps its own)."""
    if cfg.pixelize and not is_pixel_maps(detector, cfg.pixelize):
        return pixel_geometry(detector, cfg.pixelize)
    return detector


def _hit_table(nodes) -> np.ndarray:
    """[N, 4] float32 (wire, time, charge, plane or −1) of a node table: the shards' /nodes/hit."""
    plane = nodes.plane if nodes.plane is not None else np.full(len(nodes), -1)
    return np.stack([nodes.wire, nodes.time, nodes.charge, plane], axis=1).astype(np.float32)


def make_graphs(events: list[Event], detector, cfg: GraphConfig) -> GraphBlock:
    """Turn ``events`` into graphs with config ``cfg``, all at once.

    Events with no hits (reason "empty event"; "no hit in the window" for an event whose hits all
    fall outside the window of ``cfg.pixelize``), more than ``cfg.max_hits`` hits, view ids
    outside ``detector.views`` or non-finite values are left out and listed in ``bad``. Hits must carry the columns of
    :data:`gnnu.events.HIT_COLUMNS` (plus x, y, z when ``cfg.needs_xyz``). With ``cfg.pixelize``
    the events first go through that pixel-map preset (:func:`gnnu.graph.pixelize.pixelize_events`:
    one node per non-zero pixel, as DUNE CVN's released events are read).
    """
    had_hits = np.array([len(e.hits) > 0 for e in events], bool)
    if cfg.pixelize:
        events, detector = pixelize_events(events, detector, cfg.pixelize)
    names = (_HIT_INPUTS + (("plane",) if getattr(detector, "needs_plane", False) else ())
             + (("x", "y", "z") if cfg.needs_xyz else ()))
    counts = np.array([len(e.hits) for e in events], np.int64)
    cols = {n: (np.concatenate([e.hits.columns[n] for e in events]) if events else np.zeros(0))
            for n in names}
    batch = np.repeat(np.arange(len(events)), counts)
    n_views = len(detector.views)
    finite = np.isfinite(cols["time"]) & np.isfinite(cols["charge"]) & np.isfinite(cols["width"])
    bad_view = (cols["view"] < 0) | (cols["view"] >= n_views)
    code = np.zeros(len(events), np.int8)
    code[np.bincount(batch, weights=~finite, minlength=len(events)) > 0] = 4
    code[np.bincount(batch, weights=bad_view, minlength=len(events)) > 0] = 3
    code[counts > cfg.max_hits] = 2
    code[counts == 0] = np.where(had_hits[counts == 0], 5, 1)
    good = np.flatnonzero(code == 0)
    hit_ok = code[batch] == 0
    nodes = node_table({k: v[hit_ok] for k, v in cols.items()},
                       np.repeat(np.arange(len(good)), counts[good]), detector, cfg.needs_xyz)
    x = compute_features(cfg.features, nodes)
    pos = nodes.pos if cfg.positions == "view" else np.where(np.isfinite(nodes.xyz), nodes.xyz, 0)
    if not (np.isfinite(x).all() and np.isfinite(pos).all()):
        row_ok = np.isfinite(x).all(axis=1) & np.isfinite(pos).all(axis=1)
        bad_graphs = np.unique(nodes.batch[~row_ok])
        code[good[bad_graphs]] = 4
        keep = ~np.isin(nodes.batch, bad_graphs)
        nodes, x, pos = nodes.select(keep), x[keep], pos[keep]
        good = np.flatnonzero(code == 0)
    n_good = len(good)
    node_offset = np.concatenate([[0], np.cumsum(counts[good])]).astype(np.int64)
    edges = build_edges(nodes, cfg.edges, cfg.self_loops)
    target_graph = nodes.batch[edges[1]]
    if np.any(np.diff(target_graph) < 0):
        order = np.argsort(target_graph, kind="stable")
        edges, target_graph = edges[:, order], target_graph[order]
    edge_offset = np.searchsorted(target_graph, np.arange(n_good + 1), side="left")
    local = edges.astype(np.int32)
    local -= np.repeat(node_offset[:-1].astype(np.int32), np.diff(edge_offset))
    bad = [(int(i), BAD_REASONS[int(code[i])]) for i in np.flatnonzero(code)]
    return GraphBlock(x=np.ascontiguousarray(x, np.float32), pos=np.ascontiguousarray(pos, np.float32),
                      view=nodes.view.astype(np.int8), hit=_hit_table(nodes), edge_index=local,
                      node_offset=node_offset,
                      edge_offset=edge_offset.astype(np.int64), index=good, bad=bad)


# -- one shard ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardTask:
    """Everything a worker needs to build shard ``shard`` from rows [start, stop) of a source."""

    shard: int
    source: int
    path: str
    sha256: str
    format: str
    reader_options: tuple[tuple[str, str], ...]
    start: int
    stop: int
    cfg: GraphConfig
    fractions: tuple[float, float, float]
    seed: int
    skip_bad: bool
    build_hash: str
    out: str


_OPEN: dict[tuple, tuple] = {}


def _reader(task: ShardTask):
    """The (reader, event ids) of a task's source, opened once per process."""
    key = (task.path, task.format, task.reader_options)
    if key not in _OPEN:
        reader = open_source(task.path, task.format, **dict(task.reader_options))
        _OPEN[key] = (reader, reader.event_ids())
    return _OPEN[key]


def _close_readers() -> None:
    while _OPEN:
        _OPEN.popitem()[1][0].close()


def _reader_reason(exc: InputError) -> str:
    return BAD_REASONS[4] if "non-finite" in exc.reason else READER_ERROR


def _read_block(reader, task: ShardTask, ids: np.ndarray):
    """Events of rows [start, stop) → (events, their rows, skipped records)."""
    try:
        return reader.read_range(task.start, task.stop), list(range(task.start, task.stop)), []
    except InputError:
        if not task.skip_bad:
            raise
    events, rows, skipped = [], [], []
    for i in range(task.start, task.stop):
        try:
            events.append(reader.read(i))
            rows.append(i)
        except InputError as exc:
            skipped.append(_skip_record(i, ids[i], _reader_reason(exc), str(exc)))
    return events, rows, skipped


def _skip_record(row: int, event_id, reason: str, message: str) -> dict:
    return {"row": int(row), "event_id": [int(v) for v in event_id], "reason": reason, "message": message}


def _moments(x: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(count, mean, sum of squared deviations) per column of ``x`` [n, F], in float64."""
    xs = x.astype(np.float64)
    mean = xs.mean(axis=0) if len(xs) else np.zeros(x.shape[1])
    return len(xs), mean, ((xs - mean) ** 2).sum(axis=0)


def _combine_moments(parts, n_feat: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Merge (count, mean, M2) moments in order (Chan, Golub & LeVeque's pairwise update)."""
    n, mean, m2 = 0, np.zeros(n_feat), np.zeros(n_feat)
    for nb, mb, m2b in parts:
        if nb == 0:
            continue
        mb, m2b = np.asarray(mb, np.float64), np.asarray(m2b, np.float64)
        tot = n + nb
        delta = mb - mean
        mean = mean + delta * (nb / tot)
        m2 = m2 + m2b + delta ** 2 * (n * nb / tot)
        n = tot
    return n, mean, m2


def build_shard(task: ShardTask) -> dict:
    """Build and atomically write one shard; returns its result record (also stored in it)."""
    reader, ids = _reader(task)
    events, rows, skipped = _read_block(reader, task, ids)
    cfg, det = task.cfg, reader.detector
    if cfg.needs_xyz:
        for ev, row in zip(events, rows):
            if not all(c in ev.hits for c in "xyz"):
                raise InputError("the graph config needs true hit positions (x, y, z), which this "
                                 "source lacks", task.path, event=row, event_id=ids[row])
    rows = np.asarray(rows, np.int64)
    writer = _ShardWriter(Path(task.out) / shard_name(task.shard), cfg,
                          len(feature_columns(cfg.features, det)))
    good_rows, splits, moments, truth = [], [], [], {k: [] for k in Truth.columns()}
    try:
        for s in range(0, len(events), SUB_BLOCK):
            sub = events[s:s + SUB_BLOCK]
            block = make_graphs(sub, det, cfg)
            for i, reason in block.bad:
                row = int(rows[s + i])
                if not task.skip_bad and reason not in EMPTY_REASONS:
                    raise InputError(f"{reason} (use --skip-bad to skip bad events)", task.path,
                                     event=row, event_id=ids[row])
                skipped.append(_skip_record(row, ids[row], reason, reason))
            sub_rows = rows[s + block.index]
            split = assign_split(ids[sub_rows], det.name, task.seed, task.fractions)
            good_rows.append(sub_rows)
            splits.append(split)
            for k in truth:
                truth[k].extend(getattr(sub[i].truth, k) for i in block.index)
            moments.append(_moments(block.x[np.repeat(split == 0, np.diff(block.node_offset))]))
            writer.append(block)
        good = np.concatenate(good_rows) if good_rows else np.zeros(0, np.int64)
        split = np.concatenate(splits) if splits else np.zeros(0, np.int8)
        truth = {k: np.asarray(v, dtype=d) for (k, v), d in zip(truth.items(), Truth.columns().values())}
        skipped.sort(key=lambda r: r["row"])
        n_train, mean, m2 = _combine_moments(moments, writer.n_features)
        result = {
            "read": task.stop - task.start, "written": len(good),
            "skipped": {r: sum(x["reason"] == r for x in skipped)
                        for r in sorted({x["reason"] for x in skipped})},
            "skipped_events": skipped,
            "per_split": {name: int((split == c).sum()) for c, name in enumerate(SPLITS)},
            "per_class": {name: {_class_name(f): int(((split == c) & (truth["flavour"] == f)).sum())
                                 for f in np.unique(truth["flavour"][split == c])}
                          for c, name in enumerate(SPLITS)},
            "n_nodes": writer.n_nodes, "n_edges": writer.n_edges,
            "train_moments": {"n": n_train, "mean": mean.tolist(), "m2": m2.tolist()},
        }
        graphs = {"event_id": ids[good].reshape(-1, 3), "source_row": good, "split": split, **truth}
        attrs = {"schema": SHARD_SCHEMA, "schema_version": SCHEMA_VERSION, "shard": task.shard,
                 "source": task.source, "source_sha256": task.sha256, "start": task.start,
                 "stop": task.stop, "build_hash": task.build_hash, "result": json.dumps(result)}
        writer.close(graphs, attrs)
    except BaseException:
        writer.abort()
        raise
    return result


def _class_name(code: int) -> str:
    return Flavour(int(code)).label if 0 <= code < len(Flavour) else "undefined"


class _ShardWriter:
    """Appends graph blocks to a shard's temporary file; :meth:`close` renames it into place."""

    def __init__(self, path: Path, cfg: GraphConfig, n_features: int):
        self.path, self.tmp = path, temporary_path(path)
        self.n_features = n_features
        self._f = h5py.File(self.tmp, "w")
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

    def append(self, block: GraphBlock) -> None:
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

    def close(self, graphs: dict[str, np.ndarray], attrs: dict) -> None:
        """Write the per-graph tables and attributes, then move the file into place."""
        g = self._f.create_group("graphs")
        g.create_dataset("node_offset", data=np.concatenate(self._node_offset))
        g.create_dataset("edge_offset", data=np.concatenate(self._edge_offset))
        for k, v in graphs.items():
            g.create_dataset(k, data=v)
        self._f.attrs.update(attrs)
        self._f.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Discard the temporary file."""
        try:
            self._f.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def finished_shard(path: Path, task: ShardTask) -> dict | None:
    """The result record of an existing shard if it is complete and belongs to ``task``."""
    if not path.exists():
        return None
    try:
        with h5py.File(path, "r") as f:
            a = f.attrs
            if (a.get("schema") != SHARD_SCHEMA or a.get("build_hash") != task.build_hash
                    or int(a["shard"]) != task.shard or int(a["source"]) != task.source
                    or a.get("source_sha256") != task.sha256
                    or int(a["start"]) != task.start or int(a["stop"]) != task.stop):
                return None
            result = json.loads(a["result"])
            if (f["nodes/x"].shape[0] != result["n_nodes"] or f["graphs/split"].shape[0] != result["written"]
                    or f["edges/index"].shape[1] != result["n_edges"]):
                return None
            return result
    except (OSError, KeyError, ValueError, TypeError):
        return None


# -- the whole build ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildOptions:
    """What ``gnnu-build`` was asked for (see DESIGN §10). ``split``/``seed`` ``None``: the graph
    config's defaults. ``graph``: config name or YAML path (``None``: knn16)."""

    inputs: tuple[str, ...]
    out: str
    format: str = "gnnu"
    graph: str | None = None
    split: tuple[float, float, float] | None = None
    seed: int | None = None
    workers: int = 1
    resume: bool = False
    force: bool = False
    skip_bad: bool = False
    reader_options: dict = field(default_factory=dict)
    progress: bool = False
    #: (i, n): build only part i of n (shards s with s mod n = i) into a shared ``out``, for job
    #: arrays; the complete manifest is written by a final ``merge`` run.
    part: tuple[int, int] | None = None
    #: Build nothing: check every shard of ``out`` is finished and write the complete manifest.
    merge: bool = False


@dataclass
class BuildSummary:
    """Counts and timing of one build (``in = out + skipped``)."""

    out: Path
    read: int
    written: int
    skipped: dict[str, int]
    per_split: dict[str, int]
    n_nodes: int
    n_edges: int
    n_shards: int
    kept_shards: int
    processed: int
    n_sources: int
    workers: int
    seconds: float
    part: tuple[int, int] | None = None

    def report(self) -> str:
        """The closing summary printed by ``gnnu-build``."""
        n_skip = sum(self.skipped.values())
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.skipped.items()))
        splits = ", ".join(f"{k} {v}" for k, v in self.per_split.items())
        rate = self.processed / self.seconds if self.seconds > 0 else float("inf")
        kept = f", {self.kept_shards} kept from an earlier run" if self.kept_shards else ""
        part = "" if self.part is None else (
            f"part {self.part[0]} of 0…{self.part[1] - 1}: ")
        tail = "" if self.part is None else (
            "\n  the dataset is complete once every part has run and the same command with "
            "--merge (instead of --shard-index/--num-shards) has written the manifest")
        n_empty = sum(n for r, n in self.skipped.items() if r in EMPTY_REASONS)
        empty = (f"\n  {n_empty} valid but empty event(s) skipped (no hit, or none in the graph "
                 f"config's window): not errors, counted in the manifest" if n_empty else "")
        return (f"gnnu-build: {part}read {self.read} events from {self.n_sources} source(s): wrote "
                f"{self.written} graphs ({splits}), skipped {n_skip}" + (f" ({reasons})" if n_skip else "")
                + empty
                + f"\n  {self.n_nodes} nodes, {self.n_edges} edges "
                f"({self.n_edges / max(self.n_nodes, 1):.2f} per node); {self.n_shards} shards{kept}; "
                f"{self.seconds:.1f} s ({rate:.0f} events/s, {self.workers} worker(s)) → {self.out}"
                + tail)


def _summarise(opts, out: Path, records: list[dict], n_sources: int, kept: int, processed: int,
               t0: float) -> BuildSummary:
    """The counts of the shard result ``records`` (a part's or the whole build's); checks that
    every event read was written or skipped."""
    skipped: dict[str, int] = {}
    for r in records:
        for k, v in r["skipped"].items():
            skipped[k] = skipped.get(k, 0) + v
    read = sum(r["read"] for r in records)
    written = sum(r["written"] for r in records)
    if read != written + sum(skipped.values()):
        raise RuntimeError(f"event accounting broken: {read} read, {written} written, {skipped} skipped")
    return BuildSummary(out=out, read=read, written=written, skipped=dict(sorted(skipped.items())),
                        per_split={s: sum(r["per_split"][s] for r in records) for s in SPLITS},
                        n_nodes=sum(r["n_nodes"] for r in records),
                        n_edges=sum(r["n_edges"] for r in records), n_shards=len(records),
                        kept_shards=kept, processed=processed, n_sources=n_sources,
                        workers=opts.workers, seconds=time.perf_counter() - t0, part=opts.part)


@dataclass
class _Source:
    path: str
    sha256: str
    n_events: int
    detector: object
    runs: list[int] = field(default_factory=list)


#: Run numbers listed per source in the manifest (all are checked).
MAX_LISTED_RUNS = 100


def _first_repeat(ids: np.ndarray) -> tuple[int, int] | None:
    """(earlier row, later row) of the first row of ``ids`` [n, 3] whose id an earlier row has,
    or None when every id is unique."""
    if len(ids) < 2:
        return None
    order = np.lexsort(ids.T[::-1])                  # stable: equal ids keep their row order
    same = np.all(ids[order[1:]] == ids[order[:-1]], axis=1)
    if not same.any():
        return None
    later = order[1:][same]
    b = int(later.min())
    a = int(np.flatnonzero(np.all(ids == ids[b], axis=1))[0])
    return a, b


def _check_unique_ids(path, ids: np.ndarray, earlier: list[tuple[str, np.ndarray]]) -> None:
    """InputError naming source ``path`` and the id when an event id repeats within it or is
    already in one of the ``earlier`` (path, ids) sources: a dataset's event ids are unique."""
    rep = _first_repeat(ids)
    if rep is not None:
        eid = tuple(int(v) for v in ids[rep[1]])
        raise InputError(f"event id {eid} appears twice in this source (rows {rep[0]} and {rep[1]}); "
                         f"every event of a dataset needs its own id", path)
    if not earlier or not len(ids):
        return
    rep = _first_repeat(np.concatenate([e for _, e in earlier] + [ids]))
    if rep is not None:
        sizes = np.cumsum([len(e) for _, e in earlier])
        k = int(np.searchsorted(sizes, rep[0], side="right"))
        row = rep[0] - (int(sizes[k - 1]) if k else 0)
        eid = tuple(int(v) for v in earlier[k][1][row])
        raise InputError(f"event id {eid} is also in {earlier[k][0]} (row {row}); every event of a "
                         f"dataset needs its own id (the same source given twice, or two gnnu-sim "
                         f"runs with one --seed?)", path)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, sorted)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode() + b"\0")
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _detector_identity(det) -> tuple[str, str | None]:
    cfg = getattr(det, "config", None)
    return det.name, (json.dumps(to_dict(cfg), sort_keys=True) if cfg is not None else None)


def _open_sources(opts: BuildOptions, cfg: GraphConfig) -> list[_Source]:
    sources, seen_ids = [], []
    for p in opts.inputs:
        with open_source(p, opts.format, **opts.reader_options) as reader:
            det = reader.detector
            if sources and _detector_identity(det) != _detector_identity(sources[0].detector):
                first = sources[0]
                how = ("detector configs differ" if det.name == first.detector.name
                       else f"detector '{det.name}' vs '{first.detector.name}'")
                raise InputError(f"incompatible with {first.path}: {how}; build them into "
                                 f"separate datasets", p)
            if cfg.needs_xyz and len(reader):
                try:
                    first_event = reader.read(0)
                except InputError:
                    first_event = None
                if first_event is not None and not all(c in first_event.hits for c in "xyz"):
                    raise InputError(f"the graph config '{cfg.name}' needs true hit positions "
                                     f"(x, y, z), which this source lacks", p)
            ids = np.asarray(reader.event_ids(), np.int64).reshape(-1, 3)
            _check_unique_ids(p, ids, seen_ids)
            seen_ids.append((str(p), ids))
            sources.append(_Source(str(Path(p).resolve()), file_sha256(p), len(reader), det,
                                   np.unique(ids[:, 0]).tolist()))
    return sources


def _check_part(opts: BuildOptions) -> None:
    if opts.part is not None:
        i, n = opts.part
        if n < 1 or not 0 <= i < n:
            raise ConfigError(f"--shard-index must be in 0 … --num-shards − 1, got {i} of {n}")
        if opts.force:
            raise ConfigError("--force with --shard-index would delete the other jobs' shards; "
                              "clear the directory once before starting the jobs")
    if opts.merge and (opts.part is not None or opts.force or opts.resume):
        raise ConfigError("--merge takes no --shard-index/--num-shards, --force or --resume")


def _prepare_out(out: Path, opts: BuildOptions, build_hash: str, mine=None) -> None:
    """Make ``out`` ready; ``mine``: the shard files this run may write (None: all)."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory")
    if opts.merge and not (out / MANIFEST).exists():
        raise InputError("nothing to merge: no manifest.json (run the --shard-index jobs first)", out)
    if out.exists() and any(out.iterdir()):
        if opts.force:
            for p in list(out.glob("shard-*.h5*")) + list(out.glob(f"{MANIFEST}*")):
                p.unlink()
        elif opts.resume or opts.part is not None or opts.merge:
            if (out / MANIFEST).exists():
                manifest = read_manifest(out, complete=False)
                if manifest.get("build_hash") != build_hash:
                    what = "resume" if opts.resume else "merge" if opts.merge else "add this part"
                    raise ConfigError(f"{out}: cannot {what}: the dataset there was built with other "
                                      f"settings (graph config, sources, format, split or seed); "
                                      f"use --force to rebuild it")
        else:
            raise OutputExistsError(f"{out}: output directory exists and is not empty (use --force "
                                    f"to overwrite or --resume to continue a build)")
    out.mkdir(parents=True, exist_ok=True)
    if opts.merge:                               # other jobs' temporaries: removed after the merge
        return
    for p in out.glob("*.tmp-*"):               # left by a killed build (a part: of its own shards)
        if mine is None or p.name.split(".tmp-")[0] in mine:
            p.unlink()


def build_dataset(opts: BuildOptions) -> BuildSummary:
    """Build the dataset ``opts.out`` from ``opts.inputs``; returns the counts (see module doc)."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    if opts.workers < 1:
        raise ConfigError(f"--workers must be ≥ 1, got {opts.workers}")
    if opts.force and opts.resume:
        raise ConfigError("--force and --resume exclude each other")
    if not opts.inputs:
        raise ConfigError("no input given (--input SRC …)")
    _check_part(opts)
    cfg = load_graph_config(opts.graph)
    fractions = tuple(float(f) for f in (opts.split or cfg.defaults.split))
    seed = cfg.defaults.seed if opts.seed is None else int(opts.seed)
    sources = _open_sources(opts, cfg)
    detector = graph_detector(sources[0].detector, cfg)
    reader_options = tuple(sorted((k, str(v)) for k, v in opts.reader_options.items()))
    settings = {"graph_config": cfg.to_dict(), "format": opts.format,
                "reader_options": dict(reader_options), "sources": [s.sha256 for s in sources],
                "split": list(fractions), "seed": seed, "schema_version": SCHEMA_VERSION}
    build_hash = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    out = Path(opts.out)
    tasks = []
    for si, src in enumerate(sources):
        for start in range(0, src.n_events, cfg.shard_size):
            tasks.append(ShardTask(len(tasks), si, src.path, src.sha256, opts.format, reader_options,
                                   start, min(start + cfg.shard_size, src.n_events), cfg, fractions,
                                   seed, opts.skip_bad, build_hash, str(out)))
    if opts.part is None:
        mine = tasks
    else:
        mine = [t for t in tasks if t.shard % opts.part[1] == opts.part[0]]
    _prepare_out(out, opts, build_hash,
                 None if opts.part is None else {shard_name(t.shard) for t in mine})
    columns = feature_columns(cfg.features, detector)
    det_name, det_json = _detector_identity(detector)
    manifest = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "status": "in_progress",
        "gnnu_version": __version__, "build_hash": build_hash,
        "format": opts.format, "reader_options": dict(reader_options),
        "graph_config": cfg.to_dict(),
        "detector": {"name": det_name, "views": list(detector.views),
                     "config": json.loads(det_json) if det_json else None},
        "sources": [{"path": s.path, "sha256": s.sha256, "n_events": s.n_events,
                     "runs": s.runs[:MAX_LISTED_RUNS], "n_runs": len(s.runs)} for s in sources],
        "split": {"fractions": list(fractions), "seed": seed, "names": list(SPLITS), "rule": SPLIT_RULE},
        "positions": {"columns": ["wire_cm", "time_cm"] if cfg.positions == "view" else
                      ["x_cm", "y_cm", "z_cm"], "unit": "cm"},
        "labels": list(Truth.columns()),
        "shards": [{"file": shard_name(t.shard), "source": t.source, "start": t.start, "stop": t.stop}
                   for t in tasks],
    }
    if not opts.merge:
        write_json_atomic(out / MANIFEST, manifest)     # the same bytes from every part's job

    results: dict[int, dict] = {}
    todo = []
    for t in mine:
        done = finished_shard(out / shard_name(t.shard), t)
        if done is None:
            todo.append(t)
        else:
            results[t.shard] = done
    if opts.merge and todo:
        names = ", ".join(shard_name(t.shard) for t in todo[:5]) + (" …" if len(todo) > 5 else "")
        raise InputError(f"cannot merge: {len(todo)} of {len(tasks)} shards missing or unfinished "
                         f"({names}); rerun the --shard-index job(s) that write them", out)
    for t in todo:
        (out / shard_name(t.shard)).unlink(missing_ok=True)
    kept = len(results)
    total = sum(t.stop - t.start for t in mine)
    bar = tqdm(total=total, initial=sum(r["read"] for r in results.values()), unit="ev",
               desc="gnnu-build", file=sys.stderr, disable=None if opts.progress else True)
    try:
        if opts.workers == 1 or len(todo) <= 1:
            for t in todo:
                results[t.shard] = build_shard(t)
                bar.update(results[t.shard]["read"])
        else:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(min(opts.workers, len(todo))) as pool:
                for t, res in zip(todo, pool.imap(build_shard, todo)):
                    results[t.shard] = res
                    bar.update(res["read"])
    finally:
        bar.close()
        _close_readers()

    processed = sum(results[t.shard]["read"] for t in todo)
    if opts.part is not None:          # the manifest stays in_progress until the merge
        return _summarise(opts, out, [results[t.shard] for t in mine], len(sources), kept,
                          processed, t0)
    ordered = [results[t.shard] for t in tasks]
    summary = _summarise(opts, out, ordered, len(sources), kept, processed, t0)
    # moments combined in an order that does not depend on the order of the inputs
    canonical = sorted(zip(tasks, ordered), key=lambda tr: (sources[tr[0].source].sha256, tr[0].start))
    n_train, mean, m2 = _combine_moments([(r["train_moments"]["n"], r["train_moments"]["mean"],
                                           r["train_moments"]["m2"]) for _, r in canonical],
                                         len(columns))
    std = np.sqrt(m2 / n_train) if n_train else np.ones(len(columns))
    per_class: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    for r in ordered:
        for s, classes in r["per_class"].items():
            for c, v in classes.items():
                per_class[s][c] = per_class[s].get(c, 0) + v
    skip_list = [{"source": t.source, **s} for t, r in zip(tasks, ordered) for s in r["skipped_events"]]
    manifest.update({
        "status": "complete",
        "features": [{"name": c.name, "unit": c.unit, "normalize": c.normalize,
                      "mean": float(m), "std": float(s)} for c, m, s in zip(columns, mean, std)],
        "normalisation": {"fitted_on": "train", "n_nodes": n_train, "mean": mean.tolist(),
                          "std": std.tolist(),
                          "method": "population mean/std of the training split's raw node features "
                                    "(float64 per-shard moments combined in (source sha256, first row) "
                                    "order); the dataset "
                                    "applies (x - mean) / std to columns with normalize = true "
                                    "(std 0 → 1)"},
        "counts": {"in": summary.read, "out": summary.written,
                   "skipped": sum(summary.skipped.values()), "skipped_by_reason": summary.skipped,
                   "per_split": summary.per_split,
                   "per_class": {s: dict(sorted(c.items())) for s, c in per_class.items()},
                   "nodes": summary.n_nodes, "edges": summary.n_edges},
        "skipped_events": skip_list[:MAX_LISTED_SKIPS],
        "skipped_events_listed": min(len(skip_list), MAX_LISTED_SKIPS),
        "shards": [{"file": shard_name(t.shard), "source": t.source, "start": t.start, "stop": t.stop,
                    "graphs": r["written"], "nodes": r["n_nodes"], "edges": r["n_edges"]}
                   for t, r in zip(tasks, ordered)],
    })
    write_json_atomic(out / MANIFEST, manifest)
    if opts.merge:
        for p in out.glob("*.tmp-*"):            # every shard is finished: no job writes any more
            p.unlink()
    return replace(summary, seconds=time.perf_counter() - t0)
