"""Hit graphs: node features, edge builders, kNN backends, dataset build and on-disk dataset.

- :mod:`gnnu.graph.config`: graph-build configs (``configs/graphs/*.yaml``).
- :mod:`gnnu.graph.features`: node features (positions in cm, charge, width, view one-hot, …).
- :mod:`gnnu.graph.knn`: k nearest neighbours behind one function (scipy, torch, torch-cluster).
- :mod:`gnnu.graph.edges`: edge builders (kNN, radius, wire adjacency, Delaunay, cross-view).
- :mod:`gnnu.graph.build`: ``gnnu-build``'s orchestrator: sources → sharded dataset + manifest,
  with its jobs in :mod:`gnnu.graph.split` (the split rule), :mod:`gnnu.graph.block` (events →
  graphs) and :mod:`gnnu.graph.shard` (one shard).
- :mod:`gnnu.graph.store`: the dataset's on-disk layout, its shard writer and manifest I/O.
- :mod:`gnnu.graph.dataset`: the built dataset as a PyTorch Geometric ``Dataset``.
- :mod:`gnnu.graph.inspect`: ``gnnu-build --inspect``.

Importing this package loads nothing heavy; torch is needed only by ``dataset`` and the torch
kNN backends.
"""
