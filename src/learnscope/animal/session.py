"""One session of a black-box learner: a train block of labelled stimuli, then a probe block of unlabelled ones.

A session is one "inner training" of Algorithm 1 and needs a naive learner: a new animal, or a new stimulus set or
context for the same animal (the learning-set design). ``naive`` records which.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from learnscope.errors import ConfigError, ShapeError
from learnscope.validation import as_finite_array, check_positive_int

NAIVE_KINDS = ("new_animal", "new_context", "simulated")


def _array(name: str, a: object, ndim: int) -> np.ndarray:
    arr = as_finite_array(name, a)
    if arr.ndim != ndim:
        raise ShapeError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    return arr


@dataclass(frozen=True)
class SessionPlan:
    """What one session shows the learner.

    index : session number in the experiment (0, 1, …). route : the route that planned it ("iterated", …).
    train_x : (n, d) training stimuli in domain coordinates. train_y : (n,) their labels in [−1, 1] (the reward
        contingency: sign, or magnitude for graded feedback).
    probe_x : (m, d) probe stimuli, shown without feedback, each ``repeats`` times.
    generation : the iterated-learning generation (None for other routes). naive : see ``NAIVE_KINDS``.
    """

    index: int
    route: str
    train_x: np.ndarray
    train_y: np.ndarray
    probe_x: np.ndarray
    repeats: int = 1
    generation: int | None = None
    naive: str = "new_context"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        tx = _array("train_x", self.train_x, 2)
        ty = _array("train_y", self.train_y, 1)
        px = _array("probe_x", self.probe_x, 2)
        if tx.shape[0] != ty.shape[0]:
            raise ShapeError(f"train_x has {tx.shape[0]} stimuli but train_y {ty.shape[0]} labels")
        if px.shape[1] != tx.shape[1]:
            raise ShapeError(f"probe_x has {px.shape[1]} coordinates per stimulus, train_x {tx.shape[1]}")
        check_positive_int("repeats", self.repeats)
        if self.naive not in NAIVE_KINDS:
            raise ConfigError(f"naive must be one of {', '.join(NAIVE_KINDS)}, got {self.naive!r}")
        for name, value in (("train_x", tx), ("train_y", ty), ("probe_x", px)):
            object.__setattr__(self, name, value)

    @property
    def trials(self) -> int:
        """Trials this session costs: one per training stimulus plus ``repeats`` per probe."""
        return int(self.train_x.shape[0] + self.probe_x.shape[0] * self.repeats)


@dataclass(frozen=True)
class SessionRecord:
    """A planned session with the learner's responses, ``(m, repeats)`` (graded values, or 0/1 choices)."""

    plan: SessionPlan
    responses: np.ndarray

    def __post_init__(self) -> None:
        r = _array("responses", self.responses, 2)
        want = (self.plan.probe_x.shape[0], self.plan.repeats)
        if r.shape != want:
            raise ShapeError(f"session {self.plan.index}: responses have shape {r.shape}, expected {want} "
                             "(probes × repeats)")
        object.__setattr__(self, "responses", r)

    @property
    def trials(self) -> int:
        return self.plan.trials
