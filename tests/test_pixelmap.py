"""Pixel maps (gnnu.pixelmap), preset ``dune-cvn`` (docs/design.md#images: 3 × 500 × 500, one wire
per column, 3200 ticks in 500 bins of 6.4 ticks, value = q·255/1000 saturating)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gnnu.events import Hits
from gnnu.images import DUNE_CVN, get_preset, render, vertex_wire_tick, window_origin


def hits(view, wire, time, charge) -> Hits:
    n = len(view)
    return Hits({"view": np.asarray(view, np.int8), "wire": np.asarray(wire, np.int32),
                 "time": np.asarray(time, np.float32), "charge": np.asarray(charge, np.float32),
                 "width": np.full(n, 2.0, np.float32)})


# (wire, tick) per view; dune-cvn puts the vertex at column 5 (wire fraction 0.01) and mid-time:
# window wires 995–1494, ticks 400–3600.
VERTEX = np.array([[1000.3, 2000.0]] * 3)


def test_preset_shape_and_dtype():
    assert get_preset("dune-cvn") is DUNE_CVN
    assert DUNE_CVN.shape == (3, 500, 500)
    assert DUNE_CVN.n_time_bins * DUNE_CVN.ticks_per_bin == pytest.approx(3200)
    m = render(hits([0, 1, 2], [10, 20, 30], [100, 200, 300], [50, 50, 50]), "dune-cvn")
    assert m.shape == (3, 500, 500) and m.dtype == np.uint8
    assert render(hits([], [], [], []), DUNE_CVN).shape == (3, 500, 500)
    with pytest.raises(ValueError, match="unknown pixel-map preset"):
        get_preset("nope")


def test_charge_scaling_and_saturation():
    # q·255/1000 rounded up: 100 → 25.5 → 26; two hits in one pixel add (200 → 51);
    # 1000 ADC·tick → 255; more saturates at 255.
    h = hits([2, 2, 2, 2, 2], [1045, 1055, 1055, 1065, 1075],
             [1000, 1000, 1001, 1000, 1000], [100, 100, 100, 1000, 5e4])
    m = render(h, DUNE_CVN, vertex_pixel=VERTEX)
    row = int((1000 - 400) // 6.4)
    assert m[2, 50, row] == 26
    assert m[2, 60, row] == 51
    assert m[2, 70, row] == 255 and m[2, 80, row] == 255
    assert np.count_nonzero(m) == 4
    # any positive charge makes a non-zero pixel
    assert render(hits([0], [1000], [2000], [0.5]), DUNE_CVN, vertex_pixel=VERTEX)[0].max() == 1


def test_hit_lands_in_expected_pixel():
    # Vertex on wire 1000, tick 2000: first column = wire 995, first bin starts at tick 400;
    # a hit at wire 1045, tick 1000 → column 50, bin floor(600 / 6.4) = 93, in its own view only.
    h = hits([1], [1045], [1000.0], [400])
    m = render(h, DUNE_CVN, vertex_pixel=VERTEX)
    assert np.argwhere(m).tolist() == [[1, 50, 93]]
    np.testing.assert_allclose(window_origin(h, DUNE_CVN, VERTEX), [[995, 400]] * 3)
    # the vertex's own pixel is column 5, bin 250
    v = render(hits([0], [1000], [2000.0], [400]), DUNE_CVN, vertex_pixel=VERTEX)
    assert np.argwhere(v).tolist() == [[0, 5, 250]]
    # a preset anchored at (0.5, 0.5) centres the window on the vertex
    centred = dataclasses.replace(DUNE_CVN, vertex_anchor=(0.5, 0.5))
    np.testing.assert_allclose(window_origin(h, centred, VERTEX), [[750, 400]] * 3)
    # outside the window: not drawn
    out = hits([1, 1, 1], [994, 1495, 1045], [1000, 1000, 3601], [400, 400, 400])
    assert np.count_nonzero(render(out, DUNE_CVN, vertex_pixel=VERTEX)) == 0


def test_centroid_centring_per_view():
    # Without a vertex the window is centred on each view's charge-weighted centroid:
    # hits symmetric about (wire 3000, tick 1600) in view 0 and (wire 50, tick 4000) in view 2
    # put the centroid pixel at column 250, bin 250 in both.
    h = hits([0, 0, 2, 2], [2990, 3010, 40, 60], [1500, 1700, 3900, 4100], [100, 100, 300, 300])
    m = render(h, DUNE_CVN)
    origin = window_origin(h, DUNE_CVN)
    np.testing.assert_allclose(origin[0], [2750, 0])
    np.testing.assert_allclose(origin[2], [-200, 2400])
    assert m[0, 240, int((1500 - 0) // 6.4)] > 0 and m[0, 260, int((1700 - 0) // 6.4)] > 0
    assert m[2, 240, int((3900 - 2400) // 6.4)] > 0 and m[2, 260, int((4100 - 2400) // 6.4)] > 0
    assert not m[1].any()
    # charge weighting: a heavier hit pulls the centre towards itself
    w = window_origin(hits([0, 0], [1000, 1100], [2000, 2000], [300, 100]), DUNE_CVN)
    assert w[0, 0] == 1025 - 250
    # a centroid-only preset ignores a given vertex
    centroid = dataclasses.replace(DUNE_CVN, centring="centroid")
    np.testing.assert_allclose(window_origin(h, centroid, VERTEX), origin)


def test_vertex_wire_tick_matches_geometry(dune):
    # x = 80 cm of drift → 80 / (0.16 cm/µs × 0.5 µs) = 1000 ticks; wire = wire coordinate / pitch.
    vtx = vertex_wire_tick(dune, (80.0, 10.0, 500.0))
    assert vtx.shape == (3, 2)
    np.testing.assert_allclose(vtx[:, 1], 1000.0)
    for v in range(3):
        assert int(np.floor(vtx[v, 0])) == dune.wire_index(v, 10.0, 500.0)
