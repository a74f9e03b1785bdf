"""Kernel spectra: eigenvalues per eigenspace, their multiplicities and (Nyström) eigenfunctions.

Normalisation (the one eigenlearning needs, :mod:`learnscope.theory.eigenlearning`): the eigenvalues are those of
the integral operator of the kernel w.r.t. the domain's *probability* measure μ,

.. math:: \\int k(x, x')\\,\\phi_i(x')\\,d\\mu(x') = \\lambda_i\\,\\phi_i(x), \\qquad
          \\mathbb E_\\mu[\\phi_i\\phi_j] = \\delta_{ij}, \\qquad
          k(x, x') = \\sum_i \\lambda_i \\phi_i(x)\\phi_i(x'),

so a Gram matrix on n points drawn from μ is K_XX = Φ Λ Φᵀ with Φ_{ai} = φ_i(x_a) of unit mean square — the same
K_XX to which the learner adds its ridge δ (learnscope's ``KernelRidge`` solves (K_XX + δ I) α = y, δ not scaled
by n). The trace check is Σ_i m_i λ_i = E_μ k(x, x).

Two ways to get them:

* :func:`funk_hecke_spectrum` — a rotation-invariant kernel on S^{d−1} given by its profile k(t), t = x·x′. Its
  eigenspaces are the degrees l (dimension N(d, l)); by the Funk–Hecke formula (σ uniform probability measure,
  P_l the Legendre polynomial of dimension d, P_l(1) = 1)

  .. math:: \\lambda_l = \\frac{\\Gamma(d/2)}{\\sqrt\\pi\\,\\Gamma((d-1)/2)}
            \\int_{-1}^{1} k(t)\\,P_l(t)\\,(1 - t^2)^{(d-3)/2}\\,dt
            = \\frac{\\int_0^\\pi k(\\cos\\theta) P_l(\\cos\\theta)\\sin^{d-2}\\theta\\,d\\theta}
                   {\\int_0^\\pi \\sin^{d-2}\\theta\\,d\\theta},
    \\qquad k(t) = \\sum_l \\lambda_l N(d, l) P_l(t).

  The θ form is integrated by Gauss–Legendre quadrature (:func:`learnscope.spherical.funk_hecke_eigenvalues`):
  exponential convergence for profiles analytic in θ (arc-cosine, ReLU NNGP/NTK), where Gauss–Gegenbauer in t
  would converge only algebraically because of the |1 − t|^{1/2} terms.
* :func:`nystrom_spectrum` — any kernel: the eigendecomposition of K/M on M samples of μ. If K/M = U diag(λ) Uᵀ
  then λ_i → the operator eigenvalues, and φ_i(x_a) ≈ √M U_{ai} (unit mean square on the sample); off the sample,
  the Nyström extension φ_i(x) = k(x, X) √M U_{:,i} / (M λ_i).

:func:`learner_spectrum` picks the right one for a learnscope learner on a domain.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from learnscope.errors import ConfigError, ShapeError
from learnscope.spherical import check_on_sphere, funk_hecke_eigenvalues, harmonic_dimension, harmonic_power
from learnscope.theory.profiles import Profile, arccos_profile, linear_profile
from learnscope.validation import as_finite_array, check_positive_int, check_scalar

__all__ = ["Spectrum", "funk_hecke_spectrum", "learner_spectrum", "nystrom_spectrum"]

NumpyKernel = Callable[[np.ndarray, np.ndarray], np.ndarray]

# A non-PSD kernel shows up as an eigenvalue below −_PSD_TOL · max|λ|; smaller negatives are rounding and become 0.
_PSD_TOL = 1e-8
# Nyström modes with λ ≤ _RANK_TOL · λ_max (numerically zero) are dropped when ``top`` is None.
_RANK_TOL = 1e-12
# A Nyström mode is "the constant mode" if more than half its energy lies on the constant function.
_CONSTANT_SHARE = 0.5


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Eigenvalues per eigenspace (level) of a kernel's integral operator w.r.t. the domain's probability measure.

    Attributes
    ----------
    eigenvalues : ``(K,)`` float64 ≥ 0, one per eigenspace in level order (degree 0, 1, 2, … for Funk–Hecke; mode 1,
        2, … by decreasing eigenvalue for Nyström). Normalised so that K_XX ≈ Σ_i λ_i φ_i(X) φ_i(X)ᵀ with
        E φ_i² = 1 (pairs with the learner's ridge δ as it is; see :mod:`learnscope.theory.eigenlearning`).
    multiplicity : ``(K,)`` int, the dimension of each eigenspace (N(d, l) for degree l; 1 for a Nyström mode).
    labels : ``"degree 0"``, ``"degree 1"``, … or ``"mode 1"``, ….
    kind : ``"funk_hecke"`` or ``"nystrom"``.
    points : ``(M, d)`` the Nyström sample (None for Funk–Hecke).
    eigenvectors : ``(M, K)`` φ_i at the sample points, orthonormal in L²(sample): mean(v_i v_j) = δ_ij.
    d : the input dimension.
    kernel : Nyström: the numpy kernel ``k(x1 (n, d), x2 (m, d)) -> (n, m)`` (for the Nyström extension);
        Funk–Hecke: the profile k(t).
    """

    eigenvalues: np.ndarray
    multiplicity: np.ndarray
    labels: tuple[str, ...]
    kind: str
    points: np.ndarray | None = None
    eigenvectors: np.ndarray | None = None
    d: int | None = None
    kernel: Callable[..., np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        lam = np.asarray(self.eigenvalues, dtype=np.float64)
        mult = np.asarray(self.multiplicity, dtype=np.int64)
        if lam.ndim != 1 or mult.shape != lam.shape or len(self.labels) != lam.size:
            raise ShapeError(
                f"eigenvalues, multiplicity and labels must have one entry per level, got shapes {lam.shape}, "
                f"{mult.shape} and {len(self.labels)} labels"
            )
        if self.kind not in ("funk_hecke", "nystrom"):
            raise ConfigError(f"spectrum kind must be 'funk_hecke' or 'nystrom', got {self.kind!r}")
        if np.any(np.isnan(lam)) or np.any(lam < 0):
            raise ConfigError("eigenvalues must be non-negative numbers (the kernel must be positive semi-definite)")
        if np.any(mult < 1):
            raise ConfigError("every multiplicity must be an integer >= 1")
        object.__setattr__(self, "eigenvalues", lam)
        object.__setattr__(self, "multiplicity", mult)
        object.__setattr__(self, "labels", tuple(self.labels))

    def __len__(self) -> int:
        return int(self.eigenvalues.size)

    @property
    def trace(self) -> float:
        """Σ_i m_i λ_i = E_μ k(x, x) over the levels held (a truncated Funk–Hecke spectrum holds less)."""
        return float(np.sum(self.multiplicity * self.eigenvalues))

    def constant_level(self) -> int | None:
        """The level of the constant function: degree 0 (Funk–Hecke); for Nyström the mode with the largest share
        mean(v_i)² of its energy on the constant, if that share exceeds ½; else None."""
        if self.kind == "funk_hecke":
            return 0
        if self.eigenvectors is None or self.eigenvectors.shape[1] == 0:
            return None
        share = self.eigenvectors.mean(axis=0) ** 2
        i = int(np.argmax(share))
        return i if share[i] > _CONSTANT_SHARE else None

    def ranking(self, skip_constant: bool = True) -> np.ndarray:
        """Level indices by decreasing eigenvalue (ties: lower level first), ``(K,)`` or ``(K − 1,)`` int.

        The ranking by λ is the ranking by learnability L_i = λ_i/(λ_i + κ) at every n and ridge. With
        ``skip_constant`` the constant level (:meth:`constant_level`) is left out: the searches forbid constants.
        """
        order = np.argsort(-self.eigenvalues, kind="stable")
        const = self.constant_level() if skip_constant else None
        return order if const is None else order[order != const]

    def eigenfunctions(self, x: Any) -> np.ndarray:
        """Nyström only: the eigenfunctions at ``x`` ``(N, d)`` -> ``(N, K)``, by the Nyström extension

        .. math:: \\phi_i(x) = \\frac{1}{M\\lambda_i}\\sum_{a=1}^{M} k(x, x_a)\\,v_{ai}

        (equal to v_i at the sample points). Modes with λ_i = 0 are returned as 0.
        """
        if self.kind != "nystrom" or self.eigenvectors is None or self.points is None or self.kernel is None:
            raise ConfigError("eigenfunctions() needs a Nyström spectrum with its points, eigenvectors and kernel")
        x = as_finite_array("x", x)
        if x.ndim != 2 or x.shape[1] != self.points.shape[1]:
            raise ShapeError(f"x must have shape (N, {self.points.shape[1]}), got {x.shape}")
        kx = _gram(self.kernel, x, self.points)
        m = self.points.shape[0]
        lam = self.eigenvalues
        scale = np.divide(1.0, m * lam, out=np.zeros_like(lam), where=lam > 0)
        return (kx @ self.eigenvectors) * scale

    def coefficients_sq(self, f_values: Any, x: Any, *, remainder: bool = False) -> np.ndarray:
        """Energy v_i² of a function in each level (multiplicity folded in): ``(K,)``, or ``(K + 1,)`` with
        ``remainder`` (the last entry the energy outside the levels held, ‖f‖² − Σ_i v_i², clipped at 0).

        ``f_values`` ``(N,)`` are f at ``x`` ``(N, d)``, points of the domain (drawn from μ, or a quadrature of it).

        * Funk–Hecke: v_l² = ‖Π_l f‖², the mean square of f's degree-l component
          (:func:`learnscope.spherical.harmonic_power`: exact least squares on the harmonics for band-limited f).
        * Nyström: v_i = mean_x f(x) φ_i(x) / (mean_x φ_i(x)²)^{1/2} with φ_i the Nyström extension
          (:meth:`eigenfunctions`); on the sample itself (``x`` the spectrum's points) the eigenvectors, exact;
          elsewhere a Monte Carlo inner product whose error is that of the Nyström sample (≈ 5 % at M = 800 on S²).

        These are the ``coefficients_sq`` of :meth:`~learnscope.theory.eigenlearning.Prediction.test_mse`.
        """
        f = as_finite_array("f_values", f_values)
        x = as_finite_array("x", x)
        if f.ndim != 1 or x.ndim != 2 or x.shape[0] != f.shape[0]:
            raise ShapeError(f"f_values must have shape (N,) and x shape (N, d), got {f.shape} and {x.shape}")
        if self.d is not None and x.shape[1] != self.d:
            raise ShapeError(f"x must have {self.d} columns for this spectrum, got {x.shape[1]}")
        k = len(self)
        if self.kind == "funk_hecke":
            power = harmonic_power(f, check_on_sphere("x", x), k - 1)
            return power if remainder else power[:k]
        if self.points is not None and x.shape == self.points.shape and np.array_equal(x, self.points):
            phi = self.eigenvectors
        else:  # the extension is unit-norm only up to the sample's Monte Carlo error: renormalise it on x
            phi = self.eigenfunctions(x)
            norm = np.sqrt(np.mean(phi * phi, axis=0))
            phi = np.divide(phi, norm, out=np.zeros_like(phi), where=norm > 0)
        v = (f @ phi) / f.shape[0]
        energy = v * v
        if not remainder:
            return energy
        rest = max(float(f @ f) / f.shape[0] - float(energy.sum()), 0.0)
        return np.append(energy, rest)


def _gram(kernel: NumpyKernel, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    k = kernel(x1, x2)
    if hasattr(k, "detach"):  # a torch tensor from a user's kernel
        k = k.detach().cpu().double().numpy()
    k = as_finite_array("kernel values", k)
    if k.shape != (x1.shape[0], x2.shape[0]):
        raise ShapeError(f"kernel(x1 (n, d), x2 (m, d)) must return (n, m) = {(x1.shape[0], x2.shape[0])}, "
                         f"got {k.shape}")
    return k


def _psd_clip(lam: np.ndarray, what: str) -> np.ndarray:
    scale = float(np.max(np.abs(lam), initial=0.0))
    worst = float(np.min(lam, initial=0.0))
    if worst < -_PSD_TOL * scale:
        raise ConfigError(f"{what} is not positive semi-definite (eigenvalue {worst:.3g}); use a PSD kernel")
    return np.clip(lam, 0.0, None)


def funk_hecke_spectrum(profile: Profile, d: int, max_degree: int = 10, nodes: int = 1000) -> Spectrum:
    """Spectrum of the zonal kernel k(x·x′) on S^{d−1} ⊂ R^d with uniform σ: one level per degree 0..L.

    .. math:: \\lambda_l = \\frac{\\Gamma(d/2)}{\\sqrt\\pi\\,\\Gamma((d-1)/2)}
              \\int_{-1}^{1} k(t)\\,\\frac{C_l^{((d-2)/2)}(t)}{C_l^{((d-2)/2)}(1)}\\,(1 - t^2)^{(d-3)/2}\\,dt,
              \\qquad m_l = N(d, l),

    computed as the θ integral with ``nodes``-point Gauss–Legendre quadrature (module docstring). Rounding-size
    negative eigenvalues (> −1e-8 max|λ|) become 0; a profile with a clearly negative one raises ConfigError.

    profile : vectorised t ↦ k(t) on [−1, 1] (e.g. :func:`learnscope.theory.profiles.arccos_profile`); d ≥ 2;
    max_degree : L ≥ 0 (the levels held: energy and eigenvalues above L are not in the spectrum — take L large
    enough that λ_L ≪ κ when predicting, see :class:`~learnscope.theory.eigenlearning.Prediction`).
    """
    if not callable(profile):
        raise ConfigError(f"profile must be a callable t -> k(t), got {type(profile).__name__}")
    d = check_scalar("d", d, int, low=2, note="the sphere S^(d-1) in R^d")
    lam = funk_hecke_eigenvalues(lambda theta: profile(np.cos(theta)), d, max_degree, nodes)
    lam = _psd_clip(lam, "the kernel profile")
    mult = np.array([harmonic_dimension(d, l) for l in range(max_degree + 1)], dtype=np.int64)
    labels = tuple(f"degree {l}" for l in range(max_degree + 1))
    return Spectrum(lam, mult, labels, "funk_hecke", d=d, kernel=profile)


def nystrom_spectrum(kernel: NumpyKernel, points: Any, top: int | None = None) -> Spectrum:
    """Nyström spectrum of ``kernel`` on the sample ``points`` ``(M, d)`` of the domain: one level per mode.

    .. math:: \\frac{1}{M} K = U\\,\\mathrm{diag}(\\lambda)\\,U^\\top, \\quad K_{ab} = k(x_a, x_b), \\qquad
              \\text{eigenvectors} = \\sqrt M\\,U \\ (\\text{mean}(v_i v_j) = \\delta_{ij}).

    kernel : ``k(x1 (n, d), x2 (m, d)) -> (n, m)`` (numpy, or a torch tensor); points : ``(M, d)`` drawn from the
    domain's measure; top : keep the ``top`` largest modes (None: every mode with λ > 1e-12 λ_max). Modes are in
    decreasing eigenvalue; each eigenvector's sign makes its sum ≥ 0. The leading eigenvalues converge at the
    Monte Carlo rate O(1/√M).
    """
    if not callable(kernel):
        raise ConfigError(f"kernel must be a callable k(x1, x2) -> (n, m), got {type(kernel).__name__}")
    x = as_finite_array("points", points)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ShapeError(f"points must have shape (M, d) with M >= 2, got {x.shape}")
    m = x.shape[0]
    k = _gram(kernel, x, x)
    k = (k + k.T) / 2.0
    lam, u = np.linalg.eigh(k / m)
    lam, u = lam[::-1], u[:, ::-1]
    lam = _psd_clip(lam, "the kernel matrix")
    if top is None:
        keep = int(np.sum(lam > _RANK_TOL * lam[0])) if lam[0] > 0 else 0
    else:
        keep = min(check_positive_int("top", top), m)
    if keep == 0:
        raise ConfigError("the kernel matrix is zero on these points; it has no spectrum")
    lam, u = lam[:keep], u[:, :keep]
    sign = np.where(u.sum(axis=0) < 0, -1.0, 1.0)
    vectors = u * sign * math.sqrt(m)
    labels = tuple(f"mode {i + 1}" for i in range(keep))
    return Spectrum(lam.copy(), np.ones(keep, dtype=np.int64), labels, "nystrom", points=x, eigenvectors=vectors,
                    d=x.shape[1], kernel=kernel)


# ------------------------------------------------------------------------------------------------- learners
def _torch_kernel(fn: Callable[..., Any]) -> NumpyKernel:
    """A batched torch kernel ``(B, n, d), (B, m, d) -> (B, n, m)`` as a numpy kernel ``(n, d), (m, d) -> (n, m)``."""
    import torch

    def kernel(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        a = torch.as_tensor(x1, dtype=torch.float64)[None]
        b = a if x2 is x1 else torch.as_tensor(x2, dtype=torch.float64)[None]
        with torch.no_grad():
            return fn(a, b)[0].double().numpy()

    return kernel


def _random_feature_kernel(scale: float, variances: tuple[float, ...] | None) -> NumpyKernel:
    """E[F Fᵀ] of ReLU random features with J_ik ~ N(0, v_i): scale · arccos1(√v ⊙ x, √v ⊙ x′)."""
    profile = arccos_profile(1)

    def kernel(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        s = np.ones(x1.shape[1]) if variances is None else np.sqrt(np.asarray(variances, dtype=np.float64))
        if s.size != x1.shape[1]:
            raise ConfigError(f"variances has {s.size} entries but the inputs have d={x1.shape[1]}")
        a, b = x1 * s, x2 * s
        na = np.linalg.norm(a, axis=1)[:, None]
        nb = np.linalg.norm(b, axis=1)[None, :]
        denom = na * nb
        t = np.divide(a @ b.T, denom, out=np.zeros((a.shape[0], b.shape[0])), where=denom > 0)
        return scale * denom * profile(t)

    return kernel


def _zonal_or_kernel(learner: Any) -> tuple[Profile | None, NumpyKernel]:
    """(profile on the unit sphere or None, numpy kernel) of a kernel-like learner; ConfigError otherwise.

    The profile (when given) is valid for every input dimension d, except for nngp/ntk whose profile needs d:
    the caller binds d (see :func:`learner_spectrum`)."""
    from learnscope.learners.kernels import KernelRidge
    from learnscope.learners.random_features import RandomFeatureRidge
    from learnscope.learners.ridge import Ridge

    if isinstance(learner, KernelRidge):
        kernel = _torch_kernel(learner.gram)
        return (None, kernel) if callable(learner.kernel) else (learner.kernel, kernel)  # type: ignore[return-value]
    if isinstance(learner, RandomFeatureRidge):
        # K → ∞ limit: F Fᵀ → K·k (unnormalised) or k (normalise=True), k = E_w ReLU(w·x) ReLU(w·x′)
        scale = 1.0 if learner.normalise else float(learner.features)
        v = learner.variances
        kernel = _random_feature_kernel(scale, v)
        if v is None or len(set(v)) == 1:
            c = scale * (1.0 if v is None else v[0])
            base = arccos_profile(1)
            return (lambda t: c * base(t)), kernel  # type: ignore[return-value]
        return None, kernel
    if isinstance(learner, Ridge):
        if learner.bias:
            raise ConfigError("the theory overlay needs Ridge(bias=False): an unpenalised intercept is not a kernel")
        return linear_profile(), (lambda a, b: a @ b.T)
    gram = getattr(learner, "gram", None)
    if callable(gram):
        return None, _torch_kernel(gram)
    raise ConfigError(
        f"{type(learner).__name__} has no kernel: the theory overlay covers kernel_ridge, random_features, ridge "
        "and learners with a gram(x1, x2) method"
    )


def learner_spectrum(learner: Any, domain: Any, *, max_degree: int = 10, samples: int = 2000,
                     seed: int = 0) -> Spectrum:
    """The spectrum eigenlearning needs for ``learner`` trained on points of ``domain``.

    * Rotation-invariant kernel on a sphere domain (``Sphere``, ``Circle``): :func:`funk_hecke_spectrum` of its
      profile up to ``max_degree``. Covers ``KernelRidge`` with a named kernel (rbf, arccos0/1, nngp, ntk),
      ``Ridge(bias=False)`` (k(t) = t) and ``RandomFeatureRidge`` with equal variances, through its K → ∞ limit
      E[F Fᵀ] = K·v·k₁ (``normalise=False``) or v·k₁ (``normalise=True``) — the expected kernel, so the
      finite-K fluctuation of the features is not in the prediction.
    * Anything else (another domain, anisotropic random features, a custom kernel, a learner with a
      ``gram(x1 (B, n, d), x2 (B, m, d))`` method): :func:`nystrom_spectrum` of the (expected) kernel on
      ``samples`` points of the domain drawn from the stream (seed, "theory_nystrom").

    The eigenvalues are in the learner's own normalisation, so its ``lam`` is the ridge δ of
    :func:`~learnscope.theory.eigenlearning.eigenlearning` as it is. A learner without a kernel (trained circuits)
    raises a one-line :class:`ConfigError`.
    """
    from learnscope.domains import Circle, Sphere, make_domain
    from learnscope.rng import torch_generator

    dom = make_domain(domain)
    profile, kernel = _zonal_or_kernel(learner)
    if isinstance(profile, str):  # a named KernelRidge kernel: its profile depends on d for nngp/ntk
        profile = learner.profile(dom.dim)
    if profile is not None and isinstance(dom, (Sphere, Circle)):
        return funk_hecke_spectrum(profile, dom.dim, max_degree)
    import torch

    samples = check_positive_int("samples", samples)
    x = dom.sample(samples, torch_generator(int(seed), "theory_nystrom"), torch.float64).numpy()
    return nystrom_spectrum(kernel, x)
