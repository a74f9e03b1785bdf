"""Ridge regression on random ReLU features: the paper's "kernel" learner (bias-spec §1.2, §4 item 2)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from learnscope.errors import ConfigError
from learnscope.learners.base import (
    GeneratorLike,
    LearnerBase,
    check_lam,
    draw_normal,
    ridge_predict,
    validate_fit_inputs,
)
from learnscope.validation import check_positive, check_positive_int


def _check_variances(variances: Sequence[float] | None) -> tuple[float, ...] | None:
    if variances is None:
        return None
    try:
        vals = tuple(variances)
    except TypeError:
        raise ConfigError(
            f"variances must be a sequence of positive numbers or None, got {variances!r}"
        ) from None
    if not vals:
        raise ConfigError("variances must be a non-empty sequence of finite numbers > 0 or None, got an empty one")
    return tuple(check_positive(f"variances[{i}]", v) for i, v in enumerate(vals))


class RandomFeatureRidge(LearnerBase):
    """Ridge regression on K random ReLU features, one independent feature draw per batch element.

    .. math::

        F = \\mathrm{ReLU}(X J)\\;[/\\sqrt K], \\quad J \\in \\mathbb R^{d\\times K},\\;
        J_{ik} \\sim \\mathcal N(0, v_i), \\qquad
        \\hat y = F_{te}(F^\\top F + \\lambda I_K)^{-1}F^\\top y

    No bias in the features; λ not scaled by n. The primal K×K solve is used when K ≤ n, the dual n×n
    solve otherwise. With ``normalise=True`` and unit variances, F Fᵀ → the order-1 arc-cosine kernel
    (``kernels.arccos(order=1)``) as K → ∞, so predictions approach ``KernelRidge("arccos1", lam)``.

    Parameters
    ----------
    features : K, number of random features (paper: 20 in Fig 2, 100 in Fig 3).
    lam : ridge penalty λ > 0 (paper: 1e-3).
    variances : per-input-coordinate variances v_1..v_d of J's rows (None: all 1; Fig 4 uses (1, 1, c)).
    resample : True: a fresh J (shape (B, d, K)) for every batch element at every call.
        False: J is drawn at the first call (one per batch element) and reused by later calls, i.e. fixed
        for a run (paper Fig 2); call :meth:`reset` to draw a new one or to change B or d.
    normalise : divide F by √K.

    Attributes
    ----------
    fixed_weights_ : the J ``(B, d, K)`` drawn at the first call with ``resample=False`` (None before it, after
        :meth:`reset`, and always when resampling). State acquired by use, not a parameter: ``describe()`` and
        ``make_learner(describe())`` leave it out, so a rebuilt learner draws its own.

    The draws go through :func:`~learnscope.learners.base.draw_normal`: with a list of G generators,
    generator g draws the features of batch block g.
    """

    name = "random_features"
    stochastic = True

    def __init__(
        self,
        features: int = 20,
        lam: float = 1e-3,
        variances: Sequence[float] | None = None,
        resample: bool = True,
        normalise: bool = False,
    ):
        self.features = check_positive_int("features", features)
        self.lam = check_lam(lam)
        self.variances = _check_variances(variances)
        self.resample = bool(resample)
        self.normalise = bool(normalise)
        self.fixed_weights_: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the fixed feature weights ``fixed_weights_`` (``resample=False``); the next call draws new ones."""
        self.fixed_weights_ = None

    def draw_weights(
        self,
        generator: GeneratorLike,
        batch: int,
        d: int,
        dtype: torch.dtype,
        device: torch.device | None = None,
    ) -> torch.Tensor:
        """Draw J of shape (batch, d, K) with J[b, i, k] ~ N(0, variances[i])."""
        if self.variances is not None and len(self.variances) != d:
            raise ConfigError(f"variances has {len(self.variances)} entries but the inputs have d={d}")
        J = draw_normal(generator, batch, (d, self.features), dtype, device)
        if self.variances is not None:
            std = torch.tensor(self.variances, dtype=dtype, device=J.device).sqrt()
            J = J * std[:, None]
        return J

    def _weights(self, generator: GeneratorLike, x: torch.Tensor) -> torch.Tensor:
        B, _, d = x.shape
        if self.resample:
            return self.draw_weights(generator, B, d, x.dtype, x.device)
        if self.fixed_weights_ is None:
            self.fixed_weights_ = self.draw_weights(generator, B, d, x.dtype, x.device)
        elif self.fixed_weights_.shape[:2] != (B, d):
            raise ConfigError(
                f"fixed features were drawn for B={self.fixed_weights_.shape[0]}, d={self.fixed_weights_.shape[1]} "
                f"but this call has B={B}, d={d}; call reset() on the learner first"
            )
        return self.fixed_weights_.to(dtype=x.dtype, device=x.device)

    def features_of(self, x: torch.Tensor, J: torch.Tensor) -> torch.Tensor:
        """F = ReLU(x J) [/√K] for x (B, n, d) and J (B, d, K) -> (B, n, K)."""
        F = torch.relu(x @ J)
        return F / math.sqrt(self.features) if self.normalise else F

    def fit_predict(
        self,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        x_test: torch.Tensor,
        *,
        generator: GeneratorLike = None,
    ) -> torch.Tensor:
        """x_train (B, n, d), y_train (B, n), x_test (B, m, d) -> predictions (B, m).

        generator : a torch.Generator or a list of G generators (B divisible by G); may be None only in
        fixed mode once the features exist.
        """
        validate_fit_inputs(x_train, y_train, x_test)
        J = self._weights(generator, x_train)
        return ridge_predict(self.features_of(x_train, J), y_train, self.features_of(x_test, J), self.lam)
