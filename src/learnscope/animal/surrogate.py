"""Route 2 — a behavioural surrogate: fit a differentiable learner family to every session so far, then run
Algorithm 1 on it.

Sessions train a naive learner on n stimuli with a random smooth labelling and record its probe responses. The
family (:mod:`learnscope.animal.families`) is fitted by maximum likelihood under the response model — graded:
:math:`r \\sim \\mathcal N(\\hat y, \\sigma^2)`; binary: :math:`P(\\mathrm{go}) = \\ell/2 + (1-\\ell)\\sigma(g\\hat y)`,
ŷ the family's kernel-ridge prediction from the session's own training set — with σ (or g, ℓ) fitted too. An
ensemble (member 0 on all sessions, the others on bootstrap resamples of sessions from other starting points)
measures what the data do not pin down. The next session's labelling is the candidate on which the members'
predicted generalisation error disagrees most (query by committee, Seung, Opper & Sompolinsky 1992). Sessions of
any route (iterated learning included) are valid data. f1 is Algorithm 1 run on the fitted learner.

Related work: behavioural surrogates of learning (Ashwood et al. NeurIPS 2020; Mehta et al. NeurIPS 2024, fitted on
behaviour); the query-by-committee design is ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import torch
from torch.nn.functional import softplus

from learnscope import rng as streams
from learnscope.animal.families import FAMILIES, InputGains, SphereSpectrum, TrainedMLP
from learnscope.animal.labellings import on_training_marginal, random_labelling, rank_to_uniform
from learnscope.animal.responses import BinaryChoice, ResponseModel
from learnscope.animal.session import SessionPlan, SessionRecord
from learnscope.errors import ConfigError, UnknownNameError
from learnscope.validation import check_scalar

ROUTE = "surrogate"


@dataclass(frozen=True)
class SurrogateSettings:
    """family : "sphere_spectrum" (dot-product kernel, learnable per-degree spectrum up to max_degree) or
    "input_gains" (arc-cosine kernel with learnable per-input gains). n_train, n_probe, repeats : per session.
    members : ensemble size. candidates : labellings compared per session by query by committee (after
    random_sessions random ones). labelling_scale, features : random smooth labellings
    :math:`f(x) = \\sum_j a_j \\cos(w_j\\cdot x + b_j)`, w ~ N(0, scale² I). fit_iterations : L-BFGS iterations.
    hidden, train_steps : the trained_mlp family's width and gradient-descent steps (its initial scale and learning
    rate are fitted).
    series : how many functions of the fitted surrogate to find in order of ease (Algorithm 1's series; 1: f1).
    contrast_with : a learner table (as in ``learnscope bias`` configs); then also the function the surrogate
    generalises well and that learner badly (Algorithm 1's contrast)."""

    family: str = "sphere_spectrum"
    max_degree: int = 6
    n_train: int = 20
    n_probe: int = 20
    repeats: int = 1
    members: int = 4
    candidates: int = 8
    random_sessions: int = 3
    labelling_scale: float = 1.5
    features: int = 50
    fit_iterations: int = 100
    max_sessions: int = 1000
    series: int = 1
    contrast_with: dict | None = None
    hidden: int = 50
    train_steps: int = 100

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise UnknownNameError("surrogate family", self.family, tuple(FAMILIES))
        for key in ("max_degree", "n_train", "n_probe", "repeats", "members", "candidates", "random_sessions",
                    "features", "fit_iterations", "max_sessions", "series", "hidden", "train_steps"):
            check_scalar(f"surrogate.{key}", getattr(self, key), int, 1)
        check_scalar("surrogate.labelling_scale", self.labelling_scale, float, 0, closed="neither")
        if self.contrast_with is not None:
            from learnscope.learners.registry import make_learner

            make_learner(dict(self.contrast_with))

    @property
    def trials_per_session(self) -> int:
        return self.n_train + self.n_probe * self.repeats


def surrogate_settings(table: dict) -> SurrogateSettings:
    from learnscope.validation import check_keys

    check_keys(table, [f.name for f in fields(SurrogateSettings)], "key in [surrogate]")
    return SurrogateSettings(**table)


@dataclass
class Member:
    """One fitted surrogate: the family's parameters ``theta`` and the response parameters."""

    family: object
    theta: torch.Tensor
    response: torch.Tensor
    nll: float

    def learner(self):
        """The fitted member as a learnscope learner (what Algorithm 1 searches)."""
        return self.family.learner(self.theta)

    def describe(self) -> dict:
        out = {"ridge": float(self.family.ridge(self.theta)), "nll": self.nll}
        if isinstance(self.family, TrainedMLP):
            out.update(self.family.describe(self.theta))
        if isinstance(self.family, SphereSpectrum):
            out["spectrum"] = self.family.spectrum(self.theta).tolist()
        if isinstance(self.family, InputGains):
            out["gains"] = self.family.gains(self.theta).tolist()
        return out


@dataclass
class SurrogateEstimate:
    sessions: int
    trials: int
    f1: object | None
    members: list[Member] = field(default_factory=list)
    member_f1: list = field(default_factory=list)
    ensemble_agreement: float | None = None
    warnings: list[str] = field(default_factory=list)
    converged: bool = False
    history: list = field(default_factory=list)
    series: list = field(default_factory=list)  # f1, f2, … of the best fit (``settings.series`` of them)
    contrast: object | None = None  # easy for the surrogate, hard for ``settings.contrast_with``

    def to_dict(self) -> dict:
        return {"route": ROUTE, "sessions": self.sessions, "trials": self.trials,
                "ensemble_agreement": self.ensemble_agreement, "members": [m.describe() for m in self.members],
                "series": len(self.series), "contrast": self.contrast is not None, "warnings": self.warnings}


class Surrogate:
    """Route 2 (see the module docstring). domain, response : as for iterated learning. algorithm1 : the
    ``{"search": …, "meta": …}`` settings Algorithm 1 runs with on the fitted surrogate."""

    route = ROUTE

    def __init__(self, domain, response: ResponseModel, settings: SurrogateSettings | None = None, seed: int = 0,
                 algorithm1: dict | None = None):
        self.domain = domain
        self.response = response
        self.settings = settings or SurrogateSettings()
        self.seed = seed
        self.algorithm1 = algorithm1 or {}
        d = domain.dim
        if self.settings.family == "trained_mlp":
            self.family = TrainedMLP(d, hidden=self.settings.hidden, steps=self.settings.train_steps, seed=seed)
        elif self.settings.family == "sphere_spectrum":
            from learnscope.domains import Sphere

            if not isinstance(domain, Sphere):
                raise ConfigError("the sphere_spectrum surrogate needs a sphere domain; use family = \"input_gains\"")
            self.family = SphereSpectrum(d, self.settings.max_degree)
        else:
            self.family = InputGains(d)
        self.references = self._stimuli("animal surrogate references", 0, 500)
        self._fits: dict[int, list[Member]] = {}
        self._estimates: dict[int, SurrogateEstimate] = {}

    def _stimuli(self, purpose: str, index: int, n: int) -> np.ndarray:
        return self.domain.sample(n, streams.torch_generator(self.seed, purpose, index), torch.float64).numpy()

    def _sessions(self, log: list[SessionRecord]) -> list[SessionRecord]:
        return [r for r in log if r.plan.route == ROUTE]

    # ------------------------------------------------------------------ planning

    def _candidate(self, k: int, c: int, train_x: np.ndarray, probe_x: np.ndarray):
        s = self.settings
        f = random_labelling(streams.numpy_rng(self.seed, "animal surrogate labelling", k, c), self.domain.dim,
                              s.labelling_scale, s.features)
        raw_train = f(train_x)
        return rank_to_uniform(raw_train), on_training_marginal(raw_train, f(probe_x))

    def plan(self, log: list[SessionRecord], budget_left: int | None = None) -> SessionPlan | None:
        s = self.settings
        k = len(self._sessions(log))
        if k >= s.max_sessions or (budget_left is not None and budget_left < s.trials_per_session):
            return None
        train_x = self._stimuli("animal surrogate train", k, s.n_train)
        probe_x = self._stimuli("animal surrogate probes", k, s.n_probe)
        cands = [self._candidate(k, c, train_x, probe_x) for c in range(s.candidates)]
        choice = 0
        if k >= s.random_sessions:
            members = self.fit(log)
            lg = np.array([[np.mean((self._predict(m, train_x, y, probe_x) - target) ** 2) for y, target in cands]
                           for m in members])  # (members, candidates): predicted generalisation error
            choice = int(np.argmax(lg.var(axis=0)))
        return SessionPlan(index=len(log), route=ROUTE, train_x=train_x, train_y=cands[choice][0], probe_x=probe_x,
                           repeats=s.repeats, extra={"candidate": choice})

    # ------------------------------------------------------------------ fitting

    def _predict(self, m: Member, train_x, train_y, probe_x) -> np.ndarray:
        with torch.no_grad():
            data = self.family.session_data(train_x, probe_x)
            return self.family.predict(m.theta, data, torch.tensor(train_y)).numpy()

    def _initial_response(self) -> torch.Tensor:
        if isinstance(self.response, BinaryChoice):  # raw gain, raw lapse
            return torch.tensor([np.log(np.expm1(self.response.slope)), -4.0], dtype=torch.float64)
        return torch.tensor([np.log(np.expm1(0.3))], dtype=torch.float64)  # raw σ

    def _nll(self, theta, resp, data, weights) -> torch.Tensor:
        total = torch.zeros((), dtype=torch.float64)
        for (session, y, r), w in zip(data, weights, strict=True):
            if w == 0:
                continue
            pred = self.family.predict(theta, session, y)
            if isinstance(self.response, BinaryChoice):
                p = torch.sigmoid(resp[1]) / 2 + (1 - torch.sigmoid(resp[1])) * torch.sigmoid(softplus(resp[0]) * pred)
                p = p.clamp(1e-9, 1 - 1e-9)[:, None]
                ll = r * torch.log(p) + (1 - r) * torch.log1p(-p)
            else:
                sigma = softplus(resp[0]) + 1e-4
                ll = -0.5 * ((r - pred[:, None]) / sigma) ** 2 - torch.log(sigma)
            total = total - w * ll.sum()
        return total

    def _minimise(self, theta: torch.Tensor, resp: torch.Tensor, data: list, weights: np.ndarray) -> None:
        """L-BFGS (strong Wolfe line search) on the weighted negative log-likelihood, in place."""
        opt = torch.optim.LBFGS([theta, resp], max_iter=self.settings.fit_iterations, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = self._nll(theta, resp, data, weights)
            loss.backward()
            return loss

        opt.step(closure)

    def fit(self, log: list[SessionRecord]) -> list[Member]:
        """The ensemble fitted to every session of ``log`` (cached per log length)."""
        key = len(log)
        if key in self._fits:
            return self._fits[key]
        data = [(self.family.session_data(r.plan.train_x, r.plan.probe_x), torch.tensor(r.plan.train_y),
                 torch.tensor(r.responses)) for r in log]
        members = []
        for j in range(self.settings.members):
            rng = streams.numpy_rng(self.seed, "animal surrogate member", j, key)
            weights = np.ones(len(data)) if j == 0 else rng.multinomial(len(data), np.full(len(data), 1 / len(data)))
            theta = self.family.initial(rng).requires_grad_(True)
            resp = self._initial_response().requires_grad_(True)
            self._minimise(theta, resp, data, weights)
            with torch.no_grad():
                nll = float(self._nll(theta, resp, data, np.ones(len(data))))
            members.append(Member(self.family, theta.detach(), resp.detach(), nll))
        self._fits[key] = members
        return members

    # ------------------------------------------------------------------ the estimate

    def estimate(self, log: list[SessionRecord]) -> SurrogateEstimate:
        from learnscope.animal.whitebox import algorithm1_contrast, algorithm1_f1, algorithm1_series

        key = len(log)
        if key in self._estimates:
            return self._estimates[key]
        own = self._sessions(log)
        trials = int(sum(r.trials for r in own))
        if len(log) < self.settings.random_sessions:
            return SurrogateEstimate(len(own), trials, None)
        members = self.fit(log)
        a1 = self.algorithm1
        f1s = [algorithm1_f1(m.learner(), self.domain, self.settings.n_train, search=a1.get("search"),
                             meta=a1.get("meta"), seed=self.seed) for m in members]
        vals = [f(self.references) for f in f1s]
        pairs = [abs(float(np.corrcoef(vals[0], v)[0, 1])) for v in vals[1:]]
        agree = float(np.mean(pairs)) if pairs else None
        warnings = []
        if agree is not None and agree < 0.8:
            warnings.append(f"the surrogate ensemble disagrees on f1 (mean |corr| with the best fit {agree:.2f} < "
                            "0.8): the sessions so far do not pin the learner down; record more sessions")
        best = members[0].learner()
        series = [f1s[0]]
        if self.settings.series > 1:
            series = algorithm1_series(best, self.domain, self.settings.n_train, self.settings.series,
                                       search=a1.get("search"), meta=a1.get("meta"), seed=self.seed)
        contrast = None
        if self.settings.contrast_with is not None:
            from learnscope.learners.registry import make_learner

            contrast = algorithm1_contrast(best, make_learner(dict(self.settings.contrast_with)), self.domain,
                                           self.settings.n_train, search=a1.get("search"), meta=a1.get("meta"),
                                           seed=self.seed)
        est = SurrogateEstimate(len(own), trials, f1s[0], members, f1s, agree, warnings,
                                converged=agree is not None and agree >= 0.8, series=series, contrast=contrast)
        self._estimates[key] = est
        return est
