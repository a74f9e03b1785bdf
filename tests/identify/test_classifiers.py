"""Classifiers of rule identification: separability vs a shuffled-label control, the spec's grids, PCA capping,
the Conv1D network against a numpy forward pass, each classifier refusing the layout it does not take, determinism
and error paths."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.identify.classifiers import (
    CLASSIFIERS,
    CappedPCA,
    ChannelScaler,
    Conv1DClassifier,
    estimator_input,
    grid_size,
    make_classifier,
)

RULES = np.array(["adam", "fa", "ia", "sgdm"])


def _trajectories(n_per_rule: int, T: int, n_obs: int, seed: int):
    """Rule ``r`` makes statistic ``r`` grow by 0.5 per checkpoint; every other trajectory is flat noise around a
    random per-row level. Returns (X3 ``(n, T, n_obs)``, X_cat ``(n, 3)``, y ``(n,)``)."""
    rng = np.random.default_rng(seed)
    n = n_per_rule * len(RULES)
    code = np.repeat(np.arange(len(RULES)), n_per_rule)
    t = np.arange(T)
    X = rng.normal(0.0, 0.2, size=(n, T, n_obs)) + rng.normal(0.0, 0.5, size=(n, 1, n_obs))
    X[np.arange(n), :, code] += 0.5 * t[None, :]
    X_cat = np.eye(3)[rng.integers(0, 3, size=n)]
    return X, X_cat, RULES[code]


def _layout(X: np.ndarray, X_cat: np.ndarray, layout: str) -> np.ndarray:
    n, T, n_obs = X.shape
    if layout == "2d":
        return np.concatenate([X_cat, X.transpose(0, 2, 1).reshape(n, n_obs * T)], axis=1)
    return np.concatenate([np.repeat(X_cat[:, None, :], T, axis=1), X], axis=-1)


@pytest.fixture(scope="module")
def data():
    X, X_cat, y = _trajectories(n_per_rule=40, T=8, n_obs=5, seed=0)
    order = np.random.default_rng(1).permutation(len(y))
    train, test = order[: len(y) // 2], order[len(y) // 2:]
    return X, X_cat, y, train, test


AVAILABLE = [c for c in CLASSIFIERS if c != "minirocket" or importlib.util.find_spec("aeon") is not None]


@pytest.mark.parametrize("name", AVAILABLE)
def test_separable_rules_are_identified_and_shuffled_labels_are_not(name, data):
    X, X_cat, y, train, test = data
    F = _layout(X, X_cat, estimator_input(name))
    est, _ = make_classifier(name, grid="none", random_state=0)
    acc = float(np.mean(est.fit(F[train], y[train]).predict(F[test]) == y[test]))
    assert acc >= 0.9, f"{name}: {acc}"
    # Control: the labels of all rows permuted before the split, so a test row's label is independent of the
    # training rows near it (permuting only the training labels would leave each cluster a random plurality label
    # that matches its test rows with probability 1/4 per cluster, a much noisier control).
    y_shuffled = y[np.random.default_rng(2).permutation(len(y))]
    est, _ = make_classifier(name, grid="none", random_state=0)
    acc_shuffled = float(np.mean(est.fit(F[train], y_shuffled[train]).predict(F[test]) == y_shuffled[test]))
    # 80 test rows: chance 0.25 with binomial s.d. 0.048; 0.45 is four s.d. above chance
    assert acc_shuffled < 0.45, f"{name}: {acc_shuffled}"


@pytest.mark.parametrize("name", AVAILABLE)
def test_each_classifier_rejects_the_layout_it_does_not_declare(name):
    # estimator_input(name) is the layout the classifier takes: the separability test above fits every classifier on
    # it; here the other layout (same numbers, flattened or not) is refused at fit time instead of being misread.
    layout = estimator_input(name)
    assert layout in ("2d", "3d")
    X3 = np.random.default_rng(0).normal(size=(12, 4, 3))
    other = X3.reshape(12, -1) if layout == "3d" else X3
    est, _ = make_classifier(name, grid="none", random_state=0)
    with pytest.raises(ValueError, match=r"dim|shape"):  # sklearn's ValueError, or our ShapeError (a ValueError)
        est.fit(other, np.array(["a", "b"] * 6))


def test_original_grids_match_spec_section_5_1():
    _, rf = make_classifier("rf", "original")
    assert rf == {"cls__max_features": ["sqrt", "log2", None], "cls__n_estimators": [20, 50, 100, 500, 1000]}
    assert grid_size(rf) == 15
    C = [1.0, 5e1, 5e2, 5e3, 5e4, 5e5, 5e6]
    _, svm = make_classifier("svm", "original")
    assert svm == {"cls__C": C}
    _, svm_pca = make_classifier("svm_pca", "original")
    assert svm_pca[0]["cls__C"] == C and svm_pca[0]["pca"] == ["passthrough"]
    assert svm_pca[1]["pca__n_components"] == [10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 600]
    assert grid_size(svm_pca) == 7 + 77
    _, conv = make_classifier("conv1d", "original")
    # kernel sizes: ceil(f * 21) for f in {3e-3, 7e-3, 0.05, 0.25, 0.5, 1.0} = {1, 1, 2, 6, 11, 21}
    assert conv["cls__ksize"] == [1, 2, 6, 11, 21]
    assert conv["cls__init_lr"] == [1e-3, 1e-4] and conv["cls__max_epochs"] == [400]
    assert conv["cls__train_batch_size"] == [512, 1024] and conv["cls__num_filters"] == [20, 40]
    assert conv["cls__stride"] == [1, 2, 4] and conv["cls__pool_type"] == [None, "max", "avg"]
    assert conv["cls__weight_decay"] == [1e-4, 0.0]
    assert grid_size(conv) == 720
    for name in ("rf", "svm", "svm_pca", "conv1d", "hgb"):
        est, reduced = make_classifier(name, "reduced")
        assert 1 <= grid_size(reduced) < 10
        grids = reduced if isinstance(reduced, list) else [reduced]
        valid = est.get_params()
        assert all(k in valid for g in grids for k in g), name
        assert make_classifier(name, "none")[1] == {}


def test_random_forest_and_svm_are_seeded():
    est, _ = make_classifier("rf", "none", random_state=7)
    assert est.get_params()["cls__random_state"] == 7
    est, _ = make_classifier("svm_pca", "none", random_state=7)
    assert est.get_params()["cls__random_state"] == 7 and est.get_params()["pca__random_state"] == 7


def test_pca_components_are_capped_at_the_feature_count():
    rng = np.random.default_rng(0)
    X = np.concatenate([np.eye(3)[rng.integers(0, 3, 50)], rng.normal(size=(50, 10))], axis=1)
    pca = CappedPCA(n_components=600).fit(X)
    assert pca.n_components_ == 10
    Z = pca.transform(X)
    assert Z.shape == (50, 3 + 10)
    np.testing.assert_array_equal(Z[:, :3], X[:, :3])  # the one-hot passes through, first
    # All 10 components of 10 features keep the total variance (PCA is a rotation of the centred data).
    np.testing.assert_allclose(Z[:, 3:].var(axis=0).sum(), X[:, 3:].var(axis=0).sum(), rtol=1e-10)
    assert CappedPCA(n_components=600).fit(X[:6]).n_components_ == 6  # and at the sample count
    y = np.array(["a", "b"])[rng.integers(0, 2, 50)]
    est, _ = make_classifier("svm_pca", "none")
    est.set_params(pca__n_components=600).fit(X, y)  # the original dropped this grid point with an exception
    assert est.named_steps["pca"].n_components_ == 10


def test_signed_log1p_scaling_is_applied_before_standardisation():
    X = np.array([[-100.0, 0.0], [0.0, 1.0], [100.0, 3.0]])
    est, _ = make_classifier("svm", "none", scaling="signed_log1p")
    Z = est.named_steps["scale"].fit_transform(X)
    ref = np.sign(X) * np.log1p(np.abs(X))
    ref = (ref - ref.mean(0)) / ref.std(0)
    np.testing.assert_allclose(Z, ref, rtol=1e-12)
    cs = ChannelScaler("standard").fit(X.reshape(3, 1, 2) * np.ones((1, 4, 1)))
    np.testing.assert_allclose(cs.mean_, X.mean(0))


def _numpy_forward(model: Conv1DClassifier, X: np.ndarray) -> np.ndarray:
    net = model.net_
    W = net.conv.weight.detach().double().numpy()  # (F, C, k)
    b = net.conv.bias.detach().double().numpy()
    V = net.fc.weight.detach().double().numpy()
    c = net.fc.bias.detach().double().numpy()
    F_, _, k = W.shape
    s = model.stride
    T = X.shape[1]
    L = (T - k) // s + 1
    h = np.empty((X.shape[0], L, F_))
    for t in range(L):  # valid cross-correlation over time, channels-last input
        h[:, t, :] = np.einsum("ntc,fct->nf", X[:, t * s: t * s + k, :], W) + b
    h = np.maximum(h, 0.0)
    if model.pool_type == "max":
        z = h.max(axis=1)
    elif model.pool_type == "avg":
        z = h.mean(axis=1)
    else:
        z = h.reshape(len(X), L * F_)  # time-major flatten
    logits = z @ V.T + c
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("pool_type,ksize,stride", [(None, 3, 2), ("max", 2, 1), ("avg", 4, 1)])
def test_conv1d_is_one_conv_layer_and_a_linear_readout(pool_type, ksize, stride, data):
    X, X_cat, y, train, test = data
    F3 = _layout(X, X_cat, "3d")
    model = Conv1DClassifier(ksize=ksize, stride=stride, pool_type=pool_type, max_epochs=5, random_state=0)
    model.fit(F3[train], y[train])
    p = model.predict_proba(F3[test])
    np.testing.assert_allclose(p, _numpy_forward(model, F3[test]), atol=1e-5)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert (p >= 0).all()
    np.testing.assert_array_equal(model.predict(F3[test]), model.classes_[p.argmax(axis=1)])


def test_conv1d_is_deterministic_given_random_state(data):
    X, X_cat, y, train, test = data
    F3 = _layout(X, X_cat, "3d")
    probs = [Conv1DClassifier(max_epochs=5, random_state=s).fit(F3[train], y[train]).predict_proba(F3[test])
             for s in (3, 3, 4)]
    np.testing.assert_array_equal(probs[0], probs[1])
    assert not np.allclose(probs[0], probs[2])


def test_conv1d_weight_decay_is_half_l2_of_all_parameters():
    # One full-batch Adam step from the same init: the first Adam update is -lr * sign(grad) (for |grad| >> eps),
    # so the sign of the gradient of 0.5*wd*|theta|^2 + CE decides it. With a huge wd the decay term dominates:
    # every parameter moves by lr towards zero (biases start at zero and are pulled by CE only).
    X = np.random.default_rng(0).normal(size=(8, 5, 2))
    y = np.array([0, 1] * 4)
    a = Conv1DClassifier(ksize=2, max_epochs=0, train_batch_size=8, random_state=1).fit(X, y)
    b = Conv1DClassifier(ksize=2, max_epochs=1, train_batch_size=8, weight_decay=1e6, init_lr=1e-3,
                         random_state=1).fit(X, y)
    w0 = a.net_.conv.weight.detach()
    w1 = b.net_.conv.weight.detach()
    torch.testing.assert_close(w1, w0 - 1e-3 * torch.sign(w0), atol=1e-6, rtol=0)


def test_conv1d_caps_kernel_and_batch_and_checks_shapes():
    X = np.random.default_rng(0).normal(size=(6, 4, 2))
    y = np.array(["a", "b", "c"] * 2)
    m = Conv1DClassifier(ksize=21, train_batch_size=1024, max_epochs=2).fit(X, y)
    assert m.ksize_ == 4
    assert m.predict_proba(X).shape == (6, 3)
    with pytest.raises(ShapeError):
        Conv1DClassifier().fit(X.reshape(6, 8), y)
    with pytest.raises(UnknownNameError):
        Conv1DClassifier(pool_type="median").fit(X, y)


def test_unknown_classifier_name_suggests_the_nearest():
    with pytest.raises(UnknownNameError, match="did you mean 'svm_pca'"):
        make_classifier("svm-pca")
    with pytest.raises(UnknownNameError, match="did you mean 'conv1d'"):
        estimator_input("conv1")
    with pytest.raises(UnknownNameError):
        make_classifier("rf", grid="full")


@pytest.mark.skipif(importlib.util.find_spec("aeon") is not None, reason="aeon is installed")
def test_minirocket_without_aeon_names_the_extra():
    with pytest.raises(ConfigError, match=r"pip install learnscope\[rocket\]"):
        make_classifier("minirocket")


def test_grid_size_counts_points():
    assert grid_size({}) == 1
    assert grid_size({"a": [1, 2], "b": [1, 2, 3]}) == 6
    assert grid_size([{"a": [1]}, {"a": [1, 2], "b": [0, 1]}]) == 1 + 4
