"""Task entries with objectives (issue 14 item 1): parsing, circuits, minibatches and the performance measures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learnscope import rng
from learnscope.circuits import MLP, ConvNet
from learnscope.errors import ConfigError, UnknownNameError
from learnscope.identify.grid import parse_grid
from learnscope.identify.objectives import DEFAULT_PROJECTION, check_task_entry, split_task_entry, task_objective
from learnscope.identify.simulation import train_and_record
from learnscope.identify.training_task import AUTOENCODER_BOTTLENECK, training_task


@pytest.mark.parametrize(("entry", "expected"), [
    ("digits", ("digits", "classification")), ("teacher_regression", ("teacher_regression", "regression")),
    ("mnist1d:contrastive", ("mnist1d", "contrastive")), ("teacher_classification:autoencoding",
                                                          ("teacher_classification", "autoencoding")),
])
def test_a_task_entry_names_its_dataset_and_objective(entry, expected):
    assert split_task_entry(entry) == expected == check_task_entry(entry)
    assert task_objective(entry) == expected[1]


@pytest.mark.parametrize(("entry", "fragment"), [
    ("digits:regression", "only 'teacher_regression' has regression targets"),
    ("teacher_regression:classification", "has no classes"),
    ("teacher_classification:contrastive", "needs augmented views"),
    ("digits:contrastiv", "did you mean 'contrastive'"),
    ("digit:autoencoding", "did you mean 'digits'"),
])
def test_an_impossible_task_entry_is_one_error_naming_the_fix(entry, fragment):
    raw = {"grid": {"tasks": [entry], "architectures": ["mlp_1x8"], "rules": ["sgdm"], "batch_sizes": [64],
                    "seeds": [0]}}
    with pytest.raises((ConfigError, UnknownNameError)) as err:
        parse_grid(raw)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_each_objective_gets_the_circuit_its_output_needs():
    d = 64  # 8x8 digits
    contrastive = training_task("digits:contrastive", n_train=64, n_probe=8).circuit("mlp_2x32")
    assert list(contrastive.sizes) == [d, 32, 32, 32, DEFAULT_PROJECTION]
    assert [layer.group for layer in contrastive.layers][-2:] == ["deep", "deep"]  # the projection head
    auto = training_task("digits:autoencoding", n_train=64, n_probe=8).circuit("mlp_2x32")
    assert list(auto.sizes) == [d, 32, 32, AUTOENCODER_BOTTLENECK, d]
    conv = training_task("digits:contrastive", n_train=64, n_probe=8, image=True).circuit("cnn")
    assert isinstance(conv, ConvNet) and conv.n_out == DEFAULT_PROJECTION
    plain = training_task("digits", n_train=64, n_probe=8).circuit("mlp_2x32")
    assert isinstance(plain, MLP) and list(plain.sizes) == [d, 32, 32, 10]


@pytest.mark.parametrize("image", [False, True])
def test_contrastive_minibatches_are_two_views_and_an_ensemble_draws_each_member_as_alone(image):
    task = training_task("digits:contrastive", n_train=64, n_probe=8, image=image)
    x, y = task.data.x_train[:5], task.data.y_train[:5]
    views, target = task.batch(x, y, torch.Generator().manual_seed(3))
    assert target is None and views.shape == (10, *x.shape[1:])
    # both views of input i are the input shifted by at most one pixel plus noise of s.d. 0.1: each is closer
    # to its own input (over the best shift) than to any other input
    flat = x.reshape(5, 8, 8)
    for row in range(10):
        v = views[row].reshape(8, 8)
        dist = [min(float((torch.roll(flat[j], (a, b), (0, 1)) - v)[1:-1, 1:-1].pow(2).mean())
                    for a in (-1, 0, 1) for b in (-1, 0, 1)) for j in range(5)]
        assert int(np.argmin(dist)) == row % 5
    gens = [torch.Generator().manual_seed(s) for s in (3, 4)]
    both, _ = task.batch(torch.stack([x, x.flip(0)]), None, gens)
    alone = [task.batch(xm, None, torch.Generator().manual_seed(s))[0] for xm, s in ((x, 3), (x.flip(0), 4))]
    assert torch.equal(both, torch.stack(alone))


def test_autoencoding_targets_are_the_inputs_and_classification_keeps_its_labels():
    auto = training_task("digits:autoencoding", n_train=64, n_probe=8)
    x, y = auto.data.x_train[:4], auto.data.y_train[:4]
    assert auto.batch(x, y, None)[1] is x
    assert training_task("digits", n_train=64, n_probe=8).batch(x, y, None)[1] is y


def _params(task, arch="mlp_1x16", seed=0):
    circuit = task.circuit(arch)
    return circuit, circuit.init_params(torch.Generator().manual_seed(seed))


def test_performance_measures_equal_their_plain_numpy_definitions():
    cls = training_task("digits", n_train=128, n_probe=8)
    circuit, params = _params(cls)
    ev = cls.evaluate(circuit, params)
    out = circuit.forward(params, cls.data.x_test).detach().numpy()
    assert float(ev.performance) == pytest.approx(np.mean(out.argmax(1) == cls.data.y_test.numpy()))
    assert cls.chance == pytest.approx(0.1)

    reg = training_task("teacher_regression", n_train=128, n_probe=8)
    circuit, params = _params(reg)
    out = circuit.forward(params, reg.data.x_test).detach().double().numpy()
    t = reg.data.y_test.double().numpy()
    r2 = 1 - ((out - t) ** 2).sum() / ((t - t.mean(0)) ** 2).sum()
    assert float(reg.evaluate(circuit, params).performance) == pytest.approx(r2, rel=1e-4)

    auto = training_task("digits:autoencoding", n_train=128, n_probe=8)
    circuit, params = _params(auto)
    ev = auto.evaluate(circuit, params)
    out = circuit.forward(params, auto.data.x_test).detach().double().numpy()
    t = auto.data.x_test.reshape(len(out), -1).double().numpy()
    assert float(ev.performance) == pytest.approx(1 - ((out - t) ** 2).sum() / ((t - t.mean(0)) ** 2).sum(),
                                                  rel=1e-4)
    assert float(ev.loss) == pytest.approx(float(np.mean((circuit.forward(params, auto.data.x_train).detach()
                                                          .double().numpy() - auto.data.x_train.double()
                                                          .reshape(128, -1).numpy()) ** 2)), rel=1e-4)
    assert math.isnan(float(ev.test_accuracy))


def test_contrastive_evaluation_uses_fixed_views_and_retrieval_chance_is_one_in_2m_minus_1():
    a = training_task("digits:contrastive", n_train=128, n_probe=8)
    b = training_task("digits:contrastive", n_train=128, n_probe=8)
    assert all(torch.equal(u, v) for u, v in zip(a.eval_views, b.eval_views, strict=True))
    m = a.data.x_test.shape[0]
    assert a.eval_views[1].shape[0] == 2 * m and a.chance == pytest.approx(1 / (2 * m - 1))
    circuit, params = _params(a)
    z = circuit.forward(params, a.eval_views[1]).detach().double().numpy()
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    s = u @ u.T
    np.fill_diagonal(s, -np.inf)
    expected = np.mean(s.argmax(1) == (np.arange(2 * m) + m) % (2 * m))
    assert float(a.evaluate(circuit, params).performance) == pytest.approx(expected)


def test_an_ensemble_is_evaluated_as_its_members_alone():
    for entry in ("digits", "digits:contrastive", "digits:autoencoding", "teacher_regression"):
        task = training_task(entry, n_train=64, n_probe=8)
        circuit = task.circuit("mlp_1x16")
        members = [circuit.init_params(torch.Generator().manual_seed(s)) for s in (0, 1)]
        stacked = [torch.stack(ps) for ps in zip(*members, strict=True)]
        ev = task.evaluate(circuit, stacked)
        for m, params in enumerate(members):
            alone = task.evaluate(circuit, params)
            for field in ("loss", "performance"):
                assert float(getattr(ev, field)[m]) == pytest.approx(float(getattr(alone, field)), rel=1e-5), entry


def test_every_objective_trains_records_its_column_and_performance_and_the_views_stream_is_per_seed():
    base = {"grid": {"tasks": ["digits:contrastive", "digits:autoencoding", "teacher_regression"],
                     "architectures": ["mlp_1x32"], "rules": ["sgdm"], "batch_sizes": [64], "seeds": [0]},
            "training": {"epochs": 10, "checkpoints": 3, "n_train": 512, "n_probe": 16},
            "rules": {"sgdm": {"lr": 0.05}}}
    from learnscope.identify.grid import expand

    for spec in expand(parse_grid(base)):
        row, obs = train_and_record(spec)
        assert row["status"] == "ok", row["reason"]
        objective = task_objective(spec["task"])
        assert row["objective"] == objective and set(obs.objective) == {objective}
        perf = row["performance_curve"]
        assert len(perf) == 3 and perf[-1] > max(perf[0], row["chance_performance"]), (spec["task"], perf)
        assert row["loss_curve"][-1] < row["loss_curve"][0]
    assert not torch.equal(torch.randn(3, generator=rng.torch_generator(0, rng.IDENTIFY_TRAINING_VIEWS)),
                           torch.randn(3, generator=rng.torch_generator(1, rng.IDENTIFY_TRAINING_VIEWS)))


def test_exclude_leaves_out_exactly_the_matching_networks_and_keeps_other_grids_ids():
    base = {"grid": {"tasks": ["digits", "teacher_regression"], "architectures": ["cnn", "mlp_1x8"],
                     "rules": ["sgdm", "fa"], "batch_sizes": [64], "seeds": [0, 1]},
            "training": {"epochs": 1, "checkpoints": 2, "n_train": 128, "n_probe": 8}}
    from learnscope.identify.grid import check_feasible, expand

    full = expand(parse_grid(base))
    raw = {**base, "grid": {**base["grid"], "exclude": [{"task": "teacher_regression", "architecture": "cnn"},
                                                        {"rule": "fa", "seed": 1}]}}
    grid = parse_grid(raw)
    kept = expand(grid)
    dropped = [s for s in full if (s["task"], s["architecture"]) == ("teacher_regression", "cnn")
               or (s["rule"], s["seed"]) == ("fa", 1)]
    assert len(kept) == len(full) - len(dropped) == 16 - 4 - 4 + 1
    assert {s["network_id"] for s in kept} == {s["network_id"] for s in full} - {s["network_id"] for s in dropped}
    assert "exclude" not in parse_grid(base)["grid"]  # a grid without it keeps the store meta of before
    check_feasible(grid)  # the teacher has no image layout: without the exclusion this pair is refused
    with pytest.raises(ConfigError, match="exclude"):
        check_feasible(parse_grid(base))
    for bad, fragment in (([{"task": "mnist5k"}], "not in [grid] tasks"), ([{"rules": "fa"}], "did you mean 'rule'"),
                          ([{"task": "digits"}, {"task": "teacher_regression"}], "leaves no network")):
        with pytest.raises((ConfigError, UnknownNameError)) as err:
            parse_grid({**base, "grid": {**base["grid"], "exclude": bad}})
        assert fragment in str(err.value), str(err.value)
