"""Per-meta-step timings of the closed-form bias experiments, beside the authors' (baseline-original.md).

Writes ``benchmarks/results/bias_core.json``. Run through ``make bench`` (1 thread). Each case runs the real
:func:`learnscope.bias.search.meta_train` loop; the median skips the first 3 steps, as the baseline did.
"""

from __future__ import annotations

import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

from learnscope.bias.config import load_config
from learnscope.bias.experiment import build_components
from learnscope.bias.search import meta_train, override

RESULTS = Path(__file__).resolve().parent / "results"

# The authors' 1-thread medians and loop totals (baseline-original.md, "Speed", quiet machine).
AUTHORS = {
    "fig2_kernel_sphere": {"ms_per_step": 5.9, "loop_s": [0.60, 0.64], "steps": 100},
    "fig2_ridge_disc": {"ms_per_step": 4.9, "loop_s": [0.51, 0.55], "steps": 100},
    "fig4_contrast_kernel_linear": {"ms_per_step": [11.2, 12.7], "loop_s": [5.8, 6.7], "steps": 500},
}

# The authors' settings expressed in our config keys: one learner per meta-step, features fixed for the run.
AUTHORS_SETTINGS = {
    "fig2_kernel_sphere": (["learner.resample=false"], {"learners_per_step": 1, "steps": 100}),
    "fig2_ridge_disc": ([], {"learners_per_step": 1, "steps": 100}),
    "fig4_contrast_kernel_linear": (
        ["learner.resample=false"],
        {"learners_per_step": 1, "steps": 500, "contrast_objective": "difference"},
    ),
}


def _time_run(
    name: str, overrides: list[str], changes: dict, seeds: list[int], steps: int | None = None
) -> dict:
    cfg = load_config(name, overrides)
    comp = build_components(cfg)
    settings = override(cfg.search, **changes)
    if steps is not None:
        settings = override(settings, steps=steps)
    t0 = time.perf_counter()
    res = meta_train(
        comp.make_meta(), comp.domain, comp.learner, comp.target, settings, seeds, learner_b=comp.learner_b
    )
    loop = time.perf_counter() - t0
    times = res.extra["step_times_s"][3:]
    return {
        "seeds": len(seeds),
        "steps": settings.steps,
        "learners_per_step": settings.learners_per_step,
        "distance": settings.distance,
        "ms_per_step_median": float(np.median(times) * 1e3),
        "ms_per_step_p90": float(np.percentile(times, 90) * 1e3),
        "ms_per_seed_step": float(np.median(times) * 1e3 / len(seeds)),
        "loop_s": loop,
    }


def run() -> dict:
    torch.set_num_threads(1)
    out: dict = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": 1,
            "processor": platform.processor() or platform.machine(),
        },
        "cases": {},
    }
    for name, (overrides, changes) in AUTHORS_SETTINGS.items():
        case = {"authors": AUTHORS[name]}
        case["authors_settings"] = _time_run(name, overrides, changes, [0])
        case["authors_settings_sinkhorn"] = _time_run(
            name,
            overrides,
            changes | {"distance": "sinkhorn", "target_samples": 100 if "kernel" in name else 15},
            [0],
            steps=30,
        )
        case["config_settings"] = _time_run(name, [], {}, [0])
        case["config_settings_5_seeds_batched"] = _time_run(name, [], {}, [0, 1, 2, 3, 4])
        authors_ms = AUTHORS[name]["ms_per_step"]
        ref = min(authors_ms) if isinstance(authors_ms, list) else authors_ms
        case["speedup_vs_authors_at_authors_settings"] = ref / case["authors_settings"]["ms_per_step_median"]
        out["cases"][name] = case
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bias_core.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    result = run()
    for name, case in result["cases"].items():
        a = case["authors_settings"]["ms_per_step_median"]
        c = case["config_settings"]
        b = case["config_settings_5_seeds_batched"]
        print(
            f"{name:30s} authors' settings {a:6.2f} ms/step (authors {case['authors']['ms_per_step']} ms, "
            f"{case['speedup_vs_authors_at_authors_settings']:.1f}x); config {c['ms_per_step_median']:.2f} ms/step, "
            f"loop {c['loop_s']:.2f} s; 5 seeds batched {b['ms_per_seed_step']:.2f} ms per seed-step"
        )
