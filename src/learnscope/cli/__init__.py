"""The ``learnscope`` command: ``learnscope bias …``, ``learnscope identify …`` and ``learnscope demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from learnscope.cli._common import friendly_errors
from learnscope.cli.bias import app as bias_app
from learnscope.cli.bias import run_config
from learnscope.cli.identify import app as identify_app

app = typer.Typer(
    help="What does a learner find easy to learn (learnscope bias …), and which learning rule is a circuit using "
    "(learnscope identify …)?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(bias_app, name="bias")
app.add_typer(identify_app, name="identify")


@app.command()
@friendly_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Run directory to write."),
    force: bool = typer.Option(True, help="Replace an existing run directory."),
) -> None:
    """The quick-start demo: Fig 2 of Dorrell et al. (kernel learner on S²), with its HTML report (< 1 min)."""
    run_config("fig2_kernel_sphere", out, seed=None, overrides=[], force=force, progress=True)


def main() -> None:  # pragma: no cover - console entry point
    app()
