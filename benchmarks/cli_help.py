"""Wall time of ``learnscope --help`` and a few subcommands' ``--help`` as fresh processes (goal: < 0.5 s).

Writes benchmarks/results/cli_help.json: the best of ``REPEATS`` runs per command.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ([], ["bias"], ["bias", "run"], ["identify"], ["identify", "simulate"], ["identify", "classify"], ["demo"])
REPEATS = 5
OUT = Path(__file__).resolve().parent / "results" / "cli_help.json"

from benchmarks.machine import machine_info  # noqa: E402


def run() -> dict:
    learnscope = Path(sys.executable).with_name("learnscope")
    timings = {}
    for words in COMMANDS:
        best = float("inf")
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            subprocess.run([str(learnscope), *words, "--help"], check=True, capture_output=True)
            best = min(best, time.perf_counter() - t0)
        timings[" ".join(["learnscope", *words, "--help"])] = round(best, 3)
    record = {"what": f"wall time of --help as a fresh process, best of {REPEATS}; goal < 0.5 s",
              "seconds": timings, "machine": machine_info()}
    OUT.write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
