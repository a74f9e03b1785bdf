"""Per-meta-step timings of the trained-network bias experiments (Figs 7 and 8), beside the authors'.

Writes ``benchmarks/results/bias_networks.json`` (1 thread, median over meta-steps after the first 3). Goals
(issue #6): Fig 7 ≤ 25 ms per meta-step with one learner and ≤ 6 ms per learner with 8 or more; Fig 8 ≤ 1/3 of
the authors' 131–199 ms.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from learnscope.bias.config import load_config
from learnscope.bias.experiment import build_components
from learnscope.bias.search import meta_train, override

RESULTS = Path(__file__).resolve().parent / "results"
AUTHORS = {"fig7_mushroom_random": [117, 144], "fig8_backprop_mlp": [131, 199]}


def _ms_per_step(name: str, learners: int, steps: int = 20) -> float:
    cfg = load_config(name)
    comp = build_components(cfg)
    settings = override(cfg.search, steps=steps, learners_per_step=learners)
    res = meta_train(comp.make_meta(), comp.domain, comp.learner, comp.target, settings, [0])
    return float(np.median(res.extra["step_times_s"][3:]) * 1e3)


def run() -> dict:
    torch.set_num_threads(1)
    out: dict = {"threads": 1, "cases": {}}
    for name, authors in AUTHORS.items():
        case: dict = {"authors_ms_per_step": authors}
        for learners in (1, 8, 32):
            ms = _ms_per_step(name, learners, steps=20 if learners < 32 else 10)
            case[f"{learners}_learners"] = {"ms_per_step": ms, "ms_per_learner": ms / learners}
        out["cases"][name] = case
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bias_networks.json").write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    for name, case in run()["cases"].items():
        cells = ", ".join(f"{k}: {v['ms_per_step']:.1f} ms/step ({v['ms_per_learner']:.1f} per learner)"
                          for k, v in case.items() if k.endswith("learners"))
        print(f"{name}: {cells}; authors {case['authors_ms_per_step']} ms/step")
