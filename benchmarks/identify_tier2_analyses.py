"""``identify classify`` on a tier-2 store as the CLI runs it by default (rf + hgb, reduced grids, 10 network-grouped
splits), with ``--jobs`` worker processes; timed per analysis (issue 14: within 15 minutes on 2 cores).

``python -m benchmarks.identify_tier2_analyses runs/tier2 [--jobs 2] [--out runs/tier2_classify]`` (after
``learnscope identify simulate identify_tier2 --out runs/tier2 --jobs 2``) writes the run directory with its
``metrics.json`` and ``report.html`` to ``--out`` (refused if it exists) and
``benchmarks/results/identify_tier2_analyses.json``: the plan (fits per analysis, the estimate), the wall time of
the parallel fits, each analysis's fit time (CPU seconds, wherever it ran), and the headline numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.machine import machine_info
from learnscope.identify.classify import plan_all
from learnscope.report.identify_report import write_report
from learnscope.results import to_jsonable, write_run_dir

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "identify_tier2_analyses.json"


def run(store: str, out_dir: Path, jobs: int) -> dict:
    if out_dir.exists():
        sys.exit(f"error: {out_dir} exists; give another --out")
    t0 = time.perf_counter()
    plan = plan_all(store, jobs=jobs)
    estimate = plan.estimate_seconds()
    results = plan.run(progress=True)
    write_run_dir(out_dir, kind="identify-classify", metrics=results)
    write_report(results, out_dir)
    wall = time.perf_counter() - t0
    main = results["main_table"]
    out = {
        "machine": machine_info(), "store": store, "settings": results["settings"], "jobs": jobs,
        "goal": "identify classify on the tier-2 store within 15 min on 2 cores",
        "n_networks": results["dataset"]["n_networks"], "n_rows": results["dataset"]["n_rows"],
        "n_fits": plan.n_fits, "fits_per_analysis": plan.fits_per_analysis, "estimate_s": estimate,
        "wall_s": wall, "timing": results["timing"],
        "accuracy": {f"{c['classifier']}/{c['obs_class']}": [c["accuracy_mean"], c["accuracy_sem"]]
                     for c in main["cells"]},
        "best": main["best"],
        "report": str(out_dir / "report.html"),
    }
    RESULTS.write_text(json.dumps(to_jsonable(out), indent=1) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "tier2_classify")
    args = ap.parse_args()
    r = run(args.store, args.out, args.jobs)
    print(f"{r['n_fits']} fits in {r['wall_s']:.0f} s (estimated {r['estimate_s']:.0f} s)")


if __name__ == "__main__":
    main()
