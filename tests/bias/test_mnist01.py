"""Fig 6 (MNIST 0 vs 1) pieces: the digit domain and its split, the −std spread term, the CNN meta-learner, the small
CNN learner (against a torch.nn reference and finite differences), the agreement measure, config errors, and two
meta-steps end to end. The 30-step reproduction bar is in test_reproductions.py (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import skip_init

from learnscope import rng
from learnscope.bias.config import load_config, parse_config
from learnscope.bias.distances import neg_std
from learnscope.bias.experiment import CONTROL_SEED, build_components, run_experiment
from learnscope.bias.measures import (
    class_agreement,
    random_balanced_labels,
    split_control_errors,
    split_generalisation_error,
)
from learnscope.bias.metalearner import MetaCNN
from learnscope.datasets import mnist5k_digits
from learnscope.domains import Mnist01, SplitDataset, make_domain
from learnscope.errors import ConfigError, ShapeError
from learnscope.learners.small_cnn import SmallCNNLearner
from learnscope.learners.trained import Trained

F64 = torch.float64


# ----------------------------------------------------------------------------------------------------- domain


def test_mnist01_split_is_disjoint_stratified_and_scaled_to_plus_minus_one():
    d = Mnist01()
    x, y = mnist5k_digits((0, 1))
    src = d.source_indices
    assert (d.n_pool, d.n_test) == (300, 700) and d.dim == 784
    assert sorted(src.tolist()) == list(range(1000))  # every 0/1 image once: pool and test set are disjoint
    assert np.bincount(d.labels[:300]).tolist() == [150, 150]
    assert np.bincount(d.labels[300:]).tolist() == [350, 350]
    np.testing.assert_array_equal(d.labels, y[src])
    np.testing.assert_array_equal(d.points.numpy(), 2 * x[src] - 1)  # Normalize((0.5,), (0.5,))
    assert d.points.min() == -1 and d.points.max() == 1
    assert np.array_equal(Mnist01().source_indices, src)  # fixed split
    assert not np.array_equal(Mnist01(split_seed=1).source_indices[:300], src[:300])
    assert make_domain(d.describe()).describe() == {"name": "mnist01", "n_train": 300, "split_seed": 0}


def test_meta_batch_trains_on_the_pool_and_tests_on_the_test_set(gen):
    d = Mnist01(n_train=40)
    whole = d.meta_indices(2, 40, 960, gen(0))
    np.testing.assert_array_equal(whole.numpy(), np.tile(np.arange(1000), (2, 1)))
    idx = d.meta_indices(3, 10, 25, gen(1))
    assert idx.shape == (3, 35)
    assert (idx[:, :10] < 40).all() and (idx[:, 10:] >= 40).all()
    assert all(len(set(row[:10].tolist())) == 10 and len(set(row[10:].tolist())) == 25 for row in idx)
    x = d.meta_batch(3, 10, 25, gen(1), dtype=F64)
    torch.testing.assert_close(x, d.points[idx])
    with pytest.raises(ConfigError, match="search.n_train <= 40"):
        d.meta_indices(1, 41, 5, gen(0))


@pytest.mark.parametrize("spec", [{"name": "mnist01", "n_train": 1}, {"name": "mnist01", "n_train": 999},
                                  {"name": "mnist01", "split_seed": -1}, {"name": "mnist01", "n_pool": 10}])
def test_mnist01_bad_parameters(spec):
    with pytest.raises(ConfigError):
        make_domain(spec)


# ----------------------------------------------------------------------------------------------- loss terms


def test_neg_std_is_minus_numpy_population_std(gen):
    y = torch.rand(4, 37, generator=gen(0), dtype=F64)
    np.testing.assert_allclose(neg_std(y).numpy(), -np.std(y.numpy(), axis=1), rtol=1e-12)
    half = torch.tensor([[0.0, 1.0] * 5])
    assert neg_std(half).item() == pytest.approx(-0.5)  # the bound for labels in [0, 1]


def test_class_agreement_reads_the_labelling_either_way_round():
    classes = np.array([0, 0, 1, 1, 1, 0, 1, 0])
    assert class_agreement(classes * 0.9 + 0.05, classes) == {"agreement": 1.0, "accuracy": 1.0, "class_labelled_1": 1}
    flipped = class_agreement(1 - classes, classes)
    assert flipped["agreement"] == 1.0 and flipped["class_labelled_1"] == 0
    one_wrong = classes.astype(float)
    one_wrong[0] = 0.9  # a 0 labelled 1
    assert class_agreement(one_wrong, classes)["agreement"] == 7 / 8
    with pytest.raises(ConfigError):
        class_agreement(classes, classes + 2)


# ------------------------------------------------------------------------------------- learner-preference control


class _NearestNeighbour:
    """1-NN regression: each test point gets the label of its nearest training point (deterministic)."""

    def fit_predict(self, x_tr, y_tr, x_te, generator=None):
        return y_tr.gather(1, torch.cdist(x_te, x_tr).argmin(dim=-1))


class _PoolMean:
    """Predicts the mean training label everywhere."""

    def fit_predict(self, x_tr, y_tr, x_te, generator=None):
        return y_tr.mean(dim=1, keepdim=True).expand(-1, x_te.shape[1])


def _two_clusters() -> SplitDataset:
    """Classes 3 and 7 as two far-apart clusters in the plane: 3 + 3 pool points, 4 + 4 test points."""
    rng = np.random.default_rng(0)
    labels = np.array([3, 7, 3, 7, 7, 3] + [7, 3, 3, 7, 3, 7, 7, 3])
    points = np.where(labels[:, None] == 7, 5.0, -5.0) * np.array([1.0, 0.0]) + rng.normal(0, 0.3, (14, 2))
    return SplitDataset(points[:6], points[6:], labels=labels)


def test_random_balanced_labels_are_half_ones_in_pool_and_test_uniformly_placed():
    lab = random_balanced_labels(7, 10, 4000, np.random.default_rng(1))
    assert lab.shape == (4000, 17) and set(np.unique(lab)) == {0.0, 1.0}
    assert (lab[:, :7].sum(axis=1) == 3).all() and (lab[:, 7:].sum(axis=1) == 5).all()  # ⌊7/2⌋ and ⌊10/2⌋
    # each pool position is 1 with probability 3/7, each test position with 1/2: within 4 binomial std
    for part, p in ((lab[:, :7], 3 / 7), (lab[:, 7:], 1 / 2)):
        assert np.abs(part.mean(axis=0) - p).max() < 4 * np.sqrt(p * (1 - p) / 4000)
    assert len({row.tobytes() for row in lab[:50]}) > 40  # C(7,3)·C(10,5) = 8820 labellings: rows differ


def test_split_control_errors_equal_a_plain_loop_on_a_tiny_dataset():
    domain, draws, seed = _two_clusters(), 6, 4
    control = split_control_errors(_NearestNeighbour(), domain, 6, 8, draws=draws, seed=seed)
    # the class labelling is the classes (7 → 1), which 1-NN learns exactly on separated clusters
    assert control["class_labelling"]["mse"] == 0.0 and control["class_labelling"]["sem"] == 0.0
    classes = (domain.labels == 7).astype(float)
    np.testing.assert_array_equal(classes, [0, 1, 0, 1, 1, 0] + [1, 0, 0, 1, 0, 1, 1, 0])
    # random balanced: one labelling per draw, 1-NN written out as a loop
    x = domain.points.numpy()
    rows = random_balanced_labels(6, 8, draws, rng.numpy_rng(seed, rng.RANDOM_BALANCED_LABELS))  # its named stream
    errs = []
    for lab in rows:
        sq = []
        for j in range(6, 14):
            nearest = min(range(6), key=lambda i: float(((x[j] - x[i]) ** 2).sum()))
            sq.append((lab[nearest] - lab[j]) ** 2)
        errs.append(sum(sq) / len(sq))
    rb = control["random_balanced"]
    assert rb["mse"] == pytest.approx(np.mean(errs), abs=1e-7)
    assert rb["sem"] == pytest.approx(np.std(errs, ddof=1) / np.sqrt(draws), abs=1e-7)
    assert rb["relative"] == pytest.approx(np.mean(errs) / 0.5, abs=1e-6)  # E f² = ½ on a balanced test set
    assert rb["draws"] == draws and 0 < rb["mse"]
    # a learner predicting the pool mean (½ on a balanced pool of 6) scores exactly ¼ on any balanced labelling
    mean_control = split_control_errors(_PoolMean(), domain, 6, 8, draws=draws, seed=seed)
    assert mean_control["random_balanced"]["mse"] == pytest.approx(0.25, abs=1e-7)
    assert mean_control["class_labelling"]["mse"] == pytest.approx(0.25, abs=1e-7)


def test_split_generalisation_error_one_labelling_per_draw_matches_the_shared_labelling():
    """With a random sub-draw of the pool, a (draws, N) stack of one labelling equals passing it once, and each row
    of a stack is used by its own draw (a plain loop over draws with the same index draws)."""
    domain, draws = _two_clusters(), 5
    lab = random_balanced_labels(6, 8, draws, np.random.default_rng(3))
    once = split_generalisation_error(_NearestNeighbour(), lab[0], domain, 4, 5, draws=draws, seed=9, batch=2)
    stacked = split_generalisation_error(_NearestNeighbour(), np.tile(lab[0], (draws, 1)), domain, 4, 5,
                                         draws=draws, seed=9, batch=2)
    assert once == stacked
    got = split_generalisation_error(_NearestNeighbour(), lab, domain, 4, 5, draws=draws, seed=9, batch=2)
    g, x, errs = rng.torch_generator(9, rng.FEW_SHOT_TASKS), domain.points.numpy(), []  # the documented task stream
    idx = torch.cat([domain.meta_indices(b, 4, 5, g) for b in (2, 2, 1)]).numpy()
    for r in range(draws):
        tr, te = idx[r, :4], idx[r, 4:]
        pred = [lab[r][tr[np.argmin(((x[tr] - x[j]) ** 2).sum(axis=1))]] for j in te]
        errs.append(np.mean((np.array(pred) - lab[r][te]) ** 2))
    assert got["mse"] == pytest.approx(np.mean(errs), abs=1e-7)
    with pytest.raises(ShapeError, match="one labelling per draw"):
        split_generalisation_error(_NearestNeighbour(), lab[:3], domain, 4, 5, draws=draws)


# ---------------------------------------------------------------------------------------------- meta-learner


def _conv(W: torch.Tensor, b: torch.Tensor) -> nn.Conv2d:
    conv = skip_init(nn.Conv2d, W.shape[1], W.shape[0], W.shape[2], padding=W.shape[2] // 2, dtype=W.dtype)
    with torch.no_grad():
        conv.weight.copy_(W)
        conv.bias.copy_(b)
    return conv


def _linear(W: torch.Tensor, b: torch.Tensor) -> nn.Linear:
    lin = skip_init(nn.Linear, W.shape[0], W.shape[1], dtype=W.dtype)
    with torch.no_grad():
        lin.weight.copy_(W.T)
        lin.bias.copy_(b)
    return lin


@pytest.mark.parametrize("output", ["relu6", "hardsigmoid", "linear"])
def test_meta_cnn_equals_per_seed_torch_modules(output, gen):
    meta = MetaCNN((1, 8, 8), channels=(3, 4), kernel=3, output=output)
    params = meta.init([gen(0), gen(1)], F64)
    x = torch.randn(2, 5, 64, generator=gen(2), dtype=F64) * 3
    out = meta.forward(x, params)
    assert out.shape == (2, 5)
    final = {"relu6": [nn.ReLU6()], "hardsigmoid": [nn.Hardsigmoid()], "linear": []}[output]
    for s in range(2):
        p = [t[s].detach() for t in params]
        ref = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)), _conv(p[0], p[1]), nn.ReLU(), nn.MaxPool2d(2), _conv(p[2], p[3]), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), _linear(p[4], p[5]), *final,
        )
        want = ref(x[s]).squeeze(-1)
        if output == "relu6":
            want = want / 6
        torch.testing.assert_close(out[s], want)
    if output != "linear":
        assert out.min() >= 0 and out.max() <= 1


def test_meta_cnn_init_is_pytorch_default_and_bad_values_are_config_errors(gen):
    meta = MetaCNN((1, 28, 28))
    W1, b1, W2, b2, W3, b3 = meta.init([gen(0)])
    for t, fan in ((W1, 25), (b1, 25), (W2, 16 * 25), (b2, 16 * 25), (W3, 32 * 49), (b3, 32 * 49)):
        assert t.abs().max() <= fan**-0.5
        assert t.numel() < 400 or t.abs().max() > 0.99 * fan**-0.5  # P(fail) = 0.99^400 < 0.02 per tensor
    for kw in ({"kernel": 4}, {"output": "sigmoid"}, {"channels": [16]}, {"in_shape": (1, 30, 30)}):
        with pytest.raises(ConfigError):
            MetaCNN(**kw)
    with pytest.raises(ShapeError):
        meta.forward(torch.zeros(1, 3, 100))


# ---------------------------------------------------------------------------------------------------- learner


def test_small_cnn_learner_equals_the_same_torch_module_trained_by_trained(gen):
    """Same generator → same initial weights and minibatches → the same predictions as Trained(nn.Module)."""
    side = 8
    module = nn.Sequential(
        nn.Unflatten(1, (1, side, side)),
        skip_init(nn.Conv2d, 1, 3, 3, padding=1, dtype=F64), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        skip_init(nn.Linear, 3 * (side // 2) ** 2, 1, dtype=F64),
    )
    ours = SmallCNNLearner(channels=3, kernel=3, steps=7, lr=0.05, batch_size=4)
    ref = Trained(module, steps=7, lr=0.05, batch_size=4)
    x = torch.randn(3, 10, side * side, generator=gen(0), dtype=F64)
    y = torch.randn(3, 10, generator=gen(1), dtype=F64)
    xt = torch.randn(3, 6, side * side, generator=gen(2), dtype=F64)
    gens = [gen(10), gen(11), gen(12)]
    a = ours.fit_predict(x, y, xt, generator=gens)
    b = ref.fit_predict(x, y, xt, generator=[gen(10), gen(11), gen(12)])
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a[0], a[1])  # the learners differ


def test_small_cnn_meta_gradient_matches_central_finite_differences(gen):
    learner = SmallCNNLearner(in_shape=[1, 6, 6], channels=2, kernel=3, steps=4, lr=0.1, batch_size=3)
    x = torch.randn(1, 5, 36, generator=gen(0), dtype=F64)
    xt = torch.randn(1, 4, 36, generator=gen(1), dtype=F64)
    c = torch.randn(1, 4, generator=gen(2), dtype=F64)
    y0 = torch.randn(1, 5, generator=gen(3), dtype=F64)

    def loss(y: torch.Tensor) -> torch.Tensor:
        return (c * learner.fit_predict(x, y, xt, generator=gen(7))).sum()

    y = y0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(y), y)
    eps = 1e-6
    fd = torch.zeros_like(y0)
    with torch.no_grad():
        for j in range(5):
            e = torch.zeros_like(y0)
            e[0, j] = eps
            fd[0, j] = (loss(y0 + e) - loss(y0 - e)) / (2 * eps)
    assert fd.abs().max() > 1e-3  # the labels matter
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-9)


def test_small_cnn_learner_shape_errors(gen):
    with pytest.raises(ShapeError, match="square"):
        SmallCNNLearner().fit_predict(torch.zeros(1, 3, 10), torch.zeros(1, 3), torch.zeros(1, 2, 10),
                                      generator=gen(0))
    with pytest.raises(ConfigError):
        SmallCNNLearner(kernel=4)


# --------------------------------------------------------------------------------------------------- configs


def _raw(**changes) -> dict:
    raw = {
        "run": {"kind": "easiest", "seeds": [0]},
        "domain": {"name": "mnist01"},
        "learner": {"name": "small_cnn", "steps": 3},
        "meta": {"kind": "cnn"},
        "search": {"steps": 2, "n_train": 300, "n_test": 700, "distance": "neg_std", "alpha_d": 100.0},
    }
    for key, value in changes.items():
        section, name = key.split("__")
        raw[section][name] = value
    return raw


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"meta__hidden": 10}, "does not apply to meta.kind = 'cnn'"),
        ({"meta__kind": "cnm"}, "did you mean 'cnn'"),
        ({"meta__output": "relu"}, "did you mean 'relu6'"),
        ({"search__n_train": 301}, "search.n_train = 301 exceeds the 300 points"),
        ({"search__distance": "neg_sdt"}, "did you mean 'neg_std'"),
        ({"learner__channel": 3}, "did you mean 'channels'"),
        ({"learner__name": "small_cn"}, "did you mean 'small_cnn'"),
        ({"domain__name": "sphere"}, "meta.kind = 'cnn' needs an image domain"),
    ],
)
def test_config_errors_are_one_line(changes, match):
    with pytest.raises(ConfigError, match=match) as info:
        build_components(parse_config(_raw(**changes)))
    assert "\n" not in str(info.value)


def test_two_meta_steps_end_to_end_metrics_agree_with_the_saved_arrays(tmp_path):
    from learnscope.report.bias_report import write_report
    from learnscope.results import dumps_metrics

    cfg = load_config("fig6_mnist01", ["search.steps=2", "run.seeds=[1]", "analysis.gen_draws=2"])
    result = run_experiment(cfg, progress=False)
    (m,) = result.metrics["functions"][0]["per_seed"]
    values = result.arrays["f1_values"][0].astype(float)
    labels, test = result.arrays["eval_labels"], result.arrays["eval_is_test"]
    assert values.shape == (1000,) and test.sum() == 700 and (values >= 0).all() and (values <= 1).all()
    acc = np.mean((values[test] > 0.5) == (labels[test] == 1))
    assert m["agreement"] == pytest.approx(max(acc, 1 - acc), abs=1e-6)
    assert m["class_labelled_1"] == (1 if acc >= 0.5 else 0)
    assert m["label_std"] == pytest.approx(values.std(), rel=1e-5)
    # no linear fit in pixel space on a split dataset: its R² entries are missing numbers, which metrics.json
    # (strict JSON) writes as null, never as a number a reader could take for a fit
    (saved,) = json.loads(dumps_metrics(result.metrics), parse_constant=pytest.fail)["functions"][0]["per_seed"]
    assert saved["affine_r2"] is None and saved["linear_r2_no_bias"] is None and "linear_weights" not in saved
    assert result.functions[0].history["distribution"].shape == (2, 1)
    assert (result.functions[0].history["distribution"] < 0).all()  # −std, never a target distance
    # The control: the same learner on the digit labelling (digit 1 → 1), on the tasks of the control stream
    # (CONTROL_SEED), not of the run's own seeds: this run has seed 1 only, and its control is still that stream's.
    control = result.metrics["functions"][0]["control"]
    learner = result.components.learner
    digit = split_generalisation_error(learner, (labels == 1).astype(float), result.components.domain, 300, 700,
                                       draws=2, seed=CONTROL_SEED)
    assert control["class_labelling"] == digit
    assert set(control) == {"class_labelling", "random_balanced"} and control["random_balanced"]["draws"] == 2
    # the report shows the found labelling's numbers beside the control's (tables print 4 significant digits)
    (tmp_path / "run").mkdir()
    text = write_report(result, tmp_path / "run").read_text()
    for v in (m["agreement"], m["gen_mse"], control["class_labelling"]["mse"], control["random_balanced"]["mse"]):
        assert f">{v:.4g}<" in text, v
