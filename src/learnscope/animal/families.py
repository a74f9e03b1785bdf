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


class KernelFamily:
    """A kernel ridge family: ``gram(theta, features)`` and ``ridge(theta)``; a session's prediction is
    :math:`\\hat y = K_{pt}(K_{tt} + \\delta I)^{-1} y` from its own training set."""

    def session_data(self, train_x: np.ndarray, probe_x: np.ndarray) -> tuple:
        """What ``predict`` needs of one session that does not depend on θ (precomputed once per fit)."""
        return self.features(train_x, train_x), self.features(probe_x, train_x)

    def predict(self, theta: torch.Tensor, data: tuple, train_y: torch.Tensor) -> torch.Tensor:
        """The family's prediction at the session's probes, (m,), differentiable in θ."""
        ftt, fpt = data
        K = self.gram(theta, ftt)
        eye = torch.eye(K.shape[0], dtype=K.dtype)
        return self.gram(theta, fpt) @ torch.linalg.solve(K + self.ridge(theta) * eye, train_y.to(K.dtype))

    def learner(self, theta: torch.Tensor):
        """The fitted member as a learnscope learner (kernel ridge with the fitted kernel and ridge)."""
        from learnscope.learners.kernels import KernelRidge

        return KernelRidge(self.kernel(theta), lam=float(self.ridge(theta)))


class SphereSpectrum(KernelFamily):
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


class InputGains(KernelFamily):
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


class TrainedMLP:
    """A ReLU network d → hidden → 1 trained by ``steps`` full-batch gradient-descent steps on the squared error,
    with a learnable initial scale s and learning rate η (θ = (softplus⁻¹ s, softplus⁻¹ η)): initial weights
    :math:`W_1 = s Z_1/\\sqrt d`, :math:`w_2 = s z_2/\\sqrt{H}`, biases 0. A session's prediction is the mean over
    ``draws`` fixed initial draws Z (common random numbers, so the likelihood is a smooth function of θ), trained by
    :func:`learnscope.learners.unroll.dense_mse_grads` and differentiated through the unroll by autograd."""

    name = "trained_mlp"

    def __init__(self, d: int, hidden: int = 50, steps: int = 100, draws: int = 4, seed: int = 0):
        from learnscope import rng as streams

        self.d, self.hidden, self.steps, self.draws = d, hidden, steps, draws
        g = streams.torch_generator(seed, "animal trained mlp family draws")
        self.z1 = torch.randn(draws, d, hidden, generator=g, dtype=torch.float64)
        self.z2 = torch.randn(draws, hidden, 1, generator=g, dtype=torch.float64)

    def initial(self, rng: np.random.Generator) -> torch.Tensor:
        scale, lr = np.exp(rng.normal(0, 0.3, 2)) * (1.0, 0.05)
        return torch.tensor([_inv_softplus(scale), _inv_softplus(lr)], dtype=torch.float64)

    def session_data(self, train_x: np.ndarray, probe_x: np.ndarray) -> tuple:
        return torch.tensor(train_x), torch.tensor(probe_x)

    def _train(self, theta: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor, x: torch.Tensor, y: torch.Tensor
               ) -> list[torch.Tensor]:
        from learnscope.circuits.mlp import ACTIVATIONS
        from learnscope.learners.unroll import dense_mse_grads

        f, df = ACTIVATIONS["relu"]
        s, lr = softplus(theta[0]), softplus(theta[1])
        E = z1.shape[0]
        params = [s * z1 / math.sqrt(self.d), torch.zeros(E, 1, self.hidden, dtype=z1.dtype),
                  s * z2 / math.sqrt(self.hidden), torch.zeros(E, 1, 1, dtype=z1.dtype)]
        for _ in range(self.steps):
            grads = dense_mse_grads(params, x, y, f, df, True)
            params = [p - lr * gp for p, gp in zip(params, grads, strict=True)]
        return params

    @staticmethod
    def _forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(torch.baddbmm(params[1], x, params[0]))
        return torch.baddbmm(params[3], h, params[2])[..., 0]

    def predict(self, theta: torch.Tensor, data: tuple, train_y: torch.Tensor) -> torch.Tensor:
        x, xp = data
        K = self.draws
        params = self._train(theta, self.z1, self.z2, x.expand(K, *x.shape), train_y.expand(K, -1))
        return self._forward(params, xp.expand(K, *xp.shape)).mean(0)

    def ridge(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), dtype=theta.dtype)

    def describe(self, theta: torch.Tensor) -> dict:
        return {"init_scale": float(softplus(theta[0])), "lr": float(softplus(theta[1]))}

    def learner(self, theta: torch.Tensor):
        return FittedMLPLearner(self, theta.detach().clone())


class FittedMLPLearner:
    """A :class:`TrainedMLP` member as a learner for Algorithm 1: every ``fit_predict`` draws fresh initial weights
    from ``generator`` (one network per batch element), trains them with the fitted scale and learning rate and
    predicts; differentiable in the training labels."""

    name = "fitted_mlp"
    stochastic = True

    def __init__(self, family: TrainedMLP, theta: torch.Tensor):
        self.family, self.theta = family, theta

    def fit_predict(self, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, *,
                    generator=None) -> torch.Tensor:
        from learnscope.learners.base import generator_blocks

        fam, B, dtype = self.family, x_train.shape[0], x_train.dtype
        z1s, z2s = [], []
        for g, size in generator_blocks(generator, B):
            z1s.append(torch.randn(size, fam.d, fam.hidden, generator=g, dtype=dtype))
            z2s.append(torch.randn(size, fam.hidden, 1, generator=g, dtype=dtype))
        theta = self.theta.to(dtype)
        params = fam._train(theta, torch.cat(z1s), torch.cat(z2s), x_train, y_train)
        return fam._forward(params, x_test)

    def describe(self) -> dict:
        return {"name": self.name, **self.family.describe(self.theta)}


FAMILIES = {"sphere_spectrum": SphereSpectrum, "input_gains": InputGains, "trained_mlp": TrainedMLP}
