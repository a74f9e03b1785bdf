"""``learnscope animal``: the inductive bias of a learner you cannot differentiate — an animal, or any black box.

A real animal is not called from Python: ``new`` creates an experiment folder, ``plan`` writes the next session's
sheet, the lab runs it and returns a response file, ``record`` validates and appends it, ``status`` says what is
known. ``simulate`` runs the same loop in one process against a simulated animal.
"""

from __future__ import annotations

from pathlib import Path

import typer

from learnscope.cli._common import FORCE_HELP, exit_on_warnings, friendly_errors, staged_output

app = typer.Typer(help="What does an animal (or any black-box learner) find easy to learn?", no_args_is_help=True)

_SHEET_HEADER = "session,block,item,presentations"


@app.command()
@friendly_errors
def new(
    config: str = typer.Argument(..., help="Experiment config (.toml) or a bundled name (animal_kernel_graded)."),
    out: Path = typer.Option(..., "--out", help="The experiment folder to create."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Create an experiment folder: its config and an empty session log."""
    from learnscope.animal.config import load_animal_config
    from learnscope.animal.log import KIND, create_experiment
    from learnscope.fileio import shown, write_marker

    cfg = load_animal_config(config)
    with staged_output(out, force) as stage:
        create_experiment(stage, cfg)
        write_marker(stage, KIND)
    typer.echo(f"created {shown(out)}: route {cfg.route}, budget {cfg.budget} trials; next: "
               f"learnscope animal plan {shown(out)} --out session_000.csv")


def _check_sheet_out(out: Path, force: bool) -> None:
    """An existing file is replaced only with --force and only if it is a session sheet learnscope wrote."""
    from learnscope.errors import StoreError
    from learnscope.fileio import check_output_file, shown

    check_output_file(out, "session_007.csv")
    if out.exists():
        if not force:
            raise StoreError(f"{shown(out)} exists; use --force to replace a session sheet learnscope wrote")
        with open(out, errors="replace") as fh:
            if not fh.readline().startswith(_SHEET_HEADER):
                raise StoreError(f"{shown(out)} is not a session sheet learnscope wrote; not replacing it")


@app.command()
@friendly_errors
def plan(
    experiment: Path = typer.Argument(..., help="The experiment folder."),
    out: Path = typer.Option(..., "--out", help="Where to write the next session's sheet (CSV)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier session sheet at --out."),
) -> None:
    """Write the next session's stimuli, training labels and probe list for the lab."""
    from learnscope.animal.log import load_experiment, write_plan_sheet
    from learnscope.animal.status import next_plan
    from learnscope.fileio import shown

    cfg, log = load_experiment(experiment)
    _check_sheet_out(out, force)
    p = next_plan(cfg, cfg.make_route(), log)  # the plan only: the estimate (Algorithm 1 for a surrogate) is status'
    if p is None:
        typer.echo("no session to plan: the route has finished or the budget is spent — see "
                   f"`learnscope animal status {shown(experiment)}`")
        return
    write_plan_sheet(p, out)
    typer.echo(f"session {p.index}: {p.train_x.shape[0]} training stimuli, {p.probe_x.shape[0]} probes × "
               f"{p.repeats} = {p.trials} trials; wrote {shown(out)}. Return a CSV with columns "
               "session,item,repeat,response and run `learnscope animal record`.")


@app.command()
@friendly_errors
def record(
    experiment: Path = typer.Argument(..., help="The experiment folder."),
    responses: Path = typer.Argument(..., help="The lab's response file for the planned session (CSV)."),
) -> None:
    """Validate a response file against the planned session and append it to the session log."""
    from learnscope.animal.log import append_session, load_experiment, read_responses
    from learnscope.animal.session import SessionRecord
    from learnscope.animal.status import next_plan, trials_used
    from learnscope.errors import ConfigError
    from learnscope.fileio import shown

    cfg, log = load_experiment(experiment)
    route = cfg.make_route()
    planned = next_plan(cfg, route, log)
    if planned is None:
        raise ConfigError("no session is planned: the route has finished or the budget is spent")
    values = read_responses(responses, planned, len(log), cfg.response)
    log = append_session(experiment, log, SessionRecord(planned, values))
    following = next_plan(cfg, route, log)
    after = "none (the route has finished or the budget is spent)" if following is None else (
        f"session {following.index} ({following.trials} trials)")
    typer.echo(f"recorded session {planned.index}: {trials_used(log)} of {cfg.budget} trials used; next: {after}. "
               f"The estimate so far: `learnscope animal status {shown(experiment)}`")


def _write_status(folder: Path, st, truth: dict | None = None) -> list[str]:
    import numpy as np

    from learnscope.fileio import atomic_save, atomic_write
    from learnscope.report.animal_report import write_animal_report
    from learnscope.results import dumps_metrics

    status = st.to_dict()
    if truth is not None:
        from learnscope.animal.whitebox import truth_agreement

        atomic_save(folder / "truth.npz", lambda tmp: np.savez(tmp.open("wb"), values=truth["values"],
                                                               rotation_invariant=truth["rotation_invariant"]))
        status["agreement_with_white_box_f1"] = truth_agreement(st.estimate, st.route, truth)
    atomic_write(folder / "status.json", dumps_metrics(status))
    write_animal_report(st, folder, truth=truth)
    return list(st.estimate.warnings)


def _read_truth(folder: Path) -> dict | None:
    import numpy as np

    path = folder / "truth.npz"
    if not path.is_file():
        return None
    with np.load(path) as z:
        return {"values": z["values"], "rotation_invariant": bool(z["rotation_invariant"])}


@app.command()
@friendly_errors
def status(
    experiment: Path = typer.Argument(..., help="The experiment folder."),
) -> None:
    """Print (and write status.json and report.html into the folder) what the experiment knows so far."""
    from learnscope.animal.log import load_experiment
    from learnscope.animal.status import experiment_status, format_status
    from learnscope.fileio import shown

    cfg, log = load_experiment(experiment)
    st = experiment_status(cfg, log)
    typer.echo(format_status(st))
    warnings = _write_status(experiment, st, _read_truth(experiment))
    typer.echo(f"report: {shown(experiment / 'report.html')}")
    if st.finished:
        exit_on_warnings(warnings)


@app.command()
@friendly_errors
def simulate(
    config: str = typer.Argument(..., help="Experiment config with an [animal] table, or a bundled name."),
    out: Path = typer.Option(..., "--out", help="The experiment folder to write."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    truth: bool = typer.Option(True, help="Also run Algorithm 1 on the hidden learner (white box) and report how "
                                          "close each route's f1 is to it."),
) -> None:
    """Run the whole experiment in one process against the simulated animal of the config's [animal] table."""
    from tqdm.auto import tqdm

    from learnscope.animal.config import load_animal_config
    from learnscope.animal.log import KIND, create_experiment, write_log
    from learnscope.animal.loop import run_in_process
    from learnscope.animal.simulated import TrialBudget
    from learnscope.animal.status import experiment_status, format_status
    from learnscope.fileio import shown, write_marker

    cfg = load_animal_config(config)
    animal = cfg.make_animal()
    with staged_output(out, force) as stage:
        create_experiment(stage, cfg)
        write_marker(stage, KIND)
        with tqdm(total=cfg.budget, unit="trial", disable=not progress, desc="sessions") as bar:
            log = run_in_process(cfg.make_route(), animal, TrialBudget(cfg.budget), seed=cfg.seed,
                                 progress=lambda plan, _budget: bar.update(plan.trials))
        write_log(stage, log)
        st = experiment_status(cfg, log)
        white_box = None
        if truth:
            from learnscope.animal.whitebox import simulated_truth, truth_agreement

            white_box = simulated_truth(cfg, st.route)
            for name, a in truth_agreement(st.estimate, st.route, white_box).items():
                if a is not None:
                    typer.echo(f"{name}: |corr| with the white-box f1 {a:.3f}")
        warnings = _write_status(stage, st, white_box)
    typer.echo(format_status(st))
    typer.echo(f"report: {shown(out / 'report.html')}")
    exit_on_warnings(warnings)
