"""Machine and version facts printed with every benchmark (shared by tools/bench_*.py)."""

from __future__ import annotations

import os
import platform
import sys


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe() -> str:
    """One paragraph: command line, CPU, cores, Python and key package versions."""
    import numpy

    parts = [f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}",
             f"machine: {cpu_model()}, {os.cpu_count()} logical cores",
             f"python {platform.python_version()}, numpy {numpy.__version__}"]
    for name in ("h5py", "scipy", "torch", "torch_geometric"):
        try:
            mod = __import__(name)
            parts.append(f"{name} {mod.__version__}")
        except ImportError:
            pass
    return "\n".join(parts)
