"""Unit directions turned about other unit directions (shared by the track and shower transport).

The frame (u, v) completing a unit direction d to a right-handed orthonormal frame is the
branch-free construction of Duff et al., J. Comput. Graph. Tech. 6 (2017) 1: with s = sign(d_z),
c = −1/(s + d_z), u = (1 + s d_x² c, s d_x d_y c, −s d_x), v = (d_x d_y c, s + d_y² c, −d_y).
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import jit


@jit
def turn_one(x: float, y: float, z: float, cos_t: float, a: float, b: float):
    """``cos_t``·d + a·u + b·v for the unit direction d = (x, y, z) and its frame (u, v) (module
    docstring). With a = sin θ cos φ, b = sin θ sin φ this is the direction at polar angle θ
    and azimuth φ about d; with a, b = sinc|α|·α for a small-angle deflection α, its exponential
    map."""
    s = math.copysign(1.0, z)
    q = s * a * x + b * y                                   # = −(a·u_z + b·v_z)
    w = q / (s + z)
    return cos_t * x + a - x * w, cos_t * y + s * b - y * w, cos_t * z - q


@jit
def _turn_many(d, cos_t, a, b):
    out = np.empty((len(cos_t), 3))
    for i in range(len(cos_t)):
        out[i, 0], out[i, 1], out[i, 2] = turn_one(d[i, 0], d[i, 1], d[i, 2], cos_t[i], a[i],
                                                   b[i])
    return out


def rotate(d: np.ndarray, cos_t: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit directions [n, 3] at polar angle acos(``cos_t``) [n] and azimuth ``phi`` [n] about
    the unit directions ``d`` [n, 3]."""
    cos_t = np.asarray(cos_t, np.float64)
    sin_t = np.sqrt(np.maximum(1.0 - cos_t * cos_t, 0.0))
    return _turn_many(d, cos_t, sin_t * np.cos(phi), sin_t * np.sin(phi))
