"""learnscope.validation: the one scalar check (exact boundaries, bools, NaN/inf, int vs float), the declarative
tables, the tensor / spec / key checks, and the call sites that use them."""

from __future__ import annotations

import fractions
import math

import numpy as np
import pytest
import torch

from learnscope import errors, validation
from learnscope.errors import ConfigError, NonFiniteError, ShapeError, UnknownNameError
from learnscope.validation import (
    Interval,
    check_constraints,
    check_finite,
    check_keys,
    check_ndim,
    check_positive,
    check_positive_int,
    check_scalar,
    split_spec,
)

# ------------------------------------------------------------------------------------------------ boundaries

# Membership of each value in the interval from 0 to 1 for each `closed`, written out from the definitions
# [0, 1], [0, 1), (0, 1], (0, 1): an end is in the interval exactly when `closed` includes it.
VALUES = (-0.5, 0.0, 0.5, 1.0, 1.5)
MEMBERSHIP = {
    "both": (False, True, True, True, False),
    "left": (False, True, True, False, False),
    "right": (False, False, True, True, False),
    "neither": (False, False, True, False, False),
}


@pytest.mark.parametrize("closed", list(MEMBERSHIP))
@pytest.mark.parametrize("i", range(len(VALUES)))
def test_closed_ends_of_a_bounded_interval(closed, i):
    value, inside = VALUES[i], MEMBERSHIP[closed][i]
    if inside:
        assert check_scalar("x", value, float, 0.0, 1.0, closed) == value
    else:
        with pytest.raises(ConfigError, match=r"^x must be a number in [\[(]0, 1[\])], got "):
            check_scalar("x", value, float, 0.0, 1.0, closed)


@pytest.mark.parametrize("closed, low_in", [("both", True), ("left", True), ("right", False), ("neither", False)])
def test_half_bounded_intervals_include_the_low_end_only_when_closed_says_so(closed, low_in):
    """With no upper bound, `closed` speaks only about the lower end (and vice versa)."""
    assert check_scalar("x", 2, int, low=1, closed=closed) == 2
    assert check_scalar("x", 1e300, float, low=0.0, closed=closed) == 1e300
    if low_in:
        assert check_scalar("x", 1, int, low=1, closed=closed) == 1
    else:
        with pytest.raises(ConfigError, match=r"> 1, got 1$"):
            check_scalar("x", 1, int, low=1, closed=closed)
    high_in = closed in ("both", "right")
    if high_in:
        assert check_scalar("x", 5.0, float, high=5.0, closed=closed) == 5.0
    else:
        with pytest.raises(ConfigError, match=r"< 5, got 5.0$"):
            check_scalar("x", 5.0, float, high=5.0, closed=closed)
    assert check_scalar("x", -1e300, float, high=5.0, closed=closed) == -1e300


def test_integer_boundaries_are_exact():
    assert check_scalar("seed", 0, int, 0, 2**32 - 2) == 0
    assert check_scalar("seed", 2**32 - 2, int, 0, 2**32 - 2) == 2**32 - 2
    for bad in (-1, 2**32 - 1):
        with pytest.raises(ConfigError, match=r"seed must be an integer in \[0, 4294967294\]"):
            check_scalar("seed", bad, int, 0, 2**32 - 2)


def test_the_smallest_positive_float_is_positive_and_zero_is_not():
    assert check_positive("lr", 5e-324) == 5e-324
    for bad in (0, 0.0, -0.0, -5e-324, math.inf, math.nan):
        with pytest.raises(ConfigError, match=r"^lr must be a positive number, got "):
            check_positive("lr", bad)


def test_positive_int_is_one_and_up():
    assert check_positive_int("n", 1) == 1
    for bad in (0, -1):
        with pytest.raises(ConfigError, match=r"^n must be a positive integer, got -?\d$"):
            check_positive_int("n", bad)


# ------------------------------------------------------------------------------------------------ types


@pytest.mark.parametrize("kind", [int, float])
@pytest.mark.parametrize("value", [True, False, np.bool_(True), np.bool_(False)])
def test_bools_are_never_numbers(kind, value):
    """Even where the bool's int value lies in range (True == 1 in [0, 1])."""
    with pytest.raises(ConfigError, match=r"\((bool|bool_)\)$"):
        check_scalar("flag", value, kind, 0, 1)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float32("nan"), np.float64("inf")])
def test_nan_and_inf_are_rejected_even_without_bounds(value):
    with pytest.raises(ConfigError, match=r"^sigma must be a finite number, got "):
        check_scalar("sigma", value, float)
    with pytest.raises(ConfigError):
        check_scalar("sigma", value, float, low=0.0)  # inf >= 0, but inf is not a finite number


def test_an_int_too_large_for_a_float_is_not_a_finite_number():
    with pytest.raises(ConfigError, match="finite number"):
        check_scalar("x", 10**400, float)
    assert check_scalar("x", 10**400, int) == 10**400


@pytest.mark.parametrize("value", [3.0, 2.5, np.float64(3.0), "3", None, [3], torch.tensor(3)])
def test_int_kind_takes_integral_numbers_only(value):
    with pytest.raises(ConfigError, match=r"^k must be a positive integer, got .* \(\w+\)$"):
        check_scalar("k", value, int, low=1)


def test_int_kind_takes_numpy_integers_and_returns_python_ints():
    for value in (np.int64(7), np.int32(7), np.uint8(7)):
        out = check_scalar("k", value, int, low=1)
        assert out == 7 and type(out) is int


def test_float_kind_takes_every_real_number_and_returns_a_float():
    for value in (3, np.int64(3), np.float32(3.0), fractions.Fraction(3, 1), 3.0):
        out = check_scalar("x", value, float, 0.0, 5.0)
        assert out == 3.0 and type(out) is float
    for value in ("3.0", None, 3 + 0j, [3.0]):
        with pytest.raises(ConfigError, match=r"^x must be a number in \[0, 5\], got .* \(\w+\)$"):
            check_scalar("x", value, float, 0.0, 5.0)


def test_misuse_is_a_programming_error_not_a_config_error():
    with pytest.raises(TypeError):
        check_scalar("x", 1, complex)
    with pytest.raises(ValueError) as err:
        check_scalar("x", 1, int, 0, 2, closed="open")
    assert not isinstance(err.value, ConfigError)


# ------------------------------------------------------------------------------------------------ messages


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("frac", 1.5, float, 0, 1, "right"), {"note": "or None to keep every unit"},
         "frac must be a number in (0, 1] (or None to keep every unit), got 1.5"),
        (("momentum", 1.0, float, 0, 1, "left"), {}, "momentum must be a number in [0, 1), got 1.0"),
        (("training.lr_spread", 0.5, float, 1), {"note": "1 = no spread"},
         "training.lr_spread must be a finite number >= 1 (1 = no spread), got 0.5"),
        (("eps", -1e-8, float, 0, None, "neither"), {}, "eps must be a positive number, got -1e-08"),
        (("grid.seeds[1]", "7", int, 0), {}, "grid.seeds[1] must be an integer >= 0, got '7' (str)"),
        (("t", 3, int, None, 2), {}, "t must be an integer <= 2, got 3"),
    ],
)
def test_messages_name_the_parameter_the_range_and_the_value(args, kwargs, message):
    with pytest.raises(ConfigError) as err:
        check_scalar(*args, **kwargs)
    assert str(err.value) == message


def test_a_long_value_is_shortened_to_keep_the_message_one_line():
    with pytest.raises(ConfigError) as err:
        check_scalar("x", "a\nb" * 100, float)
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 120 and msg.startswith("x must be a finite number, got 'a\\nb")


# ------------------------------------------------------------------------------------------------ tables


def test_constraint_tables_check_present_keys_with_the_prefix_and_return_the_checked_values():
    table = {"epochs": Interval(int, 1), "weight_decay": Interval(float, 0), "lr_spread": Interval(float, 1)}
    assert check_constraints({"epochs": 3, "weight_decay": 0}, table) == {"epochs": 3, "weight_decay": 0.0}
    with pytest.raises(ConfigError, match=r"^training\.lr_spread must be a finite number >= 1, got 0.9$"):
        check_constraints({"epochs": 3, "lr_spread": 0.9}, table, prefix="training.")
    with pytest.raises(ConfigError, match=r"^training\.epochs must be a positive integer, got True \(bool\)$"):
        check_constraints({"epochs": True}, table, prefix="training.")


def test_interval_check_is_check_scalar():
    assert Interval(float, 0, 1, "left").check("m", 0) == 0.0
    with pytest.raises(ConfigError, match=r"^m must be a number in \[0, 1\), got 1$"):
        Interval(float, 0, 1, "left").check("m", 1)


# ------------------------------------------------------------------------------------------------ keys, specs, tensors


def test_one_key_checker_suggests_the_nearest_key_and_lists_the_valid_ones():
    check_keys({"epochs": 1}, ("epochs", "checkpoints"), "key in [training]")
    with pytest.raises(UnknownNameError) as err:
        check_keys({"epochs": 1, "epochz": 2}, ("epochs", "checkpoints"), "key in [training]")
    assert str(err.value) == ("unknown key in [training] 'epochz'; did you mean 'epochs'? "
                              "(valid: checkpoints, epochs)")
    with pytest.raises(UnknownNameError, match=r"\(valid: \(none\)\)"):
        check_keys({"x": 1}, (), "parameter of domain 'circle'")


def test_split_spec_reads_a_name_or_a_table():
    assert split_spec("disc", "domain", ("disc", "sphere")) == ("disc", {})
    assert split_spec({"name": "sphere", "dim": 4}, "domain", ("disc", "sphere")) == ("sphere", {"dim": 4})
    with pytest.raises(UnknownNameError, match="did you mean 'sphere'"):
        split_spec("sphre", "domain", ("disc", "sphere"))
    with pytest.raises(ConfigError, match="a domain is a name or a table"):
        split_spec({"dim": 4}, "domain", ("disc", "sphere"))


def test_tensor_checks():
    t = torch.zeros(2, 3, 4)
    assert check_ndim("x", t, 3, "(B, n, d)") is t and check_finite("x", t) is t
    with pytest.raises(ShapeError, match=r"^x must have shape \(B, n\), got \(2, 3, 4\)$"):
        check_ndim("x", t, 2, "(B, n)")
    t[0, 0, 0], t[1, 2, 3] = math.nan, -math.inf
    with pytest.raises(NonFiniteError, match=r"^x contains 2 NaN/inf value\(s\)"):
        check_finite("x", t)


def test_errors_holds_the_exception_family_only():
    """The checks are defined in validation; errors.py holds the exceptions and no check, not even an alias."""
    own = {n for n, v in vars(errors).items() if callable(v) and getattr(v, "__module__", "") == errors.__name__}
    assert not {n for n in own if n.startswith(("check_", "split_"))}, own
    for moved in ("check_positive_int", "check_positive", "split_spec", "check_parameters", "check_keys"):
        with pytest.raises(AttributeError):
            getattr(errors, moved)
    assert {"check_positive_int", "check_positive", "split_spec", "check_keys"} <= set(validation.__all__)


# ------------------------------------------------------------------------------------------------ call sites

# Values each converted call site took before (bools, NaN, inf, wrong types slipped past the hand-written
# checks at some of them) and must now refuse with one ConfigError line naming the parameter.


def _grid(**training) -> dict:
    grid = {"tasks": ["digits"], "architectures": ["mlp_1x8"], "rules": ["sgdm"], "batch_sizes": [64], "seeds": [0]}
    return {"grid": grid, "training": {"epochs": 1, "checkpoints": 3, "n_train": 256, "n_probe": 16} | training}


def _call_sites():
    from learnscope.datasets import load_task, mnist5k_digits
    from learnscope.domains import Hypercube, Sphere
    from learnscope.identify.dataset import checkpoint_indices
    from learnscope.identify.grid import parse_grid
    from learnscope.identify.observables import Condition, unit_subset
    from learnscope.identify.protocol import balanced_counts
    from learnscope.learners.base import check_lam
    from learnscope.learners.random_features import RandomFeatureRidge
    from learnscope.plasticity.optimisers import Optimiser
    from learnscope.plasticity.rules import make_rule
    from learnscope.targets import Gaussian, Uniform

    labels = np.array([0, 0, 1, 1])
    g = _grid()
    return {
        "grid weight_decay nan": (lambda: parse_grid(_grid(weight_decay=math.nan)), "training.weight_decay"),
        "grid weight_decay inf": (lambda: parse_grid(_grid(weight_decay=math.inf)), "training.weight_decay"),
        "grid epochs bool": (lambda: parse_grid(_grid(epochs=True)), "training.epochs"),
        "grid checkpoints 1": (lambda: parse_grid(_grid(checkpoints=1)), "training.checkpoints"),
        "grid lr_spread 0.99": (lambda: parse_grid(_grid(lr_spread=0.99)), "training.lr_spread"),
        "grid seed bool": (lambda: parse_grid({**g, "grid": g["grid"] | {"seeds": [0, True]}}), r"grid.seeds\[1\]"),
        "grid lr multiplier 0": (lambda: parse_grid({**g, "grid": g["grid"] | {"learning_rates": [1, 0]}}),
                                 r"grid.learning_rates\[1\]"),
        "grid hidden width 0": (lambda: parse_grid({**g, "grid": g["grid"] | {"architectures": [[8, 0]]}}),
                                "hidden width"),
        "frac bool": (lambda: Condition(frac=True), "frac"),
        "frac 0": (lambda: unit_subset(10, 0.0, 0), "frac"),
        "sigma inf": (lambda: Condition(sigma=math.inf), "sigma"),
        "seed 2**32-1": (lambda: Condition(seed=2**32 - 1), "seed"),
        "checkpoint k bool": (lambda: checkpoint_indices("last-k", 5, True), "k"),
        "test_size str": (lambda: balanced_counts(labels, "0.5"), "test_size"),
        "test_size 1": (lambda: balanced_counts(labels, 1.0), "test_size"),
        "task seed bool": (lambda: load_task("digits", seed=False), "seed"),
        "digit 10": (lambda: mnist5k_digits((0, 10)), r"digits\[1\]"),
        "sphere dim 1": (lambda: Sphere(dim=1), "sphere dim"),
        "hypercube low str": (lambda: Hypercube(low="-1"), "hypercube low"),
        "uniform high nan": (lambda: Uniform(0.0, math.nan), "uniform high"),
        "gaussian std 0": (lambda: Gaussian(0.0, 0.0), "gaussian std"),
        "lam inf": (lambda: check_lam(math.inf), "lam"),
        "variance bool": (lambda: RandomFeatureRidge(features=4, variances=[1.0, True]), r"variances\[1\]"),
        "rule lr bool": (lambda: make_rule("fa", lr=True), "lr"),
        "rule weight_decay nan": (lambda: make_rule("fa", weight_decay=math.nan), "weight_decay"),
        "optimiser momentum 1": (lambda: Optimiser("momentum", 0.1, momentum=1.0), "momentum"),
        "optimiser beta2 1": (lambda: Optimiser("adam", 0.1, betas=(0.9, 1.0)), r"betas\[1\]"),
        "optimiser eps 0": (lambda: Optimiser("adam", 0.1, eps=0.0), "eps"),
    }


CALL_SITES = list(_call_sites())


@pytest.mark.parametrize("case", CALL_SITES)
def test_converted_call_sites_refuse_bad_numbers_in_one_line(case):
    call, name = _call_sites()[case]
    with pytest.raises(ConfigError, match=f"^[^\n]*{name}[^\n]* must be [^\n]*, got [^\n]*$"):
        call()


def test_layer_index_of_a_circuit_is_checked_with_exact_ends():
    from learnscope.circuits import MLP

    net = MLP([3, 4, 2])
    p = net.init_params(torch.Generator().manual_seed(0))
    _, records = net.forward(p, torch.randn(5, 3, generator=torch.Generator().manual_seed(1)), record=True)
    for index in (0, 1):  # both ends of [0, n_layers): the layer map reproduces the recorded output
        out = net.layer_forward(p, index, records[index]["input"])
        torch.testing.assert_close(out, records[index]["output"])
    for bad in (2, -1, True, 1.0):
        with pytest.raises(ConfigError, match=r"^index must be an integer in \[0, 2\) \(a layer index\), got "):
            net.layer_forward(p, bad, records[0]["input"])
