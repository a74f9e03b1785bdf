"""Exact kernels (RBF, arc-cosine, ReLU NNGP / NTK), the arc-cosine Funk–Hecke spectra, and kernel ridge regression.

Every kernel is ``k(x1 (B, n, d), x2 (B, m, d)) -> (B, n, m)``, batched over B and differentiable in both
inputs (also where two inputs coincide: the angle is computed as ``atan2(sin θ, cos θ)`` with a floored
``sin² θ``, so no NaN gradients at θ = 0 or π). Called as ``k(x, x)`` with the *same* tensor, the angle
kernels set the Gram diagonal's cos θ to exactly 1 (rounding would otherwise leave θ ≈ √ε there).

References: Cho & Saul (2009), "Kernel methods for deep learning" (arc-cosine kernels); Lee et al. (2018)
(NNGP); Jacot et al. (2018), Arora et al. (2019) (NTK recursion). The spherical machinery (N(d, l), Legendre
polynomials of dimension d, the Funk–Hecke quadrature) is :mod:`learnscope.spherical`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.learners.base import GeneratorLike, LearnerBase, check_lam, kernel_ridge_predict, validate_fit_inputs
from learnscope.spherical import funk_hecke_eigenvalues
from learnscope.validation import check_positive, check_positive_int, check_scalar

Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_TINY = 1e-30  # floor for squared norms and sin²θ, keeps sqrt differentiable


def _safe_sqrt(t: torch.Tensor) -> torch.Tensor:
    """sqrt(max(t, tiny)) with a finite gradient everywhere (zero gradient below the floor)."""
    return torch.sqrt(torch.where(t > _TINY, t, torch.full_like(t, _TINY)))


def _angle(cos: torch.Tensor, self_gram: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(θ, sin θ, cos θ) from cosines (B, n, m), clamped into [−1, 1]; finite gradients at θ = 0 and π.

    ``self_gram``: the cosines are those of a set with itself, so the diagonal is set to exactly 1
    (otherwise rounding leaves θ ≈ √ε there, a visible error for the order-0 factor (π − θ)/2π).
    """
    c = cos.clamp(-1.0, 1.0)
    if self_gram:
        eye = torch.eye(c.shape[-1], dtype=torch.bool, device=c.device)
        c = torch.where(eye, torch.ones_like(c), c)
    s = _safe_sqrt(1.0 - c * c)
    return torch.atan2(s, c), s, c


def _check_pair(x1: torch.Tensor, x2: torch.Tensor) -> None:
    if x1.ndim != 3 or x2.ndim != 3 or x1.shape[0] != x2.shape[0] or x1.shape[2] != x2.shape[2]:
        raise ShapeError(
            "kernel inputs must have shapes (B, n, d) and (B, m, d), "
            f"got {tuple(x1.shape)} and {tuple(x2.shape)}"
        )


def rbf(x1: torch.Tensor, x2: torch.Tensor, lengthscale: float = 1.0) -> torch.Tensor:
    """Gaussian (RBF) kernel.

    .. math:: k(x, x') = \\exp\\big(-\\|x - x'\\|^2 / (2\\ell^2)\\big)

    x1 : shape (B, n, d); x2 : shape (B, m, d); lengthscale : ℓ > 0. Returns shape (B, n, m).
    """
    _check_pair(x1, x2)
    ell = check_positive("lengthscale", lengthscale)
    sq = (x1 * x1).sum(-1)[:, :, None] + (x2 * x2).sum(-1)[:, None, :] - 2.0 * x1 @ x2.transpose(-1, -2)
    return torch.exp(-sq.clamp_min(0.0) / (2.0 * ell * ell))


def _check_order(order: object) -> int:
    if isinstance(order, bool) or order not in (0, 1):
        raise ConfigError(f"arc-cosine kernel order must be 0 or 1, got {order!r}")
    return int(order)  # type: ignore[call-overload]


def _j(order: int, theta: torch.Tensor, s: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Cho & Saul's angular factor J(θ)/π: (π − θ)/π (order 0), (sin θ + (π − θ) cos θ)/π (order 1)."""
    if order == 0:
        return (math.pi - theta) / math.pi
    return (s + (math.pi - theta) * c) / math.pi


def arccos(x1: torch.Tensor, x2: torch.Tensor, order: int = 1) -> torch.Tensor:
    """Arc-cosine kernel of order 0 or 1, normalised as an expectation over w ~ N(0, I_d).

    .. math::

        k_1(x, x') = \\mathbb E_w[\\mathrm{ReLU}(w\\cdot x)\\,\\mathrm{ReLU}(w\\cdot x')]
                   = \\frac{\\|x\\|\\|x'\\|}{2\\pi}\\big(\\sin\\theta + (\\pi - \\theta)\\cos\\theta\\big),
        \\qquad
        k_0(x, x') = \\mathbb E_w[\\Theta(w\\cdot x)\\,\\Theta(w\\cdot x')] = \\frac{\\pi - \\theta}{2\\pi}

    with θ the angle between x and x'. (Cho & Saul's k_n is 2× these.) A zero input is treated as
    orthogonal to everything (θ = π/2), which gives k_1 = 0 and k_0 = 1/4.

    x1 : shape (B, n, d); x2 : shape (B, m, d); order : 0 or 1. Returns shape (B, n, m).
    """
    _check_pair(x1, x2)
    order = _check_order(order)
    n1 = _safe_sqrt((x1 * x1).sum(-1))[:, :, None]
    n2 = _safe_sqrt((x2 * x2).sum(-1))[:, None, :]
    theta, s, c = _angle((x1 @ x2.transpose(-1, -2)) / (n1 * n2), self_gram=x1 is x2)
    k = _j(order, theta, s, c) / 2.0
    return k * (n1 * n2) if order == 1 else k


def _relu_recursion(
    x1: torch.Tensor, x2: torch.Tensor, depth: int, sigma_w2: float, sigma_b2: float, ntk: bool
) -> torch.Tensor:
    _check_pair(x1, x2)
    depth = check_positive_int("depth", depth)
    sw = check_positive("sigma_w2", sigma_w2)
    sb = check_scalar("sigma_b2", sigma_b2, float, low=0.0)
    d = x1.shape[-1]
    q1 = sw * (x1 * x1).sum(-1) / d + sb  # Σ^{l}(x, x), shape (B, n)
    q2 = sw * (x2 * x2).sum(-1) / d + sb
    sigma = sw * (x1 @ x2.transpose(-1, -2)) / d + sb  # Σ^0, shape (B, n, m)
    theta_ntk = sigma
    for _ in range(depth):
        root = _safe_sqrt(q1[:, :, None] * q2[:, None, :])
        theta, s, c = _angle(sigma / root, self_gram=x1 is x2)
        sigma = sw * root * _j(1, theta, s, c) / 2.0 + sb
        if ntk:
            theta_ntk = sigma + theta_ntk * (sw * _j(0, theta, s, c) / 2.0)
        q1 = sw * q1 / 2.0 + sb
        q2 = sw * q2 / 2.0 + sb
    return theta_ntk if ntk else sigma


_NET_DOC = """
    Network (NTK parameterisation, ``depth`` = L ≥ 1 hidden ReLU layers of width N → ∞, all weights and
    biases N(0, 1), scalar output):

    .. math::

        z^1 = \\frac{\\sigma_w}{\\sqrt d} W^1 x + \\sigma_b b^1, \\qquad
        z^{l+1} = \\frac{\\sigma_w}{\\sqrt N} W^{l+1}\\,\\mathrm{ReLU}(z^l) + \\sigma_b b^{l+1},
        \\qquad f(x) = z^{L+1}(x) \\in \\mathbb R.

    The readout z^{L+1} has the same σ_w, σ_b as the hidden layers. Recursion
    (Σ^0 = σ_w² x·x'/d + σ_b², Θ^0 = Σ^0; θ_l the angle of the 2×2 covariance of layer l − 1):

    .. math::

        \\Sigma^l = \\sigma_w^2\\,\\mathbb E[\\mathrm{ReLU}(u)\\mathrm{ReLU}(v)] + \\sigma_b^2
                  = \\frac{\\sigma_w^2}{2\\pi}\\sqrt{\\Sigma^{l-1}(x,x)\\Sigma^{l-1}(x',x')}
                    \\big(\\sin\\theta_l + (\\pi-\\theta_l)\\cos\\theta_l\\big) + \\sigma_b^2,
        \\quad \\dot\\Sigma^l = \\sigma_w^2\\frac{\\pi - \\theta_l}{2\\pi},
        \\quad \\Theta^l = \\Sigma^l + \\Theta^{l-1}\\dot\\Sigma^l.

    NNGP = Cov(f(x), f(x')) = Σ^L; NTK = ⟨∂f(x)/∂params, ∂f(x')/∂params⟩ = Θ^L (both at N → ∞).
    x1 : shape (B, n, d); x2 : shape (B, m, d). Returns shape (B, n, m).
"""


def relu_nngp(
    x1: torch.Tensor, x2: torch.Tensor, depth: int = 1, sigma_w2: float = 2.0, sigma_b2: float = 0.0
) -> torch.Tensor:
    return _relu_recursion(x1, x2, depth, sigma_w2, sigma_b2, ntk=False)


def relu_ntk(
    x1: torch.Tensor, x2: torch.Tensor, depth: int = 1, sigma_w2: float = 2.0, sigma_b2: float = 0.0
) -> torch.Tensor:
    return _relu_recursion(x1, x2, depth, sigma_w2, sigma_b2, ntk=True)


relu_nngp.__doc__ = "Infinite-width NNGP kernel Σ^L of a fully connected ReLU network.\n" + _NET_DOC
relu_ntk.__doc__ = "Infinite-width neural tangent kernel Θ^L of a fully connected ReLU network.\n" + _NET_DOC


def _arccos0(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    return arccos(x1, x2, order=0)


def _arccos1(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    return arccos(x1, x2, order=1)


# name -> (function, {parameter: default})
KERNELS: dict[str, tuple[Callable[..., torch.Tensor], dict[str, Any]]] = {
    "rbf": (rbf, {"lengthscale": 1.0}),
    "arccos0": (_arccos0, {}),
    "arccos1": (_arccos1, {}),
    "nngp": (relu_nngp, {"depth": 1, "sigma_w2": 2.0, "sigma_b2": 0.0}),
    "ntk": (relu_ntk, {"depth": 1, "sigma_w2": 2.0, "sigma_b2": 0.0}),
}


class KernelRidge(LearnerBase):
    """Exact kernel ridge regression, batched over B problems; deterministic.

    .. math:: \\hat y(x) = k(x, X)\\,(K + \\lambda I_n)^{-1} y, \\qquad K = k(X, X)

    λ is not scaled by n. ``KernelRidge("arccos1")`` is the K → ∞ limit of
    ``RandomFeatureRidge(normalise=True)``.

    Parameters
    ----------
    kernel : a name in ``KERNELS`` ("rbf", "arccos0", "arccos1", "nngp", "ntk") or a callable
        ``k(x1 (B, n, d), x2 (B, m, d)) -> (B, n, m)`` returning a symmetric PSD Gram matrix.
    lam : ridge penalty λ > 0.
    **kernel_params : parameters of a named kernel ("rbf": lengthscale; "nngp"/"ntk": depth, sigma_w2,
        sigma_b2); not allowed with a callable kernel. Stored with the kernel's defaults filled in, and listed
        flat in ``describe()`` (a callable kernel is described as ``"custom"``).
    """

    name = "kernel_ridge"
    stochastic = False

    def __init__(self, kernel: str | Kernel = "arccos1", lam: float = 1e-3, **kernel_params: Any):
        self.lam = check_lam(lam)
        if callable(kernel):
            if kernel_params:
                raise ConfigError(
                    "kernel parameters are only accepted with a named kernel; bind them in your callable"
                )
            self.kernel = kernel
            self.kernel_params: dict[str, Any] = {}
            self._fn: Kernel = kernel
            return
        if not isinstance(kernel, str) or kernel not in KERNELS:
            raise UnknownNameError("kernel", str(kernel), KERNELS)
        fn, defaults = KERNELS[kernel]
        for key in kernel_params:
            if key not in defaults:
                valid = ["kernel", "lam", *defaults]
                raise UnknownNameError(f"argument of KernelRidge({kernel!r})", key, valid)
        params = {**defaults, **kernel_params}
        # validate now (one-line ConfigErrors) rather than at the first call
        probe = torch.zeros(1, 1, 1, dtype=torch.float64)
        fn(probe, probe, **params)
        self.kernel = kernel
        self.kernel_params = params
        self._fn = lambda a, b: fn(a, b, **params)

    def gram(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """The kernel matrix k(x1, x2), shape (B, n, m)."""
        return self._fn(x1, x2)

    def profile(self, d: int) -> Callable[[np.ndarray], np.ndarray]:
        """The named kernel's angular profile t ↦ k(t), t = x·x′, at unit inputs in R^d (numpy, vectorised).

        Equal to :meth:`gram` on unit vectors (:mod:`learnscope.theory.profiles`); the nngp/ntk profiles depend
        on d. A callable kernel has no known profile: ConfigError.
        """
        if callable(self.kernel):
            raise ConfigError("a custom kernel callable has no known angular profile; use a named kernel")
        from learnscope.theory.profiles import profile_of  # theory sits above learners: import on use

        return profile_of(self.kernel, d, **self.kernel_params)

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
        return kernel_ridge_predict(self._fn(x_train, x_train), y_train, self._fn(x_test, x_train), self.lam)


def arccos_eigenvalues(order: int, d: int, max_degree: int, nodes: int = 400) -> np.ndarray:
    """Funk–Hecke eigenvalues λ_0..λ_L of the arc-cosine kernel on the unit sphere S^{d−1}.

    :func:`learnscope.spherical.funk_hecke_eigenvalues` of the angular profiles of :func:`arccos` at unit inputs,

    .. math:: k_0(\\theta) = \\frac{\\pi - \\theta}{2\\pi}, \\qquad
              k_1(\\theta) = \\frac{\\sin\\theta + (\\pi - \\theta)\\cos\\theta}{2\\pi},

    so ∫ k(x·x') Y_l(x') dσ(x') = λ_l Y_l(x) for degree-l harmonics Y_l (σ the uniform probability measure) and
    k(t) = Σ_l N(d, l) λ_l P_l(t). Both profiles are analytic in θ, so the Gauss–Legendre quadrature over θ
    converges exponentially.

    order : 0 or 1; d : input dimension ≥ 2; max_degree : L ≥ 0. Returns a float64 array of shape (L + 1,).

    Example: order 1 on S² (d = 3): λ ≈ 0.1875, 0.0833, 0.0117, 0, 3.3e-4, 0, 4.6e-5 (bias-spec §1.6).
    """
    order = _check_order(order)

    def profile(theta: np.ndarray) -> np.ndarray:
        if order == 0:
            return (math.pi - theta) / (2 * math.pi)
        return (np.sin(theta) + (math.pi - theta) * np.cos(theta)) / (2 * math.pi)

    return funk_hecke_eigenvalues(profile, d, max_degree, nodes)
