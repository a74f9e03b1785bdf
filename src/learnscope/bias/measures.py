"""Analysis tools that judge a meta-learned function (bias-spec §4 "Analysis tools", §5 items 10–11).

Everything here is plain numpy (torch tensors are accepted and converted to float64 arrays). A function
``f`` is a callable mapping an ``(N, d)`` numpy array of points to ``(N,)`` values.

* Sphere quadrature: :func:`fibonacci_sphere` (near-equal-area lattice on S², an equal-weight quadrature) and
  :func:`sphere_points` (that lattice for d = 3, seeded uniform points otherwise).
* Harmonic content: :func:`harmonic_energy` (fraction of ‖f‖² per harmonic degree on any S^{d−1}) and
  :func:`fourier_energy` (per-frequency energy on the circle). The spherical math they rest on
  (:func:`fibonacci_sphere`, :func:`harmonic_dimension`, :func:`real_spherical_harmonics`, the zonal bases)
  lives in :mod:`learnscope.spherical` and is re-exported here.
* Linear structure: :func:`affine_r2`, :func:`linear_fit`.
* Series of functions: :func:`overlap_matrix` (cosine overlaps) and :func:`mean_products` (the authors'
  raw measure).
* Learners: :func:`generalisation_error` (few-shot held-out error averaged over draws),
  :func:`split_generalisation_error` (the same on a dataset with a fixed train pool / test split) and
  :func:`refit_half_mse` (the notebooks' "MSE", a capacity measure).
* Paired learners: :func:`paired_generalisation_difference` compares two learners on the same tasks. (The
  checks of a run's result — diverged, collapsed — are in :mod:`learnscope.bias.verdict`.)
* Labelled datasets: :func:`class_agreement` (agreement of a thresholded labelling with two true classes, Fig 6),
  :func:`random_balanced_labels` and :func:`split_control_errors` (the learner's few-shot error on the true-class
  labelling and on random balanced labellings: the yardsticks for a found labelling's error).

All sphere averages use the uniform *probability* measure, approximated by the equal-weight mean over the
points.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from learnscope import rng
from learnscope.errors import ConfigError, ShapeError
from learnscope.spherical import (
    check_on_sphere,
    fibonacci_sphere,
    harmonic_dimension,
    real_spherical_harmonics,
    zonal_basis,
)
from learnscope.validation import as_finite_array, check_positive_int, check_scalar

__all__ = [
    "affine_r2",
    "class_agreement",
    "fibonacci_sphere",
    "fourier_energy",
    "generalisation_error",
    "harmonic_dimension",
    "harmonic_energy",
    "linear_fit",
    "mean_products",
    "overlap_matrix",
    "paired_generalisation_difference",
    "real_spherical_harmonics",
    "refit_half_mse",
    "sphere_points",
    "random_balanced_labels",
    "split_control_errors",
    "split_generalisation_error",
]


# ----------------------------------------------------------------------------------------------- helpers


def _eval_f(f: Callable, x: np.ndarray, name: str = "f") -> np.ndarray:
    """Evaluate ``f`` on ``(N, d)`` points; the result must have N finite values, shape (N,) or (N, 1)."""
    if not callable(f):
        raise ConfigError(f"{name} must be a callable mapping an (N, d) array to (N,) values, got {type(f)}")
    vals = as_finite_array(f"{name}(points)", f(x))
    n = x.shape[0]
    if vals.shape == (n, 1):
        vals = vals[:, 0]
    if vals.shape != (n,):
        raise ShapeError(f"{name} must return shape ({n},) for {n} points, got {vals.shape}")
    return vals


# ----------------------------------------------------------------------------------------------- points
def sphere_points(d: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` well-spread points on S^{d−1} ⊂ R^d: shape ``(n, d)``.

    For ``d == 3`` the Fibonacci lattice (``seed`` is ignored); otherwise ``n`` uniform random points
    g/‖g‖, g ~ N(0, I_d), drawn from ``np.random.default_rng(seed)``.
    """
    d = check_scalar("d", d, int, low=2)
    check_positive_int("n", n)
    if d == 3:
        return fibonacci_sphere(n)
    g = np.random.default_rng(seed).standard_normal((n, d))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


# ------------------------------------------------------------------------------------ harmonic energies
def harmonic_energy(
    f: Callable[[np.ndarray], np.ndarray],
    d: int,
    max_degree: int = 6,
    n_points: int = 20000,
    points: Any = None,
    seed: int = 0,
) -> np.ndarray:
    """Fraction of ‖f‖² (uniform measure on S^{d−1}) in each harmonic degree: shape ``(max_degree + 2,)``.

    Entry l (0 ≤ l ≤ max_degree) is the energy fraction of degree l; the last entry is the remainder (all
    degrees > max_degree). The entries are non-negative and sum to 1.

    Method (valid for any d ≥ 2): on ``points`` (default :func:`sphere_points` ``(d, n_points, seed)``, the
    Fibonacci lattice on S²) build for every degree l ≤ max_degree a basis Q_l of the degree-l harmonics
    from zonal Gegenbauer functions C_l^{((d−2)/2)}(x·p_j) (Chebyshev T_l for d = 2) around seeded generic
    centres p_j, orthonormalised on the points by an SVD; fit f by least squares on all degrees jointly,
    f ≈ Σ_l Q_l c_l + r, and report

    .. math:: e_l = \\frac{\\|Q_l c_l\\|^2}{\\sum_k \\|Q_k c_k\\|^2 + \\|r\\|^2},\\qquad
              e_{>L} = \\frac{\\|r\\|^2}{\\sum_k \\|Q_k c_k\\|^2 + \\|r\\|^2}.

    ‖Q_l c_l‖² is the *exact* uniform-measure mean square of the fitted degree-l component (from the
    closed-form L² Gram of zonal functions, see :func:`~learnscope.spherical.zonal_basis`), ‖r‖² the mean square of
    the residual over the points. Hence a function of degree ≤ max_degree gets its exact fractions on any point set
    (random points included, no Monte-Carlo error); otherwise the denominator equals ‖f‖² up to quadrature
    error (≈1e-6 relative on the 20 000-point lattice, Monte-Carlo size with random points), and energy
    above max_degree that the points cannot resolve aliases into lower degrees, as with any finite point set.

    Needs ``n_points ≥ 2 P`` with P = Σ_{l ≤ max_degree} N(d, l) basis functions. Cost: one SVD of an
    ``(n_points, ~1.25 N(d, l))`` matrix per degree plus one least-squares solve with P columns.
    """
    d = check_scalar("d", d, int, low=2)
    max_degree = check_scalar("max_degree", max_degree, int, low=0)
    if points is None:
        check_positive_int("n_points", n_points)
        x = sphere_points(d, n_points, seed)
    else:
        x = check_on_sphere("points", points, d)
    n_basis = sum(harmonic_dimension(d, l) for l in range(max_degree + 1))
    if x.shape[0] < 2 * n_basis:
        raise ConfigError(
            f"harmonic_energy up to degree {max_degree} on S^{d - 1} fits {n_basis} basis functions "
            f"and needs >= {2 * n_basis} points, got {x.shape[0]}"
        )
    vals = _eval_f(f, x)
    centres = rng.numpy_rng(int(seed), rng.ZONAL_CENTRES)  # the first release's default_rng([seed, 1])
    blocks = [zonal_basis(x, l, centres) for l in range(max_degree + 1)]
    design = np.concatenate([q for q, _ in blocks], axis=1)
    coef, *_ = np.linalg.lstsq(design, vals, rcond=None)
    parts, start = [], 0
    for q, m in blocks:
        c = coef[start : start + q.shape[1]]
        parts.append(max(float(c @ m @ c), 0.0))
        start += q.shape[1]
    resid = vals - design @ coef
    parts.append(float(resid @ resid) / len(vals))
    energy = np.asarray(parts)
    total = energy.sum()
    if not total > 0.0:
        raise ConfigError("f is identically zero on the points; its energy fractions are undefined")
    return energy / total


def fourier_energy(
    f: Callable[[np.ndarray], np.ndarray], max_freq: int = 8, n_points: int = 4096
) -> np.ndarray:
    """Fraction of ‖f‖² on the unit circle at frequencies 0..max_freq, plus the remainder: ``(max_freq+2,)``.

    ``f`` is evaluated at the ``n_points`` equispaced points x_k = (cos θ_k, sin θ_k), θ_k = 2πk/n; with
    the real FFT coefficients F_k, Parseval gives the energy of frequency k as |F_0|²/n² for k = 0 and
    2|F_k|²/n² for 0 < k < n/2 (|F_{n/2}|²/n² at the Nyquist frequency). Frequencies ≥ n/2 alias into lower
    ones, so n_points should exceed twice the highest frequency present; it must be > 2·max_freq + 1.
    """
    max_freq = check_scalar("max_freq", max_freq, int, low=0)
    check_positive_int("n_points", n_points)
    if n_points < 2 * max_freq + 2:
        raise ConfigError(
            f"fourier_energy up to frequency {max_freq} needs >= {2 * max_freq + 2} points, got {n_points}"
        )
    theta = 2.0 * math.pi * np.arange(n_points) / n_points
    x = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    vals = _eval_f(f, x)
    power = np.abs(np.fft.rfft(vals)) ** 2
    power[1:] *= 2.0
    if n_points % 2 == 0:
        power[-1] /= 2.0  # the Nyquist coefficient has no conjugate partner
    total = power.sum()
    if not total > 0.0:
        raise ConfigError("f is identically zero on the circle; its energy fractions are undefined")
    frac = power / total
    return np.concatenate([frac[: max_freq + 1], [frac[max_freq + 1 :].sum()]])


# ---------------------------------------------------------------------------------------- linear fits
def points_and_values(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as ``(N, p)`` and ``y`` as ``(N,)`` float64 arrays with the same N (at least 2), or a ShapeError."""
    xa, ya = as_finite_array("x", x), as_finite_array("y", y)
    if xa.ndim == 1:
        xa = xa[:, None]
    if xa.ndim != 2 or ya.ndim != 1 or xa.shape[0] != ya.shape[0]:
        raise ShapeError(
            f"x must be (N, p) or (N,) and y (N,) with the same N, got {xa.shape} and {ya.shape}"
        )
    if ya.shape[0] < 2:
        raise ShapeError(f"a linear fit needs at least 2 points, got {ya.shape[0]}")
    return xa, ya


def linear_fit(x: Any, y: Any, bias: bool = True) -> tuple[np.ndarray, float]:
    """Least-squares fit y ≈ x w + b: returns weights ``w`` of shape ``(p,)`` and intercept ``b``.

    ``x`` is ``(N, p)`` (or ``(N,)`` for one feature), ``y`` is ``(N,)``. With ``bias=False`` the fit is
    y ≈ x w through the origin and ``b = 0.0``. Rank-deficient x gets the minimum-norm solution.
    """
    xa, ya = points_and_values(x, y)
    design = np.concatenate([xa, np.ones((xa.shape[0], 1))], axis=1) if bias else xa
    coef, *_ = np.linalg.lstsq(design, ya, rcond=None)
    return (coef[:-1], float(coef[-1])) if bias else (coef, 0.0)


def affine_r2(x: Any, y: Any, bias: bool = True) -> float:
    """R² of the least-squares affine (``bias=True``) or through-the-origin linear fit of y on x.

    .. math:: R^2 = 1 - \\frac{\\sum_i (y_i - \\hat y_i)^2}{\\sum_i (y_i - \\bar y)^2}

    SS_tot is taken about the mean of y in both cases, so for ``bias=False`` R² measures the fit against
    the best *constant* predictor and can be negative (it is not the uncentred R² of some packages).
    Raises :class:`ConfigError` if y is constant (R² undefined).
    """
    xa, ya = points_and_values(x, y)
    w, b = linear_fit(xa, ya, bias=bias)
    resid = ya - (xa @ w + b)
    ss_tot = float(((ya - ya.mean()) ** 2).sum())
    if not ss_tot > 0.0:
        raise ConfigError("y is constant, so R² is undefined; pass a non-constant y")
    return 1.0 - float(resid @ resid) / ss_tot


# ----------------------------------------------------------------------------------- series of functions
def _values_matrix(values: Any) -> np.ndarray:
    v = as_finite_array("values", values)
    if v.ndim != 2 or v.shape[1] == 0:
        raise ShapeError(f"values must have shape (k, N): k functions on the same N points, got {v.shape}")
    return v


def mean_products(values: Any) -> np.ndarray:
    """Raw mean products M_ij = mean_x f_i(x) f_j(x) of k functions: ``(k, N)`` values → ``(k, k)``."""
    v = _values_matrix(values)
    return v @ v.T / v.shape[1]


def overlap_matrix(values: Any) -> np.ndarray:
    """Cosine overlaps of k functions on the same points: ``(k, N)`` values → ``(k, k)``, unit diagonal.

    .. math:: O_{ij} = \\frac{\\mathrm{mean}(f_i f_j)}{\\sqrt{\\mathrm{mean}(f_i^2)\\,\\mathrm{mean}(f_j^2)}}

    Un-centred (the constant part counts), so O = 0 means orthogonal in L²(points).
    """
    m = mean_products(values)
    diag = np.diag(m)
    if not (diag > 0).all():
        raise ConfigError(
            f"function(s) {np.flatnonzero(diag <= 0).tolist()} are zero on all points; "
            "their overlaps are undefined"
        )
    s = np.sqrt(diag)
    out = m / s[:, None] / s[None, :]
    np.fill_diagonal(out, 1.0)
    return out


# ---------------------------------------------------------------------------------------------- learners
def refit_half_mse(learner_fit_values: Any, values: Any) -> float:
    """The notebooks' "MSE": Σ_i (ĝ_i − f_i)² / (2N) between a learner's refit ĝ and the target f, both (N,).

    A capacity measure (how well the learner can represent f on the evaluation set), not a generalisation
    error (bias-spec §5 item 10).
    """
    g, fv = as_finite_array("learner_fit_values", learner_fit_values), as_finite_array("values", values)
    if g.ndim != 1 or g.shape != fv.shape or g.shape[0] == 0:
        raise ShapeError(
            f"learner_fit_values and values must both be (N,) with N > 0, got {g.shape}, {fv.shape}"
        )
    return float(((g - fv) ** 2).sum() / (2 * g.shape[0]))


def generalisation_error(
    learner: Any,
    f: Callable[[np.ndarray], np.ndarray],
    domain: Any,
    n_train: int,
    n_test: int,
    draws: int = 200,
    seed: int = 0,
    batch: int = 50,
    dtype: torch.dtype = torch.float64,
) -> dict:
    """Few-shot held-out error of ``learner`` on target ``f``, averaged over ``draws`` independent tasks.

    Each draw samples ``n_train + n_test`` points from ``domain`` (``sample_batch(B, n, generator, dtype)``
    → ``(B, n, d)``), labels them with ``f`` and calls
    ``learner.fit_predict(x_tr (B, n_train, d), y_tr (B, n_train), x_te (B, n_test, d), generator=g)``
    → ``(B, n_test)``, ``batch`` draws per call, under ``torch.no_grad``. The data come from the named stream
    ``rng.torch_generator(seed, rng.FEW_SHOT_TASKS)`` and the learner's own randomness from
    ``rng.torch_generator(seed, rng.FEW_SHOT_LEARNER)``, so two learners evaluated with the same seed see the same
    tasks (and draw the same random numbers, as far as they consume them alike: a paired design).

    Returns ``{"mse", "sem", "relative", "draws"}``: the mean over draws of the per-draw test MSE, its
    standard error (std with ddof = 1 over √draws; NaN when draws == 1), mse divided by mean(f²) over all
    test points (a learner that always predicts 0 scores ≈ 1), and the number of draws.
    """
    _check_learner(learner)
    tasks = _fresh_tasks(f, domain, n_train, n_test, draws, seed, batch, dtype)
    out = _few_shot_errors(learner, tasks, n_train, draws, seed)
    if math.isnan(out["relative"]):
        raise ConfigError("f is zero on every test point, so the relative error is undefined")
    return out


def _few_shot_per_draw(learner: Any, tasks: Iterable[tuple[torch.Tensor, torch.Tensor]], n_train: int,
                       seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train ``learner`` on the first ``n_train`` points of each task batch ``(x (b, n, d), y (b, n))`` and score it
    on the rest, under ``torch.no_grad``, the learner drawing from ``rng.torch_generator(seed, FEW_SHOT_LEARNER)``.
    Returns the per-draw test MSE and the per-draw mean square of the test targets, each ``(draws,)``."""
    learner_gen = rng.torch_generator(int(seed), rng.FEW_SHOT_LEARNER)
    per_draw, sq_targets = [], []
    with torch.no_grad():
        for x, y in tasks:
            pred = as_finite_array("learner prediction", learner.fit_predict(x[:, :n_train], y[:, :n_train],
                                                                       x[:, n_train:], generator=learner_gen))
            y_te = y[:, n_train:].detach().cpu().double().numpy()
            if pred.shape != y_te.shape:
                raise ShapeError(f"learner.fit_predict must return {y_te.shape}, got {pred.shape}")
            per_draw.append(((pred - y_te) ** 2).mean(axis=1))
            sq_targets.append((y_te**2).mean(axis=1))
    return np.concatenate(per_draw), np.concatenate(sq_targets)


def _few_shot_errors(learner: Any, tasks: Iterable[tuple[torch.Tensor, torch.Tensor]], n_train: int, draws: int,
                     seed: int) -> dict:
    """:func:`_few_shot_per_draw` summarised: ``{"mse", "sem", "relative", "draws"}`` (relative: NaN when the targets
    are 0 on every test point)."""
    errs, sq = _few_shot_per_draw(learner, tasks, n_train, seed)
    mse = float(errs.mean())
    sem = float(errs.std(ddof=1) / math.sqrt(draws)) if draws > 1 else float("nan")
    mean_sq = float(sq.mean())
    return {"mse": mse, "sem": sem, "relative": mse / mean_sq if mean_sq > 0.0 else float("nan"), "draws": draws}


def split_generalisation_error(
    learner: Any,
    values: Any,
    domain: Any,
    n_train: int,
    n_test: int,
    draws: int = 20,
    seed: int = 0,
    batch: int = 5,
    dtype: torch.dtype = torch.float32,
) -> dict:
    """:func:`generalisation_error` on a dataset with a fixed split (:class:`~learnscope.domains.SplitDataset`).

    ``values`` ``(N,)`` are the target's values on ``domain.points``, or ``(draws, N)``: one labelling per draw (the
    random balanced control of :func:`split_control_errors`). Each draw takes the rows of
    ``domain.meta_indices(1, n_train, n_test, g)`` (training rows from the pool, test rows from the test set; the
    whole pool and test set when the sizes match them), trains the learner on the first ``n_train`` and scores its
    MSE on the rest; ``batch`` draws per ``fit_predict`` call, under ``torch.no_grad``. Data and learner randomness
    come from the streams ``(seed, FEW_SHOT_TASKS)`` and ``(seed, FEW_SHOT_LEARNER)``, as in
    :func:`generalisation_error`, whose return value
    (``{"mse", "sem", "relative", "draws"}``) this matches, except that a target that is zero on every test point
    gets a NaN relative error instead of an error (a meta-learner whose ReLU6 output never left 0 is still
    reported).
    """
    _check_learner(learner)
    if not hasattr(domain, "meta_indices"):
        raise ConfigError(f"domain must have a fixed split (meta_indices), got {type(domain).__name__}")
    vals = as_finite_array("values", values)
    draws, batch = check_positive_int("draws", draws), check_positive_int("batch", batch)
    n = len(domain.points)
    if vals.shape not in ((n,), (draws, n)):
        raise ShapeError(
            f"values must have shape ({n},) (one per dataset point) or ({draws}, {n}) (one labelling per draw), "
            f"got {vals.shape}"
        )
    data_gen = rng.torch_generator(int(seed), rng.FEW_SHOT_TASKS)
    y_all = torch.as_tensor(vals, dtype=dtype).expand(draws, n)  # row r: the labelling of draw r

    def tasks() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, draws, batch):
            idx = domain.meta_indices(min(batch, draws - start), n_train, n_test, data_gen)
            yield domain.points[idx].to(dtype), torch.gather(y_all[start : start + len(idx)], 1, idx)

    return _few_shot_errors(learner, tasks(), n_train, draws, seed)


def class_agreement(values: Any, classes: Any, pair: tuple[int, int] = (0, 1), threshold: float = 0.5) -> dict:
    """How well a labelling separates two true classes, whichever way round.

    ``values`` ``(N,)`` are thresholded (value > ``threshold`` → 1) and compared with ``classes`` ``(N,)`` (each in
    ``pair``), reading class ``pair[1]`` as 1:

    .. math:: a = \\frac1N \\sum_i [\\,[f(x_i) > t] = [c_i = \\text{pair}_1]\\,],\\qquad
              \\text{agreement} = \\max(a, 1 - a).

    Returns ``{"agreement", "accuracy": a, "class_labelled_1"}``: the class the labelling maps to 1 (``pair[1]`` if
    a ≥ ½, else ``pair[0]``).
    """
    v, c = as_finite_array("values", values), np.asarray(classes)
    if v.ndim != 1 or c.shape != v.shape or v.size == 0:
        raise ShapeError(f"values and classes must both be (N,) with N > 0, got {v.shape} and {c.shape}")
    if not np.isin(c, pair).all():
        raise ConfigError(f"classes must all be in {tuple(pair)}, got {sorted(set(c.tolist()) - set(pair))}")
    acc = float(((v > threshold) == (c == pair[1])).mean())
    labelled_1 = int(pair[1] if acc >= 0.5 else pair[0])
    return {"agreement": max(acc, 1.0 - acc), "accuracy": acc, "class_labelled_1": labelled_1}


def random_balanced_labels(n_pool: int, n_test: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random balanced 0/1 labellings of a split dataset: shape ``(count, n_pool + n_test)``, float64.

    Each row labels exactly ⌊n_pool/2⌋ of the pool rows ``[0, n_pool)`` and ⌊n_test/2⌋ of the test rows 1 (uniformly
    at random, independently per row), the rest 0: the same class balance as a stratified two-class split, with no
    relation to the points.
    """
    n_pool, n_test = check_positive_int("n_pool", n_pool), check_positive_int("n_test", n_test)
    count = check_positive_int("count", count)
    out = np.zeros((count, n_pool + n_test))
    for lo, size in ((0, n_pool), (n_pool, n_test)):
        ranks = np.argsort(rng.random((count, size)), axis=1)  # a uniform random permutation per row
        np.put_along_axis(out[:, lo : lo + size], ranks[:, : size // 2], 1.0, axis=1)
    return out


def split_control_errors(
    learner: Any, domain: Any, n_train: int, n_test: int, draws: int = 20, seed: int = 0
) -> dict:
    """The learner's few-shot error on two reference labellings of a two-class split dataset (Fig 6).

    * ``"class_labelling"``: the true classes, class ``pair[1]`` (the larger label) as 1 and ``pair[0]`` as 0 (on
      MNIST 0/1 the digit itself);
    * ``"random_balanced"``: a fresh :func:`random_balanced_labels` labelling for every draw (drawn from
      ``rng.numpy_rng(seed, rng.RANDOM_BALANCED_LABELS)``, the first release's ``default_rng([seed, 1])``), so its
      ``mse`` estimates the mean over random labellings and its ``sem`` includes their spread.

    Both are :func:`split_generalisation_error` with the same ``n_train``, ``n_test``, ``draws`` and ``seed`` (the
    same tasks and learner randomness), each returning ``{"mse", "sem", "relative", "draws"}``. A labelling the
    learner prefers scores well below the random balanced one (which a learner predicting ½ everywhere scores 0.25).
    Returns ``{}`` when ``domain.labels`` is missing or does not hold exactly two classes.
    """
    labels = getattr(domain, "labels", None)
    if labels is None:
        return {}
    pair = np.unique(np.asarray(labels))
    if len(pair) != 2:
        return {}
    classes = (np.asarray(labels) == pair[1]).astype(np.float64)
    random = random_balanced_labels(domain.n_pool, domain.n_test, draws,
                                    rng.numpy_rng(int(seed), rng.RANDOM_BALANCED_LABELS))
    args = (domain, n_train, n_test)
    return {
        "class_labelling": split_generalisation_error(learner, classes, *args, draws=draws, seed=seed),
        "random_balanced": split_generalisation_error(learner, random, *args, draws=draws, seed=seed),
    }


# ---------------------------------------------------------------------------------------- paired learners
def paired_generalisation_difference(
    learner_a: Any,
    learner_b: Any,
    f: Callable[[np.ndarray], np.ndarray],
    domain: Any,
    n_train: int,
    n_test: int,
    draws: int = 50,
    seed: int = 0,
    batch: int = 50,
    dtype: torch.dtype = torch.float64,
) -> dict:
    """Paired few-shot comparison of two learners on the same ``draws`` tasks of target ``f``.

    Both learners see exactly the tasks of :func:`generalisation_error` with this ``seed`` (so ``mse_a`` equals
    ``generalisation_error(learner_a, …)["mse"]``); draw r gives the difference
    :math:`\\delta_r = \\mathrm{MSE}_b(r) - \\mathrm{MSE}_a(r)`. Returns ``{"mean_difference": mean δ,
    "sem": std(δ, ddof=1)/√draws, "n": draws, "mse_a", "mse_b", "differences": δ (draws,)}``; a positive mean
    difference larger than about two s.e.m. says learner a generalises ``f`` better than learner b.
    """
    _check_learner(learner_a), _check_learner(learner_b)
    errs = []
    for learner in (learner_a, learner_b):
        tasks = _fresh_tasks(f, domain, n_train, n_test, draws, seed, batch, dtype)
        errs.append(_few_shot_per_draw(learner, tasks, n_train, seed)[0])
    diff = errs[1] - errs[0]
    sem = float(diff.std(ddof=1) / math.sqrt(draws)) if draws > 1 else float("nan")
    return {"mean_difference": float(diff.mean()), "sem": sem, "n": int(draws), "mse_a": float(errs[0].mean()),
            "mse_b": float(errs[1].mean()), "differences": diff}


def _check_learner(learner: Any) -> None:
    if not hasattr(learner, "fit_predict"):
        raise ConfigError(f"learner must have a fit_predict method, got {type(learner).__name__}")


def _fresh_tasks(f: Callable, domain: Any, n_train: int, n_test: int, draws: int, seed: int, batch: int,
                 dtype: torch.dtype) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The task batches ``(x (b, n, d), f(x) (b, n))`` of :func:`generalisation_error`, ``batch`` draws at a time,
    the inputs from ``domain.sample_batch`` with the stream ``(seed, FEW_SHOT_TASKS)``. Checks the arguments now
    (before the first batch is asked for)."""
    if not hasattr(domain, "sample_batch"):
        raise ConfigError(f"domain must have a sample_batch method, got {type(domain).__name__}")
    n_train, n_test = check_positive_int("n_train", n_train), check_positive_int("n_test", n_test)
    draws, batch = check_positive_int("draws", draws), check_positive_int("batch", batch)
    data_gen = rng.torch_generator(int(seed), rng.FEW_SHOT_TASKS)

    def tasks() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, draws, batch):
            b = min(batch, draws - start)
            x = domain.sample_batch(b, n_train + n_test, data_gen, dtype)
            if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[:2] != (b, n_train + n_test):
                raise ShapeError(
                    f"domain.sample_batch must return a ({b}, {n_train + n_test}, d) tensor, "
                    f"got {getattr(x, 'shape', type(x))}"
                )
            y = _eval_f(f, x.reshape(-1, x.shape[2]).detach().cpu().to(torch.float64).numpy())
            yield x, torch.as_tensor(y.reshape(b, n_train + n_test), dtype=dtype, device=x.device)

    return tasks()
