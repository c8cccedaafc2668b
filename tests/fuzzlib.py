"""Machinery shared by the fuzz tests (``tests/test_fuzz_*.py``, issue #8).

A fuzz case mutates a small, valid input and reads it back with the real reader. It may end in
exactly two ways:

- **rejected**: a :class:`gnnu.errors.GnnuError` whose message names the input (and, for an
  error raised while reading event *i*, names ``event i``; an error from ``read_range()`` names
  the first event that single reads reject, one from ``truth()`` an event they reject);
- **read**: every event either rejected as above, or equal to what the mutated input holds
  (the case's *oracle*, see :func:`run_case`).

Anything else — another exception type (a bare h5py / numpy / zlib traceback), a wrong silent
result, a hang (watchdog: :data:`CASE_TIMEOUT_S`, then the process is killed with a traceback)
or a crash — fails the test. Every case is tallied per reader and outcome; ``tests/conftest.py``
prints the tally at the end of the pytest run.

The hypothesis profile ``gnnu-fuzz`` is derandomised (the same cases on every run, so CI is
reproducible) with no example database and no deadline; ``GNNU_FUZZ_SCALE`` (default 1)
multiplies every test's number of cases for a longer local run.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import os
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
from hypothesis import HealthCheck, settings

from gnnu.errors import GnnuError

#: Seconds one case may run before the watchdog kills the process (a hang is a failure).
CASE_TIMEOUT_S = 120
SCALE = float(os.environ.get("GNNU_FUZZ_SCALE", "1"))

settings.register_profile(
    "gnnu-fuzz", derandomize=True, database=None, deadline=None, print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large, HealthCheck.filter_too_much])


def fuzz_settings(max_examples: int) -> settings:
    """The ``gnnu-fuzz`` profile with ``max_examples`` × GNNU_FUZZ_SCALE cases."""
    return settings(settings.get_profile("gnnu-fuzz"), max_examples=max(1, int(max_examples * SCALE)))


#: reader → mutation kind → outcome → number of cases.
TALLY: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))


def record_outcome(reader: str, kind: str, outcome: str) -> None:
    TALLY[reader][kind][outcome] += 1


OUTCOMES = ("rejected", "read: identical", "read: reflects mutation", "read: changed, undetectable")


def summary_lines() -> list[str]:
    """The per-reader table printed at the end of the run."""
    lines = [f"{'reader':<12} {'mutation':<22} {'cases':>6}  " + "  ".join(f"{o:>{len(o)}}" for o in OUTCOMES)]
    for reader in sorted(TALLY):
        total = Counter()
        for kind in sorted(TALLY[reader]):
            c = TALLY[reader][kind]
            total.update(c)
            lines.append(f"{reader:<12} {kind:<22} {sum(c.values()):>6}  "
                         + "  ".join(f"{c[o]:>{len(o)}}" for o in OUTCOMES))
        lines.append(f"{reader:<12} {'ALL':<22} {sum(total.values()):>6}  "
                     + "  ".join(f"{total[o]:>{len(o)}}" for o in OUTCOMES))
    return lines


@contextmanager
def watchdog(seconds: float = CASE_TIMEOUT_S):
    """Kill the process with a traceback of every thread if the block runs over ``seconds``
    (works inside C code, where a Python-level timeout would not fire)."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


# -- comparing what a reader returned ------------------------------------------------------------
def event_record(ev) -> dict:
    """One event as a flat dict {"event_id", "truth.<f>", "hits.<c>", "particles.<c>"}."""
    rec = {"event_id": tuple(int(v) for v in ev.event_id)}
    for k, v in dataclasses.asdict(ev.truth).items():
        rec[f"truth.{k}"] = v
    for k, v in ev.hits.columns.items():
        rec[f"hits.{k}"] = v
    if ev.particles is not None:
        for k, v in ev.particles.columns.items():
            rec[f"particles.{k}"] = v
    return rec


def _same_value(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and np.isnan(a):
        return np.isnan(b)
    return a == b


def difference(got: dict, want: dict) -> str | None:
    """None if the two event records are equal (dtypes, shapes, NaN-aware), else what differs."""
    if got.keys() != want.keys():
        return f"fields differ: extra {sorted(got.keys() - want.keys())}, missing {sorted(want.keys() - got.keys())}"
    for k in want:
        if not _same_value(got[k], want[k]):
            return f"{k}: got {got[k]!r}, expected {want[k]!r}"
    return None


# -- one case ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Reading:
    """What one case produced: an error at open, or per event a record or a rejection."""

    open_error: GnnuError | None = None
    events: list = dataclasses.field(default_factory=list)      # dict or GnnuError per event

    @property
    def records(self) -> dict[int, dict]:
        return {i: r for i, r in enumerate(self.events) if isinstance(r, dict)}

    @property
    def rejected(self) -> bool:
        return self.open_error is not None or any(isinstance(r, GnnuError) for r in self.events)


def _check_message(exc: GnnuError, where: Path, event: int | None) -> None:
    text = str(exc)
    assert str(where) in text, f"error does not name the input {where}: {text!r}"
    assert "\n" not in text, f"error is not one line: {text!r}"
    if event is not None:
        assert exc.event == event and f"event {event}" in text, \
            f"error while reading event {event} does not name it: {text!r}"


def read_source(opener: Callable, path: Path, where: Path | None = None) -> Reading:
    """Open ``path`` with ``opener`` and read every event one by one, then all at once, then the
    truth table; GnnuErrors are collected (and checked to name ``where`` and the event), any
    other exception propagates."""
    where = path if where is None else where
    out = Reading()
    with watchdog():
        try:
            reader = opener(path)
        except GnnuError as exc:
            _check_message(exc, where, None)
            out.open_error = exc
            return out
        with reader:
            n = len(reader)
            for i in range(n):
                try:
                    out.events.append(event_record(reader.read(i)))
                except GnnuError as exc:
                    _check_message(exc, where, i)
                    out.events.append(exc)
            bad = [i for i, r in enumerate(out.events) if isinstance(r, GnnuError)]
            try:
                block = reader.read_range(0, n)
            except GnnuError as exc:
                assert bad, f"read_range refused what single reads accepted: {exc}"
                # a block read stops at its first bad event and must name that one
                assert exc.event == bad[0], (f"read_range(0, {n}) error names event {exc.event}, "
                                             f"not the first one read() rejects ({bad[0]}): {exc}")
                _check_message(exc, where, bad[0])
            else:
                assert not out.rejected, "read_range accepted what single reads refused"
                for i, ev in enumerate(block):
                    assert difference(event_record(ev), out.events[i]) is None, \
                        f"read_range and read({i}) differ"
            try:
                truth = reader.truth()
            except GnnuError as exc:
                # truth() reads less than read(i), so it may stop at any event read(i) rejects
                assert exc.event in bad, (f"truth() error names event {exc.event}, not one "
                                          f"read() rejects ({bad}): {exc}")
                _check_message(exc, where, exc.event)
            else:
                for i, rec in out.records.items():
                    for k, col in truth.items():
                        assert _same_value(col[i].item(), rec[f"truth.{k}"]), \
                            f"truth()[{k!r}][{i}] = {col[i]!r} differs from read({i})"
    return out


def judge(reader: str, kind: str, reading: Reading, expected: list[dict] | None,
          reference: list[dict] | None = None, must_reject: bool = False,
          plausible: Callable[[dict], None] | None = None) -> str:
    """Check one case against its oracle, tally it and return the outcome.

    ``expected``: the records the mutated input holds (None: unknown, only with
    ``plausible``); an accepted event must equal its expected record, and an event whose
    expected record is None must be rejected. ``reference``: the
    unmutated records — an accepted case whose ``expected`` differs from them counts as "reflects
    mutation" (the reader returned exactly the changed values). ``must_reject``: the input is
    invalid, some error is required. ``plausible``: for formats without checksums, an accepted
    record that differs from ``expected`` must pass this check (an AssertionError otherwise) and
    counts as "changed, undetectable".
    """
    must_reject = must_reject or (expected is not None and any(e is None for e in expected))
    if must_reject:
        assert reading.rejected, "invalid input was read without any error"
    outcome = "rejected" if reading.rejected else "read: identical"
    if outcome == "read: identical" and reference is not None and expected is not None and (
            len(expected) != len(reference)
            or any(difference(a, b) for a, b in zip(expected, reference))):
        outcome = "read: reflects mutation"
    for i, rec in reading.records.items():
        if expected is None:
            diff = "unknown"
        elif len(reading.events) != len(expected):
            diff = f"{len(reading.events)} events, expected {len(expected)}"
        elif expected[i] is None:
            raise AssertionError(f"event {i} is invalid but was read without error")
        else:
            diff = difference(rec, expected[i])
        if diff is None:
            continue
        assert plausible is not None, f"event {i}: wrong silent result: {diff}"
        plausible(rec)
        outcome = "read: changed, undetectable"
    record_outcome(reader, kind, outcome)
    return outcome


class Base:
    """A fuzz test's starting point: a work directory, the valid input, its bytes (for files)
    and its reference reading; with a short repr, so hypothesis reports stay readable."""

    def __init__(self, root: Path, path: Path, data: bytes, reference: list[dict]):
        self.root, self.path, self.data, self.reference = root, path, data, reference

    def __repr__(self) -> str:
        return f"Base({self.path})"


# -- byte-level mutations ------------------------------------------------------------------------
def flip_bits(data: bytes, flips) -> bytes:
    """``data`` with bit ``b`` of byte ``p`` inverted for each (p, b) in ``flips`` (p taken
    modulo the length)."""
    out = bytearray(data)
    for p, b in flips:
        out[p % len(out)] ^= 1 << b
    return bytes(out)


def splat(data: bytes, start: int, chunk: bytes) -> bytes:
    """``data`` with ``chunk`` written over it from ``start`` (modulo the length)."""
    start %= len(data)
    out = bytearray(data)
    out[start:start + len(chunk)] = chunk[: len(data) - start]
    return bytes(out)
