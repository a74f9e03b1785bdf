"""Offline tasks: shapes, class counts, standardisation, determinism, probe disjointness, no network."""

from __future__ import annotations

import math
import random
import socket

import numpy as np
import pytest
import torch

from learnscope import datasets
from learnscope.datasets import TASKS, load_task
from learnscope.errors import ConfigError, UnknownNameError

# (n_train, n_test, flat input dim) from the sources: digits 1797 = 1400 + 397, MNIST-5k 5000 = 4000 + 1000,
# mnist1d's own 80/20 split of 5000, teachers 1400 / 600 (identify-spec §6.4).
SIZES = {"digits": (1400, 397, 64), "mnist5k": (4000, 1000, 784), "mnist1d": (4000, 1000, 40),
         "teacher_classification": (1400, 600, 64), "teacher_regression": (1400, 600, 64)}


def rows(x: torch.Tensor) -> set[bytes]:
    return {r.tobytes() for r in x.reshape(len(x), -1).numpy()}


@pytest.mark.parametrize("name", TASKS)
def test_shapes_dtypes_and_probe(name):
    t = load_task(name)
    n_train, n_test, d = SIZES[name]
    assert t.x_train.shape == (n_train, d) and t.x_test.shape == (n_test, d) and t.input_shape == (d,)
    assert t.x_train.dtype == torch.float32 and t.probe.shape == (128, d)
    assert torch.equal(t.probe, t.x_test[:128])
    assert not rows(t.x_train) & rows(t.x_test)  # test (hence probe) disjoint from train
    if name == "teacher_regression":
        assert t.kind == "regression" and math.isnan(t.chance) and t.n_out == 10
        assert t.y_train.shape == (n_train, 10) and t.y_train.dtype == torch.float32
        np.testing.assert_allclose(t.y_train.mean(0).numpy(), 0, atol=1e-5)
        np.testing.assert_allclose(t.y_train.std(0, correction=0).numpy(), 1, atol=1e-5)
    else:
        assert t.kind == "classification" and t.n_out == 10 and t.chance == pytest.approx(0.1)
        assert t.y_train.shape == (n_train,) and t.y_train.dtype == torch.int64
        counts = np.bincount(t.y_train.numpy(), minlength=10)
        assert len(counts) == 10 and counts.min() > 0.05 * n_train  # every class present, none starved


def test_digits_split_is_a_partition_of_sklearn_digits():
    from sklearn.datasets import load_digits

    t = load_task("digits", seed=2)
    y_all = np.concatenate([t.y_train.numpy(), t.y_test.numpy()])
    np.testing.assert_array_equal(np.bincount(y_all), np.bincount(load_digits().target))


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_per_pixel_standardisation_with_train_statistics(name):
    t = load_task(name, seed=1)
    x = t.x_train.double().numpy()
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    sd = x.std(0)
    # std = raw_std / max(raw_std, STD_FLOOR): 1 for ordinary pixels, below 1 only for (near-)constant ones
    assert sd.max() <= 1 + 1e-5 and np.sum(np.abs(sd - 1) < 1e-5) > 0.5 * x.shape[1]
    assert np.abs(t.x_test.double().numpy().mean(0)).max() > 1e-3  # test data uses the train statistics
    if name == "digits":  # pixel 0 is always 0 in sklearn digits: a floored, all-zero column, not NaN
        assert np.all(x[:, 0] == 0)


def test_teacher_tasks_share_inputs_and_teacher_is_balanced():
    c, r = load_task("teacher_classification", seed=3), load_task("teacher_regression", seed=3)
    assert torch.equal(c.x_train, r.x_train) and torch.equal(c.x_test, r.x_test)
    assert float(c.x_train.mean()) == pytest.approx(0, abs=0.02) and float(c.x_train.std()) == pytest.approx(1, 0.02)
    freq = np.bincount(c.y_train.numpy(), minlength=10) / len(c.y_train)
    assert freq.min() > 0.06 and freq.max() < 0.14


@pytest.mark.parametrize("name", TASKS)
def test_same_seed_same_tensors_other_seed_differs(name):
    datasets._mnist1d_raw.cache_clear()  # regenerate mnist1d rather than hitting the cache
    a = load_task(name, seed=3, n_probe=16)
    datasets._mnist1d_raw.cache_clear()
    b = load_task(name, seed=3, n_probe=16)
    for f in ("x_train", "y_train", "x_test", "y_test", "probe"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    if name != "mnist1d":  # (mnist1d's use of the seed is checked against make_dataset below; saves a generation)
        c = load_task(name, seed=4, n_probe=16)
        assert not torch.equal(a.x_train, c.x_train)


@pytest.mark.parametrize("name", ["digits", "teacher_classification"])
def test_n_train_subsets_without_changing_test(name):
    full, small = load_task(name, seed=5), load_task(name, seed=5, n_train=100)
    assert small.x_train.shape[0] == 100 and torch.equal(full.y_test, small.y_test)
    assert torch.equal(full.y_train[:100], small.y_train)
    # same test examples; for digits only the (train-statistics) per-pixel affine standardisation changes
    a, b = full.x_test.double().numpy(), small.x_test.double().numpy()
    for c in range(a.shape[1]):
        if a[:, c].std() > 0 and b[:, c].std() > 0:
            assert np.corrcoef(a[:, c], b[:, c])[0, 1] == pytest.approx(1.0, abs=1e-6)
    if name.startswith("teacher"):
        assert torch.equal(full.x_test, small.x_test)


def test_image_layouts():
    flat, img = load_task("digits"), load_task("digits", image=True)
    assert img.x_train.shape == (1400, 1, 8, 8) and img.input_shape == (1, 8, 8) and img.probe.shape == (128, 1, 8, 8)
    assert torch.equal(img.x_train.reshape(1400, 64), flat.x_train)
    assert load_task("mnist5k", image=True).x_test.shape == (1000, 1, 28, 28)
    assert load_task("mnist1d", seed=3, image=True).x_train.shape == (4000, 1, 1, 40)  # seed 3: cached above
    with pytest.raises(ConfigError):
        load_task("teacher_classification", image=True)


def test_mnist1d_is_generated_locally_with_the_seed(monkeypatch):
    import mnist1d.data
    import requests

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(mnist1d.data, "get_dataset", no_network)
    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.setattr(socket, "socket", no_network)
    datasets._mnist1d_raw.cache_clear()
    np_state, py_state = np.random.get_state(), random.getstate()
    t = load_task("mnist1d", seed=7)
    after = np.random.get_state()
    assert all(np.array_equal(u, v) for u, v in zip(np_state, after, strict=True)) and random.getstate() == py_state

    args = mnist1d.data.get_dataset_args()
    args.seed = 7
    ref = mnist1d.data.make_dataset(args)  # reference generation (touches the global RNG; restore it)
    np.random.set_state(np_state)
    random.setstate(py_state)
    np.testing.assert_array_equal(t.y_train.numpy(), ref["y"])
    np.testing.assert_array_equal(t.y_test.numpy(), ref["y_test"])
    mu, sd = ref["x"].mean(), ref["x"].std()
    np.testing.assert_allclose(t.x_train.numpy(), (ref["x"] - mu) / sd, atol=1e-5)
    np.testing.assert_allclose(t.x_test.numpy(), (ref["x_test"] - mu) / sd, atol=1e-5)


def test_bad_requests_raise_learnscope_errors():
    with pytest.raises(UnknownNameError, match="did you mean 'digits'"):
        load_task("digit")
    with pytest.raises(ConfigError):
        load_task("digits", n_probe=500)
    with pytest.raises(ConfigError):
        load_task("digits", n_train=1500)
    with pytest.raises(ConfigError):
        load_task("mnist5k", seed=-1)
    with pytest.raises(ConfigError):
        load_task("teacher_regression", n_train=0)
