"""Shared fixtures: small synthetic events so io/graph tests need no simulator."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest

from gnnu.detectors import load_detector
from gnnu.io.hitfile import seal
from gnnu.events import HIT_COLUMNS, PARTICLE_COLUMNS, Event, Hits, Particles, Truth, bucket_count

REPO = Path(__file__).resolve().parent.parent
DUNE_CVN_SAMPLE = REPO.parent / "shared" / "data" / "dune-cvn-sample"


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child that a test will Ctrl-C: SIGINT back to its default, as in a
    terminal's foreground job. A test runner started in the background of a non-interactive
    shell (``pytest &``, nohup, some CI runners) ignores SIGINT, its children inherit the
    SIG_IGN across exec, and Python then installs no KeyboardInterrupt handler at all."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def dune():
    return load_detector("dune")


def make_event(i: int, n_hits: int = 50, seed: int = 0, particles: bool = True, run: int = 1) -> Event:
    """A synthetic event with every hit and truth column filled (deterministic in i, seed); its
    id is (run, 0, i)."""
    rng = np.random.default_rng([seed, i])
    cols = {}
    for name, (dtype, _, _) in HIT_COLUMNS.items():
        if name == "view":
            cols[name] = rng.integers(0, 3, n_hits).astype(dtype)
        elif name in ("wire", "particle"):
            cols[name] = rng.integers(0, 500, n_hits).astype(dtype)
        else:
            cols[name] = rng.uniform(0, 100, n_hits).astype(dtype)
    n = rng.integers(0, 5, 4)
    truth = Truth(flavour=i % 4, interaction=int(rng.integers(4)), is_antinu=i % 2,
                  n_proton=bucket_count(n[0]), n_charged_pion=bucket_count(n[1]),
                  n_neutral_pion=bucket_count(n[2]), n_neutron=bucket_count(n[3]),
                  n_proton_raw=int(n[0]), n_charged_pion_raw=int(n[1]),
                  n_neutral_pion_raw=int(n[2]), n_neutron_raw=int(n[3]), mode=0, nu_pdg=14,
                  nu_energy=float(rng.uniform(0.5, 10)), lep_energy=1.0, y=0.3,
                  vtx_x=10.0, vtx_y=0.0, vtx_z=100.0)
    parts = None
    if particles:
        m = int(rng.integers(1, 6))
        parts = Particles({k: rng.uniform(-1, 1, m).astype(d) for k, (d, _) in PARTICLE_COLUMNS.items()})
    return Event((run, 0, i), truth, Hits(cols), parts)


@contextmanager
def edited_hit_file(path):
    """Open a written hit file with h5py for editing, then seal it again
    (:func:`gnnu.io.hitfile.seal`): a well-formed file holding a wrong value, as another tool
    could write it — what the reader's own checks must catch (an edit without resealing is
    refused by the seal check alone)."""
    with h5py.File(path, "a") as f:
        yield f
    seal(path)


#: The most a whole run holds at once under pytest's temporary folder (1.7 GB measured at 6b60cbd,
#: with pyproject.toml's retention: a passed test's folder is removed when it ends).
RUN_PEAK_TMP_GB = 1.7


def _tmp_space(config) -> tuple[str, bool]:
    """The line saying the temporary folder's free space, and whether a run may not fit there."""
    import shutil
    import tempfile

    base = Path(config.option.basetemp or tempfile.gettempdir())
    free = shutil.disk_usage(base if base.exists() else base.parent).free / 1e9
    line = f"temporary folder {base}: {free:.1f} GB free (a full run needs ~{RUN_PEAK_TMP_GB} GB)"
    return line, free < RUN_PEAK_TMP_GB


def pytest_report_header(config):
    return _tmp_space(config)[0]


def pytest_sessionstart(session):
    """Say at the start, also under -q, where the temporary folder has too little space (CI's run
    26 failed late, on a disk filled by three kept runs, with 23 errors instead of one line)."""
    line, low = _tmp_space(session.config)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if low and reporter is not None:
        reporter.write_line(f"WARNING: {line}; tests writing there will fail with 'No space left on device'",
                            yellow=True, bold=True)


def pytest_terminal_summary(terminalreporter):
    """After the run: how many fuzz cases each reader got and how they ended (tests/fuzzlib.py)."""
    import sys

    fuzz = sys.modules.get("fuzzlib")
    if fuzz is not None and fuzz.TALLY:
        terminalreporter.write_sep("-", "fuzz cases per reader (issue #8)")
        for line in fuzz.summary_lines():
            terminalreporter.write_line(line)
