"""Validation on the animal: is the found f1 really easier for it than a control with the same marginal?

Pairs of sessions share their training and probe stimuli; one trains on f1's labels, the other on a control
labelling — a random smooth function — both rank-transformed to U[−1, 1] on the training stimuli, so the two have
the same marginal. Each session's error is the mean squared difference between its probe labels and the labelling's
value at the probes (mapped through the same rank transform). The report is the ratio of mean errors, f1 over
control, with a 95 % bootstrap interval over pairs (seeded), and the trials it cost.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from learnscope import rng as streams
from learnscope.animal.labellings import on_training_marginal, random_labelling, rank_to_uniform
from learnscope.animal.responses import ResponseModel
from learnscope.animal.session import SessionPlan, SessionRecord
from learnscope.validation import check_keys, check_scalar

ROUTE = "validation"


@dataclass(frozen=True)
class ValidationSettings:
    pairs: int = 10
    n_train: int = 20
    n_probe: int = 20
    repeats: int = 1
    labelling_scale: float = 1.5
    features: int = 50
    bootstrap: int = 2000

    def __post_init__(self) -> None:
        for key in ("pairs", "n_train", "n_probe", "repeats", "features", "bootstrap"):
            check_scalar(f"validation.{key}", getattr(self, key), int, 1)
        check_scalar("validation.labelling_scale", self.labelling_scale, float, 0, closed="neither")

    @property
    def trials_per_session(self) -> int:
        return self.n_train + self.n_probe * self.repeats


def validation_settings(table: dict) -> ValidationSettings:
    check_keys(table, [f.name for f in fields(ValidationSettings)], "key in [validation]")
    return ValidationSettings(**table)


@dataclass
class ValidationResult:
    pairs: int
    trials: int
    ratio: float | None
    ci: tuple[float, float] | None
    mse_f1: float | None
    mse_control: float | None

    def to_dict(self) -> dict:
        return {"route": ROUTE, "pairs": self.pairs, "trials": self.trials, "mse_ratio": self.ratio,
                "ci95": None if self.ci is None else list(self.ci), "mse_f1": self.mse_f1,
                "mse_control": self.mse_control}


class Validation:
    """Plans the paired sessions for ``f1`` (a callable ``x (N, d) -> (N,)``, set before planning)."""

    route = ROUTE

    def __init__(self, domain, response: ResponseModel, settings: ValidationSettings | None = None, seed: int = 0):
        self.domain, self.response, self.seed = domain, response, seed
        self.settings = settings or ValidationSettings()
        self.f1 = None

    def _stimuli(self, purpose: str, index: int, n: int) -> np.ndarray:
        return self.domain.sample(n, streams.torch_generator(self.seed, purpose, index), torch.float64).numpy()

    def _functions(self, pair: int):
        s = self.settings
        control = random_labelling(streams.numpy_rng(self.seed, "animal validation control", pair),
                                    self.domain.dim, s.labelling_scale, s.features)
        return self.f1, control

    def plan(self, log: list[SessionRecord], budget_left: int | None = None) -> SessionPlan | None:
        s = self.settings
        own = [r for r in log if r.plan.route == ROUTE]
        k = len(own)
        if self.f1 is None or k >= 2 * s.pairs or (budget_left is not None and budget_left < s.trials_per_session):
            return None
        pair, which = divmod(k, 2)
        f = self._functions(pair)[which]
        train_x = self._stimuli("animal validation train", pair, s.n_train)
        probe_x = self._stimuli("animal validation probes", pair, s.n_probe)
        return SessionPlan(index=len(log), route=ROUTE, train_x=train_x, train_y=rank_to_uniform(f(train_x)),
                           probe_x=probe_x, repeats=s.repeats,
                           extra={"pair": pair, "labelling": ("f1", "control")[which]})

    def _error(self, record: SessionRecord, f) -> float:
        target = on_training_marginal(f(record.plan.train_x), f(record.plan.probe_x))
        return float(np.mean((self.response.labels(record.responses) - target) ** 2))

    def estimate(self, log: list[SessionRecord]) -> ValidationResult:
        own = [r for r in log if r.plan.route == ROUTE]
        trials = int(sum(r.trials for r in own))
        n = len(own) // 2
        if n == 0 or self.f1 is None:
            return ValidationResult(n, trials, None, None, None, None)
        err = np.array([[self._error(own[2 * j + w], self._functions(j)[w]) for w in (0, 1)] for j in range(n)])
        ratio = float(err[:, 0].mean() / err[:, 1].mean())
        rng = streams.numpy_rng(self.seed, "animal validation bootstrap")
        idx = rng.integers(0, n, (self.settings.bootstrap, n))
        boot = err[idx, 0].mean(1) / err[idx, 1].mean(1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        return ValidationResult(n, trials, ratio, (float(lo), float(hi)), float(err[:, 0].mean()),
                                float(err[:, 1].mean()))
