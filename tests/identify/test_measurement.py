"""Activity measurement models: Poisson counts, calcium imaging, probe / unit / session selections, jitter, and the
activity-only conditions end to end through the simulator and the dataset loader."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from learnscope import rng
from learnscope.errors import ConfigError, NonFiniteError
from learnscope.identify import measurement as m
from learnscope.identify.dataset import TrajectoryDataset
from learnscope.identify.grid import expand, parse_grid
from learnscope.identify.observables import ALL_OBS, OBS_CLASSES
from learnscope.identify.simulation import checkpoint_steps, simulate, train_and_record


def _gen(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------------------------
# Poisson spike counts


def test_rates_are_rate_scale_times_rectified_activity():
    act = np.array([[-1.0, 0.0, 0.25], [2.0, -0.5, 1.0]])
    np.testing.assert_array_equal(m.firing_rates(act, 40.0), 40.0 * np.array([[0, 0, 0.25], [2.0, 0, 1.0]]))
    with pytest.raises(ConfigError, match="rate_scale"):
        m.firing_rates(act, 0.0)


@pytest.mark.parametrize("rate", [2.0, 10.0, 40.0])
def test_poisson_counts_mean_and_variance_match_the_rate(rate):
    """E[n/window] = λ and Var[n] = λ·window; tolerances are 5 standard errors from the CLT: SE(mean of n) =
    sqrt(μ/N), SE(sample variance) = sqrt((μ4 − σ⁴)/N) with the Poisson central moments σ² = μ, μ4 = μ + 3μ²."""
    window, N = 0.5, 40_000
    counts = m.poisson_counts(np.full(N, rate), window, _gen(1))
    mu = rate * window
    assert counts.dtype.kind == "i"
    assert abs(counts.mean() / window - rate) <= 5 * math.sqrt(mu / N) / window
    se_var = math.sqrt((mu + 3 * mu**2 - mu**2) / N)
    assert abs(counts.var(ddof=1) - mu) <= 5 * se_var


def test_spike_frames_sum_to_a_presentation_count_with_the_window_rate():
    rates = np.array([[4.0, 30.0]] * 5000)  # 5000 presentations, 2 units
    window, frames = 0.5, 5
    s = m.spike_frames(rates, window, frames, _gen(2))
    assert s.shape == (5000 * frames, 2)
    per_presentation = s.reshape(5000, frames, 2).sum(axis=1)
    mu = rates[0] * window
    np.testing.assert_array_less(np.abs(per_presentation.mean(axis=0) - mu), 5 * np.sqrt(mu / 5000))
    se_var = np.sqrt((mu + 2 * mu**2) / 5000)
    np.testing.assert_array_less(np.abs(per_presentation.var(axis=0, ddof=1) - mu), 5 * se_var)


# --------------------------------------------------------------------------------------------------------------
# calcium


def test_exponential_kernel_equals_numpy_convolution():
    g = _gen(3)
    spikes = g.poisson(0.7, size=(60, 3)).astype(float)
    dt, tau = 0.1, 0.35
    kernel = np.exp(-np.arange(60) * dt / tau)
    expected = np.stack([np.convolve(spikes[:, u], kernel)[:60] for u in range(3)], axis=1)
    np.testing.assert_allclose(m.exponential_kernel(spikes, dt, tau), expected, rtol=1e-12, atol=1e-12)


def test_delta_f_over_f_of_a_constant_trace_is_zero_and_of_a_step_is_the_step():
    np.testing.assert_array_equal(m.delta_f_over_f(np.full((30, 4), 2.5), 10), np.zeros((30, 4)))
    F = np.concatenate([np.ones((10, 2)), np.full((5, 2), 1.5)]) * np.array([2.0, 4.0])
    np.testing.assert_allclose(m.delta_f_over_f(F, 10)[10:], 0.5)


def test_shot_noise_is_unbiased_with_variance_f_over_photons():
    F, photons, N = 1.8, 50.0, 40_000
    x = m.shot_noise(np.full(N, F), photons, _gen(4))
    assert abs(x.mean() - F) <= 5 * math.sqrt(F / photons / N)
    lam = photons * F  # the photon count is Poisson(λ): Var[x] = λ / photons², SE of the sample variance from μ4
    se_var = math.sqrt((lam + 2 * lam**2) / N) / photons**2
    assert abs(x.var(ddof=1) - F / photons) <= 5 * se_var


def test_calcium_recording_matches_a_plain_loop_implementation():
    """The documented model written out as a frame loop, drawing from the same generator in the documented order
    (spike counts, then photon counts)."""
    rates = np.array([[0.0, 20.0, 5.0], [40.0, 0.0, 5.0], [10.0, 10.0, 0.0]])
    kw = {"window": 0.5, "frames": 4, "tau": 0.8, "amplitude": 0.25, "photons": 300.0, "baseline_frames": 6}
    rec = m.calcium_recording(rates, rng=_gen(5), **kw)

    g = _gen(5)
    dt = kw["window"] / kw["frames"]
    lam = np.concatenate([np.zeros((kw["baseline_frames"], 3)), np.repeat(rates, kw["frames"], axis=0)]) * dt
    spikes = g.poisson(lam[kw["baseline_frames"]:])
    spikes = np.concatenate([np.zeros((kw["baseline_frames"], 3), dtype=int), spikes])
    c = np.zeros(3)
    F = np.empty(spikes.shape)
    for t in range(spikes.shape[0]):
        c = c * math.exp(-dt / kw["tau"]) + spikes[t]
        F[t] = 1.0 + kw["amplitude"] * c
    Fhat = g.poisson(kw["photons"] * F) / kw["photons"]
    F0 = Fhat[: kw["baseline_frames"]].mean(axis=0)
    dff = (Fhat - F0) / F0
    per = dff[kw["baseline_frames"]:].reshape(3, kw["frames"], 3).mean(axis=1)
    np.testing.assert_array_equal(rec.spikes, spikes)
    np.testing.assert_allclose(rec.dff, dff, rtol=1e-12)
    np.testing.assert_allclose(rec.per_presentation, per, rtol=1e-12)
    assert rec.dt == dt


def test_calcium_tracks_the_rate_on_average():
    """Noise-free limit (many photons): the mean ΔF/F of a unit firing at a constant rate λ for many presentations
    approaches the kernel's steady state amplitude · λ·Δt / (1 − e^{−Δt/τ})."""
    lam, window, frames, tau, amp = 8.0, 0.5, 5, 0.6, 0.2
    rec = m.calcium_recording(np.full((2000, 1), lam), window=window, frames=frames, tau=tau, amplitude=amp,
                              photons=1e7, baseline_frames=5, rng=_gen(6))
    dt = window / frames
    steady = amp * lam * dt / (1 - math.exp(-dt / tau))
    # per-presentation means after the first few presentations; the std of c is sqrt(λ Δt / (1 − e^{−2Δt/τ}))
    sd = amp * math.sqrt(lam * dt / (1 - math.exp(-2 * dt / tau)))
    assert abs(rec.per_presentation[10:].mean() - steady) < 5 * sd / math.sqrt(1990 * window / tau)


# --------------------------------------------------------------------------------------------------------------
# selections


def test_probe_subset_is_sorted_unique_and_bounded():
    idx = m.probe_subset(128, 32, _gen(7))
    assert idx.shape == (32,) and np.all(np.diff(idx) > 0) and idx.max() < 128
    with pytest.raises(ConfigError, match="probes"):
        m.probe_subset(16, 32, _gen(7))


def test_jittered_fractions_stay_ordinal_and_within_half_a_spacing():
    C = 21
    for seed in range(20):
        f = m.jittered_fractions(C, 1.0, _gen(seed))
        assert np.all(np.diff(f) >= 0) and f[0] >= 0 and f[-1] <= 1
        assert np.all(np.abs(f - np.arange(C) / (C - 1)) <= 0.5 / (C - 1) + 1e-15)
    np.testing.assert_array_equal(m.jittered_fractions(C, 0.0, _gen(0)), np.arange(C) / (C - 1))
    with pytest.raises(ConfigError, match="jitter"):
        m.jittered_fractions(C, 1.5, _gen(0))


# --------------------------------------------------------------------------------------------------------------
# end to end

TINY = {
    "grid": {"tasks": ["digits"], "architectures": ["mlp_1x16"], "rules": ["sgdm", "fa"], "batch_sizes": [32],
             "seeds": [0]},
    "training": {"epochs": 1, "checkpoints": 4, "n_train": 256, "n_probe": 24},
}
ACTIVITY_CONDITIONS = [
    {"name": "poisson", "activity_model": "poisson", "rate_scale": 40.0},
    {"name": "calcium", "activity_model": "calcium", "probes": 12},
    {"name": "unmatched", "units": 8, "matched": False, "small_layers": "all"},
    {"name": "jitter", "jitter": 1.0},
]


def test_activity_conditions_simulate_deterministically_without_touching_the_clean_rows():
    grid = parse_grid({**TINY, "conditions": [{"name": "clean"}, *ACTIVITY_CONDITIONS]})
    spec = expand(grid)[1]
    row, obs = train_and_record(spec)
    assert row["status"] == "ok", row["reason"]
    _, again = train_and_record(spec)
    pd.testing.assert_frame_equal(obs, again)  # explicit generators: two runs are identical

    # adding conditions changes nothing in the clean rows (their noise streams are their own)
    _, alone = train_and_record(expand(parse_grid({**TINY, "conditions": [{"name": "clean"}]}))[1])
    clean = obs[obs.condition == "clean"].reset_index(drop=True)
    pd.testing.assert_frame_equal(clean, alone.reset_index(drop=True))

    weight_grad = [n for n in ALL_OBS if n.startswith(("weight", "gradavg"))]
    act = [n for n in ALL_OBS if n.startswith("act")]
    for name in ("poisson", "calcium", "unmatched"):
        part = obs[obs.condition == name]
        assert part[weight_grad].isna().all().all(), name  # not observable in vivo
        assert np.isfinite(part[list(OBS_CLASSES["act"])].to_numpy()).all(), name
    jit = obs[obs.condition == "jitter"]
    assert np.isfinite(jit[weight_grad + act].drop(columns=[c for c in act if "skew" in c or "kurt" in c])
                       .to_numpy()).all()

    # the jittered steps follow the documented recipe, computed here from measurement.jittered_fractions
    total = 256 // 32
    f = m.jittered_fractions(4, 1.0, rng.numpy_rng(0, "identify.jitter.jitter", int(spec["network_id"], 16)))
    steps = jit[jit.layer_index == 0].sort_values("checkpoint")["step"].to_numpy()
    np.testing.assert_array_equal(steps, np.round(f * total).astype(int))
    assert list(jit[jit.layer_index == 0].sort_values("checkpoint").checkpoint) == [0, 1, 2, 3]
    # at a jittered step equal to the nominal one, the measurement equals the clean one
    nominal = checkpoint_steps(total, 4)
    assert (steps != nominal).any() and (steps == nominal).any()  # this network's draw moves some sessions
    for c in np.flatnonzero(steps == nominal):
        a = jit[jit.checkpoint == c].sort_values("layer_index")[act + weight_grad].to_numpy()
        b = clean[clean.checkpoint == c].sort_values("layer_index")[act + weight_grad].to_numpy()
        np.testing.assert_array_equal(a, b)


def test_activity_only_conditions_load_as_act_datasets_and_refuse_all(tmp_path):
    grid = parse_grid({**TINY, "conditions": [{"name": "clean"}, ACTIVITY_CONDITIONS[0]]})
    counts = simulate(grid, tmp_path / "s", backend="sequential", progress=False)
    assert counts["ok"] == 2
    ds = TrajectoryDataset.from_store(tmp_path / "s", condition="poisson", obs_class="act")
    assert ds.X.shape == (2 * 2, 4, len(OBS_CLASSES["act"])) and np.isfinite(ds.X).all()
    with pytest.raises(NonFiniteError, match="weight"):
        TrajectoryDataset.from_store(tmp_path / "s", condition="poisson", obs_class="all")
