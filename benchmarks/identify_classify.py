"""Wall time of the full rule-identification analysis (``identify classify``) on the tier-1 store.

Writes ``benchmarks/results/identify_classify.json``: every analysis with the reduced grids, 10 network-grouped
splits, the default classifiers, and the headline accuracies. Goal (issue #5): at most 10 minutes on 2 cores.
Needs the tier-1 store of ``benchmarks/identify_simulate.py`` (``runs/bench_identify_tier1``).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from benchmarks.machine import machine_info  # noqa: E402
from learnscope.identify.classify import run_all
from learnscope.report.identify_report import write_report
from learnscope.results import write_run_dir

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
STORE = ROOT / "runs" / "bench_identify_tier1"


def run(classifiers: tuple[str, ...] = ("rf", "hgb"), jobs: int = 2) -> dict:
    out_dir = ROOT / "runs" / "bench_identify_classify"
    shutil.rmtree(out_dir, ignore_errors=True)
    t0 = time.perf_counter()
    results = run_all(STORE, classifiers=classifiers, grid="reduced", n_splits=10, seed=0, progress=True, jobs=jobs)
    write_run_dir(out_dir, kind="identify-classify", metrics=results)
    write_report(results, out_dir)
    wall = time.perf_counter() - t0  # the analyses and their output, as `identify classify` runs them
    main = results["main_table"]
    out = {
        "machine": machine_info(),
        "goal": "full analysis of tier 1 with reduced grids <= 10 min on 2 cores",
        "store": str(STORE.relative_to(ROOT)), "classifiers": list(classifiers), "grid": "reduced", "n_splits": 10,
        "jobs": jobs, "wall_s": wall, "timing": results.get("timing"),
        "accuracy": {f"{c['classifier']}/{c['obs_class']}": [c["accuracy_mean"], c["accuracy_sem"]]
                     for c in main["cells"]},
        "row_vs_network": main["row_vs_network"],
        "report": str((out_dir / "report.html").relative_to(ROOT)),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "identify_classify.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    r = run()
    print(f"full analysis in {r['wall_s']:.0f} s")
    for k, (m, s) in r["accuracy"].items():
        print(f"  {k:12s} {m:.3f} ± {s:.3f}")
