"""A simulated animal: any learnscope learner behind the black-box protocol, and the trial budget every route obeys.

The routes of :mod:`learnscope.animal` see a learner only through :class:`BlackBoxLearner` — ``run_session``
returns responses — never its parameters, gradients or kernel: exactly what a lab has of an animal.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from learnscope.animal.responses import ResponseModel, make_response
from learnscope.errors import LearnscopeError
from learnscope.validation import check_positive_int


@runtime_checkable
class BlackBoxLearner(Protocol):
    """Anything that learns from a few labelled stimuli and then answers probes."""

    response: ResponseModel

    def run_session(self, train_x: np.ndarray, train_y: np.ndarray, probe_x: np.ndarray, *, repeats: int,
                    rng: np.random.Generator) -> np.ndarray:
        """One naive learner: train on ``(train_x (n, d), train_y (n,))``, answer ``probe_x (m, d)`` ``repeats``
        times each -> responses ``(m, repeats)``."""
        ...


class SimulatedAnimal:
    """A learnscope learner (kernel, ridge, mushroom body, trained MLP, spiking net, a user's module) as an animal.

    Each session draws a fresh learner (the learner's own randomness comes from ``rng``), trains it on the train
    block and answers every probe ``repeats`` times through ``response`` (:mod:`learnscope.animal.responses`).
    The learner is held in a closure: routes cannot reach it.
    """

    def __init__(self, learner: object, response: str | dict | ResponseModel = "graded",
                 dtype: torch.dtype = torch.float64):
        if not hasattr(learner, "fit_predict"):
            raise LearnscopeError(f"SimulatedAnimal needs a learner with fit_predict, got {type(learner).__name__}")
        self.response = make_response(response)

        def predict(train_x: np.ndarray, train_y: np.ndarray, probe_x: np.ndarray, seed: int) -> np.ndarray:
            g = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                pred = learner.fit_predict(torch.tensor(train_x, dtype=dtype)[None],
                                           torch.tensor(train_y, dtype=dtype)[None],
                                           torch.tensor(probe_x, dtype=dtype)[None], generator=g)
            return pred[0].to(torch.float64).numpy()

        self._predict = predict
        self._description = getattr(learner, "name", type(learner).__name__)

    def run_session(self, train_x: np.ndarray, train_y: np.ndarray, probe_x: np.ndarray, *, repeats: int,
                    rng: np.random.Generator) -> np.ndarray:
        pred = self._predict(np.asarray(train_x), np.asarray(train_y), np.asarray(probe_x),
                             int(rng.integers(2**63 - 1)))
        return self.response.respond(pred, check_positive_int("repeats", repeats), rng)

    def __repr__(self) -> str:
        return f"SimulatedAnimal(<hidden {self._description}>, response={self.response!r})"


class BudgetExhausted(LearnscopeError):
    """A session would take the experiment past its trial budget."""


class TrialBudget:
    """Counts trials; ``charge`` refuses a session that would exceed ``limit`` (None: no limit)."""

    def __init__(self, limit: int | None = None):
        self.limit = None if limit is None else check_positive_int("trial budget", limit)
        self.used = 0

    def can_afford(self, trials: int) -> bool:
        return self.limit is None or self.used + trials <= self.limit

    def charge(self, trials: int) -> None:
        if not self.can_afford(trials):
            raise BudgetExhausted(f"a session of {trials} trials would exceed the budget "
                                  f"({self.used} of {self.limit} used)")
        self.used += trials

    @property
    def left(self) -> int | None:
        return None if self.limit is None else self.limit - self.used
