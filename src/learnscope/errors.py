"""The exception family of learnscope.

Every error a user can cause (bad shapes, non-finite values, unknown names, bad config keys, non-positive
sizes, unusable stores) raises a subclass of :class:`LearnscopeError` whose message is one line saying what
to change. The CLI prints that line and exits with status 2, never a traceback. The checks that raise them
(scalars, tensors, specs, config keys) live in :mod:`learnscope.validation`.
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

