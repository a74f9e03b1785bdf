"""``learnscope identify``: simulate networks trained with known rules and record their observables."""

from __future__ import annotations

from pathlib import Path

import typer

from learnscope.bundled import bundled_configs
from learnscope.cli._common import FORCE_HELP, friendly_errors

app = typer.Typer(help="Which learning rule is this circuit using?", no_args_is_help=True)


@app.command("simulate")
@friendly_errors
def simulate_cmd(
    config: str = typer.Argument(..., help="A grid config file or the name of a bundled one (identify_tier0, …)."),
    out: Path = typer.Option(..., "--out", help="Store directory (created, or resumed if it holds this grid)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes."),
    ensemble: int = typer.Option(8, "--ensemble",
                                 help="Train up to N networks that differ only in seed and learning rate as one "
                                      "batched ensemble per job (same values as one at a time); 1 = one network "
                                      "per job."),
    backend: str = typer.Option("loky", help="loky (local processes), dask (dask.distributed) or sequential."),
    scheduler: str | None = typer.Option(None, help="Address of a running dask scheduler (with --backend dask)."),
    progress: bool = typer.Option(True, help="Show a progress bar over networks."),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="Retrain the networks whose status is 'failed' (an error). Diverged "
                                           "networks are kept: training is deterministic, they would diverge again."),
    repair: bool = typer.Option(False, "--repair",
                                help="Remove the files of networks whose store files are broken (truncated, "
                                     "missing, altered) so that they are retrained."),
) -> None:
    """Train every network of a grid and record its observables into a Parquet store (resumable).

    Everything is checked before the first network: the grid (a training shorter than its checkpoints, an
    architecture a task cannot take), --out and the files already in the store. Several runs may share one store:
    they split the networks and none is trained twice. Exits 3 when any network of the grid failed or diverged
    (warning: lines say how many and why). Ends with each rule's task performance per objective; a rule that does
    not learn an objective gets a note: line (a finding about the grid, not a failed run).
    """
    from learnscope.cli._common import exit_on_warnings
    from learnscope.fileio import shown
    from learnscope.identify.grid import load_grid
    from learnscope.identify.simulation import outcome_warnings, prepare
    from learnscope.validation import check_positive_int

    check_positive_int("--jobs", jobs)
    check_positive_int("--ensemble", ensemble)
    grid = load_grid(config)
    plan = prepare(grid, out, backend=backend, retry_failed=retry_failed, repair=repair, ensemble=ensemble)
    if plan.repaired:
        ids = ", ".join(d.network_id for d in plan.repaired[:5]) + (" …" if len(plan.repaired) > 5 else "")
        typer.echo(f"repair: removed the broken files of {len(plan.repaired)} network(s) ({ids}); they are "
                   "retrained now", err=True)
    retried = f", {plan.retried} failed ones retried" if plan.retried else ""
    typer.echo(f"{len(plan.specs)} networks, {len(grid['conditions'])} measurement condition(s) -> {shown(out)}: "
               f"{len(plan.pending)} to train, {plan.already_done} already done{retried}")
    counts = plan.run(jobs=jobs, scheduler=scheduler, progress=progress,
                      notify=lambda message: typer.echo(message, err=True))
    if not counts["elsewhere"]:
        counts.pop("elsewhere")
    typer.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))
    statuses = plan.store.statuses()
    in_grid = [statuses[s["network_id"]] for s in plan.specs if s["network_id"] in statuses]
    typer.echo(f"store: {in_grid.count('ok')} ok, {in_grid.count('failed')} failed, "
               f"{in_grid.count('diverged')} diverged (of {len(plan.specs)})")
    nets = plan.store.networks()
    if not nets.empty:
        ids = {s["network_id"] for s in plan.specs}
        print_task_performance(nets[nets.network_id.isin(ids)])
    exit_on_warnings(outcome_warnings(plan.store, plan.specs))


def print_task_performance(networks) -> None:
    """The table of :func:`learnscope.identify.task_performance.task_performance` (objective × rule), and a
    ``note:`` line for each rule that does not learn an objective: a finding about the grid, not a failed run, so
    neither a ``warning:`` line nor the exit code changes."""
    from learnscope.identify.task_performance import not_learned, task_performance

    rows = task_performance(networks)
    if not rows:
        return
    typer.echo("task performance (median over ok networks, first -> last checkpoint):")
    width = max(len(r["objective"]) for r in rows)
    for r in rows:
        verdict = {True: "", False: "  does not learn", None: "  (no ok network)"}[r["learns"]]
        typer.echo(f"  {r['objective']:{width}s} {r['rule']:5s} {r['measure']} {r['initial']:.3f} -> "
                   f"{r['final']:.3f} (chance {r['chance']:.3g}; {r['n_ok']} ok){verdict}")
    for message in not_learned(rows):
        typer.echo(f"note: {message}")


@app.command("info")
@friendly_errors
def info_cmd(store: Path = typer.Argument(..., help="A store directory written by `identify simulate`.")) -> None:
    """Counts of the store's networks by status, rule, task and architecture; checks every file of the store.

    A store with broken files (truncated, missing, altered) is one error: line naming the networks and the remedy.
    """
    from learnscope.errors import StoreError
    from learnscope.fileio import shown
    from learnscope.identify.grid import expand
    from learnscope.identify.store import Store

    s = Store.open(store)
    scan = s.scan()
    if scan.damages:
        raise StoreError(s.damage_message(scan.damages))
    nets = scan.networks
    try:
        total = str(len(expand(s.meta["grid"])))
    except Exception:  # noqa: BLE001 - a store written by hand (tests, other tools) may hold no expandable grid
        total = "?"
    status = nets.status.value_counts() if not nets.empty else {}
    n_ok, n_failed, n_div = (int(status.get(k, 0)) for k in ("ok", "failed", "diverged"))
    todo = f"; {int(total) - len(nets)} not simulated yet" if total != "?" and int(total) > len(nets) else ""
    typer.echo(f"{shown(store)}: {n_ok} ok, {n_failed} failed, {n_div} diverged (of {total}{todo}; store schema "
               f"{s.meta['schema_version']})")
    if nets.empty:
        return
    for column in ("rule", "task", "architecture"):
        if column in nets:
            counts = nets.groupby(column).size()
            typer.echo(f"  by {column}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    bad = nets[nets.status != "ok"]
    for _, r in bad.head(10).iterrows():
        typer.echo(f"  {r.status}: {r.network_id} ({r.get('rule')}, {r.get('task')}, {r.get('architecture')}): "
                   f"{r.get('reason')}")
    if len(bad) > 10:
        typer.echo(f"  … and {len(bad) - 10} more")
    print_task_performance(nets)
    if n_failed:
        typer.echo("  (retrain the failed ones with `learnscope identify simulate <grid config> --out "
                   f"{shown(store)} --retry-failed`)")


@app.command("configs")
def configs() -> None:
    """List the bundled grid configs (for `identify simulate`), each with its one-line description."""
    for path in bundled_configs("identify"):
        lines = path.read_text().splitlines()
        about = next((ln.lstrip("# ").strip() for ln in lines if ln.startswith("#")), "")
        typer.echo(f"{path.stem:16s} {about}".rstrip())


@app.command("fit")
@friendly_errors
def fit_cmd(
    store: Path = typer.Argument(..., help="A store written by `identify simulate`."),
    out: Path = typer.Option(..., "--out", help="Model file to write (joblib)."),
    classifier: str = typer.Option("rf", help="rf, hgb, svm, svm_pca, conv1d or minirocket."),
    obs_class: str = typer.Option("all", "--observables", "--obs-class",
                                  help="Statistics to use: all, weight, act, grad, a statistic's name, or a "
                                       "comma-separated mix. In vivo usually only act is recorded."),
    condition: str = typer.Option("clean", help="Measurement condition of the store to train on."),
    seed: int = typer.Option(0),
    calibrate: bool = typer.Option(True, help="Calibrate the probabilities on held-out networks (5 more fits)."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it is a model file already."),
) -> None:
    """Fit a rule classifier on every (network, layer) of a store, for `identify predict`.

    The store's finished networks must use at least two rules. The probabilities are calibrated on held-out
    networks and the model records which rules its statistics cannot separate.
    --out is written atomically; an existing file is replaced only with --force, and only if it is a model.
    """
    from learnscope.cli._common import warn
    from learnscope.fileio import shown
    from learnscope.identify.predict import fit_model, support_text, unbalanced_warning

    info = fit_model(store, out, classifier=classifier, obs_class=obs_class, condition=condition, seed=seed,
                     force=force, calibrate=calibrate)
    typer.echo(f"{classifier} on {info['n_rows']} layers of {info['n_networks']} networks, "
               f"{len(info['obs_names'])} statistics × {info['n_checkpoints']} checkpoints, rules "
               f"{', '.join(info['classes'])} -> {shown(out)}")
    typer.echo(f"support: {support_text(info['support'])}")
    _print_calibration(info.get("calibration"))
    unbalanced = unbalanced_warning(info["support"])
    if unbalanced:
        warn(unbalanced)


def _print_calibration(cal: dict | None) -> None:
    if not cal:
        return
    if cal.get("available") is False or "ece_layer" not in cal:
        typer.echo(f"calibration: {cal.get('reason', 'not available')}")
        return
    typer.echo(f"calibration: {cal.get('method', '?')}; held-out expected calibration error {cal['ece_layer']:.3f} "
               f"per layer")
    for pair in cal.get("indistinguishable", []):
        typer.echo(pair["statement"])


@app.command("predict")
@friendly_errors
def predict_cmd(
    model: Path = typer.Argument(..., help="A model file from `identify fit`."),
    recordings: Path = typer.Argument(..., help="CSV or Parquet recordings (schema: learnscope.identify.predict), "
                                                "or NWB sessions: a mapping .toml or a folder holding mapping.toml."),
    subset: str = typer.Option("strict", help="strict, or auto: refit on the statistics/checkpoints present."),
    out: Path | None = typer.Option(None, "--out", help="Write the probabilities to this CSV, and a report beside "
                                                        "it (same name, .html)."),
) -> None:
    """Calibrated rule probabilities per layer and per network for your own recordings, and the rules those
    recordings cannot tell apart.

    With --subset auto, checkpoints 0..k-1 are read as evenly spaced over learning, other numbers as the model's.
    --out and its report are written atomically.
    """
    from learnscope.cli._common import warn
    from learnscope.fileio import shown
    from learnscope.identify.nwb import is_nwb_input, recordings_from_nwb
    from learnscope.identify.predict import (
        check_table_out,
        describe_checkpoints,
        load_model,
        predict,
        support_text,
        write_table,
    )
    from learnscope.report.predict_report import write_predict_report

    if out is not None:
        check_table_out(out, protect={"recordings": recordings, "model": model})
        check_table_out(out.with_suffix(".html"), protect={"recordings": recordings, "model": model})
    table = recordings
    if is_nwb_input(recordings):
        table, nwb = recordings_from_nwb(recordings, n_checkpoints=load_model(model)["n_checkpoints"])
        typer.echo(f"read {len(nwb.get('sessions', []))} NWB sessions from {shown(recordings)}", err=True)
    res = predict(model, table, subset=subset)
    info = res.info
    if info["refitted"]:
        recorded, used = info["recording_checkpoints"], info["training_checkpoints_used"]
        if recorded == used:
            mapping = f" (model checkpoints {describe_checkpoints(used)}, matched by number)"
        else:
            mapping = (f" (your {describe_checkpoints(recorded)} taken as evenly spaced over learning = model "
                       f"checkpoints {describe_checkpoints(used)})")
        missing = info["statistics_missing"]
        typer.echo(f"refitted {info['classifier']} on {info['statistics_used']} statistics"
                   f"{' (without ' + ', '.join(missing) + ')' if missing else ''} and "
                   f"{info['checkpoints']} checkpoints{mapping}", err=True)
    typer.echo(f"model: {info['classifier']} trained on {support_text(info['support'])}")
    if info["unbalanced"]:
        warn(info["unbalanced"])
    shown_cols = [c for c in res.networks.columns if c not in ("level", "layer", "group")]
    typer.echo(res.networks[shown_cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for line in res.summary_lines():
        typer.echo(line)
    if out is not None:
        write_table(res.table, out)
        report = write_predict_report(res, out.with_suffix(".html"))
        typer.echo(f"probabilities: {shown(out)}; report: {shown(report)}")


@app.command("export")
@friendly_errors
def export_cmd(
    store: Path = typer.Argument(..., help="A store written by `identify simulate`."),
    network: str = typer.Argument(..., help="The network id (see `identify info`)."),
    out: Path = typer.Option(..., "--out", help="Folder for the NWB sessions (one per checkpoint) and mapping.toml."),
    condition: str = typer.Option("clean", help="The measurement condition to record the activities under."),
    container: str = typer.Option("Fluorescence", help="Fluorescence or DfOverF (where the ROI series go)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Write a simulated network's probe activities as NWB sessions, a case with known truth for a lab's pipeline
    (and `identify predict MODEL OUT`)."""
    from learnscope.cli._common import staged_output
    from learnscope.fileio import shown, write_marker
    from learnscope.identify.nwb import export_network

    with staged_output(out, force) as stage:
        files = export_network(store, network, stage, condition=condition, container=container)
        write_marker(stage, "identify-export")
    typer.echo(f"wrote {len([f for f in files if f.suffix == '.nwb'])} NWB sessions and mapping.toml to {shown(out)}")


@app.command("classify")
@friendly_errors
def classify_cmd(
    store: Path = typer.Argument(..., help="A store written by `identify simulate`."),
    out: Path = typer.Option(..., "--out", help="Directory for metrics.json, the figures and report.html."),
    classifiers: str = typer.Option("rf,hgb", help="Comma-separated: rf, hgb, svm, svm_pca, conv1d, minirocket."),
    grid: str = typer.Option("reduced", help="Hyper-parameter grids: original (the paper's), reduced or none."),
    n_splits: int = typer.Option(10, "--n-splits", help="Outer 75/25 network-grouped splits."),
    seed: int = typer.Option(0),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes fitting models in parallel (same numbers)."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    progress: bool = typer.Option(True, help="Show a progress bar over model fits."),
) -> None:
    """Every analysis of the paper on a store: main table, noise, subsampling, temporal, held-out, importances;
    and on a store with the variety of tier 2: per-objective tables, held-out objective and hyperparameters, the
    recorded-unit count curve and the performance-matched control (each skipped, with its reason, where the store
    cannot support it).

    Reported numbers use network-grouped splits (all layers of a network on one side); the original row-level
    splits are reported beside them for the "all" class so the leakage gap is visible. Before fitting, it prints
    how many model fits it will run, with which classifiers and splits, and a rough time estimate.
    """
    from learnscope.cli._common import staged_output
    from learnscope.fileio import shown
    from learnscope.validation import check_positive_int

    check_positive_int("--jobs", jobs)
    names = tuple(c.strip() for c in classifiers.split(",") if c.strip())
    with staged_output(out, force) as stage:
        results = write_classify_run(store, stage, classifiers=names, grid=grid, n_splits=n_splits, seed=seed,
                                     progress=progress, jobs=jobs)
    print_main_table(results)
    typer.echo(f"report: {shown(out / 'report.html')}")


def print_main_table(results: dict) -> None:
    """One line per (classifier, observable class): network-grouped test accuracy ± s.e.m. over splits."""
    for cell in results["main_table"]["cells"]:
        sem = cell["accuracy_sem"]
        typer.echo(f"{cell['classifier']:8s} {cell['obs_class']:7s} accuracy {cell['accuracy_mean']:.3f}"
                   + (f" ± {sem:.3f}" if sem is not None else " (one split: no s.e.m.)"))


def write_classify_run(store: Path, stage: Path, *, classifiers: tuple[str, ...], grid: str, n_splits: int, seed: int,
                       progress: bool, jobs: int = 1) -> dict:
    """Print the plan and its time estimate, run every analysis on ``store``, and write the run directory and its
    report into ``stage``; returns the results (:class:`learnscope.identify.tables.ClassifyResults`)."""
    from learnscope.fileio import shown
    from learnscope.identify.classify import plan_all
    from learnscope.report.identify_report import write_report
    from learnscope.results import write_run_dir

    plan = plan_all(store, classifiers=classifiers, grid=grid, n_splits=n_splits, seed=seed, jobs=jobs)
    s, d = plan.settings, plan.dataset
    typer.echo(f"{shown(store)}: {d['n_networks']} networks, {len(d['rules'])} rules, {len(d['tasks'])} "
               f"task(s), {len(d['objectives'])} objective(s), {len(d['architectures'])} architecture(s), "
               f"{len(d['conditions'])} condition(s)")
    per = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in plan.fits_per_analysis.items() if v)
    typer.echo(f"plan: {plan.n_fits} model fits ({s['n_splits']} network-grouped outer splits for each "
               f"classifier × dataset; grid '{s['grid']}')")
    typer.echo(f"  per analysis (a fit shared by several counted once): {per}")
    typer.echo(f"  classifiers: {', '.join(s['classifiers'])} (main table, per-objective tables, held-out "
               "architecture / task / objective and hyperparameters, performance baseline); "
               f"{', '.join(s['curve_classifiers'])} (noise, subsampling, unit-count and temporal curves, "
               "performance-matched control); "
               f"{s['importance_classifier']} (importances)")
    est = plan.estimate_seconds()
    typer.echo(f"  estimated time: about {f'{est / 60:.0f} min' if est >= 90 else f'{max(est, 1):.0f} s'} "
               "(rough: from one timed fit per classifier)")
    results = plan.run(progress)
    write_run_dir(stage, kind="identify-classify", metrics=results,
                  config={"classify": {"store": shown(store), **results["settings"]}})
    write_report(results, stage)
    return results
