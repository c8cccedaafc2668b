"""One shard of a graph dataset: rows [start, stop) of one source → graphs → one shard file.

:func:`build_shard` is what every build job runs per shard (in this process or a pool worker):
read the rows, turn them into graphs in blocks of :data:`SUB_BLOCK` events
(:func:`gnnu.graph.block.make_graphs`), assign each event its split
(:func:`gnnu.graph.split.assign_split`), accumulate the training split's feature moments and
write the shard atomically (:class:`gnnu.graph.store.ShardWriter`). A shard depends only on its
source range and the build settings (:class:`ShardTask`), so any worker count, resume or
scale-out part gives the same bytes; :func:`finished_shard` recognises one a killed build left
complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..events import Flavour, Truth
from ..io.base import open_source
from .block import BAD_REASONS, EMPTY_REASONS, make_graphs
from .config import GraphConfig
from .features import feature_columns
from .split import assign_split
from .store import SCHEMA_VERSION, SHARD_SCHEMA, SPLITS, ShardWriter, finished_shard_result, shard_name

READER_ERROR = "reader error"
#: Events turned into graphs at once inside a shard (bounds memory; output does not depend on it).
SUB_BLOCK = 128


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
    writer = ShardWriter(Path(task.out) / shard_name(task.shard), cfg,
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


def finished_shard(path: Path, task: ShardTask) -> dict | None:
    """The result record of an existing shard if it is complete and belongs to ``task``."""
    return finished_shard_result(path, {"shard": task.shard, "source": task.source,
                                        "source_sha256": task.sha256, "start": task.start,
                                        "stop": task.stop, "build_hash": task.build_hash})
