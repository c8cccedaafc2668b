"""DUNE CVN's released pixel maps (docs/design.md#dune-like-lartpc): one node per non-zero pixel.

Layout of a source directory::

    eventN.gz            zlib-compressed bytes of a uint8 array (3, 500, 500): views U, V, Z;
                         axis 1 = wire (one wire per column), axis 2 = time bin (3200 ticks in
                         500 bins = 6.4 ticks); value = charge scaled to 0–255 (saturating)
    partition.p          pickle [ids, {id: [is_antinu, flavour, interaction, n_proton,
    (or partition_<flavour>.p, several are merged)
                         n_charged_pion, n_neutral_pion, n_neutron]}], −1 where undefined
    eventN.info          (other layout) one value a line, lines counted from 0: 0 interaction
                         code 0–15 (flavour = code // 4, interaction = code % 4), 1 ν energy (GeV),
                         2 lepton energy (GeV), 6 weight, 7 ν PDG code (CC only), 8–11 the numbers
                         of protons, charged pions, neutral pions, neutrons

Pickles are read only through :mod:`gnnu.io.safe_pickle`. An event's id is (run R, subrun 0,
event N) with R = :func:`source_run` of the directory's name (the first 31 bits of its sha256):
the release's per-flavour directories (``numu/``, ``nue/``, … each with its own event100.gz)
give every event of a dataset built from several of them a unique id that does not depend on the
order they are given in. A pickle id is matched to ``eventN.gz`` as the string ``"N"`` (as in the
release) or ``"eventN"``.

Each non-zero pixel becomes one hit (:func:`gnnu.pixelmap.pixels_to_hits`, the one
implementation of the reverse of rendering, re-exported here): ``view`` = map index, ``wire`` =
column (wire) index, ``time`` = time-bin index, ``charge`` = pixel value, ``width`` =
1/√12 bin (the rms of a charge spread uniformly over one bin). :class:`PixelMapGeometry` turns
(view, wire, time bin) into cm with the wire pitches, tick length and drift velocity of the
detector config (``dune`` by default) and the pixel-map preset that made the maps (``dune-cvn``);
graph configs with ``pixelize`` put simulated events into the same representation.

Simplifications and conventions (documented, deliberate):

- A pixel is not a reconstructed hit: neighbouring pixels of one track are separate nodes and the
  time resolution is a whole bin (6.4 ticks ≈ 0.51 cm of drift); the uint8 charge saturates at 255.
- The map's wire and time axes start at the map's own crop origin (unknown in the release), so
  positions are relative to that origin, not detector coordinates.
- Labels from a pickle carry no energies: ``nu_energy``/``lep_energy``/``y`` stay NaN and the raw
  counts −1; ``nu_pdg`` is derived from flavour and ``is_antinu`` for CC events (±14, ±12, ±16) and
  is 0 for NC. The release marks NC events' ``is_antinu`` and ``interaction`` −1 in its pickles.
- Labels from ``.info`` files: ``interaction`` = code % 4 for every code (NC too), ``is_antinu``
  from the sign of line 7 for CC events and −1 for NC (no usable code there), ``nu_pdg`` = line 7
  (CC) or 0 (NC), counts bucketed 0/1/2/>2 with the raw numbers kept, ``y`` = 1 − E_lep/E_ν;
  line 6 (weight) is not used.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..detectors import DetectorBase, WirePlanes, load_detector
from ..errors import ConfigError, InputError
from ..events import Event, Truth, bucket_count
from ..pixelmap import DUNE_CVN, PIXEL_WIDTH_BINS, get_preset, pixels_to_hits
from . import safe_pickle
from .base import EventReader, register_reader

#: Shape of one released pixel map: (views U/V/Z, wires, time bins).
MAP_SHAPE = DUNE_CVN.shape
#: Ticks per time bin of the released maps: 3200 ticks in 500 bins (docs/design.md#images).
TICKS_PER_BIN = DUNE_CVN.ticks_per_bin
#: Number of lines an ``eventN.info`` file must have (0–11 are used).
INFO_LINES = 12
#: Label order in the release's pickles.
LABEL_ORDER = ("is_antinu", "flavour", "interaction", "n_proton", "n_charged_pion",
               "n_neutral_pion", "n_neutron")
_LABEL_RANGE = {"is_antinu": (-1, 1), "flavour": (0, 3), "interaction": (-1, 3),
                "n_proton": (-1, 3), "n_charged_pion": (-1, 3), "n_neutral_pion": (-1, 3),
                "n_neutron": (-1, 3)}
#: |ν PDG code| of each CC flavour (0 CC νμ, 1 CC νe, 2 CC ντ).
CC_NU_PDG = (14, 12, 16)
_EVENT_FILE = re.compile(r"event(\d+)\.gz")


def source_run(path: str | os.PathLike) -> int:
    """The run number of the events of DUNE CVN directory ``path``: the first 4 bytes of
    sha256(directory name, UTF-8) read little-endian, top bit cleared (0 ≤ run < 2³¹). Depends on
    the name alone (not the parent directories, the order of sources or the files), so a
    directory keeps its run wherever it lies; two sources with one name get one run."""
    name = Path(path).resolve().name
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little") & 0x7FFFFFFF


@dataclass(frozen=True)
class PixelMapConfig:
    """Description of a pixel-map geometry (stored in manifests like a detector config)."""

    name: str
    kind: str
    ticks_per_bin: float
    shape: tuple[int, int, int]
    base: object                      # the config of the wire-plane detector the maps come from
    preset: str = DUNE_CVN.name


class PixelMapGeometry(DetectorBase):
    """Geometry of (view, wire, time bin) pixel maps cut from a LArTPC's wire planes (a
    :class:`~gnnu.detectors.Detector` of kind ``pixelmap``).

    ``hit_positions`` maps wire → wire × pitch of that view and time bin → bin × ticks_per_bin
    × tick length × drift velocity (DUNE: 0.4667/0.4667/0.479 cm and 6.4 × 0.5 µs × 0.16 cm/µs =
    0.512 cm), all from the detector config ``detector`` (a name, a YAML path or a LArTPC
    geometry object) and the wire-time pixel-map ``preset`` that made the maps (its ticks per
    bin and map shape; one wire per column).
    """

    kind = "pixelmap"
    time_unit = "time bin"
    charge_unit = "ADC (uint8 scale)"

    def __init__(self, detector="dune", preset: str = DUNE_CVN.name):
        base = load_detector(detector) if isinstance(detector, (str, os.PathLike)) else detector
        p = get_preset(preset)
        if isinstance(base, PixelMapGeometry):
            raise ConfigError(f"pixel maps '{p.name}' of '{base.name}': the source is pixel maps "
                              "already")
        if not isinstance(base, WirePlanes) or p.layout != "wire-time" or p.wires_per_column != 1:
            raise ConfigError(f"pixel maps '{p.name}' of detector '{base.name}': pixel-map hits need a "
                              f"wire-plane (LArTPC) detector and a one-wire-per-column wire-time "
                              f"preset")
        if len(base.views) != len(p.views):
            raise ConfigError(f"detector '{base.name}' has {len(base.views)} views, pixel maps "
                              f"'{p.name}' have {len(p.views)}")
        self.base = base
        self.name = f"{base.name}-pixelmap"
        self.views = base.views
        self.preset = p
        self.ticks_per_bin = float(p.ticks_per_bin)
        self.shape = p.shape
        #: Wire pitch of each view, cm.
        self.pitch_cm = np.asarray(base.wire_pitch_cm, np.float32)
        #: Drift distance per time bin, cm.
        self.cm_per_bin = base.drift_cm(self.ticks_per_bin)
        self.config = PixelMapConfig(self.name, self.kind, self.ticks_per_bin, self.shape,
                                     base.config, p.name)

    def hit_positions(self, view, wire, time) -> np.ndarray:
        """2-D pixel coordinates in cm: (wire × pitch[view], time bin × cm per bin) → [N, 2]."""
        view = np.asarray(view, np.int64)
        return np.stack([np.asarray(wire, np.float32) * self.pitch_cm[view],
                         np.asarray(time, np.float32) * np.float32(self.cm_per_bin)], axis=1)


def _decompress_map(data: bytes, expected: int) -> bytes:
    """Inflate ``data`` to exactly ``expected`` bytes (never more: no decompression bombs)."""
    d = zlib.decompressobj()
    raw = d.decompress(data, expected + 1)
    if len(raw) > expected or d.unconsumed_tail:
        raise ValueError(f"decompresses to more than {expected} bytes")
    if not d.eof:
        raise ValueError(f"truncated zlib stream ({len(raw)} of {expected} bytes)")
    if d.unused_data:
        raise zlib.error(f"{len(d.unused_data)} stray bytes after the end of the stream")
    if len(raw) != expected:
        raise ValueError(f"decompresses to {len(raw)} bytes, expected {expected}")
    return raw


@register_reader("dune-cvn")
class DuneCVNReader(EventReader):
    """Reader of a directory of DUNE CVN pixel maps (``eventN.gz`` + ``partition.p`` or ``.info``).

    ``truth``: ``"auto"`` (a partition pickle if there is one, else ``.info`` files),
    ``"partition"``, ``"info"`` or ``"none"`` (no labels: every event's truth undefined).
    ``require_truth=False``: with ``"auto"``, a directory holding only ``eventN.gz`` files (no
    pickle, no ``.info``) is read without labels (``has_truth`` False) instead of failing. ``detector``: the detector config giving pitches, tick and
    drift velocity (see :class:`PixelMapGeometry`). Events are ordered by N.
    """

    def __init__(self, path: str | os.PathLike, truth: str = "auto",
                 detector: str | os.PathLike = "dune", require_truth: bool = True):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError("directory not found", self.path)
        if not self.path.is_dir():
            raise InputError("not a directory (a DUNE CVN source is a directory of eventN.gz "
                             "files)", self.path)
        if truth not in ("auto", "partition", "info", "none"):
            raise ConfigError(f"truth must be 'auto', 'partition', 'info' or 'none', not {truth!r}")
        found = sorted((int(m.group(1)), p) for p in self.path.iterdir()
                       if (m := _EVENT_FILE.fullmatch(p.name)))
        if not found:
            raise InputError("no eventN.gz pixel maps in directory", self.path)
        self._numbers = np.array([n for n, _ in found], np.int64)
        self._files = [p for _, p in found]
        #: Run number of every event id (:func:`source_run` of the directory name).
        self.run = source_run(self.path)
        self.detector = PixelMapGeometry(detector)
        pickles = self._pickles()
        if truth == "auto":
            truth = "partition" if pickles else "info"
            if (truth == "info" and not require_truth
                    and not any(p.with_suffix(".info").exists() for p in self._files)):
                truth = "none"                # only eventN.gz: events without labels
        self.has_truth = truth != "none"
        if truth == "partition" and not pickles:
            raise InputError("no partition.p or partition_<flavour>.p with the labels", self.path)
        self.truth_source = truth
        self._labels = self._load_labels(pickles) if truth == "partition" else None

    # -- truth -----------------------------------------------------------------------------
    def _pickles(self) -> list[Path]:
        single = self.path / "partition.p"
        if single.exists():
            return [single]
        return sorted(self.path.glob("partition_*.p"))

    def _load_labels(self, pickles: list[Path]) -> dict[str, tuple[int, ...]]:
        labels: dict[str, tuple[int, ...]] = {}
        for p in pickles:
            obj = safe_pickle.load(p)
            if not (isinstance(obj, (list, tuple)) and len(obj) == 2
                    and isinstance(obj[0], (list, tuple)) and isinstance(obj[1], dict)):
                raise InputError("expected a pickle of [ids, {id: labels}]", p)
            for key, value in obj[1].items():
                key = str(key)
                entry = self._check_label(p, key, value)
                if labels.get(key, entry) != entry:
                    raise InputError(f"id {key!r} has different labels in two partition files", p)
                labels[key] = entry
        return labels

    @staticmethod
    def _check_label(path: Path, key: str, value) -> tuple[int, ...]:
        if not (isinstance(value, (list, tuple)) and len(value) == len(LABEL_ORDER)
                and all(type(v) is int for v in value)):
            raise InputError(f"labels of id {key!r} must be {len(LABEL_ORDER)} integers "
                             f"({', '.join(LABEL_ORDER)}), got {value!r}", path)
        for name, v in zip(LABEL_ORDER, value):
            lo, hi = _LABEL_RANGE[name]
            if not lo <= v <= hi:
                raise InputError(f"id {key!r}: {name} = {v} outside [{lo}, {hi}]", path)
        return tuple(value)

    def _event_error(self, i: int, message: str, path: Path | None = None) -> InputError:
        return InputError(message, path or self._files[i], event=i, event_id=self._id(i))

    def _id(self, i: int) -> tuple[int, int, int]:
        return (self.run, 0, int(self._numbers[i]))

    def _truth_from_labels(self, i: int) -> Truth:
        n = int(self._numbers[i])
        entry = self._labels.get(str(n), self._labels.get(f"event{n}"))
        if entry is None:
            raise self._event_error(i, f"no labels for id '{n}' in the partition pickle")
        lab = dict(zip(LABEL_ORDER, entry))
        nu_pdg = 0
        if lab["flavour"] < 3 and lab["is_antinu"] >= 0:
            nu_pdg = CC_NU_PDG[lab["flavour"]] * (-1 if lab["is_antinu"] else 1)
        return Truth(nu_pdg=nu_pdg, **lab)

    def _truth_from_info(self, i: int) -> Truth:
        info = self._files[i].with_suffix(".info")
        try:
            lines = [line.strip() for line in info.read_text().splitlines()]
        except FileNotFoundError:
            raise self._event_error(i, "truth file not found", info) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise self._event_error(i, f"cannot read truth file: {exc}", info) from None
        if len(lines) < INFO_LINES:
            raise self._event_error(i, f"truth file has {len(lines)} values, expected at least "
                                       f"{INFO_LINES}", info)
        try:
            values = [float(v) for v in lines[:INFO_LINES]]
        except ValueError as exc:
            raise self._event_error(i, f"truth file holds a non-number: {exc}", info) from None
        code, nu_e, lep_e, pdg, counts = values[0], values[1], values[2], values[7], values[8:12]
        if not (code.is_integer() and 0 <= code <= 15):
            raise self._event_error(i, f"interaction code {values[0]} (line 0) not an integer "
                                       f"in 0–15", info)
        if not all(math.isfinite(c) and c.is_integer() and 0 <= c < 2**31 for c in counts):
            raise self._event_error(i, f"particle counts {counts} (lines 8–11) not non-negative "
                                       f"32-bit integers", info)
        if not (math.isfinite(nu_e) and math.isfinite(lep_e)):
            raise self._event_error(i, f"energies {nu_e}, {lep_e} (lines 1–2) not finite", info)
        flavour, interaction = int(code) // 4, int(code) % 4
        nu_pdg, is_antinu = 0, -1
        if flavour < 3:
            if not (pdg.is_integer() and abs(int(pdg)) == CC_NU_PDG[flavour]):
                raise self._event_error(i, f"ν PDG code {values[7]} (line 7) does not match CC "
                                           f"flavour {flavour} (expected ±{CC_NU_PDG[flavour]})",
                                        info)
            nu_pdg, is_antinu = int(pdg), int(pdg < 0)
        raw = [int(c) for c in counts]
        y = 1.0 - lep_e / nu_e if nu_e > 0 else float("nan")
        return Truth(flavour=flavour, interaction=interaction, is_antinu=is_antinu,
                     n_proton=bucket_count(raw[0]), n_charged_pion=bucket_count(raw[1]),
                     n_neutral_pion=bucket_count(raw[2]), n_neutron=bucket_count(raw[3]),
                     n_proton_raw=raw[0], n_charged_pion_raw=raw[1], n_neutral_pion_raw=raw[2],
                     n_neutron_raw=raw[3], nu_pdg=nu_pdg, nu_energy=nu_e, lep_energy=lep_e, y=y)

    def _truth(self, i: int) -> Truth:
        if self.truth_source == "none":
            return Truth()
        return self._truth_from_labels(i) if self._labels is not None else self._truth_from_info(i)

    # -- EventReader -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._files)

    def event_ids(self) -> np.ndarray:
        ids = np.zeros((len(self), 3), np.int64)
        ids[:, 0] = self.run
        ids[:, 2] = self._numbers
        return ids

    def read_maps(self, index: int) -> np.ndarray:
        """The pixel maps of event ``index``: uint8 array of shape :data:`MAP_SHAPE`."""
        i = self.check_index(index)
        path = self._files[i]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise self._event_error(i, f"cannot read pixel map: {exc.strerror}") from None
        expected = int(np.prod(self.detector.shape))
        try:
            raw = _decompress_map(data, expected)
        except zlib.error as exc:
            raise self._event_error(i, f"corrupt pixel map (not zlib data: {exc})") from None
        except ValueError as exc:
            raise self._event_error(i, f"pixel map {exc} = {self.detector.shape} uint8 "
                                       f"(wrong size or corrupt)") from None
        return np.frombuffer(raw, np.uint8).reshape(self.detector.shape)

    def read(self, index: int) -> Event:
        i = self.check_index(index)
        truth = self._truth(i)
        return Event(self._id(i), truth, pixels_to_hits(self.read_maps(i)))

    def __getitem__(self, index: int) -> Event:
        return self.read(index)

    def truth(self) -> dict[str, np.ndarray]:
        """Event-level truth of every event, without decompressing any map."""
        rows = [self._truth(i) for i in range(len(self))]
        return {k: np.array([getattr(t, k) for t in rows], dtype=d)
                for k, d in Truth.columns().items()}
