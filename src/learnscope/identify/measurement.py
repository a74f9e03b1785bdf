r"""Measurement models for recorded activity (issue 15 item 3): pure functions of arrays and explicit generators.

What a lab records is not a network's activity but spikes or fluorescence driven by it. These functions turn the
activity a network shows on its probe stimuli into such recordings; :mod:`learnscope.identify.observables`
composes them into measurement conditions (``activity_model``, ``probes``, ``units``/``matched``, ``jitter``).

Rate map (every model starts here). The activity ``a`` is what the probes record for a layer (``records[l]
["output"]`` of a circuit: the post-activation of a hidden layer, the raw output of the readout). Rates are

.. math:: \lambda = \mathrm{rate\_scale} \cdot \max(a, 0) \quad [\mathrm{Hz}]

so a hidden ReLU layer's rate is proportional to its activity, and the negative part of an activity without a
rectifier (the readout's logits) is silent (rate 0).

* **Poisson spike counts** (:func:`poisson_counts`): one presentation of a probe stimulus lasts ``window``
  seconds and unit ``u`` fires :math:`n \sim \mathrm{Poisson}(\lambda\,\mathrm{window})` spikes, independently
  across units and presentations. Statistics are computed on the **rate estimate** ``n / window`` (Hz), what a
  lab computes from binned spikes, so :math:`E[n/\mathrm{window}] = \lambda` and
  :math:`\mathrm{Var}[n/\mathrm{window}] = \lambda/\mathrm{window}`.
* **Calcium imaging** (:func:`calcium_recording`): the session is ``baseline_frames`` frames without a stimulus,
  then the presentations back to back (in probe order), each ``frames`` imaging frames long
  (:math:`\Delta t = \mathrm{window}/\mathrm{frames}` seconds per frame). Spikes per frame are
  :math:`s_t \sim \mathrm{Poisson}(\lambda_{p(t)} \Delta t)` (so a presentation's spike count is the Poisson count
  above), 0 in the baseline; the indicator integrates them with an exponential kernel of time constant ``tau``
  **in seconds** (:func:`exponential_kernel`), fluorescence in units of the resting fluorescence is
  :math:`F_t = 1 + \mathrm{amplitude}\cdot c_t` (``amplitude`` = ΔF/F of one spike), shot noise makes the measured
  :math:`\hat F_t = y_t/\mathrm{photons}` with :math:`y_t \sim \mathrm{Poisson}(\mathrm{photons}\cdot F_t)`
  (``photons`` = expected photon count of one frame at rest, :func:`shot_noise`), and
  :math:`\Delta F/F_t = (\hat F_t - F_0)/F_0` with :math:`F_0` the mean of the baseline frames
  (:func:`delta_f_over_f`). Statistics are computed on the mean ΔF/F of each presentation's frames.

Selections: :func:`probe_subset` (the same stimuli in every session), :func:`session_unit_subset` (a fresh random
set of units per session), :func:`jittered_fractions` (where sessions fall in training).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from learnscope.errors import ConfigError, ShapeError
from learnscope.validation import check_scalar


def _array(name: str, a: object, ndim: int | None = None) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ShapeError(f"{name} must have {ndim} axes, got shape {arr.shape}")
    return arr


def firing_rates(act: np.ndarray, rate_scale: float) -> np.ndarray:
    r"""Rates :math:`\lambda = \mathrm{rate\_scale}\cdot\max(a, 0)` in Hz; same shape as ``act`` (float64).

    ``rate_scale`` is in Hz per unit of activity (> 0)."""
    rate_scale = check_scalar("rate_scale", rate_scale, float, low=0.0, closed="neither", note="Hz per unit activity")
    return rate_scale * np.maximum(_array("act", act), 0.0)


def poisson_counts(rates: np.ndarray, window: float, rng: np.random.Generator) -> np.ndarray:
    r"""Spike counts :math:`n \sim \mathrm{Poisson}(\lambda\cdot\mathrm{window})`, elementwise, int64.

    Args:
        rates: rates in Hz, any shape, ``>= 0``.
        window: presentation window in seconds (> 0).
        rng: the generator the counts are drawn from (``rates.size`` Poisson draws, in C order).
    """
    window = check_scalar("window", window, float, low=0.0, closed="neither", note="seconds")
    lam = _array("rates", rates)
    if (lam < 0).any() or not np.isfinite(lam).all():
        raise ConfigError("rates must be finite and >= 0 (Hz)")
    return rng.poisson(lam * window)


def spike_frames(rates: np.ndarray, window: float, frames: int, rng: np.random.Generator) -> np.ndarray:
    r"""Spikes per imaging frame for back-to-back presentations: ``(P·frames, U)`` int64.

    Row ``p·frames + f`` is frame ``f`` of presentation ``p``; its count is
    :math:`\mathrm{Poisson}(\lambda_{pu}\,\mathrm{window}/\mathrm{frames})`, so the sum over a presentation's
    frames is :math:`\mathrm{Poisson}(\lambda_{pu}\,\mathrm{window})`.

    Args:
        rates: ``(P, U)`` rates in Hz.
    """
    frames = check_scalar("frames", frames, int, low=1, note="imaging frames per presentation")
    lam = _array("rates", rates, 2)
    per_frame = np.repeat(lam, frames, axis=0)
    return poisson_counts(per_frame, window / frames, rng)


def exponential_kernel(spikes: np.ndarray, dt: float, tau: float) -> np.ndarray:
    r"""Causal exponential filtering along axis 0: ``(T, ...)`` -> ``(T, ...)`` float64.

    .. math:: c_t = \sum_{t' \le t} s_{t'}\, e^{-(t - t')\,\Delta t/\tau}

    (a spike raises ``c`` by 1 in its own frame, then decays with time constant ``tau``; ``dt`` and ``tau`` in the
    same unit, seconds here). Computed as the recursion :math:`c_t = e^{-\Delta t/\tau} c_{t-1} + s_t`.
    """
    dt = check_scalar("dt", dt, float, low=0.0, closed="neither")
    tau = check_scalar("tau", tau, float, low=0.0, closed="neither", note="seconds")
    s = _array("spikes", spikes)
    if s.ndim < 1:
        raise ShapeError("spikes must have a time axis (axis 0)")
    decay = np.exp(-dt / tau)
    return lfilter([1.0], [1.0, -decay], s, axis=0)


def shot_noise(fluorescence: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    r"""Measured fluorescence :math:`\hat F = y/\mathrm{photons}`, :math:`y \sim \mathrm{Poisson}(\mathrm{photons}
    \cdot F)`: unbiased, with variance :math:`F/\mathrm{photons}`. ``fluorescence >= 0``, any shape."""
    photons = check_scalar("photons", photons, float, low=0.0, closed="neither", note="photons per frame at rest")
    F = _array("fluorescence", fluorescence)
    if (F < 0).any() or not np.isfinite(F).all():
        raise ConfigError("fluorescence must be finite and >= 0")
    return rng.poisson(photons * F) / photons


def delta_f_over_f(fluorescence: np.ndarray, baseline_frames: int) -> np.ndarray:
    r""":math:`\Delta F/F_t = (F_t - F_0)/F_0` with :math:`F_0` the mean of the first ``baseline_frames`` frames
    (per unit); ``(T, ...)`` -> ``(T, ...)``. A zero baseline gives inf/NaN (passed through, never raised)."""
    F = _array("fluorescence", fluorescence)
    if F.ndim < 1:
        raise ShapeError("fluorescence must have a time axis (axis 0)")
    baseline_frames = check_scalar("baseline_frames", baseline_frames, int, low=1, high=F.shape[0],
                                   note="frames of the trace")
    F0 = F[:baseline_frames].mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (F - F0) / F0


@dataclass(frozen=True)
class CalciumRecording:
    """One simulated imaging session (see the module docstring).

    Attributes:
        dff: ``(baseline_frames + P·frames, U)`` ΔF/F per frame (the baseline frames first).
        per_presentation: ``(P, U)`` mean ΔF/F over each presentation's frames (what the statistics use).
        spikes: ``(baseline_frames + P·frames, U)`` spikes per frame.
        dt: seconds per frame (``window / frames``).
        baseline_frames: frames before the first presentation.
        frames: frames per presentation.
    """

    dff: np.ndarray
    per_presentation: np.ndarray
    spikes: np.ndarray
    dt: float
    baseline_frames: int
    frames: int


def calcium_recording(rates: np.ndarray, *, window: float, frames: int, tau: float, amplitude: float,
                      photons: float, baseline_frames: int, rng: np.random.Generator) -> CalciumRecording:
    r"""Spikes -> calcium -> fluorescence with shot noise -> ΔF/F for presentations of ``P`` stimuli to ``U`` units.

    Args:
        rates: ``(P, U)`` rates in Hz (:func:`firing_rates`), one row per presentation in presentation order.
        window: seconds per presentation; frames: imaging frames per presentation (``dt = window/frames``).
        tau: indicator decay time constant in seconds; amplitude: ΔF/F of one spike (> 0).
        photons: expected photons per frame at rest (shot noise); baseline_frames: stimulus-free frames first.
        rng: draws ``(baseline + P·frames)·U`` spike counts, then as many photon counts.
    """
    lam = _array("rates", rates, 2)
    amplitude = check_scalar("amplitude", amplitude, float, low=0.0, closed="neither", note="ΔF/F per spike")
    baseline_frames = check_scalar("baseline_frames", baseline_frames, int, low=1)
    frames = check_scalar("frames", frames, int, low=1, note="imaging frames per presentation")
    P, U = lam.shape
    spikes = np.concatenate([np.zeros((baseline_frames, U), dtype=np.int64), spike_frames(lam, window, frames, rng)])
    dt = float(window) / frames
    F = 1.0 + amplitude * exponential_kernel(spikes, dt, tau)
    dff = delta_f_over_f(shot_noise(F, photons, rng), baseline_frames)
    per_presentation = dff[baseline_frames:].reshape(P, frames, U).mean(axis=1)
    return CalciumRecording(dff=dff, per_presentation=per_presentation, spikes=spikes, dt=dt,
                            baseline_frames=baseline_frames, frames=frames)


def probe_subset(n_probes: int, probes: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (ascending, int64, ``(probes,)``) of the ``probes`` stimuli shown in a session, a uniformly random
    subset of ``range(n_probes)``. Callers pass a generator that does not depend on the session, so the same
    stimuli are shown in every session (a fixed stimulus set, as labs repeat theirs)."""
    n_probes = check_scalar("n_probes", n_probes, int, low=1)
    probes = check_scalar("probes", probes, int, low=1, high=n_probes, note=f"the probe set has {n_probes}")
    return np.sort(rng.permutation(n_probes)[:probes]).astype(np.int64)


def session_unit_subset(n_units: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (``(k,)`` int64, in draw order) of the ``k`` units found in one session: ``rng.permutation(n)[:k]``.
    Callers pass a generator keyed by the session, so sessions record different (unmatched) units."""
    n_units = check_scalar("n_units", n_units, int, low=1)
    k = check_scalar("k", k, int, low=1, high=n_units, note=f"the layer has {n_units} units")
    return rng.permutation(n_units)[:k].astype(np.int64)


def jittered_fractions(n_checkpoints: int, jitter: float, rng: np.random.Generator) -> np.ndarray:
    r"""Training fractions where the sessions of one network fall, ``(C,)`` float64, non-decreasing.

    Nominal session ``c`` sits at :math:`f_c = c/(C-1)`; the jittered one at
    :math:`\tilde f_c = \mathrm{clip}(f_c + \mathrm{jitter}\cdot u_c/(C-1), 0, 1)`,
    :math:`u_c \sim U(-\tfrac12, \tfrac12)`: ``jitter`` is in units of the checkpoint spacing, and ``jitter <= 1``
    keeps the sessions in order (the recorded checkpoint index stays ordinal)."""
    C = check_scalar("n_checkpoints", n_checkpoints, int, low=2)
    jitter = check_scalar("jitter", jitter, float, 0.0, 1.0, note="in units of the checkpoint spacing")
    nominal = np.arange(C) / (C - 1)
    u = rng.uniform(-0.5, 0.5, size=C)
    return np.clip(nominal + jitter * u / (C - 1), 0.0, 1.0)


__all__ = [
    "CalciumRecording",
    "calcium_recording",
    "delta_f_over_f",
    "exponential_kernel",
    "firing_rates",
    "jittered_fractions",
    "poisson_counts",
    "probe_subset",
    "session_unit_subset",
    "shot_noise",
    "spike_frames",
]
