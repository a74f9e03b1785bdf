"""Route 3 — a gradient-free meta-gradient: antithetic evolution strategies on a low-dimensional labelling.

The labelling is :math:`f_\\theta(x) = \\sum_j \\theta_j B_j(x)` in a fixed basis (real spherical harmonics of degree
1 … L on S²; random Fourier features elsewhere), rank-transformed to U[−1, 1] on each session's training stimuli.
Each session measures :math:`L_g(\\theta) = \\operatorname{mean}_{probes}(\\hat y - f_\\theta)^2` of one perturbed
labelling; a pair of sessions at :math:`\\theta \\pm \\sigma\\varepsilon` (mirrored sampling, Salimans et al. 2017)
gives the estimate :math:`\\hat g = \\frac{1}{2\\sigma P}\\sum_{j=1}^{P}(L_g^+ - L_g^-)\\,\\varepsilon_j` per
iteration of P pairs, and :class:`torch.optim.Adam` takes the step. This is the honest baseline: every
meta-gradient costs 2P sessions, two orders of magnitude more trials than routes 1–2 (wave2-spec §1.4), and it
is the route for black boxes with no autograd at all (an external simulator).

The state (θ and Adam's moments) is a pure function of the session log: it is replayed, incrementally.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import torch

from learnscope import rng as streams
from learnscope.animal.labellings import on_training_marginal, rank_to_uniform
from learnscope.animal.responses import ResponseModel
from learnscope.animal.session import SessionPlan, SessionRecord
from learnscope.validation import check_keys, check_scalar

ROUTE = "es"


@dataclass(frozen=True)
class ESSettings:
    """degree : basis degrees 1 … degree on S² ((degree + 1)² − 1 coefficients); features : basis size elsewhere.
    pairs : antithetic pairs per iteration. sigma : perturbation scale (θ is kept at unit norm). lr : Adam's step.
    n_train, n_probe, repeats : per session. max_iterations : a hard stop."""

    degree: int = 3
    features: int = 15
    pairs: int = 4
    sigma: float = 0.1
    lr: float = 0.05
    n_train: int = 20
    n_probe: int = 20
    repeats: int = 1
    max_iterations: int = 100_000

    def __post_init__(self) -> None:
        for key in ("degree", "features", "pairs", "n_train", "n_probe", "repeats", "max_iterations"):
            check_scalar(f"es.{key}", getattr(self, key), int, 1)
        check_scalar("es.sigma", self.sigma, float, 0, closed="neither")
        check_scalar("es.lr", self.lr, float, 0, closed="neither")

    @property
    def trials_per_session(self) -> int:
        return self.n_train + self.n_probe * self.repeats


def es_settings(table: dict) -> ESSettings:
    check_keys(table, [f.name for f in fields(ESSettings)], "key in [es]")
    return ESSettings(**table)


@dataclass
class ESEstimate:
    iterations: int
    trials: int
    f1: object
    theta: np.ndarray
    history: list = field(default_factory=list)  # (trials so far, θ) after each iteration
    warnings: list[str] = field(default_factory=list)
    converged: bool = False
    labelling: object = None  # θ -> f_θ

    def to_dict(self) -> dict:
        return {"route": ROUTE, "iterations": self.iterations, "trials": self.trials, "theta": self.theta.tolist(),
                "warnings": self.warnings}


class EvolutionStrategies:
    """Route 3 (see the module docstring)."""

    route = ROUTE

    def __init__(self, domain, response: ResponseModel, settings: ESSettings | None = None, seed: int = 0):
        from learnscope.domains import Sphere

        self.domain, self.response, self.seed = domain, response, seed
        self.settings = s = settings or ESSettings()
        self.references = self._stimuli("animal es references", 0, 500)
        if isinstance(domain, Sphere) and domain.dim == 3:
            from learnscope.spherical import real_spherical_harmonics

            self._basis = lambda x: real_spherical_harmonics(s.degree, x)[0][:, 1:]
        else:
            rng = streams.numpy_rng(seed, "animal es basis")
            w = rng.normal(0, 1.5, (s.features, domain.dim))
            b = rng.uniform(0, 2 * np.pi, s.features)
            self._basis = lambda x: np.sqrt(2) * np.cos(x @ w.T + b)
        self.dim = self._basis(self.references[:1]).shape[1]
        self._cache: tuple[int, dict] | None = None

    def _stimuli(self, purpose: str, index: int, n: int) -> np.ndarray:
        return self.domain.sample(n, streams.torch_generator(self.seed, purpose, index), torch.float64).numpy()

    def labelling(self, theta: np.ndarray):
        """f_θ as a function ``x (N, d) -> (N,)``."""
        return lambda x: self._basis(np.asarray(x, dtype=np.float64)) @ theta

    def _perturbation(self, iteration: int, pair: int) -> np.ndarray:
        return streams.numpy_rng(self.seed, "animal es perturbation", iteration, pair).standard_normal(self.dim)

    def _fresh(self) -> dict:
        theta = streams.numpy_rng(self.seed, "animal es init").standard_normal(self.dim)
        param = torch.tensor(theta / np.linalg.norm(theta), dtype=torch.float64, requires_grad=True)
        return {"param": param, "opt": torch.optim.Adam([param], lr=self.settings.lr), "done": 0, "losses": [],
                "history": [], "trials": 0}

    def _loss(self, record: SessionRecord, theta: np.ndarray) -> float:
        f = self.labelling(theta)
        target = on_training_marginal(f(record.plan.train_x), f(record.plan.probe_x))
        return float(np.mean((self.response.labels(record.responses) - target) ** 2))

    def _replay(self, log: list[SessionRecord]) -> dict:
        own = [r for r in log if r.plan.route == ROUTE]
        n = len(own)
        if self._cache is None or self._cache[0] > n:
            self._cache = (0, self._fresh())
        done, st = self._cache
        s = self.settings
        per = 2 * s.pairs
        for k in range(done, n):
            rec = own[k]
            it, slot = divmod(k, per)
            theta = st["param"].detach().numpy() if slot == 0 else st["theta_at"]
            st["theta_at"] = theta
            st["losses"].append(self._loss(rec, self._member(theta, it, slot)))
            st["trials"] += rec.trials
            if slot == per - 1:  # iteration complete: the mirrored estimate and one Adam step
                g = np.zeros(self.dim)
                for j in range(s.pairs):
                    g += (st["losses"][2 * j] - st["losses"][2 * j + 1]) * self._perturbation(it, j)
                g /= 2 * s.sigma * s.pairs
                st["opt"].zero_grad()
                st["param"].grad = torch.tensor(g)
                st["opt"].step()
                with torch.no_grad():
                    st["param"] /= st["param"].norm()
                st["losses"] = []
                st["history"].append((st["trials"], st["param"].detach().numpy().copy()))
        self._cache = (n, st)
        return st

    def _member(self, theta: np.ndarray, iteration: int, slot: int) -> np.ndarray:
        pair, sign = divmod(slot, 2)
        return theta + (1 - 2 * sign) * self.settings.sigma * self._perturbation(iteration, pair)

    def plan(self, log: list[SessionRecord], budget_left: int | None = None) -> SessionPlan | None:
        s = self.settings
        st = self._replay(log)
        k = self._cache[0]
        it, slot = divmod(k, 2 * s.pairs)
        if it >= s.max_iterations or (budget_left is not None and budget_left < s.trials_per_session):
            return None
        theta = st["param"].detach().numpy() if slot == 0 else st["theta_at"]
        f = self.labelling(self._member(theta, it, slot))
        train_x = self._stimuli("animal es train", k, s.n_train)
        probe_x = self._stimuli("animal es probes", k, s.n_probe)
        return SessionPlan(index=len(log), route=ROUTE, train_x=train_x, train_y=rank_to_uniform(f(train_x)),
                           probe_x=probe_x, repeats=s.repeats, extra={"iteration": it, "slot": slot})

    def estimate(self, log: list[SessionRecord]) -> ESEstimate:
        st = self._replay(log)
        theta = st["param"].detach().numpy().copy()
        return ESEstimate(len(st["history"]), st["trials"], self.labelling(theta), theta, list(st["history"]),
                          labelling=self.labelling)
