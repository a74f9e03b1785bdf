"""learnscope: what does a learner find easy to learn, and which learning rule is a circuit using.

The two applications are subpackages with curated entry points — :mod:`learnscope.bias` (meta-learn the functions
a learner finds easy) and :mod:`learnscope.identify` (name the learning rule from recordings) — over a shared core
exported here: domains, target distributions, learners, circuits and learning rules. Everything is imported on
first use, so ``import learnscope`` stays light.

>>> import learnscope
>>> sphere = learnscope.Sphere(dim=3)
>>> learner = learnscope.RandomFeatureRidge(features=20, lam=1e-3)
"""

from learnscope._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # the two applications
    "bias": "learnscope.bias",
    "identify": "learnscope.identify",
    # input domains and target label distributions
    **dict.fromkeys(["Sphere", "Circle", "Disc", "Hypercube", "FiniteDataset", "SplitDataset", "Mnist01",
                     "make_domain"], "learnscope.domains"),
    **dict.fromkeys(["Uniform", "Gaussian", "Empirical", "QuantileFunction", "make_target"], "learnscope.targets"),
    # learners: fit_predict(x_train, y_train, x_test, *, generator)
    **dict.fromkeys(["Ridge", "KernelRidge", "RandomFeatureRidge", "CircuitLearner", "ModuleLearner",
                     "MushroomBodyLearner", "SpikingLearner", "SmallCNNLearner", "LearnerBase", "make_learner"],
                    "learnscope.learners"),
    # circuits under one protocol, and learning rules = transport × optimiser
    **dict.fromkeys(["MLP", "ConvNet", "MushroomBody", "SpikingLIF", "ConvPool", "make_circuit"],
                    "learnscope.circuits"),
    **dict.fromkeys(["RULES", "make_rule"], "learnscope.plasticity"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["__version__", *_EXPORTS]
