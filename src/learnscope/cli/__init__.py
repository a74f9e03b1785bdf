"""The ``learnscope`` command: ``learnscope bias …``, ``learnscope animal …``, ``learnscope identify …`` and
``learnscope demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from learnscope.cli._common import exit_on_warnings, friendly_errors
from learnscope.cli.animal import app as animal_app
from learnscope.cli.bias import app as bias_app
from learnscope.cli.identify import app as identify_app

app = typer.Typer(
    help="What does a learner find easy to learn (learnscope bias …; an animal or other black box: learnscope "
    "animal …), and which learning rule is a circuit using (learnscope identify …)?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(bias_app, name="bias")
app.add_typer(identify_app, name="identify")
app.add_typer(animal_app, name="animal")


@app.command()
@friendly_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Demo directory (an earlier demo there is replaced)."),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Worker processes for the simulation."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """The quick-start demo, both questions: Fig 2 of Dorrell et al. (what a kernel learner on S² finds easy) and a
    small rule-identification grid, simulated and classified (which rule trained each network). 1–2 min."""
    from learnscope.cli.demo import run_demo

    exit_on_warnings(run_demo(out, jobs=jobs, progress=progress))


def main() -> None:  # pragma: no cover - console entry point
    app()
