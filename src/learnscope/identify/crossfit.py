r"""Held-out networks for an honest answer: calibration, its error, and which rules cannot be told apart.

Protocol (:func:`heldout_predictions`; every split is by *network*, stratified by rule, seeded). Networks are dealt
to :math:`K` folds (``StratifiedGroupKFold``, :math:`K = \min(5, \text{fewest networks of a rule})`, at least 3).
For each fold :math:`k`, three disjoint sets of networks play three roles:

* :math:`C_k` = fold :math:`k`, *scored*;
* :math:`B_k` = fold :math:`k+1 \bmod K`, *calibration*;
* :math:`A_k` = the other :math:`K-2` folds, *classifier training*.

1. The classifier is trained on the layers of :math:`A_k` and predicts those of :math:`B_k` and :math:`C_k`.
2. :func:`~learnscope.identify.calibration.choose_calibrator` picks ``none``, ``temperature`` or ``isotonic`` by
   NLL cross-fitted over :math:`B_k`'s networks (fitted on some of them, scored on the others) and fits it on all
   of :math:`B_k`'s predictions.
3. That calibrator maps :math:`C_k`'s predictions to *calibrated held-out* probabilities: everything that touched
   them (classifier, calibrator, choice of calibrator) was fitted on :math:`A_k \cup B_k` only. The ECE, the
   reliability diagram, the confusion matrices and the pairwise accuracies are computed from these alone.
4. The deployed calibrator is chosen the same way (cross-fitted over the :math:`K` folds) on the uncalibrated
   held-out predictions of all networks (each from the classifier of its own fold), fitted on all of them, and
   applied to the classifier trained on every network.

The classifier behind a held-out prediction is trained on :math:`(K-2)/K` of the networks (60 % for
:math:`K = 5`), the deployed one on all of them; so the held-out numbers describe a slightly weaker classifier
than the one deployed (a nested scheme would cost :math:`K` times more fits and train its inner classifiers on
even fewer networks).

Network aggregation (:func:`network_probabilities`): the normalised geometric mean of a network's layer
probabilities, :math:`P_k \propto \exp\bigl(\frac1L\sum_l \log p_{lk}\bigr)` — a product of experts tempered by
:math:`1/L`. The layers of one network are not independent evidence (one rule, one training run, errors that move
together), so the untempered product (:math:`\sum_l`) would grow more confident with every layer recorded; the
arithmetic mean (the linear pool, used before) lets uninformative layers dilute an informative one towards
uniform, and a layer that confidently rules a rule out barely counts. The geometric mean keeps the scale of one
calibrated layer; its own calibration is measured on held-out networks (``ece_network``).

Rules the observables cannot separate (:func:`pairwise_accuracy`, :func:`indistinguishable_pairs`): for two rules
:math:`a, b`, the held-out accuracy of the two-way choice among the layers of :math:`a` or :math:`b` that were
predicted as :math:`a` or :math:`b`,

.. math:: \mathrm{acc}_{ab} = \frac{C_{aa} + C_{bb}}{C_{aa} + C_{ab} + C_{ba} + C_{bb}}

(rows of :math:`C` the actual rule, columns the predicted one; chance 0.5 for balanced rules). A pair below
:data:`PAIR_THRESHOLD` (0.7) is reported as not distinguishable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from learnscope import rng
from learnscope.errors import ConfigError, ShapeError
from learnscope.identify.calibration import (
    CALIBRATORS,
    Calibrator,
    choose_calibrator,
    ece_clt_bound,
    ece_noise_floor,
    expected_calibration_error,
    log_probs,
    nll,
    reliability_bins,
)

DEFAULT_FOLDS = 5
DEFAULT_CHOICE_FOLDS = 3
MIN_NETWORKS_PER_RULE = 3
"""Fewest networks of every rule for the protocol: three folds (classifier, calibrator, scored)."""
PAIR_THRESHOLD = 0.7
"""Rule pairs whose held-out two-way accuracy is below this are reported as not distinguishable."""
_MOD = 2**31 - 1

FitPredict = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
"""``fit_predict(train_rows, test_rows, seed) -> (len(test_rows), K)`` probabilities in the classes' order."""


# ----------------------------------------------------------------------------------------------------------------
# aggregation


def network_probabilities(p: np.ndarray, networks: np.ndarray, exponent: float = 1.0
                          ) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-network probabilities from per-layer ones: :math:`P_k \propto \exp(\beta\,\mathrm{mean}_l
    \log\max(p_{lk}, \varepsilon))` over the network's layers (see the module docstring); β = ``exponent`` (1: the
    normalised geometric mean; :func:`fit_network_exponent` fits it on held-out networks).

    p : (n_layers, K) rows summing to 1; networks : (n_layers,) ids. Returns (sorted unique ids (m,), (m, K)).
    """
    p = np.asarray(p, dtype=np.float64)
    networks = np.asarray(networks)
    if p.ndim != 2 or networks.shape != (len(p),):
        raise ShapeError(f"need probabilities (n, K) and one network id per row, got {p.shape} and {networks.shape}")
    ids, inverse = np.unique(networks, return_inverse=True)
    sums = np.zeros((len(ids), p.shape[1]))
    np.add.at(sums, inverse, log_probs(p))
    mean = exponent * sums / np.bincount(inverse, minlength=len(ids))[:, None]
    e = np.exp(mean - mean.max(axis=1, keepdims=True))
    return ids, e / e.sum(axis=1, keepdims=True)


def fit_network_exponent(p: np.ndarray, y: np.ndarray, networks: np.ndarray) -> float:
    """The β of :func:`network_probabilities` with the lowest network-level NLL on these (calibration) networks,
    searched on log β ∈ [log 0.1, log 20] (bounded Brent). The layers of a network are correlated evidence: β = 1/L
    per layer would treat them as one, β = 1 · L as independent; the data choose between."""
    from scipy.optimize import minimize_scalar

    y, networks = np.asarray(y), np.asarray(networks)
    first = {n: i for i, n in reversed(list(enumerate(networks)))}

    def loss(log_beta: float) -> float:
        ids, P = network_probabilities(p, networks, float(np.exp(log_beta)))
        y_net = np.array([y[first[n]] for n in ids])
        return nll(P, y_net)

    res = minimize_scalar(loss, bounds=(np.log(0.1), np.log(20.0)), method="bounded", options={"xatol": 1e-3})
    return float(np.exp(res.x))


# ----------------------------------------------------------------------------------------------------------------
# separability


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion counts ``(K, K)``: rows the actual class index, columns the predicted one."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y), np.asarray(pred)), 1)
    return cm


def pairwise_accuracy(cm: np.ndarray) -> np.ndarray:
    r"""``(K, K)`` symmetric matrix of :math:`\mathrm{acc}_{ab}` (module docstring); NaN on the diagonal and where no
    layer of :math:`a` or :math:`b` was predicted as either."""
    cm = np.asarray(cm, dtype=np.float64)
    d = np.diag(cm)
    right = d[:, None] + d[None, :]
    total = right + cm + cm.T
    out = np.divide(right, total, out=np.full(cm.shape, np.nan), where=total > 0)
    np.fill_diagonal(out, np.nan)
    return out


def describe_observables(obs_names: Sequence[str]) -> str:
    """Plain words for a set of statistics: ``"activity"``, ``"weights"``, ``"activity and gradients"``, …"""
    families = [("weight", "weights"), ("act", "activity"), ("grad", "gradients")]
    present = [word for prefix, word in families if any(str(n).startswith(prefix) for n in obs_names)]
    if len(present) == 3:
        return "weights, activity and gradients"
    return " and ".join(present) if present else "these statistics"


def indistinguishable_pairs(cm: np.ndarray, classes: Sequence[str], what: str, threshold: float = PAIR_THRESHOLD,
                            level: str = "one layer") -> list[dict]:
    """Rule pairs whose held-out two-way accuracy (:func:`pairwise_accuracy` of ``cm``) is below ``threshold``,
    lowest first, each ``{"rules": [a, b], "accuracy", "n", "statement"}`` with the statement
    ``"fa vs ia: not distinguishable with activity from one layer (held-out accuracy 0.55)"``."""
    acc = pairwise_accuracy(cm)
    cm = np.asarray(cm)
    out = []
    for i in range(len(classes)):
        for j in range(i + 1, len(classes)):
            a = acc[i, j]
            if np.isfinite(a) and a < threshold:
                n = int(cm[i, i] + cm[i, j] + cm[j, i] + cm[j, j])
                out.append({"rules": [str(classes[i]), str(classes[j])], "accuracy": float(a), "n": n,
                            "statement": f"{classes[i]} vs {classes[j]}: not distinguishable with {what} from "
                                         f"{level} (held-out accuracy {a:.2f})"})
    return sorted(out, key=lambda r: r["accuracy"])


# ----------------------------------------------------------------------------------------------------------------
# the protocol


def network_folds(networks: np.ndarray, labels: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """A fold index per row: every row of a network in one fold, folds stratified by label
    (``StratifiedGroupKFold(shuffle=True, random_state=seed)``)."""
    networks, labels = np.asarray(networks), np.asarray(labels)
    fold = np.full(len(networks), -1)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for f, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels, networks)):
        fold[test] = f
    return fold


def fewest_networks(networks: np.ndarray, labels: np.ndarray) -> int:
    """The number of distinct networks of the label with the fewest."""
    pairs = np.unique(np.stack([np.asarray(labels).astype(str), np.asarray(networks).astype(str)]), axis=1)
    return int(np.unique(pairs[0], return_counts=True)[1].min())


@dataclass
class Heldout:
    """Held-out predictions of :func:`heldout_predictions` (rows are (network, layer), in the input order)."""

    y: np.ndarray                  # (n,) class index
    networks: np.ndarray           # (n,) network id
    fold: np.ndarray               # (n,) fold
    raw: np.ndarray                # (n, K) from a classifier trained without the row's network
    calibrated: np.ndarray         # (n, K) and calibrated without it
    fold_methods: list[str]        # calibrator chosen for each scored fold
    calibrator: Calibrator         # the deployed calibrator (fitted on ``raw`` of all rows)
    calibrator_scores: dict[str, float]
    fold_exponents: list[float] = field(default_factory=list)  # network pooling β of each scored fold
    network_exponent: float = 1.0  # the deployed β (fitted on the held-out calibrated predictions of all networks)
    audit: list[dict] = field(default_factory=list)  # per fold: networks scored / seen by classifier, calibrator


def _count_check(networks: np.ndarray, y: np.ndarray, n_folds: int) -> int:
    fewest = fewest_networks(networks, y)
    if fewest < MIN_NETWORKS_PER_RULE:
        raise ConfigError(f"calibration on held-out networks needs at least {MIN_NETWORKS_PER_RULE} networks of "
                          f"every rule, the smallest rule has {fewest}")
    return min(n_folds, fewest)


def _choice_folds(networks: np.ndarray, n: int) -> np.ndarray:
    """Networks dealt round robin (in order of first appearance) to ``min(n, #networks)`` folds."""
    _, first, inverse = np.unique(networks, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return (rank % min(n, len(first)))[inverse]


def heldout_predictions(fit_predict: FitPredict, y: np.ndarray, networks: np.ndarray, seed: int = 0, *,
                        n_folds: int = DEFAULT_FOLDS, n_choice: int = DEFAULT_CHOICE_FOLDS,
                        methods: Sequence[str] = CALIBRATORS) -> Heldout:
    """Run the protocol of the module docstring (``n_folds`` folds; the calibrator of each is chosen by NLL
    cross-fitted over ``n_choice`` groups of its calibration networks).

    fit_predict : trains a classifier on rows ``train`` (with a seed) and returns probabilities for rows ``test``.
    y : (n,) class indices 0..K−1; networks : (n,) network ids. Raises :class:`ConfigError` when a rule has fewer
    than :data:`MIN_NETWORKS_PER_RULE` networks.
    """
    y, networks = np.asarray(y), np.asarray(networks).astype(str)
    k_folds = _count_check(networks, y, n_folds)
    fold = network_folds(networks, y, k_folds, rng.int_seed(seed, "calibration-folds", modulus=_MOD))
    raw = calibrated = None
    methods_chosen, audit, exponents = [], [], []
    for k in range(k_folds):
        scored, calib = np.flatnonzero(fold == k), np.flatnonzero(fold == (k + 1) % k_folds)
        train = np.flatnonzero((fold != k) & (fold != (k + 1) % k_folds))
        p = fit_predict(train, np.concatenate([calib, scored]), rng.int_seed(seed, "calibration-fit", k,
                                                                              modulus=_MOD))
        p_calib, p_scored = p[:len(calib)], p[len(calib):]
        if raw is None:
            raw, calibrated = np.zeros((len(y), p.shape[1])), np.zeros((len(y), p.shape[1]))
        raw[scored] = p_scored
        cal, _ = choose_calibrator(p_calib, y[calib], _choice_folds(networks[calib], n_choice), methods)
        calibrated[scored] = cal.transform(p_scored)
        methods_chosen.append(cal.name)
        exponents.append(fit_network_exponent(cal.transform(p_calib), y[calib], networks[calib]))
        audit.append({"scored": set(networks[scored]), "classifier": set(networks[train]),
                      "calibrator": set(networks[calib])})
    final, scores = choose_calibrator(raw, y, fold, methods)
    return Heldout(y=y, networks=networks, fold=fold, raw=raw, calibrated=calibrated, fold_methods=methods_chosen,
                   calibrator=final, calibrator_scores=scores, audit=audit, fold_exponents=exponents,
                   network_exponent=fit_network_exponent(calibrated, y, networks))


PROTOCOL = ("Networks are dealt to {k} folds, stratified by rule. For each fold, the classifier is trained on {a} "
            "other folds' networks, the calibrator (none, temperature or isotonic, the lowest NLL cross-fitted over "
            "networks) is chosen and fitted on the classifier's predictions for the one remaining fold, and both "
            "are applied to this fold's layers. The numbers below come only from layers whose network neither the "
            "classifier nor the calibrator saw. The deployed calibrator is chosen the same way on the held-out "
            "predictions of all networks and applied to the classifier trained on every network.")


def _heldout_networks(held: Heldout) -> tuple[np.ndarray, np.ndarray]:
    """Per-network held-out probabilities, each fold's networks pooled with the β fitted on its calibration fold
    (β = 1 for a record without exponents)."""
    exps = held.fold_exponents or [1.0] * (int(held.fold.max()) + 1)
    parts = [network_probabilities(held.calibrated[held.fold == k], held.networks[held.fold == k], b)
             for k, b in enumerate(exps) if (held.fold == k).any()]
    ids = np.concatenate([i for i, _ in parts])
    P = np.concatenate([q for _, q in parts])
    order = np.argsort(ids)
    return ids[order], P[order]


def summarise(held: Heldout, classes: Sequence[str], obs_names: Sequence[str], seed: int = 0,
              threshold: float = PAIR_THRESHOLD) -> dict:
    """The JSON-able calibration and separability record stored in a model (see the module docstring).

    Keys: ``available`` (True), ``method`` / ``calibrator`` (the deployed calibrator and its description),
    ``cross_fitted_nll`` (per method), ``fold_methods``, ``ece_layer`` / ``ece_network`` (calibrated held-out,
    top-label, 10 equal-width bins), ``ece_layer_uncalibrated``, ``ece_floor_layer`` (mean and 95 % of a perfectly
    calibrated sample's ECE), ``ece_bound_layer``, ``nll_layer`` / ``nll_layer_uncalibrated``,
    ``reliability_layer`` / ``reliability_network``, ``accuracy_layer`` / ``accuracy_network``,
    ``confusion_layer`` / ``confusion_network``, ``pairwise`` (every pair, layer and network accuracies),
    ``indistinguishable`` (:func:`indistinguishable_pairs` of the layer confusion), ``threshold``, ``labels``,
    ``n_layers``, ``n_networks``, ``n_folds``, ``protocol``.
    """
    classes = [str(c) for c in classes]
    K = len(classes)
    y, p, raw = held.y, held.calibrated, held.raw
    ids, P = _heldout_networks(held)
    first = {n: i for i, n in reversed(list(enumerate(held.networks)))}
    y_net = np.array([y[first[n]] for n in ids])
    cm_layer, cm_net = confusion(y, p.argmax(1), K), confusion(y_net, P.argmax(1), K)
    acc_l, acc_n = pairwise_accuracy(cm_layer), pairwise_accuracy(cm_net)
    pairs = [{"rules": [classes[i], classes[j]], "accuracy_layer": _num(acc_l[i, j]),
              "accuracy_network": _num(acc_n[i, j])} for i in range(K) for j in range(i + 1, K)]
    floor = ece_noise_floor(p, rng.numpy_rng(seed, "ece-noise-floor"))
    what = describe_observables(obs_names)
    k_folds = int(held.fold.max()) + 1
    return {
        "available": True, "method": held.calibrator.name, "calibrator": held.calibrator.describe(),
        "cross_fitted_nll": {k: float(v) for k, v in held.calibrator_scores.items()},
        "fold_methods": list(held.fold_methods), "labels": classes,
        "ece_layer": expected_calibration_error(p, y), "ece_network": expected_calibration_error(P, y_net),
        "ece_layer_uncalibrated": expected_calibration_error(raw, y),
        "ece_floor_layer": [floor[0], floor[1]], "ece_bound_layer": ece_clt_bound(p),
        "nll_layer": nll(p, y), "nll_layer_uncalibrated": nll(raw, y),
        "reliability_layer": reliability_bins(p, y), "reliability_network": reliability_bins(P, y_net),
        "accuracy_layer": float((p.argmax(1) == y).mean()), "accuracy_network": float((P.argmax(1) == y_net).mean()),
        "confusion_layer": cm_layer.tolist(), "confusion_network": cm_net.tolist(), "pairwise": pairs,
        "indistinguishable": indistinguishable_pairs(cm_layer, classes, what, threshold),
        "threshold": float(threshold), "observables_in_words": what,
        "network_exponent": float(held.network_exponent), "fold_network_exponents": list(held.fold_exponents),
        "n_layers": int(len(y)), "n_networks": int(len(ids)), "n_folds": k_folds,
        "protocol": PROTOCOL.format(k=k_folds, a=k_folds - 2),
    }


def unavailable(reason: str) -> dict:
    """The calibration record of a model that could not be calibrated (its probabilities are the classifier's)."""
    return {"available": False, "reason": reason, "method": "none", "indistinguishable": [], "pairwise": []}


def _num(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None
