"""Theory of kernel-like learners: spectra and eigenlearning's closed-form predictions.

What a kernel ridge learner finds easy is predicted in closed form by its kernel's eigen-decomposition
(Simon et al., "The eigenlearning framework", 2021/2023). This package computes that prediction so that a search's
result can be read against it:

* :mod:`~learnscope.theory.profiles` — angular profiles k(t), t = x·x′, of learnscope's kernels on the unit sphere
  (arc-cosine 0/1, ReLU NNGP/NTK, RBF, linear) matching ``learners.kernels`` at unit inputs.
* :mod:`~learnscope.theory.spectra` — :class:`Spectrum`: eigenvalues per eigenspace and multiplicities, by the
  Funk–Hecke formula for rotation-invariant kernels on S^{d−1} (:func:`funk_hecke_spectrum`) or by Nyström on
  domain samples for anything else (:func:`nystrom_spectrum`); :func:`learner_spectrum` picks one for a learner.
* :mod:`~learnscope.theory.eigenlearning` — κ, learnabilities L_i, the overfitting coefficient E₀ and the
  predicted few-shot test MSE of any function from its energy per eigenspace (:func:`eigenlearning`).

Used by the bias reports (the theory's ranking of eigenspaces beside the found functions, predicted vs measured
few-shot MSE, the search's optimality ratio), by ``learnscope bias theory`` for a quick look, and by the animal
route's planner (L₂/L₁ is the iterated-learning convergence rate per generation, E₀ the noise amplification).
Plain numpy/scipy; torch only to evaluate a learner's own kernel.

Conventions: eigenvalues are w.r.t. the domain's probability measure (K_XX ≈ Σ λ_i φ_i(X)φ_i(X)ᵀ, E φ_i² = 1) and
the ridge δ is the learner's own ``lam``, added to K_XX unscaled by n.

>>> from learnscope.theory import arccos_profile, funk_hecke_spectrum, eigenlearning
>>> spec = funk_hecke_spectrum(arccos_profile(1), d=3, max_degree=40)
>>> pred = eigenlearning(spec, n=20, ridge=1e-3)
>>> [round(float(x), 3) for x in pred.learnability[:3]]
[0.998, 0.996, 0.976]
"""

# Eager imports: the function ``eigenlearning`` must shadow the submodule of the same name on the package.
from learnscope.theory.eigenlearning import Prediction, eigenlearning, find_kappa, learner_prediction
from learnscope.theory.profiles import (
    PROFILES,
    arccos_profile,
    linear_profile,
    profile_of,
    rbf_profile,
    relu_nngp_profile,
    relu_ntk_profile,
)
from learnscope.theory.spectra import Spectrum, funk_hecke_spectrum, learner_spectrum, nystrom_spectrum

__all__ = [
    "PROFILES",
    "Prediction",
    "Spectrum",
    "arccos_profile",
    "eigenlearning",
    "find_kappa",
    "funk_hecke_spectrum",
    "learner_prediction",
    "learner_spectrum",
    "linear_profile",
    "nystrom_spectrum",
    "profile_of",
    "rbf_profile",
    "relu_nngp_profile",
    "relu_ntk_profile",
]
