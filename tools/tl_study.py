"""Transfer-learning study: F1 of a pretrained vs a randomly initialised network against the
number of training events, each point repeated with different seeds, plus a frozen-depth scan.

The protocol of Chappell & Whitehead, "Application of transfer learning to neutrino interaction
classification", Eur. Phys. J. C 82 (2022) 1099: train the same architecture from pretrained
weights and from a random initialisation ("scratch", below) on growing subsets of the training sample,
evaluate every run on the same fixed test split, and plot F1 against the training-set size on a
log axis with the spread over repeats as a band. Then, at one size, scan how many of the
pretrained layers are frozen.

What "pretrained" means is given on the command line, so the same protocol serves every family:

- ImageNet ResNet18 (torchvision's IMAGENET1K_V1 weights in the torch hub cache, see
  :mod:`gnnu.models.cnn.resnet18`)::

      python tools/tl_study.py --config configs/models/resnet18.yaml --data DATA --out tl-resnet \\
          --pretrained-set model.params.weights=imagenet --scratch-set model.params.weights=none \\
          --sizes 1000,3000,10000,30000,100000 --repeats 3 \\
          --freeze-key model.params.freeze --freeze-values none,layer1+,layer2+,layer3+,layer4,head-only

- any gnnu checkpoint, e.g. a GNN trained on a larger or a different simulated sample (its
  matching tensors are copied, as ``gnnu-train --init-from``)::

      python tools/tl_study.py --config configs/models/gravnet.yaml --data DATA --out tl-gravnet \\
          --init-from pretrain/best.ckpt --sizes 1000,10000 --repeats 3 \\
          --freeze-key freeze --freeze-values 0,4,8

"Scratch" is the model's own fresh initialisation, seeded (``seed`` below), with no weights
copied: PyTorch's default for ``Linear`` and ``Conv`` layers (Kaiming-uniform, a = √5, with
uniform biases; the GNNs and the heads), torchvision's for ResNet18 with ``weights: none``
(Kaiming-normal, fan-out, for its convolutions, BatchNorm 1 / 0, the default for its ``Linear``)
and gnnu's He-normal ``conv_init_`` for the NOvA and DUNE CVN baselines.

Each run is ``gnnu-train`` with ``max_events = N`` (the first N events of the training split —
the subsets are nested, as in the paper) and ``seed = base seed + repeat`` (initialisation, data
order and dropout change between repeats), followed by ``gnnu-eval`` on the test split. F1 is the
primary task's macro F1 (mean over classes of 2·p·e/(p+e)).

Runs already evaluated in ``--out`` are reused, so an interrupted study continues where it
stopped — but only when they were made with the same settings: each finished run records them
in ``RUN_DIR/tl_settings.json`` (the resolved training config — config file, ``--epochs``,
``--set`` and the arm's overrides, seed, N —, the dataset's manifest hash and the ``--init-from``
checkpoint's SHA-256), and a study whose settings differ from a finished run's in the same
``--out`` is refused before any work (one error line, exit 2): use another ``--out``.

Writes ``--out/tl_study.csv`` (one row per run), ``--out/tl_study.png`` (F1 vs N: mean of the
repeats, band = min…max) and, with a freeze scan, ``--out/freeze_scan.png``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SETTINGS_FILE = "tl_settings.json"
#: What must be equal for a finished run to be reused (the rest of the settings is information).
DEFINING = ("config", "epochs", "manifest_hash", "set", "arm_set", "init_from_sha256")

CSV_FIELDS = ("arm", "n_train", "repeat", "seed", "freeze", "macro_f1", "accuracy",
              "training_wall_time_s", "run_dir")


@dataclass(frozen=True)
class Run:
    """One training + evaluation of the study."""

    arm: str                 # "pretrained" or "scratch"
    n_train: int
    repeat: int
    seed: int
    freeze: str | None       # value of --freeze-key for a scan point, else None
    overrides: tuple[str, ...]
    init_from: str | None

    @property
    def name(self) -> str:
        tag = f"-freeze-{self.freeze}" if self.freeze is not None else ""
        return f"{self.arm}{tag}-n{self.n_train}-r{self.repeat}"


def plan_runs(args) -> list[Run]:
    """Every run of the study: both arms at every size and repeat, then the freeze scan."""
    pretrained = tuple(args.pretrained_set)
    scratch = tuple(args.scratch_set)
    runs = []
    for n in args.sizes:
        for r in range(args.repeats):
            seed = args.seed + r
            runs.append(Run("pretrained", n, r, seed, None, pretrained, args.init_from))
            runs.append(Run("scratch", n, r, seed, None, scratch, None))
    scan_n = args.scan_size or max(args.sizes)
    for value in args.freeze_values:
        for r in range(args.repeats):
            runs.append(Run("pretrained", scan_n, r, args.seed + r, value,
                            pretrained + (f"{args.freeze_key}={value}",), args.init_from))
    return runs


def _overrides(run: Run, args) -> tuple[str, ...]:
    return (*args.set, f"seed={run.seed}", *run.overrides)


def _sha256(path: str) -> str:
    from gnnu.errors import InputError

    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read the --init-from checkpoint ({exc.strerror})", path) from None
    return "sha256:" + h.hexdigest()


def run_settings(run: Run, args, manifest_hash: str, init_sha256: dict[str, str]) -> dict:
    """The settings that define a run (module docstring): the training config resolved as
    gnnu-train resolves it (without the dataset path: the dataset is its manifest hash),
    --epochs, --set, the arm's overrides, the dataset and the init-from checkpoint. ConfigError
    for a config that does not load."""
    from gnnu.config import to_dict
    from gnnu.train.config import load_train_config

    cfg = to_dict(load_train_config(args.config, data=args.data, epochs=args.epochs,
                                    max_events=run.n_train, overrides=_overrides(run, args)))
    cfg.pop("data", None)
    return {"config": cfg, "config_file": str(args.config), "epochs": args.epochs,
            "manifest_hash": manifest_hash, "set": list(args.set), "arm_set": list(run.overrides),
            "init_from": run.init_from,
            "init_from_sha256": init_sha256[run.init_from] if run.init_from else None}


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two settings mappings."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def check_reuse(runs: list[Run], settings: dict[str, dict], args) -> None:
    """ConfigError unless every finished run in --out was made with this study's settings."""
    from gnnu.errors import ConfigError

    for run in runs:
        run_dir = Path(args.out) / "runs" / run.name
        if not (run_dir / "eval-test" / "metrics.json").exists():
            continue                                     # not finished: trained again
        path = run_dir / SETTINGS_FILE
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ConfigError(f"{run_dir}: a finished run without readable settings ({SETTINGS_FILE}); "
                              "cannot tell whether it matches this study: use another --out") from None
        new = settings[run.name]
        diff = _differences({k: old.get(k) for k in DEFINING}, {k: new.get(k) for k in DEFINING})
        if diff:
            shown = ", ".join(diff[:6]) + (f" and {len(diff) - 6} more" if len(diff) > 6 else "")
            raise ConfigError(f"{run_dir}: this finished run was made with other settings "
                              f"({shown} differ); refusing to reuse it: use another --out")


def execute(run: Run, args, settings: dict) -> dict:
    """Train and evaluate one run (or read its finished report, already checked against
    ``settings`` by :func:`check_reuse`); returns its CSV row."""
    from gnnu.train.inference import evaluate_checkpoint
    from gnnu.train.run import TrainOptions, train

    run_dir = Path(args.out) / "runs" / run.name
    report = run_dir / "eval-test"
    if not (report / "metrics.json").exists():
        (run_dir / SETTINGS_FILE).unlink(missing_ok=True)
        record = train(TrainOptions(
            config=args.config, out=str(run_dir), data=args.data, epochs=args.epochs,
            max_events=run.n_train, device=args.device, init_from=run.init_from, force=True,
            overrides=_overrides(run, args)))
        evaluate_checkpoint(run_dir / "best.ckpt", args.data, "test", report, device=args.device,
                            force=True)
        tmp = run_dir / f"{SETTINGS_FILE}.tmp"
        tmp.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        tmp.replace(run_dir / SETTINGS_FILE)          # written last: marks the run as finished
    else:
        record = json.loads((run_dir / "run.json").read_text())
    metrics = json.loads((report / "metrics.json").read_text())
    return {"arm": run.arm, "n_train": run.n_train, "repeat": run.repeat, "seed": run.seed,
            "freeze": "" if run.freeze is None else run.freeze,
            "macro_f1": metrics["macro_f1"], "accuracy": metrics["accuracy"],
            "training_wall_time_s": record.get("training_wall_time_total_s"),
            "run_dir": str(run_dir)}


def summarise(rows: list[dict], key: str) -> dict[str, dict[str, np.ndarray]]:
    """Per arm (or freeze value): x values and mean / min / max of macro F1 over repeats."""
    groups: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        f1 = row["macro_f1"]
        groups.setdefault((row["arm"] if key == "n_train" else row["freeze"], row[key]), []).append(
            math.nan if f1 is None else float(f1))
    out: dict[str, dict[str, list]] = {}
    for (label, x), values in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        d = out.setdefault(label, {"x": [], "mean": [], "lo": [], "hi": [], "n": []})
        v = np.asarray(values)
        d["x"].append(x)
        d["mean"].append(float(np.nanmean(v)) if np.isfinite(v).any() else math.nan)
        d["lo"].append(float(np.nanmin(v)) if np.isfinite(v).any() else math.nan)
        d["hi"].append(float(np.nanmax(v)) if np.isfinite(v).any() else math.nan)
        d["n"].append(len(v))
    return {k: {name: np.asarray(vals) for name, vals in d.items()} for k, d in out.items()}


def plot_sizes(rows: list[dict], path: Path, title: str) -> None:
    """F1 vs number of training events (log x) per arm: mean line, min…max band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = set()
    for arm, d in summarise([r for r in rows if r["freeze"] == ""], "n_train").items():
        order = np.argsort(d["x"])
        x = d["x"][order].astype(float)
        sizes.update(int(v) for v in x)
        ax.plot(x, d["mean"][order], marker="o", label=arm)
        ax.fill_between(x, d["lo"][order], d["hi"][order], alpha=0.25)
    ax.set_xscale("log")
    ax.set_xticks(sorted(sizes), [f"{n:,}" for n in sorted(sizes)])
    ax.minorticks_off()
    ax.set_xlabel("training events")
    ax.set_ylabel("macro F1 (test split)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_freeze(rows: list[dict], freeze_values: list[str], path: Path, title: str) -> None:
    """F1 vs frozen depth (scan order) for the pretrained arm: mean with min…max error bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scan = [r for r in rows if r["freeze"] != ""]
    d = {v: [float(r["macro_f1"]) for r in scan if r["freeze"] == v and r["macro_f1"] is not None]
         for v in freeze_values}
    mean = np.array([np.mean(d[v]) if d[v] else math.nan for v in freeze_values])
    lo = np.array([min(d[v]) if d[v] else math.nan for v in freeze_values])
    hi = np.array([max(d[v]) if d[v] else math.nan for v in freeze_values])
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(freeze_values))
    ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], marker="o", capsize=3)
    ax.set_xticks(x, freeze_values)
    ax.set_xlabel("frozen (pretrained) layers")
    ax.set_ylabel("macro F1 (test split)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the option help, the epilog as written."""


def _ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


EPILOG = """\
"scratch" is the model's own seeded fresh initialisation, no weights copied: PyTorch's default
for Linear and Conv layers (Kaiming-uniform, a = sqrt(5); the GNNs and the heads), torchvision's
Kaiming-normal (fan-out) for ResNet18 with weights: none, gnnu's He-normal for the NOvA / DUNE
CVN baselines. Finished runs in --out are reused only when made with the same settings
(resolved config, --epochs, --set, arm overrides, dataset manifest hash, --init-from file hash;
RUN_DIR/tl_settings.json); otherwise the study is refused: use another --out."""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=EPILOG,
                                 formatter_class=_Formatter)
    ap.add_argument("--config", required=True, help="training or model config (as gnnu-train)")
    ap.add_argument("--data", required=True, help="graph dataset (its test split is the yardstick)")
    ap.add_argument("--out", required=True, help="study directory (runs, CSV, figures)")
    ap.add_argument("--sizes", type=_ints, default=[1000, 3000, 10000, 30000, 100000],
                    help="training-set sizes N, comma-separated")
    ap.add_argument("--repeats", type=int, default=3, help="seeded repeats per point")
    ap.add_argument("--seed", type=int, default=0, help="seed of repeat 0 (repeat r: seed + r)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the config's)")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--init-from", default=None, metavar="CKPT",
                    help="pretrained arm: copy this gnnu checkpoint's matching weights")
    ap.add_argument("--pretrained-set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override of the pretrained arm only (e.g. model.params.weights=imagenet)")
    ap.add_argument("--scratch-set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override of the scratch arm only (e.g. model.params.weights=none)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override of every run")
    ap.add_argument("--freeze-key", default=None, help="config key of the frozen-depth scan")
    ap.add_argument("--freeze-values", default="", help="comma-separated values of --freeze-key")
    ap.add_argument("--scan-size", type=int, default=0, help="N of the scan; 0: the largest of --sizes")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.freeze_values = [v for v in args.freeze_values.split(",") if v]
    if args.freeze_values and not args.freeze_key:
        print("tl_study: error: --freeze-values needs --freeze-key", file=sys.stderr)
        return 2
    if not args.init_from and not args.pretrained_set:
        print("tl_study: error: say what 'pretrained' means: --init-from CKPT and/or --pretrained-set",
              file=sys.stderr)
        return 2
    import gnnu.cli.common  # noqa: F401  (its warning filters: one error line, as gnnu's commands)
    from gnnu.errors import GnnuError

    try:
        return _study(args)
    except GnnuError as exc:      # bad --data, --config, --init-from, a refused reuse, a failed run
        print(f"tl_study: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _study(args) -> int:
    from gnnu.errors import ConfigError, GnnuError
    from gnnu.graph.store import read_manifest
    from gnnu.train.data import manifest_hash

    manifest = read_manifest(args.data)            # InputError naming --data when unusable
    n_train = int(manifest.get("counts", {}).get("per_split", {}).get("train", 0))
    too_big = [n for n in args.sizes + ([args.scan_size] if args.scan_size else []) if n > n_train]
    if too_big:
        raise ConfigError(f"{args.data} has {n_train} training events; sizes {too_big} are larger")
    runs = plan_runs(args)
    init_sha = {args.init_from: _sha256(args.init_from)} if args.init_from else {}
    mhash = manifest_hash(args.data)
    settings = {r.name: run_settings(r, args, mhash, init_sha) for r in runs}
    check_reuse(runs, settings, args)               # before any work
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, run in enumerate(runs, 1):
        print(f"[{i}/{len(runs)}] {run.name}", flush=True)
        try:
            rows.append(execute(run, args, settings[run.name]))
        except GnnuError as exc:
            print(f"tl_study: error: {run.name}: {exc}", file=sys.stderr)
            return exc.exit_code
        print(f"    macro F1 {rows[-1]['macro_f1']}", flush=True)
    with open(out / "tl_study.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    title = Path(args.config).stem
    plot_sizes(rows, out / "tl_study.png", f"{title}: pretrained vs scratch")
    if args.freeze_values:
        plot_freeze(rows, args.freeze_values, out / "freeze_scan.png",
                    f"{title}: frozen depth at N = {args.scan_size or max(args.sizes)}")
    print(f"tl_study: {len(rows)} runs → {out / 'tl_study.csv'}, {out / 'tl_study.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
