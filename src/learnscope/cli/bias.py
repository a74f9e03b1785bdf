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
MAX_MEMORY_HELP = ("Refuse a run whose meta-gradient is estimated to need more memory than this (e.g. 4GiB, 512MB); "
                   "the estimate is printed before every run through an unrolled learner.")


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


def search_memory(cfg, components):
    """The largest estimated peak memory of one meta-step's meta-gradient over the functions of ``cfg``
    (:func:`~learnscope.bias.search.estimate_search_memory`) with the settings of that function, or None when no
    learner is unrolled or the run uses ``search.meta_gradient = "es"``."""
    from learnscope.bias.search import estimate_search_memory

    cache, worst = {}, None
    for st in cfg.function_settings():
        key = (st.n_train, st.n_test, st.learners_per_step, st.dtype, st.seed_batching, st.meta_gradient, st.segment,
               st.truncate)
        if key not in cache:
            cache[key] = estimate_search_memory(components.learner, st, len(cfg.seeds), components.domain.dim,
                                                components.learner_b)
        est = cache[key]
        if est is not None and (worst is None or int(est) > int(worst[0])):
            worst = est, st
    return worst


def check_run_memory(cfg, components, max_memory: str | None) -> None:
    """Print the estimated peak memory of the run's meta-gradient (nothing for closed-form learners and "es") and
    refuse, with a one-line ConfigError, a run that will not fit ``max_memory``."""
    from learnscope.learners.memory import check_memory, format_bytes, parse_bytes

    limit = None if max_memory is None else parse_bytes(max_memory)  # a bad size is refused before any estimate
    worst = search_memory(cfg, components)
    if worst is None:
        return
    estimate, st = worst
    S, B = len(cfg.seeds), st.learners_per_step
    typer.echo(f"estimated peak memory of the meta-gradient: {format_bytes(int(estimate))} ({estimate.estimator}, "
               f"{estimate.steps:,} inner steps, {S} seed{'s' * (S != 1)} × {B} learner{'s' * (B != 1)} per step)")
    if limit is not None:
        check_memory(estimate, limit, key="search.meta_gradient")


def _execute(cfg, out: Path, force: bool, progress: bool, max_memory: str | None = None) -> Path:
    from learnscope.bias.experiment import build_components

    components = build_components(cfg)  # validates every table before any work or any file
    check_run_memory(cfg, components, max_memory)  # and refuses a run that will not fit, before any file
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
    config: str, out: Path, seed: int | None, overrides: list[str], force: bool, progress: bool,
    max_memory: str | None = None,
) -> Path:
    from learnscope.bias.config import load_config

    cfg = load_config(config, overrides, seed)
    return _execute(cfg, out, force, progress, max_memory)


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
    max_memory: str | None = typer.Option(None, "--max-memory", help=MAX_MEMORY_HELP),
) -> None:
    """Run an experiment from a TOML config and write its run directory and HTML report."""
    run_config(config, out, seed, set_, force, progress, max_memory)


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
    max_memory: str | None = typer.Option(None, "--max-memory", help=MAX_MEMORY_HELP),
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
    _execute(cfg, out, force, progress=True, max_memory=max_memory)


@app.command("theory")
@friendly_errors
def theory(
    config: str = typer.Argument(
        ..., help="A config file, or the name of a bundled config (see `learnscope bias configs`)."
    ),
    n: int | None = typer.Option(None, "--n", help="Training points (default: the config's search.n_train)."),
    ridge: float | None = typer.Option(
        None, "--ridge", help="Ridge δ in the learner's own convention (default: the learner's lam)."
    ),
    json_: bool = typer.Option(False, "--json", help="Print the whole prediction as strict JSON."),
) -> None:
    """What eigenlearning theory predicts for a config's kernel-type learner, without a search: κ, E₀, the ranking
    of the eigenspaces by learnability, where f1, f2, … should lie, and for a contrast the predicted best one.
    Writes nothing."""
    from learnscope.results import dumps_metrics
    from learnscope.theory.overlay import format_theory_summary, theory_summary

    summary = theory_summary(config, n=n, ridge=ridge)
    typer.echo(dumps_metrics(summary).rstrip("\n") if json_ else format_theory_summary(summary))


@app.command("configs")
def configs() -> None:
    """List the bundled configs (one per paper figure)."""
    for path in bundled_configs("bias"):
        title = tomllib.loads(path.read_text()).get("run", {}).get("title", "")
        typer.echo(f"{path.stem:32s} {title}")
