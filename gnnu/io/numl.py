"""NuML HDF5 event files, as written by LArSoft's HDF5Maker and read by NuGraph / pynuml.

Layout (checked against nugraph/numl ``numl/NeutrinoML/HDF5Maker_module.cc``, the writer, and
nugraph/pynuml ``pynuml/io/file.py`` / ``pynuml/process/hitgraph.py``, the reader)::

    /event_table/      event_id (n, 3) = (run, subrun, event); with neutrino truth also
                       is_cc, nu_pdg, nu_energy, lep_energy (GeV), nu_dir (n, 3); newer files
                       nu_vtx / nu_vtx_corr (n, 3, cm)
    /hit_table/        event_id, hit_id, integral, rms, tpc and one generation of position columns:
                         global_plane, global_wire, global_time   (before 2024; with local_*)
                         local_plane, local_wire, local_time     (MicroBooNE open data)
                         view, proj, drift (cm) next to plane, wire, time   (since 2025)
    /particle_table/   event_id, g4_id, type (older: g4_pdg), parent_id (0 = primary),
                       momentum (GeV/c), start_position / end_position (n, 3, cm),
                       start_process / end_process (strings); ICARUS files add from_nu
    /edep_table/       event_id, hit_id, g4_id, energy (MeV; older energy_fraction),
                       x_position, y_position, z_position (cm)
    /spacepoint_table/ (not read)

Every column is a 2-D dataset (n_rows, k): k = 1 for scalars, 3 for ``event_id``. Rows of each
table are grouped by event, in event-table order. ph5concat adds the index datasets
``<table>/event_id.seq_cnt`` — [m, 2] = (event sequence number, row count), one row per event that
has rows in the table, sequence numbers ascending (events without rows are absent) — and
``<table>/event_id.seq`` — per row, the event's sequence number (pynuml reads the first and falls
back on the second). A file straight from HDF5Maker has neither; its rows are then matched to
events by their ``event_id``. The event's sequence number is its row in ``event_table``.

Mapping to gnnu (:mod:`gnnu.events`):

- Hits: ``charge`` = integral (ADC·tick), ``width`` = rms (ticks). Generation ``proj``
  (view/proj/drift, preferred when present): ``view`` = view, ``wire`` = rint(proj / pitch[view]),
  ``time`` = drift / (tick × drift velocity), so the detector's ``hit_positions`` returns
  (proj, drift) in cm up to a rounding of proj to the pitch grid. Generations ``global`` /
  ``local``: ``view`` = plane, ``wire`` = wire, ``time`` = time (ticks), positions wire × pitch and
  time × tick × drift velocity. Pitches, tick and velocity come from the detector config selected
  by the reader option ``detector`` (default ``dune``; any name or YAML path accepted by
  :func:`gnnu.detectors.load_detector`): pick the detector the file was made with.
- Hit truth from ``edep_table`` (when present): ``energy`` = sum of deposits (MeV), ``x, y, z`` =
  energy-weighted deposit position (cm, NaN without deposits), ``particle`` = row, in the event's
  particle table, of the particle that deposited most (−1: none, or not in the table).
- Event truth (docs/design.md#labels): ``flavour`` from is_cc and |nu_pdg| (14 → CC νμ, 12 → CC νe,
  16 → CC ντ, NC → 3, CC with another code → −1), ``is_antinu`` from the sign of nu_pdg,
  ``nu_energy``/``lep_energy`` (GeV), ``y`` = 1 − E_lep/E_ν, vertex from nu_vtx (else nu_vtx_corr).
  ``interaction`` and ``mode`` are −1 (NuML stores no interaction mode). Counts: primaries
  (parent_id 0, and from_nu ≠ 0 where that column exists) of |PDG| 2212, 211, 111, 2112 whose
  kinetic energy √(p² + m²) − m is at least the detector's visibility threshold; −1 without a
  particle table.
- Particles (``Event.particles``): pdg, parent (row in the event, −1 for primaries), process
  (start_process mapped to :class:`gnnu.events.Process`), start/end position, ``energy`` =
  √(p² + m²) (NaN for species without a tabulated mass).

Simplifications (documented, deliberate):

- HDF5Maker stores only particles that left energy in a hit and their ancestors, so a primary
  that made no hits (often a neutron) is missing: counts are lower bounds of the true
  multiplicities. ``px, py, pz`` are NaN (the table stores |p| only).
- Files made with HDF5Maker's ``UseMap`` option store energy *fractions* in ``energy`` and NaN
  positions; they are read as they are.
- Only the first three ``event_id`` components are used (ICARUS files append cryostat and beam).
- Spacepoints, optical tables and ``nu_dir`` are not read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..detectors import load_detector
from ..errors import ConfigError, InputError, SchemaError
from ..events import Event, Hits, Particles, Process, Truth, bucket_count
from ..sim.pdg import MASS_GEV
from .base import (HDF5_ERRORS, EventReader, cast_column, first_bad_event, hdf5_column, hdf5_group,
                   open_hdf5, register_reader)

#: Hit position columns (view, wire-like, time-like) of each NuML generation, preferred first.
GENERATIONS = {
    "proj": ("view", "proj", "drift"),
    "global": ("global_plane", "global_wire", "global_time"),
    "local": ("local_plane", "local_wire", "local_time"),
}
SEQ_CNT = "event_id.seq_cnt"
SEQ = "event_id.seq"
#: |PDG| counted in each count label (docs/design.md#labels).
COUNT_PDG = {"n_proton": 2212, "n_charged_pion": 211, "n_neutral_pion": 111, "n_neutron": 2112}
_VISIBILITY_FIELD = {"n_proton": "proton_ke_mev", "n_charged_pion": "charged_pion_ke_mev",
                     "n_neutral_pion": "neutral_pion_ke_mev", "n_neutron": "neutron_ke_mev"}
_EM_PROCESSES = {"conv", "compt", "phot", "eBrem", "muBrems", "hBrems", "annihil", "muPairProd",
                 "hPairProd", "Rayl", "GammaToMuPair"}
_IONISATION = {"eIoni", "muIoni", "hIoni", "ionIoni"}
#: Columns holding integers (HDF5Maker writes them as 32-bit ints; a value that does not fit in
#: int32 is damage, refused rather than wrapped around).
INTEGER_COLUMNS = {"event_id", "hit_id", "g4_id", "parent_id", "type", "g4_pdg", "is_cc",
                   "nu_pdg", "view", "plane", "global_plane", "local_plane", "from_nu", SEQ_CNT,
                   SEQ}
#: Columns of names (strings); every other column read holds numbers.
TEXT_COLUMNS = {"start_process", "end_process"}
#: Trailing shapes allowed per column: (n, 3) vectors, (n, ≥ 3) ids, (m, 2) seq_cnt, else (n, 1)
#: or (n,).
_VECTOR_COLUMNS = {"start_position", "end_position", "nu_vtx", "nu_vtx_corr", "nu_dir"}
_INT32 = np.iinfo(np.int32)


def process_code(name: str) -> int:
    """Geant4 creation process (``'primary'``, ``'Decay'``, ``'conv'`` …) → :class:`Process`."""
    if name == "primary":
        return int(Process.PRIMARY)
    if "CaptureAtRest" in name or name == "nCapture":
        return int(Process.CAPTURE)
    if "Decay" in name:
        return int(Process.DECAY)
    if name in _IONISATION:
        return int(Process.DELTA)
    if name in _EM_PROCESSES:
        return int(Process.EM)
    return int(Process.HADRONIC)


def _masses(pdg: np.ndarray) -> np.ndarray:
    """Mass (GeV/c²) of each |PDG| code from :data:`gnnu.sim.pdg.MASS_GEV`; NaN if not tabulated."""
    codes, inverse = np.unique(np.abs(pdg), return_inverse=True)
    table = np.array([MASS_GEV.get(int(c), np.nan) for c in codes], np.float64)
    return table[inverse.reshape(-1)]


def _lookup(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index of each query in ``keys`` (unique int64), −1 where absent."""
    if len(keys) == 0:
        return np.full(len(queries), -1, np.int64)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    pos = np.minimum(np.searchsorted(ordered, queries), len(keys) - 1)
    return np.where(ordered[pos] == queries, order[pos], -1)


def _duplicated(keys: np.ndarray) -> np.ndarray:
    """Boolean mask of the entries of ``keys`` that occur more than once."""
    ordered = np.sort(keys)
    return np.isin(keys, ordered[1:][ordered[1:] == ordered[:-1]])


def _argmax_per_group(group: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each distinct ``group`` value: (the value, index of its largest weight, first on ties).

    NaN weights are ignored; a group whose weights are all NaN is left out.
    """
    if len(group) == 0:
        return group, np.zeros(0, np.int64)
    order = np.argsort(group, kind="stable")
    g, w = group[order], weight[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    best = np.fmax.reduceat(w, starts)
    candidate = np.flatnonzero(w == np.repeat(best, np.diff(np.r_[starts, len(g)])))
    grp = np.searchsorted(starts, candidate, side="right") - 1
    first = np.r_[True, grp[1:] != grp[:-1]]
    return g[starts[grp[first]]], order[candidate[first]]


def _event_keys(event: np.ndarray, ident: np.ndarray) -> np.ndarray:
    """Combine (event row, 32-bit id) into one int64 key."""
    return (event.astype(np.int64) << 32) | (ident.astype(np.int64) & 0xFFFFFFFF)


def primary_counts(pdg, parent, momentum, from_nu, event, n_events: int, visibility) -> np.ndarray:
    """Raw multiplicities [n_events, 4] of visible final-state primaries (order of COUNT_PDG).

    Inputs are per particle-table row: ``pdg``, ``parent`` (0 = primary), ``momentum`` (GeV/c),
    ``from_nu`` (None, or nonzero for neutrino-induced particles) and ``event`` (row's event index
    in 0..n_events−1). A primary counts when its kinetic energy (MeV) is at least the threshold of
    ``visibility`` (:class:`gnnu.detectors.common.Visibility`).
    """
    primary = np.asarray(parent) == 0
    if from_nu is not None:
        primary &= np.asarray(from_nu) != 0
    apdg = np.abs(np.asarray(pdg))
    momentum = np.asarray(momentum, np.float64)
    out = np.zeros((n_events, len(COUNT_PDG)), np.int64)
    for j, (label, code) in enumerate(COUNT_PDG.items()):
        mass = MASS_GEV[code]
        ke_mev = (np.sqrt(momentum * momentum + mass * mass) - mass) * 1e3
        sel = primary & (apdg == code) & (ke_mev >= getattr(visibility, _VISIBILITY_FIELD[label]))
        out[:, j] = np.bincount(np.asarray(event)[sel], minlength=n_events)
    return out


@register_reader("numl")
class NuMLReader(EventReader):
    """Lazy reader of one NuML HDF5 file (see the module docstring for layout and mapping).

    ``detector``: detector config name or YAML path giving pitches, tick length, drift velocity
    and visibility thresholds. ``generation``: ``"auto"`` (view/proj/drift, else global_*, else
    local_*) or one of :data:`GENERATIONS` to force a set of hit columns.

    Bad input is one InputError naming the file (and event): every column used must be a
    dataset stored in the file (links are not followed) of numbers of the column's shape
    (integers, fitting in int32, for :data:`INTEGER_COLUMNS`); every table's rows must carry the
    id of the event the index gives them to; hit time, charge and width must be finite as
    float32, views inside the detector, wires inside int32.
    """

    format = "numl"

    def __init__(self, path: str | os.PathLike, detector: str | os.PathLike = "dune",
                 generation: str = "auto", require_truth: bool = True):
        self.path = Path(path)
        if generation != "auto" and generation not in GENERATIONS:
            raise ConfigError(f"unknown NuML hit-column generation '{generation}' "
                              f"(known: auto, {', '.join(GENERATIONS)})")
        self.detector = load_detector(detector)
        self._f = open_hdf5(self.path)
        try:
            self._open(generation)
        except InputError:
            self.close()
            raise
        except HDF5_ERRORS as exc:
            self.close()
            raise InputError(f"unreadable NuML file (corrupt or truncated?): "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                             self.path) from None

    # -- opening -----------------------------------------------------------------------------
    def _table(self, table: str):
        """The group ``/table``, checked to be a group stored in the file."""
        return hdf5_group(self._f, table, self.path)

    def _ds(self, table: str, name: str):
        """Dataset ``table/name``, checked: stored in the file, of numbers (integers for
        :data:`INTEGER_COLUMNS`) or, for :data:`TEXT_COLUMNS`, strings, and of the column's
        shape; SchemaError naming the file and the column otherwise."""
        key = (table, name)
        if key not in self._datasets:
            group = self._table(table)
            if name in TEXT_COLUMNS:
                import h5py

                link = group.get(name, getlink=True)
                ds = group.get(name) if isinstance(link, h5py.HardLink) else None
                if (not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "SOU"
                        or ds.ndim not in (1, 2) or ds.shape[1:] not in ((), (1,))):
                    raise SchemaError(f"{table}/{name} is not a column of names stored in the "
                                      f"file", self.path)
            else:
                if name == "event_id":
                    trailing = tuple((k,) for k in range(3, 17))
                elif name == SEQ_CNT:
                    trailing = ((2,),)
                elif name in _VECTOR_COLUMNS:
                    trailing = ((3,),)
                else:
                    trailing = ((1,), ())
                ds = hdf5_column(group, name, self.path,
                                 np.int32 if name in INTEGER_COLUMNS else np.float32, trailing)
            self._datasets[key] = ds
        return self._datasets[key]

    def _checked(self, table: str, name: str, arr: np.ndarray) -> np.ndarray:
        """``arr`` of ``table/name`` as read; InputError if an integer column's value does
        not fit in int32 (at open: no event to name)."""
        if name in INTEGER_COLUMNS and cast_column(arr, np.int32) is None:
            raise InputError(f"{table}/{name} holds values outside the range of int32 "
                             f"(corrupt file?)", self.path)
        return arr

    def _require(self, table: str, names) -> None:
        for name in names:
            if name not in self._table(table):
                raise SchemaError(f"missing column {table}/{name}", self.path)
            self._ds(table, name)

    def _whole(self, table: str, name: str) -> np.ndarray:
        arr = self._checked(table, name, self._ds(table, name)[...])
        return arr[:, 0] if arr.ndim == 2 and arr.shape[1] == 1 else arr

    def _rows(self, table: str, names) -> int:
        """Common row count of ``names`` in ``table``; InputError if the columns disagree."""
        lengths = {name: self._ds(table, name).shape[0] for name in names}
        if len(set(lengths.values())) > 1:
            raise InputError(f"columns of {table} have different lengths {lengths} "
                             f"(truncated file?)", self.path)
        return next(iter(lengths.values()))

    def _open(self, generation: str) -> None:
        self._datasets = {}
        for table in ("event_table", "hit_table"):
            if table not in self._f:
                raise SchemaError(f"missing group /{table} (not a NuML file?)", self.path)
            self._table(table)
        self._require("event_table", ["event_id"])
        ids = self._whole("event_table", "event_id")
        if ids.ndim != 2 or ids.shape[1] < 3:
            raise SchemaError(f"event_table/event_id has shape {ids.shape}, expected (n, 3)",
                              self.path)
        self._ids = ids[:, :3].astype(np.int64)
        self._pick_generation(generation)
        self._hit_cols = ["event_id", *self._gen_cols, "integral", "rms"]
        if "hit_id" in self._f["hit_table"]:
            self._hit_cols.append("hit_id")
        self._require("hit_table", self._hit_cols)
        self._index = {"hit_table": self._table_index("hit_table", self._hit_cols)}
        self._setup_particles()
        self._setup_edeps()
        self._event_truth = self._read_event_truth()
        self._counts_all = None
        self._n_views = len(self.detector.views)
        if self._gen == "proj":
            cfg = self.detector.config
            self._pitch = np.array([p.pitch_cm for p in cfg.planes], np.float64)
            self._cm_per_tick = cfg.tick_us * cfg.drift_velocity_cm_per_us

    def _pick_generation(self, generation: str) -> None:
        hit = self._table("hit_table")
        if generation == "auto":
            for name, cols in GENERATIONS.items():
                if any(c in hit for c in cols):
                    generation = name
                    break
            else:
                raise SchemaError("hit_table has no hit position columns (expected one of "
                                  + "; ".join(", ".join(c) for c in GENERATIONS.values()) + ")",
                                  self.path)
        self._gen = generation
        self._gen_cols = list(GENERATIONS[generation])

    def _setup_particles(self) -> None:
        self.has_particles = "particle_table" in self._f
        if not self.has_particles:
            return
        table = self._table("particle_table")
        pdg = next((c for c in ("type", "g4_pdg") if c in table), None)
        if pdg is None:
            raise SchemaError("missing column particle_table/type (or g4_pdg)", self.path)
        self._part_cols = {"pdg": pdg, "g4_id": "g4_id", "parent_id": "parent_id",
                           "momentum": "momentum"}
        for optional in ("start_process", "start_position", "end_position", "from_nu"):
            if optional in table:
                self._part_cols[optional] = optional
        self._require("particle_table", ["event_id", *self._part_cols.values()])
        self._index["particle_table"] = self._table_index(
            "particle_table", ["event_id", *self._part_cols.values()])

    def _setup_edeps(self) -> None:
        self.has_edeps = "edep_table" in self._f and "hit_id" in self._hit_cols
        if not self.has_edeps:
            return
        table = self._table("edep_table")
        weight = next((c for c in ("energy", "energy_fraction") if c in table), None)
        if weight is None:
            raise SchemaError("missing column edep_table/energy (or energy_fraction)", self.path)
        self._edep_cols = {"hit_id": "hit_id", "g4_id": "g4_id", "weight": weight}
        if all(f"{c}_position" in table for c in "xyz"):
            self._edep_cols.update({c: f"{c}_position" for c in "xyz"})
        self._require("edep_table", ["event_id", *self._edep_cols.values()])
        self._index["edep_table"] = self._table_index("edep_table",
                                                      ["event_id", *self._edep_cols.values()])

    def _table_index(self, table: str, columns) -> tuple[np.ndarray, np.ndarray]:
        """(offset, count) per event of ``table``'s rows, from seq_cnt, seq or event_id."""
        n_rows = self._rows(table, columns)
        n = len(self._ids)
        group = self._table(table)
        if SEQ_CNT in group:
            sc = self._whole(table, SEQ_CNT)
            if sc.ndim != 2 or sc.shape[1] != 2:
                raise InputError(f"{table}/{SEQ_CNT} has shape {sc.shape}, expected (m, 2)",
                                 self.path)
            seq, cnt = sc[:, 0].astype(np.int64), sc[:, 1].astype(np.int64)
            if (np.any(np.diff(seq) <= 0) or np.any(seq < 0) or np.any(seq >= n)
                    or np.any(cnt < 0) or cnt.sum() != n_rows):
                raise InputError(f"{table}/{SEQ_CNT} inconsistent with {n} events and {n_rows} "
                                 f"rows (corrupt or truncated file?)", self.path)
            count = np.zeros(n, np.int64)
            count[seq] = cnt
        elif SEQ in group:
            seq = self._whole(table, SEQ).reshape(-1).astype(np.int64)
            if (len(seq) != n_rows or np.any(np.diff(seq) < 0)
                    or (n_rows and (seq[0] < 0 or seq[-1] >= n))):
                raise InputError(f"{table}/{SEQ} inconsistent with {n} events and {n_rows} rows "
                                 f"(corrupt or truncated file?)", self.path)
            count = np.bincount(seq, minlength=n).astype(np.int64)
        else:
            count = self._count_by_event_id(table, n_rows)
        return np.cumsum(count) - count, count

    def _count_by_event_id(self, table: str, n_rows: int) -> np.ndarray:
        """Rows per event for a table without seq/seq_cnt: runs of equal event_id, in order."""
        n = len(self._ids)
        count = np.zeros(n, np.int64)
        if n_rows == 0:
            return count
        rows = self._whole(table, "event_id")[:, :3].astype(np.int64)
        starts = np.flatnonzero(np.r_[True, np.any(rows[1:] != rows[:-1], axis=1)])
        lengths = np.diff(np.r_[starts, n_rows])
        keys = np.concatenate([self._ids, rows[starts]])
        _, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        if len(np.unique(inverse[:n])) != n:
            raise InputError("event_table has duplicate event ids and no event_id.seq_cnt index",
                             self.path)
        event_of_key = np.full(len(keys), -1, np.int64)
        event_of_key[inverse[:n]] = np.arange(n)
        run_event = event_of_key[inverse[n:]]
        if np.any(run_event < 0):
            bad = tuple(int(v) for v in rows[starts[np.flatnonzero(run_event < 0)[0]]])
            raise InputError(f"{table} has rows for event id {bad}, which is not in event_table",
                             self.path)
        if np.any(np.diff(run_event) <= 0):
            raise InputError(f"{table} rows are not grouped in event_table order and the file "
                             f"has no {SEQ_CNT} / {SEQ} index", self.path)
        count[run_event] = lengths
        return count

    def _read_event_truth(self) -> dict[str, np.ndarray]:
        n = len(self._ids)
        out = {k: np.full(n, np.nan if d.kind == "f" else (0 if k == "nu_pdg" else -1), d)
               for k, d in Truth.columns().items()}
        ev = self._table("event_table")
        has = [k for k in ("is_cc", "nu_pdg") if k in ev]
        self.has_truth = bool(has)        # NuML truth is optional: a file without it has none
        if len(has) == 1:
            raise SchemaError(f"event_table has {has[0]} but not "
                              f"{({'is_cc', 'nu_pdg'} - set(has)).pop()}", self.path)
        if has:
            self._rows("event_table", ["event_id", "is_cc", "nu_pdg"])
            is_cc = self._whole("event_table", "is_cc").astype(bool)
            pdg = self._whole("event_table", "nu_pdg").astype(np.int64)
            apdg = np.abs(pdg)
            out["flavour"] = np.select([~is_cc, apdg == 14, apdg == 12, apdg == 16],
                                       [3, 0, 1, 2], -1).astype(np.int32)
            out["is_antinu"] = np.where(pdg > 0, 0, np.where(pdg < 0, 1, -1)).astype(np.int32)
            out["nu_pdg"] = pdg.astype(np.int32)
        for name in ("nu_energy", "lep_energy"):
            if name in ev:
                self._rows("event_table", ["event_id", name])
                out[name] = self._whole("event_table", name).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["y"] = np.where(out["nu_energy"] > 0, 1.0 - out["lep_energy"] / out["nu_energy"],
                                np.nan)
        vtx = next((k for k in ("nu_vtx", "nu_vtx_corr") if k in ev), None)
        if vtx is not None:
            self._rows("event_table", ["event_id", vtx])
            pos = self._whole("event_table", vtx)
            for j, c in enumerate("xyz"):
                out[f"vtx_{c}"] = pos[:, j].astype(np.float64)
        return out

    # -- reading -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def event_ids(self) -> np.ndarray:
        return self._ids.copy()

    def _error(self, message: str, i: int) -> InputError:
        return InputError(message, self.path, event=i, event_id=self._ids[i])

    def _block(self, table: str, columns: dict[str, str], start: int, stop: int):
        """Columns of ``table`` for events start..stop−1 and each row's event (0-based in block).

        Every row's ``event_id`` must be its event's (the index and the rows agree) and integer
        columns must fit in int32; InputError naming the first bad event otherwise."""
        offset, count = self._index[table]
        a, b = int(offset[start]), int(offset[stop - 1] + count[stop - 1])
        out = {}
        columns = {**columns, "event_id": "event_id"}
        try:
            for key, name in columns.items():
                arr = self._ds(table, name)[a:b]
                out[key] = arr[:, 0] if arr.ndim == 2 and arr.shape[1] == 1 else arr
        except HDF5_ERRORS as exc:
            raise self._error(f"cannot read {table} (corrupt or truncated file?): "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                              start) from None
        event = np.repeat(np.arange(stop - start), count[start:stop])
        for key, name in columns.items():
            if name in INTEGER_COLUMNS:
                values = out[key]
                ok = (values >= _INT32.min) & (values <= _INT32.max)
                self._check(ok if ok.ndim == 1 else ok.all(axis=tuple(range(1, ok.ndim))),
                            event, start,
                            lambda r, v=values, n=name: f"{table}/{n} = {v[r].tolist()} outside "
                                                        f"the range of int32 (corrupt file?)")
        expected = np.repeat(self._ids[start:stop], count[start:stop], axis=0)
        got = out["event_id"][:, :3]
        self._check(np.all(got == expected, axis=-1), event, start,
                    lambda r: f"{table} row carries event id {tuple(int(v) for v in got[r])} "
                              f"(index inconsistent with the rows: corrupt file?)")
        return out, event, offset[start:stop] - a

    def _check(self, ok: np.ndarray, event: np.ndarray, start: int, message) -> None:
        """InputError naming the first event with a row where ``ok`` is false."""
        if not ok.all():
            row = int(np.flatnonzero(~ok)[0])
            raise self._error(message(row), start + int(event[row]))

    def _hits(self, start: int, stop: int):
        cols, event, rel = self._block("hit_table", dict(zip(self._hit_cols, self._hit_cols)),
                                       start, stop)
        view_col, wire_col, time_col = self._gen_cols
        for name in (view_col, wire_col, time_col, "integral", "rms"):
            values = cols[name]
            self._check(np.isfinite(values), event, start,
                        lambda r, name=name, values=values: f"non-finite hit_table/{name} "
                                                            f"({values[r]})")
        view = cols[view_col].astype(np.int64)
        self._check((view >= 0) & (view < self._n_views), event, start,
                    lambda r: f"hit_table/{view_col} = {view[r]} outside the {self._n_views} "
                              f"views of detector '{self.detector.name}'")
        with np.errstate(over="ignore"):
            if self._gen == "proj":
                wire = np.rint(cols[wire_col] / self._pitch[view])
                time = cols[time_col] / self._cm_per_tick
            else:
                wire, time = np.rint(cols[wire_col].astype(np.float64)), cols[time_col]
            self._check((wire >= _INT32.min) & (wire <= _INT32.max), event, start,
                        lambda r: f"hit_table/{wire_col} = {cols[wire_col][r]} is not a wire "
                                  f"number (outside the range of int32)")
            hits = {"view": view.astype(np.int8), "wire": wire.astype(np.int32),
                    "time": time.astype(np.float32), "charge": cols["integral"].astype(np.float32),
                    "width": cols["rms"].astype(np.float32)}
        for name, key in ((time_col, "time"), ("integral", "charge"), ("rms", "width")):
            self._check(np.isfinite(hits[key]), event, start,
                        lambda r, n=name: f"hit_table/{n} = {cols[n][r]} overflows float32")
        hit_id = cols.get("hit_id")
        return hits, hit_id, event, rel

    def _particles(self, start: int, stop: int):
        cols, event, rel = self._block("particle_table", self._part_cols, start, stop)
        n = len(event)
        g4_keys = _event_keys(event, cols["g4_id"])
        self._check(~_duplicated(g4_keys), event, start,
                    lambda r: f"duplicate g4_id {int(cols['g4_id'][r])} in particle_table")
        parent = _lookup(g4_keys, _event_keys(event, cols["parent_id"]))
        parent = np.where(parent >= 0, parent - rel[event], -1)  # row within the event
        pdg = cols["pdg"].astype(np.int64)
        momentum = cols["momentum"].astype(np.float64)
        mass = _masses(pdg)
        table = {"pdg": pdg.astype(np.int32), "parent": parent.astype(np.int32),
                 "energy": np.sqrt(momentum * momentum + mass * mass).astype(np.float32)}
        if "start_process" in cols:
            names, inverse = np.unique(cols["start_process"], return_inverse=True)
            inverse = inverse.reshape(-1)
            codes, text = np.zeros(len(names), np.int8), np.ones(len(names), bool)
            for j, v in enumerate(names):
                try:
                    codes[j] = process_code(v.decode() if isinstance(v, bytes) else str(v))
                except UnicodeDecodeError:
                    text[j] = False
            self._check(text[inverse], event, start,
                        lambda r: f"particle_table/start_process = {cols['start_process'][r]!r} "
                                  f"is not text (corrupt file?)")
            table["process"] = codes[inverse]
        else:
            table["process"] = np.full(n, -1, np.int8)
        for end in ("start", "end"):
            pos = cols.get(f"{end}_position")
            for j, c in enumerate("xyz"):
                table[f"{end}_{c}"] = (pos[:, j].astype(np.float32) if pos is not None
                                       else np.full(n, np.nan, np.float32))
        for c in ("px", "py", "pz"):
            table[c] = np.full(n, np.nan, np.float32)
        visibility = self.detector.config.visibility
        counts = primary_counts(pdg, cols["parent_id"], momentum, cols.get("from_nu"), event,
                                stop - start, visibility)
        return table, g4_keys, counts, rel

    def _hit_truth(self, start: int, stop: int, hit_id, hit_event, g4_keys, part_rel):
        cols, event, _ = self._block("edep_table", self._edep_cols, start, stop)
        n_hits = len(hit_event)
        hit_keys = _event_keys(hit_event, hit_id)
        self._check(~_duplicated(hit_keys), hit_event, start,
                    lambda r: f"duplicate hit_id {int(hit_id[r])} in hit_table")
        row = _lookup(hit_keys, _event_keys(event, cols["hit_id"]))
        self._check(row >= 0, event, start,
                    lambda r: f"edep_table row refers to hit_id {int(cols['hit_id'][r])}, "
                              f"which is not in the event's hit_table")
        weight = cols["weight"].astype(np.float64)
        total = np.bincount(row, weights=weight, minlength=n_hits)
        truth = {}
        if self._edep_cols["weight"] == "energy":
            truth["energy"] = total.astype(np.float32)
        if "x" in cols:
            with np.errstate(divide="ignore", invalid="ignore"):
                for c in "xyz":
                    num = np.bincount(row, weights=weight * cols[c], minlength=n_hits)
                    truth[c] = np.where(total > 0, num / total, np.nan).astype(np.float32)
        if g4_keys is not None:
            particle = np.full(n_hits, -1, np.int64)
            hits_with, best = _argmax_per_group(row, weight)
            prow = _lookup(g4_keys, _event_keys(event[best], cols["g4_id"][best]))
            particle[hits_with] = np.where(prow >= 0, prow - part_rel[event[best]], -1)
            truth["particle"] = particle.astype(np.int32)
        return truth

    def read(self, index: int) -> Event:
        i = self.check_index(index)
        return self.read_range(i, i + 1)[0]

    def __getitem__(self, index: int) -> Event:
        return self.read(index)

    def read_range(self, start: int, stop: int) -> list[Event]:
        """Events ``start`` ≤ i < ``stop`` with one read per column and table; bad input raises
        the InputError of the first bad event, the one ``read`` raises for it."""
        if start >= stop:
            return []
        self.check_index(start)
        self.check_index(stop - 1)
        return first_bad_event(self._read_block, start, stop)

    def _read_block(self, start: int, stop: int) -> list[Event]:
        hits, hit_id, hit_event, hit_rel = self._hits(start, stop)
        parts = g4_keys = part_rel = counts = None
        if self.has_particles:
            parts, g4_keys, counts, part_rel = self._particles(start, stop)
        if self.has_edeps:
            hits.update(self._hit_truth(start, stop, hit_id, hit_event, g4_keys, part_rel))
        hit_count = self._index["hit_table"][1]
        part_count = self._index["particle_table"][1] if self.has_particles else None
        events = []
        for j, i in enumerate(range(start, stop)):
            lo, hi = hit_rel[j], hit_rel[j] + hit_count[i]
            particles = None
            truth = self._truth_row(i, None if counts is None else counts[j])
            if parts is not None:
                plo, phi = part_rel[j], part_rel[j] + part_count[i]
                particles = Particles({k: v[plo:phi] for k, v in parts.items()})
            events.append(Event(tuple(int(v) for v in self._ids[i]), truth,
                                Hits({k: v[lo:hi] for k, v in hits.items()}), particles))
        return events

    def _truth_row(self, i: int, raw_counts) -> Truth:
        values = {k: v[i].item() for k, v in self._event_truth.items()}
        if raw_counts is not None:
            for j, label in enumerate(COUNT_PDG):
                values[f"{label}_raw"] = int(raw_counts[j])
                values[label] = int(bucket_count(raw_counts[j]))
        return Truth(**values)

    def truth(self) -> dict[str, np.ndarray]:
        """Event-level truth of every event (counts from the whole particle table, read once);
        bad particle rows raise the InputError of the first event holding them."""
        out = {k: v.copy() for k, v in self._event_truth.items()}
        if self.has_particles:
            if self._counts_all is None:
                n = len(self)
                used = [k for k in ("pdg", "parent_id", "momentum", "from_nu")
                        if k in self._part_cols]
                failure = None
                try:
                    cols = {k: self._whole("particle_table", self._part_cols[k]) for k in used}
                except (InputError, *HDF5_ERRORS) as exc:
                    failure = exc
                if failure is not None:
                    # the error of the first event whose rows of these columns are bad, read
                    # alone (the one read() raises for it); a whole-table error only if none is
                    for i in np.flatnonzero(self._index["particle_table"][1]):
                        self._block("particle_table", {k: self._part_cols[k] for k in used},
                                    int(i), int(i) + 1)
                    if isinstance(failure, InputError):
                        raise failure
                    why = str(failure).splitlines()[0] if str(failure) else type(failure).__name__
                    raise InputError(f"cannot read particle_table (corrupt or truncated file?): "
                                     f"{why}", self.path)
                from_nu = cols.get("from_nu")
                event = np.repeat(np.arange(n), self._index["particle_table"][1])
                self._counts_all = primary_counts(cols["pdg"], cols["parent_id"], cols["momentum"],
                                                  from_nu, event, n,
                                                  self.detector.config.visibility)
            for j, label in enumerate(COUNT_PDG):
                out[f"{label}_raw"] = self._counts_all[:, j].astype(np.int32)
                out[label] = bucket_count(self._counts_all[:, j]).astype(np.int32)
        return out

    def close(self) -> None:
        if getattr(self, "_f", None) is not None:
            self._f.close()
            self._f = None
