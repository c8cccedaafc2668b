"""Realism: simulated events rendered like DUNE CVN's released pixel maps vs the real ones.

Reference: the 400 real DUNE FD events of ``../shared/data/dune-cvn-finetune`` (100 per flavour,
DUNE CVN release, Phys. Rev. D 102 (2020) 092003), compared per flavour with
``tools/compare_dune_cvn.py`` (the full table, 1 000 simulated events per flavour, is in
REALISM.md). This is its cheap form: every real event, 60 simulated events per flavour (seed 7).

Criteria (issue 22): occupancy (non-zero pixels, three views) quantiles 10/50/90 % within 1.5×
of the real ones for CC νμ and CC ντ, and the median within 1.5× for CC νe too; the MIP peak of
track-like pixels within 5 % over all flavours. NC is known to fall short (REALISM.md: neutrons
nearly invisible in the simulator): its median must stay within 2.5× and its shortfall is
asserted, so a change that fixes it makes this test say so. docs/design.md#dune-like-lartpc quotes ~200–2000
non-zero pixels per view for real events.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
from compare_dune_cvn import DEFAULT_REAL, compare, load_real, simulate  # noqa: E402

pytestmark = pytest.mark.slow
PER_FLAVOUR = 60


@pytest.fixture(scope="module")
def rows():
    if not DEFAULT_REAL.is_dir():
        pytest.skip(f"real DUNE CVN events not found at {DEFAULT_REAL}")
    real = load_real(DEFAULT_REAL)
    assert len(real.flavour) == 400
    sim = simulate(PER_FLAVOUR, seed=7)
    return {r["flavour"]: r for r in compare(real, sim)}


def _ratio(row, q):
    return row[f"occ_q{q}"][1] / row[f"occ_q{q}"][0]


def test_real_occupancy_is_in_the_design_range(rows):
    real_view_median = np.array(rows["all"]["view_median"][0])
    assert np.all((real_view_median > 200) & (real_view_median < 2000))


@pytest.mark.parametrize("flavour", ["numu_cc", "nutau_cc"])
def test_occupancy_quantiles_within_1_5x(rows, flavour):
    for q in (10, 50, 90):
        assert 1 / 1.5 < _ratio(rows[flavour], q) < 1.5, (flavour, q, _ratio(rows[flavour], q))


def test_nue_median_within_1_5x_and_nc_short_but_within_2_5x(rows):
    assert 1 / 1.5 < _ratio(rows["nue_cc"], 50) < 1.5
    nc = _ratio(rows["nc"], 50)
    assert 1 / 2.5 < nc < 1 / 1.2, f"NC median occupancy ratio {nc:.2f}"


def test_mip_peak_within_5_percent(rows):
    r = rows["all"]
    assert 30 < r["mip_peak"][0] < 38                       # real: ≈ 33 (q·255/1000 of ~130 ADC·tick)
    assert abs(r["mip_ratio"] - 1) < 0.05, r["mip_peak"]
