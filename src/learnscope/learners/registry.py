"""Learners by name: build one from a string, a ``describe()`` dict, or pass a user's object through."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from learnscope.errors import ConfigError, UnknownNameError
from learnscope.learners.kernels import KernelRidge
from learnscope.learners.random_features import RandomFeatureRidge
from learnscope.learners.ridge import Ridge

LEARNERS: dict[str, type] = {
    "ridge": Ridge,
    "kernel_ridge": KernelRidge,
    "random_features": RandomFeatureRidge,
}


def _named_params(cls: type) -> list[str]:
    sig = inspect.signature(cls.__init__)
    return [
        p.name
        for p in sig.parameters.values()
        if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def make_learner(spec: str | Mapping[str, Any] | object) -> Any:
    """Build a learner.

    spec : a name in ``LEARNERS`` (default settings); a dict ``{"name": ..., **constructor kwargs}`` such as
        a learner's ``describe()``; or any object with a ``fit_predict`` method (returned unchanged).

    Raises :class:`UnknownNameError` for an unknown learner name or constructor argument (suggesting the
    nearest valid one) and :class:`ConfigError` for anything else that is not a learner.

    >>> make_learner({"name": "ridge", "lam": 0.01})
    Ridge(lam=0.01, bias=False)
    """
    if isinstance(spec, str):
        if spec not in LEARNERS:
            raise UnknownNameError("learner", spec, LEARNERS)
        return LEARNERS[spec]()
    if isinstance(spec, Mapping):
        kwargs = dict(spec)
        if "name" not in kwargs:
            raise ConfigError(f"a learner dict needs a 'name' key (one of {', '.join(sorted(LEARNERS))})")
        name = kwargs.pop("name")
        if not isinstance(name, str) or name not in LEARNERS:
            raise UnknownNameError("learner", str(name), LEARNERS)
        cls = LEARNERS[name]
        if cls is not KernelRidge:  # KernelRidge checks its own **kernel_params against the kernel
            valid = _named_params(cls)
            for key in kwargs:
                if key not in valid:
                    raise UnknownNameError(f"argument of learner {name!r}", str(key), valid)
        return cls(**kwargs)
    if callable(getattr(spec, "fit_predict", None)):
        return spec
    raise ConfigError(
        f"cannot make a learner from {type(spec).__name__}; pass a name ({', '.join(sorted(LEARNERS))}), "
        "a dict with 'name', or an object with fit_predict"
    )
