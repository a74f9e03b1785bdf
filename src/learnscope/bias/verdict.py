"""Result checks of a bias run: is a found labelling a real answer, or did the search diverge or collapse?

:func:`check_labelling` compares a labelling with simple baselines — its distance to the target against that of
all-zero labels, its spread against the target's, its roughness (noise), and the learner's few-shot error against
predicting the mean (:func:`mean_predictor_mse`) — and names the verdict (``ok``, ``diverged``, ``collapsed``)
with one-line reasons. The thresholds are module constants, stated with their derivation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from learnscope.bias.measures import points_and_values
from learnscope.validation import as_finite_array, check_positive_int

#: A labelling is *collapsed* when its W2 distance to the target is above this fraction of that of all-zero labels
#: — its distribution term W2² is over half theirs — and its std below this fraction of the target's (the same point,
#: c = 1 − 1/√2, of the family of shrunk targets; see :func:`check_labelling`).
COLLAPSE_W2_FRACTION = 1 / math.sqrt(2)
COLLAPSE_STD_FRACTION = 1 - 1 / math.sqrt(2)
#: A labelling has *blown up* (the search diverged) when its std is above this multiple of the target's and it
#: is farther from the target than all-zero labels.
BLOWUP_FACTOR = 2.0
#: A labelling is *noise* (the search diverged) when its nearest-neighbour roughness reaches this value.
NOISE_ROUGHNESS = 0.5
#: The few-shot error is *worse than the mean predictor* when it exceeds it by more than this many s.e.m.
BASELINE_SEMS = 2.0


def nearest_neighbour_roughness(points: Any, values: Any) -> float:
    """How much of a function's variance changes between neighbouring points: values on ``(N, d)`` points → ρ.

    .. math:: \\rho = \\frac{\\frac1N \\sum_i (f(x_i) - f(x_{\\mathrm{nn}(i)}))^2}{2\\,\\mathrm{Var}_i f(x_i)}

    with nn(i) the nearest other point (Euclidean, a k-d tree). Values independent of position give E ρ = 1 (the
    pair is then two independent draws, E(a − b)² = 2 Var); a function with Lipschitz constant L gives
    ρ ≤ L² h²/(2 Var f), with h the RMS nearest-neighbour distance, so ρ → 0 as the points get denser. NaN when f
    is constant on the points.
    """
    from scipy.spatial import cKDTree

    x, v = points_and_values(points, values)
    var = float(v.var())
    if not var > 0.0:
        return float("nan")
    _, idx = cKDTree(x).query(x, k=2)
    return float(np.mean((v - v[idx[:, 1]]) ** 2) / (2.0 * var))


def mean_predictor_mse(values: Any, n_train: int, test: Any = None, pool_size: int | None = None) -> float:
    """Closed-form test MSE of the learner that predicts the mean of its ``n_train`` training labels.

    Fresh draws (``test`` None: train and test points from the distribution the ``values`` sample):

    .. math:: \\mathbb E(\\bar y_{tr} - y)^2 = \\sigma^2 (1 + 1/n),

    the variance of a test label plus that of the mean of n independent ones. On a fixed split (``test`` a boolean
    mask of the test rows of ``values``, training rows drawn without replacement from the ``pool_size`` others):
    :math:`\\sigma_{te}^2 + (\\mu_{te} - \\mu_{pool})^2 + \\frac{\\sigma_{pool}^2}{n}\\frac{N - n}{N - 1}`.
    """
    v = as_finite_array("values", values)
    n = check_positive_int("n_train", n_train)
    if test is None:
        return float(v.var() * (1.0 + 1.0 / n))
    mask = np.asarray(test, dtype=bool)
    pool, te = v[~mask], v[mask]
    N = len(pool) if pool_size is None else int(pool_size)
    shrink = (N - n) / (N - 1) if N > 1 else 0.0
    return float(te.var() + (te.mean() - pool.mean()) ** 2 + pool.var() / n * shrink)


def check_labelling(
    values: Any,
    points: Any,
    target: Any = None,
    *,
    gen_mse: float = float("nan"),
    gen_sem: float = float("nan"),
    baseline_mse: float = float("nan"),
    diverged_at: int | None = None,
    diverged_what: str | None = None,
    label: str = "f",
    baseline_warns: bool = True,
) -> tuple[str, list[str], dict]:
    """Judge one found labelling against simple baselines: ``(status, warnings, numbers)``.

    ``values`` ``(N,)`` are the labelling on the evaluation ``points`` ``(N, d)``; ``target`` the label distribution
    the search pinned them to (None for a spread term such as ``neg_std``, which has none). ``status`` is ``"ok"``,
    ``"diverged"`` or ``"collapsed"``; ``warnings`` are one-line strings starting with ``label``; ``numbers`` holds
    every quantity compared.

    Diverged (the search blew up; the function is not a result):
      * the search met non-finite labels or loss (``diverged_at``: that step), or the values are not finite;
      * the labels are noise at the points' spacing: :func:`nearest_neighbour_roughness` ρ ≥ 1/2, i.e. half the
        function's variance changes between nearest neighbours (ρ = 1 for values independent of position, ≈ 0
        for any smooth function on a dense set; the bundled configs give ρ ≤ 0.02). This is what a huge meta
        learning rate gives: ``search.lr = 1e6`` saturates a cos output into ±1 noise (ρ ≈ 1.0);
      * the labels blew up past the target (below).

    Collapsed (the distribution term lost to the generalisation term; a near-constant labelling is trivially easy):
      W₂² > W₂(0)²/2 and σ < (1 − 1/√2) σ* ≈ 0.29 σ*. W₂ is the exact 1-D 2-Wasserstein distance of the labels'
      empirical law to the target — W₂² is the search's own ``w2`` term —, W₂(0)² = E[Y²] that of all-zero labels
      (the closed form of the target's second moment) and σ* the target's std. So a collapsed labelling has closed
      less than half of the gap, in the search's own distance, between all-zero labels and the target. For labels
      distributed as the target shrunk by c about a zero mean, W₂ = (1 − c) σ* and W₂(0) = σ*, and both conditions
      hold exactly when c < 1 − 1/√2. (Found labellings of the bundled configs have σ ≥ 0.46 σ* and W₂ ≤ 0.54 W₂(0):
      the later, degree-2 functions of the Fig 3 kernel series are the least spread; collapsed searches, e.g. a
      tiny ``alpha_d``, give σ ≤ 0.2 σ* and W₂ ≥ 0.8 W₂(0).) With no target only a constant labelling
      (σ ≤ 10⁻⁶ (1 + |mean|)) counts as collapsed.

    Blown up (diverged): σ > 2σ* and W₂ > W₂(0): spread twice the target's and farther from it than all-zero
      labels (the shrunk-target family at c = 2 has W₂ = σ* = W₂(0)).

    Warned (status unchanged): the learner's few-shot error ``gen_mse`` exceeds ``baseline_mse`` (the closed-form
    error of predicting the training-label mean, :func:`mean_predictor_mse`) by more than 2 ``gen_sem`` (the
    estimate's own noise; the baseline is exact). With ``baseline_warns=False`` (the later functions of a series,
    confined to what is orthogonal to the earlier ones, where a learner may have no capacity left: Fig 3's third
    function of ridge on the disc) this is recorded as ``numbers["note"]`` instead of a warning.
    """
    v = np.asarray(values, dtype=np.float64)
    x = np.asarray(points, dtype=np.float64)
    nums: dict[str, Any] = {"diverged_at_step": diverged_at, "diverged_what": diverged_what}
    finite = bool(np.isfinite(v).all())
    sigma = float(v.std()) if finite else float("nan")
    mean = float(v.mean()) if finite else float("nan")
    nums |= {"label_mean": mean, "label_std": sigma}
    if target is not None:
        from learnscope.bias.distances import w2_to_target

        t_std, w2_zero = float(target.std), math.sqrt(float(target.second_moment()))
        w2 = math.sqrt(float(w2_to_target(torch.as_tensor(v[None]), target)[0])) if finite else float("nan")
        nums |= {"target_mean": float(target.mean), "target_std": t_std, "w2_to_target": w2,
                 "w2_zero_labels": w2_zero}
    rho = nearest_neighbour_roughness(x, v) if finite and sigma > 0 else float("nan")
    nums |= {"roughness": rho, "gen_mse": gen_mse, "gen_sem": gen_sem, "mse_predict_mean": baseline_mse}

    status, warnings = "ok", []
    if diverged_at is not None:
        status = "diverged"
        kept = f"the function kept is that of step {diverged_at - 1}" if diverged_at > 0 else "the initial one"
        warnings.append(f"{label}: the search diverged (non-finite {diverged_what or 'loss'} at step {diverged_at};"
                        f" {kept}); lower search.lr")
    elif not finite:
        status = "diverged"
        warnings.append(f"{label}: the search diverged (non-finite values on the evaluation points)")
    elif rho >= NOISE_ROUGHNESS:
        status = "diverged"
        warnings.append(f"{label}: the search diverged — the labels are noise at the evaluation points' spacing "
                        f"(nearest-neighbour roughness {rho:.2f} ≥ {NOISE_ROUGHNESS}; 1 for values independent of "
                        "position); lower search.lr")
    elif target is not None and sigma > BLOWUP_FACTOR * t_std and w2 > w2_zero:
        status = "diverged"
        warnings.append(f"{label}: the search diverged — label std {sigma:.3g} is over {BLOWUP_FACTOR:g}× the "
                        f"target's {t_std:.3g} and the distance to the target (W2 {w2:.3g}) exceeds that of all-zero "
                        f"labels ({w2_zero:.3g}); lower search.lr")
    elif target is not None and sigma < COLLAPSE_STD_FRACTION * t_std and w2 > COLLAPSE_W2_FRACTION * w2_zero:
        status = "collapsed"
        warnings.append(f"{label}: collapsed — label std {sigma:.3g} vs {t_std:.3g} for the target; distance to "
                        f"the target W2 {w2:.3g} vs {w2_zero:.3g} for all-zero labels (W2² over half theirs); raise "
                        "search.alpha_d or lower search.alpha_g")
    elif target is None and sigma <= 1e-6 * (1.0 + abs(mean)):
        status = "collapsed"
        warnings.append(f"{label}: collapsed — the labelling is constant ({mean:.3g} everywhere)")
    worse = (status != "diverged" and math.isfinite(gen_mse) and math.isfinite(baseline_mse)
             and gen_mse > baseline_mse + BASELINE_SEMS * (gen_sem if math.isfinite(gen_sem) else 0.0))
    nums["worse_than_mean_predictor"] = bool(worse)
    if worse:
        text = (f"{label}: the learner's few-shot error {gen_mse:.3g} ± {gen_sem:.2g} is worse than predicting the "
                f"mean of its training labels ({baseline_mse:.3g})")
        if baseline_warns:
            warnings.append(text)
        else:
            nums["note"] = (text + " — for a later function of a series this can be the learner's capacity (a "
                            "no-bias ridge in d dimensions can learn only d orthogonal functions), not a failed search")
    nums["status"] = status
    return status, warnings, nums
