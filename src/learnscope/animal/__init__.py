"""The inductive bias of a learner you cannot differentiate: an animal, or any black box that learns from a few
labelled stimuli and then answers probes.

Algorithm 1 of Dorrell et al. needs ∂L_g/∂θ through the learner's training; an animal gives only responses, and
every inner "training" costs real trials on a naive learner. The paper claims an animal application but its
method could not be read; the routes here are ours, built from related work (see the README's "Animals"):

- :mod:`~learnscope.animal.session` — one session = one naive learner: train block, probe block, responses;
- :mod:`~learnscope.animal.responses` — graded and binary-choice response models, lapses, labels from responses;
- :mod:`~learnscope.animal.simulated` — :class:`SimulatedAnimal` hides any learnscope learner behind the
  black-box protocol, and :class:`TrialBudget` counts trials;
- :mod:`~learnscope.animal.iterated` — route 1, iterated learning (Kalish, Griffiths & Lewandowsky 2007): a
  power iteration on the learning operator that converges to the most learnable non-constant eigenfunction;
- :mod:`~learnscope.animal.surrogate` — route 2, a differentiable learner family fitted to the sessions by maximum
  likelihood, then Algorithm 1 on the fit (:mod:`~learnscope.animal.families`);
- :mod:`~learnscope.animal.es` — route 3, antithetic evolution strategies, one session per perturbation;
- :mod:`~learnscope.animal.validation` — a paired test of f1 against controls with the same marginal;
- :mod:`~learnscope.animal.staged` — routes in sequence on one session log; :mod:`~learnscope.animal.log` — the
  experiment folder a lab works with (``learnscope animal new / plan / record / status``).
"""

from learnscope._lazy import lazy_exports

__all__ = [
    "ESSettings",
    "EvolutionStrategies",
    "Surrogate",
    "SurrogateSettings",
    "Validation",
    "ValidationSettings",
    "BinaryChoice",
    "Graded",
    "IteratedLearning",
    "IteratedSettings",
    "SessionPlan",
    "SessionRecord",
    "SimulatedAnimal",
    "TrialBudget",
    "run_in_process",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "ESSettings": "learnscope.animal.es",
    "EvolutionStrategies": "learnscope.animal.es",
    "Surrogate": "learnscope.animal.surrogate",
    "SurrogateSettings": "learnscope.animal.surrogate",
    "Validation": "learnscope.animal.validation",
    "ValidationSettings": "learnscope.animal.validation",
    "BinaryChoice": "learnscope.animal.responses",
    "Graded": "learnscope.animal.responses",
    "IteratedLearning": "learnscope.animal.iterated",
    "IteratedSettings": "learnscope.animal.iterated",
    "SessionPlan": "learnscope.animal.session",
    "SessionRecord": "learnscope.animal.session",
    "SimulatedAnimal": "learnscope.animal.simulated",
    "TrialBudget": "learnscope.animal.simulated",
    "run_in_process": "learnscope.animal.loop",
})
