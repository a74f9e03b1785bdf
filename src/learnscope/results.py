"""The one writer of run directories: ``config.toml``, ``metrics.json``, ``arrays.npz`` and the marker.

Both CLI halves call :func:`write_run_dir` with the numbers their application returned, then write the report.
The numerical layers (``bias``, ``identify``) never write files themselves.

``metrics.json`` is strict JSON (``allow_nan=False``): a missing or undefined number (NaN, ±inf — e.g. the
s.e.m. of a single split, or a fit that does not apply to a domain) is written as ``null``; numpy scalars and
arrays become numbers and lists, tuples become lists and dict keys become strings. The encoding is stated in
the file itself under ``"_encoding"``.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

from learnscope.fileio import atomic_write, write_marker

MISSING_VALUE_NOTE = "null stands for a missing or undefined number (NaN or infinite)"


def to_jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays turned into Python numbers/lists, tuples into lists, dict keys into
    strings, dataclasses into dicts and NaN/inf into ``None`` (so ``json.dumps(..., allow_nan=False)`` accepts
    it)."""
    import dataclasses

    import numpy as np

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps_metrics(metrics: dict) -> str:
    """``metrics`` as strict JSON text with the missing-value note under ``"_encoding"``."""
    body = {"_encoding": {"missing": MISSING_VALUE_NOTE}, **to_jsonable(metrics)}
    return json.dumps(body, indent=2, allow_nan=False) + "\n"


def write_run_dir(
    out: Path,
    *,
    kind: str,
    metrics: dict,
    config: dict | None = None,
    arrays: dict | None = None,
) -> None:
    """Write a run directory's data files into ``out`` (created if needed), each atomically.

    Parameters
    ----------
    out : the run directory (usually the staging directory of :func:`learnscope.cli._common.staged_output`).
    kind : what wrote it (``bias-run``, ``identify-classify``, ``demo``); stored in the marker.
    metrics : JSON-like numbers; written strictly (see the module docstring).
    config : the fully resolved config, written as ``config.toml``.
    arrays : name → array, written as ``arrays.npz``.
    """
    import numpy as np

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, kind)
    if config is not None:
        import tomli_w

        atomic_write(out / "config.toml", tomli_w.dumps(config))
    atomic_write(out / "metrics.json", dumps_metrics(metrics))
    if arrays:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write(out / "arrays.npz", buffer.getvalue())
