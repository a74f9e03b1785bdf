"""``learnscope identify``: simulate networks trained with known rules and record their observables."""

from __future__ import annotations

from pathlib import Path

import typer

from learnscope.bundled import bundled_configs
from learnscope.cli._common import friendly_errors

app = typer.Typer(help="Which learning rule is this circuit using?", no_args_is_help=True)


@app.command("simulate")
@friendly_errors
def simulate_cmd(
    config: str = typer.Argument(..., help="A grid config file or the name of a bundled one (identify_tier0, …)."),
    out: Path = typer.Option(..., "--out", help="Store directory (created, or resumed if it holds this grid)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes."),
    backend: str = typer.Option("loky", help="loky (local processes), dask (dask.distributed) or sequential."),
    scheduler: str | None = typer.Option(None, help="Address of a running dask scheduler (with --backend dask)."),
    progress: bool = typer.Option(True, help="Show a progress bar over networks."),
) -> None:
    """Train every network of a grid and record its observables into a Parquet store (resumable)."""
    from learnscope.errors import check_positive_int
    from learnscope.identify.grid import expand, load_grid
    from learnscope.identify.simulate import simulate

    check_positive_int("--jobs", jobs)
    grid = load_grid(config)
    typer.echo(f"{len(expand(grid))} networks, {len(grid['conditions'])} measurement condition(s) -> {out}")
    counts = simulate(grid, out, jobs=jobs, backend=backend, scheduler=scheduler, progress=progress)
    typer.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))


@app.command("info")
@friendly_errors
def info_cmd(store: Path = typer.Argument(..., help="A store directory written by `identify simulate`.")) -> None:
    """Counts of finished networks by rule, task, architecture and status."""
    from learnscope.identify.grid import expand
    from learnscope.identify.store import Store

    s = Store.open(store)
    nets = s.networks()
    total = len(expand(s.meta["grid"]))
    typer.echo(f"{store}: {len(nets)} of {total} networks finished (schema {s.meta['schema_version']})")
    if nets.empty:
        return
    for column in ("status", "rule", "task", "architecture"):
        counts = nets.groupby(column).size()
        typer.echo(f"  by {column}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    bad = nets[nets.status != "ok"]
    for _, r in bad.head(10).iterrows():
        typer.echo(f"  {r.status}: {r.network_id} ({r.rule}, {r.task}, {r.architecture}): {r.reason}")


@app.command("configs")
def configs() -> None:
    """List the bundled grid configs."""
    for path in bundled_configs("identify"):
        typer.echo(path.stem)


@app.command("fit")
@friendly_errors
def fit_cmd(
    store: Path = typer.Argument(..., help="A store written by `identify simulate`."),
    out: Path = typer.Option(..., "--out", help="Model file to write (joblib)."),
    classifier: str = typer.Option("rf", help="rf, hgb, svm, svm_pca, conv1d or minirocket."),
    obs_class: str = typer.Option("all", help="Statistics to use: all, weight, act or grad."),
    condition: str = typer.Option("clean", help="Measurement condition of the store to train on."),
    seed: int = typer.Option(0),
) -> None:
    """Fit a rule classifier on every (network, layer) of a store, for `identify predict`."""
    from learnscope.identify.predict import fit_model

    info = fit_model(store, out, classifier=classifier, obs_class=obs_class, condition=condition, seed=seed)
    typer.echo(f"{classifier} on {info['n_rows']} layers of {info['n_networks']} networks, "
               f"{len(info['obs_names'])} statistics × {info['n_checkpoints']} checkpoints, rules "
               f"{', '.join(info['classes'])} -> {out}")


@app.command("predict")
@friendly_errors
def predict_cmd(
    model: Path = typer.Argument(..., help="A model file from `identify fit`."),
    recordings: Path = typer.Argument(..., help="CSV or Parquet recordings (schema: learnscope.identify.predict)."),
    subset: str = typer.Option("strict", help="strict, or auto: refit on the statistics/checkpoints present."),
    out: Path | None = typer.Option(None, "--out", help="Write the per-layer probabilities to this CSV."),
) -> None:
    """Rule probabilities per layer and per network for your own recordings."""
    from learnscope.identify.predict import predict_recordings

    per_layer, per_network, info = predict_recordings(model, recordings, subset=subset)
    if info["refitted"]:
        typer.echo(f"refitted {info['classifier']} on {info['statistics_used']} statistics and "
                   f"{info['checkpoints']} checkpoints", err=True)
    typer.echo(per_network.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if out is not None:
        per_layer.to_csv(out, index=False)
        typer.echo(f"per-layer probabilities: {out}")


@app.command("classify")
@friendly_errors
def classify_cmd(
    store: Path = typer.Argument(..., help="A store written by `identify simulate`."),
    out: Path = typer.Option(..., "--out", help="Directory for metrics.json, the figures and report.html."),
    classifiers: str = typer.Option("rf,hgb", help="Comma-separated: rf, hgb, svm, svm_pca, conv1d, minirocket."),
    grid: str = typer.Option("reduced", help="Hyper-parameter grids: original (the paper's), reduced or none."),
    n_splits: int = typer.Option(10, "--n-splits", help="Outer 75/25 network-grouped splits."),
    seed: int = typer.Option(0),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
    progress: bool = typer.Option(True, help="Show a progress bar over model fits."),
) -> None:
    """Every analysis of the paper on a store: main table, noise, subsampling, temporal, held-out, importances.

    Reported numbers use network-grouped splits (all layers of a network on one side); the original row-level
    splits are reported beside them for the "all" class so the leakage gap is visible.
    """
    from learnscope.cli._common import staged_output
    from learnscope.identify.analyses import run_all

    names = tuple(c.strip() for c in classifiers.split(",") if c.strip())
    with staged_output(out, force) as stage:
        results = run_all(store, stage, classifiers=names, grid=grid, n_splits=n_splits, seed=seed,
                          progress=progress)
    main = results.get("main_table", {})
    for cell in main.get("cells", []):
        typer.echo(f"{cell.get('classifier', '?'):8s} {cell.get('obs_class', '?'):7s} accuracy "
                   f"{cell.get('accuracy_mean', float('nan')):.3f} ± {cell.get('accuracy_sem', float('nan')):.3f}")
    typer.echo(f"report: {out / 'report.html'}")
