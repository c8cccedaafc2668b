"""Side-by-side speed of this checkout against an earlier commit: one benchmark, runs alternated.

The machine's speed drifts (other tenants), so a figure from one run and a figure from another run
an hour later are not comparable. This script checks out ``--base`` into a temporary git worktree
and runs the same benchmark command in both trees, alternating (base, this, this, base, …), with
the same interpreter; it reads numbers from each run's output (``--pattern``, a regular
expression with one group; repeat it to read several figures of one run, e.g. every model's
row of ``tools/bench.py``) and prints, per pattern, the medians and the per-pair ratios this/base.

    python tools/bench_ab.py --base REV [--pairs 4] [--pattern REGEX ...] -- COMMAND...

Example (the simulator, one 200-event run per side and pair):

    python tools/bench_ab.py --base 48a4130 --pairs 4 -- \\
        python tools/bench_sim.py --events 200 --repeats 1

The command runs from each tree's root, with that tree first on ``PYTHONPATH`` (so ``gnnu`` and
``tools/`` are that tree's). The default pattern reads ``events/s per core: median N`` (bench_sim).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _env import describe

ROOT = Path(__file__).resolve().parent.parent


def _run(tree: Path, command: list[str], patterns: list[re.Pattern]) -> list[float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tree), str(tree / "tools"), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench_ab: error: {' '.join(command)} failed in {tree} (exit {r.returncode}):\n"
                 f"{r.stderr.strip()[-2000:]}")
    values = []
    for pattern in patterns:
        m = pattern.search(r.stdout)
        if not m:
            sys.exit(f"bench_ab: error: pattern {pattern.pattern!r} not found in the output of "
                     f"{' '.join(command)} in {tree}")
        values.append(float(m.group(1).replace(",", "")))
    return values


def _gnnu_source(tree: Path, command: list[str]) -> str:
    """Where the command's interpreter imports gnnu from, in ``tree`` (must be that tree)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    exe = command[0] if Path(command[0]).name.startswith("python") else sys.executable
    out = subprocess.run([exe,
                          "-c", "import gnnu, os; print(os.path.dirname(gnnu.__file__))"],
                         cwd=tree, env=env, capture_output=True, text=True)
    return out.stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="commit (or any git revision) to compare with")
    ap.add_argument("--pairs", type=int, default=4, help="alternated pairs of runs")
    ap.add_argument("--pattern", action="append", dest="patterns",
                    help="regular expression with one group: a number read from each run "
                         "(repeatable; default: bench_sim's 'events/s per core: median N')")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the benchmark command")
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the benchmark command after --")
    if args.pairs < 1:
        ap.error("--pairs must be ≥ 1")
    patterns = [re.compile(p) for p in (args.patterns or [r"events/s per core: median ([\d,.]+)"])]
    rev = subprocess.run(["git", "rev-parse", "--short", args.base], cwd=ROOT,
                         capture_output=True, text=True)
    if rev.returncode != 0:
        ap.error(f"--base {args.base!r} is not a revision of {ROOT}")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        base_tree = Path(tmp) / "base"
        made = subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base_tree),
                               args.base], cwd=ROOT, capture_output=True, text=True)
        if made.returncode != 0:
            sys.exit(f"bench_ab: error: cannot check out {args.base} into a worktree: "
                     f"{made.stderr.strip()}")
        try:
            for tree in (base_tree, ROOT):
                src = _gnnu_source(tree, command)
                if Path(src).resolve() != (tree / "gnnu").resolve():
                    sys.exit(f"bench_ab: error: in {tree} gnnu imports from {src}")
            rates: dict[str, list[list[float]]] = {"base": [], "this": []}
            for p in range(args.pairs):
                order = (("base", base_tree), ("this", ROOT))
                for name, tree in order if p % 2 == 0 else order[::-1]:
                    rates[name].append(_run(tree, command, patterns))
                    print(f"  pair {p + 1}: {name} {', '.join(f'{v:g}' for v in rates[name][-1])}",
                          file=sys.stderr)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT)
    print(describe())
    print(f"benchmark: {' '.join(command)}")
    print(f"base {rev.stdout.strip()} vs this checkout ({head}{', with uncommitted changes' if dirty else ''}), "
          f"{args.pairs} alternated pairs")
    for k, pattern in enumerate(patterns):
        if len(patterns) > 1:
            print(f"pattern {pattern.pattern}")
        for name in ("base", "this"):
            runs = [r[k] for r in rates[name]]
            print(f"  {name}: median {statistics.median(runs):g} "
                  f"(runs: {', '.join(f'{r:g}' for r in runs)})")
        ratios = [b[k] / a[k] for a, b in zip(rates["base"], rates["this"])]
        print(f"  this/base per pair: {', '.join(f'{r:.2f}' for r in ratios)}; "
              f"median {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
