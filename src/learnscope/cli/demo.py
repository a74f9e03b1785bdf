"""``learnscope demo``: both questions answered on a small scale, each with its HTML report (≈ 1–2 min, 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from learnscope.errors import StoreError
from learnscope.fileio import MARKER, check_output_dir, shown, write_marker

DEMO_KIND = "demo"
BIAS_CONFIG = "fig2_kernel_sphere"
IDENTIFY_GRID = "identify_demo"


def _is_earlier_demo(out: Path) -> bool:
    try:
        return json.loads((out / MARKER).read_text()).get("kind") == DEMO_KIND
    except (OSError, ValueError, AttributeError):
        return False


def _prepare(out: Path) -> bool:
    """Check ``out`` and mark it as a demo directory; returns whether it holds an earlier demo (replaced part by
    part). Any other non-empty directory — or a file, ``.``, ``~`` — is refused before any work."""
    earlier = out.is_dir() and _is_earlier_demo(out)
    if not earlier:
        if out.is_dir() and any(out.iterdir()):
            raise StoreError(f"--out {shown(out)} already exists and is not an earlier demo; the demo replaces only "
                             "its own directory — choose another --out")
        check_output_dir(out, force=False)
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, DEMO_KIND)
    return earlier


def run_demo(out: Path, *, jobs: int = 2, progress: bool = True) -> list[str]:
    """Run the two halves into ``out/bias``, ``out/identify_store`` and ``out/identify``; returns warnings."""
    from learnscope.bias.config import load_config
    from learnscope.cli._common import staged_output
    from learnscope.cli.bias import print_summary, write_bias_run
    from learnscope.cli.identify import print_main_table, write_classify_run
    from learnscope.identify.grid import load_grid
    from learnscope.identify.simulation import simulate

    earlier = _prepare(out)
    cfg = load_config(BIAS_CONFIG, [], None)
    grid = load_grid(IDENTIFY_GRID)
    warnings: list[str] = []

    typer.echo(f"1/2  What does a kernel learner find easy? Fig 2 of Dorrell et al. ({BIAS_CONFIG}, "
               f"{len(cfg.seeds)} seeds)")
    with staged_output(out / "bias", force=earlier, resumable="function_*.npz") as stage:
        result = write_bias_run(cfg, stage, progress)
    print_summary(result.metrics, out / "bias" / "report.html")
    warnings += result.metrics.get("verdict", {}).get("warnings", [])

    store = out / "identify_store"
    typer.echo(f"2/2  Which learning rule? Simulating the {IDENTIFY_GRID} grid into {shown(store)}, then naming "
               "the rule from its recordings")
    counts = simulate(grid, store, jobs=jobs, progress=progress)
    bad = counts.get("failed", 0) + counts.get("diverged", 0)
    if bad:
        warnings.append(f"{bad} of {counts['total']} demo networks failed or diverged (learnscope identify info "
                        f"{shown(store)} says why)")
    with staged_output(out / "identify", force=earlier) as stage:
        results = write_classify_run(store, stage, classifiers=("rf",), grid="none", n_splits=3, seed=0,
                                     progress=progress)
    typer.echo(f"rule named from recordings of held-out networks (chance {1 / len(grid['grid']['rules']):.2f}):")
    print_main_table(results)

    typer.echo(f"report (what is easy to learn): {shown(out / 'bias' / 'report.html')}")
    typer.echo(f"report (which learning rule):   {shown(out / 'identify' / 'report.html')}")
    return warnings
