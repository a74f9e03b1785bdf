"""What an experiment knows so far: the route's estimate, trials used, and the session that comes next."""

from __future__ import annotations

from dataclasses import dataclass

from learnscope.animal.config import AnimalConfig
from learnscope.animal.session import SessionPlan, SessionRecord


def trials_used(log: list[SessionRecord]) -> int:
    return int(sum(r.trials for r in log))


def next_plan(cfg: AnimalConfig, route, log: list[SessionRecord]) -> SessionPlan | None:
    """The next session within the budget, or None when the route has finished or the budget is spent."""
    left = cfg.budget - trials_used(log)
    plan = route.plan(log, budget_left=left)
    if plan is None or plan.trials > left:
        return None
    return plan


@dataclass
class Status:
    cfg: AnimalConfig
    log: list[SessionRecord]
    estimate: object
    next: SessionPlan | None
    route: object = None

    @property
    def finished(self) -> bool:
        return self.next is None

    def to_dict(self) -> dict:
        return {"sessions": len(self.log), "trials": trials_used(self.log), "budget": self.cfg.budget,
                "finished": self.finished, "next_session": None if self.next is None else
                {"index": self.next.index, "trials": self.next.trials}, "estimate": self.estimate.to_dict(),
                "f1_defined": self.estimate.f1 is not None}


def experiment_status(cfg: AnimalConfig, log: list[SessionRecord]) -> Status:
    route = cfg.make_route()
    return Status(cfg, log, route.estimate(log), next_plan(cfg, route, log), route)


def _stage_line(name: str, e) -> str:
    if name == "iterated":
        if not e.generations:
            return "iterated learning: no generation yet"
        succ = ", ".join(f"{c:.2f}" for c in e.successive[-4:]) or "–"
        return (f"iterated learning: {e.generations} generation{'s' if e.generations != 1 else ''}, {e.trials} "
                f"trials; successive-generation "
                f"correlation {succ}; noise amplification E0 ≈ {e.noise_amplification:.2f}")
    if name == "surrogate":
        agree = "–" if e.ensemble_agreement is None else f"{e.ensemble_agreement:.2f}"
        extra = (f"; a series of {len(e.series)} functions" if len(e.series) > 1 else "") + (
            "; a contrast" if e.contrast is not None else "")
        return f"surrogate: {e.sessions} sessions, {e.trials} trials; ensemble agreement on f1 {agree}{extra}"
    return f"evolution strategies: {e.iterations} iterations, {e.trials} trials"


def format_status(st: Status) -> str:
    e = st.estimate
    lines = [f"{len(st.log)} sessions, {trials_used(st.log)} of {st.cfg.budget} trials used (route {st.cfg.route})"]
    for name, stage in e.stages.items():
        lines.append(_stage_line(name, stage))
    if e.validation is not None and e.validation.ratio is not None:
        v = e.validation
        lines.append(f"validation: f1 / control MSE ratio {v.ratio:.2f} (95 % CI {v.ci[0]:.2f}–{v.ci[1]:.2f}), "
                     f"{v.pairs} pairs, {v.trials} trials")
    lines.append("f1: converged" if e.converged else "f1: not converged")
    if st.next is None:
        lines.append("next session: none (the route has finished or the budget is spent)")
    else:
        lines.append(f"next session: {st.next.index} ({st.next.trials} trials"
                     f"{', read-out' if st.next.extra.get('readout') else ''})")
    return "\n".join(lines)
