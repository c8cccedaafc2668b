"""One table for issue #9: every model on the same simulated events, on the device at hand.

What it measures, in one run (medians of ``--repeats`` timed passes, ``--warmup`` passes first
and not counted; the models' timed passes interleaved, so drift of the machine's speed hits every
model alike; on a GPU every pass is timed with CUDA events and synchronised):

- per model (``--models``, configs under ``configs/models/``): inference events/s and training
  events/s (forward + backward + AdamW step on the flavour cross-entropy) on one batch of
  ``--batch`` events that stays on the device (data loading excluded); peak memory of each
  (``torch.cuda.max_memory_allocated``, GPU only); FLOPs per event (gnnu's counter, the one
  gnnu-train records); bytes per event (sum of the outputs of every leaf module in one inference
  pass, written once and read once: a lower bound on memory traffic);
- the floor of each model: max(FLOPs / matmul rate, bytes / memory bandwidth) per event, with
  the device's matmul rate (square matmuls of ``--matmul-size``, fp32 and bf16) and copy
  bandwidth measured in the same run; "of floor" = measured time / floor time;
- the data loader: graphs/s of the graph dataset and images/s of each image preset (reading,
  rendering and collating, ``--loader-workers`` processes), i.e. what can feed the models;
- kNN throughput of each available backend (numba, scipy and torch on the CPU; torch on the GPU;
  torch-cluster where installed) at 1 000, 3 000 and 10 000 points, k = 16, in 2, 4 and 64
  dimensions (``--knn-dims``);
- the fast EdgeConv inference path (:mod:`gnnu.models.gnn.fast`: packed, padded, ``--precision``,
  compiled on a GPU) at each of ``--fast-batches``, with its graph built on the device from the
  hits' positions (kNN 16 per event and view: "graph built on device" = yes, the time includes
  it) and on the stored graph; its agreement with the eager model on the same batch and, for the
  device-built graph, the share of nodes whose neighbour set equals the stored one. The eager
  rows: EdgeConv reads the stored graph (no), dynamic EdgeConv and GravNet build their graphs in
  the model (yes, in feature and learnt space), CNNs read pixel maps (n/a; rendering excluded).
  The target line of docs/design.md#performance-method (≥ 20 000 events/s with graph building on the device, ≥ 10× DUNE
  CVN at equal batch) is printed from these rows;
- the loader with 0 and ``--loader-workers`` processes (default: every core, at most 16), and
  whether it feeds the fastest GNN row.

A model that fails prints its error and the run goes on (a GPU run is one shot). ``--json``
writes every figure to a file as well.

Events: ``--events`` DUNE-like events from gnnu's simulator (four flavours round-robin, seed
``--seed``), built with the default graph config (kNN 16 per view) into a temporary dataset;
every model reads the same events (graphs, or pixel maps rendered with its config's image
preset). Prints the machine, versions and the exact command first, then Markdown tables.

    python tools/bench.py --device cpu --events 48 --batch 8 --repeats 3
    python tools/bench.py --device cuda --events 512 --batch 64 --repeats 10 --precision bf16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from _env import describe
from gnnu.config import CONFIG_ROOT
from gnnu.graph.knn import BACKENDS, has_torch_cluster, knn
from gnnu.models import count_parameters, create_model, flops_per_event, model_inputs
from gnnu.models.registry import load_model_config

MODELS = ("edgeconv", "dynedgeconv", "gravnet", "nova_cvn", "dune_cvn", "resnet18")


# -- timing ---------------------------------------------------------------------------------------
def timed(fn, device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            out.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return out


def peak_bytes(fn, device: torch.device) -> int | None:
    """GPU peak allocation during one call of ``fn`` (None on the CPU)."""
    if device.type != "cuda":
        fn()
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated(device))


def device_rates(device: torch.device, size: int, warmup: int, repeats: int) -> dict[str, float]:
    """Measured matmul FLOP/s (fp32, bf16) and copy bandwidth (bytes/s, read + write)."""
    rates = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        t = statistics.median(timed(lambda: a @ b, device, warmup, repeats))
        rates[f"matmul_{name}"] = 2 * size**3 / t
    n = (1 << 28) if device.type == "cuda" else (1 << 25)
    src = torch.empty(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    t = statistics.median(timed(lambda: dst.copy_(src), device, warmup, repeats))
    rates["bandwidth"] = 2 * src.numel() * src.element_size() / t
    return rates


# -- data -----------------------------------------------------------------------------------------
def simulated_dataset(root: Path, events: int, seed: int) -> Path:
    """``events`` simulated DUNE-like events → default graph dataset under ``root``."""
    from gnnu.detectors import load_detector
    from gnnu.graph.build import BuildOptions, build_dataset
    from gnnu.io.hitfile import write_hits
    from gnnu.sim.simulate import NEUTRINO_FLAVOURS, simulate_event

    det = load_detector("dune")
    evs = [simulate_event(det, i, NEUTRINO_FLAVOURS[i % len(NEUTRINO_FLAVOURS)], seed)
           for i in range(events)]
    write_hits(root / "events.h5", evs, det)
    build_dataset(BuildOptions(inputs=(str(root / "events.h5"),), out=str(root / "graphs"),
                               split=(1.0, 0.0, 0.0)))
    return root / "graphs"


def first_batch(dataset, batch: int, nodes_per_event: float | None = None):
    """The timed batch: the first ``batch`` events, or for graphs with ``nodes_per_event`` set
    (``--nodes-per-event``) the ``batch`` events nearest that node count, in event order (~3 k
    nodes/event was issue 17's size)."""
    from torch.utils.data import Subset

    from gnnu.graph.dataset import GraphDataset
    from gnnu.train.data import make_loader

    if nodes_per_event is not None and isinstance(dataset, GraphDataset):
        sizes = np.array([dataset[i].num_nodes for i in range(len(dataset))])
        events = np.sort(np.argsort(np.abs(sizes - nodes_per_event), kind="stable")[:batch])
        dataset = Subset(dataset, events.tolist())
    return next(iter(make_loader(dataset, batch, shuffle=False)))


def loader_rate(dataset, batch: int, workers: int, repeats: int) -> float:
    """Events/s of reading + collating the whole dataset (median of ``repeats`` passes)."""
    from gnnu.train.data import make_loader

    rates = []
    for _ in range(repeats):
        loader = make_loader(dataset, batch, shuffle=False, num_workers=workers)
        t0 = time.perf_counter()
        n = sum(int(b["flavour"].numel()) for b in loader)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


# -- one model ------------------------------------------------------------------------------------
def activation_bytes(model: torch.nn.Module, batch) -> float:
    """Bytes written by every leaf module in one inference pass, ×2 (written and read once)."""
    total = [0]

    def hook(_module, _inputs, output):
        for t in (output if isinstance(output, (tuple, list)) else [output]):
            if isinstance(t, torch.Tensor):
                total[0] += t.numel() * t.element_size()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for h in handles:
            h.remove()
    return 2.0 * total[0]


def setup_model(name: str, data: Path, args, device: torch.device) -> dict:
    """One model on its first batch, ready to time: its static facts (parameters, FLOPs and bytes
    per event, nodes per event) and the ``infer`` / ``step`` closures (inference without gradient;
    forward + backward + AdamW on the flavour loss)."""
    from gnnu.graph.dataset import GraphDataset
    from gnnu.train.data import open_dataset, to_device

    cfg = load_model_config(CONFIG_ROOT / "models" / f"{name}.yaml")
    if name == "resnet18":                  # ImageNet weights are not needed to time it
        cfg = load_model_config({**_as_dict(cfg), "params": {**_as_dict(cfg)["params"], "weights": "none"}})
    dataset = open_dataset(data, "train", cfg) if model_inputs(name) == "image" else GraphDataset(data, "train")
    model = create_model(cfg, in_features=len(dataset.feature_names)).to(device)
    batch = to_device(first_batch(dataset, args.batch, args.nodes_per_event), device)
    n = args.batch
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16"
           else torch.autocast(device.type, enabled=False))

    def infer():
        model.eval()
        with torch.no_grad(), amp:
            model(batch)

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    target = batch["flavour"].view(-1)

    def step():
        model.train()
        with amp:
            loss = torch.nn.functional.cross_entropy(model(batch)["flavour"].float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {"model": name, "parameters": count_parameters(model),
            "flops": flops_per_event(model, batch), "bytes": activation_bytes(model.eval(), batch) / n,
            "nodes": float(batch.num_nodes) / n if hasattr(batch, "num_nodes") else None,
            "batch": n, "graph_on_device": ("n/a" if model_inputs(name) == "image" else
                                            "no" if name == "edgeconv" else "yes (in the model)"),
            "infer_fn": infer, "step_fn": step, "model_fn": lambda: model}


def _time_rows(rows: list[dict], args, device: torch.device) -> None:
    """Inference and training events/s of ``rows`` (set up by :func:`setup_model`), their timed
    passes interleaved (model 1, model 2, …, then again): the machine's drift hits every model
    alike, so the ratios between models hold even when its speed moves during the run. Medians of
    ``--repeats`` passes after ``--warmup`` untimed ones; peak memory of one pass each (GPU only)."""
    for kind in ("infer", "step"):
        times: dict[str, list[float]] = {r["model"]: [] for r in rows}
        for r in rows:
            timed(r[f"{kind}_fn"], device, args.warmup, 0)
        for _ in range(args.repeats):
            for r in rows:
                times[r["model"]] += timed(r[f"{kind}_fn"], device, 0, 1)
        for r in rows:
            key = "infer" if kind == "infer" else "train"
            r[key] = args.batch / statistics.median(times[r["model"]])
            r[f"mem_{key}"] = peak_bytes(r[f"{kind}_fn"], device)


def bench_model(name: str, data: Path, args, device: torch.device) -> dict:
    """One model set up and timed on its own (the GPU order: a row is kept as soon as measured)."""
    row = setup_model(name, data, args, device)
    _time_rows([row], args, device)
    return _public(row)


def bench_models(names: list[str], data: Path, args, device: torch.device, failed: list) -> list[dict]:
    """Every model set up first, then timed interleaved (:func:`_time_rows`; the CPU order, where
    the machine's speed drifts). A model that fails to set up is reported in ``failed``."""
    rows = []
    for name in names:
        t0 = time.perf_counter()
        try:
            rows.append(setup_model(name, data, args, device))
        except Exception as exc:
            traceback.print_exc()
            failed.append({"model": name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        print(f"  {name}: set up in {time.perf_counter() - t0:.0f} s", flush=True)
    _time_rows(rows, args, device)
    return [_public(r) for r in rows]


def _public(row: dict) -> dict:
    """A row without its closures and its model (what is printed and written to JSON)."""
    return {k: v for k, v in row.items() if not k.endswith("_fn")}


def bench_fast(data: Path, args, device: torch.device, batch_size: int, graphs: str) -> dict:
    """The fast EdgeConv path on one batch of ``batch_size`` events (module docstring)."""
    from gnnu.graph.dataset import GraphDataset
    from gnnu.models.gnn.fast import FastEdgeConv
    from gnnu.train.data import to_device

    cfg = load_model_config(CONFIG_ROOT / "models" / "edgeconv.yaml")
    dataset = GraphDataset(data, "train")
    model = create_model(cfg, in_features=len(dataset.feature_names)).to(device).eval()
    batch = to_device(first_batch(dataset, batch_size, args.nodes_per_event), device)
    n = int(batch.num_graphs)
    use_compile = args.compile == "yes" or (args.compile == "auto" and device.type == "cuda")
    fast = FastEdgeConv(model, graphs=graphs, precision=args.precision, compile=use_compile)
    t0 = time.perf_counter()
    got = fast(batch)                                   # compiles (once per shape)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    first_s = time.perf_counter() - t0
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16"
           else torch.autocast(device.type, enabled=False))
    with torch.no_grad(), amp:
        want = model(batch)
    agree = float((got["flavour"].argmax(1) == want["flavour"].argmax(1)).float().mean())
    diff = float((got["flavour"].float() - want["flavour"].float()).abs().max())
    same_graph = None
    if graphs == "knn":
        (a,), (b,) = (FastEdgeConv(model, graphs=g, node_budget=batch.num_nodes).packs(batch)
                      for g in ("knn", "stored"))
        if torch.equal(a.x, b.x):                       # the same node order (grouped by view)
            sa, sb = a.index.sort(dim=1).values, b.index.sort(dim=1).values
            k = min(sa.size(1), sb.size(1))
            same = (sa[:, :k] == sb[:, :k]).all(1) & (sa[:, k:] == a.index.size(0)).all(1) & \
                (sb[:, k:] == b.index.size(0)).all(1)
            same_graph = float(same[:batch.num_nodes].float().mean())
    t = timed(lambda: fast(batch), device, args.warmup, args.repeats)
    mem = peak_bytes(lambda: fast(batch), device)
    return {"model": f"edgeconv fast ({'kNN built on device' if graphs == 'knn' else 'stored graph'})",
            "parameters": count_parameters(model), "flops": None, "bytes": None,
            "infer": n / statistics.median(t), "train": None, "mem_infer": mem, "mem_train": None,
            "batch": n, "graph_on_device": "yes (kNN 16 per view)" if graphs == "knn" else "no",
            "compiled": use_compile, "compile_s": fast.compile_s, "first_call_s": first_s,
            "build_s": fast.last_build_s, "agree_flavour": agree, "max_abs_logit_diff": diff,
            "same_graph": same_graph, "nodes": float(batch.num_nodes) / n}


def _as_dict(cfg) -> dict:
    from gnnu.config import to_dict

    return to_dict(cfg)


# -- kNN ------------------------------------------------------------------------------------------
def bench_knn(device: torch.device, sizes, dims, args) -> list[tuple[str, int, int, float]]:
    """(backend on device, dimensions, points, events/s) of kNN k = 16 on one event of each size,
    points normal-distributed in each number of dimensions (2: a detector view; 4: GravNet's learnt
    space; 64, 128: dynamic EdgeConv's features). scipy and the torch brute force on the CPU are
    timed up to 3 000 points beyond 2-D (they take seconds there), the latter in CPU runs only."""
    rng = np.random.default_rng(0)
    rows = []
    for dim in dims:
        for n in sizes:
            pts = (rng.normal(size=(n, dim)) * 50).astype(np.float32)
            cpu = torch.device("cpu")
            cases = [("numba (cpu)", lambda p=pts: knn(torch.from_numpy(p), 16, backend="numba"), cpu)]
            if dim == 2 or n <= 3000:
                cases.append(("scipy (cpu)", lambda p=pts: knn(p, 16, backend="scipy"), cpu))
                if device.type == "cpu":         # seconds per call beyond 2-D: not in a GPU run
                    cases.append(("torch (cpu)", lambda p=torch.from_numpy(pts): knn(p, 16, backend="torch"),
                                  cpu))
            if device.type == "cuda":
                g = torch.from_numpy(pts).to(device)
                cases.append(("torch (cuda)", lambda p=g: knn(p, 16, backend="torch"), device))
            if has_torch_cluster() and "torch_cluster" in BACKENDS:
                target = torch.from_numpy(pts).to(device)
                cases.append((f"torch-cluster ({device.type})",
                              lambda p=target: knn(p, 16, backend="torch_cluster"), device))
            for label, fn, dev in cases:
                rows.append((label, dim, n,
                             1.0 / statistics.median(timed(fn, dev, args.warmup, args.repeats))))
    return rows


# -- report ---------------------------------------------------------------------------------------
def jobs_in_order(data: Path, args, device: torch.device) -> list[tuple[str, object]]:
    """The rows to measure, the target's first: DUNE CVN and EdgeConv (eager), the fast path at
    the first of ``--fast-batches``, the other models, then the fast path at the other batches."""
    names = [m for m in args.models.split(",") if m]
    first = sorted(names, key=lambda m: (m not in ("dune_cvn", "edgeconv"), names.index(m)))
    batches = ([] if args.fast_batches == "none" or "edgeconv" not in names else
               [int(b) for b in (args.fast_batches or str(args.batch)).split(",") if b])

    def fast(b):
        return [(f"edgeconv fast, {g}, batch {b}", lambda g=g: bench_fast(data, args, device, b, g))
                for g in ("knn", "stored")]

    jobs = []
    for m in first:
        jobs.append((m, lambda m=m: bench_model(m, data, args, device)))
        if m == "edgeconv" and batches:
            jobs += fast(batches[0])
    for b in batches[1:]:
        jobs += fast(b)
    return jobs


def write_json(path: str | None, report: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(report, indent=2, default=str) + "\n")


def _mib(v):
    return "n/a" if v is None else f"{v / 2**20:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--events", type=int, default=48, help="simulated events (≥ batch)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--loader-workers", type=int, default=min(16, os.cpu_count() or 1),
                    help="loader processes of the second loader row (default: every core, ≤ 16)")
    ap.add_argument("--fast-batches", default="",
                    help="batch sizes of the fast EdgeConv rows (default: --batch); 'none' skips them")
    ap.add_argument("--compile", choices=("auto", "yes", "no"), default="auto",
                    help="torch.compile the fast path (auto: on a GPU only)")
    ap.add_argument("--json", help="also write every figure to this JSON file")
    ap.add_argument("--interleave", choices=("auto", "yes", "no"), default="auto",
                    help="time the models' passes interleaved after setting all up (auto: on the CPU, "
                         "whose speed drifts; on a GPU each row is timed and kept in turn)")
    ap.add_argument("--matmul-size", type=int, default=2048)
    ap.add_argument("--knn-sizes", default="1000,3000,10000")
    ap.add_argument("--knn-dims", default="2,4,64", help="dimensions of the kNN table's points")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", help="use this graph dataset instead of simulating (train split)")
    ap.add_argument("--nodes-per-event", type=float,
                    help="time the GNNs on the --batch events nearest this node count (default: the "
                         "first --batch events); the CNNs' cost does not depend on it")
    args = ap.parse_args()
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and
                                                                torch.cuda.is_available()) else "cpu")
    print(describe())
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
          f"CUDA {torch.version.cuda}, torch threads {torch.get_num_threads()}, "
          f"precision {args.precision}, batch {args.batch}")
    report = {"command": describe().splitlines()[0], "device": (torch.cuda.get_device_name(device)
              if device.type == "cuda" else "cpu"), "torch": torch.__version__,
              "cuda": torch.version.cuda, "precision": args.precision, "batch": args.batch}
    rates = device_rates(device, args.matmul_size, args.warmup, args.repeats)
    print(f"\nmeasured: matmul fp32 {rates['matmul_fp32'] / 1e12:.3g} TFLOP/s, bf16 "
          f"{rates['matmul_bf16'] / 1e12:.3g} TFLOP/s, copy bandwidth {rates['bandwidth'] / 1e9:.3g} GB/s")
    matmul = rates["matmul_bf16" if args.precision == "bf16" else "matmul_fp32"]
    report["rates"] = rates
    with tempfile.TemporaryDirectory(prefix="gnnu-bench-") as tmp:
        t0 = time.perf_counter()
        data = Path(args.data) if args.data else simulated_dataset(Path(tmp), args.events, args.seed)
        print(f"data: {data} ({time.perf_counter() - t0:.0f} s to simulate and build)")
        rows, failed = [], []
        report["models"], report["failed"] = rows, failed
        if args.interleave == "yes" or (args.interleave == "auto" and device.type == "cpu"):
            names = [m for m in args.models.split(",") if m]
            rows += bench_models(names, data, args, device, failed)
            jobs = [j for j in jobs_in_order(data, args, device) if j[0] not in names]
        else:
            jobs = jobs_in_order(data, args, device)
        for label, job in jobs:
            t0 = time.perf_counter()
            try:
                r = job()
                rows.append(r)
                print(f"  {label}: {r['infer']:,.1f} inference events/s"
                      + (f", {r['train']:,.1f} training events/s" if r["train"] else "")
                      + f", peak {_mib(r['mem_infer'])} MiB ({time.perf_counter() - t0:.0f} s)", flush=True)
            except Exception as exc:               # one shot on a GPU: report and go on
                traceback.print_exc()
                failed.append({"model": label, "error": f"{type(exc).__name__}: {exc}"})
                print(f"  {label}: FAILED ({type(exc).__name__}: {exc})", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            write_json(args.json, report)          # so far: a run cut short keeps what it measured
        print("\n| model | batch | graph built on device (in the time) | parameters | GFLOP/event | MB/event "
              "| inference events/s | training events/s | peak MiB inference / training | floor events/s "
              "| of floor |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            eager = r["flops"] is not None
            floor = max(r["flops"] / matmul, r["bytes"] / rates["bandwidth"]) if eager else None
            print(f"| {r['model']} | {r['batch']} | {r['graph_on_device']} | {r['parameters']:,} | "
                  + (f"{r['flops'] / 1e9:.3g} | {r['bytes'] / 1e6:.3g} | " if eager else "as edgeconv | n/a | ")
                  + f"{r['infer']:,.1f} | " + (f"{r['train']:,.1f}" if r["train"] else "n/a (inference only)")
                  + f" | {_mib(r['mem_infer'])} / {_mib(r['mem_train'])} | "
                  + (f"{1 / floor:,.0f} | {r['infer'] * floor:.2%} |" if eager else "n/a | n/a |"))
        for f in failed:
            print(f"| {f['model']} | FAILED: {f['error'][:200]} |")
        fast_rows = [r for r in rows if "fast" in r["model"]]
        if fast_rows:
            print("\n| fast path | batch | compiled | compile s | first call s | graph build s (host clock) "
                  "| flavour argmax = eager | max abs logit diff | nodes with the stored neighbour set |")
            print("|---|---|---|---|---|---|---|---|---|")
            for r in fast_rows:
                same = "n/a" if r["same_graph"] is None else f"{r['same_graph']:.4%}"
                print(f"| {r['model']} | {r['batch']} | {r['compiled']} | {r['compile_s']:.1f} | "
                      f"{r['first_call_s']:.1f} | {r['build_s']:.3f} | {r['agree_flavour']:.2%} | "
                      f"{r['max_abs_logit_diff']:.3g} | {same} |")
        gnn = [r for r in rows if r["model"].startswith(("edgeconv", "dynedgeconv", "gravnet"))]
        cnn = {r["model"]: r for r in rows if r["model"] == "dune_cvn"}
        if gnn and cnn:
            print("\ninference ratio to DUNE CVN (same events; its batch " f"{cnn['dune_cvn']['batch']}): "
                  + ", ".join(f"{r['model']} (batch {r['batch']}) {r['infer'] / cnn['dune_cvn']['infer']:.2f}×"
                              for r in gnn))
        built = [r for r in gnn if r["graph_on_device"].startswith("yes")]
        if built:
            best = max(built, key=lambda r: r["infer"])
            ratio = (f", {best['infer'] / cnn['dune_cvn']['infer']:.2f}× DUNE CVN (target ≥ 10× at "
                     "equal batch)" if cnn else "")
            print(f"target (docs/design.md#performance-method, graph built on the device included): best GNN row {best['model']} "
                  f"batch {best['batch']}: {best['infer']:,.0f} events/s (target ≥ 20 000: "
                  f"{'met' if best['infer'] >= 20000 else 'missed'}){ratio}")
        nodes = [r["nodes"] for r in rows if r["nodes"]]
        if nodes:
            print(f"nodes per event in the timed batch: {nodes[0]:,.0f}")

        from gnnu.graph.dataset import GraphDataset
        from gnnu.images.dataset import ImageDataset

        print("\n| data loader (reading + collating; images: + rendering) | workers | events/s |\n|---|---|---|")
        loaders = {}
        for workers in sorted({0, args.loader_workers}):
            for label, ds in (("graphs (GraphDataset)", GraphDataset(data, "train")),
                              ("images dune-cvn (ImageDataset)", ImageDataset(data, "train", "dune-cvn")),
                              ("images resnet-rgb (ImageDataset)", ImageDataset(data, "train", "resnet-rgb"))):
                try:
                    rate = loader_rate(ds, args.batch, workers, min(args.repeats, 3))
                except Exception as exc:
                    print(f"| {label} | {workers} | FAILED: {type(exc).__name__}: {exc} |")
                    continue
                loaders[f"{label}, {workers} workers"] = rate
                print(f"| {label} | {workers} | {rate:,.0f} |")
        report["loaders"] = loaders
        graph_rate = loaders.get(f"graphs (GraphDataset), {args.loader_workers} workers")
        if graph_rate and gnn:
            best = max(gnn, key=lambda r: r["infer"])
            print(f"graph loader with {args.loader_workers} workers: {graph_rate:,.0f} events/s against "
                  f"{best['infer']:,.0f} consumed by {best['model']}: the loader "
                  f"{'limits' if graph_rate < best['infer'] else 'does not limit'} it "
                  f"(docs/design.md#performance-method asks for ≥ 2×: {graph_rate / best['infer']:.2f}×)")
    sizes = [int(s) for s in args.knn_sizes.split(",") if s]
    dims = [int(s) for s in args.knn_dims.split(",") if s]
    print("\n| kNN k = 16 | dimensions | points | events/s |\n|---|---|---|---|")
    report["knn"] = []
    for label, dim, n, rate in bench_knn(device, sizes, dims, args):
        print(f"| {label} | {dim} | {n:,} | {rate:,.1f} |")
        report["knn"].append({"backend": label, "dimensions": dim, "points": n, "events_per_s": rate})
    write_json(args.json, report)


if __name__ == "__main__":
    main()
