"""Networks per minute of ``identify simulate`` for the bundled tier-0 and tier-1 grids on this machine.

Writes ``benchmarks/results/identify_simulate.json``. Tier 1 (288 MLPs, 21 checkpoints, 7 measurement
conditions) has a goal of at most 10 minutes on 2 cores (issue #4); a toy reference needed ≈ 5 s per network
per core. Stores go to ``runs/bench_*`` (reused: delete them to re-measure from scratch).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from benchmarks.machine import machine_info  # noqa: E402
from learnscope.identify.grid import expand, load_grid
from learnscope.identify.simulation import simulate
from learnscope.identify.store import Store

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def measure(config: str, jobs: int) -> dict:
    out = ROOT / "runs" / f"bench_{config}"
    shutil.rmtree(out, ignore_errors=True)
    grid = load_grid(config)
    t0 = time.perf_counter()
    counts = simulate(grid, out, jobs=jobs, backend="loky", progress=True)
    wall = time.perf_counter() - t0
    nets = Store.open(out).networks()
    per_net = nets.wall_time_s
    return {
        "config": config, "networks": len(expand(grid)), "conditions": len(grid["conditions"]),
        "checkpoints": grid["training"]["checkpoints"], "jobs": jobs, "wall_s": wall,
        "networks_per_minute": len(nets) / wall * 60, "counts": counts,
        "per_network_s": {"median": float(per_net.median()), "max": float(per_net.max()),
                          "sum": float(per_net.sum())},
        "store": str(out.relative_to(ROOT)),
    }


def run(tiers: tuple[str, ...] = ("identify_tier0", "identify_tier1")) -> dict:
    jobs = min(2, os.cpu_count() or 1)
    out = {"machine": machine_info(), "goal": "tier 1 (288 MLPs, 21 checkpoints, 7 conditions) <= 10 min on 2 cores",
           "reference": "toy reference ~5 s per network per core (identify-spec 7.2)",
           "cases": [measure(t, jobs) for t in tiers]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "identify_simulate.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    for case in run()["cases"]:
        print(f"{case['config']}: {case['networks']} networks in {case['wall_s']:.0f} s with {case['jobs']} jobs "
              f"({case['networks_per_minute']:.1f} networks/min), counts {case['counts']}")
