"""Differentiable learner families a behavioural surrogate is fitted from: each is a kernel ridge learner whose
kernel has a few learnable parameters, so the fitted surrogate is an ordinary learnscope learner
(:class:`~learnscope.learners.kernels.KernelRidge` with a callable kernel) that Algorithm 1 can search.

- :class:`SphereSpectrum` — a dot-product kernel on S^{d−1} with a learnable spectrum,
  :math:`k(x, x') = \\sum_{l=0}^{L} c_l\\, N(d, l)\\, P_l(x \\cdot x')`, :math:`c_l = \\mathrm{softplus}(\\theta_l)
  \\ge 0` (positive definite for any c ≥ 0 by Schoenberg's theorem; c_l is the eigenvalue of degree l).
- :class:`InputGains` — the ReLU random-feature (arc-cosine, order 1) kernel of inputs rescaled by learnable
  per-input gains, :math:`k(x, x') = a\\,k_1(Gx, Gx')`, G = diag(softplus(γ)): the infinite-width limit of a random
  expansion (a mushroom body) whose wiring over-represents some inputs.

Both have a learnable ridge δ = softplus(ρ). Parameters are one flat float64 tensor ``theta``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn.functional import softplus

from learnscope.learners.kernels import arccos
from learnscope.spherical import harmonic_dimension, legendre


def _inv_softplus(v: float) -> float:
    return math.log(math.expm1(v))


class SphereSpectrum:
    """Dot-product kernel with learnable per-degree eigenvalues c_0 … c_L on S^{d−1} (d ≥ 2)."""

    name = "sphere_spectrum"

    def __init__(self, d: int, max_degree: int = 6):
        self.d, self.L = d, max_degree
        self.mult = torch.tensor([harmonic_dimension(d, l) for l in range(max_degree + 1)], dtype=torch.float64)

    def initial(self, rng: np.random.Generator) -> torch.Tensor:
        c = np.exp(rng.normal(np.log(0.1) - np.arange(self.L + 1), 0.5))
        return torch.tensor([*map(_inv_softplus, c), _inv_softplus(0.1)], dtype=torch.float64)

    def features(self, x1: np.ndarray, x2: np.ndarray) -> torch.Tensor:
        """The per-degree zonal matrices N(d, l) P_l(x1·x2ᵀ): (L + 1, n, m) — fixed, precomputed per session."""
        t = np.clip(x1 @ x2.T, -1, 1)
        return torch.tensor(np.stack([harmonic_dimension(self.d, l) * legendre(self.d, l, t)
                                      for l in range(self.L + 1)]))

    def gram(self, theta: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        return torch.einsum("l,lnm->nm", softplus(theta[: self.L + 1]), feats)

    def ridge(self, theta: torch.Tensor) -> torch.Tensor:
        return softplus(theta[self.L + 1])

    def spectrum(self, theta: torch.Tensor) -> np.ndarray:
        """The fitted eigenvalue of each degree, c_l (L + 1,)."""
        return softplus(theta[: self.L + 1]).detach().numpy()

    def kernel(self, theta: torch.Tensor):
        """The fitted kernel as a batched callable ``(B, n, d), (B, m, d) -> (B, n, m)`` for KernelRidge."""
        c = softplus(theta[: self.L + 1]).detach()
        d, L = self.d, self.L

        def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            t = (a @ b.transpose(-1, -2)).clamp(-1, 1)
            cc = c.to(t.dtype)
            # Gegenbauer/Chebyshev three-term recurrence for P_l(t) = Z_l(t)/Z_l(1), differentiable and batched
            out = cc[0] * torch.ones_like(t)
            p_prev, p = torch.ones_like(t), t
            for l in range(1, L + 1):
                if l > 1:
                    p_prev, p = p, ((2 * l + d - 4) * t * p - (l - 1) * p_prev) / (l + d - 3)
                out = out + cc[l] * harmonic_dimension(d, l) * p
            return out

        return k


class InputGains:
    """Arc-cosine (order 1) kernel of per-input rescaled stimuli, ``a · k₁(Gx, Gx')``, with a ridge."""

    name = "input_gains"

    def __init__(self, d: int):
        self.d = d

    def initial(self, rng: np.random.Generator) -> torch.Tensor:
        g = np.exp(rng.normal(0, 0.3, self.d))
        return torch.tensor([*map(_inv_softplus, g), _inv_softplus(1.0), _inv_softplus(0.1)], dtype=torch.float64)

    def features(self, x1: np.ndarray, x2: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(x1), torch.tensor(x2)

    def _k(self, theta: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        theta = theta.to(a.dtype)
        g = softplus(theta[: self.d])
        return softplus(theta[self.d]) * arccos(a * g, b * g, order=1)

    def gram(self, theta: torch.Tensor, feats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        a, b = feats
        return self._k(theta, a[None], b[None])[0]

    def ridge(self, theta: torch.Tensor) -> torch.Tensor:
        return softplus(theta[self.d + 1])

    def gains(self, theta: torch.Tensor) -> np.ndarray:
        return softplus(theta[: self.d]).detach().numpy()

    def kernel(self, theta: torch.Tensor):
        theta = theta.detach().clone()
        return lambda a, b: self._k(theta, a, b)


FAMILIES = {"sphere_spectrum": SphereSpectrum, "input_gains": InputGains}
