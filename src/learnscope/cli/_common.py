"""What every CLI command shares: one-line errors, run directories that appear whole, and the --force rules."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import typer

from learnscope.errors import LearnscopeError
from learnscope.fileio import check_output_dir, environment_error, replace_directory, shown, staging_path

F = TypeVar("F", bound=Callable)

EXIT_BAD_INPUT = 2
"""Exit status for bad input (a config, an argument, a store): the message says what to change."""
EXIT_ENVIRONMENT = 1
"""Exit status for a failure of the environment (full disk, permissions, read-only filesystem)."""
EXIT_RESULT_FAILED = 3
"""Exit status when the command ran and wrote its output, but the result failed its checks (a network failed or
diverged, a search diverged or collapsed): the ``warning:`` lines and the report say which."""
EXIT_INTERRUPTED = 130

FORCE_HELP = "Replace --out if it is a run learnscope wrote (never any other directory or file)."


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def exit_on_warnings(warnings: list[str]) -> None:
    """Print each of ``warnings`` as a ``warning:`` line and exit with :data:`EXIT_RESULT_FAILED` if any."""
    for message in warnings:
        warn(message)
    if warnings:
        raise typer.Exit(EXIT_RESULT_FAILED)


def friendly_errors(command: F) -> F:
    """Turn a LearnscopeError into ``error: <message>`` and exit 2, an OSError into one ``error:`` line and exit
    1, and Ctrl-C into one line and exit 130 — never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except LearnscopeError as err:
            fail(str(err), getattr(err, "exit_code", EXIT_BAD_INPUT))
        except OSError as err:
            fail(environment_error(err), EXIT_ENVIRONMENT)
        except KeyboardInterrupt as err:
            if not getattr(err, "reported", False):
                typer.echo("interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def staged_output(out: Path, force: bool, resumable: str | None = None) -> Iterator[Path]:
    """Yield a staging directory that becomes ``out`` only when the block succeeds.

    ``out`` is checked first (:func:`learnscope.fileio.check_output_dir`: ``--force`` replaces only a learnscope
    run). On failure or Ctrl-C the staging directory is removed unless it holds files matching ``resumable``
    (checkpoints), which are kept so that the same command resumes.
    """
    check_output_dir(out, force)
    stage = staging_path(out)
    stage.mkdir(parents=True, exist_ok=True)
    try:
        yield stage
    except BaseException as err:
        kept = resumable is not None and any(stage.glob(resumable))
        if not kept:
            shutil.rmtree(stage, ignore_errors=True)
        if isinstance(err, KeyboardInterrupt):
            note = f"; checkpoints kept in {shown(stage)} — rerun the same command to resume" if kept else ""
            typer.echo(f"interrupted{note}", err=True)
            err.reported = True  # friendly_errors prints nothing more
        elif kept:
            typer.echo(f"note: checkpoints kept in {shown(stage)} — rerun the same command to resume", err=True)
        raise
    check_output_dir(out, force)
    replace_directory(stage, out)
