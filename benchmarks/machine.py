"""One description of the machine a benchmark ran on, recorded in every ``benchmarks/results/*.json``.

Ratios between timings are only meaningful when both were measured on the same machine (the CPU model can differ
between machines of one type); every bench JSON stores :func:`machine_info` so that can be checked.
"""

from __future__ import annotations

import os
import platform
import subprocess


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False, timeout=10).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict:
    """CPU model, logical cores, torch threads, Python/torch/numpy versions and OS (no hostname)."""
    info = {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:  # pragma: no cover
        pass
    info["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
    return info


if __name__ == "__main__":
    import json

    print(json.dumps(machine_info(), indent=2))
