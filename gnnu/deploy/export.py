"""``gnnu-export``: a checkpoint as a TorchScript or ONNX file that runs without gnnu (LArSoft's
C++ loads either), with the metadata a caller needs to build its inputs, and a parity check.

:func:`export_checkpoint` wraps the model in its export form (:mod:`gnnu.models.exportable`: raw
node features in, the training standardisation inside, every head's scores out; dynamic numbers
of nodes, edges and events per call), then

- ``torchscript``: ``torch.jit.script`` (data-dependent sizes stay dynamic), saved with the
  metadata as the extra file ``gnnu.json`` (C++: ``torch::jit::load(path, device, extra_files)``);
- ``onnx``: ``torch.onnx.export(dynamo=True)`` with dynamic axes for nodes (``N``), edges
  (``E``) and events (``B``), opset :data:`ONNX_OPSET`; the metadata is the model property
  ``gnnu`` (``InferenceSession.get_modelmeta().custom_metadata_map['gnnu']``). Needs the
  optional packages onnx, onnxruntime and onnxscript (``pip install 'gnnu[export]'``).

Metadata (:func:`export_metadata`, schema ``gnnu-export`` 1.0): the gnnu version, the model, the
inputs in call order with dtype and shape, the node features with units and the standardisation
applied inside, what ``pos`` holds, the graph config (edge rule and k, pixelisation), the
detector, the image preset of CNNs, the outputs with the class names of each head.

:func:`verify_export` runs the written file in a fresh Python process that does not import gnnu
(``gnnu/deploy/parity_worker.py``: ``torch.jit.load`` or onnxruntime) on the first N events of a
dataset's test split, a few events per call, and compares every output with the checkpoint's own
forward pass on the same events: ``parity: max |Δscore| = X on N events``; above
:data:`PARITY_TOLERANCE` it fails. Files are written atomically (:mod:`gnnu.atomic`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .. import __version__
from ..atomic import atomic_path
from ..errors import ConfigError, GnnuError, InputError, OutputExistsError
from ..graph.knn import knn
from ..models.exportable import ExportError, GraphExport, ImageExport, graph_inputs, output_names
from .model import Deployable, load_deployable

FORMATS = ("torchscript", "onnx")
ONNX_OPSET = 18
#: Largest |Δ| between the exported file's outputs and the checkpoint's (float32).
PARITY_TOLERANCE = 1e-4
EXPORT_SCHEMA = "gnnu-export"
EXPORT_VERSION = "1.0"
WORKER = Path(__file__).with_name("parity_worker.py")


class ParityError(GnnuError):
    """The exported file's outputs differ from the checkpoint's by more than the tolerance."""


# -- forms with exactly the inputs a model reads ---------------------------------------------
class _XB(nn.Module):
    def __init__(self, form: GraphExport):
        super().__init__()
        self.form = form

    def forward(self, x: Tensor, batch: Tensor) -> list[Tensor]:
        return self.form(x, x, batch.unsqueeze(0), batch)


class _XPB(_XB):
    def forward(self, x: Tensor, pos: Tensor, batch: Tensor) -> list[Tensor]:
        return self.form(x, pos, batch.unsqueeze(0), batch)


class _XEB(_XB):
    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor) -> list[Tensor]:
        return self.form(x, x, edge_index, batch)


_ADAPTERS = {("x", "batch"): _XB, ("x", "pos", "batch"): _XPB, ("x", "edge_index", "batch"): _XEB}


def export_form(dep: Deployable) -> tuple[nn.Module, list[str]]:
    """(the model's export form in eval mode, its input names in call order)."""
    if dep.inputs == "image":
        return ImageExport(dep.model).eval(), ["image"]
    names = graph_inputs(dep.model)
    stats = dep.feature_stats
    form = GraphExport(dep.model, torch.tensor(stats["mean"]), torch.tensor(stats["std"]))
    return _ADAPTERS[tuple(names)](form).eval(), names


def example_inputs(dep: Deployable, names: list[str]) -> dict[str, Tensor]:
    """Small inputs of the right kinds for tracing: two events of 13 and 9 nodes (GNNs) or two
    blank-but-one-pixel maps of the preset's shape (CNNs)."""
    if dep.inputs == "image":
        shape = dep.config.model.image.preset_object().shape
        image = torch.zeros((2,) + tuple(shape), dtype=torch.uint8)
        image[:, :, shape[1] // 2, shape[2] // 2] = 100
        return {"image": image}
    g = torch.Generator().manual_seed(0)
    sizes = (13, 9)
    n, f = sum(sizes), len(dep.feature_names)
    dims = len((dep.graph.get("positions") or {}).get("columns", ["w", "t"]))
    pos = torch.rand(n, dims, generator=g) * 50
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return {"x": torch.rand(n, f, generator=g) * 10, "pos": pos,
            "edge_index": knn(pos, 4, batch=batch, backend="torch"), "batch": batch}


def _edge_rule(cfg: dict) -> str:
    rules = []
    for e in cfg.get("edges", []):
        params = ", ".join(f"{k}={v}" for k, v in e.items() if k != "kind")
        rules.append(f"{e['kind']}({params})")
    return " + ".join(rules)


def export_metadata(dep: Deployable, fmt: str, names: list[str]) -> dict:
    """What a caller needs to build the inputs and read the outputs (module docstring)."""
    outputs = [{"name": t, "kind": "softmax", "classes": dep.class_names[t]} for t in dep.tasks]
    for r in dep.regression:
        outputs.append({"name": r, "kind": "regression",
                        "unit": "GeV" if r.endswith("_energy") else ("cm" if r.startswith("vtx") else "1")})
    assert [o["name"] for o in outputs] == output_names(dep.model)
    meta = {"schema": EXPORT_SCHEMA, "schema_version": EXPORT_VERSION, "gnnu_version": __version__,
            "format": fmt, "model": dep.name, "family": dep.inputs,
            "checkpoint": {"file": dep.path.name, "trained_with": dep.meta.get("version"),
                           "manifest_hash": dep.meta.get("manifest_hash")},
            "source_format": dep.graph.get("format"),
            "detector": {"name": (dep.graph.get("detector") or {}).get("name"),
                         "views": (dep.graph.get("detector") or {}).get("views")},
            "outputs": outputs}
    if dep.inputs == "image":
        preset = dep.config.model.image.preset_object()
        from ..config import to_dict

        meta["inputs"] = [{"name": "image", "dtype": "uint8", "shape": ["B", *preset.shape],
                           "description": "pixel maps rendered with the preset below, one channel "
                                          "per view; the model divides by 255"}]
        meta["image"] = to_dict(preset)
        return meta
    units = {f["name"]: f.get("unit", "") for f in dep.graph.get("features", [])}
    stats = dep.feature_stats
    meta["features"] = [{"name": n, "unit": units.get(n, ""), "mean": m, "std": s}
                        for n, m, s in zip(dep.feature_names, stats["mean"], stats["std"])]
    meta["normalisation"] = "inside the model: x' = (x - mean) / std per feature; give raw x"
    meta["positions"] = dep.graph.get("positions")
    cfg = dep.graph.get("graph_config") or {}
    meta["graph"] = {"name": cfg.get("name"), "edge_rule": _edge_rule(cfg), "config": cfg}
    desc = {"x": ("float32", ["N", len(dep.feature_names)], "raw node features (features below)"),
            "pos": ("float32", ["N", len((dep.graph.get("positions") or {}).get("columns", []))],
                    "node positions (positions below), cm"),
            "edge_index": ("int64", [2, "E"], "edges j -> i (row 0 source j, row 1 target i), node "
                                              "indices of the call, built with the graph config"),
            "batch": ("int64", ["N"], "event of each node, 0..B-1, sorted, no event empty")}
    meta["inputs"] = [{"name": n, "dtype": desc[n][0], "shape": desc[n][1], "description": desc[n][2]}
                      for n in names]
    return meta


def _op_of(exc: BaseException) -> str:
    text = str(exc)
    m = re.search(r"op='([\w.]+)', overload='(\w+)'", text) or re.search(r"(aten::\w+|aten\.\w+)", text)
    if m:
        return ".".join(g for g in m.groups() if g)
    return type(exc).__name__


def _require_onnx():
    missing = []
    for mod in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise ExportError(f"ONNX export needs the optional package(s) {', '.join(missing)}: "
                          f"pip install 'gnnu[export]'")


def export_checkpoint(checkpoint: str | os.PathLike, fmt: str, out: str | os.PathLike,
                      force: bool = False) -> dict:
    """Write ``checkpoint``'s model in format ``fmt`` to ``out``; returns the metadata."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: '{fmt}' is not one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not force:
        raise OutputExistsError(f"{out}: output exists (use --force to overwrite)")
    if fmt == "onnx":
        _require_onnx()
    dep = load_deployable(checkpoint)
    form, names = export_form(dep)
    meta = export_metadata(dep, fmt, names)
    text = json.dumps(meta, sort_keys=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        try:
            scripted = torch.jit.script(form)
        except Exception as exc:  # noqa: BLE001 — the compiler's errors have many types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"model '{dep.name}' cannot be scripted for TorchScript "
                              f"({_op_of(exc)}): {first}") from None
        with atomic_path(out) as tmp:
            torch.jit.save(scripted, str(tmp), _extra_files={"gnnu.json": text})
        return meta
    example = example_inputs(dep, names)
    args = tuple(example[n] for n in names)
    dims = {"N": torch.export.Dim("N", min=2), "E": torch.export.Dim("E", min=2),
            "B": torch.export.Dim("B", min=1)}
    axes = {"x": {0: dims["N"]}, "pos": {0: dims["N"]}, "edge_index": {1: dims["E"]},
            "batch": {0: dims["N"]}, "image": {0: dims["B"]}}
    import onnx

    with tempfile.TemporaryDirectory() as tmpdir:
        raw = Path(tmpdir) / "model.onnx"
        try:
            torch.onnx.export(form, args, str(raw), dynamo=True, opset_version=ONNX_OPSET,
                              input_names=names, output_names=[o["name"] for o in meta["outputs"]],
                              dynamic_shapes={n: axes[n] for n in names}, external_data=False,
                              verbose=False)
        except Exception as exc:  # noqa: BLE001 — the exporter's errors have many types
            raise ExportError(f"model '{dep.name}' cannot be exported to ONNX: operator "
                              f"{_op_of(exc)} has no ONNX form ({type(exc).__name__})") from None
        model = onnx.load(str(raw))
    entry = model.metadata_props.add()
    entry.key, entry.value = "gnnu", text
    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))
    return meta


# -- parity --------------------------------------------------------------------------------------
def _batches(dep: Deployable, data: Path, n_events: int, per_call: int):
    """(inputs per call as numpy, the checkpoint's outputs per call, events) on the first
    ``n_events`` of ``data``'s test split."""
    from ..train.data import make_loader, open_dataset

    if dep.inputs == "image":
        ds = open_dataset(data, "test", dep.config.model)
    else:
        from ..graph.dataset import GraphDataset

        raw = GraphDataset(data, "test", normalize=False)
        if list(raw.feature_names) != dep.feature_names:
            raise InputError(f"dataset features {raw.feature_names} differ from the checkpoint's "
                             f"{dep.feature_names}", data)
        ds = GraphDataset(data, "test", feature_stats=dep.feature_stats)
    n = min(n_events, len(ds))
    if n == 0:
        raise InputError("the test split is empty", data)
    loader = make_loader(ds, per_call, sampler=list(range(n)))
    calls, refs = [], []
    with torch.inference_mode():
        start = 0
        for batch in loader:
            out = dep.model(batch)
            ref = [torch.softmax(out[t].float(), 1) for t in dep.tasks]
            from ..models.heads import decode_target

            ref += [decode_target(r, out[r].float(), dep.model.energy_target) for r in dep.regression]
            refs.append([r.numpy() for r in ref])
            if dep.inputs == "image":
                calls.append({"image": batch["image"].numpy()})
            else:
                b = len(batch.event_id)
                xs = [raw.get(i).x.numpy() for i in range(start, start + b)]
                calls.append({"x": np.concatenate(xs), "pos": batch.pos.numpy(),
                              "edge_index": batch.edge_index.numpy().astype(np.int64),
                              "batch": batch.batch.numpy().astype(np.int64)})
            start += len(refs[-1][0])
    return calls, refs, n


def verify_export(file: str | os.PathLike, fmt: str, checkpoint: str | os.PathLike,
                  data: str | os.PathLike, n_events: int = 32, per_call: int = 4,
                  python: str | None = None) -> tuple[float, int]:
    """Run ``file`` in a fresh process without gnnu on the first ``n_events`` test events of
    ``data`` and compare with the checkpoint; returns (max |Δ| over every output, events)."""
    if n_events < 1:
        raise ConfigError(f"--events must be ≥ 1, got {n_events}")
    dep = load_deployable(checkpoint)
    _, names = export_form(dep)
    calls, refs, n = _batches(dep, Path(data), n_events, per_call)
    with tempfile.TemporaryDirectory() as tmpdir:
        inp, res = Path(tmpdir) / "inputs.npz", Path(tmpdir) / "outputs.npz"
        arrays = {f"{i}/{k}": v for i, call in enumerate(calls) for k, v in call.items() if k in names}
        np.savez(inp, **arrays)
        r = subprocess.run([python or sys.executable, "-I", str(WORKER), fmt, str(file), str(inp),
                            str(res), json.dumps(names)], capture_output=True, text=True)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["no output"])[-1]
            raise InputError(f"the exported file does not run outside gnnu: {last}", file)
        report = json.loads(r.stdout.strip().splitlines()[-1])
        if report.get("gnnu_imported"):
            raise RuntimeError("the parity worker imported gnnu")
        got = np.load(res)
        worst = 0.0
        for i, ref in enumerate(refs):
            for j, want in enumerate(ref):
                have = got[f"{i}/{j}"]
                if have.shape != want.shape:
                    raise ParityError(f"output {j} has shape {have.shape}, the checkpoint's "
                                      f"{want.shape}")
                worst = max(worst, float(np.max(np.abs(have.astype(np.float64) - want))))
    if report.get("outputs") != [o for o in output_names(dep.model)]:
        raise ParityError(f"the file's metadata names outputs {report.get('outputs')}, the "
                          f"checkpoint's are {output_names(dep.model)}")
    return worst, n
