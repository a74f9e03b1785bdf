"""Observables of one layer and the measurement model (identify-spec §4): one layer measured under one condition.

The parts, each in its own module and all re-exported here (import them from here):

* :mod:`~learnscope.identify.obs_names` — the 45 observable names (:data:`ALL_OBS`, :func:`obs_name`), the 24
  admissible ones and the paper's observable classes (:data:`OBS_CLASSES`);
* :mod:`~learnscope.identify.obs_stats` — the statistics of an observed tensor (:func:`tensor_statistics`, TF's
  nearest percentiles, :func:`activity_statistics`: the one code path from activity to the ``act*`` statistics,
  for simulated and recorded activity alike);
* :mod:`~learnscope.identify.conditions` — :class:`Condition`, the measurement limits and activity measurement
  models (issue 15), and the checks of a condition against a layer (:func:`check_recordable`);
* :mod:`~learnscope.identify.units` — which units are recorded (:func:`unit_count`, :func:`unit_subset`).

This module applies a condition: :func:`obfuscate` (Gaussian noise, then a fixed subset of units),
:func:`gradavg` (the layer-wise activity change), :func:`recorded_activity` (what an activity-only condition
records) and :func:`measure_layer` (all 45 observables of a layer at one checkpoint). A condition with an activity
model, a probe subset or unmatched units observes activity only: every ``weight*`` and ``gradavg*`` statistic is
NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from learnscope import rng
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.identify import measurement
from learnscope.identify.conditions import (
    ACTIVITY_KEYS,
    ACTIVITY_MODELS,
    CONDITION_CONSTRAINTS,
    GRADAVG_MODES,
    MODEL_KEYS,
    NOISE_MODES,
    OBSERVABLE_SETS,
    SMALL_LAYER_POLICIES,
    Condition,
    check_probes,
    check_recordable,
    check_seed,
    check_sigma,
    is_original_model,
)
from learnscope.identify.obs_names import (
    ADMISSIBLE_OBS,
    ALL_OBS,
    FUNCTIONS,
    GRADAVG_OBS,
    MEASURES,
    OBS_CLASSES,
    STATISTICS,
    obs_name,
)
from learnscope.identify.obs_stats import (
    WEIGHT_NORM_MODES,
    activity_statistics,
    member_statistics,
    percentile_index,
    percentile_nearest,
    tensor_statistics,
)
from learnscope.identify.units import unit_count, unit_subset

__all__ = [
    "ACTIVITY_KEYS", "ACTIVITY_MODELS", "ADMISSIBLE_OBS", "ALL_OBS", "CONDITION_CONSTRAINTS", "FUNCTIONS",
    "GRADAVG_MODES", "GRADAVG_OBS", "MEASURES", "MODEL_KEYS", "NOISE_MODES", "OBSERVABLE_SETS", "OBS_CLASSES",
    "SMALL_LAYER_POLICIES", "STATISTICS", "WEIGHT_LAYOUTS", "WEIGHT_NORM_MODES", "Condition", "activity_generator",
    "activity_statistics", "check_probes", "check_recordable", "gradavg", "is_original_model", "measure_layer",
    "measure_layer_members", "member_statistics", "noise_seed", "obfuscate", "obs_name", "percentile_index",
    "percentile_nearest", "recorded_activity", "tensor_statistics", "to_tf_layout", "unit_count", "unit_subset",
]

WEIGHT_LAYOUTS: tuple[str, ...] = ("as_given", "torch")


def obfuscate(T: torch.Tensor, frac: float | None, sigma: float, seed: int, *, flatten_all: bool,
              noise_generator: torch.Generator | None = None, noise_mode: str = "absolute",
              units: int | None = None, small_layers: str = "error") -> torch.Tensor:
    """Apply measurement noise, then unit subsampling, to an observed tensor (the original ``obfuscate_tensor``).

    1. If ``sigma > 0``: ``T + s·ε`` with ``ε ~ N(0, 1)`` of ``T``'s full shape drawn from ``noise_generator``,
       ``s = sigma`` (``"absolute"``) or ``sigma · std(T)`` (``"relative"``, population std over all entries).
    2. If ``frac`` (or ``units``) is set: reshape to ``(1, -1)`` (``flatten_all=True``: weights, every synapse is
       a unit) or ``(N, -1)`` (``flatten_all=False``: activations / Jacobians, batch axis kept) and keep the
       columns :func:`unit_subset` ``(n_columns, frac, seed, units=units)``; ``units`` at least the number of
       columns keeps the tensor as it is.

    Args:
        T: observed tensor, any shape (``(N, ...)`` when ``flatten_all=False``).
        noise_generator: required when ``sigma > 0``; draws ``T.numel()`` normals in ``T``'s dtype.

    Returns:
        ``T``'s shape when ``frac`` is None, else ``(1, k)`` or ``(N, k)``.
    """
    check_sigma(sigma)
    if noise_mode not in NOISE_MODES:
        raise UnknownNameError("noise_mode", noise_mode, NOISE_MODES)
    if sigma > 0:
        if noise_generator is None:
            raise ConfigError("sigma > 0 needs a noise_generator (a seeded torch.Generator)")
        scale = sigma if noise_mode == "absolute" else sigma * float(T.std(correction=0))
        eps = torch.randn(T.shape, generator=noise_generator, dtype=T.dtype, device=T.device)
        T = T + scale * eps
    if frac is not None or units is not None:
        if not flatten_all and T.ndim < 1:
            raise ShapeError(f"a tensor with a batch axis is needed when flatten_all=False, got {tuple(T.shape)}")
        flat = T.reshape(1, -1) if flatten_all else T.reshape(T.shape[0], -1)
        idx = unit_subset(flat.shape[1], frac, seed, units=units, small_layers=small_layers)
        if idx is not None:
            T = flat[:, torch.tensor(idx, device=T.device)]
    return T


def gradavg(layer_fn: Callable[[torch.Tensor], torch.Tensor], x_in: torch.Tensor, frac: float | None, sigma: float,
            seed: int, noise_generator: torch.Generator | None = None, *,
            noise_mode: str = "absolute", units: int | None = None, small_layers: str = "error") -> torch.Tensor:
    r"""Per-example layer-wise activity change :math:`g_n` (identify-spec §4.3).

    With :math:`y = \mathrm{layer\_fn}(x)` flattened to ``(N, U_out)`` and :math:`x` flattened to ``(N, U_in)``:

    .. math::
        J_{ni} = \frac{\partial}{\partial x_{ni}} \sum_{j \in S_\mathrm{out}} y_{nj},\qquad
        g_n = \frac{1}{|S_\mathrm{out}|} \sum_{i \in S_\mathrm{in}} \tilde J_{ni}

    where :math:`S_\mathrm{out}` = :func:`unit_subset` ``(U_out, frac, seed + 1)``, :math:`\tilde J` is ``J`` with
    measurement noise (σ, ``noise_mode``) added, and :math:`S_\mathrm{in}` = :func:`unit_subset` ``(U_in, frac,
    seed)`` (all units when ``frac`` is None; ``units`` gives an absolute count instead).
    ``J`` is one autograd backward of the summed kept outputs, so
    ``layer_fn`` must treat examples independently (no batch statistics), and its backward defines the Jacobian:
    the true one for an ordinary function, the feedback-matrix one for a layer with a custom backward. For a ReLU
    dense layer :math:`g_n = \frac{1}{U_\mathrm{out}} \sum_j 1[a_{nj} > 0] \sum_i W_{ij}`.

    Args:
        layer_fn: maps ``(N, *in_shape)`` to ``(N, *out_shape)``, in ``x_in``'s dtype.
        x_in: layer input on the probe batch, shape ``(N, *in_shape)``.

    Returns:
        ``g``, shape ``(N,)``, float64.
    """
    if x_in.ndim < 2 or x_in.shape[0] == 0:
        raise ShapeError(f"x_in must have shape (N, units...) with N >= 1, got {tuple(x_in.shape)}")
    check_seed(seed)
    n = x_in.shape[0]
    x = x_in.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = layer_fn(x)
        if y.ndim < 1 or y.shape[0] != n:
            raise ShapeError(f"layer_fn output must have batch size {n}, got shape {tuple(y.shape)}")
        y = y.reshape(n, -1)
        s_out = unit_subset(y.shape[1], frac, seed + rng.GRADAVG_OUTPUT_OFFSET_OF_ORIGINAL_CODE, units=units,
                            small_layers=small_layers)
        kept = y if s_out is None else y[:, torch.tensor(s_out, device=y.device)]
        (jac,) = torch.autograd.grad(kept.sum(), x)
    jac = obfuscate(jac.reshape(n, -1).to(torch.float64), frac, sigma, seed, flatten_all=False,
                    noise_generator=noise_generator, noise_mode=noise_mode, units=units, small_layers=small_layers)
    return jac.sum(dim=1) / kept.shape[1]


def noise_seed(seed: int, stream: int) -> int:
    """Seed of the measurement-noise generator for condition seed ``seed`` and caller stream ``stream``.

    ``int(SeedSequence([seed, stream]).generate_state(1)[0])``: distinct streams (e.g. one per layer and
    checkpoint) get independent noise, and the same ``(seed, stream)`` always gets the same noise.
    """
    return rng.noise_seed(seed, stream)


def to_tf_layout(weight: torch.Tensor) -> torch.Tensor:
    """Torch weight layout to the original's TF layout: ``(out, in) -> (in, out)``,
    ``(cout, cin, kh, kw) -> (kh, kw, cin, cout)``; other ranks unchanged."""
    if weight.ndim == 2:
        return weight.t()
    if weight.ndim == 4:
        return weight.permute(2, 3, 1, 0)
    return weight


def activity_generator(condition: Condition, network_key: int, layer_index: int, session: int) -> np.random.Generator:
    """The generator of a condition's activity measurement noise (spikes, photons, Gaussian noise of activity-only
    conditions) for one network, layer and session: ``rng.numpy_rng(seed, "identify.activity.<name>", network_key,
    layer_index, session)``; it depends on nothing else (not on the other networks or conditions of a run)."""
    return rng.numpy_rng(condition.seed, f"identify.activity.{condition.name}", network_key, layer_index, session)


def recorded_activity(act: np.ndarray | torch.Tensor, condition: Condition, *, network_key: int = 0,
                      layer_index: int = 0, session: int = 0) -> np.ndarray:
    r"""What an activity-only condition records of a layer's probe activity in one session: ``(P', k)`` float64.

    In order:

    1. probes: with ``condition.probes`` the rows :func:`~learnscope.identify.measurement.probe_subset` drawn from
       ``rng.numpy_rng(seed, "identify.probes")``, the same in every session and network;
    2. units: :func:`unit_count` ``k`` of them; matched: the columns of :func:`unit_subset` (as a ``frac`` /
       ``units`` condition keeps); unmatched: :func:`~learnscope.identify.measurement.session_unit_subset` from
       ``rng.numpy_rng(seed, "identify.session_units", network_key, layer_index, session)``;
    3. the activity model on the kept block, drawing from :func:`activity_generator`: ``"rate"`` the activity
       (plus Gaussian noise ``sigma`` as :func:`obfuscate`), ``"poisson"`` spike counts / ``window`` (Hz),
       ``"calcium"`` the mean ΔF/F of each presentation (:mod:`learnscope.identify.measurement`).

    Args:
        act: the layer's activity on the probe batch, ``(N, units...)`` (flattened to ``(N, U)``).
        network_key: a non-negative integer naming the network (the simulator uses ``int(network_id, 16)``).
        layer_index, session: the layer and the checkpoint index.
    """
    c = condition
    A = act.detach().to(torch.float64).cpu().numpy() if isinstance(act, torch.Tensor) else np.asarray(act, np.float64)
    if A.ndim < 2 or A.shape[0] == 0:
        raise ShapeError(f"act must have shape (N, units...) with N >= 1, got {A.shape}")
    A = A.reshape(A.shape[0], -1)
    if c.probes is not None:
        A = A[measurement.probe_subset(A.shape[0], c.probes, rng.numpy_rng(c.seed, "identify.probes"))]
    n = A.shape[1]
    if c.matched:
        cols = unit_subset(n, c.frac, c.seed, units=c.units, small_layers=c.small_layers)
    else:
        k = unit_count(n, c.frac, c.units, c.small_layers)
        cols = measurement.session_unit_subset(
            n, k, rng.numpy_rng(c.seed, "identify.session_units", network_key, layer_index, session))
    if cols is not None:
        A = A[:, cols]
    gen = activity_generator(c, network_key, layer_index, session)
    if c.activity_model == "rate":
        if c.sigma > 0:
            scale = c.sigma if c.noise_mode == "absolute" else c.sigma * float(A.std())
            A = A + scale * gen.standard_normal(A.shape)
        return A
    rates = measurement.firing_rates(A, c.rate_scale)
    if c.activity_model == "poisson":
        return measurement.poisson_counts(rates, c.window, gen) / c.window
    return measurement.calcium_recording(rates, window=c.window, frames=c.frames, tau=c.tau, amplitude=c.amplitude,
                                         photons=c.photons, baseline_frames=c.baseline_frames,
                                         rng=gen).per_presentation


def measure_layer(weight: torch.Tensor, x_in: torch.Tensor, act: torch.Tensor,
                  layer_fn: Callable[[torch.Tensor], torch.Tensor], condition: Condition, *,
                  layer_fn_feedback: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  noise_generator: torch.Generator | None = None, stream: int = 0,
                  weight_layout: str = "as_given", network_key: int = 0, layer_index: int = 0,
                  session: int = 0) -> dict[str, float]:
    """All 45 observables of one layer at one checkpoint under one measurement condition.

    Args:
        weight: the layer's forward weight of ONE network (no ensemble axis). With ``weight_layout="as_given"``
            its first axis is the "row" axis of ``weight*_norm``; ``"torch"`` first converts a torch-layout
            weight with :func:`to_tf_layout`, so that rows are input units (dense) / kernel rows (conv) as in
            the original TF code.
        x_in: layer input on the probe batch, shape ``(N, *in_shape)``.
        act: layer output on the probe batch, shape ``(N, *out_shape)`` (what the original records: post-
            nonlinearity where the layer has one).
        layer_fn: ``x_in -> act`` with the true forward Jacobian (for ``gradavg_mode="forward"``).
        condition: the measurement condition.
        layer_fn_feedback: the same map whose backward uses the learning rule's feedback (B for FA/IA), used
            when ``condition.gradavg_mode == "as_original"``; ``None`` means the rule's backward is the true one
            (backprop rules), so ``layer_fn`` is used.
        noise_generator: where the measurement noise of conditions with the original model comes from. ``None``:
            a fresh ``torch.Generator`` seeded with :func:`noise_seed` ``(condition.seed, stream)``. Draws happen
            in this order: weight (``weight.numel()`` normals), activations (``act.numel()``), Jacobian
            (``x_in.numel()``); nothing is drawn when ``condition.sigma == 0``.
        stream: caller-chosen noise stream (e.g. ``layer_index * 1000 + checkpoint_index``), used only when
            ``noise_generator`` is None.
        network_key, layer_index, session: name the network, layer and checkpoint for activity-only conditions
            (:func:`recorded_activity`: unmatched unit subsets and the measurement models' noise); ignored by
            the others.

    Returns:
        ``{name: value}`` for every name of :data:`ALL_OBS`, in that order, as Python floats.
        ``gradavg{raw,sq,abs}_id`` are the batch means of ``g``, ``g²`` and ``|g|`` from :func:`gradavg`.
        Under ``condition.observables == "act"`` every ``weight*`` and ``gradavg*`` value is NaN (not recorded);
        activity-only conditions compute the ``act*`` values with :func:`activity_statistics` of
        :func:`recorded_activity`.
    """
    if not isinstance(condition, Condition):
        raise ConfigError(f"condition must be a Condition, got {type(condition).__name__}")
    if weight_layout not in WEIGHT_LAYOUTS:
        raise UnknownNameError("weight_layout", weight_layout, WEIGHT_LAYOUTS)
    if act.ndim < 2 or x_in.ndim < 2 or act.shape[0] != x_in.shape[0]:
        raise ShapeError(f"x_in and act must have shapes (N, ...) with the same N, got {tuple(x_in.shape)} "
                         f"and {tuple(act.shape)}")
    check_seed(stream, "stream")
    c = condition
    out: dict[str, float] = dict.fromkeys(ALL_OBS, math.nan)
    if c.activity_only:
        out.update(activity_statistics(recorded_activity(act, c, network_key=network_key, layer_index=layer_index,
                                                         session=session)))
        return out
    if noise_generator is None and c.sigma > 0:
        noise_generator = torch.Generator().manual_seed(noise_seed(c.seed, stream))
    kw = {"noise_generator": noise_generator, "noise_mode": c.noise_mode, "units": c.units,
          "small_layers": c.small_layers}
    record_all = c.observables == "all"
    if record_all:
        w = weight.detach().to(torch.float64)
        if weight_layout == "torch":
            w = to_tf_layout(w)
        out.update(tensor_statistics(obfuscate(w, c.frac, c.sigma, c.seed, flatten_all=True, **kw), "weight",
                                     c.weight_norm_mode))
    elif c.sigma > 0:  # skip the weight's draws, so the activity noise is that of the same condition with "all"
        torch.randn(weight.numel(), generator=noise_generator, dtype=torch.float64)
    out.update(tensor_statistics(obfuscate(act.detach().to(torch.float64), c.frac, c.sigma, c.seed,
                                           flatten_all=False, **kw), "act"))
    if record_all:
        fn = layer_fn if c.gradavg_mode == "forward" or layer_fn_feedback is None else layer_fn_feedback
        g = gradavg(fn, x_in, c.frac, c.sigma, c.seed, **kw)
        per_function = {"raw": g, "sq": g * g, "abs": g.abs()}
        for function in FUNCTIONS:
            out[obs_name("gradavg", function, "id")] = float(per_function[function].mean())
    return {name: out[name] for name in ALL_OBS}


# ---------------------------------------------------------------- the same measurement for E networks at once
# (the ensemble path of identify.simulation: one call per layer and condition instead of one per network)


def _obfuscate_members(T: torch.Tensor, c: Condition, *, flatten_all: bool,
                       noise_generator: torch.Generator | None) -> torch.Tensor:
    """:func:`obfuscate` of each member of ``T (E, …)`` with the same noise draw for all (``T[0]``'s shape, as each
    member's own fresh generator of the one-network path draws it) and the same unit subset."""
    if c.sigma > 0:
        if noise_generator is None:
            raise ConfigError("sigma > 0 needs a noise_generator (a seeded torch.Generator)")
        lead = (T.shape[0], *([1] * (T.ndim - 1)))
        if c.noise_mode == "absolute":
            scale: float | torch.Tensor = c.sigma
        else:
            scale = torch.tensor([c.sigma * float(t.std(correction=0)) for t in T], dtype=T.dtype).reshape(lead)
        eps = torch.randn(T.shape[1:], generator=noise_generator, dtype=T.dtype, device=T.device)
        T = T + scale * eps
    if c.frac is not None or c.units is not None:
        E = T.shape[0]
        flat = T.reshape(E, 1, -1) if flatten_all else T.reshape(E, T.shape[1], -1)
        idx = unit_subset(flat.shape[-1], c.frac, c.seed, units=c.units, small_layers=c.small_layers)
        if idx is not None:
            T = flat[..., torch.tensor(idx, device=T.device)]
    return T


def _gradavg_members(layer_fn: Callable[[torch.Tensor], torch.Tensor], x_in: torch.Tensor, c: Condition,
                     noise_generator: torch.Generator | None, cache: dict | None = None) -> torch.Tensor:
    """:func:`gradavg` of each member: ``x_in (E, N, …)`` through the ensemble ``layer_fn``; returns ``(E, N)``.

    ``cache``: Jacobians already computed for this layer input and ``layer_fn``, keyed by what selects the kept
    outputs (conditions that keep the same outputs share one backward pass; the noise is drawn per condition)."""
    E, n = x_in.shape[:2]
    key = "all outputs"  # shared only by conditions without a unit subset
    if cache is None or c.frac is not None or c.units is not None or key not in cache:
        x = x_in.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            y = layer_fn(x).reshape(E, n, -1)
            s_out = unit_subset(y.shape[-1], c.frac, c.seed + rng.GRADAVG_OUTPUT_OFFSET_OF_ORIGINAL_CODE,
                                units=c.units, small_layers=c.small_layers)
            kept = y if s_out is None else y[..., torch.tensor(s_out, device=y.device)]
            (jac,) = torch.autograd.grad(kept.sum(), x)
        found = (jac.reshape(E, n, -1).to(torch.float64), kept.shape[-1])
        if cache is not None and c.frac is None and c.units is None:
            cache[key] = found
    else:
        found = cache[key]
    jac = _obfuscate_members(found[0], c, flatten_all=False, noise_generator=noise_generator)
    return jac.sum(dim=-1) / found[1]


def measure_layer_members(weight: torch.Tensor, x_in: torch.Tensor, act: torch.Tensor,
                          layer_fn: Callable[[torch.Tensor], torch.Tensor], condition: Condition, *,
                          layer_fn_feedback: Callable[[torch.Tensor], torch.Tensor] | None = None,
                          noise_generator: torch.Generator | None = None, weight_layout: str = "as_given",
                          network_keys: list[int], layer_index: int = 0, session: int = 0,
                          jacobians: dict | None = None) -> list[dict[str, float]]:
    """:func:`measure_layer` for the same layer of E networks at once: ``[observables of member e, …]``.

    weight : ``(E, *weight_shape)``; x_in, act : ``(E, N, …)``; layer_fn (and layer_fn_feedback) map ``(E, N, …)``
    inputs to ``(E, N, …)`` outputs member by member (``Circuit.layer_forward`` with ensemble parameters).
    noise_generator : the condition's noise stream for this layer and checkpoint, drawn once and shared: the
    one-network path gives every network a fresh generator of the same stream, so all members get the same draws.
    network_keys : one per member (activity-only conditions draw per network: they run :func:`measure_layer`
    member by member).
    jacobians : an empty dict shared by the calls for one layer input (one layer, one checkpoint): conditions that
    record every output unit then share one Jacobian (the same values; only their noise differs).

    Values equal ``measure_layer`` on each member up to the float rounding of batched kernels.
    """
    if not isinstance(condition, Condition):
        raise ConfigError(f"condition must be a Condition, got {type(condition).__name__}")
    if weight_layout not in WEIGHT_LAYOUTS:
        raise UnknownNameError("weight_layout", weight_layout, WEIGHT_LAYOUTS)
    E = weight.shape[0]
    if len(network_keys) != E or x_in.shape[0] != E or act.shape[0] != E or act.shape[1] != x_in.shape[1]:
        raise ShapeError(f"weight, x_in and act must stack the same E={E} members (one network key each), got "
                         f"{tuple(x_in.shape)}, {tuple(act.shape)} and {len(network_keys)} keys")
    c = condition
    if c.activity_only:
        return [measure_layer(weight[e], x_in[e], act[e], layer_fn, c, network_key=network_keys[e],
                              layer_index=layer_index, session=session, weight_layout=weight_layout)
                for e in range(E)]
    if noise_generator is None and c.sigma > 0:
        raise ConfigError("sigma > 0 needs the condition's noise_generator")
    outs: list[dict[str, float]] = [dict.fromkeys(ALL_OBS, math.nan) for _ in range(E)]
    record_all = c.observables == "all"
    if record_all:
        w = weight.detach().to(torch.float64)
        if weight_layout == "torch":
            w = w.permute(0, 3, 4, 2, 1) if w.ndim == 5 else (w.transpose(1, 2) if w.ndim == 3 else w)
        for out, stats in zip(outs, member_statistics(_obfuscate_members(w, c, flatten_all=True,
                                                                          noise_generator=noise_generator),
                                                      "weight", c.weight_norm_mode), strict=True):
            out.update(stats)
    elif c.sigma > 0:  # the weight's draws are skipped, as in measure_layer
        torch.randn(weight[0].numel(), generator=noise_generator, dtype=torch.float64)
    acts = _obfuscate_members(act.detach().to(torch.float64), c, flatten_all=False, noise_generator=noise_generator)
    for out, stats in zip(outs, member_statistics(acts, "act"), strict=True):
        out.update(stats)
    if record_all:
        fn = layer_fn if c.gradavg_mode == "forward" or layer_fn_feedback is None else layer_fn_feedback
        g = _gradavg_members(fn, x_in, c, noise_generator,
                             None if jacobians is None else jacobians.setdefault(fn is layer_fn, {}))
        means = {"raw": g.mean(-1), "sq": (g * g).mean(-1), "abs": g.abs().mean(-1)}
        for function in FUNCTIONS:
            for e, v in enumerate(means[function].tolist()):
                outs[e][obs_name("gradavg", function, "id")] = v
    return [{name: out[name] for name in ALL_OBS} for out in outs]
