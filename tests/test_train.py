"""gnnu-train: config validation, learning, kill-and-resume, fine-tuning with frozen layers.

The learning tests use a *synthetic* dataset whose hit pattern depends on the flavour (so a
small model learns it in a few epochs on 2 CPU cores): CC νμ a long straight track, CC νe a
compact dense blob, CC ντ two short prongs from a vertex, NC diffuse low-charge hits, 24/24/24/16
hits per view in all three views; the charge grows mildly with the neutrino energy. It goes
through the real path: hit file → ``gnnu-build`` (kNN-16 graphs) → ``GraphDataset``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import yaml

from gnnu.cli.train import main
from gnnu.config import CONFIG_ROOT, read_yaml, to_dict
from gnnu.events import HIT_COLUMNS, Event, Hits, Truth
from gnnu.train.config import TrainConfig, load_train_config
from gnnu.train.data import EpochSampler
from gnnu.train.run import TrainingInterrupted, TrainOptions, train

TICKS_PER_WIRE = 6.0   # DUNE: 0.479 cm wire pitch / 0.08 cm per tick → about isotropic in cm


def synthetic_event(i: int, seed: int = 0) -> Event:
    """Event i: flavour i mod 4 with a flavour-dependent hit pattern (module docstring)."""
    rng = np.random.default_rng([seed, i])
    flavour = i % 4
    energy = float(rng.uniform(0.5, 10.0))
    cols = {k: [] for k in ("view", "wire", "time", "charge", "width")}
    for view in range(3):
        w0, t0 = rng.uniform(200, 400), rng.uniform(1000, 2000)
        n = 16 if flavour == 3 else 24
        if flavour == 0:
            s, a = rng.uniform(0, 120, n), rng.uniform(0, 2 * np.pi)
            dw, dt, q = s * np.cos(a), s * np.sin(a), rng.normal(100, 10, n)
        elif flavour == 1:
            dw, dt, q = rng.normal(0, 4, n), rng.normal(0, 4, n), rng.normal(300, 60, n)
        elif flavour == 2:
            s = rng.uniform(0, 40, n)
            a = rng.uniform(0, 2 * np.pi) + np.where(np.arange(n) % 2, 0.0, 2.0)
            dw, dt, q = s * np.cos(a), s * np.sin(a), rng.normal(180, 20, n)
        else:
            dw, dt, q = rng.uniform(-60, 60, n), rng.uniform(-60, 60, n), rng.normal(60, 15, n)
        cols["view"].append(np.full(n, view))
        cols["wire"].append(np.round(w0 + dw))
        cols["time"].append(t0 + dt * TICKS_PER_WIRE)
        cols["charge"].append(np.abs(q) * (1 + energy / 20))
        cols["width"].append(rng.uniform(2, 4, n))
    hits = Hits({k: np.concatenate(v).astype(HIT_COLUMNS[k][0]) for k, v in cols.items()})
    truth = Truth(flavour=flavour, interaction=int(rng.integers(4)), is_antinu=0, n_proton=0,
                  n_charged_pion=0, n_neutral_pion=0, n_neutron=0, mode=0, nu_pdg=14,
                  nu_energy=energy, lep_energy=energy / 2, y=0.5, vtx_x=0.0, vtx_y=0.0, vtx_z=0.0)
    return Event((7, 0, i), truth, hits)


def make_dataset(root: Path, n_events: int = 600) -> Path:
    """Synthetic hit file → gnnu-build dataset under ``root``; returns the dataset directory."""
    from gnnu.detectors import load_detector
    from gnnu.graph.build import BuildOptions, build_dataset
    from gnnu.io.hitfile import write_hits

    root.mkdir(parents=True, exist_ok=True)
    hits = root / "events.h5"
    write_hits(hits, [synthetic_event(i) for i in range(n_events)], load_detector("dune"))
    build_dataset(BuildOptions(inputs=(str(hits),), out=str(root / "data")))
    return root / "data"


#: A small, fast training config (flavour + energy heads; dropout on, so resume must restore RNG).
TINY = {
    "model": {"name": "edgeconv", "params": {"widths": [16, 32]},
              "heads": {"hidden": [32], "dropout": 0.1, "enabled": ["flavour", "nu_energy"]}},
    "epochs": 4, "batch_size": 32, "num_workers": 0, "deterministic": True,
    "optimizer": {"lr": 0.01},
}
SMALL_PARAMS = {
    "edgeconv": {"widths": [16, 32]},
    "dynedgeconv": {"k": 8, "widths": [16, 32]},
    "gravnet": {"blocks": 2, "dense": [16, 16], "out_channels": 16, "propagate_dimensions": 8, "k": 8},
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def _strip(history: list[dict]) -> list[dict]:
    """History without wall-clock rates (the only entries allowed to differ between runs)."""
    return [{k: v for k, v in r.items() if k != "train/events_per_s"} for r in history]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


# -- config --------------------------------------------------------------------------------------
def test_default_yaml_equals_dataclass_defaults():
    """configs/train/default.yaml documents the training defaults: it must equal the dataclass's,
    and a bare model config trains with exactly these values (docs/design.md#command-line-contract)."""
    from_file = load_train_config(CONFIG_ROOT / "train" / "default.yaml", require_data=False)
    from_model = load_train_config(CONFIG_ROOT / "models" / "edgeconv.yaml", require_data=False)
    assert to_dict(from_file) == to_dict(from_model)
    assert to_dict(from_file)["epochs"] == TrainConfig(model=None).epochs


def test_overrides_are_yaml_values_and_revalidated(tiny_config):
    cfg = load_train_config(tiny_config, data="D", overrides=(
        "optimizer.lr=3e-4", "model.params.widths=[8, 8, 8]", "freeze=2", "gradient_clip=null",
        "early_stopping.patience=2"))
    assert cfg.optimizer.lr == pytest.approx(3e-4)
    assert cfg.model.params.widths == (8, 8, 8)
    assert cfg.freeze == 2 and cfg.gradient_clip is None and cfg.early_stopping.patience == 2
    with pytest.raises(Exception, match="optimizer.lr"):
        load_train_config(tiny_config, data="D", overrides=("optimizer.lr=fast",))


@pytest.mark.parametrize("case", ["unknown key", "wrong type", "missing dataset", "absent dataset",
                                  "bad override", "bad model param", "bad monitor"])
def test_config_errors_are_one_line(case, tiny_config, dataset, tmp_path, capsys):
    """Expected failures exit non-zero with one line on stderr, no traceback, and no run directory."""
    out = tmp_path / "run"
    args = ["--config", str(tiny_config), "--data", str(dataset), "--out", str(out)]
    cfg = dict(TINY)
    if case == "unknown key":
        cfg["epochz"] = 3
    elif case == "wrong type":
        cfg["batch_size"] = "large"
    elif case == "missing dataset":
        args = ["--config", str(tiny_config), "--out", str(out)]
    elif case == "absent dataset":
        args[3] = str(tmp_path / "nowhere")
    elif case == "bad override":
        args += ["--set", "optimizer"]
    elif case == "bad model param":
        cfg["model"] = {**cfg["model"], "params": {"widths": [16], "depth": 3}}
    elif case == "bad monitor":
        cfg["early_stopping"] = {"monitor": "val/energy_accuracy"}
    tiny_config.write_text(yaml.safe_dump(cfg))
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("gnnu-train: error:"), err
    assert "Traceback" not in err[0]
    expected = {"unknown key": "epochz", "wrong type": "batch_size", "missing dataset": "no dataset",
                "absent dataset": "nowhere", "bad override": "key=value",
                "bad model param": "depth", "bad monitor": "val/energy_accuracy"}[case]
    assert expected in err[0]
    assert not out.exists()


@pytest.mark.slow
def test_cli_process_exit_code(tmp_path):
    """The installed entry point: a bad config is exit code 2, one stderr line, no traceback."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model: edgeconv\nlearning_rate: 0.1\n")
    exe = Path(sys.executable).parent / "gnnu-train"
    proc = subprocess.run([str(exe), "--config", str(cfg), "--data", str(tmp_path), "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("gnnu-train")]
    assert proc.returncode == 2
    assert len(lines) == 1 and "learning_rate" in lines[0] and "Traceback" not in proc.stderr


def test_refuses_non_empty_run_dir(tiny_config, dataset, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["--config", str(tiny_config), "--data", str(dataset), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("case", ["other config", "longer cosine schedule", "other batch size"])
def test_resume_refuses_a_different_config(case, tiny_config, tmp_path, dataset, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump({**TINY, "data": str(dataset), "epochs": 9}))
    args, expected = {"other config": (["--config", str(tiny_config)], "epochs"),
                      "longer cosine schedule": (["--epochs", "12"], "schedule"),
                      "other batch size": (["--set", "batch_size=8"], "batch_size")}[case]
    assert main([*args, "--out", str(out), "--resume"]) == 2
    assert expected in capsys.readouterr().err


def test_sampler_resume_position():
    """EpochSampler: at global step s it serves epoch s // n without its first s % n batches."""
    step = {"s": 3}                     # 10 events, batches of 4: 3 batches per epoch
    sampler = EpochSampler(10, shuffle=True, seed=3, batch_size=4, step=lambda: step["s"])
    epoch1 = list(sampler)                # step 3: start of epoch 1
    step["s"] = 4                         # epoch 1 with one batch done
    assert list(sampler) == epoch1[4:]
    step["s"] = 0
    epoch0 = list(sampler)
    assert epoch0 != epoch1 and sorted(epoch0) == list(range(10))
    shards = [list(EpochSampler(10, False, rank=r, world_size=3)) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4] and set(sum(shards, [])) == set(range(10))


# -- learning ------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["edgeconv", "dynedgeconv", "gravnet"])
def test_model_learns_flavour(name, tiny_config, dataset, tmp_path):
    """4 epochs on ~490 synthetic training events: the flavour loss falls by ≥ 30 % and the
    validation flavour accuracy reaches ≥ 0.6, against a chance level of 0.25 (four balanced
    classes). Also checks the run directory (docs/design.md#command-line-contract) and weights_only-loadable checkpoints."""
    out = tmp_path / "run"
    record = train(TrainOptions(config=str(tiny_config), data=str(dataset), out=str(out),
                                overrides=(f"model.name={name}",
                                           f"model.params={json.dumps(SMALL_PARAMS[name])}")))
    hist = record["history"]
    assert len(hist) == 4 and record["status"] == "complete"
    first, last = hist[0]["train/epoch_loss_flavour"], hist[-1]["train/epoch_loss_flavour"]
    assert last < 0.7 * first, (first, last)
    assert hist[-1]["val/flavour_accuracy"] >= 0.6, hist[-1]
    assert hist[-1]["val/nu_energy_resolution"] is not None

    assert {"config.yaml", "run.json", "best.ckpt", "last.ckpt", "tensorboard"} <= {p.name for p in out.iterdir()}
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    saved = load_train_config(base=read_yaml(out / "config.yaml"))
    assert to_dict(saved) == to_dict(load_train_config(out / "config.yaml"))
    assert saved.model.name == name
    run = json.loads((out / "run.json").read_text())
    assert run["dataset"]["manifest_hash"].startswith("sha256:")
    assert run["model"]["parameters"] > 0 and run["model"]["flops_per_event"] > 0
    assert run["training_wall_time_s"] > 0 and run["device"] == "cpu"
    for ckpt in ("best.ckpt", "last.ckpt"):
        loaded = torch.load(out / ckpt, map_location="cpu", weights_only=True)
        assert loaded["gnnu"]["config"]["model"]["name"] == name
        assert loaded["gnnu"]["feature_names"] == run["dataset"]["feature_names"]


# -- resume --------------------------------------------------------------------------------------
class Crash(Exception):
    """A simulated hard failure (the process dies; only what is on disk survives)."""


class CrashAt(pl.Callback):
    def __init__(self, step: int | None = None, epoch: int | None = None, sigterm: bool = False):
        self.step, self.epoch, self.sigterm = step, epoch, sigterm

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            if self.sigterm:
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise Crash()

    def on_train_epoch_start(self, trainer, *args):
        if trainer.current_epoch == self.epoch:
            raise Crash()


RESUME = ("max_events=160", "epochs=3", "checkpoint.every_n_steps=2")   # 5 steps per epoch


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("uninterrupted")
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    record = train(TrainOptions(config=str(cfg), data=str(dataset), out=str(root / "run"),
                                overrides=RESUME))
    return root / "run", record


@pytest.mark.slow
@pytest.mark.parametrize("crash", [dict(step=7), dict(epoch=2), dict(step=7, sigterm=True)],
                         ids=["killed mid-epoch", "killed at an epoch start", "SIGTERM"])
def test_kill_and_resume_matches_uninterrupted(crash, uninterrupted, tiny_config, dataset, tmp_path):
    """A seeded deterministic run stopped part-way and resumed with --resume ends with exactly the
    weights and the per-epoch metrics of the uninterrupted run (same data order, RNG, optimiser,
    scheduler, early-stopping and checkpoint states)."""
    ref_dir, ref = uninterrupted
    out = tmp_path / "run"
    opts = dict(config=str(tiny_config), data=str(dataset), out=str(out), overrides=RESUME)
    expected = TrainingInterrupted if crash.get("sigterm") else Crash
    with pytest.raises(expected):
        train(TrainOptions(**opts, callbacks=(CrashAt(**crash),)))
    stopped = torch.load(out / "last.ckpt", weights_only=True)["global_step"]
    assert 0 < stopped < ref["global_step"]
    assert main(["--out", str(out), "--resume"]) == 0
    resumed = json.loads((out / "run.json").read_text())
    assert resumed["resumed_from"] and resumed["global_step"] == ref["global_step"]
    assert _strip(resumed["history"]) == _strip(ref["history"])
    a, b = _weights(ref_dir / "last.ckpt"), _weights(out / "last.ckpt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(_weights(ref_dir / "best.ckpt")["model.head.heads.flavour.weight"],
                       _weights(out / "best.ckpt")["model.head.heads.flavour.weight"])


def test_resume_extends_a_finished_run(tiny_config, dataset, tmp_path):
    """--resume --epochs N continues a finished run (constant learning rate) where it ended."""
    out = tmp_path / "run"
    common = ["--out", str(out), "--max-events", "64", "--set", "schedule.name=none"]
    assert main(["--config", str(tiny_config), "--data", str(dataset), "--epochs", "1", *common]) == 0
    first = json.loads((out / "run.json").read_text())
    assert main(["--resume", "--epochs", "2", *common]) == 0
    run = json.loads((out / "run.json").read_text())
    assert [h["epoch"] for h in run["history"]] == [0, 1]
    assert _strip(run["history"][:1]) == _strip(first["history"])
    assert run["global_step"] == 2 * first["global_step"]


# -- fine-tuning ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_init_from_with_freeze(uninterrupted, tiny_config, dataset, tmp_path):
    """--init-from copies matching weights; frozen parameters (and their BatchNorm statistics)
    stay exactly as in the source checkpoint, the rest trains; a flavour head with another
    number of classes (5: with cosmics) is re-initialised."""
    src_dir, _ = uninterrupted
    out = tmp_path / "ft"
    assert main(["--config", str(tiny_config), "--data", str(dataset), "--out", str(out),
                 "--init-from", str(src_dir / "best.ckpt"), "--epochs", "1", "--max-events", "96",
                 "--set", "freeze=[encoder.input_norm, encoder.blocks.0]",
                 "--set", "num_classes.flavour=5"]) == 0
    src, new = _weights(src_dir / "best.ckpt"), _weights(out / "last.ckpt")
    frozen = [k for k in new if k.startswith(("model.encoder.input_norm.", "model.encoder.blocks.0."))]
    trained = [k for k in new if k.startswith(("model.encoder.blocks.1.", "model.head.trunk."))
               and new[k].is_floating_point()]
    assert frozen and trained
    assert all(torch.equal(src[k], new[k]) for k in frozen)          # weights and BN statistics
    assert all(not torch.equal(src[k], new[k]) for k in trained)
    assert new["model.head.heads.flavour.weight"].shape[0] == 5
    run = json.loads((out / "run.json").read_text())
    assert run["frozen"] == ["encoder.input_norm", "encoder.blocks.0"]
    assert [r[0] for r in run["init_from"]["reinitialised"]] == ["head.heads.flavour.weight",
                                                                 "head.heads.flavour.bias"]
    assert run["model"]["trainable_parameters"] < run["model"]["parameters"]


def test_freeze_by_depth():
    from gnnu.models import create_model
    from gnnu.models.checkpoint import freeze, parameter_units

    cfg = load_train_config(base=TINY, require_data=False)
    model = create_model(cfg.model, 7, {"flavour": 4}, ("nu_energy",))
    units = parameter_units(model)
    assert units[:3] == ["encoder.input_norm", "encoder.blocks.0", "encoder.blocks.1"]
    assert freeze(model, 2) == units[:2]
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("encoder.input_norm.", "encoder.blocks.0.")) for n in frozen)


# -- reproducibility across data-loader workers -------------------------------------------------
@pytest.mark.slow
def test_worker_count_changes_nothing(tiny_config, dataset, tmp_path):
    """Deterministic mode, same seed: training with num_workers 0 and 2 gives the same history
    and bit-identical checkpoints, and gnnu-eval of one checkpoint with --num-workers 0 and 2
    the same metrics.json (timing fields aside) and predictions. Batch order comes from
    EpochSampler alone, so the worker processes may not change anything."""
    import h5py

    from gnnu.cli.eval import main as evaluate

    class LoaderWorkers(pl.Callback):                  # proves the workers were really used
        def on_train_epoch_start(self, trainer, *args):
            self.seen = trainer.train_dataloader.num_workers

    records, used = {}, {}
    for w in (0, 2):
        probe = LoaderWorkers()
        records[w] = train(TrainOptions(
            config=str(tiny_config), data=str(dataset), out=str(tmp_path / f"w{w}"), epochs=2,
            max_events=80, device="cpu", callbacks=(probe,),
            overrides=("batch_size=16", f"num_workers={w}")))
        used[w] = probe.seen
    assert used == {0: 0, 2: 2} and records[0]["global_step"] == 10
    assert _strip(records[0]["history"]) == _strip(records[2]["history"])
    for ckpt in ("best.ckpt", "last.ckpt"):
        a, b = _weights(tmp_path / "w0" / ckpt), _weights(tmp_path / "w2" / ckpt)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), ckpt

    timing = {"throughput_events_per_s", "peak_memory_bytes", "timing"}
    reports = {}
    for w in (0, 2):
        out = tmp_path / f"eval{w}"
        assert evaluate(["--checkpoint", str(tmp_path / "w0" / "best.ckpt"), "--data", str(dataset),
                         "--split", "test", "--out", str(out), "--device", "cpu",
                         "--batch-size", "8", "--num-workers", str(w)]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["timing"]["num_workers"] == w and metrics["n_events"] > 8
        with h5py.File(out / "predictions.h5", "r") as f:
            preds = {}
            f.visititems(lambda k, v: preds.update({k: v[()]}) if isinstance(v, h5py.Dataset) else None)
        assert {"event_id", "scores/flavour", "labels/flavour"} <= preds.keys()
        reports[w] = ({k: v for k, v in metrics.items() if k not in timing}, preds)
    assert reports[0][0] == reports[2][0]
    assert reports[0][1].keys() == reports[2][1].keys()
    assert all(np.array_equal(reports[0][1][k], reports[2][1][k]) for k in reports[0][1])
