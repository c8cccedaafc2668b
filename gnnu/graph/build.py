"""Build a graph dataset from event sources (docs/design.md#graph-dataset): the library behind ``gnnu-build``.

:func:`build_dataset` is the orchestrator: it reads one or more sources of one format
(:func:`gnnu.io.open_source`), plans one shard per ``shard_size`` consecutive events of one
source, prepares the output directory (refuse, ``force``, ``resume``, scale-out ``part`` and
``merge``), runs the shards (:func:`gnnu.graph.shard.build_shard`, here or in a process pool:
events → graphs by :func:`gnnu.graph.block.make_graphs`, split by
:func:`gnnu.graph.split.assign_split`, written by :class:`gnnu.graph.store.ShardWriter`) and
writes ``manifest.json`` (the directory layout is :mod:`gnnu.graph.store`).

Manifest: gnnu version, ``status`` (``in_progress`` while building, ``complete`` at the end),
``build_hash`` (sha256 of everything that decides the output: resolved graph config, format and
reader options, source hashes, split fractions and seed), the resolved graph config, the
detector, the sources with their sha256 hashes and run numbers, feature names/units with their normalisation
statistics, the split rule, counts in/out/skipped (by reason, and the skipped events), counts per
split and class, and the shard list (each shard's file size and sha256: a dataset damaged after
the build is refused on opening, or by ``gnnu-build --verify``).

Guarantees:

- Deterministic: a shard depends only on its source range and the build settings, so the output
  is identical for any ``workers`` and after a resume.
- Atomic shards: each is written to a temporary file and renamed; ``resume`` keeps every shard
  whose recorded source, range and build hash match and redoes missing or unreadable ones.
  An existing directory is refused unless ``force`` (our files are deleted first) or ``resume``.
- One writer: the output directory is locked for the whole build (:func:`gnnu.atomic.output_lock`,
  ``DIR.lock``); a second build into it stops at once naming the first. A job-array part locks
  only its own part (``DIR.part-I-of-N.lock``), so the parts run side by side.
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

import numpy as np

from .. import __version__
from ..atomic import output_lock, remove_stale_temporaries
from ..config import to_dict
from ..errors import ConfigError, InputError, OutputExistsError, ignore_interrupts_in_worker
from ..events import Truth
from ..io.base import open_source
from .config import GraphConfig, load_graph_config
from .features import feature_columns
from .store import (MANIFEST, SCHEMA, SCHEMA_VERSION, SPLITS, read_manifest, shard_file_record,
                    shard_name, write_manifest)
# The jobs of a build, importable from here as before the split into modules:
from .block import BAD_REASONS, EMPTY_REASONS, GraphBlock, graph_detector, make_graphs
from .shard import (READER_ERROR, SUB_BLOCK, ShardTask, _close_readers, _combine_moments,
                    build_shard, finished_shard)
from .split import SPLIT_RULE, assign_split, split_uniform
from .store import ShardWriter

__all__ = ["BAD_REASONS", "READER_ERROR", "SPLIT_RULE", "SUB_BLOCK", "BuildOptions", "BuildSummary",
           "GraphBlock", "ShardTask", "ShardWriter", "assign_split", "build_dataset", "build_shard",
           "file_sha256", "finished_shard", "graph_detector", "make_graphs", "split_uniform"]

#: Skipped events listed one by one in the manifest (all are counted).
MAX_LISTED_SKIPS = 1000


# -- the whole build ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildOptions:
    """What ``gnnu-build`` was asked for (see docs/design.md#command-line-contract). ``split``/``seed`` ``None``: the graph
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
    t0 = time.perf_counter()
    if opts.workers < 1:
        raise ConfigError(f"--workers must be ≥ 1, got {opts.workers}")
    if opts.force and opts.resume:
        raise ConfigError("--force and --resume exclude each other")
    if not opts.inputs:
        raise ConfigError("no input given (--input SRC …)")
    _check_part(opts)
    out = Path(opts.out)
    # one build per directory at a time; the jobs of a job array each lock their own part
    target = out if opts.part is None else out.with_name(f"{out.name}.part-{opts.part[0]}-of-{opts.part[1]}")
    with output_lock(target, "gnnu-build"):
        return _build(opts, t0)


def _build(opts: BuildOptions, t0: float) -> BuildSummary:
    from tqdm import tqdm

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
        write_manifest(out / MANIFEST, manifest)     # the same bytes from every part's job

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
            try:
                with ctx.Pool(min(opts.workers, len(todo)), initializer=ignore_interrupts_in_worker) as pool:
                    for t, res in zip(todo, pool.imap(build_shard, todo)):
                        results[t.shard] = res
                        bar.update(res["read"])
            except BaseException:        # the pool has ended its workers: remove what they wrote
                for t in todo:
                    remove_stale_temporaries(out / shard_name(t.shard))
                raise
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
                    "graphs": r["written"], "nodes": r["n_nodes"], "edges": r["n_edges"],
                    **shard_file_record(out / shard_name(t.shard))}      # bytes, sha256
                   for t, r in zip(tasks, ordered)],
    })
    write_manifest(out / MANIFEST, manifest)
    if opts.merge:
        for p in out.glob("*.tmp-*"):            # every shard is finished: no job writes any more
            p.unlink()
    return replace(summary, seconds=time.perf_counter() - t0)
