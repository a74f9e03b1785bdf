"""Input distributions p(x) that the meta-learner labels and the learner is trained on.

Every domain draws points with an explicit ``torch.Generator``; ``sample(n, generator)`` returns ``(n, d)``
and ``sample_batch(B, n, generator)`` returns ``(B, n, d)`` in one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from learnscope.errors import ConfigError, ShapeError, check_parameters, check_positive_int, split_spec

GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))


def fibonacci_sphere(n: int) -> np.ndarray:
    """Fibonacci lattice of ``n`` near-equal-area points on S² ⊂ R³: shape ``(n, 3)``.

    .. math:: z_i = 1 - \\frac{2i + 1}{n},\\quad \\phi_i = i\\,\\pi(3 - \\sqrt5),\\quad
              x_i = (\\sqrt{1 - z_i^2}\\cos\\phi_i, \\sqrt{1 - z_i^2}\\sin\\phi_i, z_i)

    Every point owns (almost exactly) the same area, so the plain mean over the points is an equal-weight
    quadrature of the uniform measure; smooth functions are integrated with error far below Monte Carlo.
    """
    check_positive_int("n", n)
    i = np.arange(n, dtype=np.float64)
    z = 1.0 - (2.0 * i + 1.0) / n
    r = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    phi = np.mod(i * GOLDEN_ANGLE, 2.0 * math.pi)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def random_rotation(d: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """A Haar-random rotation of R^d (QR of a Gaussian matrix with the sign fix): shape ``(d, d)``."""
    q, r = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:  # a reflection: flip one axis to land in SO(d)
        q[:, 0] = -q[:, 0]
    return q.to(dtype)


class Domain:
    """Base class: a distribution over points in R^d."""

    name: str = "domain"
    dim: int

    def sample_batch(
        self, batch: int, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """Draw ``batch`` independent sets of ``n`` points: shape ``(batch, n, d)``."""
        check_positive_int("batch", batch)
        check_positive_int("n", n)
        return self._draw(batch * n, generator, dtype).reshape(batch, n, self.dim)

    def sample(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Draw ``n`` points: shape ``(n, d)``."""
        check_positive_int("n", n)
        return self._draw(n, generator, dtype)

    def _draw(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
        raise NotImplementedError

    def spread_sample(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """``n`` points that cover the domain more evenly than independent draws (a randomly placed
        low-discrepancy set where the domain has one), so means over them are better quadratures: ``(n, d)``.
        """
        return self.sample(n, generator, dtype)

    def describe(self) -> dict:
        """Parameters that reconstruct this domain with :func:`make_domain`."""
        return {"name": self.name}


@dataclass
class Sphere(Domain):
    """Uniform distribution on the unit sphere S^{d-1} ⊂ R^d: x = g/‖g‖ with g ~ N(0, I_d)."""

    dim: int = 3
    name: str = field(default="sphere", init=False)

    def __post_init__(self) -> None:
        check_positive_int("dim", self.dim)
        if self.dim < 2:
            raise ConfigError(f"sphere dim must be >= 2 (S^{{d-1}} in R^d), got {self.dim}")

    def _draw(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
        g = torch.randn(n, self.dim, generator=generator, dtype=dtype)
        return g / g.norm(dim=-1, keepdim=True)

    def spread_sample(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """On S² a randomly rotated Fibonacci lattice; independent draws in other dimensions."""
        if self.dim != 3:
            return self.sample(n, generator, dtype)
        return torch.from_numpy(fibonacci_sphere(n)).to(dtype) @ random_rotation(3, generator, dtype)

    def describe(self) -> dict:
        return {"name": "sphere", "dim": self.dim}


@dataclass
class Circle(Domain):
    """Uniform distribution on the unit circle in R^2: θ ~ U(0, 2π), x = (cos θ, sin θ)."""

    dim: int = field(default=2, init=False)
    name: str = field(default="circle", init=False)

    def _draw(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
        theta = 2 * math.pi * torch.rand(n, generator=generator, dtype=dtype)
        return torch.stack([theta.cos(), theta.sin()], dim=-1)

    def spread_sample(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """``n`` equally spaced angles with a random offset."""
        check_positive_int("n", n)
        theta = (
            2
            * math.pi
            * (
                torch.arange(n, dtype=torch.float64)
                + torch.rand((), generator=generator, dtype=torch.float64)
            )
            / n
        )
        return torch.stack([theta.cos(), theta.sin()], dim=-1).to(dtype)


@dataclass
class Disc(Domain):
    """Uniform distribution on the unit disc: θ ~ U(0, 2π), r = √U(0, 1) (the paper's "circle" data)."""

    dim: int = field(default=2, init=False)
    name: str = field(default="disc", init=False)

    def _draw(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
        u = torch.rand(n, 2, generator=generator, dtype=dtype)
        theta, r = 2 * math.pi * u[:, 0], u[:, 1].sqrt()
        return torch.stack([r * theta.cos(), r * theta.sin()], dim=-1)

    def spread_sample(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """A randomly rotated sunflower (Vogel) spiral: r_i = √((i + ½)/n), θ_i = i·golden angle + θ₀."""
        check_positive_int("n", n)
        i = torch.arange(n, dtype=torch.float64)
        theta = i * GOLDEN_ANGLE + 2 * math.pi * torch.rand((), generator=generator, dtype=torch.float64)
        r = ((i + 0.5) / n).sqrt()
        return torch.stack([r * theta.cos(), r * theta.sin()], dim=-1).to(dtype)


@dataclass
class Hypercube(Domain):
    """Uniform distribution on the cube [low, high]^d."""

    dim: int = 2
    low: float = -1.0
    high: float = 1.0
    name: str = field(default="hypercube", init=False)

    def __post_init__(self) -> None:
        check_positive_int("dim", self.dim)
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ConfigError(f"hypercube bounds must be finite, got low={self.low}, high={self.high}")
        if not self.low < self.high:
            raise ConfigError(f"hypercube needs low < high, got low={self.low}, high={self.high}")

    def _draw(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
        u = torch.rand(n, self.dim, generator=generator, dtype=dtype)
        return self.low + (self.high - self.low) * u

    def describe(self) -> dict:
        return {"name": "hypercube", "dim": self.dim, "low": self.low, "high": self.high}


class FiniteDataset(Domain):
    """Uniform distribution over the rows of a fixed array (e.g. MNIST images), sampled with replacement.

    ``points`` has shape ``(N, ...)``; samples have shape ``(n, *points.shape[1:])``. ``dim`` is the
    flattened feature count.
    """

    name = "dataset"

    def __init__(self, points: torch.Tensor | np.ndarray, replace: bool = True):
        pts = torch.as_tensor(points)
        if pts.ndim < 2 or pts.shape[0] == 0:
            raise ShapeError(
                f"dataset domain needs an array of shape (N, ...) with N > 0, got {tuple(pts.shape)}"
            )
        if not torch.isfinite(pts).all():
            raise ConfigError("dataset domain points contain NaN/inf")
        self.points = pts
        self.replace = replace
        self.dim = int(np.prod(pts.shape[1:]))

    def _indices(self, n: int, generator: torch.Generator) -> torch.Tensor:
        N = self.points.shape[0]
        if self.replace:
            return torch.randint(N, (n,), generator=generator)
        if n > N:
            raise ConfigError(f"cannot draw {n} distinct rows from a dataset of {N} without replacement")
        return torch.randperm(N, generator=generator)[:n]

    def sample(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        check_positive_int("n", n)
        return self.points[self._indices(n, generator)].to(dtype)

    def sample_batch(
        self, batch: int, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        check_positive_int("batch", batch)
        check_positive_int("n", n)
        idx = torch.stack([self._indices(n, generator) for _ in range(batch)])
        return self.points[idx].to(dtype)

    def describe(self) -> dict:
        return {
            "name": "dataset",
            "n_points": int(self.points.shape[0]),
            "shape": list(self.points.shape[1:]),
        }


DOMAINS = {"sphere": Sphere, "circle": Circle, "disc": Disc, "hypercube": Hypercube}


def make_domain(spec: str | dict | Domain) -> Domain:
    """Build a domain from a name (``"disc"``), a dict (``{"name": "sphere", "dim": 5}``) or pass one through."""
    if isinstance(spec, Domain):
        return spec
    name, params = split_spec(spec, "domain", DOMAINS)
    cls = DOMAINS[name]
    check_parameters(params, [f for f in cls.__dataclass_fields__ if cls.__dataclass_fields__[f].init],
                     f"parameter of domain {name!r}")
    return cls(**params)
