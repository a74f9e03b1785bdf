r"""Target label distributions q(y) on the real line.

The meta-learner's labels are pinned to a target distribution (Uniform[-1, 1] by default). Every target
is described by its quantile function :math:`Q(u) = F^{-1}(u)`, which is all an exact 1-D Wasserstein
distance needs. The quantities the distances use are

.. math::

    m_i = n \int_{i/n}^{(i+1)/n} Q(u)\,du \quad (i = 0, \dots, n-1), \qquad
    \mathbb{E}[Y^2] = \int_0^1 Q(u)^2\,du,

the mean of the target inside its i-th equal-probability bin and its second moment. They are exact (closed
form) for :class:`Uniform`, :class:`Gaussian` and :class:`Empirical`, and by Gauss–Legendre quadrature for
a user :class:`QuantileFunction`.

Targets are immutable value objects; :func:`make_target` builds one from a name or a ``{"name": ...}``
table and ``make_target(t.describe())`` rebuilds ``t`` (except a :class:`QuantileFunction`, whose callable
cannot be written in a table).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from scipy import special

from learnscope.errors import ConfigError, ShapeError
from learnscope.validation import check_keys, check_positive_int, check_scalar, split_spec

_SQRT_2PI = math.sqrt(2.0 * math.pi)
_GL_ORDER = 16
# Geometric refinement toward u = 0 / u = 1, as fractions of the panel that touches the end point. Quantile
# functions with unbounded support (Gaussian, heavy tails) have integrable log-type singularities there.
_GRADED = np.array([0.0] + [10.0**-k for k in range(15, 0, -1)] + [1.0])


def _as_u(u: torch.Tensor | np.ndarray | float) -> torch.Tensor:
    """Probability levels as a floating tensor in [0, 1]."""
    t = torch.as_tensor(u)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if torch.isnan(t).any() or (t < 0).any() or (t > 1).any():
        raise ConfigError("quantile levels u must lie in [0, 1] (open interval (0, 1) for unbounded targets)")
    return t


@lru_cache(maxsize=8)
def _gauss_legendre01(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(order)
    return (x + 1.0) / 2.0, w / 2.0


def _composite_rule(edges: np.ndarray, order: int = _GL_ORDER) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre rule over panels ``[edges[k], edges[k+1]]``: nodes and weights, flat."""
    t, w = _gauss_legendre01(order)
    lo, width = edges[:-1, None], np.diff(edges)[:, None]
    # Nodes within 1e-16 of u = 1 round to 1.0 (Q(1) may be +inf); keep them at the last float below 1.
    nodes = np.minimum((lo + width * t).ravel(), np.nextafter(1.0, 0.0))
    return nodes, (width * w).ravel()


def _graded_edges(lo: float, hi: float, left: bool, right: bool) -> np.ndarray:
    """Panel edges of [lo, hi], refined geometrically toward ``lo`` (``left``) and/or ``hi`` (``right``)."""
    if left and right:
        mid = 0.5 * (lo + hi)
        return np.concatenate([_graded_edges(lo, mid, True, False), _graded_edges(mid, hi, False, True)[1:]])
    if left:
        return lo + (hi - lo) * _GRADED
    if right:
        return hi - (hi - lo) * _GRADED[::-1]
    return np.array([lo, hi])


def unit_interval_rule(panels: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature on u ∈ [0, 1]: ``panels`` equal panels of 16-point Gauss–Legendre, the two end panels
    refined geometrically (down to 1e-15 of their width) toward u = 0 and u = 1.

    Returns float64 nodes and weights of length ``16 * (panels + 30)`` (``16 * 32`` when ``panels == 1``).
    """
    panels = check_positive_int("panels", panels)
    edges = np.linspace(0.0, 1.0, panels + 1)
    if panels == 1:
        return _composite_rule(_graded_edges(0.0, 1.0, True, True))
    full = np.concatenate(
        [
            _graded_edges(edges[0], edges[1], True, False),
            edges[2:-1],
            _graded_edges(edges[-2], 1.0, False, True),
        ]
    )
    return _composite_rule(full)


class Target:
    """Base class: a probability distribution on the real line, given by its quantile function Q.

    Subclasses implement ``_quantile64`` (float64 in, float64 out), ``_bin_means64`` (numpy float64 of
    shape ``(n,)``), ``second_moment``, ``mean``, ``std`` and ``describe``; ``_sample`` defaults to
    inverse-CDF sampling.
    """

    name: str = "target"

    def sample(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Draw ``n`` independent values with ``generator``: shape ``(n,)``."""
        n = check_positive_int("n", n)
        return self._sample(n, generator, dtype)

    def _sample(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        u = u.clamp_(min=2.0**-60)  # rand() may return exactly 0, where unbounded quantiles are -inf
        return self._quantile64(u).to(dtype)

    def quantile(self, u: torch.Tensor) -> torch.Tensor:
        """Q(u) = inf{y : F(y) >= u} for levels ``u`` in (0, 1); same shape and dtype as ``u``."""
        u = _as_u(u)
        return self._quantile64(u.to(torch.float64)).to(u.dtype)

    def bin_means(self, n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        r"""Bin means :math:`m_i = n\int_{i/n}^{(i+1)/n} Q(u)\,du`, ``i = 0..n-1``: shape ``(n,)``.

        ``m_i`` is the mean of the target restricted to its i-th of ``n`` equal-probability bins
        (non-decreasing in ``i``). Computed in float64, returned in ``dtype``.
        """
        n = check_positive_int("n", n)
        return torch.as_tensor(self._bin_means64(n), dtype=dtype)

    def second_moment(self) -> float:
        """E[Y^2]."""
        raise NotImplementedError

    @property
    def mean(self) -> float:
        """E[Y]."""
        raise NotImplementedError

    @property
    def std(self) -> float:
        """Standard deviation sqrt(E[Y^2] - E[Y]^2)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """A table ``{"name": ..., params...}`` such that ``make_target(describe())`` rebuilds this target."""
        return {"name": self.name}

    def _quantile64(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _bin_means64(self, n: int) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class Uniform(Target):
    r"""Uniform distribution on [low, high] (the library's default target, with low = -1, high = 1).

    .. math:: Q(u) = a + (b - a)u, \quad m_i = a + (b - a)\frac{i + 1/2}{n},
              \quad \mathbb{E}[Y^2] = \Big(\frac{a + b}{2}\Big)^2 + \frac{(b - a)^2}{12}.
    """

    low: float = -1.0
    high: float = 1.0
    name: str = field(default="uniform", init=False)

    def __post_init__(self) -> None:
        low, high = check_scalar("uniform low", self.low), check_scalar("uniform high", self.high)
        if not low < high:
            raise ConfigError(f"uniform target needs low < high, got low={low}, high={high}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def _sample(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
        return self.low + (self.high - self.low) * torch.rand(n, generator=generator, dtype=dtype)

    def _quantile64(self, u: torch.Tensor) -> torch.Tensor:
        return self.low + (self.high - self.low) * u

    def _bin_means64(self, n: int) -> np.ndarray:
        return self.low + (self.high - self.low) * (np.arange(n) + 0.5) / n

    def second_moment(self) -> float:
        return self.mean**2 + (self.high - self.low) ** 2 / 12.0

    @property
    def mean(self) -> float:
        return 0.5 * (self.low + self.high)

    @property
    def std(self) -> float:
        return (self.high - self.low) / math.sqrt(12.0)

    def describe(self) -> dict:
        return {"name": "uniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Gaussian(Target):
    r"""Normal distribution N(mean, std²).

    .. math:: Q(u) = \mu + \sigma\,\Phi^{-1}(u), \quad
              m_i = \mu + \sigma n\big[\varphi(\Phi^{-1}(\tfrac{i}{n}))
                    - \varphi(\Phi^{-1}(\tfrac{i+1}{n}))\big],
              \quad \mathbb{E}[Y^2] = \mu^2 + \sigma^2,

    using :math:`\int_a^b \Phi^{-1}(u)\,du = \varphi(\Phi^{-1}(a)) - \varphi(\Phi^{-1}(b))` and
    :math:`\varphi(\pm\infty) = 0`.
    """

    mean: float = 0.0
    std: float = 1.0
    name: str = field(default="gaussian", init=False)

    def __post_init__(self) -> None:
        mean = check_scalar("gaussian mean", self.mean)
        std = check_scalar("gaussian std", self.std, float, low=0.0, closed="neither")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def _sample(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
        return self.mean + self.std * torch.randn(n, generator=generator, dtype=dtype)

    def _quantile64(self, u: torch.Tensor) -> torch.Tensor:
        return self.mean + self.std * torch.special.ndtri(u)

    def _bin_means64(self, n: int) -> np.ndarray:
        z = special.ndtri(np.arange(n + 1) / n)  # -inf at 0, +inf at 1
        phi = np.exp(-0.5 * z * z) / _SQRT_2PI  # 0 at ±inf
        return self.mean + self.std * n * (phi[:-1] - phi[1:])

    def second_moment(self) -> float:
        return self.mean**2 + self.std**2

    def describe(self) -> dict:
        return {"name": "gaussian", "mean": self.mean, "std": self.std}


class Empirical(Target):
    r"""The empirical distribution of a fixed 1-D sample s_1..s_M (each value with probability 1/M).

    The quantile is the left-continuous inverse CDF, :math:`Q(u) = s_{(\lceil uM \rceil)}` (order
    statistics, 1-based, and :math:`Q(0) = s_{(1)}`), i.e. numpy's ``quantile(..., method="inverted_cdf")``.
    Bin means integrate this step function exactly:

    .. math:: m_i = n\,[G(\tfrac{i+1}{n}) - G(\tfrac{i}{n})], \quad
              G(t) = \frac{1}{M}\Big(\sum_{k < j} s_{(k+1)} + (tM - j)\, s_{(j+1)}\Big),
              \ j = \lfloor tM \rfloor.

    ``mean`` and ``std`` are those of the empirical distribution (``std`` with divisor M).
    """

    name = "empirical"

    def __init__(self, samples: np.ndarray | torch.Tensor | list[float]):
        if isinstance(samples, torch.Tensor):
            samples = samples.detach().cpu().numpy()
        try:
            arr = np.asarray(samples, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"empirical target samples must be real numbers ({err})") from None
        if arr.ndim != 1:
            raise ShapeError(f"empirical target samples must be a 1-D array, got shape {arr.shape}")
        if arr.size == 0:
            raise ConfigError("empirical target needs at least one sample, got an empty array")
        if not np.isfinite(arr).all():
            raise ConfigError(
                f"empirical target samples contain {int((~np.isfinite(arr)).sum())} NaN/inf value(s)"
            )
        srt = np.sort(arr)
        srt.setflags(write=False)
        self.sorted_samples = srt
        self._sorted_t = torch.from_numpy(srt.copy())
        self._cumsum = np.concatenate([[0.0], np.cumsum(srt)])

    def __repr__(self) -> str:
        return f"Empirical(n_samples={self.sorted_samples.size}, mean={self.mean:.4g}, std={self.std:.4g})"

    def _sample(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
        idx = torch.randint(self.sorted_samples.size, (n,), generator=generator)
        return self._sorted_t[idx].to(dtype)

    def _quantile64(self, u: torch.Tensor) -> torch.Tensor:
        m = self.sorted_samples.size
        idx = (torch.ceil(u * m).long() - 1).clamp_(0, m - 1)
        return self._sorted_t.to(u.device)[idx]

    def _bin_means64(self, n: int) -> np.ndarray:
        s, c, m = self.sorted_samples, self._cumsum, self.sorted_samples.size
        s_pad = np.append(s, 0.0)  # the piece index reaches m only at t = 1, with weight 0
        k = np.arange(n + 1, dtype=np.int64) * m  # t·n·m for t = i/n, exact integers
        j, rem = np.divmod(k, n)  # t·m = j + rem/n
        g = (c[j] + (rem / n) * s_pad[j]) / m  # G(i/n), i = 0..n
        return n * np.diff(g)

    def second_moment(self) -> float:
        return float(np.mean(self.sorted_samples**2))

    @property
    def mean(self) -> float:
        return float(np.mean(self.sorted_samples))

    @property
    def std(self) -> float:
        return float(np.std(self.sorted_samples))

    def describe(self) -> dict:
        return {"name": "empirical", "samples": self.sorted_samples.tolist()}


class QuantileFunction(Target):
    """A target given by a user quantile function ``fn``: u ↦ Q(u), non-decreasing on (0, 1).

    ``fn`` is called with a float64 numpy array of levels in (0, 1) (with a float64 torch tensor if it
    raises ``TypeError`` on the array) and may return a numpy array or a torch tensor of the same shape.
    Bin means use 16-point Gauss–Legendre per bin (end bins refined geometrically toward u = 0 and 1);
    ``second_moment``, ``mean`` and ``std`` use :func:`unit_interval_rule` with 256 panels.
    ``fn`` must be deterministic (its bin means and moments are cached). ``describe()`` cannot serialise
    ``fn``: pass the instance itself where a target is expected.
    """

    def __init__(self, fn: Callable, name: str = "quantile_function"):
        if not callable(fn):
            raise ConfigError(f"QuantileFunction needs a callable u -> Q(u), got {fn!r}")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"QuantileFunction name must be a non-empty string, got {name!r}")
        self.fn = fn
        self.name = name
        self._moments: tuple[float, float] | None = None

    def __repr__(self) -> str:
        return f"QuantileFunction(fn={self.fn!r}, name={self.name!r})"

    def _quantile64(self, u: torch.Tensor) -> torch.Tensor:
        try:
            out = self.fn(u.cpu().numpy())
        except TypeError:  # torch-only functions (e.g. torch.special.ndtri) reject numpy arrays
            out = self.fn(u)
        out = torch.as_tensor(np.asarray(out) if not isinstance(out, torch.Tensor) else out)
        out = out.to(dtype=torch.float64, device=u.device)
        if out.shape != u.shape:
            try:
                out = out.expand(u.shape)
            except RuntimeError:
                raise ShapeError(
                    f"quantile function {self.name!r} returned shape {tuple(out.shape)} for input "
                    f"shape {tuple(u.shape)}; it must act element-wise"
                ) from None
        return out

    def _values_at(self, u: np.ndarray) -> np.ndarray:
        """Q at interior quadrature nodes, checked finite."""
        v = self._quantile64(torch.from_numpy(np.ascontiguousarray(u))).numpy()
        if not np.isfinite(v).all():
            raise ConfigError(f"quantile function {self.name!r} returned NaN/inf inside (0, 1)")
        return v

    def _bin_means64(self, n: int) -> np.ndarray:
        t, w = _gauss_legendre01(_GL_ORDER)
        means = np.empty(n)
        if n > 2:
            u = (np.arange(1, n - 1)[:, None] + t) / n  # interior bins, (n-2, 16)
            means[1:-1] = self._values_at(u) @ w
        for i in {0, n - 1}:
            ui, wi = _composite_rule(_graded_edges(i / n, (i + 1) / n, i == 0, i == n - 1))
            means[i] = n * (self._values_at(ui) @ wi)
        return means

    def _moments64(self) -> tuple[float, float]:
        if self._moments is None:
            u, w = unit_interval_rule(256)
            q = self._values_at(u)
            if np.any(np.diff(q) < -1e-9 * (1.0 + np.abs(q[1:]))):
                raise ConfigError(f"quantile function {self.name!r} is not non-decreasing on (0, 1)")
            self._moments = (float(q @ w), float((q * q) @ w))
        return self._moments

    def second_moment(self) -> float:
        return self._moments64()[1]

    @property
    def mean(self) -> float:
        return self._moments64()[0]

    @property
    def std(self) -> float:
        m1, m2 = self._moments64()
        return math.sqrt(max(m2 - m1 * m1, 0.0))

    def describe(self) -> dict:
        return {"name": self.name, "fn": repr(self.fn)}


TARGETS: dict[str, type[Target]] = {"uniform": Uniform, "gaussian": Gaussian, "empirical": Empirical}
_PARAMS = {"uniform": ("low", "high"), "gaussian": ("mean", "std"), "empirical": ("samples",)}


def make_target(spec: str | dict | Target) -> Target:
    """Build a target from a name (``"uniform"``), a table (``{"name": "gaussian", "std": 0.5}``) or pass
    a :class:`Target` through.

    Unknown names or keys raise :class:`UnknownNameError`; invalid parameter values raise
    :class:`ConfigError`.
    """
    if isinstance(spec, Target):
        return spec
    name, params = split_spec(spec, "target", TARGETS)
    check_keys(params, _PARAMS[name], f"parameter of target {name!r}")
    if name == "empirical" and "samples" not in params:
        raise ConfigError("empirical target needs a 'samples' array")
    return TARGETS[name](**params)
