"""Route 1 — iterated learning: the model-free f1 of a black-box learner.

Generation t trains a naive learner on n stimuli labelled by generation t − 1's probe responses, renormalised to
the target marginal by a rank transform to U[−1, 1] (the job L_d does in Algorithm 1), and probes it on n fresh
stimuli, which become generation t + 1's training stimuli. For a learner whose expected prediction is
:math:`\\mathbb{E}\\hat f = \\sum_i L_i v_i \\phi_i` for a target :math:`f = \\sum_i v_i\\phi_i` (eigenlearning),
this is a power iteration on the learning operator: the labelling converges to the most learnable non-constant
eigenspace, the next mode shrinking by :math:`L_2/L_1` per generation (Kalish, Griffiths & Lewandowsky 2007 ran
iterated function learning with people; the eigenlearning reading is ours, wave2-spec §1.3).

The chain is read out model-free: each generation's responses are smoothed (:mod:`learnscope.animal.smoother`) and
compared on fixed reference stimuli with the previous generation's; the chain has converged when ``patience``
successive correlations reach ``threshold``. f1 is the smoother of the last ``pool`` generations' responses
pooled. A learner that interpolates its training labels amplifies their noise (eigenlearning's E₀ ≫ 1) and its
chain wanders: the estimate then carries a warning and ``converged = False``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from learnscope import rng as streams
from learnscope.animal.labellings import rank_to_uniform  # noqa: F401  (re-exported)
from learnscope.animal.responses import Graded, ResponseModel
from learnscope.animal.session import SessionPlan, SessionRecord
from learnscope.animal.smoother import Smoothed, smooth
from learnscope.errors import ConfigError
from learnscope.validation import check_scalar

ROUTE = "iterated"




@dataclass(frozen=True)
class IteratedSettings:
    """n_train, n_probe : stimuli per train and probe block (n_probe ≥ n_train: the first n_train probes train the
    next generation). repeats : presentations per probe (≥ 5 for binary choices). threshold, patience : convergence
    criterion on successive generations' correlation. pool : generations pooled for f1. references : stimuli on
    which successive generations are compared (no trials: they are never shown). max_generations : a hard stop."""

    n_train: int = 20
    n_probe: int = 20
    repeats: int = 1
    threshold: float = 0.95
    patience: int = 2
    pool: int = 3
    references: int = 500
    max_generations: int = 100
    max_amplification: float = 2.0
    readout_probes: int = 40
    readout_repeats: int | None = None

    def __post_init__(self) -> None:
        for key in ("n_train", "n_probe", "repeats", "patience", "pool", "references", "max_generations",
                    "readout_probes"):
            check_scalar(key, getattr(self, key), int, 1)
        if self.readout_repeats is not None:
            check_scalar("readout_repeats", self.readout_repeats, int, 1)
        check_scalar("threshold", self.threshold, float, 0, 1, closed="neither")
        check_scalar("max_amplification", self.max_amplification, float, 1, closed="neither")
        if self.n_probe < self.n_train:
            raise ConfigError(f"n_probe ({self.n_probe}) must be at least n_train ({self.n_train}): the probes of "
                              "one generation are the training stimuli of the next")

    @property
    def trials_per_generation(self) -> int:
        return self.n_train + self.n_probe * self.repeats

    @property
    def readout_trials(self) -> int:
        return self.n_train + self.readout_probes * (self.readout_repeats or self.repeats)


@dataclass
class IteratedEstimate:
    """What the chain says so far. f1 : the smoother of the pooled last generations (None before the first).
    successive : correlation of each generation's smoothed responses with the previous one's (on the references).
    noise_share : share of the pooled responses' variance the smoother leaves unexplained; repeat_noise_share :
    the part explained by response noise between repeats (None with one repeat). noise_amplification : E₀ from the
    echo probes. history : (trials so far, smoothed responses) per generation."""

    generations: int
    trials: int
    converged: bool
    f1: Smoothed | None
    successive: list[float] = field(default_factory=list)
    noise_share: float | None = None
    repeat_noise_share: float | None = None
    noise_amplification: float | None = None
    warnings: list[str] = field(default_factory=list)
    history: list[tuple[int, Smoothed]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"route": ROUTE, "generations": self.generations, "trials": self.trials,
                "converged": self.converged, "successive_correlation": self.successive,
                "noise_share": self.noise_share, "repeat_noise_share": self.repeat_noise_share,
                "noise_amplification": self.noise_amplification,
                "warnings": self.warnings}


class IteratedLearning:
    """Plans the next generation from the session log and reads the chain out (see the module docstring).

    domain : a :class:`learnscope.domains.Domain` the stimuli are drawn from. response : the response model the
    sessions' responses follow. seed : the experiment's seed (stimuli and the initial labelling).
    """

    route = ROUTE

    def __init__(self, domain, response: ResponseModel, settings: IteratedSettings | None = None, seed: int = 0):
        self.domain = domain
        self.response = response
        self.settings = settings or IteratedSettings()
        self.seed = seed
        self.references = self._stimuli("animal iterated references", 0, self.settings.references)

    def _stimuli(self, purpose: str, index: int, n: int) -> np.ndarray:
        g = streams.torch_generator(self.seed, purpose, index)
        return self.domain.sample(n, g, torch.float64).numpy()

    def _chain(self, log: list[SessionRecord]) -> list[SessionRecord]:
        chain = [r for r in log if r.plan.route == ROUTE and not r.plan.extra.get("readout")]
        if [r.plan.generation for r in chain] != list(range(len(chain))):
            raise ConfigError("the session log's iterated-learning generations are not 0, 1, 2, … in order")
        return chain

    def _readout(self, log: list[SessionRecord]) -> SessionRecord | None:
        done = [r for r in log if r.plan.route == ROUTE and r.plan.extra.get("readout")]
        return done[-1] if done else None

    def plan(self, log: list[SessionRecord], budget_left: int | None = None) -> SessionPlan | None:
        """The next session: a generation of the chain; once the chain has converged (or the budget has room for
        only one more session, or max_generations is reached), the read-out — a naive learner trained on the last
        labelling and probed on ``readout_probes`` fresh stimuli × ``readout_repeats``; then None."""
        s = self.settings
        chain = self._chain(log)
        t = len(chain)
        if self._readout(log) is not None:
            return None
        last_call = budget_left is not None and budget_left < s.trials_per_generation + s.readout_trials
        if t and (t >= s.max_generations or last_call or self.estimate(log).converged):
            if budget_left is not None and budget_left < s.readout_trials:
                return None
            last = chain[-1]
            return SessionPlan(index=len(log), route=ROUTE, train_x=last.plan.probe_x[: s.n_train],
                               train_y=rank_to_uniform(self.response.labels(last.responses)[: s.n_train]),
                               probe_x=self._stimuli("animal iterated readout", 0, s.readout_probes),
                               repeats=s.readout_repeats or s.repeats, generation=t, extra={"readout": True})
        if t == 0:
            train_x = self._stimuli("animal iterated stimuli", 0, s.n_train)
            train_y = rank_to_uniform(streams.numpy_rng(self.seed, "animal iterated initial labels").random(s.n_train))
        else:
            last = chain[-1]
            train_x = last.plan.probe_x[: s.n_train]
            train_y = rank_to_uniform(self.response.labels(last.responses)[: s.n_train])
        probe_x = self._stimuli("animal iterated stimuli", t + 1, s.n_probe)
        if t == 0:  # echo probes: how much of random labels the learner memorises (its noise amplification)
            probe_x = np.concatenate([probe_x, train_x])
        return SessionPlan(index=len(log), route=ROUTE, train_x=train_x,
                           train_y=train_y, probe_x=probe_x, repeats=s.repeats, generation=t)

    def estimate(self, log: list[SessionRecord]) -> IteratedEstimate:
        s = self.settings
        chain = self._chain(log)
        trials = sum(r.trials for r in chain)
        if not chain:
            return IteratedEstimate(0, 0, False, None)
        labels = [self.response.labels(r.responses) for r in chain]
        smoothed = [smooth(r.plan.probe_x, y) for r, y in zip(chain, labels, strict=True)]
        refs = [fn(self.references) for fn in smoothed]
        history = list(zip(np.cumsum([r.trials for r in chain]).tolist(), smoothed, strict=True))
        successive = [float(np.corrcoef(a, b)[0, 1]) for a, b in zip(refs[:-1], refs[1:], strict=True)]
        recent = successive[-s.patience:]
        converged = len(recent) == s.patience and min(abs(c) for c in recent) >= s.threshold
        pooled_x, pooled_y = [], []
        for r, y, ref in zip(chain[-s.pool:], labels[-s.pool:], refs[-s.pool:], strict=True):
            sign = 1.0 if np.corrcoef(ref, refs[-1])[0, 1] >= 0 else -1.0
            pooled_x.append(r.plan.probe_x)
            pooled_y.append(sign * (y - y.mean()) / max(float(y.std()), 1e-12))
        readout = self._readout(log)
        if readout is not None:  # the least noisy picture of the converged labelling
            trials += readout.trials
            f1 = smooth(readout.plan.probe_x, self.response.labels(readout.responses))
        else:
            f1 = smooth(np.concatenate(pooled_x), np.concatenate(pooled_y))
        e0 = self._noise_amplification(chain[0])
        repeat_share = None
        if s.repeats > 1:
            within = np.mean([self._label_noise(r.responses) for r in chain[-s.pool:]])
            spread = np.mean([float(y.var()) for y in labels[-s.pool:]])
            repeat_share = float(min(within / max(spread, 1e-300), 1.0))
        warnings = []
        if e0 >= s.max_amplification:
            converged = False
            warnings.append(
                f"the learner memorises random labels (noise amplification E0 ≈ {e0:.1f} ≥ {s.max_amplification:g}, "
                "from the echo probes of generation 0): it interpolates label noise, so its iterated-learning chain "
                "drifts instead of converging and this f1 is not reported as converged")
        elif not converged and len(chain) >= s.patience + 1:
            shown = ", ".join(f"{c:.2f}" for c in recent)
            warnings.append(
                f"iterated learning has not converged after {len(chain)} generations ({trials} trials): successive "
                f"generations correlate {shown} (< {s.threshold}); the learner amplifies label noise little (E0 ≈ "
                f"{e0:.2f}), so response noise is the likely cause — more repeats per probe, or a larger budget — "
                "and this f1 is not reported as converged")
        return IteratedEstimate(len(chain), trials, converged, f1, successive, f1.noise_share, repeat_share, e0,
                                warnings, history)

    def _noise_amplification(self, first: SessionRecord) -> float:
        r"""E₀ estimated from generation 0's echo probes (its own training stimuli, labelled by random ranks).

        For a linear smoother ŷ = H y on the training stimuli and i.i.d. labels, the echo keeps a share
        tr(HᵀH)/n of the labels' variance, and eigenlearning's overfitting coefficient is
        :math:`E_0 = n / (n - \sum_i L_i^2) \approx 1/(1 - \mathrm{tr}(H^\top H)/n)`. The response noise of the
        echo (from repeats, when there are several) is subtracted first.
        """
        s = self.settings
        n = first.plan.train_x.shape[0]
        echo = first.responses[-n:]
        y = first.plan.train_y - first.plan.train_y.mean()
        e = self.response.prediction(echo)
        e = e - e.mean()
        noise = self._label_noise(echo) if s.repeats > 1 and isinstance(self.response, Graded) else 0.0
        share = max(float(e @ e) / n - noise, 0.0) / float(y @ y / n)
        return float(1.0 / max(1.0 - min(share, 1.0), 1e-3))

    def _label_noise(self, responses: np.ndarray) -> float:
        """Variance of a label (the mean of R repeats) due to response noise: within-probe variance / R."""
        per = self.response.labels(responses.reshape(-1, 1)).reshape(responses.shape)
        return float(per.var(axis=1, ddof=1).mean() / responses.shape[1])
