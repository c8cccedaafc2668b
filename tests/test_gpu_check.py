"""tools/gpu_check.sh --rehearse: the GPU run's steps, tiny, on the CPU (issue 21).

The script is run as a GPU session runs it (a commit id as its argument, results under $OUT),
with ``--rehearse``: pytest -m gpu with GNNU_GPU_REHEARSE=1, the benchmark at 4 events, the study
preset at scale 0.005 (or skipped, saying why, where gnnu-study is not in this tree). Slow: minutes
on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import REPO


@pytest.mark.slow
def test_gpu_check_rehearsal(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "TMPDIR": str(tmp_path)}
    # the tests step (pytest -m gpu with GNNU_GPU_REHEARSE=1, ~4 min on 2 cores) is left out here to
    # keep the suite's time; run it alone: GNNU_GPU_REHEARSE=1 pytest -m gpu tests/test_gpu.py
    proc = subprocess.run(["bash", str(REPO / "tools" / "gpu_check.sh"), "abc1234", "--rehearse",
                           "--only", "bench,study"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    summary = (out / "summary.txt").read_text()
    assert proc.returncode == 0, summary + proc.stdout[-3000:] + proc.stderr[-3000:]
    # what comes back from a device: at most 8 plain files of at most 16 MiB, one folder level
    files = sorted(out.iterdir())
    assert 1 <= len(files) <= 8 and all(f.is_file() and f.stat().st_size < 16 * 2**20 for f in files)
    assert "commit abc1234" in summary and "REHEARSAL" in summary
    assert "step bench: ok" in summary and "step tests" not in summary
    assert ("step study: ok" in summary
            or "step study: SKIPPED: gnnu-study is not installed" in summary)
    bench = json.loads((out / "bench.json").read_text())
    names = {r["model"] for r in bench["models"]}
    assert {"edgeconv", "dynedgeconv", "gravnet", "nova_cvn", "dune_cvn", "resnet18"} <= names
    assert any("kNN built on device" in n for n in names) and not bench["failed"]
    assert all(r["infer"] > 0 for r in bench["models"]) and bench["loaders"] and bench["knn"]
    with tarfile.open(out / "gpu_check.tar.gz") as tar:
        packed = {Path(n).name for n in tar.getnames()}
    assert {"summary.txt", "bench.log", "bench.json"} <= packed
