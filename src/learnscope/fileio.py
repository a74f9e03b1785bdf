"""Writing files so that nothing is lost: atomic writes, the run-directory marker and the rules of ``--force``.

Every file learnscope writes goes through :func:`atomic_write` (a temporary file in the same directory, fsync,
rename): a full disk, a crash or Ctrl-C leaves either the old file or the new one, never a truncated one.

Every run directory learnscope writes holds a marker file, :data:`MARKER`. ``--force`` replaces a directory only
if it carries that marker (or, for runs written before the marker existed, the recognised layout of a run
directory); it never replaces ``.``, ``~``, ``/``, a parent of the current directory, a file, or a directory
learnscope did not write.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from learnscope.errors import StoreError

MARKER = ".learnscope-run"
"""Name of the JSON file that marks a directory as written by learnscope: ``{"kind": ..., "version": 1}``."""

_LEGACY_RUN_FILES = {"config.toml", "metrics.json", "report.html"}
_LEGACY_RUN_SUFFIXES = {".toml", ".json", ".npz", ".png", ".html", ".csv", ".parquet"}


def shown(path: Path | str) -> str:
    """``path`` as the user would recognise it: relative to the current directory when it lies below it."""
    path = Path(path)
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it is fsynced and renamed onto ``path``.

    On any failure (an exception, a full disk while writing) the temporary file is removed and ``path`` is left
    exactly as it was. Use it for writers that insist on a path (``savefig``, ``joblib.dump``, pyarrow)::

        with atomic_path(out / "model.joblib") as tmp:
            joblib.dump(model, tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"the writer did not create {tmp}")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write(path: Path | str, data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically; return ``path``."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(payload)
    return path


def atomic_save(path: Path | str, save: Callable[[Path], object]) -> Path:
    """Call ``save(tmp)`` and rename ``tmp`` onto ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        save(tmp)
    return Path(path)


def write_marker(directory: Path, kind: str) -> None:
    """Mark ``directory`` as a learnscope run of ``kind`` (``bias-run``, ``identify-classify``, ``demo`` …)."""
    atomic_write(Path(directory) / MARKER, json.dumps({"kind": kind, "version": 1}) + "\n")


def written_by_learnscope(directory: Path) -> bool:
    """True if ``directory`` carries the marker, or has the layout of a run directory from before the marker."""
    directory = Path(directory)
    if (directory / MARKER).is_file():
        return True
    entries = list(directory.iterdir())
    names = {p.name for p in entries}
    return _LEGACY_RUN_FILES <= names and all(
        p.is_file() and (p.suffix in _LEGACY_RUN_SUFFIXES or p.name.startswith(".")) for p in entries
    )


def _protected(resolved: Path) -> str | None:
    """Why ``resolved`` may never be replaced, or ``None``."""
    cwd = Path.cwd().resolve()
    if resolved == cwd:
        return "it is the current directory"
    if resolved in cwd.parents:
        return "it contains the current directory"
    if resolved == Path.home().resolve():
        return "it is your home directory"
    if resolved == Path(resolved.anchor):
        return "it is the root of the filesystem"
    return None


def check_output_dir(out: Path, force: bool) -> None:
    """Refuse, before any work, an ``--out`` that learnscope may not (re)place.

    Raises :class:`~learnscope.errors.StoreError` (one line) for: a file; ``.``, ``~``, ``/`` or a parent of the
    current directory; an existing non-empty directory without ``force``; with ``force``, a non-empty directory
    learnscope did not write; and a location that cannot be written.
    """
    out = Path(out)
    resolved = out.resolve()
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {shown(out)} is a file, not a run directory; choose another --out")
    parent = existing_ancestor(resolved)
    if not parent.is_dir():
        raise StoreError(f"--out {shown(out)}: {shown(parent)} is a file, not a directory")
    why = _protected(resolved)
    if why is not None:
        raise StoreError(f"refusing to use --out {shown(out)}: {why}; name a new directory for the run")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise StoreError(f"--out {shown(out)} already exists and is not empty; pass --force to replace a "
                             "learnscope run, or choose another --out")
        if not written_by_learnscope(out):
            raise StoreError(f"--out {shown(out)} was not written by learnscope (no {MARKER} marker); refusing to "
                             "replace it — choose another --out or remove it yourself")
    check_writable(parent)


def check_output_file(out: str | Path, example: str, protect: dict[str, str | Path] | None = None) -> None:
    """Refuse, before any work, an ``--out`` file path that cannot be written.

    ``example`` names a file for the message when ``out`` is a directory; ``protect`` maps a description
    (``"recordings"``) to an input file that ``out`` must not be. Raises :class:`ConfigError` (exit 2) for a
    directory, a missing parent directory, a path below a file or an input file; ``OSError`` (exit 1) for an
    unwritable directory. Whether an existing file may be replaced is the caller's rule.
    """
    from learnscope.errors import ConfigError

    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {shown(out)} is a directory; name the file to write, e.g. {shown(out / example)}")
    parent = out.parent
    if not parent.exists():
        anc = existing_ancestor(out)
        if not anc.is_dir():
            raise ConfigError(f"--out {shown(out)}: {shown(anc)} is a file, not a directory")
        raise ConfigError(f"--out {shown(out)}: the directory {shown(parent)} does not exist; create it first or "
                          "choose another --out")
    if not parent.is_dir():
        raise ConfigError(f"--out {shown(out)}: {shown(parent)} is a file, not a directory")
    if out.exists():
        for what, path in (protect or {}).items():
            if Path(path).exists() and os.path.samefile(out, path):
                raise ConfigError(f"--out {shown(out)} is the {what} file; choose another --out")
    check_writable(parent)


def existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of ``path`` that exists."""
    parent = Path(path).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def check_writable(directory: Path) -> None:
    """Raise an ``OSError`` (an environment failure: exit 1) if files cannot be created in ``directory``: a
    read-only filesystem (``EROFS``) or missing permissions (``EACCES``)."""
    try:
        read_only = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        read_only = False
    if read_only:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(directory))
    if not os.access(directory, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(directory))


def staging_path(out: Path) -> Path:
    """The hidden sibling directory a run is written into before it is renamed onto ``out``."""
    resolved = Path(out).resolve()
    return resolved.parent / f".{resolved.name}.partial"


def replace_directory(stage: Path, out: Path) -> None:
    """Move the finished ``stage`` onto ``out``; an old ``out`` (checked by :func:`check_output_dir`) is moved
    aside first and removed only once the new one is in place."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if out.exists():
        if not written_by_learnscope(out) and any(out.iterdir()):
            raise StoreError(f"--out {shown(out)} changed during the run and is no longer a learnscope run; the "
                             f"new run is kept in {shown(stage)}")
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(out, old)
    os.replace(stage, out)
    _fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def environment_error(err: OSError) -> str:
    """One line describing an operating-system failure (full disk, permissions, read-only filesystem …)."""
    where = f" ({shown(err.filename)})" if getattr(err, "filename", None) else ""
    reason = err.strerror or str(err)
    hint = {
        errno.ENOSPC: "free some space and rerun the same command (finished work is kept)",
        errno.EDQUOT: "free some space and rerun the same command (finished work is kept)",
        errno.EACCES: "check the permissions, or choose another --out",
        errno.EPERM: "check the permissions, or choose another --out",
        errno.EROFS: "the filesystem is read-only; choose another --out",
    }.get(err.errno, "")
    return f"{reason}{where}" + (f"; {hint}" if hint else "")
