"""Same inputs, same outputs: fingerprint gnnu's whole chain, to prove a refactor changed nothing.

Runs, in this process, with fixed seeds and on the CPU: ``gnnu-sim`` (DUNE-like and NOvA-like
events), ``gnnu-build`` (several graph configs, one with two workers), ``gnnu-train`` (EdgeConv and
GravNet one epoch on the DUNE graphs, NOvA CVN one epoch on the NOvA images), ``gnnu-eval`` and
``gnnu-compare``, then writes one JSON fingerprint: a sha256 per HDF5 dataset array and attribute
of every hit file and shard, the pixel maps of every image preset, the manifests, the trained
weights (per tensor), the predictions and the metrics (timings, paths and dates left out — they differ between any two runs).

Compare two code versions (``--code`` puts a checkout first on ``sys.path``), one after the
other in the same ``--work`` directory (manifests record absolute source paths, and the
dataset's manifest hash that reports carry depends on them)::

    git worktree add --detach /tmp/base <commit>
    python tools/identity_check.py --code /tmp/base --out base.json
    python tools/identity_check.py --out head.json
    python tools/identity_check.py --diff base.json head.json     # exit 1 if anything differs

Only public command lines are used, so the script runs unchanged against older checkouts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

#: Keys whose values legitimately differ between two runs of the same code (time, place).
VOLATILE = {"throughput_events_per_s", "peak_memory_bytes", "timing", "path", "checkpoint",
            "created", "date", "training_wall_time_s", "training_wall_time_total_s", "wall_s",
            "seconds", "software", "gnnu_version", "hostname", "report", "run", "out", "data",
            "sources_paths", "end_to_end_events_per_s", "model_s", "data_s", "started", "finished",
            "events_per_s", "time", "duration_s"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _scrub(obj):
    """``obj`` without the volatile keys (recursively); absolute paths shortened to file names."""
    if isinstance(obj, dict):
        return {k: _scrub(v) for k, v in sorted(obj.items()) if k not in VOLATILE}
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    if isinstance(obj, str) and obj.startswith("/"):
        return Path(obj).name
    return obj


def hdf5_fingerprint(path: Path) -> dict:
    """sha256 of every dataset's array (dtype, shape, bytes) and every attribute of an HDF5 file."""
    import h5py
    import numpy as np

    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                a = obj[()]
                a = np.ascontiguousarray(a)
                out[name] = f"{a.dtype.str}{list(a.shape)}:{_sha(a.tobytes())}"
            for k, v in obj.attrs.items():
                if k in ("software",):
                    continue
                text = v.decode() if isinstance(v, bytes) else str(v)
                if k in ("result", "detector", "generator") and text.startswith("{"):
                    text = json.dumps(_scrub(json.loads(text)), sort_keys=True)
                out[f"{name}@{k}"] = _sha(text.encode())
        visit("/", f)
        f.visititems(visit)
    return out


def checkpoint_fingerprint(path: Path) -> dict:
    """sha256 of every weight tensor of a Lightning checkpoint."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return {k: _sha(v.detach().contiguous().numpy().tobytes()) for k, v in ckpt["state_dict"].items()}


def run_chain(work: Path) -> dict:
    """Run the chain in ``work`` (emptied first) and fingerprint everything it wrote."""
    import shutil

    import torch

    from gnnu.cli import invoke

    torch.set_num_threads(1)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    w = str(work)
    steps = [
        f"gnnu-sim --detector dune --events 60 --seed 11 --out {w}/dune.h5",
        f"gnnu-sim --detector nova --events 64 --seed 12 --flavours numu_cc,nue_cc,nc,cosmic "
        f"--out {w}/nova.h5",
        f"gnnu-build --input {w}/dune.h5 --out {w}/dune_knn --seed 1",
        f"gnnu-build --input {w}/dune.h5 --graph knn16_crossview --out {w}/dune_cross --workers 2",
        f"gnnu-build --input {w}/dune.h5 --graph adjacency --out {w}/dune_adj",
        f"gnnu-build --input {w}/dune.h5 --graph knn16_dune_cvn_pixels --out {w}/dune_pix",
        f"gnnu-build --input {w}/nova.h5 --graph nova_knn16 --out {w}/nova_knn",
    ]
    train = "--epochs 1 --device cpu --set num_workers=0 --set batch_size=16 --set seed=5"
    for model, data in (("edgeconv", "dune_knn"), ("gravnet", "dune_knn"), ("nova_cvn_nova", "nova_knn")):
        extra = {"edgeconv": " --set model.params.widths=[16,16]",
                 "nova_cvn_nova": " --set model.params.width=0.25"}.get(model, "")
        steps.append(f"gnnu-train --config configs/models/{model}.yaml --data {w}/{data} "
                     f"--out {w}/run_{model} {train}{extra}")
        steps.append(f"gnnu-eval --checkpoint {w}/run_{model}/last.ckpt --data {w}/{data} --split test "
                     f"--out {w}/run_{model}/eval-test --device cpu")
    steps.append(f"gnnu-compare {w}/run_edgeconv {w}/run_gravnet --out {w}/comparison")
    for cmd in steps:
        print("$", cmd, file=sys.stderr, flush=True)
        invoke(cmd)

    prints: dict[str, object] = {}
    from gnnu.images.dataset import ImageDataset           # the pixel maps the CNNs read
    for data, presets in (("dune_knn", ("dune-cvn", "resnet-rgb")), ("nova_knn", ("nova-cvn",)),
                          ("dune_pix", ("dune-cvn",))):
        for preset in presets:
            images = ImageDataset(work / data, "all", preset)
            h = hashlib.sha256()
            for i in range(len(images)):
                h.update(images.render(i).tobytes())
            prints[f"{data}/images/{preset}"] = f"{len(images)} maps:{h.hexdigest()[:16]}"
    for h5 in sorted(work.rglob("*.h5")):
        prints[str(h5.relative_to(work))] = hdf5_fingerprint(h5)
    for js in sorted(list(work.rglob("manifest.json")) + list(work.rglob("metrics.json"))):
        prints[str(js.relative_to(work))] = _scrub(json.loads(js.read_text()))
    for ckpt in sorted(work.rglob("last.ckpt")):
        prints[str(ckpt.relative_to(work))] = checkpoint_fingerprint(ckpt)
    csv = work / "comparison" / "comparison.csv"
    rows = csv.read_text().splitlines()
    header = rows[0].split(",")
    keep = [i for i, c in enumerate(header) if c not in VOLATILE and "wall_time" not in c]
    prints["comparison/comparison.csv"] = [[r.split(",")[i] for i in keep] for r in rows]
    return prints


def diff(a: dict, b: dict, where: str = "") -> list[str]:
    """Human-readable differences between two fingerprints."""
    if isinstance(a, dict) and isinstance(b, dict):
        lines = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                lines.append(f"{where}/{k}: only in {'second' if k not in a else 'first'}")
            else:
                lines += diff(a[k], b[k], f"{where}/{k}")
        return lines
    return [] if a == b else [f"{where}: {str(a)[:80]} != {str(b)[:80]}"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--code", help="checkout whose gnnu is fingerprinted (default: this one)")
    p.add_argument("--work", default="/tmp/gnnu-identity", help="scratch directory (emptied)")
    p.add_argument("--out", help="fingerprint JSON to write")
    p.add_argument("--diff", nargs=2, metavar="JSON", help="compare two fingerprints")
    args = p.parse_args(argv)
    if args.diff:
        a, b = (json.loads(Path(x).read_text()) for x in args.diff)
        lines = diff(a, b)
        n = sum(len(v) if isinstance(v, (dict, list)) else 1 for v in a.values())
        print("\n".join(lines) if lines else f"identical: {len(a)} files, {n} arrays/fields")
        return 1 if lines else 0
    code = Path(args.code or Path(__file__).resolve().parent.parent).resolve()
    sys.path.insert(0, str(code))
    os.environ["PYTHONPATH"] = str(code) + os.pathsep + os.environ.get("PYTHONPATH", "")
    os.chdir(code)                        # configs/ resolve against the checkout
    import gnnu
    assert Path(gnnu.__file__).resolve().is_relative_to(code), gnnu.__file__
    prints = run_chain(Path(args.work).resolve())
    text = json.dumps(prints, indent=1, sort_keys=True)
    if args.out:
        Path(args.out).write_text(text)
    print(f"fingerprinted {len(prints)} files of gnnu at {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
