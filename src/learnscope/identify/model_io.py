"""Model files of ``identify fit`` / ``predict``: the ``--out`` checks made before any work, atomic writes, loading
with one-line errors, and the per-class support a model was trained on."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from learnscope.errors import StoreError
from learnscope.fileio import atomic_save, check_output_file, check_writable, existing_ancestor, shown

MODEL_FORMAT = 1
UNBALANCED_RATIO = 3.0
"""``predict`` and ``fit`` warn when the largest class of a model has this many times the layers of the smallest."""
_MODEL_KEYS = ("format", "classifier", "seed", "obs_names", "n_checkpoints", "classes", "pipeline", "train")
_RECORDING_SUFFIXES = (".csv", ".parquet", ".tsv", ".txt")

# ----------------------------------------------------------------------------------------------------------------
# output files: checked before any work, written atomically


_JOBLIB_MAGIC = (b"\x80", b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda",
                 b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"]\x00\x00", b"\x04\x22\x4d\x18")
"""How a joblib file begins: a pickle (protocol ≥ 2), or zlib, gzip, bz2, xz, lzma or lz4 compressed."""


def _looks_like_joblib(path: Path) -> bool:
    """True for an empty file or one that begins like a joblib file (a truncated model still does)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    return not head or head.startswith(_JOBLIB_MAGIC)


def _replaceable_model(path: Path) -> bool:
    """May ``--force`` replace the file ``path``? Yes for a learnscope model, and for a ``.joblib`` file that
    begins like one but does not load (a truncated model) or is empty; no for anything else (recordings, notes,
    configs, another joblib object)."""
    if not path.is_file():
        return False
    try:
        load_model(path)
        return True
    except StoreError:
        pass
    if path.suffix != ".joblib" or not _looks_like_joblib(path):
        return False
    try:
        joblib.load(path)
    except OSError as err:
        if err.errno is not None:
            raise
        return True
    except Exception:  # noqa: BLE001 - unreadable: nothing usable is lost
        return True
    return False


def check_model_out(out: str | Path, force: bool = False) -> None:
    """Refuse, before any work, an ``--out`` model path that ``fit`` may not write.

    Raises :class:`StoreError` (exit 2) for a directory, a path below a file, an existing file without ``force``
    and, with ``force``, a file that is not a learnscope model; ``OSError`` (exit 1) for an unwritable location.
    A missing parent directory is created when the model is saved.
    """
    out = Path(out)
    if out.is_dir():
        raise StoreError(f"--out {shown(out)} is a directory; name the model file to write, e.g. "
                         f"{shown(out / 'model.joblib')}")
    parent = existing_ancestor(out)
    if not parent.is_dir():
        raise StoreError(f"--out {shown(out)}: {shown(parent)} is a file, not a directory")
    if out.exists() or out.is_symlink():
        if not force:
            raise StoreError(f"--out {shown(out)} already exists; pass --force to replace it, or choose another "
                             "--out")
        if not _replaceable_model(out):
            raise StoreError(f"--out {shown(out)} exists and is not a learnscope model; --force replaces only a "
                             "model file — choose another --out, or remove it yourself")
    check_writable(parent)


def check_table_out(out: str | Path, protect: dict[str, str | Path] | None = None) -> None:
    """Refuse, before any work, an ``--out`` CSV path that ``predict`` may not write
    (:func:`learnscope.fileio.check_output_file`); an existing output file is replaced (atomically)."""
    check_output_file(out, "probabilities.csv", protect)


def _save_atomically(path: Path, save: Callable[[Path], object]) -> None:
    """``atomic_save`` whose failures name ``path`` (as the user typed it), not the temporary file."""
    try:
        atomic_save(path, save)
    except OSError as err:
        if err.errno is None:
            raise
        raise OSError(err.errno, err.strerror or os.strerror(err.errno), str(path)) from None


def save_model(model: dict, path: str | Path) -> None:
    """Write ``model`` to ``path`` atomically (temporary file beside it, fsync, rename); a missing parent directory
    is created. A failure (full disk, read-only filesystem) leaves the old file, or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_atomically(path, lambda tmp: joblib.dump(model, tmp))


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write ``table`` as CSV to ``path`` atomically (the old file, if any, stays whole on failure)."""
    path = Path(path)
    data = table.to_csv(index=False).encode("utf-8")
    _save_atomically(path, lambda tmp: tmp.write_bytes(data))


# ----------------------------------------------------------------------------------------------------------------
# class support


def class_support(meta: pd.DataFrame) -> dict[str, dict[str, int]]:
    """``{rule: {"networks": n, "layers": m}}`` of a dataset's ``meta`` table (one row per (network, layer))."""
    return {str(rule): {"networks": int(frame["network_id"].nunique()), "layers": int(len(frame))}
            for rule, frame in meta.groupby("rule", sort=True)}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def support_text(support: dict[str, dict]) -> str:
    """``"adam 6 networks / 18 layers, sgdm 6 networks / 18 layers"`` (networks omitted when unknown)."""
    parts = []
    for rule, s in support.items():
        nets = f"{_count(s['networks'], 'network')} / " if s.get("networks") is not None else ""
        parts.append(f"{rule} {nets}{_count(s['layers'], 'layer')}")
    return ", ".join(parts)


def unbalanced_warning(support: dict[str, dict]) -> str | None:
    """A one-line warning when the largest class has :data:`UNBALANCED_RATIO` times the layers of the smallest."""
    layers = {rule: s["layers"] for rule, s in support.items()}
    big, small = max(layers, key=layers.get), min(layers, key=layers.get)
    if layers[big] < UNBALANCED_RATIO * max(layers[small], 1):
        return None
    return (f"the model's classes are unbalanced ({big} {layers[big]} layers, {small} {layers[small]}): its "
            f"probabilities lean towards {big}; fit on a store with as many networks of each rule")


def _model_support(model: dict) -> dict[str, dict]:
    if isinstance(model.get("support"), dict):
        return model["support"]
    rules, counts = np.unique(np.asarray(model["train"]["y"]).astype(str), return_counts=True)
    return {str(r): {"networks": None, "layers": int(c)} for r, c in zip(rules, counts, strict=True)}




def load_model(path: str | Path) -> dict:
    """Load a model written by :func:`fit_model`; a one-line :class:`StoreError` for anything else."""
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"model {shown(path)} is a directory; give the model file written by "
                         "`learnscope identify fit STORE --out FILE`")
    if not path.exists():
        raise StoreError(f"model file {shown(path)} does not exist (make one with `learnscope identify fit`)")
    looks_like_recordings = path.suffix.lower() in _RECORDING_SUFFIXES
    hint = (" — it looks like recordings: the model comes first, `learnscope identify predict MODEL RECORDINGS`"
            if looks_like_recordings else "; make a new one with `learnscope identify fit`")
    if path.stat().st_size == 0:
        raise StoreError(f"model file {shown(path)} is empty (0 bytes){hint}")
    try:
        model = joblib.load(path)
    except OSError as err:
        if err.errno is not None:  # a real environment failure (permissions, I/O), not a corrupt gzip stream
            raise
        raise StoreError(f"{shown(path)} is not a readable learnscope model (truncated, or not written by "
                         f"`learnscope identify fit`){hint}") from None
    except Exception:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise StoreError(f"{shown(path)} is not a readable learnscope model (truncated, or not written by "
                         f"`learnscope identify fit`){hint}") from None
    if not isinstance(model, dict) or model.get("format") != MODEL_FORMAT or any(k not in model for k in _MODEL_KEYS):
        raise StoreError(f"{shown(path)} is not a learnscope model file of format {MODEL_FORMAT}{hint}")
    return model

