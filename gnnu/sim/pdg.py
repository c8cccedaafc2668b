"""Particle data used by the simulator: masses (GeV/c², PDG 2024), charges, lifetimes.

Only the species the generator and transport produce are listed; an unknown code is a bug
and raises KeyError naming it.
"""

from __future__ import annotations

import numpy as np

MASS_GEV = {
    11: 0.51099895e-3, 13: 0.1056583755, 15: 1.77686,
    12: 0.0, 14: 0.0, 16: 0.0, 22: 0.0,
    111: 0.1349768, 211: 0.13957039, 2212: 0.93827208816, 2112: 0.93956542052,
    321: 0.493677, 130: 0.497611, 310: 0.497611, 3122: 1.115683,
}
CHARGE = {11: -1, 13: -1, 15: -1, 12: 0, 14: 0, 16: 0, 22: 0, 111: 0, 211: 1, 2212: 1,
          2112: 0, 321: 1, 130: 0, 310: 0, 3122: 0}

MUON_MASS_MEV = MASS_GEV[13] * 1e3
ELECTRON_MASS_MEV = MASS_GEV[11] * 1e3
PROTON_MASS_MEV = MASS_GEV[2212] * 1e3
PION_MASS_MEV = MASS_GEV[211] * 1e3


def mass(pdg) -> np.ndarray:
    """Mass in GeV/c² of each PDG code (sign ignored)."""
    a = np.abs(np.asarray(pdg))
    out = np.empty(a.shape, np.float64)
    flat = out.reshape(-1)
    for i, code in enumerate(a.reshape(-1)):
        flat[i] = MASS_GEV[int(code)]
    return out


def charge(pdg) -> np.ndarray:
    """Electric charge (units of e) of each PDG code, with the sign of antiparticles."""
    p = np.asarray(pdg)
    q = np.array([CHARGE[int(abs(c))] for c in p.reshape(-1)], np.int8).reshape(p.shape)
    # CHARGE holds the charge of the positive code (e−/μ− for leptons, π+/p for hadrons);
    # a negative code is the antiparticle, of opposite charge.
    return (q * np.sign(p)).astype(np.int8)


def kinetic_energy(pdg, mom) -> np.ndarray:
    """Kinetic energy (GeV) from PDG codes and momenta [n, 3] GeV/c."""
    m = mass(pdg)
    p2 = np.einsum("ij,ij->i", np.atleast_2d(mom), np.atleast_2d(mom))
    return np.sqrt(p2 + m * m) - m
