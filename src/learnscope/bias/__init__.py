"""Meta-learning the inductive bias of a learner: which functions does it find easy to learn."""
