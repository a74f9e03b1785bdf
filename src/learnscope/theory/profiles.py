"""Angular profiles k(t) of rotation-invariant kernels on the unit sphere, t = ⟨x, x′⟩ ∈ [−1, 1].

A kernel that depends on its unit inputs only through t = x·x′ is a *zonal* (dot-product) kernel on S^{d−1}; its
profile ``k(t)`` is all that the Funk–Hecke formula (:func:`learnscope.theory.spectra.funk_hecke_spectrum`) needs.
Every profile here is a vectorised numpy function ``t (…) -> k(t) (…)`` (float64), equal to the corresponding torch
kernel of :mod:`learnscope.learners.kernels` evaluated at unit-norm inputs:

* :func:`arccos_profile` — ``arccos(order=0|1)``: k₀(t) = (π − θ)/(2π), k₁(t) = (sin θ + (π − θ) t)/(2π), θ = arccos t.
* :func:`relu_nngp_profile` / :func:`relu_ntk_profile` — ``relu_nngp`` / ``relu_ntk`` of a given depth, σ_w², σ_b²
  (the recursion depends on d through Σ⁰ = σ_w² t/d + σ_b²).
* :func:`rbf_profile` — ``rbf``: exp(−‖x − x′‖²/(2ℓ²)) = exp(−(1 − t)/ℓ²) on the sphere.
* :func:`linear_profile` — the linear kernel x·x′ (ridge regression on raw inputs): k(t) = t.
* :func:`profile_of` — the profile of a named kernel of ``learners.kernels.KERNELS`` with its parameters.

A user's profile is any callable of t with the same contract.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from learnscope.errors import ConfigError, UnknownNameError
from learnscope.validation import check_positive, check_positive_int, check_scalar

Profile = Callable[[np.ndarray], np.ndarray]

__all__ = [
    "PROFILES",
    "Profile",
    "arccos_profile",
    "linear_profile",
    "profile_of",
    "rbf_profile",
    "relu_nngp_profile",
    "relu_ntk_profile",
]


def _theta(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(θ, sin θ, cos θ) of cosines ``t`` clipped into [−1, 1]."""
    c = np.clip(np.asarray(t, dtype=np.float64), -1.0, 1.0)
    return np.arccos(c), np.sqrt(np.clip(1.0 - c * c, 0.0, None)), c


def _j0(theta: np.ndarray) -> np.ndarray:
    """(π − θ)/π."""
    return (math.pi - theta) / math.pi


def _j1(theta: np.ndarray, s: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(sin θ + (π − θ) cos θ)/π."""
    return (s + (math.pi - theta) * c) / math.pi


def arccos_profile(order: int = 1) -> Profile:
    """Profile of the arc-cosine kernel of ``order`` 0 or 1 at unit inputs (``learners.kernels.arccos``).

    .. math:: k_0(t) = \\frac{\\pi - \\theta}{2\\pi}, \\qquad
              k_1(t) = \\frac{\\sin\\theta + (\\pi - \\theta)\\cos\\theta}{2\\pi}, \\qquad \\theta = \\arccos t,

    i.e. E_w[Θ(w·x)Θ(w·x′)] and E_w[ReLU(w·x)ReLU(w·x′)] for w ~ N(0, I_d); k₀(1) = ½, k₁(1) = ½.
    """
    if isinstance(order, bool) or order not in (0, 1):
        raise ConfigError(f"arc-cosine kernel order must be 0 or 1, got {order!r}")

    def profile(t: np.ndarray) -> np.ndarray:
        theta, s, c = _theta(t)
        return (_j0(theta) if order == 0 else _j1(theta, s, c)) / 2.0

    return profile


def _relu_recursion(d: int, depth: int, sigma_w2: float, sigma_b2: float, ntk: bool) -> Profile:
    d = check_scalar("d", d, int, low=1)
    depth = check_positive_int("depth", depth)
    sw = check_positive("sigma_w2", sigma_w2)
    sb = check_scalar("sigma_b2", sigma_b2, float, low=0.0)

    def profile(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        q = sw / d + sb  # Σ^0(x, x) at a unit input: the same for x and x′
        sigma = sw * t / d + sb  # Σ^0(x, x′)
        theta_ntk = sigma
        for _ in range(depth):
            theta, s, c = _theta(sigma / q)
            sigma = sw * q * _j1(theta, s, c) / 2.0 + sb
            if ntk:
                theta_ntk = sigma + theta_ntk * (sw * _j0(theta) / 2.0)
            q = sw * q / 2.0 + sb
        return theta_ntk if ntk else sigma

    return profile


def relu_nngp_profile(d: int, depth: int = 1, sigma_w2: float = 2.0, sigma_b2: float = 0.0) -> Profile:
    """Profile of ``learners.kernels.relu_nngp`` at unit inputs in R^d (the NNGP Σ^L of a depth-L ReLU net).

    With q₀ = σ_w²/d + σ_b², Σ⁰(t) = σ_w² t/d + σ_b² and, for l = 1..L, cos θ_l = Σ^{l−1}/q_{l−1},

    .. math:: \\Sigma^l = \\frac{\\sigma_w^2 q_{l-1}}{2\\pi}\\big(\\sin\\theta_l + (\\pi-\\theta_l)\\cos\\theta_l\\big)
              + \\sigma_b^2, \\qquad q_l = \\sigma_w^2 q_{l-1}/2 + \\sigma_b^2 .
    """
    return _relu_recursion(d, depth, sigma_w2, sigma_b2, ntk=False)


def relu_ntk_profile(d: int, depth: int = 1, sigma_w2: float = 2.0, sigma_b2: float = 0.0) -> Profile:
    """Profile of ``learners.kernels.relu_ntk`` at unit inputs in R^d (the NTK Θ^L of a depth-L ReLU net).

    The NNGP recursion of :func:`relu_nngp_profile` plus Θ⁰ = Σ⁰ and

    .. math:: \\Theta^l = \\Sigma^l + \\Theta^{l-1}\\,\\sigma_w^2\\frac{\\pi - \\theta_l}{2\\pi}.
    """
    return _relu_recursion(d, depth, sigma_w2, sigma_b2, ntk=True)


def rbf_profile(lengthscale: float = 1.0) -> Profile:
    """Profile of ``learners.kernels.rbf`` on the unit sphere: ‖x − x′‖² = 2 − 2t, so

    .. math:: k(t) = \\exp\\big(-(1 - t)/\\ell^2\\big).
    """
    ell = check_positive("lengthscale", lengthscale)

    def profile(t: np.ndarray) -> np.ndarray:
        return np.exp(-(1.0 - np.asarray(t, dtype=np.float64)) / (ell * ell))

    return profile


def linear_profile() -> Profile:
    """Profile of the linear kernel k(x, x′) = x·x′ (ridge regression on the raw inputs): k(t) = t."""

    def profile(t: np.ndarray) -> np.ndarray:
        return np.asarray(t, dtype=np.float64).copy()

    return profile


# name of learners.kernels.KERNELS -> builder(d, **params)
PROFILES: dict[str, Callable[..., Profile]] = {
    "rbf": lambda d, lengthscale=1.0: rbf_profile(lengthscale),
    "arccos0": lambda d: arccos_profile(0),
    "arccos1": lambda d: arccos_profile(1),
    "nngp": lambda d, **p: relu_nngp_profile(d, **p),
    "ntk": lambda d, **p: relu_ntk_profile(d, **p),
    "linear": lambda d: linear_profile(),
}


def profile_of(name: str, d: int, **params: Any) -> Profile:
    """The profile k(t) of the named kernel (a key of ``PROFILES``: the names of ``learners.kernels.KERNELS`` and
    ``"linear"``) with its parameters, on S^{d−1} ⊂ R^d. Unknown names raise :class:`UnknownNameError`."""
    if name not in PROFILES:
        raise UnknownNameError("kernel profile", str(name), PROFILES)
    try:
        return PROFILES[name](d, **params)
    except TypeError:
        raise ConfigError(f"kernel {name!r} got unexpected parameters {sorted(params)}") from None
