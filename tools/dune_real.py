"""The sim → real protocol of issue 22: a GNN pretrained on gnnu's simulator, fine-tuned on the 400
real DUNE far-detector events of ``../shared/data/dune-cvn-finetune``, measured by stratified
k-fold cross-validation against the same network trained on the 400 alone and zero-shot.

Every training is a ``gnnu-train`` run and every measurement a ``gnnu-eval`` report (the exact
command lines are logged in ``DIR/commands.log`` and ``DIR/cv.json``); the tool only plans the
folds, runs the commands (``--jobs`` at a time, each on one thread, niced), pools the
out-of-fold predictions and computes the figures. A rerun resumes: finished runs and reports are
kept, an interrupted run continues with ``gnnu-train --resume``.

Steps (``python tools/dune_real.py SUBCOMMAND --help``):

``pretrain``
    gnnu-sim (``--events``, seed) → gnnu-build ``--graph knn16_dune_cvn_pixels`` → gnnu-train
    ``configs/train/dune_pretrain.yaml`` (EdgeConv 32/64/128, see configs/models/
    edgeconv_dune_pixels.yaml for the widths).
``cv``
    The 400 real events (a dataset built with ``gnnu-build --format dune-cvn --graph
    knn16_dune_cvn_pixels --split 1,0,0`` from the four flavour directories) are cut into
    ``--folds`` stratified folds (per flavour, seeded shuffle, event i of a flavour in fold
    i mod k; events with identical maps — the release holds three νe CC events twice — are kept in
    one fold, and on one side of the inner split). For each outer fold f: test = fold f (80 events); the other 320 are split, per
    flavour, into an inner training part (256) and an inner validation part (64)
    (:func:`gnnu.graph.resplit.resplit` writes that dataset). Every candidate of a family trains
    on the inner training part; the candidate with the lowest inner validation loss is chosen
    (the choice of freeze level and learning rate never sees fold f) and its best checkpoint
    predicts fold f. Families: ``finetune`` (``--init-from`` the pretrained checkpoint;
    candidates :data:`FINETUNE`), ``scratch`` (the same network and config from a random
    initialisation; :data:`SCRATCH`), ``dann`` (with ``--sim-data``: ``--init-from`` the
    pretrained checkpoint, fine-tuned domain-adversarially against the simulated pretraining
    events; :data:`DANN`) and ``zeroshot`` (the pretrained checkpoint as is, every
    event predicted once). The chosen model is not retrained on all 320 (CPU budget): each fold's
    figure is that of a model that saw 256 real events.
``ship``
    Fine-tunes on all 400 (stratified 360 train / 40 validation for the checkpoint choice) with
    the candidate the folds chose most often, and writes both checkpoints, weights only, with
    their model cards to ``gnnu/models/pretrained/`` (``pretrained:dune-sim``,
    ``pretrained:dune-real``).
``paired``
    ``--a CV_DIR:FAMILY --b CV_DIR:FAMILY``: B − A for each figure on the same 400 events (the
    two families' pooled out-of-fold predictions), with a paired bootstrap 95 % interval.
``heldout``
    Checks that the events of ``../shared/data/dune-cvn-sample`` (20 events of the same release)
    are not among the 400 (map bytes compared) and evaluates checkpoints on them.

Figures (:func:`gnnu.evaluate.transfer.figures`), on the pooled out-of-fold predictions of the 400 events, with
bootstrap 95 % intervals (events resampled, 2 000 times, seeded) and the per-fold mean ± std:
4-class accuracy (argmax of the four flavour scores), 3-class accuracy (the events of true CC νμ,
CC νe or NC; argmax over those three scores), νe CC AUC (those events; the CC νe score against
CC νμ + NC) and the νe CC efficiency at purity ≥ 0.9 (same events and score: the largest
efficiency over thresholds whose selection is ≥ 90 % pure).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
FINETUNE_DIR = SHARED / "dune-cvn-finetune"
SAMPLE_DIR = SHARED / "dune-cvn-sample"
FLAVOUR_DIRS = ("numu", "nue", "nc", "nutau")
GRAPH = "knn16_dune_cvn_pixels"
PRETRAIN_CONFIG = "configs/train/dune_pretrain.yaml"
FINETUNE_CONFIG = "configs/train/dune_finetune.yaml"
#: Fine-tuning candidates chosen among inside each fold: learning rate, frozen prefixes, epochs.
#: One full fine-tuning and two of the heads alone (GNN blocks and input norm frozen: no backward
#: pass through the graph layers, ~3x cheaper): the CPU of the shared 2-core machine allowed no
#: second full-network learning rate (a 3e-4 run was started and stopped for time).
FINETUNE = (
    {"name": "all-lr1e-3", "lr": 1e-3, "freeze": None, "epochs": 3},
    {"name": "heads-lr3e-3", "lr": 3e-3, "freeze": ["encoder"], "epochs": 3},
    {"name": "heads-lr1e-2", "lr": 1e-2, "freeze": ["encoder"], "epochs": 3},
)
#: Domain-adversarial fine-tuning (DANN, gnnu.train.domain): from the pretrained checkpoint, each
#: batch of real training events paired with a batch of the simulated pretraining events (their
#: labels train the heads too), a domain classifier behind a gradient reversal of strength
#: ``weight`` (Ganin's schedule): the full-network candidate of FINETUNE (the one every fold chose)
#: plus the simulated batches, at two strengths.
DANN = (
    {"name": "dann-w0.1", "lr": 1e-3, "freeze": None, "epochs": 3, "domain_weight": 0.1},
    {"name": "dann-w0.3", "lr": 1e-3, "freeze": None, "epochs": 3, "domain_weight": 0.3},
)
#: Training from scratch on the real events (same network and config, random initialisation).
SCRATCH = (
    {"name": "scratch-lr1e-3", "lr": 1e-3, "freeze": None, "epochs": 6},
)


# -- folds -----------------------------------------------------------------------------------------
def stratified_folds(flavour: np.ndarray, k: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """[n] fold of each event: per flavour a seeded shuffle of its groups (events with identical
    maps, ``groups`` [n]; default one event each), the i-th group of a flavour in fold i mod k,
    so identical events never sit on both sides of a fold boundary."""
    rng = np.random.default_rng(seed)
    groups = np.arange(len(flavour)) if groups is None else np.asarray(groups)
    fold = np.empty(len(flavour), np.int64)
    for f in np.unique(flavour):
        own = np.unique(groups[flavour == f])
        for i, g in enumerate(rng.permutation(own)):
            fold[groups == g] = i % k
    return fold


def inner_split(flavour: np.ndarray, train_mask: np.ndarray, val_fraction: float, seed: int,
                groups: np.ndarray | None = None) -> np.ndarray:
    """[n] bool: the inner validation events among ``train_mask``: per flavour, whole groups
    (``groups`` as in :func:`stratified_folds`) in a seeded order until ``val_fraction`` of the
    flavour's events (rounded) are taken."""
    rng = np.random.default_rng(seed)
    groups = np.arange(len(flavour)) if groups is None else np.asarray(groups)
    val = np.zeros(len(flavour), bool)
    for f in np.unique(flavour[train_mask]):
        sel = train_mask & (flavour == f)
        want = int(round(val_fraction * sel.sum()))
        for g in rng.permutation(np.unique(groups[sel])):
            if val[sel].sum() >= want:
                break
            val[sel & (groups == g)] = True
    return val


# -- running commands --------------------------------------------------------------------------------
class Runner:
    """Runs gnnu commands (niced, one thread each), logging every command line to ``log``."""

    def __init__(self, out: Path, jobs: int, nice: int = 19):
        self.log = out / "commands.log"
        self.jobs, self.nice = jobs, nice
        out.mkdir(parents=True, exist_ok=True)

    def run(self, argv: list[str], quiet_log: Path) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        with open(self.log, "a") as f:
            f.write(" ".join(argv) + "\n")
        quiet_log.parent.mkdir(parents=True, exist_ok=True)
        with open(quiet_log, "w") as f:
            rc = subprocess.call(["nice", "-n", str(self.nice), *argv], stdout=f, stderr=subprocess.STDOUT,
                                 env=env, cwd=REPO)
        if rc != 0:
            tail = quiet_log.read_text().strip().splitlines()[-1:] or ["(no output)"]
            raise RuntimeError(f"{argv[0]} failed ({rc}): {tail[0]} — see {quiet_log}")

    def map(self, fn, items):
        with cf.ThreadPoolExecutor(self.jobs) as pool:
            return list(pool.map(fn, items))


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def train_run(runner: Runner, run_dir: Path, data: Path, cand: dict, init: str | None,
              sim_data: str | None = None) -> dict:
    """One gnnu-train candidate (resumed or kept when it exists); returns its run.json. A
    candidate with ``domain_weight`` trains domain-adversarially against ``sim_data``."""
    record = run_dir / "run.json"
    if record.exists() and json.loads(record.read_text()).get("status") == "complete":
        return json.loads(record.read_text())
    argv = [_bin("gnnu-train"), "--config", FINETUNE_CONFIG, "--data", str(data), "--out", str(run_dir),
            "--device", "cpu", "--epochs", str(cand["epochs"]), "--set", f"optimizer.lr={cand['lr']}",
            "--set", f"freeze={json.dumps(cand['freeze'])}"]
    if "domain_weight" in cand:
        argv += ["--set", f"domain_adaptation.data={sim_data}",
                 "--set", f"domain_adaptation.weight={cand['domain_weight']}"]
    if init:
        argv += ["--init-from", init]
    if (run_dir / "last.ckpt").exists():
        argv = [a for a in argv if a != "--init-from" and a != init] + ["--resume"]
    elif run_dir.exists():
        argv += ["--force"]
    runner.run(argv, run_dir.parent / f"{run_dir.name}.log")
    return json.loads(record.read_text())


def eval_run(runner: Runner, ckpt: str, data: Path, split: str, out: Path) -> dict:
    """gnnu-eval of ``ckpt`` on ``split`` (kept when done); returns {event_id, flavour, scores}."""
    if not (out / "metrics.json").exists():
        runner.run([_bin("gnnu-eval"), "--checkpoint", ckpt, "--data", str(data), "--split", split,
                    "--out", str(out), "--device", "cpu", "--no-plots", "--force"],
                   out.parent / f"{out.name}.log")
    return _flavour_predictions(out)


def _flavour_predictions(report: Path) -> dict:
    """{event_id [n, 3], flavour [n], scores [n, C]} of a gnnu-eval report."""
    from gnnu.evaluate.report import read_predictions

    p = read_predictions(report)
    return {"event_id": p.event_ids, "flavour": p.labels["flavour"], "scores": p.scores["flavour"]}


def _git_commit() -> str:
    try:
        head = subprocess.check_output(["git", "-C", str(REPO), "rev-parse", "HEAD"], text=True).strip()
        dirty = subprocess.check_output(["git", "-C", str(REPO), "status", "--porcelain", "--", "gnnu",
                                         "configs", ":!gnnu/models/pretrained"], text=True).strip()
        return head + (" (+ uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _labels(data: Path):
    """(event ids, flavour [n], group [n]): events whose node features and edges are identical
    (the same map released twice: three νe CC pairs among the 400) share a group."""
    import hashlib

    from gnnu.graph.dataset import GraphDataset

    ds = GraphDataset(data, "all", normalize=False)
    ids = ds.labels("event_id").astype(np.int64)
    digest = [hashlib.sha256(ds[i].x.numpy().tobytes() + ds[i].edge_index.numpy().tobytes()).hexdigest()
              for i in range(len(ds))]
    _, groups = np.unique(digest, return_inverse=True)
    return [tuple(int(v) for v in r) for r in ids], ds.labels("flavour").astype(np.int64), groups


# -- subcommands -----------------------------------------------------------------------------------
def cmd_cv(args) -> int:
    from gnnu.evaluate.transfer import figures
    from gnnu.graph.resplit import resplit

    if args.only and "dann" in args.only and not args.sim_data:
        raise SystemExit("cv: the dann family needs --sim-data (the simulated pretraining dataset)")
    out = Path(args.out)
    runner = Runner(out, args.jobs)
    ids, flavour, groups = _labels(Path(args.real_data))
    fold = stratified_folds(flavour, args.folds, args.seed, groups)
    t0 = time.time()
    families = {"finetune": (FINETUNE, args.init), "scratch": (SCRATCH, None)}
    if args.sim_data:
        families["dann"] = (DANN, args.init)
    if args.only:
        families = {k: v for k, v in families.items() if k in args.only}
    plan = []
    for f in range(args.folds):
        test = fold == f
        val = inner_split(flavour, ~test, 0.2, args.seed + 1000 + f, groups)
        split = np.where(test, 2, np.where(val, 1, 0))
        data = out / f"fold{f}" / "data"
        if not (data / "manifest.json").exists():
            resplit(args.real_data, data, dict(zip(ids, split.tolist())),
                    rule=f"tools/dune_real.py cv: stratified {args.folds}-fold, seed {args.seed}, "
                         f"outer fold {f} = test; inner validation 20 % per flavour of the rest",
                    force=True)
        for fam, (cands, init) in families.items():
            for c in cands:
                plan.append((f, fam, c, init, data))

    def do_train(item):
        f, fam, c, init, data = item
        rec = train_run(runner, out / f"fold{f}" / fam / c["name"], data, c, init, args.sim_data)
        return (f, fam, c["name"]), rec

    records = dict(runner.map(do_train, plan))
    chosen, preds = {}, {fam: {} for fam in families}
    evals = []
    for f in range(args.folds):
        for fam, (cands, _) in families.items():
            best = min(cands, key=lambda c: records[(f, fam, c["name"])]["best"]["score"])
            chosen[(f, fam)] = best["name"]
            run_dir = out / f"fold{f}" / fam / best["name"]
            evals.append((f, fam, str(run_dir / "best.ckpt"), out / f"fold{f}" / "data",
                          out / f"fold{f}" / fam / f"eval-{best['name']}"))
    results = runner.map(lambda e: (e[0], e[1], eval_run(runner, e[2], e[3], "test", e[4])), evals)
    for f, fam, p in results:
        preds[fam][f] = p
    zero = (eval_run(runner, args.init, Path(args.real_data), "train", out / "zeroshot")
            if "finetune" in families else None)
    index = {k: i for i, k in enumerate(ids)}

    summary = {"command": shlex.join(sys.argv), "commit": _git_commit(), "init": args.init,
               "real_data": str(Path(args.real_data).resolve()), "folds": args.folds, "seed": args.seed,
               "n_events": len(ids), "identical_event_groups": int(len(ids) - len(np.unique(groups))),
               "per_flavour": {int(c): int((flavour == c).sum()) for c in np.unique(flavour)},
               "candidates": {fam: list(c) for fam, (c, _) in families.items()},
               "chosen": {f"fold{f}/{fam}": n for (f, fam), n in chosen.items()},
               "inner_val_loss": {f"fold{f}/{fam}/{n}": r["best"]["score"] for (f, fam, n), r in records.items()},
               "train_wall_s": {f"fold{f}/{fam}/{n}": r.get("training_wall_time_s") for (f, fam, n), r in records.items()},
               "figures": {}, "wall_s": time.time() - t0}
    for fam in families:
        scores = np.zeros((len(ids), 4), np.float64)
        seen = np.zeros(len(ids), bool)
        for f, p in preds[fam].items():
            rows = [index[tuple(int(v) for v in r)] for r in p["event_id"]]
            if np.any(seen[rows]):
                raise RuntimeError(f"{fam}: an event predicted twice")
            seen[rows] = True
            scores[rows] = p["scores"][:, :4]
        if not seen.all():
            raise RuntimeError(f"{fam}: {int((~seen).sum())} events without an out-of-fold prediction")
        summary["figures"][fam] = figures(flavour, scores, fold, seed=args.seed)
    if zero is not None:
        zrows = [index[tuple(int(v) for v in r)] for r in zero["event_id"]]
        zscores = np.zeros((len(ids), 4))
        zscores[zrows] = zero["scores"][:, :4]
        summary["figures"]["zeroshot"] = figures(flavour, zscores, fold, seed=args.seed)
    name = "cv.json" if not args.only else f"cv-{'-'.join(sorted(families))}.json"
    (out / name).write_text(
        json.dumps(summary, indent=1) + "\n")
    print(table(summary))
    return 0


def table(summary: dict) -> str:
    """The figures of a cv.json as a Markdown table."""
    from gnnu.evaluate.transfer import table as md

    names = {"zeroshot": "zero-shot (pretrained on simulation only)",
             "scratch": "trained on the real events alone", "finetune": "pretrained + fine-tuned",
             "dann": "pretrained + fine-tuned domain-adversarially (DANN)"}
    return md({names[f]: summary["figures"][f] for f in ("zeroshot", "scratch", "finetune", "dann")
               if f in summary["figures"]})


def cmd_pretrain(args) -> int:
    out = Path(args.out)
    runner = Runner(out, 1, nice=19)
    sim, data, run = out / "pretrain.h5", out / "pretrain-px", out / "pretrain-run"
    if not sim.exists():
        runner.run([_bin("gnnu-sim"), "--detector", "dune", "--events", str(args.events), "--seed",
                    str(args.seed), "--workers", str(args.workers), "--out", str(sim)], out / "sim.log")
    if not (data / "manifest.json").exists() or json.loads((data / "manifest.json").read_text())["status"] != "complete":
        runner.run([_bin("gnnu-build"), "--input", str(sim), "--graph", GRAPH, "--out", str(data),
                    "--workers", str(args.workers), "--split", "0.9,0.1,0.0", "--resume"], out / "build.log")
    argv = [_bin("gnnu-train"), "--config", PRETRAIN_CONFIG, "--data", str(data), "--out", str(run),
            "--device", "cpu"] + (["--resume"] if (run / "last.ckpt").exists() else [])
    runner.run(argv, out / "train.log")
    return 0


def _card(name, description, ckpt_meta, data, commands, metrics, extra=None) -> dict:
    import platform

    import torch

    from gnnu import __version__

    return {"name": f"pretrained:{name}", "description": description,
            "model": ckpt_meta["config"]["model"], "graph_config": ((ckpt_meta.get("graph") or {}).get("graph_config") or ckpt_meta.get("graph_config") or {}).get("name"),
            "feature_names": ckpt_meta["feature_names"], "data": data, "commands": commands,
            "metrics": metrics, "gnnu_version": __version__, "commit": _git_commit(),
            "device": f"CPU ({platform.processor() or platform.machine()}), float32",
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
            "created": time.strftime("%Y-%m-%d"), **(extra or {})}


def cmd_ship(args) -> int:
    from gnnu.graph.resplit import resplit
    from gnnu.models.checkpoint import checkpoint_meta, load_checkpoint
    from gnnu.models.pretrained import PRETRAINED_DIR, slim_checkpoint

    out = Path(args.out)
    runner = Runner(out, 1)
    cv = json.loads(Path(args.cv).read_text())
    names = [v for k, v in cv["chosen"].items() if k.endswith("/finetune")]
    losses = cv["inner_val_loss"]
    best = max(set(names), key=lambda n: (names.count(n), -np.mean(
        [v for k, v in losses.items() if k.endswith(f"/finetune/{n}")])))
    cand = next(c for c in FINETUNE if c["name"] == best)
    ids, flavour, groups = _labels(Path(args.real_data))
    val = inner_split(flavour, np.ones(len(ids), bool), 0.1, args.seed + 7, groups)
    data = out / "final-data"
    if not (data / "manifest.json").exists():
        resplit(args.real_data, data, dict(zip(ids, np.where(val, 1, 0).tolist())),
                rule=f"tools/dune_real.py ship: all {len(ids)} events, 10 % per flavour for validation "
                     f"(seed {args.seed + 7})", force=True)
    rec = train_run(runner, out / "final" / cand["name"], data, cand, args.init)
    pre_meta = checkpoint_meta(load_checkpoint(args.pretrain_ckpt), args.pretrain_ckpt)
    pre_run = json.loads((Path(args.pretrain_ckpt).parent / "run.json").read_text())
    sim_manifest = json.loads((Path(pre_meta["data"]) / "manifest.json").read_text())
    ft_cmds = [line for line in (Path(args.cv).parent / "commands.log").read_text().splitlines()
               if "/finetune/" in line][:3]
    ft_cmds += [line for line in runner.log.read_text().splitlines() if "gnnu-train" in line][-1:]
    dst = Path(args.dest or PRETRAINED_DIR)
    cv_note = (f"{cv['folds']}-fold stratified cross-validation over the {cv['n_events']} real events "
               f"(tools/dune_real.py cv, seed {cv['seed']}): pooled out-of-fold predictions, bootstrap "
               f"95 % intervals, fold mean ± std")
    from gnnu.deploy.model import graph_record_from_dataset

    slim_checkpoint(args.pretrain_ckpt, dst / "dune-sim.ckpt", graph=graph_record_from_dataset(
        pre_meta, Path(args.pretrain_ckpt)), card=_card(
        "dune-sim", "EdgeConv 32/64/128 (configs/models/edgeconv_dune_pixels.yaml) trained on "
        "gnnu-simulated DUNE FD events in the knn16_dune_cvn_pixels representation; the start of "
        "pretrained:dune-real",
        pre_meta, {"simulated_events": sim_manifest["counts"]["in"],
                   "graphs": sim_manifest["counts"]["out"], "skipped": sim_manifest["counts"]["skipped_by_reason"],
                   "train": pre_run["dataset"]["n_train"], "val": pre_run["dataset"]["n_val"],
                   "source": sim_manifest["sources"][0]["path"].split("/")[-1]},
        args.pretrain_commands or [],
        {"zero-shot on the 400 real events": cv["figures"]["zeroshot"],
         "simulated validation": {k: v for k, v in pre_run["history"][-1].items() if k.startswith("val/")},
         "note": "zero-shot: every real event predicted once by this checkpoint; intervals bootstrap 95 %"},
        {"epochs": pre_run.get("epochs_completed"), "training_wall_time_s": pre_run.get("training_wall_time_s")}))
    final_ckpt = out / "final" / cand["name"] / "best.ckpt"
    fin_meta = checkpoint_meta(load_checkpoint(final_ckpt), final_ckpt)
    slim_checkpoint(final_ckpt, dst / "dune-real.ckpt", _card(
        "dune-real", "pretrained:dune-sim fine-tuned on the 400 real DUNE FD events of "
        "dune-cvn-finetune (DUNE CVN release, PRD 102 (2020) 092003) with the candidate the "
        f"cross-validation folds chose most often ({cand['name']}: lr {cand['lr']}, freeze "
        f"{cand['freeze']}, {cand['epochs']} epochs)",
        fin_meta, {"real_events": len(ids), "train": int((~val).sum()), "val": int(val.sum()),
                   "per_flavour": {str(k): v for k, v in cv["per_flavour"].items()},
                   "source": "../shared/data/dune-cvn-finetune/{numu,nue,nc,nutau}"},
        ft_cmds + [shlex.join(sys.argv)],
        {"cross-validated (this protocol, 256 real training events per fold)": cv["figures"]["finetune"],
         "same network trained on the real events alone": cv["figures"].get("scratch"),
         "zero-shot (pretrained:dune-sim)": cv["figures"]["zeroshot"], "note": cv_note},
        {"chosen_per_fold": cv["chosen"], "training_wall_time_s": rec.get("training_wall_time_s")}))
    print(f"wrote {dst / 'dune-sim.ckpt'} and {dst / 'dune-real.ckpt'} with their cards")
    return 0


def _pooled(cv_dir: Path, family: str) -> dict:
    """Event id → the four flavour scores (and → the truth) of ``family``'s out-of-fold
    predictions in a cv directory: each fold's chosen candidate, as :func:`cmd_cv` pooled them."""
    summary = None
    for path in (cv_dir / "cv.json", *sorted(cv_dir.glob("cv-*.json"))):
        record = json.loads(path.read_text()) if path.is_file() else {}
        if family in record.get("figures", {}):
            summary = record
            break
    if summary is None:
        raise SystemExit(f"paired: {cv_dir}: no cv.json or cv-*.json with the family '{family}'")
    scores, truth = {}, {}
    for key, name in summary["chosen"].items():
        fold, fam = key.split("/")
        if fam == family:
            p = _flavour_predictions(cv_dir / fold / fam / f"eval-{name}")
            for r, y, sc in zip(p["event_id"], p["flavour"], p["scores"]):
                scores[tuple(int(v) for v in r)], truth[tuple(int(v) for v in r)] = sc[:4], int(y)
    return {"scores": scores, "truth": truth}


def cmd_paired(args) -> int:
    """B − A for each figure on the same events, with a paired bootstrap 95 % interval (events
    resampled together for both families, 2 000 times, seeded)."""
    from gnnu.evaluate.transfer import KEYS, N_BOOT, point_figures

    (dir_a, fam_a), (dir_b, fam_b) = (a.rsplit(":", 1) for a in (args.a, args.b))
    a, b = _pooled(Path(dir_a), fam_a), _pooled(Path(dir_b), fam_b)
    if set(a["scores"]) != set(b["scores"]) or any(a["truth"][k] != b["truth"][k] for k in a["truth"]):
        raise SystemExit("paired: the two families did not predict the same events with the same truth")
    ids = sorted(a["scores"])
    y = np.array([a["truth"][k] for k in ids])
    sa, sb = (np.array([x["scores"][k] for k in ids]) for x in (a, b))
    rng = np.random.default_rng(args.seed)
    diff = {k: point_figures(y, sb)[k] - point_figures(y, sa)[k] for k in KEYS}
    boots = {k: np.empty(N_BOOT) for k in KEYS}
    for i in range(N_BOOT):
        j = rng.integers(0, len(y), len(y))
        fa, fb = point_figures(y[j], sa[j]), point_figures(y[j], sb[j])
        for k in KEYS:
            boots[k][i] = fb[k] - fa[k]
    print(f"{args.b} − {args.a}, {len(y)} events, paired bootstrap 95 %:")
    result = {}
    for k in KEYS:
        lo, hi = np.nanpercentile(boots[k], [2.5, 97.5])
        result[k] = {"difference": diff[k], "ci95": [float(lo), float(hi)]}
        print(f"  {k}: {diff[k]:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": shlex.join(sys.argv), "a": args.a, "b": args.b,
                                               "n_events": len(y), "seed": args.seed, "paired": result},
                                              indent=1) + "\n")
    return 0


def cmd_heldout(args) -> int:
    import hashlib
    import zlib

    from gnnu.evaluate.transfer import figures

    out = Path(args.out)
    runner = Runner(out, 1)

    def digests(files):
        return {hashlib.sha256(zlib.decompress(p.read_bytes())).hexdigest(): p for p in files}

    real = digests([p for d in FLAVOUR_DIRS for p in (FINETUNE_DIR / d).glob("event*.gz")])
    sample = digests(sorted(SAMPLE_DIR.glob("event*.gz")))
    common = sorted(str(sample[h].name) for h in set(real) & set(sample))
    data = out / "sample-data"
    if not (data / "manifest.json").exists():
        runner.run([_bin("gnnu-build"), "--input", str(SAMPLE_DIR), "--format", "dune-cvn", "--graph",
                    GRAPH, "--split", "1,0,0", "--out", str(data), "--force"], out / "build.log")
    ids, flavour, _ = _labels(data)
    result = {"sample": str(SAMPLE_DIR), "n_sample": len(sample), "n_finetune": len(real),
              "identical_maps": common, "disjoint": not common, "figures": {}}
    for spec in args.checkpoints:
        p = eval_run(runner, spec, data, "train", out / spec.replace(":", "_").replace("/", "_"))
        result["figures"][spec] = figures(p["flavour"].astype(np.int64), p["scores"][:, :4].astype(np.float64),
                                          seed=args.seed)
    (out / "heldout.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "figures"}))
    for spec, fig in result["figures"].items():
        print(spec, {k: (round(v["value"], 3), [round(x, 3) for x in v["ci95"]]) for k, v in fig.items()
                     if isinstance(v, dict)})
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pretrain", help="simulate, build and pretrain")
    p.add_argument("--out", required=True)
    p.add_argument("--events", type=int, default=6000)
    p.add_argument("--seed", type=int, default=2201)
    p.add_argument("--workers", type=int, default=2)
    p = sub.add_parser("cv", help="k-fold protocol: zero-shot, fine-tuned, trained on the real events alone")
    p.add_argument("--real-data", required=True, help="dataset of the 400 real events (split 1,0,0)")
    p.add_argument("--init", required=True, help="pretrained checkpoint (path or pretrained:NAME)")
    p.add_argument("--out", required=True)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="trainings at a time (one thread each)")
    p.add_argument("--only", nargs="*", choices=("finetune", "scratch", "dann"),
                   help="these families only (their figures go to cv-FAMILIES.json)")
    p.add_argument("--sim-data", help="the simulated pretraining dataset (the dann family's second domain)")
    p = sub.add_parser("ship", help="fine-tune on all 400 and write both checkpoints with cards")
    p.add_argument("--cv", required=True, help="cv.json of the cv step")
    p.add_argument("--real-data", required=True)
    p.add_argument("--init", required=True)
    p.add_argument("--pretrain-ckpt", required=True)
    p.add_argument("--pretrain-commands", nargs="*")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dest", help="where the checkpoints go (default gnnu/models/pretrained)")
    p = sub.add_parser("paired", help="B − A per figure on the same events, paired bootstrap interval")
    p.add_argument("--a", required=True, help="CV_DIR:FAMILY, e.g. cv:finetune")
    p.add_argument("--b", required=True, help="CV_DIR:FAMILY, e.g. cv-dann:dann")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    p = sub.add_parser("heldout", help="disjointness and figures on dune-cvn-sample")
    p.add_argument("--out", required=True)
    p.add_argument("--checkpoints", nargs="+", default=["pretrained:dune-sim", "pretrained:dune-real"])
    p.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    return {"pretrain": cmd_pretrain, "cv": cmd_cv, "ship": cmd_ship, "heldout": cmd_heldout,
            "paired": cmd_paired}[args.cmd](args)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
