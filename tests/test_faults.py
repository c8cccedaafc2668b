"""Fault injection (issue #8): SIGKILL of the installed ``gnnu-sim``, ``gnnu-build`` and
``gnnu-train`` part-way through, then a rerun / ``--resume`` that must give exactly the output of an
uninterrupted run; a full disk (``OSError(ENOSPC)`` raised part-way through a write) that must
leave nothing a reader or ``--resume`` would accept; and byte-identical outputs for the same
seed whatever the number of workers.

What the other test files already cover is not repeated here: ``test_build.py`` kills a
one-worker build (``python -m``) and resumes it, and compares one- and two-worker builds array by
array; ``test_train.py`` crashes training in-process (exception, SIGTERM) and resumes it;
``test_sim_cli.py`` compares hit files written with one and two workers byte for byte.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from conftest import DUNE_CVN_SAMPLE, make_event
from gnnu.errors import InputError
from gnnu.graph.build import BuildOptions, build_dataset
from gnnu.graph.store import ShardWriter
from gnnu.graph.dataset import GraphDataset
from gnnu.graph.store import shard_name
from gnnu.io.hitfile import HitFile, HitFileWriter, write_hits
from test_build import _assert_same_dataset, graph_config

BIN = Path(sys.executable).parent          # the virtualenv's console scripts


def _script(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"console script {name} not installed in {BIN}")
    return str(path)


def _start(name: str, *args, log: Path) -> subprocess.Popen:
    """Start console script ``name`` in its own process group (so its workers can be found)."""
    with open(log, "wb") as err:
        return subprocess.Popen([_script(name), *map(str, args)], stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)


def _kill9(proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGKILL the process (only it: its pool workers are orphaned, as after a real kill -9),
    then wait until every process of its group has gone."""
    assert proc.poll() is None, "the command finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            os.killpg(proc.pid, 0)
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)             # orphans that outlived the timeout
        pytest.fail(f"worker processes of {proc.args[0]} outlived their parent by {timeout} s")
    except ProcessLookupError:
        pass


def _wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the command ended (rc {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} after {timeout} s")
        time.sleep(0.01)


def _run(name: str, *args) -> subprocess.CompletedProcess:
    r = subprocess.run([_script(name), *map(str, args)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def _shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("shard-*.h5"))}


def _same_storage(a: Path, b: Path) -> None:
    """Same chunking and filters for every dataset of every shard (with test_build's
    ``_assert_same_dataset``: same values, dtypes, attributes and manifest), and the same file
    bytes unless a dataset is LZF-compressed: h5py's LZF compressor can encode the same chunk
    differently from run to run (it decodes to identical bytes) — see RELIABILITY.md."""
    filters = set()
    for pa in sorted(a.glob("shard-*.h5")):
        with h5py.File(pa, "r") as fa, h5py.File(b / pa.name, "r") as fb:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    other = fb[name]
                    filters.add(obj.compression)
                    assert (obj.chunks, obj.compression, obj.shuffle, obj.fletcher32) == \
                        (other.chunks, other.compression, other.shuffle, other.fletcher32), name
            fa.visititems(visit)
    if "lzf" not in filters:
        assert _shard_bytes(a) == _shard_bytes(b)


# -- SIGKILL -------------------------------------------------------------------------------------
SIM_EVENTS = 240
SIM = ("--events", SIM_EVENTS, "--seed", 11, "--flavours", "numu_cc,nue_cc,nc")


class Progress:
    """Start a console script with its stderr on a pseudo-terminal, so that its tqdm progress
    bar is on, and read how many events it reports done."""

    def __init__(self, name: str, *args):
        import fcntl
        import pty
        import struct
        import termios

        master, slave = pty.openpty()
        # a window size, or tqdm (0 columns) draws an empty bar
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))
        self.proc = subprocess.Popen([_script(name), *map(str, args)], stdout=subprocess.DEVNULL,
                                     stderr=slave, start_new_session=True)
        os.close(slave)
        os.set_blocking(master, False)
        self.fd, self.text = master, b""

    def done(self) -> int:
        import re

        try:
            while chunk := os.read(self.fd, 65536):
                self.text += chunk
        except (BlockingIOError, OSError):
            pass
        counts = re.findall(rb"(\d+)/" + str(SIM_EVENTS).encode(), self.text)
        return max((int(c) for c in counts), default=0)

    def close(self) -> None:
        os.close(self.fd)


@pytest.mark.slow
def test_sim_killed_then_rerun_gives_the_same_bytes(tmp_path):
    """kill -9 of ``gnnu-sim --workers 2`` once it reports a third of its events simulated
    leaves no output file (only a temporary one that no reader accepts); the rerun then writes
    exactly the bytes of an uninterrupted one-worker run."""
    ref = tmp_path / "ref.h5"
    _run("gnnu-sim", *SIM, "--workers", 1, "--out", ref)
    out = tmp_path / "ev.h5"
    run = Progress("gnnu-sim", *SIM, "--workers", 2, "--out", out)
    try:
        _wait_for(lambda: run.done() >= SIM_EVENTS // 3, run.proc, "progress")
        assert run.done() < SIM_EVENTS
        _kill9(run.proc)
    finally:
        run.close()
    assert not out.exists(), "a killed gnnu-sim left an output file"
    stale = list(tmp_path.glob("ev.h5.tmp-*"))
    assert len(stale) == 1
    with pytest.raises(InputError) as err:              # unsealed, never closed: refused
        HitFile(stale[0])
    assert str(err.value).startswith(f"{stale[0]}: ")
    _run("gnnu-sim", *SIM, "--workers", 2, "--out", out)
    assert out.read_bytes() == ref.read_bytes()


@pytest.mark.slow
def test_build_killed_with_workers_then_resume_is_identical(tmp_path, dune):
    """kill -9 of a two-worker ``gnnu-build`` after its first shards (its orphaned workers die
    or finish on their own), then ``--resume``: the dataset equals an uninterrupted build, shard
    file for shard file, byte for byte (default config: uncompressed shards)."""
    # 60 shards: enough work that the kill lands mid-way with the numba kNN (16 shards of this
    # size were sometimes all done, by the two orphaned workers, before the count below)
    src = write_hits(tmp_path / "a.h5", [make_event(i, n_hits=800, particles=False)
                                         for i in range(600)], dune)
    cfg = graph_config(tmp_path, shard_size=10)                       # 60 shards
    ref = tmp_path / "ref"
    build_dataset(BuildOptions(inputs=(str(src),), out=str(ref), graph=cfg))
    out = tmp_path / "ds"
    args = ("--input", src, "--out", out, "--graph", cfg, "--workers", 2)
    proc = _start("gnnu-build", *args, log=tmp_path / "kill.log")
    _wait_for(lambda: (out / shard_name(1)).exists(), proc, "finished shard")
    _kill9(proc)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "in_progress", "the build finished before the kill"
    with pytest.raises(InputError, match="did not finish"):
        GraphDataset(out)
    done = len(list(out.glob("shard-*.h5")))
    assert 0 < done < 60
    r = _run("gnnu-build", *args, "--resume")
    assert "kept from an earlier run" in r.stdout and not list(out.glob("*.tmp-*"))
    _assert_same_dataset(out, ref)
    _same_storage(out, ref)


#: 3 steps per epoch, 2 epochs, a checkpoint after every step (dropout on: the RNG must resume).
RESUME = ("max_events=48", "batch_size=16", "epochs=2", "checkpoint.every_n_steps=1")


@pytest.fixture(scope="module")
def train_data(tmp_path_factory):
    from test_train import make_dataset
    return make_dataset(tmp_path_factory.mktemp("train_faults"), n_events=200)


@pytest.mark.slow
def test_train_killed_then_resume_matches_uninterrupted(tmp_path, train_data):
    """kill -9 of ``gnnu-train`` after its first step checkpoint, then ``gnnu-train --resume``:
    the same weights and per-epoch metrics as an uninterrupted run (test_train.py covers
    in-process crashes and SIGTERM; this is the real SIGKILL of the installed command)."""
    import torch

    from gnnu.cli.train import main
    from gnnu.train.run import TrainOptions, train
    from test_train import TINY, _strip, _weights

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    ref = train(TrainOptions(config=str(cfg), data=str(train_data), out=str(tmp_path / "ref"),
                             device="cpu", overrides=RESUME))
    run = tmp_path / "run"
    sets = [a for o in RESUME for a in ("--set", o)]
    proc = _start("gnnu-train", "--config", cfg, "--data", train_data, "--out", run,
                  "--device", "cpu", *sets, log=tmp_path / "kill.log")

    def checkpointed():
        try:
            return torch.load(run / "last.ckpt", weights_only=True)["global_step"] > 0
        except (FileNotFoundError, RuntimeError, EOFError):
            return False
    _wait_for(checkpointed, proc, "step checkpoint")
    _kill9(proc)
    stopped = torch.load(run / "last.ckpt", weights_only=True)["global_step"]
    assert 0 < stopped < ref["global_step"], "killed too late to test resuming"
    assert main(["--out", str(run), "--resume", "--device", "cpu"]) == 0
    resumed = json.loads((run / "run.json").read_text())
    assert resumed["resumed_from"] and resumed["global_step"] == ref["global_step"]
    assert _strip(resumed["history"]) == _strip(ref["history"])
    a, b = _weights(tmp_path / "ref" / "last.ckpt"), _weights(run / "last.ckpt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- disk full -----------------------------------------------------------------------------------
def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(scope="module")
def shard_source(tmp_path_factory, dune):
    """(hit file of 60 events, graph config of 10-event shards, uninterrupted dataset)."""
    root = tmp_path_factory.mktemp("enospc")
    src = write_hits(root / "a.h5", [make_event(i, n_hits=60) for i in range(60)], dune)
    cfg = graph_config(root, shard_size=10)
    build_dataset(BuildOptions(inputs=(str(src),), out=str(root / "ref"), graph=cfg))
    return src, cfg, root / "ref"


def _fail_in_shard(monkeypatch, shard: int, where: str, cleanup: bool = True) -> None:
    """Make the write of shard ``shard`` fail with ENOSPC: ``where`` = "data" (after part of
    its node arrays) or "close" (after its graph tables, before the rename); ``cleanup`` False
    also disables the writer's abort (the process dies on the spot: its temporary file stays)."""
    append, close = ShardWriter.append, ShardWriter.close

    def failing_append(self, block):
        if self.path.name == shard_name(shard) and where == "data":
            self._x.resize(len(block.x) // 2, axis=0)
            self._x[:] = block.x[: len(block.x) // 2]
            self._f.flush()
            _enospc()
        append(self, block)

    def failing_close(self, graphs, attrs):
        if self.path.name == shard_name(shard) and where == "close":
            g = self._f.create_group("graphs")
            g.create_dataset("node_offset", data=np.concatenate(self._node_offset))
            self._f.flush()
            _enospc()
        close(self, graphs, attrs)

    monkeypatch.setattr(ShardWriter, "append", failing_append)
    monkeypatch.setattr(ShardWriter, "close", failing_close)
    if not cleanup:        # the file reaches the disk as it was, but is never renamed or removed
        monkeypatch.setattr(ShardWriter, "abort", lambda self: self._f.close())


@pytest.mark.parametrize("where,cleanup", [("data", True), ("close", True), ("data", False)],
                         ids=["while writing nodes", "while closing", "no cleanup (died)"])
def test_disk_full_during_a_shard_leaves_nothing_acceptable(tmp_path, monkeypatch, shard_source,
                                                            where, cleanup):
    src, cfg, ref = shard_source
    out = tmp_path / "ds"
    _fail_in_shard(monkeypatch, 3, where, cleanup)
    with pytest.raises(OSError) as err:
        build_dataset(BuildOptions(inputs=(str(src),), out=str(out), graph=cfg))
    assert err.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert not (out / shard_name(3)).exists(), "a half-written shard got its final name"
    assert sorted(p.name for p in out.glob("shard-*.h5")) == [shard_name(i) for i in range(3)]
    left = list(out.glob("*.tmp-*"))
    assert (left == []) == cleanup
    for tmp in left:                                   # a died writer's partial file
        with h5py.File(tmp, "r") as f:
            assert "graphs" not in f or "edge_offset" not in f["graphs"]
    with pytest.raises(InputError, match="did not finish"):
        GraphDataset(out)
    summary = build_dataset(BuildOptions(inputs=(str(src),), out=str(out), graph=cfg, resume=True))
    assert summary.kept_shards == 3 and not list(out.glob("*.tmp-*"))
    _assert_same_dataset(out, ref)
    _same_storage(out, ref)


def test_disk_full_writing_the_manifest_keeps_the_build_resumable(tmp_path, monkeypatch,
                                                                   shard_source):
    """ENOSPC on the final manifest write: the old (in-progress) manifest stays, the dataset is
    refused, and --resume finishes it from the kept shards."""
    import gnnu.graph.build as build

    src, cfg, ref = shard_source
    out = tmp_path / "ds"
    real = build.write_manifest

    def failing(path, obj):
        if obj.get("status") == "complete":
            tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
            tmp.write_text(json.dumps(obj)[:100])      # part of it reached the disk
            _enospc()
        real(path, obj)

    monkeypatch.setattr(build, "write_manifest", failing)
    with pytest.raises(OSError):
        build_dataset(BuildOptions(inputs=(str(src),), out=str(out), graph=cfg))
    monkeypatch.undo()
    assert json.loads((out / "manifest.json").read_text())["status"] == "in_progress"
    with pytest.raises(InputError, match="did not finish"):
        GraphDataset(out)
    summary = build_dataset(BuildOptions(inputs=(str(src),), out=str(out), graph=cfg, resume=True))
    assert summary.kept_shards == 6 and summary.processed == 0
    _assert_same_dataset(out, ref)


def test_disk_full_during_a_hit_file_leaves_no_file(tmp_path, monkeypatch, dune, capsys):
    """ENOSPC while gnnu-sim flushes its hits: one error line, exit 2, and no output file and no
    temporary file remain (with --debug the OSError itself propagates)."""
    from gnnu.cli import sim

    flush = HitFileWriter.flush
    calls = []

    def failing_flush(self):
        calls.append(1)
        if len(calls) == 1:
            first = next(iter(self._buf["hits"]))
            self._f.create_dataset(f"hits/{first}", data=np.concatenate(self._buf["hits"][first]))
            self._f.flush()
            _enospc()
        flush(self)

    monkeypatch.setattr(HitFileWriter, "flush", failing_flush)
    out = tmp_path / "ev.h5"
    assert sim.main(["--events", "4", "--seed", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gnnu-sim: error:") and "no space left" in err[0], err
    assert calls and list(tmp_path.iterdir()) == [], "a failed write left files behind"
    calls.clear()
    with pytest.raises(OSError) as exc:
        sim.main(["--events", "4", "--seed", "2", "--out", str(out), "--debug"])
    assert exc.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


# -- reproducibility -----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not DUNE_CVN_SAMPLE.exists(), reason="DUNE CVN sample not present")
def test_dune_cvn_dataset_is_byte_identical_for_any_workers(tmp_path):
    """The real DUNE CVN sample built twice by separate gnnu-build processes, with 1 and 2
    workers, in 2-event gzip shards: every shard file and the manifest are byte-identical (no
    timestamps, no memory contents). (gzip: see :func:`_same_storage` for LZF.)"""
    cfg = graph_config(tmp_path, name="pix", shard_size=2, compression="gzip")
    runs = {}
    for w in (1, 2):
        out = tmp_path / f"w{w}"
        _run("gnnu-build", "--input", DUNE_CVN_SAMPLE, "--format", "dune-cvn", "--graph", cfg,
             "--out", out, "--workers", w)
        runs[w] = out
    assert len(_shard_bytes(runs[1])) == 10
    assert _shard_bytes(runs[1]) == _shard_bytes(runs[2])
    assert (runs[1] / "manifest.json").read_bytes() == (runs[2] / "manifest.json").read_bytes()
