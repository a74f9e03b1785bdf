"""What does a learner find easy to learn? (Dorrell, Yuffa & Latham, ICML 2023.)

Meta-learn the function a learner generalises best from a few examples (Algorithm 1), a series of them in order of
ease, or the function one learner finds easy and another hard; then measure what was found:

>>> from learnscope import Sphere, RandomFeatureRidge, Uniform
>>> from learnscope.bias import MetaMLP, SearchSettings, find_easiest, harmonic_energy
>>> settings = SearchSettings(steps=200, n_train=20, n_test=80, learners_per_step=8, alpha_g=10.0)
>>> result = find_easiest(MetaMLP(3, hidden=150, cos=True), Sphere(dim=3), RandomFeatureRidge(features=20),
...                       Uniform(), settings, seeds=[0])                          # doctest: +SKIP
>>> harmonic_energy(result.function.for_seed(0), d=3, max_degree=4)             # doctest: +SKIP

The functions return results; run directories and reports are written by the CLI.
"""

from learnscope._lazy import lazy_exports

_EXPORTS = {
    # Algorithm 1 and its settings
    **dict.fromkeys(["find_easiest", "find_series", "find_contrast", "meta_train", "SearchSettings", "SearchResult",
                     "FoundFunction"], "learnscope.bias.search"),
    "find_contrast_beyond_shared": "learnscope.bias.beyond_shared",
    **dict.fromkeys(["MetaMLP", "MetaCNN"], "learnscope.bias.metalearner"),
    **dict.fromkeys(["make_distance", "w2_to_target"], "learnscope.bias.distances"),
    # measures of a found function
    **dict.fromkeys(["harmonic_energy", "fourier_energy", "affine_r2", "linear_fit", "overlap_matrix",
                     "generalisation_error", "split_generalisation_error", "paired_generalisation_difference"],
                    "learnscope.bias.measures"),
    "check_labelling": "learnscope.bias.verdict",
    # configs and whole experiments
    **dict.fromkeys(["load_config", "parse_config"], "learnscope.bias.config"),
    **dict.fromkeys(["run_experiment", "measure_functions", "ExperimentResult"], "learnscope.bias.experiment"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
