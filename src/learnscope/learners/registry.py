"""Learners by name: build one from a string, a ``describe()`` dict, or pass a user's object through."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from learnscope.errors import ConfigError
from learnscope.learners.base import init_parameters
from learnscope.learners.kernels import KernelRidge
from learnscope.learners.random_features import RandomFeatureRidge
from learnscope.learners.ridge import Ridge
from learnscope.learners.small_cnn import SmallCNNLearner
from learnscope.learners.trained import CircuitLearner, MushroomBodyLearner, SpikingLearner
from learnscope.validation import check_keys, split_spec

LEARNERS: dict[str, type] = {
    "ridge": Ridge,
    "kernel_ridge": KernelRidge,
    "random_features": RandomFeatureRidge,
    "trained": CircuitLearner,
    "mushroom_body": MushroomBodyLearner,
    "spiking": SpikingLearner,
    "small_cnn": SmallCNNLearner,
}


def make_learner(spec: str | Mapping[str, Any] | object) -> Any:
    """Build a learner.

    spec : a name in ``LEARNERS`` (default settings); a dict ``{"name": ..., **constructor kwargs}`` such as
        a learner's ``describe()``; or any object with a ``fit_predict`` method (returned unchanged).

    Raises :class:`UnknownNameError` for an unknown learner name or constructor argument (suggesting the
    nearest valid one) and :class:`ConfigError` for anything else that is not a learner.

    >>> make_learner({"name": "ridge", "lam": 0.01})
    Ridge(lam=0.01, bias=False)
    """
    if isinstance(spec, (str, Mapping)):
        name, kwargs = split_spec(dict(spec) if isinstance(spec, Mapping) else spec, "learner", LEARNERS)
        cls = LEARNERS[name]
        names, var_kw = init_parameters(cls)
        if var_kw is None:  # a learner with **kwargs (KernelRidge) checks them itself, against its kernel
            check_keys(kwargs, names, f"argument of learner {name!r}")
        return cls(**kwargs)
    if callable(getattr(spec, "fit_predict", None)):
        return spec
    raise ConfigError(
        f"cannot make a learner from {type(spec).__name__}; pass a name ({', '.join(sorted(LEARNERS))}), "
        "a dict with 'name', or an object with fit_predict"
    )
