"""The ``learnscope`` command: ``learnscope bias …`` and ``learnscope demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from learnscope.cli._common import friendly_errors
from learnscope.cli.bias import app as bias_app
from learnscope.cli.bias import run_config

app = typer.Typer(
    help="Meta-learn what a learner finds easy to learn (learnscope bias …).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(bias_app, name="bias")


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
