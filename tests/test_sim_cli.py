"""`gnnu-sim` (docs/design.md#command-line-contract): seeded, worker-independent, balanced, safe with outputs, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import h5py
import numpy as np
import pytest

from conftest import edited_hit_file
from gnnu.cli.sim import main
from gnnu.events import Flavour
from gnnu.io.hitfile import HitFile
from gnnu.sim.simulate import EnergyOption, SimRequest, iter_events, simulate_event

FOUR = [Flavour.NUMU_CC, Flavour.NUE_CC, Flavour.NUTAU_CC, Flavour.NC]


def _cli(*args, env=None):
    """Run gnnu-sim in a fresh interpreter (as a user would); returns the CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "gnnu.cli.sim", *map(str, args)],
                          capture_output=True, text=True, env=full_env, timeout=300)


def test_writes_balanced_file_with_ids_and_truth(tmp_path):
    out = tmp_path / "ev.h5"
    assert main(["--events", "12", "--seed", "7", "--out", str(out)]) == 0
    with HitFile(out) as f:
        assert len(f) == 12
        ids = f.event_ids()
        assert ids.tolist() == [[7, 0, i] for i in range(12)]
        truth = f.truth()
        assert Counter(truth["flavour"].tolist()) == {0: 3, 1: 3, 2: 3, 3: 3}
        ev = f[0]
        assert len(ev.hits) > 50 and len(ev.particles) >= 1
        assert set(ev.hits.columns) >= {"view", "wire", "time", "charge", "width", "x", "y", "z",
                                        "particle", "energy"}
        assert f.detector.name == "dune" and f.seed == 7
        assert f.generator["flavours"] == ["numu_cc", "nue_cc", "nutau_cc", "nc"]


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_same_seed_same_bytes_whatever_the_workers(tmp_path, compression):
    """Event i depends only on (seed, i): 1 and 2 workers (and different hash seeds) give identical
    files, with either chunk filter."""
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    common = ("--events", 10, "--seed", 3, "--compression", compression)
    r1 = _cli(*common, "--workers", 1, "--out", a, env={"PYTHONHASHSEED": "1"})
    r2 = _cli(*common, "--workers", 2, "--out", b, env={"PYTHONHASHSEED": "2"})
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    assert a.read_bytes() == b.read_bytes()
    with h5py.File(a, "r") as f:
        assert f["hits/charge"].compression == (None if compression == "none" else "gzip")


def test_different_seed_different_events(dune):
    e1 = simulate_event(dune, 0, Flavour.NUMU_CC, seed=1)
    e2 = simulate_event(dune, 0, Flavour.NUMU_CC, seed=2)
    assert e1.truth.nu_energy != e2.truth.nu_energy


def test_flavour_subset_and_random_mix(dune):
    req = SimRequest(n_events=6, seed=1, flavours=(Flavour.NUE_CC,))
    assert {e.truth.flavour for e in iter_events(req, dune)} == {1}
    req = SimRequest(n_events=40, seed=1, flavours=tuple(FOUR), mix="random")
    counts = Counter(e.truth.flavour for e in iter_events(req, dune))
    assert set(counts) == {0, 1, 2, 3} and max(counts.values()) > 10  # drawn, not round-robin


def test_energy_options(dune):
    ev = simulate_event(dune, 0, Flavour.NUMU_CC, seed=1, energy=EnergyOption.parse("2.5"))
    assert ev.truth.nu_energy == pytest.approx(2.5)
    ev = simulate_event(dune, 1, Flavour.NC, seed=1, energy=EnergyOption.parse("1:2"))
    assert 1 <= ev.truth.nu_energy <= 2


def test_refuses_overwrite_then_force(tmp_path, capsys):
    out = tmp_path / "ev.h5"
    out.write_bytes(b"precious")
    assert main(["--events", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ev.h5" in err[0] and "--force" in err[0]
    assert out.read_bytes() == b"precious"
    assert main(["--events", "2", "--out", str(out), "--force"]) == 0
    assert len(HitFile(out)) == 2


def test_out_in_a_missing_directory_is_made_or_refused_clearly(tmp_path, capsys):
    """--out under missing directories creates them; under a file it is one clear error."""
    out = tmp_path / "run" / "sim" / "ev.h5"
    assert main(["--events", "2", "--out", str(out)]) == 0
    assert len(HitFile(out)) == 2
    blocker = tmp_path / "plain-file"
    blocker.write_bytes(b"x")
    capsys.readouterr()
    assert main(["--events", "2", "--out", str(blocker / "ev.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot create directory" in err[0] and "plain-file" in err[0]
    assert blocker.read_bytes() == b"x"


@pytest.mark.parametrize("args, message", [
    (["--flavours", "numu_cc,wimp"], "unknown flavour 'wimp'"),
    (["--detector", "icecube"], "unknown detector 'icecube'"),
    (["--energy", "-1"], "invalid energy option"),
    (["--workers", "0"], "--workers must be"),
])
def test_bad_arguments_one_line_no_traceback(tmp_path, args, message):
    r = _cli("--events", 2, "--out", tmp_path / "x.h5", *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "x.h5").exists()


def test_display_png(tmp_path):
    png = tmp_path / "d.png"
    assert main(["--events", "4", "--out", str(tmp_path / "e.h5"), "--display", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_inspect_good_and_corrupt(tmp_path, capsys):
    out = tmp_path / "e.h5"
    main(["--events", "4", "--out", str(out)])
    capsys.readouterr()
    assert main(["--inspect", str(out)]) == 0
    assert "4 events" in capsys.readouterr().out
    with edited_hit_file(out) as f:
        f["hits/charge"][5] = np.nan
    assert main(["--inspect", str(out)]) == 2
    err = capsys.readouterr().err
    assert "e.h5: event 0" in err and "non-finite hit charge" in err
