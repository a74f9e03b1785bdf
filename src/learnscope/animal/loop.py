"""The experiment loop in one process, against a simulated animal: plan → run the session → record → …

A real lab runs the same loop through files (``learnscope animal plan / record / status``); both go through the
route's ``plan`` and ``estimate`` on the same session log, so the same seed gives the same sessions.
"""

from __future__ import annotations

import numpy as np

from learnscope import rng as streams
from learnscope.animal.session import SessionRecord
from learnscope.animal.simulated import BlackBoxLearner, TrialBudget


def response_rng(seed: int, session: int) -> np.random.Generator:
    """The simulated animal's randomness in one session (its fresh learner and its response noise)."""
    return streams.numpy_rng(seed, "animal responses", session)


def run_in_process(route, animal: BlackBoxLearner, budget: TrialBudget, seed: int = 0,
                   log: list[SessionRecord] | None = None, progress=None) -> list[SessionRecord]:
    """Run ``route`` (``plan(log, budget_left) -> SessionPlan | None``) on ``animal`` until it stops or the next
    session would exceed ``budget``; returns the session log (continuing ``log`` if given)."""
    log = list(log or [])
    while True:
        plan = route.plan(log, budget_left=budget.left)
        if plan is None or not budget.can_afford(plan.trials):
            return log
        budget.charge(plan.trials)
        responses = animal.run_session(plan.train_x, plan.train_y, plan.probe_x, repeats=plan.repeats,
                                       rng=response_rng(seed, plan.index))
        log.append(SessionRecord(plan, responses))
        if progress is not None:
            progress(plan, budget)
