"""Linear ridge regression on the raw inputs (the paper's "ridge" learner, bias-spec §1.2)."""

from __future__ import annotations

import torch

from learnscope.learners.base import GeneratorLike, LearnerBase, check_lam, ridge_predict, validate_fit_inputs


class Ridge(LearnerBase):
    """Linear ridge regression, batched over B independent problems; deterministic.

    .. math::

        w = \\arg\\min_w \\|X w - y\\|^2 + \\lambda \\|w\\|^2 = (X^\\top X + \\lambda I)^{-1} X^\\top y,
        \\qquad \\hat y = X_{te} w

    λ is not scaled by n. With ``bias=True`` an unpenalised intercept is added: x and y are centred on the
    training set, the ridge problem is solved on the centred data and the means are added back, which is
    exactly scikit-learn's ``Ridge(alpha=lam, fit_intercept=True)``.

    Parameters
    ----------
    lam : ridge penalty λ > 0 (paper: 1e-3).
    bias : fit an unpenalised intercept (paper: no bias).

    Example
    -------
    >>> x = torch.randn(4, 6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> Ridge(lam=1e-3).fit_predict(x, x[..., 0], x).shape
    torch.Size([4, 6])
    """

    name = "ridge"
    stochastic = False

    def __init__(self, lam: float = 1e-3, bias: bool = False):
        self.lam = check_lam(lam)
        self.bias = bool(bias)

    def fit_predict(
        self,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        x_test: torch.Tensor,
        *,
        generator: GeneratorLike = None,
    ) -> torch.Tensor:
        """x_train (B, n, d), y_train (B, n), x_test (B, m, d) -> predictions (B, m); ``generator`` unused."""
        validate_fit_inputs(x_train, y_train, x_test)
        if not self.bias:
            return ridge_predict(x_train, y_train, x_test, self.lam)
        x_mean = x_train.mean(dim=1, keepdim=True)
        y_mean = y_train.mean(dim=1, keepdim=True)
        pred = ridge_predict(x_train - x_mean, y_train - y_mean, x_test - x_mean, self.lam)
        return pred + y_mean
