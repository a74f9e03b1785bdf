"""The issue-14 analyses on a simulated tier-2 store, each timed: HGB, no inner grid, 5 network-grouped splits.

``python -m benchmarks.identify_tier2_analyses runs/tier2_core`` (after ``learnscope identify simulate
identify_tier2_core --out runs/tier2_core --jobs 2``) writes ``benchmarks/results/identify_tier2_analyses.json``.
The full ``identify classify`` plan (rf + hgb, reduced grid, 10 splits) is about 5x the fits.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from benchmarks.machine import machine_info
from learnscope.identify import analyses
from learnscope.identify.frames import load_frames
from learnscope.results import to_jsonable

ANALYSES = ("main_table", "heldout", "performance_matched", "unit_count_curve", "heldout_hyperparameters")
RESULTS = Path(__file__).resolve().parent / "results" / "identify_tier2_analyses.json"


def run(store: str = "runs/tier2_core") -> dict:
    frames = load_frames(store)
    settings = {"classifiers": ("hgb",), "grid": "none", "n_splits": 5, "seed": 0}
    out: dict = {"machine": machine_info(), "store": store, "settings": settings, "seconds": {}, "results": {}}
    for name in ANALYSES:
        t0 = time.perf_counter()
        out["results"][name] = getattr(analyses, name)(frames, **settings)
        out["seconds"][name] = time.perf_counter() - t0
        print(f"{name}: {out['seconds'][name]:.0f} s", flush=True)
    RESULTS.write_text(json.dumps(to_jsonable(out), indent=1))
    return out


if __name__ == "__main__":
    run(*sys.argv[1:])
