"""What every CLI command shares: one-line errors with exit status 2, and run directories that appear whole."""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import typer

from learnscope.errors import LearnscopeError, StoreError

F = TypeVar("F", bound=Callable)


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def friendly_errors(command: F) -> F:
    """Turn a LearnscopeError into ``error: <message>`` on stderr and exit status 2 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except LearnscopeError as err:
            fail(str(err))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def check_output_dir(out: Path, force: bool) -> None:
    """Refuse an existing non-empty ``out`` (unless ``force``) and an unwritable parent, before any work."""
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise StoreError(f"--out {out} already exists and is not empty; pass --force to replace it")
    parent = out.resolve().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise StoreError(f"cannot write to {probe} (needed for --out {out})")


def staging_path(out: Path) -> Path:
    return out.resolve().parent / f".{out.name}.partial"


@contextmanager
def staged_output(out: Path, force: bool) -> Iterator[Path]:
    """Yield a staging directory that becomes ``out`` only when the block succeeds.

    On a LearnscopeError or any other failure the staging directory is removed, so no half-written run is
    left; on Ctrl-C it is kept (it holds checkpoints) and the same command resumes from it.
    """
    check_output_dir(out, force)
    stage = staging_path(out)
    stage.mkdir(parents=True, exist_ok=True)
    try:
        yield stage
    except KeyboardInterrupt:
        typer.echo(f"interrupted; checkpoints kept in {stage} — rerun the same command to resume", err=True)
        raise
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage.rename(out)
