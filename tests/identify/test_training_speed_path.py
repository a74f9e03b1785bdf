"""The one-network training fast path: the graph-free optimiser and rule step are the formula path bit for bit,
and divergence is still reported, at the step :class:`~learnscope.identify.simulation.Diverged` documents."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from learnscope.circuits import MLP
from learnscope.identify.grid import expand, parse_grid
from learnscope.identify.simulation import Diverged, setup_training, training_checkpoints
from learnscope.plasticity.optimisers import Optimiser
from learnscope.plasticity.rules import Rule, cross_entropy_loss, make_rule

# 512 examples in minibatches of 128: 4 steps per epoch, 12 steps, checkpoints at steps 0, 4, 8, 12
GRID = {
    "grid": {"tasks": ["digits"], "architectures": ["mlp_2x32"], "rules": ["sgdm"], "batch_sizes": [128],
             "seeds": [0]},
    "training": {"epochs": 3, "checkpoints": 4, "n_train": 512, "n_probe": 16, "weight_decay": 0.0},
    "conditions": [{"name": "clean"}],
}
MEASURED = (0, 4, 8, 12)


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits of a float tensor (so −0 ≠ +0 and equal NaNs compare equal)."""
    return t.detach().contiguous().view(torch.int32 if t.dtype == torch.float32 else torch.int64)


def _assert_bit_identical(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x is None) == (y is None)
        if x is not None:
            assert x.shape == y.shape and x.dtype == y.dtype
            assert torch.equal(_bits(x), _bits(y))


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_graph_free_optimiser_update_is_the_formula_path_bit_for_bit(name):
    """Without a graph the update runs as foreach calls; with one (inputs requiring grad) as the per-tensor
    formulas of the module doc. Both must give the same bits, signed zeros included, over many steps."""
    g = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (5,), (5, 3)]
    params = [torch.randn(s, generator=g) for s in shapes] + [None]
    params[1][:2] = 0.0  # exact zeros: θ − η·v with θ = η·v = 0 must stay +0
    params[1][2] = -0.0
    opt = Optimiser(name, lr=0.05, momentum=0.9, eps=1e-8)
    fast, fast_state = list(params), opt.init_state(params)
    slow, slow_state = list(params), opt.init_state(params)
    for t in range(1, 31):
        grads = [torch.randn(s, generator=g) * (0.0 if t % 7 == 0 else 1.0) for s in shapes] + [None]
        fast, fast_state = opt.update(fast, grads, fast_state, t)
        leaf = [None if p is None else p.detach().requires_grad_() for p in slow]
        out, slow_state = opt.update(leaf, grads, slow_state, t)
        assert out[0].requires_grad  # the formula path ran
        slow = [None if p is None else p.detach() for p in out]
        slow_state = {k: tuple(None if v is None else v.detach() for v in vs) for k, vs in slow_state.items()}
        _assert_bit_identical(fast, slow)
        for key in slow_state:
            _assert_bit_identical(fast_state[key], slow_state[key])


@pytest.mark.parametrize("rule_name", ["sgdm", "adam", "fa", "ia", "kp", "dfa"])
def test_rule_step_without_graph_equals_the_differentiable_step_bit_for_bit(rule_name):
    """Rule.step's graph-free path (foreach optimiser, no squeeze/sum nodes, no state round trip) against the
    create_graph=True path on the same inputs: identical parameters, state and loss after several steps."""
    net = MLP([6, 8, 8, 4])
    g = torch.Generator().manual_seed(1)
    rule = make_rule({"name": rule_name, "lr": 0.05, "weight_decay": 1e-3})
    p0 = net.init_params(g)
    s0 = rule.init_state(net, p0, torch.Generator().manual_seed(2))
    fast, fast_st = p0, s0
    slow, slow_st = p0, s0
    for _ in range(5):
        x = torch.randn(10, 6, generator=g)
        y = torch.randint(0, 4, (10,), generator=g)
        fast, fast_st, fast_info = rule.step(net, fast, fast_st, x, y, cross_entropy_loss)
        leaf = [p.detach().requires_grad_() for p in slow]
        slow, slow_st, slow_info = rule.step(net, leaf, slow_st, x, y, cross_entropy_loss, create_graph=True)
        assert slow[0].requires_grad and not fast[0].requires_grad
        slow, slow_st = [p.detach() for p in slow], slow_st.detach()
        _assert_bit_identical(fast, slow)
        _assert_bit_identical(fast_st.feedback, slow_st.feedback)
        for key in slow_st.opt:
            _assert_bit_identical(fast_st.opt[key], slow_st.opt[key])
        for key in slow_st.feedback_opt:
            _assert_bit_identical(fast_st.feedback_opt[key], slow_st.feedback_opt[key])
        assert torch.equal(_bits(fast_info["loss"]), _bits(slow_info["loss"]))


def test_cross_entropy_of_one_network_is_the_mean_of_torch_cross_entropy():
    g = torch.Generator().manual_seed(3)
    out, y = torch.randn(9, 5, generator=g, dtype=torch.float64), torch.randint(0, 5, (9,), generator=g)
    ref = -torch.log_softmax(out, -1)[torch.arange(9), y].mean()
    torch.testing.assert_close(cross_entropy_loss(out, y), ref, rtol=1e-14, atol=0)
    # the ensemble form gives each member the same number
    torch.testing.assert_close(cross_entropy_loss(out.expand(3, 9, 5), y), ref.expand(3), rtol=1e-14, atol=0)


@dataclasses.dataclass(frozen=True)
class _Poisoned(Rule):
    """A rule that, right after update ``at``, writes ``value`` into element 0 of parameter ``index``."""

    at: int = 0
    index: int = 0
    value: float = math.nan

    def step(self, circuit, params, state, x, y, loss_fn, **kwargs):
        params, state, info = super().step(circuit, params, state, x, y, loss_fn, **kwargs)
        if state.step == self.at:
            bad = params[self.index].clone()
            bad.view(-1)[0] = self.value
            params = [bad if i == self.index else p for i, p in enumerate(params)]
        return params, state, info


def _run(**poison):
    run = setup_training(expand(parse_grid(GRID))[0])
    assert list(run.steps) == list(MEASURED) and run.total_steps == 12
    base = {f.name: getattr(run.rule, f.name) for f in dataclasses.fields(Rule)}
    return dataclasses.replace(run, rule=_Poisoned(**base, **poison))


def _train(run) -> tuple[list[int], Diverged | None]:
    seen = []
    try:
        for point in training_checkpoints(run):
            assert all(bool(torch.isfinite(p).all()) for p in point.params)  # never yields non-finite weights
            seen.append(point.step)
    except Diverged as err:
        return seen, err
    return seen, None


def test_training_without_poison_finishes_and_yields_every_measured_step():
    seen, err = _train(_run(at=-1))
    assert err is None and seen == list(MEASURED)


@pytest.mark.parametrize("at", [3, 4, 12])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_nan_or_inf_weight_is_reported_at_the_update_that_made_it(at, value):
    """θ_at has a NaN / +inf in the first layer's weight: every later layer's output is non-finite, so the next
    minibatch's loss is, and the step reported is ``at`` itself — what a check of every parameter after every
    update reports — whether ``at`` is a measured step (4, 12), the last one, or between them."""
    seen, err = _train(_run(at=at, index=0, value=value))
    assert err is not None and err.step == at
    assert str(err) == f"non-finite loss or weights at step {at}"
    assert seen == [s for s in MEASURED if s < at]


@pytest.mark.parametrize(("at", "reported"), [(1, 4), (8, 8), (9, 12)])
def test_a_weight_the_loss_cannot_see_is_reported_at_the_next_measured_step(at, reported):
    """A −inf bias of a hidden ReLU unit silences it (its output is 0 for every input, its gradient 0, and
    without weight decay the bias stays −inf): the loss stays finite, and the parameters are caught where they
    are checked, the first measured step at or after the update that made them non-finite."""
    seen, err = _train(_run(at=at, index=1, value=-math.inf))
    assert err is not None and err.step == reported
    assert seen == [s for s in MEASURED if s < reported]


@pytest.mark.parametrize("at", [1, 7, 12])
def test_a_non_finite_loss_is_reported_at_its_update(at):
    """The loss of update ``at`` (computed at θ_{at−1}, which is finite) is NaN: reported at ``at``."""
    run = setup_training(expand(parse_grid(GRID))[0])
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        loss = cross_entropy_loss(out, y)
        return loss * math.nan if len(calls) == at else loss

    seen, err = _train(dataclasses.replace(run, loss_fn=loss_fn))
    assert err is not None and err.step == at
    assert seen == [s for s in MEASURED if s < at]
