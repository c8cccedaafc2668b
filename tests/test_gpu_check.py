"""tools/gpu_check.sh --rehearse: the GPU run's steps, tiny, on the CPU (issue 21).

The script is run as a GPU session runs it (a commit id as its argument, results under $OUT),
with ``--rehearse``: pytest -m gpu with GNNU_GPU_REHEARSE=1, the benchmark at 4 events, the study
preset at scale 0.005 with 8 training events (or skipped, saying why, where gnnu-study is not in this
tree). Slow: minutes on 2 CPU cores. The suite's only run of the gpu study preset: its results are
checked here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

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
        dune_cvn_cfg = [n for n in tar.getnames() if "/runs/dune_cvn/" in n and n.endswith("/config.yaml")]
        cfg = yaml.safe_load(tar.extractfile(dune_cvn_cfg[0]).read()) if dune_cvn_cfg else None
    assert {"summary.txt", "bench.log", "bench.json"} <= packed
    if "step study: ok" in summary:
        # the gpu preset through the very code path the GPU runs: every model, DUNE CVN at
        # 3 × 500 × 500, bf16-mixed, the pixel representation, loader workers, the events budget
        r = json.loads((out / "study_results.json").read_text())
        assert [m["name"] for m in r["models"]] == ["edgeconv", "dynedgeconv", "gravnet", "nova_cvn",
                                                     "dune_cvn", "resnet18"]
        assert {m["precision"] for m in r["models"]} == {"bf16-mixed"}
        assert r["config"]["scaled_from"] == 0.005 and r["config"]["data"]["simulate"]["events"] == 50
        assert all(m["training_events"] == 8 and m["epochs"] == 2 for m in r["models"])
        assert cfg["model"]["image"]["preset"] == "dune-cvn" and cfg["precision"] == "bf16-mixed"
