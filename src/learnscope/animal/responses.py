"""How a learner's prediction becomes a response, and how responses become labels in [−1, 1].

- :class:`Graded` — a graded read-out (P(go) estimated elsewhere, lick rate, confidence): the prediction plus
  Gaussian noise of standard deviation ``noise``; a label is the mean over repeats.
- :class:`BinaryChoice` — a go/no-go or 2AFC choice, 1 with probability
  :math:`p = \\tfrac{\\ell}{2} + (1-\\ell)\\,\\sigma(s\\,\\hat y)` (σ the logistic function, s the ``slope``, ℓ the
  lapse rate), 0 otherwise; a label is :math:`2\\hat p - 1` with p̂ the fraction of go choices over repeats.

Both have a lapse rate: with probability ℓ a response ignores the stimulus (a uniform value in [−1, 1] for graded
responses, a fair coin for choices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learnscope.errors import ConfigError, UnknownNameError
from learnscope.validation import check_scalar


@dataclass(frozen=True)
class Graded:
    """Graded responses: ``prediction + noise · N(0, 1)``, or with probability ``lapse`` uniform on [−1, 1]."""

    noise: float = 0.1
    lapse: float = 0.0
    kind = "graded"

    def __post_init__(self) -> None:
        check_scalar("noise", self.noise, float, 0)
        check_scalar("lapse", self.lapse, float, 0, 1, closed="left")

    def respond(self, prediction: np.ndarray, repeats: int, rng: np.random.Generator) -> np.ndarray:
        """prediction (m,) -> responses (m, repeats)."""
        m = prediction.shape[0]
        r = prediction[:, None] + self.noise * rng.standard_normal((m, repeats))
        if self.lapse > 0:
            lapsed = rng.random((m, repeats)) < self.lapse
            r = np.where(lapsed, rng.uniform(-1, 1, (m, repeats)), r)
        return r

    def labels(self, responses: np.ndarray) -> np.ndarray:
        """responses (m, R) -> labels (m,): the mean over repeats."""
        return responses.mean(axis=1)

    def prediction(self, responses: np.ndarray) -> np.ndarray:
        """The learner's prediction estimated from responses (m, R): their mean."""
        return responses.mean(axis=1)

    def check(self, responses: np.ndarray) -> None:
        """Graded responses may be any finite number."""


@dataclass(frozen=True)
class BinaryChoice:
    """Binary choices (1 = go): P(go) = lapse/2 + (1 − lapse)·σ(slope · prediction)."""

    slope: float = 4.0
    lapse: float = 0.0
    kind = "binary"

    def __post_init__(self) -> None:
        check_scalar("slope", self.slope, float, 0, closed="neither")
        check_scalar("lapse", self.lapse, float, 0, 1, closed="left")

    def p_go(self, prediction: np.ndarray) -> np.ndarray:
        return self.lapse / 2 + (1 - self.lapse) / (1 + np.exp(-self.slope * prediction))

    def respond(self, prediction: np.ndarray, repeats: int, rng: np.random.Generator) -> np.ndarray:
        """prediction (m,) -> choices (m, repeats) in {0, 1}."""
        p = self.p_go(prediction)
        return (rng.random((prediction.shape[0], repeats)) < p[:, None]).astype(np.float64)

    def labels(self, responses: np.ndarray) -> np.ndarray:
        """choices (m, R) -> labels 2 p̂ − 1 (m,)."""
        return 2 * responses.mean(axis=1) - 1

    def prediction(self, responses: np.ndarray) -> np.ndarray:
        r"""The learner's prediction estimated from choices (m, R) by inverting P(go):
        :math:`\hat y = \operatorname{logit}\big((\hat p - \ell/2)/(1 - \ell)\big) / s`, with p̂ kept inside
        [1/(2R), 1 − 1/(2R)] so that unanimous choices give a finite value."""
        R = responses.shape[1]
        p = np.clip(responses.mean(axis=1), 1 / (2 * R), 1 - 1 / (2 * R))
        q = np.clip((p - self.lapse / 2) / (1 - self.lapse), 1e-6, 1 - 1e-6)
        return np.log(q / (1 - q)) / self.slope

    def check(self, responses: np.ndarray) -> None:
        bad = ~np.isin(responses, (0.0, 1.0))
        if bad.any():
            v = responses[bad][0]
            raise ConfigError(f"binary-choice responses must be 0 (no-go) or 1 (go), found {v:g}")


ResponseModel = Graded | BinaryChoice
RESPONSES = {"graded": Graded, "binary": BinaryChoice}


def make_response(spec: str | dict | ResponseModel) -> ResponseModel:
    """A response model from its name, a ``{"kind": …, **params}`` table, or itself."""
    if isinstance(spec, (Graded, BinaryChoice)):
        return spec
    table = {"kind": spec} if isinstance(spec, str) else dict(spec)
    kind = table.pop("kind", "graded")
    if kind not in RESPONSES:
        raise UnknownNameError("response model", str(kind), tuple(RESPONSES))
    try:
        return RESPONSES[kind](**table)
    except TypeError as exc:
        raise ConfigError(f"response model {kind!r}: {exc}") from None
