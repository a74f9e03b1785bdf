"""Input validation shared by every public function: scalars, tensors, component specs and config keys.

Every check raises a :class:`~learnscope.errors.LearnscopeError` subclass whose message is one line naming the
parameter, what it must be and what was given (the CLI prints it as one ``error:`` line). As scikit-learn's
``utils/validation.py``, one scalar check does the type and range work for every call site:

* :func:`check_scalar` — an int or a finite float, optionally in an interval with open or closed ends; bools are
  never numbers. :func:`check_positive_int` and :func:`check_positive` are its two common specialisations.
* :class:`Interval` and :func:`check_constraints` — a declarative table ``{key: Interval(kind, low, high, closed)}``
  checked by one loop, as sklearn's ``_parameter_constraints``.
* :func:`check_finite`, :func:`check_ndim` — tensor boundary checks.
* :func:`split_spec` — a component spec (a name or a table with a ``name`` key).
* :func:`check_keys` — the keys of a table against the valid ones (nearest-name suggestion).

``errors.py`` holds the exception family only; this module holds the checks.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal, NamedTuple

from learnscope.errors import ConfigError, NonFiniteError, ShapeError, UnknownNameError

if TYPE_CHECKING:  # numpy and torch are imported when an array is checked: importing this module stays light
    import numpy as np
    import torch

Closed = Literal["both", "left", "right", "neither"]
_CLOSED = ("both", "left", "right", "neither")

__all__ = [
    "Closed",
    "Interval",
    "check_constraints",
    "check_finite",
    "check_keys",
    "check_ndim",
    "check_positive",
    "check_positive_int",
    "check_scalar",
    "split_spec",
]


# ------------------------------------------------------------------------------------------------ scalars


def _fmt(bound: float) -> str:
    """A bound as written in a message: ``1`` for 1 or 1.0, ``0.5``, ``1e-08``."""
    if isinstance(bound, numbers.Integral):
        return str(int(bound))
    b = float(bound)
    return str(int(b)) if b.is_integer() and abs(b) < 1e16 else repr(b)


def _requirement(kind: type, low: float | None, high: float | None, closed: Closed) -> str:
    """What a value must be, in words: ``a positive integer``, ``a positive number`` (> 0), ``a number in (0, 1]``,
    ``a finite number >= 0``."""
    low_in, high_in = closed in ("both", "left"), closed in ("both", "right")
    if low is not None and high is not None:
        noun = "an integer" if kind is int else "a number"
        return f"{noun} in {'[' if low_in else '('}{_fmt(low)}, {_fmt(high)}{']' if high_in else ')'}"
    if kind is int and low is not None and high is None and ((low_in and low == 1) or (not low_in and low == 0)):
        return "a positive integer"
    if kind is float and low == 0 and not low_in and high is None:
        return "a positive number"  # finite too: NaN and inf are never accepted
    noun = "an integer" if kind is int else "a finite number"
    if low is not None:
        return f"{noun} {'>=' if low_in else '>'} {_fmt(low)}"
    if high is not None:
        return f"{noun} {'<=' if high_in else '<'} {_fmt(high)}"
    return noun


def _given(value: object, kind: type) -> str:
    """The offending value as shown in a message; its type too when that is the problem (``'3' (str)``)."""
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if kind is int else numbers.Real):
        return f"{shown} ({type(value).__name__})"
    return shown


def check_scalar(
    name: str,
    value: object,
    kind: type = float,
    low: float | None = None,
    high: float | None = None,
    closed: Closed = "both",
    *,
    note: str | None = None,
) -> int | float:
    """Return ``value`` as an ``int`` or a finite ``float``, raising :class:`ConfigError` unless it is one in range.

    Parameters
    ----------
    name : the parameter as the user wrote it (``"lr"``, ``"training.epochs"``, ``"grid.seeds[2]"``).
    value : the value to check.
    kind : ``int`` (any integral number: ``int``, ``numpy.int64``; never a float such as ``3.0``) or ``float``
        (any real number, ints included; NaN and ±inf are always rejected). Bools are never numbers.
    low, high : the bounds of the allowed interval; ``None`` for an unbounded end.
    closed : which ends are included: ``"both"`` ([low, high]), ``"left"`` ([low, high)), ``"right"``
        ((low, high]) or ``"neither"`` ((low, high)). An end without a bound is never included.
    note : a short hint appended in parentheses, e.g. ``"1 = no spread"``.

    Returns
    -------
    ``int(value)`` for ``kind=int``, ``float(value)`` for ``kind=float``.

    Raises
    ------
    ConfigError : one line, ``"{name} must be {what}[ ({note})], got {value}"``, e.g.
        ``lr must be a positive number, got -0.1`` or ``frac must be a number in (0, 1], got 1.5``.

    Examples
    --------
    >>> check_scalar("momentum", 0.9, float, 0, 1, closed="left")
    0.9
    >>> check_scalar("epochs", 3, int, low=1)
    3
    """
    if kind not in (int, float):
        raise TypeError(f"check_scalar kind must be int or float, got {kind!r}")
    if closed not in _CLOSED:
        raise ValueError(f"check_scalar closed must be one of {_CLOSED}, got {closed!r}")

    def fail() -> ConfigError:
        hint = f" ({note})" if note else ""
        return ConfigError(f"{name} must be {_requirement(kind, low, high, closed)}{hint}, got {_given(value, kind)}")

    if isinstance(value, bool) or not isinstance(value, numbers.Integral if kind is int else numbers.Real):
        raise fail()
    if kind is int:
        v: int | float = int(value)  # type: ignore[call-overload]
    else:
        try:
            v = float(value)  # type: ignore[arg-type]
        except OverflowError:  # an int too large for a float
            raise fail() from None
        if not math.isfinite(v):
            raise fail()
    if low is not None and not (v >= low if closed in ("both", "left") else v > low):
        raise fail()
    if high is not None and not (v <= high if closed in ("both", "right") else v < high):
        raise fail()
    return v


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` as an int, raising :class:`ConfigError` unless it is an integer ≥ 1."""
    return check_scalar(name, value, int, low=1)  # type: ignore[return-value]


def check_positive(name: str, value: object) -> float:
    """Return ``value`` as a float, raising :class:`ConfigError` unless it is a finite number > 0."""
    return check_scalar(name, value, float, low=0, closed="neither")


class Interval(NamedTuple):
    """One row of a declarative parameter table: the arguments of :func:`check_scalar` after the value.

    >>> Interval(float, 0, 1, "left")  # a number in [0, 1)
    Interval(kind=<class 'float'>, low=0, high=1, closed='left', note=None)
    """

    kind: type = float
    low: float | None = None
    high: float | None = None
    closed: Closed = "both"
    note: str | None = None

    def check(self, name: str, value: object) -> int | float:
        """:func:`check_scalar` of ``value`` against this interval."""
        return check_scalar(name, value, self.kind, self.low, self.high, self.closed, note=self.note)


def check_constraints(values: Mapping[str, object], constraints: Mapping[str, Interval], prefix: str = "") -> dict:
    """Check every key of ``constraints`` that ``values`` holds; return the checked values (ints and floats).

    The declarative form of :func:`check_scalar`, as scikit-learn's ``_parameter_constraints``: a settings class
    states ``{key: Interval(kind, low, high, closed)}`` once and calls this one loop. Keys absent from ``values``
    are skipped (optional settings); a message names the parameter as ``prefix + key`` (``"search.lr"``).
    """
    return {key: rule.check(prefix + key, values[key]) for key, rule in constraints.items() if key in values}


# ------------------------------------------------------------------------------------------------ tensors


def as_finite_array(name: str, a: object) -> np.ndarray:
    """``a`` (numpy array, torch tensor — detached, moved to the CPU — or nested lists) as a float64 numpy array;
    :class:`ShapeError` for a non-numeric input, :class:`NonFiniteError` for NaN/inf entries."""
    import numpy as np
    import torch

    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().to(torch.float64).numpy()
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"{name} must be a numeric array, got {type(a).__name__}") from exc
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise NonFiniteError(f"{name} contains {bad} NaN/inf value(s); clean the input before calling")
    return arr


def check_finite(name: str, t: torch.Tensor) -> torch.Tensor:
    """Raise :class:`NonFiniteError` if ``t`` has a NaN or inf entry; return ``t`` unchanged."""
    import torch

    finite = torch.isfinite(t)
    if not finite.all():
        bad = int((~finite).sum())
        raise NonFiniteError(f"{name} contains {bad} NaN/inf value(s); clean the input before calling")
    return t


def check_ndim(name: str, t: torch.Tensor, ndim: int, layout: str) -> torch.Tensor:
    """Raise :class:`ShapeError` unless ``t.ndim == ndim``; ``layout`` names the axes, e.g. ``"(B, n, d)"``."""
    if t.ndim != ndim:
        raise ShapeError(f"{name} must have shape {layout}, got {tuple(t.shape)}")
    return t


# ------------------------------------------------------------------------------------------------ specs and keys


def split_spec(spec: object, kind: str, registry: Iterable[str]) -> tuple[str, dict]:
    """Read a component spec: a name (``"disc"``) or a table with a ``name`` key plus parameters.

    Returns (name, parameters); raises :class:`UnknownNameError` for a name not in ``registry`` and
    :class:`ConfigError` for anything that is neither a name nor such a table.
    """
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise ConfigError(f"a {kind} is a name or a table with a 'name' key, got {spec!r}")
    params = dict(spec)
    name = params.pop("name")
    if not isinstance(name, str) or name not in registry:
        raise UnknownNameError(kind, str(name), registry)
    return name, params


def check_keys(table: Iterable[object], valid: Iterable[str], what: str) -> None:
    """Raise :class:`UnknownNameError` for the first key of ``table`` that is not in ``valid``.

    ``what`` names a key in the message: ``"key in [grid]"`` or ``"parameter of target 'uniform'"`` gives
    ``unknown key in [grid] 'task'; did you mean 'tasks'? (valid: …)``. A table that takes no keys lists
    ``(none)`` as its valid keys.
    """
    valid = list(valid)
    for key in table:
        if key not in valid:
            raise UnknownNameError(what, str(key), valid or ["(none)"])
