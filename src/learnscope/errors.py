"""The exception family of learnscope.

Every error a user can cause (bad shapes, non-finite values, unknown names, bad config keys, non-positive
sizes, unusable stores) raises a subclass of :class:`LearnscopeError` whose message is one line saying what
to change. The CLI prints that line and exits with status 2, never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LearnscopeError(Exception):
    """Base class of every error caused by bad input to learnscope."""


class ShapeError(LearnscopeError, ValueError):
    """An array has the wrong number of dimensions or mismatched sizes."""


class NonFiniteError(LearnscopeError, ValueError):
    """An array contains NaN or infinite values."""


class ConfigError(LearnscopeError, ValueError):
    """A configuration value or key is invalid."""


class UnknownNameError(ConfigError, KeyError):
    """A name (learner, domain, rule, config key, …) is not one of the valid choices."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        valid = sorted(valid)
        self.kind, self.name, self.valid = kind, name, valid
        msg = f"unknown {kind} {name!r}"
        near = nearest_name(name, valid)
        if near is not None:
            msg += f"; did you mean {near!r}?"
        msg += f" (valid: {', '.join(valid)})"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class StoreError(LearnscopeError):
    """A results store or run directory cannot be used (missing, incompatible schema, corrupt)."""


class EnvironmentFailure(LearnscopeError):
    """The environment, not the input, stops the command: a location cannot be written (permissions, a
    read-only filesystem). The CLI exits with status 1 for it, as for any OSError, instead of 2."""

    exit_code = 1


def nearest_name(name: str, valid: Iterable[str]) -> str | None:
    """The valid name closest to ``name`` by edit similarity, or ``None`` if nothing is close."""
    matches = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.5)
    return matches[0] if matches else None


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` as an int, raising :class:`ConfigError` unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_positive(name: str, value: object) -> float:
    """Return ``value`` as a float, raising :class:`ConfigError` unless it is a finite positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < float("inf")):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return float(value)


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


def check_parameters(params: dict, valid: Iterable[str], what: str) -> None:
    """Raise :class:`UnknownNameError` for the first key of ``params`` that is not in ``valid``."""
    valid = list(valid)
    for key in params:
        if key not in valid:
            raise UnknownNameError(what, str(key), valid or ["(none)"])
