"""Reliability II (issue 19): real full disks, concurrent runs, interrupts, unwritable outputs,
damaged datasets, resume surprises, unbounded inputs and progress in batch logs.

Full-disk and read-only tests mount a small tmpfs (they need root; elsewhere they skip and say
which fallback runs instead: the RLIMIT_FSIZE test, a real kernel refusal that needs no mount).
Concurrency tests run two real processes; interrupt tests send a real SIGINT.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from gnnu.atomic import AtomicFile, lock_path, output_error_message, output_lock
from conftest import sigint_as_in_a_terminal
from gnnu.errors import ConfigError, GnnuError, InputError, OutputBusyError
from test_build import graph_config
from test_train import TINY, make_dataset

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(Path(__file__).resolve().parents[1])] + [p for p in [os.environ.get("PYTHONPATH")] if p])}


def _script(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"console script {name} not installed in {BIN}")
    return str(path)


def cli(name: str, *args, timeout: float = 600, preexec_fn=None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """Run console script ``name`` in its own process; stdout and stderr captured."""
    return subprocess.run([_script(name), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**ENV, **(env or {})}, preexec_fn=preexec_fn)


def one_line(stderr: str) -> str:
    """The only line of ``stderr`` (no traceback)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and len(lines) == 1, stderr[-3000:]
    return lines[0]


def leftovers(directory: Path) -> list[str]:
    """Temporary and lock files under ``directory``."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if ".tmp-" in p.name or p.name.endswith(".lock"))


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- a real small file system -----------------------------------------------------------------------
@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """Mount a tmpfs of ``size`` at ``path`` (root only) for the block; unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the loop-free fallback is "
                    "test_file_size_limit_is_one_line (RLIMIT_FSIZE, a real EFBIG from the kernel)")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the loop-free fallback is "
                    "test_file_size_limit_is_one_line")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True, capture_output=True)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte (a ballast file); returns it."""
    ballast = directory / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 16, 512, 1):                      # down to the last byte
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return ballast


# -- shared data ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict:
    """A synthetic dataset (2 shards), a 1-epoch run of the tiny model on it and its test report."""
    from gnnu.cli import eval as eval_cli
    from gnnu.cli import train as train_cli
    from gnnu.graph.build import BuildOptions, build_dataset

    root = tmp_path_factory.mktemp("rel")
    data = make_dataset(root / "one", 300)
    two = root / "two"
    build_dataset(BuildOptions(inputs=(str(root / "one" / "events.h5"),), out=str(two),
                               graph=graph_config(root, shard_size=150)))
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "epochs": 1, "schedule": {"name": "none"}}))
    run = root / "run"
    assert train_cli.main(["--config", str(cfg), "--data", str(data), "--out", str(run),
                           "--device", "cpu", "--progress", "none"]) == 0
    report = run / "eval-test"
    assert eval_cli.main(["--checkpoint", str(run / "best.ckpt"), "--data", str(data),
                          "--out", str(report), "--device", "cpu", "--no-plots",
                          "--progress", "none"]) == 0
    return {"root": root, "data": data, "two": two, "config": cfg, "run": run, "report": report,
            "hits": root / "one" / "events.h5"}


# -- 1. full disk ---------------------------------------------------------------------------------
def test_output_error_lines_name_the_target_not_the_temporary():
    for code, words in ((errno.ENOSPC, "no space left on /d/out.h5"),
                        (errno.EROFS, "cannot write /d/out.h5: read-only file system"),
                        (errno.EACCES, "cannot write /d/out.h5: permission denied")):
        line = output_error_message(OSError(code, os.strerror(code), "/d/out.h5.tmp-123"))
        assert line.startswith(words) and ".tmp-" not in line
    assert output_error_message(OSError(errno.ENOENT, "x", "/d/f")) is None
    assert output_error_message(ValueError("x")) is None


def test_hdf5_on_a_full_disk_is_an_oserror_not_a_crash(tmp_path):
    """h5py writing into a full tmpfs through AtomicFile.open_hdf5: an OSError naming the target,
    no temporary file, and the process survives (through HDF5's own driver it segfaults)."""
    with tmpfs(tmp_path / "fs", "1m") as fs:
        out = AtomicFile(fs / "big.h5")
        with pytest.raises(OSError) as err:
            with out.open_hdf5() as f:
                ds = f.create_dataset("x", shape=(0,), maxshape=(None,), chunks=(65536,), dtype="f8")
                for _ in range(8):                       # 4 MB into 1 MB
                    ds.resize(ds.shape[0] + 65536, axis=0)
                    ds[-65536:] = np.random.default_rng(0).random(65536)
                    out.check()
            out.commit()
        out.discard()
        assert err.value.errno == errno.ENOSPC and err.value.filename == str(fs / "big.h5")
        assert os.listdir(fs) == []


def test_torch_save_on_a_full_disk_is_an_oserror_naming_the_target(tmp_path):
    """A checkpoint bigger than the free space (16 MB into a 4 MB tmpfs, as a ResNet18 run's on a
    full disk): torch's own writer says ``RuntimeError: unexpected pos`` with no errno, so the
    command lines printed a traceback; write_torch_atomic gives the OSError ENOSPC naming the
    target, keeps the previous file whole and leaves no temporary file."""
    import torch

    from gnnu.atomic import write_torch_atomic

    with tmpfs(tmp_path / "fs", "4m") as fs:
        target = write_torch_atomic(fs / "last.ckpt", {"step": 1})
        before = digest(target)
        with pytest.raises(OSError) as err:
            write_torch_atomic(target, {"step": 2, "weights": torch.zeros(4 << 20)})
        assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
        assert digest(target) == before and torch.load(target)["step"] == 1
        assert os.listdir(fs) == ["last.ckpt"]


def test_sim_on_a_full_disk_then_space_freed(tmp_path):
    """gnnu-sim into a 1 MB tmpfs: one line "no space left on OUT", exit 2, nothing left on the
    disk; once the disk is larger the same command writes a valid file."""
    from gnnu.io.hitfile import HitFile

    with tmpfs(tmp_path / "fs", "1m") as fs:
        out = fs / "ev.h5"
        done = cli("gnnu-sim", "--events", 12, "--seed", 3, "--out", out)
        line = one_line(done.stderr)
        assert done.returncode == 2, done.stderr
        assert line.startswith(f"gnnu-sim: error: no space left on {out};"), line
        assert os.listdir(fs) == []
        remount(fs, "size=32m")
        done = cli("gnnu-sim", "--events", 12, "--seed", 3, "--out", out)
        assert done.returncode == 0, done.stderr
        with HitFile(out) as f:
            assert f.validate() == 12
        assert leftovers(fs) == []


def test_file_size_limit_is_one_line(tmp_path):
    """Loop-free fallback of the full-disk tests (no mount needed): the kernel's file-size limit
    (RLIMIT_FSIZE) refuses gnnu-sim's writes with EFBIG; one line, exit 2, nothing left."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    out = tmp_path / "ev.h5"
    done = cli("gnnu-sim", "--events", 12, "--out", out, preexec_fn=limit)
    assert done.returncode == 2
    assert one_line(done.stderr).startswith(f"gnnu-sim: error: file size limit exceeded writing {out}")
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_build_on_a_full_disk_then_resume(tmp_path, small):
    """gnnu-build into a tmpfs too small for the dataset: one line, exit 2, no temporary file, the
    manifest stays in progress; after the disk grows, --resume finishes it (checksums verified)."""
    cfg = graph_config(tmp_path, shard_size=60)
    with tmpfs(tmp_path / "fs", "1200k") as fs:
        out = fs / "ds"
        done = cli("gnnu-build", "--input", small["hits"], "--out", out, "--graph", cfg)
        assert done.returncode == 2
        line = one_line(done.stderr)
        assert line.startswith(f"gnnu-build: error: no space left on {out}/"), line
        assert leftovers(fs) == []
        assert json.loads((out / "manifest.json").read_text())["status"] == "in_progress"
        remount(fs, "size=64m")
        done = cli("gnnu-build", "--input", small["hits"], "--out", out, "--graph", cfg, "--resume")
        assert done.returncode == 0, done.stderr
        assert "kept from an earlier run" in done.stdout
        done = cli("gnnu-build", "--verify", out)
        assert done.returncode == 0 and "shards verified" in done.stdout, done.stderr
        assert leftovers(fs) == []


@pytest.mark.slow
def test_train_on_a_full_disk_keeps_its_checkpoints_and_resumes(tmp_path, small):
    """A resumed gnnu-train on a full tmpfs: one line, exit 2, last.ckpt and best.ckpt exactly as
    before (atomic checkpoint writes), no temporary file; with space freed --resume continues."""
    with tmpfs(tmp_path / "fs", "16m") as fs:
        run = fs / "run"
        common = ["--out", run, "--device", "cpu", "--progress", "none"]
        done = cli("gnnu-train", "--config", small["config"], "--data", small["data"], *common)
        assert done.returncode == 0, done.stderr
        before = {n: digest(run / n) for n in ("last.ckpt", "best.ckpt")}
        ballast = fill(fs)
        done = cli("gnnu-train", "--resume", "--epochs", 2, *common)
        assert done.returncode == 2, done.stderr
        assert one_line(done.stderr).startswith(f"gnnu-train: error: no space left on {run}")
        assert {n: digest(run / n) for n in before} == before
        assert leftovers(fs) == []
        ballast.unlink()
        done = cli("gnnu-train", "--resume", "--epochs", 2, *common)
        assert done.returncode == 0, done.stderr
        assert json.loads((run / "run.json").read_text())["epochs_completed"] == 2


@pytest.mark.slow
def test_eval_on_a_full_disk_keeps_the_previous_report(tmp_path, small):
    """gnnu-eval --force over a report on a full tmpfs: one line, exit 2, the old report's files
    untouched (all files of a report are renamed into place together), no temporary file."""
    with tmpfs(tmp_path / "fs", "8m") as fs:
        rep = fs / "rep"
        args = ["--checkpoint", small["run"] / "best.ckpt", "--data", small["data"], "--out", rep,
                "--device", "cpu", "--progress", "none"]
        assert cli("gnnu-eval", *args).returncode == 0
        before = {p.name: digest(p) for p in rep.iterdir()}
        assert "metrics.json" in before and "predictions.h5" in before
        ballast = fill(fs)
        done = cli("gnnu-eval", *args, "--force")
        assert done.returncode == 2
        assert one_line(done.stderr).startswith(f"gnnu-eval: error: no space left on {rep}")
        assert {p.name: digest(p) for p in rep.iterdir()} == before
        assert leftovers(fs) == []
        ballast.unlink()
        assert cli("gnnu-eval", *args, "--force").returncode == 0


# -- 2. one writer per output -----------------------------------------------------------------------
HOLDER = ("import sys, time\nfrom gnnu.atomic import output_lock\n"
          "with output_lock(sys.argv[1], 'holder'):\n    print('locked', flush=True)\n"
          "    time.sleep(120)\n")


@contextlib.contextmanager
def held(path: Path):
    """Another process holding the lock of ``path``; yields its pid."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE,
                            text=True, env=ENV)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_lock_refuses_a_second_writer_and_is_released(tmp_path):
    target = tmp_path / "out"
    with held(target) as pid:
        with pytest.raises(OutputBusyError) as err:
            with output_lock(target):
                pass
        assert str(err.value).startswith(f"{target} is being written by pid {pid} (started ")
    with output_lock(target) as lock:                     # the holder died: free again
        assert lock == lock_path(target) and lock.exists()
    assert not lock_path(target).exists()


@pytest.mark.parametrize("command", ["gnnu-sim", "gnnu-train", "gnnu-eval", "gnnu-compare", "gnnu-study"])
def test_second_run_into_a_held_output_stops_at_once(command, tmp_path, small, capsys):
    """While another process writes OUT (holds its lock), each command stops at once: one line
    naming OUT and that process, exit 75, OUT untouched."""
    from gnnu.cli import compare, eval as eval_cli, sim, study, train

    out = tmp_path / ("ev.h5" if command == "gnnu-sim" else "out")
    main, args = {
        "gnnu-sim": (sim.main, ["--events", "2", "--out", out]),
        "gnnu-train": (train.main, ["--config", small["config"], "--data", small["data"],
                                    "--out", out, "--device", "cpu"]),
        "gnnu-eval": (eval_cli.main, ["--checkpoint", small["run"] / "best.ckpt",
                                      "--data", small["data"], "--out", out, "--device", "cpu"]),
        "gnnu-compare": (compare.main, [small["run"], "--out", out]),
        "gnnu-study": (study.main, ["--config", "smoke", "--out", out, "--device", "cpu"]),
    }[command]
    with held(out) as pid:
        t0 = time.perf_counter()
        rc = main([str(a) for a in args])
        assert time.perf_counter() - t0 < 20
        line = one_line(capsys.readouterr().err)
    assert rc == 75
    assert line.startswith(f"{command}: error: {out} is being written by pid {pid} (started "), line
    assert not out.exists()


@pytest.mark.slow
def test_two_real_builds_into_one_directory(tmp_path, small):
    """Two gnnu-build --force into one --out: the second stops at once naming the first (held
    stopped with SIGSTOP while the second runs), the first then completes a valid dataset."""
    out = tmp_path / "ds"
    first = subprocess.Popen([_script("gnnu-build"), "--input", str(small["hits"]), "--out", str(out),
                              "--force"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=ENV)
    try:
        deadline = time.monotonic() + 120
        while not lock_path(out).exists():
            assert first.poll() is None and time.monotonic() < deadline, "no lock taken"
            time.sleep(0.005)
        os.kill(first.pid, signal.SIGSTOP)
        second = cli("gnnu-build", "--input", small["hits"], "--out", out, "--force")
        os.kill(first.pid, signal.SIGCONT)
        assert second.returncode == 75
        assert one_line(second.stderr).startswith(
            f"gnnu-build: error: {out} is being written by pid {first.pid} (started ")
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
    done = cli("gnnu-build", "--verify", out)
    assert done.returncode == 0, done.stderr
    assert not lock_path(out).exists()


# -- 3. unbounded inputs ----------------------------------------------------------------------------
@pytest.mark.parametrize("energy", ["1e6", "0.01", "0.05:200"])
def test_energy_outside_the_validated_range_is_refused(energy, tmp_path, capsys):
    from gnnu.cli import sim

    assert sim.main(["--events", "1", "--energy", energy, "--out", str(tmp_path / "e.h5")]) == 2
    line = one_line(capsys.readouterr().err)
    assert "outside the energies the simulator is validated for (0.1–100 GeV)" in line
    assert not (tmp_path / "e.h5").exists()


def test_an_event_beyond_the_memory_bounds_is_refused(monkeypatch, dune):
    from gnnu.events import Flavour
    from gnnu.sim import transport
    from gnnu.sim.simulate import EnergyOption, simulate_event

    simulate_event(dune, 0, Flavour.NUE_CC, 1, EnergyOption.parse("100"))   # the top of the range
    monkeypatch.setattr(transport, "MAX_DEPOSITS", 1000)
    with pytest.raises(GnnuError, match="event too large to simulate: .* exceed the per-event bounds"):
        simulate_event(dune, 0, Flavour.NUE_CC, 1, EnergyOption.parse("20"))


# -- 4. interrupts ----------------------------------------------------------------------------------
def _wait_for_text(path: Path, text: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert proc.poll() is None, f"ended (rc {proc.returncode}) before '{text}': {path.read_text()}"
        assert time.monotonic() < deadline, f"no '{text}' after {timeout} s"
        time.sleep(0.01)


@pytest.mark.slow
def test_ctrl_c_in_train_saves_last_ckpt_and_resumes(tmp_path, small):
    """A real SIGINT to gnnu-train: last.ckpt saved, one line saying how to resume, exit 130,
    run.json "interrupted"; --resume then finishes the run."""
    run, log = tmp_path / "run", tmp_path / "err.log"
    args = ["--out", run, "--device", "cpu", "--progress", "lines", "--progress-every", "1"]
    with open(log, "w") as err:
        proc = subprocess.Popen([_script("gnnu-train"), "--config", str(small["config"]), "--data",
                                 str(small["data"]), "--epochs", "40", *map(str, args)],
                                stdout=subprocess.DEVNULL, stderr=err, env=ENV,
                                preexec_fn=sigint_as_in_a_terminal)
    try:
        _wait_for_text(log, "step 2/", proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=300) == 130
    finally:
        proc.kill()
    text = log.read_text()
    assert "Traceback" not in text
    last = [line for line in text.splitlines() if line.strip()][-1]
    assert last.startswith("gnnu-train: error: interrupted by Ctrl-C (SIGINT) after step "), last
    assert f"continue with: gnnu-train --resume --out {run}" in last
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted" and (run / "last.ckpt").exists()
    assert leftovers(tmp_path) == []
    done = cli("gnnu-train", "--resume", "--epochs", 2, "--out", run, "--device", "cpu",
               "--progress", "none")
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "complete"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["gnnu-sim", "gnnu-build"])
def test_ctrl_c_with_workers_prints_one_line(command, tmp_path, small):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) during a two-worker
    gnnu-sim / gnnu-build: exactly "COMMAND: interrupted", exit 130, no worker traceback, no
    temporary or lock file left."""
    out = tmp_path / ("ev.h5" if command == "gnnu-sim" else "ds")
    args = (["--events", "3000", "--out", out] if command == "gnnu-sim" else
            ["--input", small["hits"], "--out", out, "--graph", graph_config(tmp_path, shard_size=4)])
    log = tmp_path / "err.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([_script(command), "--workers", "2", *map(str, args)],
                                stdout=subprocess.DEVNULL, stderr=err, env=ENV,
                                start_new_session=True, preexec_fn=sigint_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 120
        started = (lambda: list(tmp_path.glob("ev.h5.tmp-*"))) if command == "gnnu-sim" else \
            (lambda: list(out.glob("shard-*.h5")))
        while not started():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
        time.sleep(0.5 if command == "gnnu-sim" else 0.05)   # the build of 300 events is quick
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == 130, log.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    lines = [line for line in log.read_text().splitlines() if line.strip() and "\r" not in line]
    assert "Traceback" not in log.read_text()
    assert lines == [f"{command}: interrupted"], log.read_text()[-2000:]
    assert leftovers(tmp_path) == []


def _worker_dispositions(_):
    import signal as sig

    return sig.getsignal(sig.SIGINT), sig.getsignal(sig.SIGTERM)


def test_pool_workers_end_at_once_on_sigterm_whatever_the_parent_installed():
    """A forked pool worker inherits the parent's Python-level SIGTERM handler (Lightning installs
    one in gnnu-train). Such a handler runs only at the worker's next bytecode, so a SIGTERM that
    arrives just before an idle worker blocks on the task queue's lock was never acted on and the
    pool's final join waited forever (seen in the suite, in gnnu-study's simulation). The
    initializer gives SIGINT to the parent alone and SIGTERM its default action: the pool
    terminates at once, here 10 times in a row."""
    import multiprocessing

    from gnnu.errors import ignore_interrupts_in_worker

    previous = signal.signal(signal.SIGTERM, lambda *_: None)     # as Lightning's would
    try:
        ctx = multiprocessing.get_context("fork")
        for _ in range(10):
            t0 = time.monotonic()
            with ctx.Pool(2, initializer=ignore_interrupts_in_worker) as pool:
                got = pool.map(_worker_dispositions, range(4))
            assert time.monotonic() - t0 < 30
        assert set(got) == {(signal.SIG_IGN, signal.SIG_DFL)}
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- 5. max_steps inside an epoch -------------------------------------------------------------------
def test_max_steps_below_one_epoch_validates_at_the_end(tmp_path, small, capsys):
    from gnnu.cli import train

    run = tmp_path / "run"
    assert train.main(["--config", str(small["config"]), "--data", str(small["data"]), "--out",
                       str(run), "--device", "cpu", "--set", "max_steps=1", "--progress", "none"]) == 0
    record = json.loads((run / "run.json").read_text())
    assert record["global_step"] == 1 and record["status"] == "complete"
    assert record["history"][-1]["val/loss"] is not None and (run / "best.ckpt").exists()


# -- 6. unwritable outputs --------------------------------------------------------------------------
def _five_commands(small, out_dir: Path) -> dict:
    return {
        "gnnu-sim": (["--events", 2, "--out", out_dir / "ev.h5"], out_dir / "ev.h5"),
        "gnnu-build": (["--input", small["hits"], "--out", out_dir / "ds"], out_dir / "ds"),
        "gnnu-train": (["--config", small["config"], "--data", small["data"], "--out", out_dir / "run",
                        "--device", "cpu", "--progress", "none"], out_dir / "run"),
        "gnnu-eval": (["--checkpoint", small["run"] / "best.ckpt", "--data", small["data"], "--out",
                       out_dir / "rep", "--device", "cpu", "--progress", "none"], out_dir / "rep"),
        "gnnu-compare": ([small["run"], "--out", out_dir / "cmp"], out_dir / "cmp"),
    }


def test_read_only_output_is_one_line_in_every_command(tmp_path, small, capsys):
    """EROFS (a tmpfs remounted read-only): each of the five commands prints one line naming its
    output, exit 2."""
    from gnnu.cli import build, compare, eval as eval_cli, sim, train

    mains = {"gnnu-sim": sim.main, "gnnu-build": build.main, "gnnu-train": train.main,
             "gnnu-eval": eval_cli.main, "gnnu-compare": compare.main}
    with tmpfs(tmp_path / "fs", "1m") as fs:
        remount(fs, "ro")
        for command, (args, out) in _five_commands(small, fs).items():
            rc = mains[command]([str(a) for a in args])
            line = one_line(capsys.readouterr().err)
            assert rc == 2, (command, line)
            assert line == f"{command}: error: cannot write {out}: read-only file system", line


@pytest.mark.slow
def test_permission_denied_is_one_line_in_every_command(tmp_path, small):
    """EACCES (a directory without write permission): one line naming the output, exit 2, in all
    five commands. As root the commands run without the capabilities that bypass permissions
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH dropped from the bounding set before exec)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    preexec = None
    if os.geteuid() == 0:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)

        def preexec():
            for cap in (1, 2):                        # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
                if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                    raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
    for command, (args, out) in _five_commands(small, locked).items():
        done = cli(command, *args, preexec_fn=preexec)
        line = one_line(done.stderr)
        assert done.returncode == 2, (command, done.stderr[-2000:])
        assert line == f"{command}: error: cannot write {out}: permission denied", line


# -- 7. damaged datasets ----------------------------------------------------------------------------
@pytest.fixture
def damaged(tmp_path, small) -> Path:
    copy = tmp_path / "ds"
    shutil.copytree(small["two"], copy)
    return copy


def _refusals(data: Path, small, capsys, inspect: bool = True) -> list[str]:
    """The one error line of gnnu-build --inspect (with ``inspect``), gnnu-train and gnnu-eval
    on ``data``."""
    from gnnu.cli import build, eval as eval_cli, train

    runs = [(build.main, ["--inspect", data])] * inspect + [
        (train.main, ["--config", small["config"], "--data", data, "--out", data.parent / "run",
                       "--device", "cpu", "--progress", "none"]),
        (eval_cli.main, ["--checkpoint", small["run"] / "best.ckpt", "--data", data,
                         "--out", data.parent / "rep", "--device", "cpu", "--progress", "none"])]
    lines = []
    for main, args in runs:
        rc = main([str(a) for a in args])
        lines.append(one_line(capsys.readouterr().err))
        assert rc == 2, lines[-1]
    return lines


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_missing_or_truncated_shard_is_one_line_everywhere(damage, damaged, small, capsys):
    shard = damaged / "shard-00001.h5"
    if damage == "missing":
        shard.unlink()
    else:
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    for line in _refusals(damaged, small, capsys):
        assert f"{shard}: shard " in line and ("missing" if damage == "missing" else "bytes") in line


def test_shard_from_another_dataset_is_refused(damaged, small, tmp_path, capsys):
    """A shard swapped in from another build: refused on opening, by its size and, where the
    manifest records none (older schema), by its build hash."""
    from gnnu.graph.build import BuildOptions, build_dataset
    from gnnu.graph.dataset import GraphDataset

    other = tmp_path / "other"
    build_dataset(BuildOptions(inputs=(str(small["hits"]),), out=str(other), seed=7,
                               graph=graph_config(tmp_path, shard_size=150)))
    shutil.copy(other / "shard-00000.h5", damaged / "shard-00000.h5")
    with pytest.raises(InputError) as err:
        GraphDataset(damaged, "train")
    assert str(err.value).startswith(f"{damaged / 'shard-00000.h5'}: ")
    manifest = json.loads((damaged / "manifest.json").read_text())
    for shard in manifest["shards"]:
        del shard["bytes"], shard["sha256"]
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="shard of another dataset"):
        GraphDataset(damaged, "train")


def test_labels_out_of_range_name_shard_and_event(damaged, small, capsys):
    shard = damaged / "shard-00001.h5"
    with h5py.File(shard, "r+") as f:
        flavour = f["graphs/flavour"]
        flavour[3] = 99
        event_id = tuple(int(v) for v in f["graphs/event_id"][3])
    for line in _refusals(damaged, small, capsys, inspect=False):
        assert f"{shard}: event 3 (id {event_id}): label flavour = 99 is outside [-1, 5)" in line
    from gnnu.cli import build
    assert build.main(["--verify", str(damaged)]) == 2           # and the checksum differs
    assert "sha256 differs" in one_line(capsys.readouterr().err)


def test_verify_finds_a_changed_byte_that_the_size_check_cannot(damaged, capsys):
    from gnnu.cli import build
    from gnnu.graph.dataset import GraphDataset

    assert build.main(["--verify", str(damaged)]) == 0
    assert "2 shards verified" in capsys.readouterr().out
    shard = damaged / "shard-00000.h5"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    GraphDataset(damaged, "all")                                  # same size: opens
    assert build.main(["--verify", str(damaged)]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"gnnu-build: error: {shard}: shard damaged: its sha256 differs from the manifest's "
        "(changed or replaced after the build); rebuild the dataset")


def test_older_manifest_without_checksums_still_reads(damaged, capsys):
    from gnnu.cli import build
    from gnnu.graph.dataset import GraphDataset

    manifest = json.loads((damaged / "manifest.json").read_text())
    manifest["schema_version"] = "1.1"
    for shard in manifest["shards"]:
        del shard["bytes"], shard["sha256"]
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    assert len(GraphDataset(damaged, "all")) == manifest["counts"]["out"]
    assert build.main(["--verify", str(damaged)]) == 2
    assert "records no shard checksums" in one_line(capsys.readouterr().err)


# -- 8. resume and fine-tuning surprises ------------------------------------------------------------
def test_resume_of_a_mistyped_directory_is_refused(tmp_path, capsys):
    from gnnu.cli import train

    assert train.main(["--resume", "--out", str(tmp_path / "rnu")]) == 2
    line = one_line(capsys.readouterr().err)
    assert "nothing to resume: the directory does not exist" in line
    assert not (tmp_path / "rnu").exists()


def test_resume_without_last_ckpt_keeps_best_ckpt(tmp_path, small, capsys):
    from gnnu.cli import train

    run = tmp_path / "run"
    shutil.copytree(small["run"], run)
    (run / "last.ckpt").unlink()
    best = digest(run / "best.ckpt")
    assert train.main(["--resume", "--out", str(run), "--device", "cpu"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "nothing to resume: no last.ckpt" in line and "--force (this replaces its best.ckpt)" in line
    assert digest(run / "best.ckpt") == best


def test_init_from_another_architecture_says_what_was_loaded(tmp_path, small, capsys):
    from gnnu.cli import train

    gravnet = tmp_path / "gravnet.yaml"
    gravnet.write_text(yaml.safe_dump({**TINY, "model": {**TINY["model"], "name": "gravnet", "params": {
        "blocks": 2, "dense": [16, 16], "out_channels": 16, "propagate_dimensions": 8, "k": 8}}}))
    common = ["--data", str(small["data"]), "--device", "cpu", "--set", "max_steps=1",
              "--progress", "none"]
    assert train.main(["--config", str(gravnet), "--out", str(tmp_path / "g"), *common]) == 0
    capsys.readouterr()
    assert train.main(["--config", str(small["config"]), "--out", str(tmp_path / "e"), "--init-from",
                       str(tmp_path / "g" / "best.ckpt"), *common]) == 0
    out = capsys.readouterr().out
    init = json.loads((tmp_path / "e" / "run.json").read_text())["init_from"]
    assert init["model"] == "gravnet" and init["loaded"] > 0
    assert (f"gnnu-train: init from {tmp_path / 'g' / 'best.ckpt'} (gravnet → edgeconv): loaded "
            f"{init['loaded']} of the model's") in out
    assert "kept new (not in the checkpoint)" in out and "ignored (not in this model)" in out
    assert "note: the checkpoint holds a gravnet model, this run trains edgeconv" in out


# -- 9. small ones ----------------------------------------------------------------------------------
def test_compare_with_a_string_metric_is_one_line(tmp_path, small, capsys):
    from gnnu.cli import compare

    report = tmp_path / "rep"
    shutil.copytree(small["report"], report)
    metrics = json.loads((report / "metrics.json").read_text())
    metrics["throughput_events_per_s"] = "fast"
    (report / "metrics.json").write_text(json.dumps(metrics))
    assert compare.main([str(report), "--out", str(tmp_path / "cmp")]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"gnnu-compare: error: {report / 'metrics.json'}: 'throughput_events_per_s' must be a "
        "number or null, got 'fast'")


@pytest.mark.parametrize("pitch", ["0", "-1"])
def test_detector_with_a_non_positive_pitch_is_one_line(pitch, tmp_path, capsys):
    from gnnu.cli import sim
    from gnnu.config import CONFIG_ROOT

    text = (CONFIG_ROOT / "detectors" / "dune.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("pitch_cm: 0.4667", f"pitch_cm: {pitch}", 1))
    assert bad.read_text() != text
    assert sim.main(["--detector", str(bad), "--events", "1", "--out", str(tmp_path / "e.h5")]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{bad}.planes[0]: plane U: pitch_cm and adc_per_electron must be > 0" in line


def test_exponent_floats_in_yaml_are_numbers(tmp_path):
    from gnnu.train.config import load_train_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "data": str(tmp_path)}).replace("lr: 0.01", "lr: 1e-3"))
    assert "lr: 1e-3" in cfg.read_text()
    assert load_train_config(cfg).optimizer.lr == 1e-3


def test_yaml_alias_bomb_is_refused_with_a_short_message(tmp_path, capsys):
    from gnnu.cli import train

    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    lines.append("epochs: *i")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert len(bomb.read_bytes()) < 1000
    t0 = time.perf_counter()
    rc = train.main(["--config", str(bomb), "--out", str(tmp_path / "r")])
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and time.perf_counter() - t0 < 30
    assert len(line) < 400 and "expands to more than 1,000,000 values" in line, line[:500]


def test_eval_into_a_dataset_directory_is_refused(small, capsys):
    from gnnu.cli import eval as eval_cli

    before = sorted(p.name for p in small["data"].iterdir())
    assert eval_cli.main(["--checkpoint", str(small["run"] / "best.ckpt"), "--data",
                          str(small["data"]), "--out", str(small["data"])]) == 2
    assert "is a graph dataset directory" in one_line(capsys.readouterr().err)
    assert sorted(p.name for p in small["data"].iterdir()) == before


# -- 10. progress in logs ---------------------------------------------------------------------------
def test_train_and_eval_print_progress_lines_without_a_terminal(tmp_path, small, capsys):
    from gnnu.cli import eval as eval_cli, train

    run = tmp_path / "run"
    assert train.main(["--config", str(small["config"]), "--data", str(small["data"]), "--out",
                       str(run), "--device", "cpu", "--epochs", "2", "--progress-every", "3"]) == 0
    err = capsys.readouterr().err.splitlines()            # stderr is not a terminal here
    steps = [line for line in err if line.startswith("gnnu-train: epoch ") and ", step " in line]
    epochs = [line for line in err if " done (step " in line]
    record = json.loads((run / "run.json").read_text())
    assert len(steps) == record["global_step"] // 3 and len(epochs) == 2
    assert all("events/s" in line and "ETA" in line for line in steps + epochs)
    assert epochs[-1].startswith(f"gnnu-train: epoch 2/2 done (step {record['global_step']}/"
                                 f"{record['global_step']}), val/loss ")
    assert eval_cli.main(["--checkpoint", str(run / "best.ckpt"), "--data", str(small["data"]),
                          "--out", str(tmp_path / "rep"), "--device", "cpu", "--no-plots",
                          "--split", "val", "--batch-size", "4", "--progress-every", "2"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("gnnu-eval: ")]
    n_batches = -(-record["dataset"]["n_val"] // 4)
    assert len(lines) == n_batches // 2 and all("events/s" in x and "ETA" in x for x in lines)
    assert lines[-1].startswith(f"gnnu-eval: val batch {n_batches // 2 * 2}/{n_batches} (")
