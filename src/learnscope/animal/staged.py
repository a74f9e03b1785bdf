"""Routes in sequence on one session log: e.g. iterated learning first (a model-free f1, and valid data for the
surrogate), then the surrogate (everything else), then validation of the result on the animal."""

from __future__ import annotations

from dataclasses import dataclass, field

from learnscope.animal.session import SessionPlan, SessionRecord
from learnscope.animal.validation import Validation


@dataclass
class StagedEstimate:
    """Each stage's estimate (``stages``, by route name); f1 and convergence are the last search stage's."""

    stages: dict
    trials: int
    f1: object | None
    converged: bool
    warnings: list[str] = field(default_factory=list)
    validation: object | None = None

    def to_dict(self) -> dict:
        return {"trials": self.trials, "converged": self.converged, "warnings": self.warnings,
                "stages": {k: v.to_dict() for k, v in self.stages.items()},
                "validation": None if self.validation is None else self.validation.to_dict()}


class Staged:
    """``stages`` (route objects) run one after another; ``budgets`` caps each stage's trials (None: no cap)."""

    route = "staged"

    def __init__(self, stages: list, budgets: list[int | None] | None = None):
        self.stages = stages
        self.budgets = budgets or [None] * len(stages)
        self.references = stages[0].references if hasattr(stages[0], "references") else None
        self.domain = stages[0].domain

    @property
    def search_stages(self) -> list:
        return [s for s in self.stages if not isinstance(s, Validation)]

    def _prepare(self, stage, log: list[SessionRecord]) -> None:
        """Give the validation stage the f1 it tests: the last search stage's, from the sessions before validation
        began (so that the plan of every validation session is the same whether the loop runs in one process or
        through files, one session at a time)."""
        if isinstance(stage, Validation) and stage.f1 is None:
            searched = [r for r in log if r.plan.route != stage.route]
            stage.f1 = self.search_stages[-1].estimate(searched).f1

    def plan(self, log: list[SessionRecord], budget_left: int | None = None) -> SessionPlan | None:
        for stage, cap in zip(self.stages, self.budgets, strict=True):
            used = sum(r.trials for r in log if r.plan.route == stage.route)
            left = budget_left
            if cap is not None:
                left = cap - used if left is None else min(left, cap - used)
            if left is not None and left <= 0:
                continue
            self._prepare(stage, log)
            p = stage.plan(log, budget_left=left)
            if p is not None and (left is None or p.trials <= left):
                return p
        return None

    def estimate(self, log: list[SessionRecord]) -> StagedEstimate:
        searched = [r for r in log if r.plan.route != "validation"]  # the f1 the validation stage tested
        stages = {}
        for stage in self.search_stages:
            stages[stage.route] = stage.estimate(searched)
        last = stages[self.search_stages[-1].route]
        validation = None
        for stage in self.stages:
            if isinstance(stage, Validation):
                self._prepare(stage, log)
                validation = stage.estimate(log)
        warnings = [w for e in stages.values() for w in e.warnings]
        return StagedEstimate(stages, int(sum(r.trials for r in log)), last.f1, bool(last.converged), warnings,
                              validation)
