"""Physical constants of the simulator, each defined once with its source.

Detector-specific numbers (densities, radiation lengths, gains, …) are not here: they live in
the detector YAML (``configs/detectors/``). Particle masses are in :mod:`gnnu.sim.pdg`.

The Highland formula is here too (:func:`highland_log_term`), because both charged tracks
(:mod:`gnnu.sim.tracks`, numpy) and EM showers (:mod:`gnnu.sim.showers`, compiled kernels) use
it: the one definition below is run by numpy for the former and compiled for the latter.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit

#: Speed of light, cm/ns (SI definition of the metre: c = 299 792 458 m/s exactly).
C_CM_PER_NS = 29.9792458
#: K = 4π N_A r_e² m_e c², MeV cm²/mol (PDG Review of Particle Physics, "Passage of particles
#: through matter", Table 34.1).
K_BETHE = 0.307075
#: Fine-structure constant α (CODATA 2018).
ALPHA = 1.0 / 137.035999084
#: Classical electron radius r_e, cm (CODATA 2018).
R_E_CM = 2.8179403262e-13
#: Avogadro constant N_A, 1/mol (SI definition, exact).
AVOGADRO = 6.02214076e23
#: Atomic mass unit u·c², MeV (CODATA 2018: 931.49410242 MeV).
AMU_MEV = 931.49410
#: Highland's multiple-scattering constants (PDG "Passage of particles through matter",
#: eq. 34.16): θ0 = 13.6 MeV/(βcp) · z · √(x/X0) · (1 + 0.038 ln(x z²/(X0 β²))).
HIGHLAND_MEV = 13.6
HIGHLAND_LOG = 0.038


def highland_log_term(path_over_x0_beta2):
    """Highland's logarithmic correction 1 + 0.038 ln(x/(X0β²)) (dimensionless) for the path
    ``x`` over ``X0 β²`` given as one ratio (scalar or array; the caller computes the ratio, so
    its rounding is the caller's). θ0² = (13.6 MeV/(βcp))² (x/X0) · term² for a unit charge."""
    return 1.0 + HIGHLAND_LOG * np.log(path_over_x0_beta2)


#: :func:`highland_log_term` compiled, for the kernels of :mod:`gnnu.sim.showers`.
highland_log_term_jit = jit(highland_log_term)
