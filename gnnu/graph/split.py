"""The split rule of graph datasets: which events are train, validation and test.

Event i goes to train/val/test by a hash of (seed, detector name, run, subrun, event)
(:func:`assign_split`): no file names or positions involved, so adding events or files never
moves an existing event, and an event present in two sources lands in the same split. The rule,
as written into every manifest, is :data:`SPLIT_RULE`.
"""

from __future__ import annotations

import hashlib

import numpy as np

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
#: The rule as recorded in every manifest (its text, which names the function by its historical
#: path gnnu.graph.build.assign_split — still importable there —, is part of the manifest bytes).
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
