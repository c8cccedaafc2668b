"""``gnnu-build --inspect DIR``: what a person needs to judge a built graph dataset.

Prints the build counts (in/out/skipped by reason), graphs per class and split, the feature
statistics of the manifest, graph sizes and degrees over the whole dataset, and for a few sample
graphs (networkx): connected components per view and overall, the in-degree histogram and the
hops a message needs to cross the event (diameter of the largest connected component, edges taken
as undirected; exact, by networkx's eccentricity-bounding algorithm).

``gnnu-build --verify DIR`` (:func:`verify_dataset`): every shard's size and sha256 against the
manifest, then every shard opened as training would (build hash, per-graph tables, labels).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError
from ..events import Flavour
from .store import SPLITS, check_shard_files, read_manifest


def _quantiles(values: np.ndarray) -> str:
    if len(values) == 0:
        return "none"
    q = np.percentile(values, [0, 50, 90, 100])
    return (f"min {q[0]:.0f}, median {q[1]:.0f}, mean {values.mean():.1f}, 90% {q[2]:.0f}, "
            f"max {q[3]:.0f}")


def sample_graph_stats(edge_index: np.ndarray, view: np.ndarray, view_names) -> dict:
    """networkx diagnostics of one graph: components per view and overall, in-degree histogram,
    diameter (hops) of the largest connected component (undirected)."""
    import networkx as nx

    n = len(view)
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from(map(tuple, edge_index.T.tolist()))
    und = g.to_undirected()
    per_view = {name: nx.number_connected_components(und.subgraph(np.flatnonzero(view == v).tolist()))
                for v, name in enumerate(view_names)}
    comps = list(nx.connected_components(und)) if n else []
    largest = max(comps, key=len) if comps else set()
    hops = nx.diameter(und.subgraph(largest), usebounds=True) if len(largest) > 1 else 0
    return {"nodes": n, "edges": g.number_of_edges(), "components_per_view": per_view,
            "components": len(comps), "largest_component": len(largest), "hops": hops,
            "in_degree_histogram": dict(sorted(Counter(d for _, d in g.in_degree()).items()))}


def verify_dataset(root: str) -> str:
    """Check every shard of dataset ``root`` (module docstring); InputError naming the first bad
    shard (and event), else a one-line summary."""
    from .dataset import ShardIndex

    m = read_manifest(root)
    checked = check_shard_files(root, m, checksums=True)
    index = ShardIndex(root, "all")
    if checked < len(m["shards"]):
        raise InputError(f"schema {m['schema_version']} manifest records no shard checksums: only "
                         f"readability and labels were checked ({len(index)} graphs); rebuild "
                         f"the dataset to record them", root)
    size = sum(s["bytes"] for s in m["shards"])
    return (f"{root}: {checked} shards verified (sizes and sha256 match the manifest, "
            f"{size / 1e6:.1f} MB), {len(index)} graphs readable with valid labels")


def inspect_dataset(root: str, samples: int = 3) -> str:
    """A multi-line text report on the dataset directory ``root``."""
    root_path = Path(root)
    m = read_manifest(root_path)
    c = m["counts"]
    cfg = m["graph_config"]
    lines = [f"{root_path}: gnnu graph dataset (schema {m['schema_version']}, gnnu {m['gnnu_version']}), "
             f"detector {m['detector']['name']}, format {m['format']}, graph config '{cfg['name']}' "
             f"({cfg['description']})",
             f"  sources: {len(m['sources'])}; shards: {len(m['shards'])}; split "
             f"{'/'.join(str(f) for f in m['split']['fractions'])} seed {m['split']['seed']}",
             f"  events: in {c['in']}, out {c['out']}, skipped {c['skipped']}"
             + (" (" + ", ".join(f"{k} {v}" for k, v in c["skipped_by_reason"].items()) + ")"
                if c["skipped"] else "")]
    order = [f.label for f in Flavour]
    classes = sorted({k for s in SPLITS for k in c["per_class"][s]},
                     key=lambda k: (order.index(k) if k in order else len(order), k))
    lines.append("\ngraphs per class and split:")
    lines.append(f"  {'class':12s}" + "".join(f"{s:>9s}" for s in SPLITS) + f"{'total':>9s}")
    for k in classes:
        row = [c["per_class"][s].get(k, 0) for s in SPLITS]
        lines.append(f"  {k:12s}" + "".join(f"{v:9d}" for v in row) + f"{sum(row):9d}")
    lines.append(f"  {'all':12s}" + "".join(f"{c['per_split'][s]:9d}" for s in SPLITS) + f"{c['out']:9d}")
    lines.append(f"\nnode features (statistics of the training split, {m['normalisation']['n_nodes']} nodes):")
    for f in m["features"]:
        lines.append(f"  {f['name']:12s} {f['unit']:22s} mean {f['mean']:12.4g}  std {f['std']:12.4g}"
                     + ("" if f["normalize"] else "  (not normalised)"))

    nodes, edges, where = [], [], []
    for si, shard in enumerate(m["shards"]):
        try:
            with h5py.File(root_path / shard["file"], "r") as f:
                no, eo = f["graphs/node_offset"][...], f["graphs/edge_offset"][...]
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"unreadable shard ({str(exc).splitlines()[0]}); rebuild the dataset",
                             root_path / shard["file"]) from None
        nodes.append(np.diff(no))
        edges.append(np.diff(eo))
        where.extend((si, g) for g in range(len(no) - 1))
    nodes = np.concatenate(nodes) if nodes else np.zeros(0)
    edges = np.concatenate(edges) if edges else np.zeros(0)
    lines.append("\ngraph sizes:")
    lines.append(f"  nodes per graph: {_quantiles(nodes)}")
    lines.append(f"  edges per graph: {_quantiles(edges)}")
    mean_deg = edges / np.maximum(nodes, 1)
    lines.append(f"  mean in-degree per graph: min {mean_deg.min() if len(mean_deg) else 0:.2f}, "
                 f"median {np.median(mean_deg) if len(mean_deg) else 0:.2f}, "
                 f"max {mean_deg.max() if len(mean_deg) else 0:.2f}")

    n_samples = min(samples, len(where))
    if n_samples:
        lines.append(f"\n{n_samples} sample graph(s) (networkx; hops = diameter of the largest "
                     f"connected component, undirected):")
    views = m["detector"]["views"]
    for pick in np.linspace(0, len(where) - 1, n_samples).astype(int) if n_samples else []:
        si, g = where[pick]
        with h5py.File(root_path / m["shards"][si]["file"], "r") as f:
            no, eo = f["graphs/node_offset"], f["graphs/edge_offset"]
            a, b, ea, eb = int(no[g]), int(no[g + 1]), int(eo[g]), int(eo[g + 1])
            st = sample_graph_stats(f["edges/index"][:, ea:eb], f["nodes/view"][a:b], views)
            ev = tuple(int(v) for v in f["graphs/event_id"][g])
            split = SPLITS[int(f["graphs/split"][g])]
        comps = ", ".join(f"{k} {v}" for k, v in st["components_per_view"].items())
        hist = " ".join(f"{k}:{v}" for k, v in st["in_degree_histogram"].items())
        lines.append(f"  event {ev} ({split}): {st['nodes']} nodes, {st['edges']} edges; components "
                     f"per view {comps}; {st['components']} overall (largest {st['largest_component']} "
                     f"nodes, {st['hops']} hops across)")
        lines.append(f"    in-degree histogram (degree:nodes) {hist}")
    return "\n".join(lines)
