r"""Evaluation protocol: outer splits, inner model selection, scores (identify-spec §5.2, §7.3).

Outer splits (:func:`get_splits`):

* ``"row"``: the original lr-identify ``get_splits`` (:func:`original_splits`), balanced over rules, on rows
  (a row is a (network, layer), so layers of one network can fall on both sides; spec §8 item 5);
* ``"network"`` (the default for reported numbers): the same algorithm applied to *networks*, so every layer of a
  network is on one side, balanced over rules in number of networks;
* ``"heldout-arch"`` / ``"heldout-task"``: one split per architecture / task value, testing on every row of that
  value and training on every other row.

Per rule with :math:`n_{\min}` units (rows or networks) in the smallest rule,
:math:`n_\mathrm{test} = \max(1, \lfloor \texttt{test\_size}\, n_{\min} + \tfrac12 \rfloor)` units per rule are
tested and :math:`n_{\min} - n_\mathrm{test}` trained on ("category-balanced 75 %/25 %").

Inner model selection (:func:`inner_cv`): ``GridSearchCV`` scored by accuracy over a shuffled, seeded
``StratifiedGroupKFold`` (groups = networks, 5 folds or fewer when a rule has fewer networks), or the original
unshuffled ``StratifiedKFold(5)`` on rows (``inner="original"``). The best point is refitted on the whole
training split. Failures raise (the original skipped them silently, spec §8 item 6). :func:`fit_split` is that
per-split fit, shared by :func:`evaluate` and the permutation importances of
:mod:`learnscope.identify.runner`, so both fit the same model on the same split.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold

from learnscope import rng
from learnscope.errors import ConfigError, UnknownNameError
from learnscope.identify.classifiers import estimator_input, grid_size, make_classifier
from learnscope.identify.dataset import TrajectoryDataset
from learnscope.identify.tables import Evaluation
from learnscope.validation import check_positive_int, check_scalar

DEFAULT_TEST_SIZE = 0.25
"""Fraction of each rule's units (networks or rows) tested in an outer split ("category-balanced 75 %/25 %")."""
SPLIT_MODES: tuple[str, ...] = ("network", "row", "heldout-arch", "heldout-task")
INNER_MODES: tuple[str, ...] = ("grouped", "original")
_HELDOUT_COLUMN = {"heldout-arch": "architecture", "heldout-task": "task"}


@dataclass(frozen=True)
class Split:
    """One outer split: sorted row indices ``train`` and ``test``; ``held_out`` names the held-out value."""

    train: np.ndarray
    test: np.ndarray
    held_out: str | None = None


def original_splits(labels: np.ndarray, num_splits: int, num_per_class_test: int, num_per_class_train: int,
                    train_mask: np.ndarray | None = None, test_mask: np.ndarray | None = None,
                    seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Port of lr-identify ``cross_validation.get_splits`` (spec §5.2): the same index sets for the same inputs.

    With one ``np.random.RandomState(seed)`` for all splits, each split draws, for every test label in sorted
    order, ``num_per_class_test`` indices as the first entries of a permutation of that label's test pool; then,
    from the train pool minus those test indices, for every train label in sorted order,
    ``num_per_class_train`` indices the same way. ``train_mask`` / ``test_mask`` are the original's filters.
    Returns ``[{"train": sorted indices, "test": sorted indices}, ...]``.
    """
    labels = np.asarray(labels)
    n = len(labels)
    train_inds = np.arange(n) if train_mask is None else np.flatnonzero(np.asarray(train_mask, dtype=bool))
    test_inds = np.arange(n) if test_mask is None else np.flatnonzero(np.asarray(test_mask, dtype=bool))
    train_labels = np.unique(labels[train_inds])
    test_labels = np.unique(labels[test_inds])
    rng = np.random.RandomState(seed)  # a local generator; the original's exact stream
    splits = []
    for _ in range(num_splits):
        test = _pick_per_class(test_inds, labels, test_labels, num_per_class_test, rng, "test")
        remaining = np.setdiff1d(train_inds, test)
        train = _pick_per_class(remaining, labels, train_labels, num_per_class_train, rng, "train")
        splits.append({"train": train, "test": test})
    return splits


def _pick_per_class(inds: np.ndarray, labels: np.ndarray, classes: np.ndarray, k: int,
                    rng: np.random.RandomState, side: str) -> np.ndarray:
    """``k`` random rows of each class from ``inds`` (class by class, one permutation each), sorted."""
    chosen: list[int] = []
    for label in classes:
        pool = inds[labels[inds] == label]
        if len(pool) < k:
            raise ConfigError(f"{k} {side} rows per class requested but class {label!r} has only {len(pool)} left")
        chosen.extend(pool[rng.permutation(len(pool))[:k]])
    return np.sort(np.asarray(chosen, dtype=int))


def balanced_counts(labels: np.ndarray, test_size: float) -> tuple[int, int]:
    """``(n_test, n_train)`` per class for a category-balanced split of ``labels`` (see the module docstring)."""
    check_scalar("test_size", test_size, float, 0.0, 1.0, closed="neither")
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    n_min = int(counts.min())
    n_test = max(1, int(np.floor(test_size * n_min + 0.5)))
    if n_min - n_test < 1:
        raise ConfigError(f"the smallest rule has {n_min} unit(s): too few for a train/test split")
    return n_test, n_min - n_test


def get_splits(meta: pd.DataFrame, n_splits: int = 10, test_size: float = DEFAULT_TEST_SIZE, seed: int = 0,
               mode: str = "network") -> list[Split]:
    """Outer train/test splits of the rows of ``meta`` (columns ``rule``, ``network_id``, ``architecture``,
    ``task``); see the module docstring. ``n_splits``, ``test_size`` and ``seed`` do not apply to held-out
    modes (one deterministic split per value)."""
    if mode not in SPLIT_MODES:
        raise UnknownNameError("split mode", str(mode), SPLIT_MODES)
    check_positive_int("n_splits", n_splits)
    if mode in _HELDOUT_COLUMN:
        column = _HELDOUT_COLUMN[mode]
        values = meta[column].astype(str).to_numpy()
        distinct = np.unique(values)
        if len(distinct) < 2:
            raise ConfigError(f"{mode} needs at least two {column} values, the data has {list(distinct)}")
        return [Split(np.flatnonzero(values != v), np.flatnonzero(values == v), str(v)) for v in distinct]
    rules = meta["rule"].astype(str).to_numpy()
    if mode == "row":
        n_test, n_train = balanced_counts(rules, test_size)
        return [Split(s["train"], s["test"]) for s in original_splits(rules, n_splits, n_test, n_train, seed=seed)]
    nets = meta["network_id"].astype(str).to_numpy()
    net_ids, first = np.unique(nets, return_index=True)
    per_net = pd.Series(rules).groupby(nets).nunique()
    if (per_net > 1).any():
        raise ConfigError(f"network {per_net[per_net > 1].index[0]!r} carries more than one rule label")
    net_rules = rules[first]
    n_test, n_train = balanced_counts(net_rules, test_size)
    out = []
    for s in original_splits(net_rules, n_splits, n_test, n_train, seed=seed):
        out.append(Split(np.flatnonzero(np.isin(nets, net_ids[s["train"]])),
                         np.flatnonzero(np.isin(nets, net_ids[s["test"]]))))
    return out


def inner_cv(y: np.ndarray, groups: np.ndarray, seed: int, mode: str = "grouped", n_folds: int = 5
             ) -> StratifiedGroupKFold | StratifiedKFold:
    """The inner model-selection splitter for training labels ``y`` and network ids ``groups``.

    ``"grouped"``: ``StratifiedGroupKFold(shuffle=True, random_state=seed)`` with
    ``min(n_folds, fewest networks of any rule)`` folds; ``"original"``: ``StratifiedKFold(n_folds)`` unshuffled.
    """
    if mode not in INNER_MODES:
        raise UnknownNameError("inner CV mode", str(mode), INNER_MODES)
    if mode == "original":
        return StratifiedKFold(n_splits=n_folds)
    fewest = int(pd.Series(np.asarray(groups)).groupby(np.asarray(y)).nunique().min())
    k = min(n_folds, fewest)
    if k < 2:
        raise ConfigError("inner cross-validation needs at least two networks of every rule in each training split")
    return StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)


def split_seed_for(seed: int, i: int) -> int:
    """The classifier seed of outer split ``i`` (:func:`learnscope.rng.split_seed`)."""
    return rng.split_seed(seed, i)


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v if isinstance(v, (str, int, float, bool, type(None))) else str(v)


def sem(x: Any) -> float:
    """Standard error of the mean over splits, ``std(ddof=1) / √n``; NaN for fewer than two values."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def fit_split(classifier_name: str, grid: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int, *,
              inner: str = "grouped", scaling: str = "standard") -> tuple[Any, dict[str, Any]]:
    """Fit ``classifier_name`` on one outer split's training rows ``X``, ``y`` (network ids ``groups``).

    The estimator is seeded with ``seed`` (:func:`split_seed_for` of the split). A grid of one point is set and
    fitted directly; a larger grid is searched by ``GridSearchCV`` (accuracy, :func:`inner_cv` seeded with
    ``seed``; networks as groups when ``inner="grouped"``) and its best point refitted on all of ``X``.
    Returns ``(fitted model, the chosen grid point)``. Warnings (e.g. ``ConvergenceWarning``) propagate to the
    caller, who decides whether to count or silence them.
    """
    estimator, param_grid = make_classifier(classifier_name, grid, random_state=seed, scaling=scaling)
    if grid_size(param_grid) == 1:
        point = {k: v[0] for k, v in param_grid.items()} if isinstance(param_grid, dict) else {}
        return estimator.set_params(**point).fit(X, y), point
    cv = inner_cv(y, groups, seed, inner)
    search = GridSearchCV(estimator, param_grid, scoring="accuracy", cv=cv, n_jobs=1, refit=True,
                          error_score="raise")
    model = search.fit(X, y, groups=groups if inner == "grouped" else None).best_estimator_
    return model, search.best_params_


def dprime(cm: np.ndarray) -> np.ndarray:
    r"""Per-class :math:`d' = Z(\mathrm{TPR}) - Z(\mathrm{FPR})` of a confusion matrix (rows actual, columns
    predicted), clipped to ±5 as in the original ``metrics.py``."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    pos = cm.sum(axis=1)
    fp = cm.sum(axis=0) - tp
    neg = cm.sum() - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        d = norm.ppf(tp / pos) - norm.ppf(fp / neg)
    return np.clip(np.nan_to_num(d, nan=0.0, posinf=5.0, neginf=-5.0), -5.0, 5.0)


def evaluate(dataset: TrajectoryDataset, classifier_name: str, split_mode: str = "network", grid: str = "reduced",
             n_splits: int = 10, seed: int = 0, progress: Callable[[int, int], None] | None = None, *,
             test_size: float = DEFAULT_TEST_SIZE, inner: str = "grouped", scaling: str = "standard") -> Evaluation:
    """Outer splits × inner grid search (:func:`fit_split`) for ``classifier_name`` on ``dataset``; returns an
    :class:`~learnscope.identify.tables.Evaluation`:

    ``accuracy_mean/_sem/_per_split``, ``balanced_accuracy_mean/_sem/_per_split`` (s.e.m. = std(ddof=1)/√splits),
    ``labels`` (sorted rules), ``confusion_matrix`` (summed over splits, rows actual, columns predicted, in
    ``labels`` order), ``per_class_recall`` and ``dprime`` (of the summed matrix), ``chosen_params`` (one dict per
    split), ``held_out`` (held-out modes), ``n_train`` / ``n_test`` per split, ``convergence_warnings``.

    Each split's estimator and inner CV are seeded from ``(seed, split index)``; same inputs → same numbers.
    ``progress(done, total)`` is called after each split.
    """
    layout = estimator_input(classifier_name)
    make_classifier(classifier_name, grid, scaling=scaling)  # validates names before any work
    if inner not in INNER_MODES:
        raise UnknownNameError("inner CV mode", str(inner), INNER_MODES)
    X = dataset.features(layout)
    y = dataset.y
    groups = dataset.meta["network_id"].astype(str).to_numpy()
    labels = np.unique(y)
    splits = get_splits(dataset.meta, n_splits=n_splits, test_size=test_size, seed=seed, mode=split_mode)
    cm_total = np.zeros((len(labels), len(labels)), dtype=np.int64)
    acc, bacc, params, n_train, n_test = [], [], [], [], []
    n_conv = 0
    for i, split in enumerate(splits):
        Xte, yte = X[split.test], y[split.test]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model, chosen = fit_split(classifier_name, grid, X[split.train], y[split.train], groups[split.train],
                                      split_seed_for(seed, i), inner=inner, scaling=scaling)
            pred = model.predict(Xte)
        for w in caught:
            if issubclass(w.category, ConvergenceWarning):
                n_conv += 1
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        acc.append(float(accuracy_score(yte, pred)))
        bacc.append(float(balanced_accuracy_score(yte, pred)))
        cm_total += confusion_matrix(yte, pred, labels=labels)
        params.append({k: _plain(v) for k, v in chosen.items()})
        n_train.append(len(split.train))
        n_test.append(len(split.test))
        if progress is not None:
            progress(i + 1, len(splits))
    rows = cm_total.sum(axis=1)
    recall = np.divide(np.diag(cm_total), rows, out=np.full(len(labels), np.nan), where=rows > 0)
    acc_a, bacc_a = np.array(acc), np.array(bacc)
    result: Evaluation = {
        "classifier": classifier_name, "split_mode": split_mode, "grid": grid, "seed": int(seed),
        "inner": inner, "scaling": scaling, "condition": dataset.condition, "obs_names": list(dataset.obs_names),
        "checkpoints": [int(c) for c in dataset.checkpoints], "n_splits": len(splits),
        "accuracy_mean": float(acc_a.mean()), "accuracy_sem": sem(acc_a), "accuracy_per_split": acc,
        "balanced_accuracy_mean": float(bacc_a.mean()), "balanced_accuracy_sem": sem(bacc_a),
        "balanced_accuracy_per_split": bacc,
        "labels": [str(v) for v in labels], "confusion_matrix": cm_total.tolist(),
        "per_class_recall": {str(k): float(v) for k, v in zip(labels, recall, strict=True)},
        "dprime": {str(k): float(v) for k, v in zip(labels, dprime(cm_total), strict=True)},
        "chosen_params": params, "n_train": n_train, "n_test": n_test, "convergence_warnings": n_conv,
    }
    if split_mode in _HELDOUT_COLUMN:
        result["held_out"] = [s.held_out for s in splits]
    return result
