r"""Calibrating class probabilities and measuring how well they are calibrated.

Calibrators map a classifier's probabilities ``p (n, K)`` (rows sum to 1, columns in the classifier's class order)
to new ones of the same shape:

* :class:`IdentityCalibrator` (``"none"``): ``p`` unchanged;
* :class:`TemperatureCalibrator` (``"temperature"``, Guo et al. 2017): one parameter :math:`T > 0`,

  .. math:: \hat p_{ik} = \mathrm{softmax}_k\!\bigl(\log \max(p_{ik}, \varepsilon) / T\bigr),

  with :math:`T` minimising the mean negative log-likelihood (NLL) of the true classes (scipy, bounded in
  :math:`\log T`); :math:`T > 1` softens over-confident probabilities, :math:`T < 1` sharpens them. The
  argmax never changes;
* :class:`IsotonicCalibrator` (``"isotonic"``, Zadrozny & Elkan 2002): per class a non-decreasing step function
  fitted to the one-vs-rest indicator (scikit-learn ``IsotonicRegression``), the K outputs renormalised to sum to
  1 (a row whose outputs are all 0 becomes uniform).

:func:`choose_calibrator` picks one of them by cross-fitted NLL over groups (networks): every candidate is fitted
on the other groups' rows and scored on a group's rows, never on rows it was fitted on.

Expected calibration error (:func:`expected_calibration_error`): **top-label**, **equal-width** bins over
``[0, 1]`` (10 by default), the confidence of a row being its largest probability,

.. math:: \mathrm{ECE} = \sum_b \frac{n_b}{n}\,\bigl|\mathrm{acc}_b - \mathrm{conf}_b\bigr| .

A finite sample of perfectly calibrated predictions still has ECE > 0; :func:`ece_noise_floor` estimates it by
drawing the labels from the predicted probabilities themselves. By Cauchy–Schwarz its expectation is at most
:math:`\sum_b \sqrt{n_b}/(2n) \le \tfrac12\sqrt{B/n}` (:func:`ece_clt_bound`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.isotonic import IsotonicRegression

from learnscope.errors import ConfigError, ShapeError, UnknownNameError

EPS = 1e-6
"""Probabilities are clipped to ``[EPS, 1]`` before a logarithm (a forest's vote fractions are often exactly 0)."""
CALIBRATORS: tuple[str, ...] = ("none", "temperature", "isotonic")
N_BINS = 10
"""Equal-width confidence bins of the ECE and of the reliability diagram."""
_LOG_T_BOUNDS = (-6.0, 6.0)  # T in [e^-6, e^6] ≈ [0.0025, 403]


def _check_probs(p: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ShapeError(f"probabilities must be (n, K ≥ 2), got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ShapeError("probabilities contain NaN/inf")
    if y is None:
        return p, None
    y = np.asarray(y)
    if y.shape != (len(p),) or not np.issubdtype(y.dtype, np.integer) or (y < 0).any() or (y >= p.shape[1]).any():
        raise ShapeError(f"labels must be integer class indices 0..{p.shape[1] - 1} of shape ({len(p)},)")
    return p, y


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``z (n, K)``, computed stably."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def log_probs(p: np.ndarray) -> np.ndarray:
    """``log(max(p, EPS))``: the logits temperature scaling divides (the softmax of them is ``p`` up to EPS)."""
    return np.log(np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0))


def nll(p: np.ndarray, y: np.ndarray) -> float:
    r"""Mean negative log-likelihood :math:`-\frac1n \sum_i \log \max(p_{i y_i}, \varepsilon)` (nats)."""
    p, y = _check_probs(p, y)
    return float(-log_probs(p[np.arange(len(y)), y]).mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    r"""The temperature :math:`T` minimising the NLL of :math:`\mathrm{softmax}(z/T)` for logits ``z (n, K)`` and
    class indices ``y (n,)``: a bounded 1-D search over :math:`\log T \in [-6, 6]` (the NLL is convex in
    :math:`1/T`)."""
    z, y = _check_probs(logits, y)
    rows = np.arange(len(y))

    def loss(log_t: float) -> float:
        s = z / np.exp(log_t)
        s = s - s.max(axis=1, keepdims=True)
        return float((np.log(np.exp(s).sum(axis=1)) - s[rows, y]).mean())

    res = minimize_scalar(loss, bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


@dataclass
class IdentityCalibrator:
    """``"none"``: the probabilities unchanged."""

    name: str = "none"

    def fit(self, p: np.ndarray, y: np.ndarray) -> IdentityCalibrator:
        _check_probs(p, y)
        return self

    def transform(self, p: np.ndarray) -> np.ndarray:
        return _check_probs(p)[0].copy()

    def describe(self) -> str:
        return "none, the classifier's own probabilities"


@dataclass
class TemperatureCalibrator:
    """``"temperature"``: ``softmax(log max(p, EPS) / T)`` with ``T`` from :func:`fit_temperature`."""

    temperature: float = 1.0
    name: str = "temperature"

    def fit(self, p: np.ndarray, y: np.ndarray) -> TemperatureCalibrator:
        p, y = _check_probs(p, y)
        self.temperature = fit_temperature(log_probs(p), y)
        return self

    def transform(self, p: np.ndarray) -> np.ndarray:
        return softmax(log_probs(_check_probs(p)[0]) / self.temperature)

    def describe(self) -> str:
        return f"temperature scaling, T = {self.temperature:.3g}"


@dataclass
class IsotonicCalibrator:
    """``"isotonic"``: one non-decreasing map per class (one-vs-rest), renormalised."""

    maps: list = field(default_factory=list)
    name: str = "isotonic"

    def fit(self, p: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        p, y = _check_probs(p, y)
        self.maps = [IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p[:, k], (y == k) * 1.0)
                     for k in range(p.shape[1])]
        return self

    def transform(self, p: np.ndarray) -> np.ndarray:
        p = _check_probs(p)[0]
        if len(self.maps) != p.shape[1]:
            raise ShapeError(f"the isotonic calibrator was fitted on {len(self.maps)} classes, got {p.shape[1]}")
        q = np.stack([m.predict(p[:, k]) for k, m in enumerate(self.maps)], axis=1)
        s = q.sum(axis=1, keepdims=True)
        return np.divide(q, s, out=np.full_like(q, 1.0 / q.shape[1]), where=s > 0)

    def describe(self) -> str:
        return "isotonic regression (one-vs-rest, renormalised)"


Calibrator = IdentityCalibrator | TemperatureCalibrator | IsotonicCalibrator


def make_calibrator(name: str) -> Calibrator:
    """An unfitted calibrator ``"none" | "temperature" | "isotonic"``."""
    if name == "none":
        return IdentityCalibrator()
    if name == "temperature":
        return TemperatureCalibrator()
    if name == "isotonic":
        return IsotonicCalibrator()
    raise UnknownNameError("calibrator", str(name), CALIBRATORS)


def choose_calibrator(p: np.ndarray, y: np.ndarray, folds: np.ndarray, methods: Sequence[str] = CALIBRATORS
                      ) -> tuple[Calibrator, dict[str, float]]:
    """Pick the calibrator of ``methods`` with the lowest cross-fitted NLL and return it fitted on all rows.

    ``folds (n,)``: a fold index per row (rows of one network share a fold). For each fold f, every method is fitted
    on the rows of the other folds and scored (NLL) on the rows of f; the score of a method is the row-weighted
    mean over folds. Ties go to the earlier (simpler) method of ``methods``. Returns (fitted calibrator,
    ``{method: cross-fitted NLL}``).
    """
    p, y = _check_probs(p, y)
    folds = np.asarray(folds)
    if folds.shape != (len(p),):
        raise ShapeError(f"folds must have one entry per row ({len(p)}), got shape {folds.shape}")
    distinct = np.unique(folds)
    if len(distinct) < 2:
        raise ConfigError("choosing a calibrator needs rows of at least two folds")
    scores = {}
    for method in methods:
        total = 0.0
        for f in distinct:
            test = folds == f
            cal = make_calibrator(method).fit(p[~test], y[~test])
            total += nll(cal.transform(p[test]), y[test]) * test.sum()
        scores[method] = total / len(p)
    best = min(methods, key=lambda m: (scores[m], list(methods).index(m)))
    return make_calibrator(best).fit(p, y), scores


# ----------------------------------------------------------------------------------------------------------------
# calibration error


def _bins(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin index of each confidence: ``[0, 1/B), …, [(B−1)/B, 1]`` (1 falls in the last bin)."""
    return np.minimum((conf * n_bins).astype(int), n_bins - 1)


def reliability_bins(p: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> dict[str, list]:
    """Top-label reliability table: per equal-width bin its ``edges`` (B+1), ``count``, mean ``confidence`` and
    ``accuracy`` (fraction whose top class is the true one; NaN for an empty bin)."""
    p, y = _check_probs(p, y)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(float)
    b = _bins(conf, n_bins)
    count = np.bincount(b, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / count
        acc = np.bincount(b, weights=correct, minlength=n_bins) / count
    return {"edges": np.linspace(0, 1, n_bins + 1).tolist(), "count": count.astype(int).tolist(),
            "confidence": mean_conf.tolist(), "accuracy": acc.tolist()}


def expected_calibration_error(p: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> float:
    r"""Top-label ECE over ``n_bins`` equal-width bins: :math:`\sum_b (n_b/n)\,|\mathrm{acc}_b - \mathrm{conf}_b|`."""
    p, y = _check_probs(p, y)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(float)
    b = _bins(conf, n_bins)
    gap = np.bincount(b, weights=correct - conf, minlength=n_bins)  # n_b (acc_b − conf_b)
    return float(np.abs(gap).sum() / len(p))


def ece_clt_bound(p: np.ndarray, n_bins: int = N_BINS) -> float:
    r"""An upper bound on the expected ECE of *perfectly calibrated* predictions with these confidences:
    :math:`\sum_b \sqrt{\sum_{i\in b} c_i(1-c_i)}/n` (the s.d. of :math:`n_b(\mathrm{acc}_b - \mathrm{conf}_b)` when
    each row is right with probability :math:`c_i`, and :math:`E|X| \le \mathrm{sd}(X)`)."""
    p = _check_probs(p)[0]
    conf = p.max(axis=1)
    var = np.bincount(_bins(conf, n_bins), weights=conf * (1 - conf), minlength=n_bins)
    return float(np.sqrt(var).sum() / len(p))


def ece_noise_floor(p: np.ndarray, rng: np.random.Generator, n_bins: int = N_BINS, draws: int = 200
                    ) -> tuple[float, float]:
    """(mean, 95th percentile) of the ECE of these predictions when their labels are drawn from the predictions
    themselves (so they are perfectly calibrated by construction): the ECE a finite sample shows anyway."""
    p = _check_probs(p)[0]
    cdf = np.cumsum(p, axis=1)
    u = rng.random((draws, len(p), 1))
    labels = np.minimum((u > cdf[None]).sum(axis=2), p.shape[1] - 1)
    eces = np.array([expected_calibration_error(p, lab, n_bins) for lab in labels])
    return float(eces.mean()), float(np.quantile(eces, 0.95))
