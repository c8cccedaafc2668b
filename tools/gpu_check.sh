#!/usr/bin/env bash
# tools/gpu_check.sh COMMIT [--rehearse] [--only STEPS]
#
# Issue 21's one GPU run: everything gnnu must show on a GPU, in ≤ 8 minutes of wall time on one
# H100 (16 cores, Python 3.12, torch 2.11 + CUDA 13, no internet), right the first time.
#
#   0. install gnnu against the machine's own torch (pip --no-deps --no-build-isolation -e .),
#      print versions and the device                                                    (~20 s)
#   1. pytest -m gpu tests/test_gpu.py: AMP bf16/fp16 steps of every model, eager inference on
#      the GPU vs the CPU, 1-process DDP through gnnu-train, GPU kNN vs CPU kNN, a GPU-trained
#      checkpoint evaluated on the CPU, the fast EdgeConv path vs the eager CPU model  (≤ 90 s)
#   2. tools/bench.py --device cuda --precision bf16: every model on the same events,
#      inference and training events/s, peak memory, the fast EdgeConv path with its graph
#      built on the GPU, the loader with 16 workers, the kNN backends                   (≤ 120 s)
#   3. gnnu-study --config gpu --out DIR --device cuda: the study preset of issue 16 (skipped,
#      saying so, where gnnu-study is not installed yet)                                  (≤ 210 s)
#
# Each step runs under `timeout` (the times above); a failing or killed step does not stop the
# next. COMMIT is recorded (the tree copied to the GPU machine has no .git: pass the commit the
# working tree is at, and commit first — uncommitted changes travel too and would not match).
# Results: at most 8 files under $OUT (the device tool brings back 8 files of ≤ 16 MiB, no
# deeper than 2 folders): summary.txt (commit, versions, each step's exit code and time),
# pytest.log, bench.log, bench.json, study.log, study_RESULTS.md, study_results.json, and
# gpu_check.tar.gz (all of these plus the study's plots, configs and reports; no datasets or
# checkpoints). Without $OUT (here) they go to ./gpu-check-out.
#
# --rehearse: the same steps, tiny, on this CPU (no install: run from the checkout with
# PYTHON=<a python that has gnnu's dependencies>; tests with GNNU_GPU_REHEARSE=1, the bench at
# 4 events, the study at --set scale=0.005 with 8 training events). tests/test_gpu_check.py runs it
# (slow).
# --only STEPS: a comma list of tests,bench,study — a rerun of one step on the warm machine.
#
# The device call of a GPU session (commit first; COMMIT = `git rev-parse --short HEAD` here):
#
#   run(command="bash tools/gpu_check.sh COMMIT", timeout_s=540, carry=[])
#
#   carry: nothing (gnnu installs from the copied tree, every dependency is in the image);
#   timeout_s 540 = the script's 480 s of time boxes + 60 s of margin, so its own timeouts fire
#   first and the results are packed.
#
# Budget of the session's 15 device minutes: start-up ~2 min; this script ≤ 8 min (hard cap
# 9 with timeout_s); ~4–5 min left, which is not enough to start a second machine (none starts
# under 4 min): the margin is for ONE immediate rerun on the still-warm machine (it stays warm
# 30 s after a call) of the step that failed, e.g.
#   run(command="bash tools/gpu_check.sh COMMIT --only bench", timeout_s=200)
# then give_back at once. Read summary.txt first (the reply's output_tail ends with it).

set -uo pipefail

usage() { echo "usage: $0 COMMIT [--rehearse] [--only tests,bench,study]" >&2; exit 2; }
[[ $# -ge 1 && "$1" != -* ]] || usage
COMMIT="$1"; shift
REHEARSE=0
ONLY="tests,bench,study"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rehearse) REHEARSE=1 ;;
        --only) shift; [[ $# -gt 0 ]] || usage; ONLY="$1" ;;
        *) usage ;;
    esac
    shift
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1
OUT_DIR="${OUT:-$REPO/gpu-check-out}"
mkdir -p "$OUT_DIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gnnu-gpu-check.XXXXXX")"
PYTHON="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
SUMMARY="$WORK/summary.txt"
T_START=$SECONDS
FAILED=0

say() { echo "$*" | tee -a "$SUMMARY"; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }

# step NAME LIMIT_S LOG CMD...: time-boxed, output to LOG and the console, status in the summary
step() {
    local name="$1" limit="$2" log="$3"; shift 3
    local t0=$SECONDS rc
    echo "== $name (time box ${limit} s): $*" | tee -a "$log"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$log"
    rc=${PIPESTATUS[0]}
    local what="ok"
    [[ $rc -eq 0 ]] || { what="FAILED (exit $rc)"; FAILED=$((FAILED + 1)); }
    [[ $rc -eq 124 || $rc -eq 137 ]] && what="TIMED OUT after ${limit} s (exit $rc)"
    say "step $name: $what in $((SECONDS - t0)) s"
}

say "gnnu gpu_check: commit $COMMIT, $( [[ $REHEARSE -eq 1 ]] && echo "REHEARSAL on the CPU" || echo "GPU run"), steps $ONLY, $(date -u +%Y-%m-%dT%H:%M:%SZ)"

# -- 0. install and versions ----------------------------------------------------------------------
if [[ $REHEARSE -eq 1 ]]; then
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    export GNNU_GPU_REHEARSE=1
    say "install: skipped in the rehearsal (gnnu from $REPO on PYTHONPATH, python $PYTHON)"
else
    step install 90 "$WORK/install.log" "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e .
    # the checkout on the path as well: the steps run even if the install failed (the console
    # scripts then are missing: gnnu-study falls back to python -m below)
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PYTHON" - >>"$SUMMARY" 2>&1 <<'EOF'
import platform, os, sys
print(f"python {platform.python_version()} ({sys.executable}), {os.cpu_count()} cores")
for name in ("torch", "torch_geometric", "lightning", "numba", "numpy", "scipy", "h5py", "triton"):
    try:
        print(f"{name} {__import__(name).__version__}")
    except Exception as exc:
        print(f"{name}: not importable ({type(exc).__name__})")
import torch
print(f"cuda available {torch.cuda.is_available()}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device {p.name}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs, capability {p.major}.{p.minor}")
import gnnu
print(f"gnnu {gnnu.__version__} from {gnnu.__file__}")
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,temperature.gpu --format=csv,noheader >>"$SUMMARY" 2>&1
cat "$SUMMARY"

# -- 1. pytest -m gpu -----------------------------------------------------------------------------
if want tests; then
    step tests "$([[ $REHEARSE -eq 1 ]] && echo 600 || echo 90)" "$WORK/pytest.log" \
        "$PYTHON" -m pytest -m gpu tests/test_gpu.py -q -p no:cacheprovider --durations=15 \
        --junitxml="$WORK/pytest.xml"
fi

# -- 2. benchmark ---------------------------------------------------------------------------------
if want bench; then
    if [[ $REHEARSE -eq 1 ]]; then
        step bench 600 "$WORK/bench.log" "$PYTHON" tools/bench.py --device cpu --precision bf16 \
            --events 4 --batch 2 --repeats 1 --warmup 1 --fast-batches 2 --knn-sizes 500 \
            --knn-dims 2,64 --loader-workers 2 --matmul-size 256 --json "$WORK/bench.json"
    else
        step bench 120 "$WORK/bench.log" "$PYTHON" tools/bench.py --device cuda --precision bf16 \
            --events 512 --batch 64 --repeats 10 --warmup 3 --fast-batches 64,256 \
            --knn-sizes 3000 --knn-dims 2,4,64 --loader-workers 16 --json "$WORK/bench.json"
    fi
fi

# -- 3. the gpu study preset ----------------------------------------------------------------------
if want study; then
    STUDY=()
    if command -v gnnu-study >/dev/null; then
        STUDY=(gnnu-study)
    elif [[ -x "$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")/gnnu-study" ]]; then
        STUDY=("$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")/gnnu-study")
    elif "$PYTHON" -c "import gnnu.cli.study" 2>/dev/null; then
        STUDY=("$PYTHON" -m gnnu.cli.study)      # the same CLI from the checkout, not installed
    fi
    if [[ ${#STUDY[@]} -eq 0 ]]; then
        say "step study: SKIPPED: gnnu-study is not installed (issue 16's branch 'study' is not merged into this tree yet)"
    elif [[ $REHEARSE -eq 1 ]]; then
        # scale 0.005 (50 events: the smallest with validation and test events), 8 training events
        # and 16 seen (1 600 and 3 200 before scaling), one re-measured inference pass without
        # warm-up batches (the warm-up is exercised by the other study tests): the GPU
        # run's code path, every model, DUNE CVN at 3 x 500 x 500, bf16-mixed, the pixel
        # representation, loader workers (DUNE CVN and NOvA CVN train at < 1 event/s on a CPU)
        step study 900 "$WORK/study.log" "${STUDY[@]}" --config gpu --out "$WORK/study" --device cpu \
            --set scale=0.005 --set 'learning_curve.sizes=[1600]' --set training.budget.events=3200 \
            --set evaluation.remeasure_repeats=1 --set evaluation.warmup=0
    else
        step study 210 "$WORK/study.log" "${STUDY[@]}" --config gpu --out "$WORK/study" --device cuda
    fi
fi

# -- pack: at most 8 files ------------------------------------------------------------------------
say "total: $((SECONDS - T_START)) s"
cp_small() { [[ -f "$1" ]] && tail -c 8M "$1" >"$OUT_DIR/$2"; }   # each file ≤ 16 MiB
[[ -f "$WORK/study/RESULTS.md" ]] && cp "$WORK/study/RESULTS.md" "$WORK/study_RESULTS.md"
[[ -f "$WORK/study/results.json" ]] && cp "$WORK/study/results.json" "$WORK/study_results.json"
(cd "$WORK" && find . -type f \( -name '*.log' -o -name '*.txt' -o -name '*.json' -o -name '*.md' \
    -o -name '*.xml' -o -name '*.yaml' -o -name '*.csv' -o -name '*.png' \) -size -4M \
    -not -path './study/*/data/*' -print0 | tar --null -czf "$OUT_DIR/gpu_check.tar.gz" -T -)
if [[ $(stat -c %s "$OUT_DIR/gpu_check.tar.gz") -gt $((15 * 1024 * 1024)) ]]; then   # too big: no plots
    (cd "$WORK" && find . -type f \( -name '*.log' -o -name '*.txt' -o -name '*.json' -o -name '*.md' \) \
        -size -4M -print0 | tar --null -czf "$OUT_DIR/gpu_check.tar.gz" -T -)
fi
for f in pytest.log bench.log bench.json study.log study_RESULTS.md study_results.json; do
    cp_small "$WORK/$f" "$f"
done
cp "$SUMMARY" "$OUT_DIR/summary.txt"
echo "results: $(ls "$OUT_DIR" | tr '\n' ' ')(in $OUT_DIR)"
echo "---- summary ----"
cat "$SUMMARY"
exit $((FAILED > 0))           # 0: every step that ran passed (a skipped study counts as passed)
