"""The shared data model: hits, truth, particles and the label codes of docs/design.md#labels.

This module is the one place that defines label codes and column names; every stage
(simulator, readers, graph builder, image adapter, models, metrics) imports them from here.

Units: positions in cm, times in the detector's native unit (LArTPC: ticks of 0.5 µs;
scintillator: ns), charge in ADC·tick (LArTPC hit integral) or PE, energies of particles in
GeV (``nu_energy``, ``lep_energy``, momenta in GeV/c) and deposits in MeV.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field

import numpy as np


class Flavour(enum.IntEnum):
    """Event class, same codes as DUNE CVN (so real DUNE events map 1:1)."""

    NUMU_CC = 0
    NUE_CC = 1
    NUTAU_CC = 2
    NC = 3
    COSMIC = 4  # NOvA-like detector only

    @property
    def label(self) -> str:
        return {0: "numu_cc", 1: "nue_cc", 2: "nutau_cc", 3: "nc", 4: "cosmic"}[int(self)]

    @property
    def pretty(self) -> str:
        return {0: "CC νμ", 1: "CC νe", 2: "CC ντ", 3: "NC", 4: "cosmic"}[int(self)]

    @classmethod
    def parse(cls, text: str) -> "Flavour":
        """``'numu_cc'`` → ``Flavour.NUMU_CC`` (case-insensitive); ValueError if unknown."""
        for f in cls:
            if f.label == text.strip().lower():
                return f
        raise ValueError(f"unknown flavour '{text}' (known: {', '.join(f.label for f in cls)})")


class Interaction(enum.IntEnum):
    """Interaction class as in DUNE CVN: QE, RES, DIS, other (COH, MEC, …)."""

    QE = 0
    RES = 1
    DIS = 2
    OTHER = 3


class Mode(enum.IntEnum):
    """Fine-grained generator mode (truth only); maps onto :class:`Interaction`."""

    QE = 0
    MEC = 1
    RES = 2
    DIS = 3
    COH = 4
    COSMIC = 5

    @property
    def interaction(self) -> Interaction:
        return {Mode.QE: Interaction.QE, Mode.RES: Interaction.RES,
                Mode.DIS: Interaction.DIS}.get(self, Interaction.OTHER)


#: Final-state primary counts, each bucketed 0, 1, 2, >2 (stored as 3).
COUNT_LABELS = ("n_proton", "n_charged_pion", "n_neutral_pion", "n_neutron")
#: Classification labels every dataset carries per event.
CLASS_LABELS = ("flavour", "interaction", "is_antinu") + COUNT_LABELS
#: Number of classes of each classification label.
NUM_CLASSES = {"flavour": 5, "interaction": 4, "is_antinu": 2,
               **{name: 4 for name in COUNT_LABELS}}
#: The 3-class task of the transfer-learning study: flavour with ντ removed.
THREE_CLASS = (Flavour.NUMU_CC, Flavour.NUE_CC, Flavour.NC)


def bucket_count(n) -> np.ndarray | int:
    """Bucket raw multiplicities into 0, 1, 2, >2 (=3); −1 (undefined) stays −1."""
    arr = np.asarray(n)
    out = np.where(arr < 0, -1, np.minimum(arr, 3))
    return int(out) if out.ndim == 0 else out


#: Truth fields whose name means something else on an in-memory graph or batch: PyG reads
#: ``Data.y`` as the training target, so the inelasticity ``y`` is ``data.inelasticity`` there
#: (the :class:`Truth` field, the stored dataset column and the regression target stay ``y``).
BATCH_NAMES = {"y": "inelasticity"}


def batch_key(field: str) -> str:
    """The attribute (and batch key) under which truth field ``field`` sits on graphs, image
    items and their batches (:data:`BATCH_NAMES`; the field's own name otherwise)."""
    return BATCH_NAMES.get(field, field)


@dataclass
class Truth:
    """Event-level truth. −1 marks an undefined label (e.g. counts in real NC events).

    Energies in GeV, vertex in cm (detector coordinates), ``y`` = 1 − E_lep/E_ν.
    ``n_*`` are bucketed (0, 1, 2, 3 = more than two); ``n_*_raw`` are the raw multiplicities
    of final-state primaries above the detector's visibility thresholds.
    """

    flavour: int = -1
    interaction: int = -1
    is_antinu: int = -1
    n_proton: int = -1
    n_charged_pion: int = -1
    n_neutral_pion: int = -1
    n_neutron: int = -1
    n_proton_raw: int = -1
    n_charged_pion_raw: int = -1
    n_neutral_pion_raw: int = -1
    n_neutron_raw: int = -1
    mode: int = -1
    nu_pdg: int = 0
    nu_energy: float = float("nan")
    lep_energy: float = float("nan")
    y: float = float("nan")
    vtx_x: float = float("nan")
    vtx_y: float = float("nan")
    vtx_z: float = float("nan")

    @classmethod
    def columns(cls) -> dict[str, np.dtype]:
        """Column name → dtype for the ``/events`` table."""
        return {f.name: np.dtype(np.float64 if f.type in ("float", float) else np.int32)
                for f in dataclasses.fields(cls)}

    def labels(self) -> dict[str, int]:
        """The classification labels of :data:`CLASS_LABELS`."""
        return {k: int(getattr(self, k)) for k in CLASS_LABELS}


#: Hit columns: name → (dtype, unit, required). Truth columns are optional, and so is ``plane``
#: (segmented detectors only: there ``wire`` is the cell number within the plane).
HIT_COLUMNS: dict[str, tuple[np.dtype, str, bool]] = {
    "view": (np.dtype(np.int8), "plane/view id", True),
    "wire": (np.dtype(np.int32), "wire or cell number", True),
    "time": (np.dtype(np.float32), "tick (LArTPC) or ns", True),
    "charge": (np.dtype(np.float32), "ADC·tick (LArTPC) or PE", True),
    "width": (np.dtype(np.float32), "rms in time units", True),
    "plane": (np.dtype(np.int32), "plane number, segmented detectors", False),
    "x": (np.dtype(np.float32), "cm (truth)", False),
    "y": (np.dtype(np.float32), "cm (truth)", False),
    "z": (np.dtype(np.float32), "cm (truth)", False),
    "particle": (np.dtype(np.int32), "truth particle index (−1 noise)", False),
    "energy": (np.dtype(np.float32), "MeV deposited (truth)", False),
}

#: Particle-table columns: name → (dtype, unit). One row per tracked particle.
PARTICLE_COLUMNS: dict[str, tuple[np.dtype, str]] = {
    "pdg": (np.dtype(np.int32), "PDG code"),
    "parent": (np.dtype(np.int32), "row of the parent in this event (−1 primary)"),
    "process": (np.dtype(np.int8), "creation process code (see Process)"),
    "start_x": (np.dtype(np.float32), "cm"), "start_y": (np.dtype(np.float32), "cm"),
    "start_z": (np.dtype(np.float32), "cm"),
    "end_x": (np.dtype(np.float32), "cm"), "end_y": (np.dtype(np.float32), "cm"),
    "end_z": (np.dtype(np.float32), "cm"),
    "px": (np.dtype(np.float32), "GeV/c"), "py": (np.dtype(np.float32), "GeV/c"),
    "pz": (np.dtype(np.float32), "GeV/c"),
    "energy": (np.dtype(np.float32), "total energy, GeV"),
}


class Process(enum.IntEnum):
    """How a particle-table entry was created."""

    PRIMARY = 0
    DECAY = 1
    HADRONIC = 2
    EM = 3
    DELTA = 4
    CAPTURE = 5


def _empty(columns: dict) -> dict[str, np.ndarray]:
    return {k: np.zeros(0, dtype=v[0]) for k, v in columns.items()}


@dataclass
class Hits:
    """Columnar hits of one event: ``columns[name]`` is a 1-D array, all of equal length."""

    columns: dict[str, np.ndarray] = field(default_factory=lambda: {
        k: np.zeros(0, v[0]) for k, v in HIT_COLUMNS.items() if v[2]})

    def __post_init__(self):
        n = {len(v) for v in self.columns.values()}
        if len(n) > 1:
            raise ValueError(f"hit columns of unequal length: "
                             f"{ {k: len(v) for k, v in self.columns.items()} }")
        missing = [k for k, v in HIT_COLUMNS.items() if v[2] and k not in self.columns]
        if missing:
            raise ValueError(f"hits lack required column(s) {missing}")

    def __len__(self) -> int:
        return len(self.columns["wire"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def select(self, mask) -> "Hits":
        """A new Hits with the rows where ``mask`` is true (or the given indices)."""
        return Hits({k: v[mask] for k, v in self.columns.items()})


@dataclass
class Particles:
    """Truth particle table of one event (columns of :data:`PARTICLE_COLUMNS`)."""

    columns: dict[str, np.ndarray] = field(default_factory=lambda: _empty(PARTICLE_COLUMNS))

    def __len__(self) -> int:
        return len(self.columns["pdg"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]


@dataclass
class Event:
    """One detector event: id (run, subrun, event), truth, hits and optional particles."""

    event_id: tuple[int, int, int]
    truth: Truth
    hits: Hits
    particles: Particles | None = None

    @property
    def n_hits(self) -> int:
        return len(self.hits)
