"""The eigenlearning overlay of a kernel-type bias run: what theory predicts beside what the search found (wave2 §2.3).

Pure functions of a :class:`~learnscope.theory.spectra.Spectrum` and a
:class:`~learnscope.theory.eigenlearning.Prediction` (no learner is trained here; the run measures and passes the
measured numbers in); every result is a JSON-able dict.

* :func:`eigenspace_table` — the theory's ranking of the non-constant eigenspaces, with each one's relative gap to the
  next and its tie group (eigenspaces chained by gaps below :data:`ILL_POSED_GAP`).
* :func:`assignment_slots` / :func:`assignment` — f_j should lie in the j-th most learnable non-constant eigenspace,
  counting multiplicity; the metric is the energy of f_j in that eigenspace, "ill-posed" where it is tied.
* :func:`predicted_mse` and :func:`compare_mse` — E₀ (Σ (1 − L_i)² v_i² + r) from a function's measured coefficients
  (r: the energy above the spectrum's top level, counted as unlearnt), against the measured few-shot MSE:
  Spearman ρ and the median of |pred/meas − 1|.
* :func:`control_functions` — random smooth functions rank-transformed to a given marginal (the MSE test's controls).
* :func:`optimality` — measured MSE of f1 over the theory's minimum E₀ (1 − L_top)² ‖f1‖².
* :func:`contrast_overlay` — per-eigenspace predicted MSE ratio of learner B over learner A, the predicted best
  contrast (outside the eigenspaces both learn well), the found function's composition, the admixture note.
* :func:`theory_summary` / :func:`format_theory_summary` — the same without a search, for ``learnscope bias theory``.

Ridge convention: δ is what the learner adds to its Gram matrix, (K + δI) with δ not scaled by n (learnscope's
KernelRidge, RandomFeatureRidge and Ridge all use their ``lam`` so), and n is the number of training points of the
few-shot tasks (``search.n_train``, or ``analysis.gen_n_train`` where set); ``distance_on`` does not change n.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from learnscope import rng
from learnscope.errors import ConfigError, ShapeError
from learnscope.validation import check_positive_int, check_scalar

__all__ = [
    "ADMIXTURE_SHARE",
    "ENERGY_BAR",
    "ILL_POSED_GAP",
    "NYSTROM_SE_TIE",
    "SHARED_EASY_MSE",
    "ZERO_EIGENVALUE",
    "MarginalControl",
    "assignment",
    "assignment_slots",
    "compare_mse",
    "coefficients_many",
    "contrast_overlay",
    "control_functions",
    "eigenspace_table",
    "eigenvalue_errors",
    "format_theory_summary",
    "optimality",
    "predicted_mse",
    "relative_gap",
    "run_overlay",
    "theory_summary",
]

#: Two eigenspaces whose relative eigen-gap (λ_a − λ_b)/λ_a is below this are tied: which of them f_j lies in is
#: "ill-posed". Why 0.1: (1) a Nyström spectrum from M ≤ 2000 samples splits a degenerate eigenspace by a relative
#: amount of order √(2/M) ≈ 3–5 % per eigenvalue (more for the spread of a 3-fold space), so smaller gaps are not
#: resolved by the spectrum itself; (2) where λ ≫ κ the predicted MSE of a unit function is ≈ E₀ (κ/λ)², so a 10 %
#: gap changes it by ≲ 20 % — no more than the few-shot MSE's own spread over seeds and the noise of a meta-gradient
#: averaged over a handful of learners, i.e. a search cannot be expected to decide it.
ILL_POSED_GAP = 0.1
#: On a Nyström spectrum two eigenvalues within this many combined standard errors (:func:`eigenvalue_errors`) are
#: also tied: a degenerate eigenspace (the two axes of the disc under a linear kernel) is split by sampling by up to
#: ~2–3 standard errors of each eigenvalue, so 3 (se_a + se_b) keeps such a split from being read as a ranking.
NYSTROM_SE_TIE = 3.0
#: Eigenvalues at most this fraction of the largest are zero (and tied with each other): Nyström round-off, the
#: exact zeros of odd degrees ≥ 3 of the arc-cosine kernel.
ZERO_EIGENVALUE = 1e-10
#: The assignment bar of wave2 §2.3: f_j's energy in its predicted eigenspace ≥ 0.95 where the gap is large.
ENERGY_BAR = 0.95
#: A learner "learns an eigenspace well" when the predicted MSE of a unit-norm function in it, E₀ (1 − L)², is at
#: most this (10 % of the function's variance left as error).
SHARED_EASY_MSE = 0.1
#: A found contrast whose energy lies at least this much in eigenspaces both learners learn well is "a small
#: admixture on a shared easy function": its ratio comes from the minority part, not a finding.
ADMIXTURE_SHARE = 0.5
#: The label of a slot past every eigenfunction a spectrum holds (a Nyström spectrum keeps only modes with λ > 0).
NULL_SPACE = "null space (λ = 0)"
#: Random control functions of the MSE test (wave2 §2.3 asks for ≥ 20).
CONTROL_COUNT = 20
#: The named stream of the control functions (``rng.numpy_rng(seed, CONTROL_STREAM, index)``).
CONTROL_STREAM = "theory_controls"


# ------------------------------------------------------------------------------------------- ranking and ties
def relative_gap(a: float, b: float, zero: float) -> float:
    """(λ_hi − λ_lo)/λ_hi of two eigenvalues (order-free, ≥ 0); 0 when both are at most ``zero`` (both zero)."""
    hi, lo = max(a, b), min(a, b)
    if hi <= zero:
        return 0.0
    return float((hi - max(lo, 0.0)) / hi)


def eigenvalue_errors(spectrum: Any) -> np.ndarray:
    """Standard error of each eigenvalue estimate, ``(K,)``: 0 for Funk–Hecke (exact); for Nyström the Monte Carlo
    error of λ_i = mean_x (k φ_i)(x) φ_i(x) over M samples, se_i = λ_i · std(φ_i²) / √M (φ_i of unit mean square at
    the samples), the first-order error of a simple eigenvalue."""
    lam = np.asarray(spectrum.eigenvalues, dtype=float)
    vec = getattr(spectrum, "eigenvectors", None)
    if spectrum.kind != "nystrom" or vec is None:
        return np.zeros_like(lam)
    vec = np.asarray(vec, dtype=float)
    return lam * (vec**2).std(axis=0) / math.sqrt(vec.shape[0])


def _ranked(spectrum: Any, errors: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
    """(ranked non-constant level indices, their eigenvalues, multiplicities, the zero threshold, standard errors);
    ``errors`` (K,) overrides :func:`eigenvalue_errors` (e.g. zeros for a Nyström spectrum on a quadrature set)."""
    order = np.asarray(spectrum.ranking(skip_constant=True), dtype=int)
    lam = np.asarray(spectrum.eigenvalues, dtype=float)
    mult = np.asarray(spectrum.multiplicity, dtype=int)
    if order.size == 0:
        raise ConfigError("the spectrum has no non-constant eigenspace; nothing to rank")
    zero = ZERO_EIGENVALUE * max(float(np.abs(lam).max()), 1e-300)
    se = eigenvalue_errors(spectrum) if errors is None else np.asarray(errors, dtype=float)
    return order, lam[order], mult[order], zero, se[order]


def _tied(a: float, b: float, se_a: float, se_b: float, zero: float, gap: float) -> bool:
    """Two eigenvalues are tied when their relative gap is below ``gap`` or the gap is within
    :data:`NYSTROM_SE_TIE` combined standard errors of the estimates (a Nyström spectrum's sampling noise)."""
    hi = max(a, b)
    return relative_gap(a, b, zero) < gap or abs(a - b) <= NYSTROM_SE_TIE * (se_a + se_b) and hi > zero


def _tie_groups(lam_ranked: np.ndarray, zero: float, gap: float, se: np.ndarray | None = None) -> np.ndarray:
    """Tie-group id per ranked eigenspace: consecutive eigenspaces share a group when they are :func:`_tied`."""
    se = np.zeros_like(lam_ranked) if se is None else se
    ids = np.zeros(len(lam_ranked), dtype=int)
    for r in range(1, len(lam_ranked)):
        tied = _tied(lam_ranked[r - 1], lam_ranked[r], se[r - 1], se[r], zero, gap)
        ids[r] = ids[r - 1] if tied else ids[r - 1] + 1
    return ids


def _label(spectrum: Any, level: int) -> str:
    labels = getattr(spectrum, "labels", None)
    return str(labels[level]) if labels is not None and level < len(labels) else f"level {level}"


def _unit_mse(prediction: Any) -> np.ndarray:
    """E₀ (1 − L_i)² per level: the predicted MSE of a unit-norm function in level i, shape (K,)."""
    return float(prediction.e0) * (1.0 - np.asarray(prediction.learnability, dtype=float)) ** 2


def eigenspace_table(spectrum: Any, prediction: Any | None = None, *, top: int | None = 12,
                     gap: float = ILL_POSED_GAP, errors: np.ndarray | None = None) -> list[dict]:
    """The theory's ranking of the non-constant eigenspaces, most learnable first (the order of λ, which is the
    order of L_i = λ_i/(λ_i + κ) at any n and ridge).

    One dict per eigenspace: ``rank`` (1-based), ``level`` (index into the spectrum), ``label``, ``eigenvalue``,
    ``multiplicity``, ``gap_to_next`` = (λ_r − λ_{r+1})/λ_r (NaN for the last shown), ``tie_group`` (eigenspaces
    chained by ties share it: relative gap below ``gap``, or on a Nyström spectrum within :data:`NYSTROM_SE_TIE`
    combined standard errors), ``tied_with_next``, ``standard_error`` of λ (0 when exact), and with a
    ``prediction`` ``learnability`` L and ``unit_mse`` = E₀ (1 − L)². ``top`` limits the rows (None: all).
    """
    check_scalar("gap", gap, float, low=0.0, high=1.0)
    order, lam, mult, zero, se = _ranked(spectrum, errors)
    groups = _tie_groups(lam, zero, gap, se)
    unit = _unit_mse(prediction) if prediction is not None else None
    rows = []
    shown = len(order) if top is None else min(int(top), len(order))
    for r in range(shown):
        level = int(order[r])
        row = {"rank": r + 1, "level": level, "label": _label(spectrum, level), "eigenvalue": float(lam[r]),
               "multiplicity": int(mult[r]),
               "gap_to_next": relative_gap(lam[r], lam[r + 1], zero) if r + 1 < len(order) else float("nan"),
               "tie_group": int(groups[r]), "tied_with_next": bool(r + 1 < len(order) and groups[r + 1] == groups[r]),
               "standard_error": float(se[r])}
        if prediction is not None:
            row["learnability"] = float(np.asarray(prediction.learnability)[level])
            row["unit_mse"] = float(unit[level])
        rows.append(row)
    return rows


def assignment_slots(spectrum: Any, count: int, *, gap: float = ILL_POSED_GAP,
                     errors: np.ndarray | None = None) -> list[dict]:
    """Where the theory puts f_1 … f_count: the j-th most learnable non-constant eigenspace, counting multiplicity
    (on S² with the order-1 arc-cosine kernel f1–f3 in degree 1, f4–f8 in degree 2, never in a zero eigenspace while
    a positive one is left). Slots past every eigenfunction the spectrum holds are the kernel's null space
    (``level`` None, label :data:`NULL_SPACE`).

    Per slot: ``index`` j, ``level``, ``label``, ``eigenvalue``, ``ill_posed`` (its eigenspace is tied, relative gap
    < ``gap``, with a neighbour in the ranking: the earlier functions may have filled either, so which one f_j lies in
    is not decided by the theory), ``tied_levels`` (the tie group's levels, the eigenspace's own first) and
    ``gap`` (the smallest relative gap to a neighbouring eigenspace; NaN if there is none).
    """
    count = check_positive_int("count", count)
    order, lam, mult, zero, se = _ranked(spectrum, errors)
    groups = _tie_groups(lam, zero, gap, se)
    ranks = np.repeat(np.arange(len(order)), mult)[:count]
    out = []
    for j in range(len(ranks), count):  # past every eigenfunction held: the kernel's null space (λ = 0)
        out.append({"index": j + 1, "level": None, "label": NULL_SPACE, "eigenvalue": 0.0, "ill_posed": False,
                    "tied_levels": [], "gap": float("nan")})
    for j, r in enumerate(ranks):
        near = [relative_gap(lam[r], lam[q], zero) for q in (r - 1, r + 1) if 0 <= q < len(order)]
        tied = [int(order[q]) for q in np.flatnonzero(groups == groups[r]) if q != r]
        out.append({"index": j + 1, "level": int(order[r]), "label": _label(spectrum, int(order[r])),
                    "eigenvalue": float(lam[r]), "ill_posed": bool(tied), "tied_levels": [int(order[r]), *tied],
                    "gap": float(min(near)) if near else float("nan")})
    return sorted(out, key=lambda slot: slot["index"])


def _fractions(coefficients_sq: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Energy fractions v_i²/‖f‖², (S, K) from (S, K) coefficients and (S,) mean squares."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(coefficients_sq, dtype=float) / np.asarray(total, dtype=float)[:, None]


def assignment(spectrum: Any, coefficients_sq: Sequence[np.ndarray], totals: Sequence[np.ndarray], *,
               gap: float = ILL_POSED_GAP, bar: float = ENERGY_BAR, errors: np.ndarray | None = None) -> list[dict]:
    """The assignment test: the energy of each found f_j in the eigenspace the theory assigns it.

    coefficients_sq[j] : (S, K) energy per level of f_{j+1} for each of S seeds (``Spectrum.coefficients_sq``);
    totals[j] : (S,) its mean square ‖f‖² on the same points (so the fractions count the energy above the top level).

    Per function, the slot of :func:`assignment_slots` plus ``energy`` (S,) = v²_level/‖f‖², ``energy_tied`` (S,) =
    the fraction in the slot's tie group, ``meets_bar`` (every seed ≥ ``bar``; None where the slot is ill-posed:
    the search cannot be judged on a question the theory leaves open) and ``meets_bar_tied`` (the same for the tie
    group, which is the claim the theory does make there).
    """
    if len(coefficients_sq) != len(totals):
        raise ShapeError(f"{len(coefficients_sq)} coefficient arrays but {len(totals)} totals")
    if not coefficients_sq:
        return []
    slots = assignment_slots(spectrum, len(coefficients_sq), gap=gap, errors=errors)
    out = []
    for slot, c, t in zip(slots, coefficients_sq, totals, strict=True):
        frac = _fractions(np.atleast_2d(c), np.atleast_1d(t))
        if slot["level"] is None:  # the null space: the energy outside every level held
            e = e_tied = np.clip(1.0 - frac.sum(axis=1), 0.0, 1.0)
        else:
            e = frac[:, slot["level"]]
            e_tied = frac[:, slot["tied_levels"]].sum(axis=1)
        ok = bool(np.all(e >= bar))
        out.append(slot | {"energy": e.tolist(), "energy_tied": e_tied.tolist(),
                           "meets_bar": None if slot["ill_posed"] else ok,
                           "meets_bar_tied": bool(np.all(e_tied >= bar))})
    return out


# ------------------------------------------------------------------------------------------------- MSE test
def predicted_mse(prediction: Any, coefficients_sq: np.ndarray, total: float | None = None,
                  noise: float = 0.0) -> float:
    """The eigenlearning few-shot test MSE of a function from its energy per level (wave2 §2.1):

    .. math:: \\mathrm{MSE} = E_0\\Big(\\sum_i (1 - L_i)^2 v_i^2 + r + \\varepsilon^2\\Big),
              \\qquad r = \\max\\big(\\|f\\|^2 - \\textstyle\\sum_i v_i^2,\\ 0\\big)

    coefficients_sq : (K,) v_i² per level (multiplicity folded in); total : ‖f‖² (mean square on the domain), so r is
    the energy above the spectrum's top level, counted as unlearnt (L = 0: those eigenvalues are far below κ);
    None: r = 0. noise : label noise std ε. Units: those of f².
    """
    v = np.asarray(coefficients_sq, dtype=float)
    rest = 0.0 if total is None else max(float(total) - float(v.sum()), 0.0)
    return float(prediction.test_mse(v, noise=noise)) + float(prediction.e0) * rest


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..N of ``a`` (N,), ties given their average rank (as for Spearman's ρ)."""
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(1, len(a) + 1)
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def compare_mse(predicted: Sequence[float], measured: Sequence[float]) -> dict:
    """How well predicted MSEs match measured ones: ``spearman`` ρ (the Pearson correlation of the ranks, ties
    averaged), ``median_relative_error``
    median |pred/meas − 1|, ``count``. Pairs with a non-finite or non-positive measured value are left out."""
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    if p.shape != m.shape:
        raise ShapeError(f"{p.shape[0]} predicted but {m.shape[0]} measured MSEs")
    keep = np.isfinite(p) & np.isfinite(m) & (m > 0)
    p, m = p[keep], m[keep]
    if len(p) < 3:
        return {"spearman": float("nan"), "median_relative_error": float("nan"), "count": int(len(p))}
    rp, rm = _ranks(p), _ranks(m)
    rp, rm = rp - rp.mean(), rm - rm.mean()
    denom = math.sqrt(float(rp @ rp) * float(rm @ rm))
    rho = float(rp @ rm) / denom if denom > 0 else float("nan")
    return {"spearman": rho, "median_relative_error": float(np.median(np.abs(p / m - 1.0))), "count": int(len(p))}


class MarginalControl:
    """A random smooth function on the domain with a prescribed marginal: g(x) = Q(F̂_h(h(x))).

    h(x) = Σ_k a_k cos(ω_k·x + b_k) (R random Fourier features, ω_k ~ N(0, s² I), a_k ~ N(0, 1), b_k ~ U(0, 2π)),
    F̂_h is h's distribution function on ``reference`` points of the domain (piecewise linear through the
    mid-ranks (i + ½)/N) and Q the quantile function of the wanted marginal; so g has that marginal (up to the
    reference sample) and is a smooth, monotone re-labelling of h. Called on (N, d) numpy points -> (N,).
    """

    def __init__(self, omega: np.ndarray, phase: np.ndarray, amp: np.ndarray, reference: np.ndarray,
                 quantile: Callable[[np.ndarray], np.ndarray], bandwidth: float):
        self.omega, self.phase, self.amp, self.bandwidth = omega, phase, amp, float(bandwidth)
        self._sorted = np.sort(self._h(reference))
        self._quantile = quantile

    def _h(self, x: np.ndarray) -> np.ndarray:
        return np.cos(np.asarray(x, dtype=float) @ self.omega + self.phase) @ self.amp

    def __call__(self, x: np.ndarray) -> np.ndarray:
        ref = self._sorted
        u = np.interp(self._h(x), ref, (np.arange(len(ref)) + 0.5) / len(ref))
        return np.asarray(self._quantile(u), dtype=float)


def control_functions(domain: Any, quantile: Callable[[np.ndarray], np.ndarray], count: int = CONTROL_COUNT, *,
                      seed: int = 0, reference: int = 2000, features: int = 32,
                      bandwidths: tuple[float, float] = (0.5, 6.0)) -> list[MarginalControl]:
    """``count`` :class:`MarginalControl` functions with the marginal of ``quantile`` (u ∈ (0, 1) -> value).

    Control i draws from ``rng.numpy_rng(seed, CONTROL_STREAM, i)`` (so it does not depend on ``count``); its
    bandwidth s is log-uniform in ``bandwidths`` (≈ the highest harmonic degree it carries on the unit sphere), so the
    controls range from nearly linear to rough. The reference points are ``domain.spread_sample(reference)`` from
    the same stream.
    """
    import torch

    count = check_positive_int("count", count)
    lo, hi = bandwidths
    out = []
    for i in range(count):
        g = rng.numpy_rng(int(seed), CONTROL_STREAM, i)
        s = float(math.exp(g.uniform(math.log(lo), math.log(hi))))
        d = int(domain.dim)
        omega = s * g.standard_normal((d, features))
        phase = g.uniform(0.0, 2 * math.pi, features)
        amp = g.standard_normal(features)
        gen = torch.Generator().manual_seed(int(g.integers(2**62)))
        ref = domain.spread_sample(reference, gen, dtype=torch.float64).reshape(reference, -1).numpy()
        out.append(MarginalControl(omega, phase, amp, ref, quantile, s))
    return out


# ------------------------------------------------------------------------------------------ optimality, contrast
def min_unit_mse(prediction: Any, spectrum: Any) -> float:
    """The theory's minimum MSE over unit-norm non-constant functions: E₀ (1 − L_top)², L_top the learnability of the
    most learnable non-constant eigenspace."""
    top = int(np.asarray(spectrum.ranking(skip_constant=True))[0])
    return float(_unit_mse(prediction)[top])


def optimality(prediction: Any, spectrum: Any, measured_mse: Sequence[float], mean_square: Sequence[float],
               predicted_mse: Sequence[float] | None = None) -> dict:
    """The search's optimality ratio per seed: measured few-shot MSE of f1 over the theory's minimum for a function
    of f1's norm, E₀ (1 − L_top)² ‖f1‖² (1 = the search reached what theory says is possible; ≫ 1: stuck, or the
    theory's asymptotics are off at this n). ``predicted_mse``: the theory's MSE of f1 from its own coefficients,
    reported beside it (``predicted_ratio`` = predicted / minimum: how far f1 is from the optimum by the theory
    itself — large when a little of f1's energy sits in poorly learnt eigenspaces while the minimum is ≈ 0)."""
    floor = min_unit_mse(prediction, spectrum)
    meas, ms = np.asarray(measured_mse, dtype=float), np.asarray(mean_square, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = meas / (floor * ms)
        out = {"min_unit_mse": floor, "min_mse": (floor * ms).tolist(), "measured": meas.tolist(),
               "ratio": ratio.tolist()}
        if predicted_mse is not None:
            pred = np.asarray(predicted_mse, dtype=float)
            out |= {"predicted": pred.tolist(), "predicted_ratio": (pred / (floor * ms)).tolist()}
    return out


def contrast_overlay(spectrum_a: Any, prediction_a: Any, spectrum_b: Any, prediction_b: Any,
                     found_coefficients_sq: np.ndarray | None = None, found_totals: np.ndarray | None = None, *,
                     easy: float = SHARED_EASY_MSE, admixture: float = ADMIXTURE_SHARE) -> dict:
    """The contrast, predicted: for every eigenspace the predicted MSE ratio B/A of a unit-norm function in it,

    .. math:: r_i = \\frac{E_0^B (1 - L^B_i)^2}{E_0^A (1 - L^A_i)^2},

    which needs both spectra on the same eigenspaces (the same labels: e.g. two rotation-invariant kernels on the
    sphere, degree by degree; else ``{"available": False, "reason"}``). For two learners diagonal in one basis the
    ratio of the two quadratic forms Σ b_i v_i² / Σ a_i v_i² is largest on a single eigenspace, so the predicted best
    contrast is the eigenspace of largest r_i. ``shared_easy``: the non-constant eigenspaces both learn well
    (unit MSE ≤ ``easy`` for both); ``best`` is taken outside them (the orthogonal complement of the functions both
    learn well), ``best_unrestricted`` over all non-constant eigenspaces.

    found_coefficients_sq (S, K) and found_totals (S,): the found function per seed; adds ``found``: its composition
    (energy fraction per eigenspace, S rows), its predicted MSE under A and B and their ratio, its energy share in
    ``shared_easy`` and, where that share is ≥ ``admixture`` on some seed, a ``note`` (the ratio comes from a small
    admixture on a function both learn well: not a finding).
    """
    la, lb = list(getattr(spectrum_a, "labels", []) or []), list(getattr(spectrum_b, "labels", []) or [])
    if not la or la != lb:
        return {"available": False,
                "reason": "the two learners' spectra are not on the same eigenspaces (e.g. a Nyström spectrum), so "
                          "there is no per-eigenspace ratio"}
    ua, ub = _unit_mse(prediction_a), _unit_mse(prediction_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = ub / ua
    order = [int(i) for i in spectrum_a.ranking(skip_constant=True)]
    shared = [i for i in order if ua[i] <= easy and ub[i] <= easy]
    rest = [i for i in order if i not in shared]

    def best_of(levels: list[int]) -> dict | None:
        finite = [i for i in levels if np.isfinite(ratio[i])]
        if not finite:
            return None
        i = max(finite, key=lambda k: ratio[k])
        return {"level": i, "label": la[i], "ratio": float(ratio[i]), "unit_mse_a": float(ua[i]),
                "unit_mse_b": float(ub[i])}

    out: dict = {
        "available": True,
        "per_eigenspace": [{"level": i, "label": la[i], "unit_mse_a": float(ua[i]), "unit_mse_b": float(ub[i]),
                            "ratio_b_over_a": float(ratio[i]), "shared_easy": i in shared} for i in order],
        "shared_easy": [la[i] for i in shared],
        "best": best_of(rest),
        "best_unrestricted": best_of(order),
        "thresholds": {"shared_easy_unit_mse": easy, "admixture_share": admixture},
    }
    if found_coefficients_sq is not None and found_totals is not None:
        c = np.atleast_2d(np.asarray(found_coefficients_sq, dtype=float))
        t = np.atleast_1d(np.asarray(found_totals, dtype=float))
        frac = _fractions(c, t)
        pa = np.array([predicted_mse(prediction_a, ci, ti) for ci, ti in zip(c, t, strict=True)])
        pb = np.array([predicted_mse(prediction_b, ci, ti) for ci, ti in zip(c, t, strict=True)])
        share = frac[:, shared].sum(axis=1) if shared else np.zeros(len(t))
        found = {"composition": [{la[i]: float(f[i]) for i in range(len(la)) if f[i] >= 1e-3} for f in frac],
                 "predicted_mse_a": pa.tolist(), "predicted_mse_b": pb.tolist(),
                 "predicted_ratio": (pb / pa).tolist(), "shared_easy_share": share.tolist()}
        flagged = [i for i, sh in enumerate(share) if shared and sh >= admixture]
        found["admixture_seed_indices"] = flagged
        if flagged:
            which = ", ".join(f"{share[i]:.0%}" for i in flagged)
            found["note"] = (f"on {len(flagged)} of {len(share)} seeds the found function has {which} of its energy "
                             f"in eigenspaces both learners learn well ({', '.join(la[i] for i in shared)}); there its "
                             "contrast ratio comes from a small admixture on top of a shared easy function, which is "
                             "not a finding")
        out["found"] = found
    return out


# ------------------------------------------------------------------------------------------------ a run's overlay
def coefficients_many(spectrum: Any, values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``Spectrum.coefficients_sq`` of F functions at once: values ``(F, N)`` at ``points`` ``(N, d)`` -> ``(F, K)``.

    The same numbers as F calls of ``spectrum.coefficients_sq(values[i], points)``, with the basis built once:
    Funk–Hecke, the least-squares fit on the zonal basis of :func:`learnscope.spherical.harmonic_power` (same
    centres) with F right-hand sides; Nyström, v = values φ / N with φ the eigenvectors on the spectrum's own points,
    else their Nyström extension. Other cases fall back to one call per function.
    """
    from learnscope.spherical import harmonic_dimension, zonal_basis

    f = np.atleast_2d(np.asarray(values, dtype=float))
    x = np.asarray(points, dtype=float)
    n = x.shape[0]
    k = len(np.asarray(spectrum.eigenvalues))
    if spectrum.kind == "nystrom" and getattr(spectrum, "eigenvectors", None) is not None:
        same = spectrum.points is not None and x.shape == spectrum.points.shape and np.array_equal(x, spectrum.points)
        phi = spectrum.eigenvectors if same else spectrum.eigenfunctions(x)
        return (f @ phi / n) ** 2
    dims = [harmonic_dimension(x.shape[1], l) for l in range(k)] if spectrum.kind == "funk_hecke" else None
    if dims is None or sum(dims) > min(n // 2, 3000):
        return np.stack([np.asarray(spectrum.coefficients_sq(fi, x), dtype=float)[:k] for fi in f])
    centres = np.random.default_rng([0, 1])  # harmonic_power's default stream: the same basis
    blocks = [zonal_basis(x, l, centres) for l in range(k)]
    design = np.concatenate([q for q, _ in blocks], axis=1)
    coef, *_ = np.linalg.lstsq(design, f.T, rcond=None)  # (P, F)
    out, start = np.empty((f.shape[0], k)), 0
    for l, (q, m) in enumerate(blocks):
        c = coef[start : start + q.shape[1]]
        out[:, l] = np.maximum(np.einsum("pf,pq,qf->f", c, m, c), 0.0)
        start += q.shape[1]
    return out


def _overlay_spectrum(learner: Any, domain: Any, max_degree: int, samples: int, seed: int, quadrature: bool
                      ) -> tuple[Any, np.ndarray | None]:
    """The learner's spectrum and the standard errors to use (None: :func:`eigenvalue_errors`). With ``quadrature``
    a Nyström spectrum is retaken on ``samples`` points of ``domain.spread_sample`` (its kernel is the one
    :func:`~learnscope.theory.spectra.learner_spectrum` builds), with zero errors."""
    import torch

    from learnscope.theory.spectra import learner_spectrum, nystrom_spectrum

    spec = learner_spectrum(learner, domain, max_degree=max_degree, samples=2 if quadrature else samples, seed=seed)
    if spec.kind != "nystrom" or not quadrature:
        return spec, None
    gen = rng.torch_generator(int(seed), "theory_nystrom_quadrature")
    x = domain.spread_sample(samples, gen, dtype=torch.float64).reshape(samples, -1).numpy()
    spec = nystrom_spectrum(spec.kernel, x)
    return spec, np.zeros(len(spec.eigenvalues))


def run_overlay(
    learner: Any,
    domain: Any,
    functions: Sequence[Sequence[Callable]],
    n_train: Sequence[int],
    measured: Sequence[Sequence[float]],
    *,
    kind: str,
    measure: Callable[[Callable], float],
    quantile: Callable[[np.ndarray], np.ndarray],
    learner_b: Any | None = None,
    measured_b: Sequence[Sequence[float]] | None = None,
    measure_b: Callable[[Callable], float] | None = None,
    seed: int = 0,
    controls: int = CONTROL_COUNT,
    max_degree: int = 10,
    samples: int = 1000,
    points: int = 2000,
    gap: float = ILL_POSED_GAP,
    quadrature: bool = False,
) -> dict:
    """The eigenlearning overlay of one kernel-type run (wave2 §2.3), as a JSON-able dict.

    functions[j][i] : f_{j+1} of seed i (numpy (N, d) -> (N,)); n_train[j] : its few-shot training points;
    measured[j][i] : its measured few-shot MSE (the run's ``gen_mse``); kind : "easiest" | "series" | "contrast";
    measure(g) : the learner's measured few-shot MSE of a control function g at n_train[0] (the run's protocol);
    quantile : the marginal of the controls (u -> value, e.g. the target's quantile function).
    For a contrast also learner_b, measured_b (``gen_mse_b``) and measure_b.

    Returns ``{"spectrum", "n", "ridge", "kappa", "e0", "eigenspaces", "assignment" (not for a contrast), "mse"
    (found + ``controls`` control functions: per point predicted/measured, ``spearman``, ``median_relative_error``),
    "optimality" (not for a contrast), "thresholds"}`` plus, for a contrast, ``"learner_b"`` (κ, E₀, its MSE test
    on the found function and the controls) and ``"contrast"`` (:func:`contrast_overlay`). The spectrum is
    :func:`~learnscope.theory.spectra.learner_spectrum` (Funk–Hecke for dot-product kernels on the sphere, else
    Nyström from ``samples`` points); coefficients are taken on its Nyström points, else on ``points`` spread points.
    ``quadrature``: the domain's ``spread_sample`` is a low-discrepancy set (S², the disc, the circle); the Nyström
    spectrum is then taken on ``samples`` of its points (a far better quadrature than as many random points: the
    disc's two linear eigenvalues come out within 0.5 % instead of ~10 % at 800 points) and its eigenvalues are not
    given i.i.d. standard errors.
    """
    import torch

    from learnscope.theory.eigenlearning import eigenlearning

    spec, errors = _overlay_spectrum(learner, domain, max_degree, samples, seed, quadrature)
    at = getattr(spec, "points", None)
    if at is None:
        gen = rng.torch_generator(int(seed), "theory_points")
        at = domain.spread_sample(points, gen, dtype=torch.float64).reshape(points, -1).numpy()
    at = np.asarray(at, dtype=float)
    preds = {n: eigenlearning(spec, int(n), _ridge_of(learner)) for n in sorted(set(int(n) for n in n_train))}
    p0 = preds[int(n_train[0])]
    ctrl = control_functions(domain, quantile, controls, seed=seed) if controls else []
    callables = [f for per in functions for f in per] + list(ctrl)
    values = np.stack([np.asarray(f(at), dtype=float).reshape(len(at)) for f in callables])  # (F, N)
    v2 = coefficients_many(spec, values, at)
    pairs = list(zip(v2, (values**2).mean(axis=1), strict=True))  # (v² per level, ‖f‖²) per callable
    sizes = [len(per) for per in functions]
    starts = np.cumsum([0, *sizes])
    coef = [pairs[starts[j] : starts[j + 1]] for j in range(len(functions))]
    ctrl_coef = pairs[starts[-1] :]

    def mse_block(pred_of: Callable[[int], Any], meas: Sequence[Sequence[float]], measure_fn: Callable | None,
                  pred0: Any) -> dict:
        found = [{"function": f"f{j + 1}", "seed_index": i, "predicted": predicted_mse(pred_of(j), c, t),
                  "measured": float(meas[j][i])}
                 for j, per in enumerate(coef) for i, (c, t) in enumerate(per)]
        cont = [{"bandwidth": g.bandwidth, "predicted": predicted_mse(pred0, c, t), "measured": float(measure_fn(g))}
                for g, (c, t) in zip(ctrl, ctrl_coef, strict=True)] if measure_fn is not None else []
        both = found + cont
        return {"found": found, "controls": cont,
                **compare_mse([p["predicted"] for p in both], [p["measured"] for p in both]),
                "found_only": compare_mse([p["predicted"] for p in found], [p["measured"] for p in found])}

    out: dict = {
        "learner": learner.describe() if callable(getattr(learner, "describe", None)) else type(learner).__name__,
        "spectrum": {"kind": spec.kind, "levels": len(np.asarray(spec.eigenvalues)), "max_degree": max_degree,
                     "samples": samples if spec.kind != "funk_hecke" else None,
                     "quadrature": bool(quadrature and spec.kind == "nystrom")},
        "n": int(n_train[0]), "ridge": _ridge_of(learner), "kappa": float(p0.kappa), "e0": float(p0.e0),
        "eigenspaces": eigenspace_table(spec, p0, gap=gap, errors=errors),
        "mse": mse_block(lambda j: preds[int(n_train[j])], measured, measure, p0),
        "thresholds": {"ill_posed_gap": gap, "energy_bar": ENERGY_BAR, "zero_eigenvalue": ZERO_EIGENVALUE},
    }
    if kind != "contrast":  # f1 of a contrast is not meant to be the easiest function: no optimality, no slots
        out["optimality"] = optimality(p0, spec, measured[0], [t for _, t in coef[0]],
                                       [predicted_mse(p0, c, t) for c, t in coef[0]])
        out["assignment"] = assignment(spec, [np.array([c for c, _ in per]) for per in coef],
                                       [np.array([t for _, t in per]) for per in coef], gap=gap, errors=errors)
        return out
    if learner_b is None or measured_b is None:
        raise ConfigError("a contrast overlay needs learner_b and its measured MSEs")
    spec_b, errors_b = _overlay_spectrum(learner_b, domain, max_degree, samples, seed, quadrature)
    pb = eigenlearning(spec_b, int(n_train[0]), _ridge_of(learner_b))
    same = list(getattr(spec_b, "labels", []) or []) == list(getattr(spec, "labels", []) or [])
    b: dict = {"learner": learner_b.describe() if callable(getattr(learner_b, "describe", None)) else "custom",
               "spectrum": spec_b.kind, "ridge": _ridge_of(learner_b), "kappa": float(pb.kappa), "e0": float(pb.e0),
               "eigenspaces": eigenspace_table(spec_b, pb, gap=gap, errors=errors_b)}
    if same:  # the found function's coefficients are valid for B's spectrum too
        b["mse"] = mse_block(lambda j: pb, measured_b, measure_b, pb)
    out["learner_b"] = b
    c0 = np.array([c for c, _ in coef[0]])
    t0 = np.array([t for _, t in coef[0]])
    out["contrast"] = contrast_overlay(spec, p0, spec_b, pb, c0, t0)
    if out["contrast"].get("found") is not None:
        meas_ratio = np.asarray(measured_b[0], dtype=float) / np.maximum(np.asarray(measured[0], dtype=float), 1e-300)
        out["contrast"]["found"]["measured_ratio"] = meas_ratio.tolist()
    return out


# ------------------------------------------------------------------------------------------ quick summary (CLI)
def theory_summary(config_path_or_name: Any, n: int | None = None, ridge: float | None = None, *,
                   max_degree: int = 10, samples: int = 1000) -> dict:
    """What the theory predicts for a bias config, without running a search (``learnscope bias theory CONFIG``).

    n : training points (default: the first function's ``search.n_train``, or ``analysis.gen_n_train``);
    ridge : δ in the learner's convention (default: the learner's ``lam``). Returns ``{"config", "learner", "domain",
    "n", "ridge", "kappa", "e0", "eigenspaces" (:func:`eigenspace_table`), "slots" (:func:`assignment_slots` for the
    config's functions, at least 8), "min_unit_mse"}`` and, for a contrast, ``"learner_b"`` and ``"contrast"``
    (:func:`contrast_overlay`). Raises a one-line LearnscopeError for a learner the theory does not cover.
    """
    from learnscope.bias.config import load_config
    from learnscope.domains import make_domain
    from learnscope.learners.registry import make_learner
    from learnscope.theory.eigenlearning import eigenlearning
    from learnscope.theory.spectra import learner_spectrum

    cfg = load_config(config_path_or_name)
    domain = make_domain(cfg.domain)
    settings = cfg.function_settings()
    n = check_positive_int("n", n if n is not None else (cfg.analysis.gen_n_train or settings[0].n_train))
    learners = [make_learner(cfg.learner)] + ([make_learner(cfg.learner_b)] if cfg.learner_b is not None else [])
    out: dict = {"config": str(config_path_or_name), "title": cfg.title, "kind": cfg.kind,
                 "domain": domain.describe(), "n": n}
    preds = []
    for key, learner in zip(("learner", "learner_b"), learners, strict=False):
        delta = float(ridge) if ridge is not None else _ridge_of(learner)
        spec = learner_spectrum(learner, domain, max_degree=max_degree, samples=samples, seed=0)
        pred = eigenlearning(spec, n, delta)
        preds.append((spec, pred))
        entry = {"spec": learner.describe(), "ridge": delta, "spectrum": spec.kind, "kappa": float(pred.kappa),
                 "e0": float(pred.e0), "min_unit_mse": min_unit_mse(pred, spec),
                 "eigenspaces": eigenspace_table(spec, pred)}
        if key == "learner":
            entry["slots"] = assignment_slots(spec, max(len(settings), 8) if cfg.kind == "series" else 1)
        out[key] = entry
    if len(preds) == 2:
        out["contrast"] = contrast_overlay(preds[0][0], preds[0][1], preds[1][0], preds[1][1])
    return out


def _ridge_of(learner: Any) -> float:
    lam = getattr(learner, "lam", None)
    if lam is None:
        raise ConfigError(f"{type(learner).__name__} has no ridge `lam`; pass ridge= explicitly")
    return float(lam)


def _g(v: float) -> str:
    return "–" if v is None or v != v else f"{v:.3g}"


def format_theory_summary(summary: dict, rows: int = 8) -> str:
    """:func:`theory_summary` as plain text for the terminal: per learner κ, E₀ and the ranked eigenspaces (λ,
    multiplicity, L, predicted MSE of a unit function, gap to the next, ties), then where f1, f2, … should lie, and
    for a contrast the predicted ratio per eigenspace and the predicted best contrast."""
    lines = [f"{summary.get('title') or summary['config']}  (n = {summary['n']})"]
    for key, name in (("learner", "learner"), ("learner_b", "learner B")):
        e = summary.get(key)
        if not e:
            continue
        lines.append(f"{name}: {e['spec'].get('name')}  ridge {e['ridge']:g}  spectrum {e['spectrum']}  "
                     f"κ = {_g(e['kappa'])}  E₀ = {_g(e['e0'])}  min MSE of a unit function {_g(e['min_unit_mse'])}")
        lines.append(f"  {'rank':>4}  {'eigenspace':<16}{'λ':>10} {'mult':>5} {'L':>9} {'unit MSE':>9} {'gap':>6}")
        for r in e["eigenspaces"][:rows]:
            tied = " tied" if r.get("tied_with_next") else ""
            lines.append(f"  {r['rank']:>4}  {r['label']:<16}{_g(r['eigenvalue']):>10} {r['multiplicity']:>5} "
                         f"{_g(r['learnability']):>9} {_g(r['unit_mse']):>9} {_g(r['gap_to_next']):>6}{tied}")
        slots = e.get("slots")
        if slots:
            parts = [f"f{s['index']} {s['label']}" + (" (ill-posed: tied)" if s["ill_posed"] else "") for s in slots]
            lines.append("  expected functions: " + ", ".join(parts))
    c = summary.get("contrast")
    if c and c.get("available"):
        lines.append("contrast, predicted MSE ratio B/A of a unit function per eigenspace:")
        lines.append("  " + ", ".join(f"{r['label']} {_g(r['ratio_b_over_a'])}" + ("*" if r["shared_easy"] else "")
                                      for r in c["per_eigenspace"][:rows]))
        b = c.get("best")
        lines.append("  predicted best contrast: " + (f"{b['label']} (ratio {_g(b['ratio'])})" if b else "none")
                     + ("; * = both learn it well, excluded" if c["shared_easy"] else ""))
    elif c:
        lines.append(f"contrast: {c['reason']}")
    return "\n".join(lines)
