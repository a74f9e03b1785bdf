"""Per-meta-step timings of the trained-network bias experiments (Figs 7 and 8), beside the authors'.

Writes ``benchmarks/results/bias_networks.json`` (1 thread, median over meta-steps after the first 3). Goals
(issue #6): Fig 7 ≤ 25 ms per meta-step with one learner and ≤ 6 ms per learner with 8 or more; Fig 8 ≤ 1/3 of
the authors' 131–199 ms. Also the largest number of learners per meta-step whose peak memory fits in 4 GiB
(doubling from 32, each size in a fresh process whose peak resident memory above its post-import baseline is
measured with ``getrusage``) and the learners per second at that size.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import machine_info
from learnscope.bias.config import load_config
from learnscope.bias.experiment import build_components
from learnscope.bias.search import meta_train, override

RESULTS = Path(__file__).resolve().parent / "results"
#: the authors' per-step range (baseline-original.md, "Speed"): measured on ANOTHER machine, so never divided by ours
AUTHORS = {"fig7_mushroom_random": [117, 144], "fig8_backprop_mlp": [131, 199]}
AUTHORS_MACHINE = "2 vCPU Intel Xeon VM (baseline-original.md, 'Speed', 1 thread); measured elsewhere, no ratio"
#: side by side on one machine (baseline-original.md, "Re-measured ... side by side", learnscope at 4c5d8bd)
SIDE_BY_SIDE = {"machine": "AMD EPYC (Zen 5) VM, 1 thread", "learnscope_commit": "4c5d8bd",
                "fig7_mushroom_random": {"authors_ms": 78.6, "learnscope_ms": 10.6, "speedup": 7.4},
                "fig8_backprop_mlp": {"authors_ms": 110.0, "learnscope_ms": 55.0, "speedup": 2.1}}


def _ms_per_step(name: str, learners: int, steps: int = 20, skip: int = 3) -> float:
    cfg = load_config(name)
    comp = build_components(cfg)
    settings = override(cfg.search, steps=steps, learners_per_step=learners)
    res = meta_train(comp.make_meta(), comp.domain, comp.learner, comp.target, settings, [0])
    return float(np.median(res.extra["step_times_s"][skip:]) * 1e3)


MEMORY_BUDGET_GIB = 4.0
_PROBE = """
import resource, sys, torch
torch.set_num_threads(1)
from benchmarks.bias_networks import _ms_per_step
from learnscope.bias.config import load_config
from learnscope.bias.experiment import build_components
build_components(load_config(sys.argv[1]))  # the baseline includes imports and loaded data, not the training
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ms = _ms_per_step(sys.argv[1], int(sys.argv[2]), steps=4, skip=1)
print(ms, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 2**20)
"""


def _probe(name: str, learners: int) -> tuple[float, float]:
    """(ms per meta-step, peak memory in GiB above the baseline) of a fresh process."""
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", _PROBE, name, str(learners)], cwd=root, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[-2]), float(out[-1])


def largest_ensemble(name: str, budget_gib: float = MEMORY_BUDGET_GIB, start: int = 32, limit: int = 8192) -> dict:
    """Double the learners per meta-step from ``start`` while the peak memory stays within the budget."""
    best = None
    learners = start
    while learners <= limit:
        ms, gib = _probe(name, learners)
        if gib > budget_gib:
            break
        best = {"learners": learners, "ms_per_step": ms, "peak_gib": gib, "learners_per_s": learners / ms * 1e3}
        learners *= 2
    return {"budget_gib": budget_gib, "largest": best, "next_size_exceeds_budget": learners <= limit}


def run() -> dict:
    torch.set_num_threads(1)
    out: dict = {"machine": machine_info(), "threads": 1, "authors_machine": AUTHORS_MACHINE,
                 "side_by_side_reference": SIDE_BY_SIDE, "cases": {}}
    for name, authors in AUTHORS.items():
        case: dict = {"authors_ms_per_step_measured_elsewhere": authors}
        for learners in (1, 8, 32):
            ms = _ms_per_step(name, learners, steps=20 if learners < 32 else 10)
            case[f"{learners}_learners"] = {"ms_per_step": ms, "ms_per_learner": ms / learners}
        case["memory"] = largest_ensemble(name)
        out["cases"][name] = case
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bias_networks.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    for name, case in run()["cases"].items():
        cells = ", ".join(f"{k}: {v['ms_per_step']:.1f} ms/step ({v['ms_per_learner']:.1f} per learner)"
                          for k, v in case.items() if k.endswith("learners"))
        authors = case["authors_ms_per_step_measured_elsewhere"]
        print(f"{name}: {cells}; authors (another machine, no ratio) {authors} ms/step")
        big = case["memory"]["largest"]
        if big:
            print(f"  largest ensemble in {case['memory']['budget_gib']} GiB: {big['learners']} learners "
                  f"({big['peak_gib']:.2f} GiB peak), {big['learners_per_s']:.0f} learners/s")
