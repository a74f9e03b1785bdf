"""The learner protocol, input checks, per-seed random draws and the shared batched ridge solvers.

A *learner* maps a labelled training set to predictions on test inputs, differentiably in the labels:

.. math::

    \\hat y = \\mathrm{fit\\_predict}(X_{tr}, y_{tr}, X_{te}), \\qquad
    X_{tr} \\in \\mathbb R^{B\\times n\\times d},\\; y_{tr} \\in \\mathbb R^{B\\times n},\\;
    X_{te} \\in \\mathbb R^{B\\times m\\times d} \\;\\to\\; \\hat y \\in \\mathbb R^{B\\times m}.

Every one of the B batch elements is an independent learning problem (its own data and, for random
learners, its own random draws). The ridge penalty λ is **not** scaled by the number of training points n
(the authors' convention, bias-spec §1.2): the primal objective is ``‖F w − y‖² + λ‖w‖²``.

Library learners derive from :class:`LearnerBase`: their parameters are their constructor's arguments, so
``describe()`` and ``repr`` are read off ``__init__``'s signature (scikit-learn's ``get_params`` convention) and
never restated.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from learnscope.errors import ConfigError, ShapeError
from learnscope.validation import check_finite, check_ndim, check_scalar

GeneratorLike = torch.Generator | Sequence[torch.Generator] | None


@runtime_checkable
class Learner(Protocol):
    """Anything with ``fit_predict``; library learners also have ``describe`` (:class:`LearnerBase`, ``registry``)."""

    def fit_predict(
        self,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        x_test: torch.Tensor,
        *,
        generator: GeneratorLike = None,
    ) -> torch.Tensor:
        """Train on ``(x_train (B, n, d), y_train (B, n))``, predict at ``x_test (B, m, d)`` -> ``(B, m)``."""
        ...


def init_parameters(cls: type) -> tuple[list[str], str | None]:
    """The constructor's named parameters of ``cls`` (in signature order) and the name of its ``**kwargs``, if any.

    As scikit-learn's ``BaseEstimator._get_param_names``: ``self`` and ``*args`` are skipped.
    """
    names, var_kw = [], None
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind == p.VAR_POSITIONAL:
            continue
        if p.kind == p.VAR_KEYWORD:
            var_kw = p.name
        else:
            names.append(p.name)
    return names, var_kw


def described(value: Any) -> Any:
    """A constructor argument in plain, JSON- and TOML-able form.

    Tensors and arrays become (nested) lists, tuples become lists and mappings dicts (recursively), an object
    with a ``describe()`` method (a circuit, a :class:`~learnscope.plasticity.Rule`) becomes its description,
    any other callable (a user's kernel or init function) the string ``"custom"``; numbers, strings, booleans
    and None are returned unchanged.
    """
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: described(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [described(v) for v in value]
    describe = getattr(value, "describe", None)
    if callable(describe) and not isinstance(value, type):
        return describe()
    if callable(value):
        return "custom"
    return value


class Introspected:
    """Parameters read off ``__init__``'s signature, never restated (scikit-learn's ``get_params`` convention).

    The convention: ``__init__`` stores each argument, validated and normalised, under the argument's own name;
    a ``**name`` catch-all is stored as the dict attribute ``name`` and flattened into the parameters. State an
    object acquires while it is used is an attribute with a trailing underscore (e.g.
    ``RandomFeatureRidge.fixed_weights_``) and is not a parameter. On that basis :meth:`get_params` is
    ``{argument: stored value}`` in signature order and ``repr`` is ``ClassName(argument=value, …)``.
    """

    @classmethod
    def param_names(cls) -> list[str]:
        """The constructor's named parameters, in signature order (a ``**kwargs`` is not listed)."""
        return init_parameters(cls)[0]

    def get_params(self) -> dict[str, Any]:
        """``{parameter: value}`` of this learner: every constructor argument as stored, ``**kwargs`` flattened."""
        names, var_kw = init_parameters(type(self))
        params = {k: getattr(self, k) for k in names}
        if var_kw is not None:
            params.update(getattr(self, var_kw))
        return params

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class LearnerBase(Introspected):
    """What every library learner shares: :class:`Introspected` parameters and a description built from them.

    :meth:`describe` is ``{"name": self.name, **get_params()}`` in plain form (:func:`described`), so that
    ``make_learner(learner.describe())`` rebuilds the learner (unless an argument is a custom object, which is
    described by ``"custom"`` or its repr).
    """

    name: str = "learner"

    def _describe_param(self, key: str, value: Any) -> Any:
        """The plain form of parameter ``key`` in :meth:`describe` (a hook for arguments that need their own)."""
        return described(value)

    def describe(self) -> dict[str, Any]:
        """``{"name": …, **parameters}`` in plain form; ``make_learner(describe())`` rebuilds this learner."""
        return {"name": self.name, **{k: self._describe_param(k, v) for k, v in self.get_params().items()}}


def validate_fit_inputs(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor) -> None:
    """Check the ``fit_predict`` inputs; raise a :class:`~learnscope.errors.LearnscopeError` if unusable.

    x_train : shape (B, n, d); y_train : shape (B, n); x_test : shape (B, m, d); n, m, d ≥ 1; one floating
    dtype for all three; every entry finite.
    """
    for name, t in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test)):
        if not isinstance(t, torch.Tensor):
            raise ShapeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    check_ndim("x_train", x_train, 3, "(B, n, d)")
    check_ndim("y_train", y_train, 2, "(B, n)")
    check_ndim("x_test", x_test, 3, "(B, m, d)")
    B, n, d = x_train.shape
    if y_train.shape != (B, n):
        raise ShapeError(
            f"y_train must have shape (B, n) = {(B, n)} to match x_train {tuple(x_train.shape)}, "
            f"got {tuple(y_train.shape)}"
        )
    if x_test.shape[0] != B or x_test.shape[2] != d:
        raise ShapeError(
            f"x_test must have shape (B, m, d) with B={B}, d={d} as x_train, got {tuple(x_test.shape)}"
        )
    if B < 1 or n < 1 or d < 1 or x_test.shape[1] < 1:
        raise ShapeError(
            f"need B, n, m, d >= 1, got x_train {tuple(x_train.shape)} and x_test {tuple(x_test.shape)}"
        )
    dtypes = {x_train.dtype, y_train.dtype, x_test.dtype}
    if len(dtypes) != 1 or not x_train.dtype.is_floating_point:
        raise ConfigError(
            "x_train, y_train and x_test must share one floating dtype, got "
            f"{x_train.dtype}, {y_train.dtype}, {x_test.dtype}; convert with .to(dtype)"
        )
    check_finite("x_train", x_train)
    check_finite("y_train", y_train)
    check_finite("x_test", x_test)


def check_lam(lam: object) -> float:
    """Return the ridge penalty as a float; :class:`ConfigError` unless it is a finite number > 0."""
    return check_scalar("lam", lam, float, low=0.0, closed="neither", note="the ridge penalty")


def generator_blocks(generator: GeneratorLike, batch: int) -> list[tuple[torch.Generator, int]]:
    """Split ``batch`` into one block per generator: ``[(generator, block_size), ...]``."""
    if generator is None:
        raise ConfigError("this learner is random: pass generator=torch.Generator().manual_seed(seed)")
    if isinstance(generator, torch.Generator):
        return [(generator, batch)]
    gens = list(generator)
    if not gens or not all(isinstance(g, torch.Generator) for g in gens):
        raise ConfigError("generator must be a torch.Generator or a non-empty list of torch.Generators")
    if batch % len(gens):
        raise ShapeError(f"batch size B={batch} must be divisible by the number of generators ({len(gens)})")
    return [(g, batch // len(gens)) for g in gens]


def draw_normal(
    generator: GeneratorLike,
    batch: int,
    shape: Sequence[int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Standard normal draws of shape ``(batch, *shape)``, one block of the batch per generator.

    generator : one ``torch.Generator`` (draws the whole batch) or a list of G generators; then ``batch``
        must be divisible by G and generator g draws rows ``[g·batch/G, (g+1)·batch/G)``, so the draws of
        one seed do not depend on which other seeds share the batch.
    Returns a tensor on ``device`` (default: the generator's device).
    """
    return _draw_blocks(torch.randn, generator, batch, shape, dtype, device)


def draw_uniform(
    generator: GeneratorLike,
    batch: int,
    shape: Sequence[int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """U[0, 1) draws of shape ``(batch, *shape)``; generators split the batch as in :func:`draw_normal`."""
    return _draw_blocks(torch.rand, generator, batch, shape, dtype, device)


def _draw_blocks(sampler, generator: GeneratorLike, batch: int, shape: Sequence[int], dtype: torch.dtype,
                 device: torch.device | str | None) -> torch.Tensor:
    """``sampler`` (torch.randn / torch.rand) drawn per generator block and concatenated along the batch axis."""
    out = [sampler((size, *shape), generator=g, dtype=dtype, device=g.device)
           for g, size in generator_blocks(generator, batch)]
    res = out[0] if len(out) == 1 else torch.cat(out, dim=0)
    return res if device is None else res.to(device)


def spd_solve(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve ``A x = b`` for a batch of symmetric positive-definite ``A`` (B, p, p), ``b`` (B, p, k).

    Uses a Cholesky factorisation (``torch.linalg.cholesky_ex`` + ``torch.cholesky_solve``); if any matrix
    of the batch is not numerically positive definite, the whole batch falls back to ``torch.linalg.solve``
    (LU). Never forms an inverse. Differentiable in ``A`` and ``b``.
    """
    L, info = torch.linalg.cholesky_ex(A)
    if bool((info != 0).any()):
        return torch.linalg.solve(A, b)
    return torch.cholesky_solve(b, L)


def _add_ridge(A: torch.Tensor, lam: float) -> torch.Tensor:
    return A + lam * torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)


def ridge_predict(F_train: torch.Tensor, y: torch.Tensor, F_test: torch.Tensor, lam: float) -> torch.Tensor:
    """Batched ridge regression on features, returning test predictions.

    .. math::

        \\hat y = F_{te} (F^\\top F + \\lambda I_p)^{-1} F^\\top y
                = F_{te} F^\\top (F F^\\top + \\lambda I_n)^{-1} y

    The primal form (a p×p solve) is used when p ≤ n, the dual form (an n×n solve) otherwise; both are
    exact and agree (push-through identity). λ is **not** scaled by n.

    F_train : shape (B, n, p); y : shape (B, n); F_test : shape (B, m, p); lam : λ > 0.
    Returns shape (B, m), differentiable in all inputs.
    """
    n, p = F_train.shape[-2:]
    yc = y.unsqueeze(-1)
    Ft = F_train.transpose(-1, -2)
    if p <= n:
        w = spd_solve(_add_ridge(Ft @ F_train, lam), Ft @ yc)  # (B, p, 1)
        return (F_test @ w).squeeze(-1)
    alpha = spd_solve(_add_ridge(F_train @ Ft, lam), yc)  # (B, n, 1)
    return (F_test @ (Ft @ alpha)).squeeze(-1)


def kernel_ridge_predict(
    K_train: torch.Tensor, y: torch.Tensor, K_test_train: torch.Tensor, lam: float
) -> torch.Tensor:
    """Batched kernel ridge regression: :math:`\\hat y = K_{te,tr} (K_{tr} + \\lambda I_n)^{-1} y`.

    K_train : shape (B, n, n), symmetric PSD; y : shape (B, n); K_test_train : shape (B, m, n); lam : λ > 0
    (not scaled by n). Returns shape (B, m).
    """
    alpha = spd_solve(_add_ridge(K_train, lam), y.unsqueeze(-1))
    return (K_test_train @ alpha).squeeze(-1)
