"""Readout of the toy pad TPC: every deposit drifts to the pad below it; a pad above threshold
is one hit (charge = summed MeV, time = earliest drift time in µs, width = rms of the drift
times, truth = energy-weighted position and the largest contributor's particle)."""

from __future__ import annotations

import numpy as np

from gnnu.events import HIT_COLUMNS, Hits
from gnnu.sim.records import READOUTS, Deposits


@READOUTS.register("toypad")
def digitize(deposits: Deposits, detector, rng: np.random.Generator) -> Hits:
    cfg = detector.config
    inside = cfg.active_volume.contains(deposits.pos) & (deposits.de > 0)
    d = deposits.select(inside)
    col, row = detector.pad_of(d.pos)
    drift_us = (d.pos[:, 0] - cfg.active_volume.x[0]) / cfg.drift_velocity_cm_per_us
    pads, inverse = np.unique(row * detector.n_columns + col, return_inverse=True)
    w = d.de
    charge = np.bincount(inverse, weights=w, minlength=len(pads))
    mean_t = np.bincount(inverse, weights=w * drift_us, minlength=len(pads)) / charge
    var_t = np.bincount(inverse, weights=w * (drift_us - mean_t[inverse]) ** 2,
                        minlength=len(pads)) / charge
    first_t = np.full(len(pads), np.inf)
    np.minimum.at(first_t, inverse, drift_us)
    order = np.lexsort((-w, inverse))                      # largest deposit first in each pad
    top = order[np.searchsorted(inverse[order], np.arange(len(pads)))]
    xyz = np.stack([np.bincount(inverse, weights=w * d.pos[:, k], minlength=len(pads)) / charge
                    for k in range(3)], axis=1)
    keep = charge >= cfg.threshold_mev
    cols = {"view": np.zeros(keep.sum()), "wire": pads[keep] % detector.n_columns,
            "time": first_t[keep], "charge": charge[keep], "width": np.sqrt(var_t[keep]),
            "plane": pads[keep] // detector.n_columns, "x": xyz[keep, 0], "y": xyz[keep, 1],
            "z": xyz[keep, 2], "particle": d.track[top[keep]], "energy": charge[keep]}
    return Hits({k: np.asarray(v).astype(HIT_COLUMNS[k][0]) for k, v in cols.items()})
