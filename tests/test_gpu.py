"""GPU checks of issue 21 (``pytest -m gpu``; step 1 of tools/gpu_check.sh, ≤ 1.5 min on one H100).

Every test here is marked ``gpu`` and runs on the ``device`` fixture: CUDA when torch sees a GPU.
Without one the tests are skipped, saying so — unless ``GNNU_GPU_REHEARSE=1``: then the same
steps run on the CPU at a tiny size (``tools/gpu_check.sh --rehearse``), so that nothing is found
on the GPU that a CPU run could have found. Sizes: on CUDA the models' own configs (EdgeConv
64/128/256, DUNE CVN at 3 × 500 × 500, …) on small batches; in the rehearsal the small versions
of tests/test_gnn_models.py and tests/test_cnn_models.py.

What is checked: bf16 and fp16 autocast training steps of every GNN and CNN (the loss equals the
float32 loss within the precision's tolerance, every gradient is finite, the step changes the
weights); every model's eager inference on the device against the CPU in float32; a one-process
DDP run through gnnu-train; the torch kNN on the device against the CPU's numba kNN (same
neighbour sets up to distance ties); a checkpoint trained on the device evaluated on the device
and on the CPU (same metrics within tolerance); the fast EdgeConv path (gnnu.models.gnn.fast:
graph built on the device, padded, bf16, compiled) against the eager model on the CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from torch_geometric.data import Batch, Data

from test_knn import _view_like
from test_train import TINY, make_dataset

from gnnu.config import CONFIG_ROOT
from gnnu.graph.dataset import GraphDataset
from gnnu.graph.knn import knn
from gnnu.models import create_model, model_inputs
from gnnu.models.registry import load_model_config

pytestmark = pytest.mark.gpu

REHEARSE = os.environ.get("GNNU_GPU_REHEARSE") == "1"
CUDA = torch.cuda.is_available()
GNNS = ("edgeconv", "dynedgeconv", "gravnet")
CNNS = ("nova_cvn", "dune_cvn", "resnet18")
#: Rehearsal sizes (tests/test_gnn_models.py, tests/test_cnn_models.py).
SMALL = {
    "edgeconv": {"widths": [16, 32]},
    "dynedgeconv": {"k": 4, "widths": [16, 32]},
    "gravnet": {"blocks": 2, "dense": [16], "space_dimensions": 3, "propagate_dimensions": 8,
                "out_channels": 16, "k": 4},
    "nova_cvn": {"width": 0.125},
    "dune_cvn": {"stem_channels": 8, "channels": [8, 16, 16, 32], "blocks": [1, 1, 1, 1]},
    "resnet18": {},
}
F_IN = 7                                      # wire_cm, time_cm, charge, width_cm, 3 × view


@pytest.fixture(scope="module")
def device() -> torch.device:
    if CUDA:
        return torch.device("cuda")
    if REHEARSE:
        return torch.device("cpu")
    pytest.skip("needs a CUDA device (GNNU_GPU_REHEARSE=1 rehearses these steps on the CPU)")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, device) -> Path:
    """A gnnu-build dataset of synthetic events (72 hits each, kNN-16 per view, numba)."""
    return make_dataset(tmp_path_factory.mktemp("gpu"), 320 if device.type == "cuda" else 120)


@pytest.fixture(autouse=True)
def _no_tf32():
    """float32 on the GPU means float32 here (cuDNN convolutions default to TF32)."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


# -- inputs ----------------------------------------------------------------------------------------
def model_config(name: str, full: bool) -> dict:
    """The model's own config (``full``) or its rehearsal size; no dropout, no ImageNet weights."""
    cfg = yaml.safe_load((CONFIG_ROOT / "models" / f"{name}.yaml").read_text())
    params = dict(cfg.get("params") or {}) if full else dict(SMALL[name])
    if name == "resnet18":
        params.update(weights="none", input_norm=(params.get("input_norm", "none") if full else "none"))
    heads = {**cfg.get("heads", {}), "dropout": 0.0, "enabled": None}
    heads = {k: v for k, v in heads.items() if v is not None}
    out = {"name": name, "params": params, "heads": heads}
    if "image" in cfg:
        out["image"] = cfg["image"]
    load_model_config(out)                    # valid, or fail here
    return out


def graph_batch(n_events: int, nodes: int, seed: int) -> Batch:
    """Events of ``nodes`` hits in 3 views: x [n, 7], pos (cm), view_id, stored kNN-16 per view."""
    rng = np.random.default_rng(seed)
    graphs = []
    for _ in range(n_events):
        view = np.sort(rng.integers(0, 3, nodes))
        pos = (rng.normal(size=(nodes, 2)) * 30).astype(np.float32)
        x = np.concatenate([pos / 30, rng.uniform(0, 1, (nodes, 2)), np.eye(3)[view]], 1)
        edges = knn(pos, 16, view, backend="numba")
        graphs.append(Data(x=torch.from_numpy(x.astype(np.float32)), pos=torch.from_numpy(pos),
                           view_id=torch.from_numpy(view), edge_index=torch.from_numpy(edges)))
    return Batch.from_data_list(graphs)


def model_and_batch(name: str, device: torch.device, seed: int = 0):
    """(model in train mode on ``device``, its input batch on ``device``, batch size)."""
    full = device.type == "cuda"
    torch.manual_seed(seed)
    cfg = model_config(name, full)
    if model_inputs(name) == "graph":
        n = 4 if full else 2
        batch = graph_batch(n, 1500 if full else 60, seed).to(device)
        model = create_model(cfg, in_features=F_IN)
    else:
        n = 4 if full else 2
        side = {"dune_cvn": 500, "nova_cvn": 500, "resnet18": 224}[name] if full else 48
        rng = np.random.default_rng(seed)
        batch = {"image": torch.from_numpy(rng.integers(0, 256, (n, 3, side, side), dtype=np.uint8)).to(device)}
        model = create_model(cfg, in_features=3)
    return model.to(device).train(), batch, n


def heads_loss(out: dict, targets: dict) -> torch.Tensor:
    """Cross-entropy of every classification head plus the squared error of every regressor."""
    loss = 0.0
    for name, t in targets.items():
        o = out[name].float()
        loss = loss + (torch.nn.functional.cross_entropy(o, t) if t.dtype == torch.long
                       else torch.nn.functional.mse_loss(o, t))
    return loss


def random_targets(out: dict, n: int, device, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {name: (torch.randint(0, v.size(1), (n,), generator=g) if v.dim() == 2
                   else torch.rand(n, generator=g)).to(device) for name, v in out.items()}


# -- 1. AMP training steps ---------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("name", GNNS + CNNS)
def test_amp_training_step(name, precision, device):
    """One autocast training step: the loss equals the float32 loss at the same weights within
    the precision's tolerance (bf16 5 %, fp16 1 %, + 0.05 absolute: the dynamic models choose
    neighbours from half-precision features), every gradient is finite and not all zero, and
    the optimiser step changes the weights. fp16 goes through a GradScaler, whose first scales
    may overflow: such a step is skipped (weights unchanged) and retried at a lower scale."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    model, batch, n = model_and_batch(name, device)
    with torch.no_grad():
        targets = random_targets(model(batch), n, device)
        ref = float(heads_loss(model(batch), targets))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    for attempt in range(8):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype):
            loss = heads_loss(model(batch), targets)
        assert torch.isfinite(loss)
        if attempt == 0:
            rtol = 0.05 if precision == "bf16" else 0.01
            assert abs(float(loss.detach()) - ref) <= rtol * abs(ref) + 0.05, (float(loss.detach()), ref)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        finite = all(g is not None and torch.isfinite(g).all() for g in grads)
        assert finite or precision == "fp16", "non-finite gradient in bf16"
        scaler.step(opt)                       # skipped when the scaled gradients overflowed
        scaler.update()
        if finite:
            break
    else:
        pytest.fail("every fp16 step overflowed, down to a scale of " + str(scaler.get_scale()))
    assert sum(float(g.abs().sum()) for g in grads) > 0
    changed = sum(not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))
    assert changed >= len(before) // 2, f"{changed} of {len(before)} tensors changed"


# -- 2. every model's eager inference on the device against the CPU ----------------------------------
@pytest.mark.parametrize("name", GNNS + CNNS)
def test_eager_inference_on_device_equals_cpu(name, device):
    """The torch path every op takes on a GPU gives the CPU's float32 outputs (TF32 off; the
    dynamic models' kNN on the device is the torch backend, on the CPU the numba one)."""
    model, batch, _ = model_and_batch(name, device, seed=3)
    model.eval()
    with torch.no_grad():
        got = model(batch)
        cpu_batch = batch.cpu() if hasattr(batch, "cpu") else {k: v.cpu() for k, v in batch.items()}
        want = model.cpu()(cpu_batch)
    for head, v in want.items():
        torch.testing.assert_close(got[head].cpu(), v, rtol=1e-3, atol=1e-3, msg=head)


# -- 3. one-process DDP through gnnu-train -----------------------------------------------------------
def test_one_process_ddp_through_gnnu_train(dataset, device, tmp_path):
    """gnnu-train --set strategy=ddp on one device (NCCL on a GPU, gloo in the rehearsal), bf16,
    in its own process: completes, one rank, DDP recorded, checkpoints written."""
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "epochs": 1, "deterministic": False}))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "gnnu.cli.train", "--config", str(cfg), "--data", str(dataset),
           "--out", str(out), "--device", "cuda" if device.type == "cuda" else "cpu",
           "--set", "strategy=ddp", "--set", "devices=1", "--set", "precision=bf16-mixed",
           "--max-events", "256"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["world_size"] == 1
    assert run["strategy"] == "DDPStrategy" and run["precision"] == "bf16-mixed"
    assert run["accelerator"] == ("gpu" if device.type == "cuda" else "cpu")
    assert (out / "best.ckpt").exists() and (out / "last.ckpt").exists()


# -- 4. kNN on the device against the CPU ----------------------------------------------------------
def assert_same_neighbours_up_to_ties(got: np.ndarray, want: np.ndarray, pos: np.ndarray, rtol: float):
    """Per centre the same number of neighbours and the same set, except points whose float64
    distance equals the centre's k-th distance within ``rtol`` (ties and near-ties)."""
    assert got.shape == want.shape
    np.testing.assert_array_equal(got[1], want[1])               # centres, in order, counts
    p = pos.astype(np.float64)
    bounds = np.flatnonzero(np.diff(want[1])) + 1
    swapped = 0
    for g_src, w_src, i in zip(np.split(got[0], bounds), np.split(want[0], bounds),
                               want[1][np.r_[0, bounds]]):
        differ = set(g_src.tolist()) ^ set(w_src.tolist())
        if not differ:
            continue
        d = np.linalg.norm(p[list(differ) + w_src.tolist()] - p[i], axis=1)
        kth = d[len(differ):].max()
        assert np.all(np.abs(d[:len(differ)] - kth) <= rtol * kth + 1e-12), (i, differ)
        swapped += 1
    return swapped


@pytest.mark.parametrize("dim", [2, 4, 64])
def test_knn_on_device_equals_cpu(dim, device):
    """Detector-like views (2-D, straight tracks, blobs, coincident hits: many exact ties),
    GravNet's learnt space (4-D) and dynamic EdgeConv's features (64-D): the torch backend on the
    device picks the numba backend's neighbours, up to ties within float32 rounding (float32
    input) — and with float64 input in 2-D up to ties within 1e-12 (the GPU's compiled distance
    pass may fuse a multiply-add, so exactly tied distances can differ in the last bit)."""
    if dim == 2:
        sizes = (300, 1000, 2000) if device.type == "cuda" else (300, 200)
        pts = [_view_like(s, n) for s, n in enumerate(sizes)]
    else:
        rng = np.random.default_rng(dim)
        pts = [rng.normal(size=(n, dim)) for n in ((500, 2500, 40) if device.type == "cuda" else (200, 40))]
    pos = np.concatenate(pts)
    batch = np.repeat(np.arange(len(pts)), [len(p) for p in pts])
    for include_self in (False, True):
        want = knn(pos, 16, batch, include_self, backend="numba")
        p32 = torch.from_numpy(pos.astype(np.float32)).to(device)
        got = knn(p32, 16, torch.from_numpy(batch).to(device), include_self, backend="torch")
        assert got.device.type == device.type
        assert_same_neighbours_up_to_ties(got.cpu().numpy(),
                                          knn(pos.astype(np.float32).astype(np.float64), 16, batch,
                                              include_self, backend="numba"),
                                          pos.astype(np.float32), rtol=1e-5)
        if dim == 2:
            exact = knn(torch.from_numpy(pos).to(device), 16, torch.from_numpy(batch).to(device),
                        include_self, backend="torch")
            assert_same_neighbours_up_to_ties(exact.cpu().numpy(), want, pos, rtol=1e-12)


# -- 5. a checkpoint trained on the device, evaluated on the CPU -------------------------------------
def test_checkpoint_trained_on_device_evaluates_on_cpu(dataset, device, tmp_path):
    """Train on the device (bf16, one epoch), evaluate the checkpoint there and on the CPU: the
    same events, accuracy within 2 events, every score within 0.02."""
    from gnnu.train.inference import evaluate_checkpoint
    from gnnu.train.run import TrainOptions, train

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "epochs": 1, "deterministic": False,
                                   "precision": "bf16-mixed"}))
    dev = "cuda" if device.type == "cuda" else "cpu"
    train(TrainOptions(config=str(cfg), data=str(dataset), out=str(tmp_path / "run"), device=dev))
    ckpt = tmp_path / "run" / "best.ckpt"
    here = evaluate_checkpoint(ckpt, dataset, "test", tmp_path / "here", device=dev, plots=False)
    cpu = evaluate_checkpoint(ckpt, dataset, "test", tmp_path / "cpu", device="cpu", plots=False)
    n = cpu["n_events"]
    assert here["n_events"] == n > 0 and cpu["device"] == "cpu"
    assert abs(here["accuracy"] - cpu["accuracy"]) <= 2 / n
    with h5py.File(tmp_path / "here" / "predictions.h5") as a, h5py.File(tmp_path / "cpu" / "predictions.h5") as b:
        np.testing.assert_array_equal(a["event_id"][()], b["event_id"][()])
        np.testing.assert_allclose(a["scores/flavour"][()], b["scores/flavour"][()], atol=0.02)


# -- 6. the fast EdgeConv path on the device against the eager model on the CPU ----------------------
def test_fast_edgeconv_on_device_equals_eager_cpu(dataset, device):
    """Graph built on the device (kNN per event and view), padded packs: float32 with float64
    distances equals the CPU model on the stored graph to 1e-4; bf16 compiled (on a GPU; the
    rehearsal runs it eagerly — the CPU's compilation is tests/test_fast_inference.py's slow
    test) within 0.05 + 0.05·|logit|, with the float32 prediction wherever its margin is > 0.1."""
    from gnnu.models.gnn.fast import FastEdgeConv

    ds = GraphDataset(dataset, "all")
    n = 256 if device.type == "cuda" else 16
    batch = Batch.from_data_list([ds[i] for i in range(n)])
    model = create_model(model_config("edgeconv", device.type == "cuda"), in_features=batch.x.size(1))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    model.eval()
    with torch.no_grad():
        want = model(batch)
    model.to(device)
    on_device = batch.to(device)
    budget = max(4096, batch.num_nodes // 2)                 # two packs
    exact = FastEdgeConv(model, graphs="knn", knn_dtype=torch.float64, node_budget=budget)(on_device)
    for head, v in want.items():
        torch.testing.assert_close(exact[head].cpu(), v, rtol=1e-4, atol=1e-4, msg=head)
    fast = FastEdgeConv(model, graphs="knn", precision="bf16", compile=device.type == "cuda",
                        node_budget=budget)
    for _ in range(2):                                       # the second call reuses the compiled code
        got = {h: v.cpu() for h, v in fast(on_device).items()}
    for head, v in want.items():
        torch.testing.assert_close(got[head], v, rtol=0.05, atol=0.05, msg=head)
    top = want["flavour"].topk(2, dim=1).values
    sure = (top[:, 0] - top[:, 1]) > 0.1
    assert torch.equal(got["flavour"].argmax(1)[sure], want["flavour"].argmax(1)[sure])
