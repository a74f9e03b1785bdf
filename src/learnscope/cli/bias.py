"""``learnscope bias``: meta-learn the functions a learner finds easy (Dorrell, Yuffa & Latham 2023)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import typer

from learnscope.bundled import bundled_configs
from learnscope.cli._common import FORCE_HELP, exit_on_warnings, friendly_errors, staged_output
from learnscope.fileio import shown

app = typer.Typer(help="What does a learner find easy to learn?", no_args_is_help=True)

SET_HELP = "Override a config value, e.g. --set search.steps=50 --set learner.features=100 (repeatable)."


def write_bias_run(cfg, stage: Path, progress: bool, components=None):
    """Run the experiment of ``cfg`` with its checkpoints in ``stage``, then write the run directory and report
    there; returns the :class:`~learnscope.bias.experiment.ExperimentResult`."""
    from learnscope.bias.experiment import run_experiment
    from learnscope.report.bias_report import write_report
    from learnscope.results import write_run_dir

    result = run_experiment(cfg, progress=progress, checkpoint_dir=stage, components=components)
    write_run_dir(stage, kind="bias-run", config=result.resolved_config(), metrics=result.metrics,
                  arrays=result.arrays)
    write_report(result, stage)
    for ckpt in stage.glob("function_*.npz"):
        ckpt.unlink()
    return result


def _execute(cfg, out: Path, force: bool, progress: bool) -> Path:
    from learnscope.bias.experiment import build_components

    components = build_components(cfg)  # validates every table before any work or any file
    with staged_output(out, force, resumable="function_*.npz") as stage:
        result = write_bias_run(cfg, stage, progress, components)
    report = out / "report.html"
    print_summary(result.metrics, report)
    verdict = result.metrics.get("verdict", {})
    for note in verdict.get("notes", []):
        typer.echo(f"note: {note}")
    exit_on_warnings(verdict.get("warnings", []))
    return report


def _dominant_degrees(per_seed: list[dict]) -> str:
    """``degree 2 (energy 0.93–0.96)``: the degree holding most energy per seed, with the range of that energy."""
    best = [max(enumerate(m["degree_energy"]), key=lambda pair: pair[1]) for m in per_seed]
    degrees = sorted({d for d, _ in best})
    lo, hi = min(e for _, e in best), max(e for _, e in best)
    return f"dominant degree {'/'.join(map(str, degrees))} (energy {lo:.3f}–{hi:.3f})"


def print_summary(metrics: dict, report: Path) -> None:
    for fn in metrics["functions"]:
        s = fn["summary"]
        if "agreement" in s:
            parts = [f"f{fn['index']}: agreement with the classes on held-out points min {s['agreement']['min']:.4f}"
                     f" / median {s['agreement']['median']:.4f}, label std median {s['label_std']['median']:.3f}"]
        else:
            parts = [f"f{fn['index']}: affine R² median {s['affine_r2']['median']:.4f}"]
        if "degree1_energy" in s:
            parts.append(
                f"degree-1 energy min {s['degree1_energy']['min']:.4f} / median {s['degree1_energy']['median']:.4f}"
            )
            parts.append(_dominant_degrees(fn["per_seed"]))
        if "gen_ratio_b_over_a" in s:
            parts.append(
                f"gen. MSE ratio B/A min {s['gen_ratio_b_over_a']['min']:.2f} / median "
                f"{s['gen_ratio_b_over_a']['median']:.2f}"
            )
        parts.append(f"{fn['ms_per_step_median']:.2f} ms/step")
        typer.echo(", ".join(parts))
    if "overlap" in metrics:
        typer.echo(f"max |overlap| between functions: {metrics['overlap']['max_abs_off_diagonal']:.4f}")
    typer.echo(f"report: {shown(report)}")


def run_config(
    config: str, out: Path, seed: int | None, overrides: list[str], force: bool, progress: bool
) -> Path:
    from learnscope.bias.config import load_config

    cfg = load_config(config, overrides, seed)
    return _execute(cfg, out, force, progress)


@app.command("run")
@friendly_errors
def run(
    config: str = typer.Argument(
        ..., help="A config file, or the name of a bundled config (see `learnscope bias configs`)."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Run directory to create (config.toml, metrics.json, arrays.npz, PNGs, report.html).",
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Run this one seed instead of the config's run.seeds."
    ),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    progress: bool = typer.Option(True, help="Show a progress bar over meta-steps."),
) -> None:
    """Run an experiment from a TOML config and write its run directory and HTML report."""
    run_config(config, out, seed, set_, force, progress)


@app.command("easiest")
@friendly_errors
def easiest(
    learner: str = typer.Option("random_features", help="ridge, kernel_ridge or random_features."),
    domain: str = typer.Option("sphere", help="sphere, disc, circle or hypercube."),
    dim: int = typer.Option(3, help="Input dimension d (sphere S^{d-1} and hypercube only)."),
    steps: int = typer.Option(200, help="Meta-steps."),
    out: Path = typer.Option(Path("runs/easiest"), "--out", help="Run directory to create."),
    seed: int = typer.Option(0, "--seed"),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Find the easiest function of a learner without writing a config (library defaults)."""
    dom: dict = {"name": domain}
    if domain in ("sphere", "hypercube"):
        dom["dim"] = dim
    raw = {
        "run": {"kind": "easiest", "seeds": [seed], "title": f"easiest function of {learner} on {domain}"},
        "domain": dom,
        "learner": {"name": learner},
        "search": {"steps": steps},
    }
    from learnscope.bias.config import apply_overrides, parse_config

    cfg = parse_config(apply_overrides(raw, set_))
    _execute(cfg, out, force, progress=True)


@app.command("configs")
def configs() -> None:
    """List the bundled configs (one per paper figure)."""
    for path in bundled_configs("bias"):
        title = tomllib.loads(path.read_text()).get("run", {}).get("title", "")
        typer.echo(f"{path.stem:32s} {title}")
