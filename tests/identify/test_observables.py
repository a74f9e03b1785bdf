"""Observables and measurement model (identify-spec §4), checked against plain numpy and finite differences."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest
import torch

from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.identify.observables import (
    ADMISSIBLE_OBS,
    ALL_OBS,
    FUNCTIONS,
    MEASURES,
    OBS_CLASSES,
    STATISTICS,
    Condition,
    activity_statistics,
    gradavg,
    is_original_model,
    measure_layer,
    obfuscate,
    obs_name,
    percentile_index,
    percentile_nearest,
    recorded_activity,
    tensor_statistics,
    unit_count,
    unit_subset,
)

# --------------------------------------------------------------------------------------------------------------
# plain-numpy references


def np_percentile_tf(v: np.ndarray, q: float) -> float:
    """TF percentile(interpolation="nearest"): sort descending, take index rint((n-1)(1-q/100))."""
    desc = np.sort(v)[::-1]
    i = int(np.rint((len(v) - 1) * (1 - q / 100)))
    return float(desc[min(max(i, 0), len(v) - 1)])


def np_moment_stats(v: np.ndarray) -> dict[str, float]:
    mean, var = v.mean(), v.var()
    med, tq = np_percentile_tf(v, 50), np_percentile_tf(v, 75)
    return {"mean": mean, "var": var, "median": med, "thirdquartile": tq,
            "skew": 3 * (mean - med) / np.sqrt(var), "kurtosis": np.mean((v - mean) ** 4) / var**2}


def np_reference(T: np.ndarray, measure: str, mode: str) -> dict[str, float]:
    out = {}
    for f, U in (("raw", T), ("sq", T**2), ("abs", np.abs(T))):
        if measure == "weight":
            st = np_moment_stats(U.ravel())
            rows = U.reshape(U.shape[0], -1)
            st["norm"] = np.mean(np.sqrt((rows**2).sum(1))) if mode == "rows" else np.sqrt((U**2).sum())
        else:
            per = [np_moment_stats(U[n].ravel()) | {"norm": np.sqrt((U[n] ** 2).sum())} for n in range(U.shape[0])]
            st = {k: np.mean([p[k] for p in per]) for k in per[0]}
        for s in STATISTICS:
            out[f"{measure}{f}_{s}"] = float(st[s])
    return out


def kept(U: int, frac: float, seed: int) -> np.ndarray:
    k = max(1, math.ceil(Fraction(str(frac)) * U))
    return np.random.RandomState(seed).permutation(U)[:k]


# --------------------------------------------------------------------------------------------------------------
# names


def test_all_obs_names_follow_spec_pattern():
    assert len(ALL_OBS) == 45 and len(set(ALL_OBS)) == 45
    stat_re = re.compile(r"^(weight|act)(raw|sq|abs)_(norm|mean|median|thirdquartile|var|skew|kurtosis)$")
    grad_re = re.compile(r"^gradavg(raw|sq|abs)_id$")
    assert sum(bool(stat_re.match(n)) for n in ALL_OBS) == 42
    assert sum(bool(grad_re.match(n)) for n in ALL_OBS) == 3
    assert obs_name("weight", "abs", "thirdquartile") == "weightabs_thirdquartile"
    assert obs_name("gradavg", "sq", "id") == "gradavgsq_id"
    with pytest.raises(UnknownNameError, match="thirdquartile"):
        obs_name("act", "raw", "thirdquartil")
    with pytest.raises(UnknownNameError):
        obs_name("gradavg", "raw", "mean")


def test_admissible_list_is_spec_4_1_in_order():
    spec = [
        "weightabs_mean", "weightabs_median", "weightabs_norm", "weightabs_thirdquartile", "weightabs_var",
        "weightraw_mean", "weightraw_median", "weightraw_norm", "weightraw_thirdquartile", "weightraw_var",
        "weightsq_mean", "weightsq_median", "weightsq_thirdquartile",
        "actabs_mean", "actabs_median", "actabs_norm", "actabs_thirdquartile",
        "actraw_mean", "actraw_median", "actraw_norm", "actraw_thirdquartile",
        "gradavgabs_id", "gradavgraw_id", "gradavgsq_id",
    ]
    assert list(ADMISSIBLE_OBS) == spec
    assert [len(OBS_CLASSES[k]) for k in ("weight", "act", "grad", "all")] == [13, 8, 3, 24]
    assert list(OBS_CLASSES["weight"]) + list(OBS_CLASSES["act"]) + list(OBS_CLASSES["grad"]) == spec
    assert set(ADMISSIBLE_OBS) <= set(ALL_OBS)
    # 4.1: every skew/kurtosis, actsq_*, act*_var, weightsq_norm and weightsq_var are excluded
    excluded = set(ALL_OBS) - set(ADMISSIBLE_OBS)
    assert all(n.endswith(("_skew", "_kurtosis")) or n.startswith("actsq") or (n.startswith("act") and
               n.endswith("_var")) or n in ("weightsq_norm", "weightsq_var") for n in excluded)


# --------------------------------------------------------------------------------------------------------------
# statistics


SHAPES = [("weight", (5, 7)), ("weight", (4, 3, 3, 3)), ("act", (6, 10)), ("act", (6, 4, 3, 3))]


@pytest.mark.parametrize("mode", ["rows", "frobenius"])
@pytest.mark.parametrize("measure,shape", SHAPES)
def test_statistics_match_numpy(measure, shape, mode):
    rng = np.random.default_rng(7)
    T = rng.standard_normal(shape) + 0.3
    got = tensor_statistics(torch.tensor(T), measure, weight_norm_mode=mode)
    ref = np_reference(T, measure, mode)
    assert list(got) == [n for n in ALL_OBS if n.startswith(measure) and not n.startswith("gradavg")]
    for name in ref:
        assert got[name] == pytest.approx(ref[name], rel=1e-10, abs=1e-12), name


def test_rows_and_frobenius_norms_differ_as_documented():
    W = torch.tensor([[3.0, 4.0], [0.0, 0.0]])  # row norms 5 and 0 -> mean 2.5; Frobenius 5
    assert tensor_statistics(W, "weight", "rows")["weightraw_norm"] == pytest.approx(2.5)
    assert tensor_statistics(W, "weight", "frobenius")["weightraw_norm"] == pytest.approx(5.0)


def test_percentile_rule_is_tf_nearest(gen):
    # Agrees with numpy's "nearest" except at half-integer virtual indices with even n (opposite neighbour).
    for n in range(1, 60):
        v = np.arange(n, dtype=float)
        for q in (50.0, 75.0):
            i = percentile_index(n, q)
            virtual = (n - 1) * q / 100
            if virtual % 1 != 0.5:
                assert i == np.percentile(v, q, method="nearest"), (n, q)
            else:
                assert i in (math.floor(virtual), math.ceil(virtual))
                assert (i != np.percentile(v, q, method="nearest")) == (n % 2 == 0), (n, q)
    x = torch.randn(5, 37, generator=gen(0), dtype=torch.float64)
    for q in (50.0, 75.0):
        ref = [np_percentile_tf(row, q) for row in x.numpy()]
        np.testing.assert_array_equal(percentile_nearest(x, q).numpy(), ref)
    st = tensor_statistics(torch.tensor([4.0, 1.0, 3.0, 2.0]), "weight")
    assert st["weightraw_median"] == 2.0 and np.percentile([1, 2, 3, 4], 50, method="nearest") == 3.0
    assert st["weightraw_thirdquartile"] == 3.0  # desc [4,3,2,1], index rint(3*0.25)=1


def test_zero_std_gives_nan_not_crash():
    st = tensor_statistics(torch.ones(3, 4), "act")
    assert math.isnan(st["actraw_skew"]) and math.isnan(st["actraw_kurtosis"])
    assert st["actraw_mean"] == 1.0 and st["actraw_norm"] == pytest.approx(2.0) and st["actraw_var"] == 0.0


def test_non_finite_values_pass_through():
    W = torch.tensor([[1.0, float("nan")], [2.0, 3.0]])
    st = tensor_statistics(W, "weight")
    assert math.isnan(st["weightraw_mean"]) and math.isnan(st["weightsq_var"])


# --------------------------------------------------------------------------------------------------------------
# unit subsets and obfuscation


@pytest.mark.parametrize(
    "U,frac", [(10, 0.5), (30, 0.1), (7, 0.3), (1000, 0.001), (3, 0.01), (256, 1.0), (49, 0.7), (100, 0.07)]
)
def test_unit_subset_count_and_permutation(U, frac):
    idx = unit_subset(U, frac, seed=5)
    expected = kept(U, frac, 5)
    assert len(idx) == max(1, math.ceil(Fraction(str(frac)) * U))
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_array_equal(unit_subset(U, frac, seed=5), idx)  # same units at every checkpoint
    assert len(set(idx.tolist())) == len(idx)


def test_unit_subset_none_and_bad_frac():
    assert unit_subset(10, None, 0) is None
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ConfigError):
            unit_subset(10, bad, 0)


def test_absolute_noise_has_sigma_std(gen):
    g = gen(1)
    out = obfuscate(torch.zeros(200, 500, dtype=torch.float64), None, 0.3, 0, flatten_all=False, noise_generator=g)
    assert out.shape == (200, 500)
    assert float(out.std()) == pytest.approx(0.3, abs=0.005)  # sd of the sample sd ~ 0.3/sqrt(2e5) = 7e-4
    assert abs(float(out.mean())) < 0.005


def test_relative_noise_scales_with_tensor_std(gen):
    T = 5.0 * torch.randn(200, 500, generator=gen(2), dtype=torch.float64)
    g = gen(3)
    out = obfuscate(T, None, 0.3, 0, flatten_all=False, noise_generator=g, noise_mode="relative")
    expected_sd = 0.3 * np.std(T.numpy())
    assert float((out - T).std()) == pytest.approx(expected_sd, rel=0.01)


@pytest.mark.parametrize("shape,flatten_all", [((6, 10), False), ((6, 4, 3, 3), False), ((4, 3, 3, 3), True)])
def test_noise_first_then_subsample(shape, flatten_all, gen):
    T = torch.randn(shape, generator=gen(4), dtype=torch.float64)
    out = obfuscate(T, 0.5, 0.7, 3, flatten_all=flatten_all, noise_generator=gen(11))
    eps = torch.randn(shape, generator=gen(11), dtype=torch.float64)
    noisy = (T + 0.7 * eps).numpy()
    noisy = noisy.reshape(1, -1) if flatten_all else noisy.reshape(shape[0], -1)
    np.testing.assert_allclose(out.numpy(), noisy[:, kept(noisy.shape[1], 0.5, 3)], rtol=0, atol=1e-14)


# --------------------------------------------------------------------------------------------------------------
# gradavg


def fd_gradavg(fn, x: torch.Tensor, frac, seed, h=1e-6) -> np.ndarray:
    """Central finite differences of the summed kept outputs, per example and input unit."""
    n = x.shape[0]
    u_out = fn(x).reshape(n, -1).shape[1]
    u_in = x[0].numel()
    s_out = np.arange(u_out) if frac is None else kept(u_out, frac, seed + 1)
    s_in = np.arange(u_in) if frac is None else kept(u_in, frac, seed)
    J = np.zeros((n, u_in))
    for i in range(u_in):
        e = torch.zeros(n, u_in, dtype=x.dtype)
        e[:, i] = h
        yp = fn(x + e.reshape(x.shape)).reshape(n, -1)[:, s_out].sum(1)
        ym = fn(x - e.reshape(x.shape)).reshape(n, -1)[:, s_out].sum(1)
        J[:, i] = ((yp - ym) / (2 * h)).numpy()
    return J[:, s_in].sum(1) / len(s_out)


def dense_relu(seed=0, n=5, u_in=8, u_out=6):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(u_in, u_out, generator=g, dtype=torch.float64)
    b = torch.randn(u_out, generator=g, dtype=torch.float64)
    x = torch.randn(n, u_in, generator=g, dtype=torch.float64)
    assert float((x @ W + b).abs().min()) > 1e-4  # no pre-activation at the ReLU kink
    return W, b, x, (lambda z: torch.relu(z @ W + b))


@pytest.mark.parametrize("frac", [None, 0.5])
def test_gradavg_dense_relu_matches_finite_differences(frac):
    W, b, x, fn = dense_relu()
    g = gradavg(fn, x, frac, 0.0, 2)
    np.testing.assert_allclose(g.numpy(), fd_gradavg(fn, x, frac, 2), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("frac", [None, 0.5])
def test_gradavg_conv_matches_finite_differences(frac, gen):
    g = gen(1)
    K = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
    x = torch.randn(3, 2, 5, 5, generator=g, dtype=torch.float64)

    def fn(z):
        return torch.tanh(torch.nn.functional.conv2d(z, K, padding=1))

    g = gradavg(fn, x, frac, 0.0, 9)
    np.testing.assert_allclose(g.numpy(), fd_gradavg(fn, x, frac, 9), rtol=1e-7, atol=1e-8)


def test_gradavg_dense_relu_closed_form():
    W, b, x, fn = dense_relu(seed=3, n=7, u_in=10, u_out=9)
    a = (x @ W + b).numpy()
    closed = ((a > 0) * W.numpy().sum(0)[None, :]).sum(1) / W.shape[1]  # (1/U_out) sum_j 1[a>0] sum_i W_ij
    np.testing.assert_allclose(gradavg(fn, x, None, 0.0, 0).numpy(), closed, rtol=1e-12, atol=1e-14)


def test_gradavg_noise_is_on_jacobian_before_input_subsampling(gen):
    W, b, x, fn = dense_relu(seed=4)
    clean = gradavg(fn, x, 0.5, 0.0, 3).numpy()
    noisy = gradavg(fn, x, 0.5, 0.2, 3, gen(8)).numpy()
    eps = torch.randn(x.shape, generator=gen(8), dtype=torch.float64).numpy()
    s_in, n_out = kept(x.shape[1], 0.5, 3), len(kept(W.shape[1], 0.5, 4))
    np.testing.assert_allclose(noisy, clean + 0.2 * eps[:, s_in].sum(1) / n_out, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------------------------------------------
# measure_layer


def test_measure_layer_clean_matches_numpy_and_closed_form():
    W, b, x, fn = dense_relu(seed=5, n=6, u_in=8, u_out=7)
    act = fn(x)
    got = measure_layer(W, x, act, fn, Condition())
    assert list(got) == list(ALL_OBS)
    ref = np_reference(W.numpy(), "weight", "rows") | np_reference(act.numpy(), "act", "rows")
    closed = ((x @ W + b).numpy() > 0) @ W.numpy().sum(0) / W.shape[1]
    ref |= {"gradavgraw_id": closed.mean(), "gradavgsq_id": (closed**2).mean(), "gradavgabs_id": np.abs(closed).mean()}
    for name in ALL_OBS:
        assert got[name] == pytest.approx(ref[name], rel=1e-10, abs=1e-12), name


def test_measure_layer_subsampled_weight_norm_is_l2_of_kept_synapses():
    W, b, x, fn = dense_relu(seed=6)
    got = measure_layer(W, x, fn(x), fn, Condition(frac=0.3, seed=2))
    w_kept = W.numpy().ravel()[kept(W.numel(), 0.3, 2)]
    assert got["weightraw_norm"] == pytest.approx(np.linalg.norm(w_kept), rel=1e-12)
    assert got["weightraw_median"] == pytest.approx(np_percentile_tf(w_kept, 50), rel=1e-12)
    a_kept = fn(x).numpy()[:, kept(W.shape[1], 0.3, 2)]
    assert got["actraw_mean"] == pytest.approx(a_kept.mean(), rel=1e-12)


def test_measure_layer_torch_layout_rows_are_input_units():
    W, b, x, fn = dense_relu(seed=7)
    w_torch = W.t().contiguous()  # (out, in)
    got = measure_layer(w_torch, x, fn(x), fn, Condition(), weight_layout="torch")
    assert got["weightraw_norm"] == pytest.approx(np.linalg.norm(W.numpy(), axis=1).mean(), rel=1e-12)
    assert got["weightraw_norm"] != pytest.approx(np.linalg.norm(W.numpy(), axis=0).mean(), rel=1e-6)


class _FeedbackReLU(torch.autograd.Function):
    """y = relu(x W); backward sends errors through B instead of W (feedback alignment)."""

    @staticmethod
    def forward(ctx, x, W, B):
        a = x @ W
        ctx.save_for_backward(a, B)
        return torch.relu(a)

    @staticmethod
    def backward(ctx, dy):
        a, B = ctx.saved_tensors
        return (dy * (a > 0)) @ B.t(), None, None


def test_measure_layer_gradavg_modes(gen):
    W, b, x, _ = dense_relu(seed=8)
    W = W.clone()
    B = torch.randn(W.shape, generator=gen(9), dtype=torch.float64)

    def fn(z):
        return torch.relu(z @ W)

    def fn_fb(z):
        return _FeedbackReLU.apply(z, W, B)

    mask = (x @ W).numpy() > 0
    g_w = (mask @ W.numpy().sum(0)) / W.shape[1]
    g_b = (mask @ B.numpy().sum(0)) / W.shape[1]
    fwd = measure_layer(W, x, fn(x), fn, Condition(), layer_fn_feedback=fn_fb)
    orig = measure_layer(W, x, fn(x), fn, Condition(gradavg_mode="as_original"), layer_fn_feedback=fn_fb)
    assert fwd["gradavgraw_id"] == pytest.approx(g_w.mean(), rel=1e-12)
    assert orig["gradavgraw_id"] == pytest.approx(g_b.mean(), rel=1e-12)
    assert orig["gradavgsq_id"] == pytest.approx((g_b**2).mean(), rel=1e-12)
    assert orig["weightraw_mean"] == fwd["weightraw_mean"]


def test_measure_layer_noise_is_deterministic_per_stream():
    W, b, x, fn = dense_relu(seed=10)
    cond = Condition(sigma=0.1, seed=4)
    a = measure_layer(W, x, fn(x), fn, cond, stream=3)
    assert a == measure_layer(W, x, fn(x), fn, cond, stream=3)
    other = measure_layer(W, x, fn(x), fn, cond, stream=4)
    assert a["weightraw_mean"] != other["weightraw_mean"] and a["actraw_mean"] != other["actraw_mean"]


def test_condition_validation():
    for kwargs in ({"frac": 0.0}, {"frac": 1.5}, {"sigma": -1.0}, {"seed": -1}):
        with pytest.raises(ConfigError):
            Condition(**kwargs)
    with pytest.raises(UnknownNameError, match="relative"):
        Condition(noise_mode="relatve")
    with pytest.raises(UnknownNameError, match="frobenius"):
        Condition(weight_norm_mode="frobenus")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_registered_function_gives_finite_scalar_observables(function, gen):
    # For every registered function f (an added one too): each measure × statistic and gradavg has its name in
    # ALL_OBS, measure_layer returns it as one finite Python float on a healthy layer, and f acts elementwise, so the
    # statistics of f(T) depend on the values of T and not on where they sit (Frobenius norm: no row structure).
    names = [obs_name(m, function, s) for m in MEASURES for s in STATISTICS] + [obs_name("gradavg", function, "id")]
    assert len(ALL_OBS) == len(set(ALL_OBS)) == len(MEASURES) * len(FUNCTIONS) * len(STATISTICS) + len(FUNCTIONS)
    W = torch.randn(8, 6, generator=gen(10), dtype=torch.float64)
    x = torch.randn(5, 8, generator=gen(11), dtype=torch.float64)

    def fn(z):  # tanh: every example's activations vary (a ReLU example could be all zero, with NaN skew)
        return torch.tanh(z @ W / 3)

    got = measure_layer(W, x, fn(x), fn, Condition())
    assert list(got) == list(ALL_OBS)
    for name in names:
        assert type(got[name]) is float and math.isfinite(got[name]), name
    T = torch.randn(6, 5, generator=gen(12), dtype=torch.float64)
    shuffled = T.reshape(-1)[torch.randperm(30, generator=gen(13))].reshape(6, 5)
    a, b = (tensor_statistics(t, "weight", weight_norm_mode="frobenius") for t in (T, shuffled))
    for s in STATISTICS:
        name = obs_name("weight", function, s)
        assert b[name] == pytest.approx(a[name], rel=1e-12, abs=1e-15), name


# --------------------------------------------------------------------------------------------------------------
# activity measurement conditions (issue 15)


def test_absolute_units_keep_the_units_of_the_matching_fraction():
    U = 50
    for k in (1, 7, 20, 49):
        np.testing.assert_array_equal(unit_subset(U, None, 3, units=k), kept(U, k / U, 3))
    assert unit_subset(U, None, 3, units=U) is None  # every unit: exactly as without subsampling
    assert unit_subset(U, None, 3, units=80, small_layers="all") is None
    with pytest.raises(ConfigError, match="small_layers"):
        unit_subset(U, None, 3, units=80)
    assert unit_count(U, 0.07) == 4 and unit_count(100, 0.07) == 7 and unit_count(U, units=30) == 30


def test_activity_statistics_are_the_act_statistics_per_session():
    g = np.random.default_rng(0)
    act = g.normal(size=(3, 9, 11))
    per = activity_statistics(act)
    for c in range(3):
        ref = np_reference(act[c], "act", "rows")
        single = activity_statistics(act[c])
        assert list(single) == [n for n in ALL_OBS if n.startswith("act")]
        for name, value in single.items():
            assert value == pytest.approx(ref[name], rel=1e-12, abs=1e-14), name
            assert per[name][c] == value
    with pytest.raises(ShapeError):
        activity_statistics(act[0, 0])


def _id_activity(P: int, U: int) -> np.ndarray:
    """act[p, u] = 1000 p + u: the recorded values name the probes and units that were kept."""
    return 1000.0 * np.arange(P)[:, None] + np.arange(U)[None, :]


def test_unmatched_units_differ_per_session_and_matched_units_do_not():
    A = _id_activity(6, 40)
    unmatched = Condition(name="u", units=10, matched=False)
    matched = Condition(name="m", units=10)
    units_of = [recorded_activity(A, unmatched, session=s)[0].astype(int) for s in range(4)]
    assert all(len(set(u)) == 10 for u in units_of)
    assert len({tuple(sorted(u)) for u in units_of}) == 4  # every session records other units
    assert not np.array_equal(recorded_activity(A, unmatched, network_key=1)[0], units_of[0])  # per network too
    same = [recorded_activity(A, matched, session=s, network_key=s)[0].astype(int) for s in range(4)]
    assert all(np.array_equal(u, same[0]) for u in same)
    np.testing.assert_array_equal(same[0], kept(40, 10 / 40, 0))  # the units a frac condition keeps


def test_probes_are_the_same_subset_in_every_session_and_network():
    A = _id_activity(24, 5)
    cond = Condition(name="p", probes=8)
    rows = [recorded_activity(A, cond, session=s, network_key=7 * s)[:, 0] // 1000 for s in range(3)]
    assert all(np.array_equal(r, rows[0]) for r in rows)
    assert len(rows[0]) == 8 and np.all(np.diff(rows[0]) > 0)


def test_poisson_condition_records_counts_over_window_with_the_rate_mean():
    act = np.full((400, 50), 0.3)
    act[:, :10] = -1.0  # negative activity is silent
    cond = Condition(name="p", activity_model="poisson", rate_scale=20.0, window=0.25)
    rec = recorded_activity(act, cond)
    counts = rec * cond.window
    np.testing.assert_array_equal(counts, np.round(counts))  # whole spike counts
    assert (rec[:, :10] == 0).all()
    lam = 20.0 * 0.3
    n = rec[:, 10:].size
    assert abs(rec[:, 10:].mean() - lam) <= 5 * math.sqrt(lam / cond.window / n)


def test_activity_only_measure_layer_marks_weights_and_gradavg_missing(gen):
    W = torch.randn(8, 6, generator=gen(20), dtype=torch.float64)
    x = torch.randn(16, 8, generator=gen(21), dtype=torch.float64)

    def fn(z):
        return torch.relu(z @ W)

    cond = Condition(name="ca", activity_model="calcium", units=4)
    got = measure_layer(W, x, fn(x), fn, cond, network_key=5, layer_index=1, session=2)
    assert list(got) == list(ALL_OBS)
    for name, value in got.items():
        assert math.isnan(value) == name.startswith(("weight", "gradavg")) or "skew" in name or "kurt" in name, name
    expected = activity_statistics(recorded_activity(fn(x), cond, network_key=5, layer_index=1, session=2))
    assert all(got[n] == v or (math.isnan(got[n]) and math.isnan(v)) for n, v in expected.items())
    declared = measure_layer(W, x, fn(x), fn, Condition(name="a", observables="act"))
    full = measure_layer(W, x, fn(x), fn, Condition(name="a"))
    for name in ALL_OBS:
        if name.startswith("act"):
            assert declared[name] == full[name] or math.isnan(full[name])
        else:
            assert math.isnan(declared[name])


@pytest.mark.parametrize("kwargs, error, fragment", [
    ({"activity_model": "poison"}, UnknownNameError, "did you mean 'poisson'"),
    ({"activity_model": "poisson", "observables": "all"}, ConfigError, "use \"act\""),
    ({"units": 10, "frac": 0.5}, ConfigError, "not both"),
    ({"matched": False}, ConfigError, "needs units"),
    ({"matched": 0, "units": 3}, ConfigError, "true or false"),
    ({"activity_model": "calcium", "sigma": 0.1}, ConfigError, "own noise"),
    ({"units": 0}, ConfigError, "units"),
    ({"jitter": 1.5}, ConfigError, "jitter"),
    ({"activity_model": "calcium", "tau": -1.0}, ConfigError, "tau"),
    ({"observables": "acts"}, UnknownNameError, "did you mean 'act'"),
])
def test_activity_condition_validation(kwargs, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        Condition(name="c", **kwargs)


def test_condition_tables_keep_old_keys_and_round_trip():
    old = Condition(name="n", sigma=0.3, noise_mode="relative").table()
    assert list(old) == ["name", "frac", "sigma", "noise_mode", "seed", "gradavg_mode", "weight_norm_mode"]
    for table in ({"name": "p", "activity_model": "poisson"}, {"name": "u", "units": 30, "matched": False},
                  {"name": "a", "observables": "act"}, {"name": "j", "jitter": 0.5, "units": 4}):
        cond = Condition.from_table(table)
        assert Condition(**cond.table()) == cond
        assert set(cond.table()) - set(old) == set(table) - {"name"}
    assert Condition(name="p", activity_model="poisson").observables == "act"
    assert Condition(name="j", jitter=0.5).observables == "all"
    assert is_original_model(old) and is_original_model({"name": "x"})
    assert not is_original_model(Condition(name="u", units=3).table())
    with pytest.raises(ConfigError, match="applies to activity_model 'calcium'"):
        Condition.from_table({"name": "p", "activity_model": "poisson", "tau": 2.0})
    with pytest.raises(UnknownNameError, match="did you mean 'units'"):
        Condition.from_table({"name": "p", "unit": 2})
