r"""Observables of one layer and the measurement model (identify-spec §4).

Names (§4.1): ``obs_name(measure, function, statistic) = f"{measure}{function}_{statistic}"`` with measures
``weight``, ``act`` (and the special ``gradavg``), functions ``raw`` (T), ``sq`` (T²), ``abs`` (|T|) and
statistics ``norm, mean, median, thirdquartile, var, skew, kurtosis`` (``id`` for ``gradavg``).

:data:`ALL_OBS` order (the spec does not fix one; this is the nested order of the constants): measure-major over
:data:`MEASURES`, then :data:`FUNCTIONS`, then :data:`STATISTICS`, i.e. ``weightraw_norm, weightraw_mean, …,
weightabs_kurtosis, actraw_norm, …, actabs_kurtosis`` (42 names), then ``gradavgraw_id, gradavgsq_id,
gradavgabs_id``. :data:`ADMISSIBLE_OBS` is the 24-name list of §4.1 in the original's order.

Statistics (§4.2), computed in float64 on ``U = f(T)``:

* weights reduce over **all** axes; activations ``(N, units…)`` reduce over all but the batch axis, giving one
  value per example, and the stored number is the **mean over the probe batch** (the original's aggregation is
  not released; the spec presumes this mean);
* ``mean`` and ``var`` are population moments (``tf.nn.moments``);
* ``median`` / ``thirdquartile`` are the 50th / 75th percentiles with TF's ``interpolation="nearest"`` rule,
  see :func:`percentile_nearest`;
* ``norm`` is the L2 norm of ``reshape(U, [-1, prod(shape[1:])])`` along axis 1: for activations the per-example
  norm over all units (then batch-averaged); for weights with ``weight_norm_mode="rows"`` a vector of norms of
  the first-axis slices, stored as their **mean** (for a subsampled weight, which is flattened to ``(1, k)``,
  this is the L2 norm of the kept synapses, as in the original, §8 item 3); with ``"frobenius"`` always the
  full L2 norm of the observed tensor;
* ``skew = 3 (mean − median) / std`` (Pearson's second coefficient), ``kurtosis = E[(U − mean)⁴] / var²`` (not
  excess). A zero std gives NaN (or ±inf) for these two, never an exception; non-finite values are passed
  through, not raised, because diverging networks are part of the data (that is why the spec's admissible set
  excludes them).

Measurement limits (§4.4) are a :class:`Condition`: additive Gaussian noise first (absolute σ, or σ times the
observed tensor's std), then a fixed random subset of units (:func:`unit_subset`, the same at every checkpoint).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from learnscope import rng
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.validation import check_positive_int, check_scalar

MEASURES: tuple[str, ...] = ("weight", "act")
FUNCTIONS: tuple[str, ...] = ("raw", "sq", "abs")
STATISTICS: tuple[str, ...] = ("norm", "mean", "median", "thirdquartile", "var", "skew", "kurtosis")
NOISE_MODES: tuple[str, ...] = ("absolute", "relative")
GRADAVG_MODES: tuple[str, ...] = ("forward", "as_original")
WEIGHT_NORM_MODES: tuple[str, ...] = ("rows", "frobenius")
WEIGHT_LAYOUTS: tuple[str, ...] = ("as_given", "torch")

_MAX_SEED = 2**32 - 2  # np.random.RandomState takes seeds < 2**32, and gradavg uses seed + 1


def obs_name(measure: str, function: str, statistic: str) -> str:
    """The observable name ``f"{measure}{function}_{statistic}"``, e.g. ``obs_name("act", "raw", "norm")``.

    ``measure`` is ``"weight"``, ``"act"`` or ``"gradavg"`` (the latter only with ``statistic="id"``).
    """
    if measure not in (*MEASURES, "gradavg"):
        raise UnknownNameError("measure", measure, (*MEASURES, "gradavg"))
    if function not in FUNCTIONS:
        raise UnknownNameError("function", function, FUNCTIONS)
    valid = ("id",) if measure == "gradavg" else STATISTICS
    if statistic not in valid:
        raise UnknownNameError(f"statistic for measure {measure!r}", statistic, valid)
    return f"{measure}{function}_{statistic}"


GRADAVG_OBS: tuple[str, ...] = tuple(obs_name("gradavg", f, "id") for f in FUNCTIONS)
ALL_OBS: tuple[str, ...] = (
    *(obs_name(m, f, s) for m in MEASURES for f in FUNCTIONS for s in STATISTICS),
    *GRADAVG_OBS,
)

ADMISSIBLE_OBS: tuple[str, ...] = (
    *(f"weightabs_{s}" for s in ("mean", "median", "norm", "thirdquartile", "var")),
    *(f"weightraw_{s}" for s in ("mean", "median", "norm", "thirdquartile", "var")),
    *(f"weightsq_{s}" for s in ("mean", "median", "thirdquartile")),
    *(f"actabs_{s}" for s in ("mean", "median", "norm", "thirdquartile")),
    *(f"actraw_{s}" for s in ("mean", "median", "norm", "thirdquartile")),
    "gradavgabs_id", "gradavgraw_id", "gradavgsq_id",
)

#: Observable classes of the paper's analyses (admissible names only), keyed as ``obs_measure`` in the original.
OBS_CLASSES: dict[str, tuple[str, ...]] = {
    "weight": ADMISSIBLE_OBS[:13],
    "act": ADMISSIBLE_OBS[13:21],
    "grad": ADMISSIBLE_OBS[21:],
    "all": ADMISSIBLE_OBS,
}


# --------------------------------------------------------------------------------------------------------------
# statistics


def percentile_index(n: int, q: float) -> int:
    r"""Ascending sort index of TF's ``percentile(x, q, interpolation="nearest")`` for ``n`` values.

    TF (``tf.contrib.distributions.percentile``) sorts **descending** (``top_k``) and takes index
    :math:`\mathrm{round}((n-1)(1 - q/100))` with round-half-to-even, computed in float64. In ascending order:

    .. math:: i(n, q) = (n - 1) - \mathrm{round\_half\_even}\big((n-1)(1 - q/100)\big)

    This equals numpy's ``method="nearest"`` (:math:`\mathrm{round\_half\_even}((n-1)q/100)`) except when
    :math:`(n-1)q/100` is a half-integer and ``n`` is even, where the two pick opposite neighbours: e.g. the
    median of ``[1, 2, 3, 4]`` is 2 here and 3 in numpy.
    """
    idx_desc = round((n - 1) * (1.0 - q / 100.0))  # Python's round is round-half-to-even, like tf.round
    return (n - 1) - min(max(idx_desc, 0), n - 1)


def percentile_nearest(x: torch.Tensor, q: float) -> torch.Tensor:
    """TF-``nearest`` percentile of ``x`` along its last axis (see :func:`percentile_index`); shape ``x.shape[:-1]``."""
    n = x.shape[-1]
    return torch.kthvalue(x, percentile_index(n, q) + 1, dim=-1).values


def tensor_statistics(T: torch.Tensor, measure: str, weight_norm_mode: str = "rows") -> dict[str, float]:
    """The 21 statistics (3 functions × 7 statistics) of one observed tensor, keyed by observable name.

    Args:
        T: the observed tensor. ``measure="weight"``: any shape with ``ndim >= 1`` (its first axis defines the
            rows of ``norm`` under ``weight_norm_mode="rows"``). ``measure="act"``: shape ``(N, units...)``.
        measure: ``"weight"`` or ``"act"``.
        weight_norm_mode: ``"rows"`` (mean of first-axis slice norms, the original) or ``"frobenius"`` (full L2
            norm); ignored for activations.

    Returns:
        ``{f"{measure}{function}_{statistic}": value}`` for the 21 names, in :data:`ALL_OBS` order. Values are
        Python floats computed in float64 (see the module docstring for the exact definitions).
    """
    if measure not in MEASURES:
        raise UnknownNameError("measure", measure, MEASURES)
    if weight_norm_mode not in WEIGHT_NORM_MODES:
        raise UnknownNameError("weight_norm_mode", weight_norm_mode, WEIGHT_NORM_MODES)
    min_ndim = 1 if measure == "weight" else 2
    if T.ndim < min_ndim or T.numel() == 0:
        layout = "(at least one axis, non-empty)" if measure == "weight" else "(N, units...) non-empty"
        raise ShapeError(f"{measure} tensor must have shape {layout}, got {tuple(T.shape)}")
    T = T.detach().to(torch.float64)
    flat_raw = T.reshape(1, -1) if measure == "weight" else T.reshape(T.shape[0], -1)
    n = flat_raw.shape[1]
    k50, k75 = percentile_index(n, 50.0) + 1, percentile_index(n, 75.0) + 1
    quantiles = {}
    for function, V in (("raw", flat_raw), ("abs", flat_raw.abs())):
        # one introselect pass for both order statistics (~1.5-2x faster than two torch.kthvalue calls)
        part = torch.from_numpy(np.partition(V.numpy(), [k50 - 1, k75 - 1], axis=1))
        quantiles[function] = (part[:, k50 - 1], part[:, k75 - 1])
    # x*x == |x|*|x| exactly and squaring is monotone on |x|, so the order statistics of x² are those of |x|, squared
    quantiles["sq"] = (quantiles["abs"][0].square(), quantiles["abs"][1].square())
    out: dict[str, float] = {}
    for function in FUNCTIONS:
        U = T if function == "raw" else (T.abs() if function == "abs" else T * T)
        flat = U.reshape(flat_raw.shape)
        if measure == "act":
            norm = flat.norm(dim=1)
        elif weight_norm_mode == "rows":
            norm = U.reshape(U.shape[0], -1).norm(dim=1)
        else:
            norm = U.norm().reshape(1)
        mean = flat.mean(dim=1)
        centred = flat - mean[:, None]
        var = centred.square().mean(dim=1)
        median, third = quantiles[function]
        values = {
            "norm": norm,
            "mean": mean,
            "median": median,
            "thirdquartile": third,
            "var": var,
            "skew": 3.0 * (mean - median) / var.sqrt(),
            "kurtosis": centred.square().square().mean(dim=1) / var.square(),
        }
        for statistic in STATISTICS:
            out[f"{measure}{function}_{statistic}"] = float(values[statistic].mean())
    return out


# --------------------------------------------------------------------------------------------------------------
# measurement model


@dataclass(frozen=True)
class Condition:
    """One measurement condition (identify-spec §4.4, §7.1 item 2).

    Attributes:
        name: a label for the condition (e.g. ``"clean"``, ``"frac0.1"``, ``"noise0.3"``).
        frac: fraction of units (synapses for weights) kept, in ``(0, 1]``; ``None`` keeps everything.
        sigma: measurement-noise standard deviation, ``>= 0``.
        noise_mode: ``"absolute"`` (σ in the tensor's units, the original) or ``"relative"`` (σ × the population
            std of the observed tensor, per layer and measure).
        seed: the original ``obs_seed``: selects the kept units (weights, activations and gradavg's input units
            use ``seed``, gradavg's output units ``seed + 1``) and seeds the measurement noise.
        gradavg_mode: ``"forward"`` (true forward Jacobian, default) or ``"as_original"`` (the Jacobian through
            the layer's learning-rule backward, i.e. the feedback matrix B for FA/IA; spec §8 item 2).
        weight_norm_mode: ``"rows"`` (original) or ``"frobenius"``; see :func:`tensor_statistics`.
    """

    name: str = "clean"
    frac: float | None = None
    sigma: float = 0.0
    noise_mode: str = "absolute"
    seed: int = 0
    gradavg_mode: str = "forward"
    weight_norm_mode: str = "rows"

    def __post_init__(self) -> None:
        _check_frac(self.frac)
        _check_sigma(self.sigma)
        _check_seed(self.seed)
        if self.noise_mode not in NOISE_MODES:
            raise UnknownNameError("noise_mode", self.noise_mode, NOISE_MODES)
        if self.gradavg_mode not in GRADAVG_MODES:
            raise UnknownNameError("gradavg_mode", self.gradavg_mode, GRADAVG_MODES)
        if self.weight_norm_mode not in WEIGHT_NORM_MODES:
            raise UnknownNameError("weight_norm_mode", self.weight_norm_mode, WEIGHT_NORM_MODES)


def _check_frac(frac: float | None) -> None:
    if frac is None:
        return
    check_scalar("frac", frac, float, 0.0, 1.0, closed="right", note="or None to keep every unit")


def _check_sigma(sigma: float) -> None:
    check_scalar("sigma", sigma, float, low=0.0)


def _check_seed(seed: int, name: str = "seed") -> None:
    check_scalar(name, seed, int, 0, _MAX_SEED)


def unit_subset(n_units: int, frac: float | None, seed: int) -> np.ndarray | None:
    r"""Indices of the units kept when recording a fraction ``frac`` of ``n_units`` units.

    .. math:: S = \mathrm{RandomState(seed).permutation}(U)[:k],\qquad k = \max(1, \lceil \mathrm{frac}\cdot U\rceil)

    The subset depends only on ``(n_units, frac, seed)``, so the same units are kept at every checkpoint (a
    chronic recording). ``frac·U`` is rounded to 9 decimals before the ceiling so that float noise does not add a
    unit (``0.07 * 100`` is ``7.000000000000001`` in floating point; this keeps 7 units, not 8).

    Returns:
        ``int64`` array of shape ``(k,)`` in permutation order (read-only, cached), or ``None`` if ``frac`` is None.
    """
    n_units = check_positive_int("n_units", n_units)
    _check_frac(frac)
    _check_seed(seed)
    if frac is None:
        return None
    return _unit_subset(n_units, float(frac), int(seed))


@functools.lru_cache(maxsize=256)
def _unit_subset(n_units: int, frac: float, seed: int) -> np.ndarray:
    k = max(1, math.ceil(round(frac * n_units, 9)))
    idx = np.random.RandomState(seed).permutation(n_units)[:k].astype(np.int64)
    idx.setflags(write=False)
    return idx


def obfuscate(T: torch.Tensor, frac: float | None, sigma: float, seed: int, *, flatten_all: bool,
              noise_generator: torch.Generator | None = None, noise_mode: str = "absolute") -> torch.Tensor:
    """Apply measurement noise, then unit subsampling, to an observed tensor (the original ``obfuscate_tensor``).

    1. If ``sigma > 0``: ``T + s·ε`` with ``ε ~ N(0, 1)`` of ``T``'s full shape drawn from ``noise_generator``,
       ``s = sigma`` (``"absolute"``) or ``sigma · std(T)`` (``"relative"``, population std over all entries).
    2. If ``frac`` is set: reshape to ``(1, -1)`` (``flatten_all=True``: weights, every synapse is a unit) or
       ``(N, -1)`` (``flatten_all=False``: activations / Jacobians, batch axis kept) and keep the columns
       :func:`unit_subset` ``(n_columns, frac, seed)``.

    Args:
        T: observed tensor, any shape (``(N, ...)`` when ``flatten_all=False``).
        noise_generator: required when ``sigma > 0``; draws ``T.numel()`` normals in ``T``'s dtype.

    Returns:
        ``T``'s shape when ``frac`` is None, else ``(1, k)`` or ``(N, k)``.
    """
    _check_sigma(sigma)
    if noise_mode not in NOISE_MODES:
        raise UnknownNameError("noise_mode", noise_mode, NOISE_MODES)
    if sigma > 0:
        if noise_generator is None:
            raise ConfigError("sigma > 0 needs a noise_generator (a seeded torch.Generator)")
        scale = sigma if noise_mode == "absolute" else sigma * float(T.std(correction=0))
        eps = torch.randn(T.shape, generator=noise_generator, dtype=T.dtype, device=T.device)
        T = T + scale * eps
    if frac is not None:
        if not flatten_all and T.ndim < 1:
            raise ShapeError(f"a tensor with a batch axis is needed when flatten_all=False, got {tuple(T.shape)}")
        T = T.reshape(1, -1) if flatten_all else T.reshape(T.shape[0], -1)
        idx = unit_subset(T.shape[1], frac, seed)
        T = T[:, torch.tensor(idx, device=T.device)]
    return T


def gradavg(layer_fn: Callable[[torch.Tensor], torch.Tensor], x_in: torch.Tensor, frac: float | None, sigma: float,
            seed: int, noise_generator: torch.Generator | None = None, *,
            noise_mode: str = "absolute") -> torch.Tensor:
    r"""Per-example layer-wise activity change :math:`g_n` (identify-spec §4.3).

    With :math:`y = \mathrm{layer\_fn}(x)` flattened to ``(N, U_out)`` and :math:`x` flattened to ``(N, U_in)``:

    .. math::
        J_{ni} = \frac{\partial}{\partial x_{ni}} \sum_{j \in S_\mathrm{out}} y_{nj},\qquad
        g_n = \frac{1}{|S_\mathrm{out}|} \sum_{i \in S_\mathrm{in}} \tilde J_{ni}

    where :math:`S_\mathrm{out}` = :func:`unit_subset` ``(U_out, frac, seed + 1)``, :math:`\tilde J` is ``J`` with
    measurement noise (σ, ``noise_mode``) added, and :math:`S_\mathrm{in}` = :func:`unit_subset` ``(U_in, frac,
    seed)`` (all units when ``frac`` is None). ``J`` is one autograd backward of the summed kept outputs, so
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
    _check_seed(seed)
    n = x_in.shape[0]
    x = x_in.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = layer_fn(x)
        if y.ndim < 1 or y.shape[0] != n:
            raise ShapeError(f"layer_fn output must have batch size {n}, got shape {tuple(y.shape)}")
        y = y.reshape(n, -1)
        s_out = unit_subset(y.shape[1], frac, seed + rng.GRADAVG_OUTPUT_OFFSET_OF_ORIGINAL_CODE)
        kept = y if s_out is None else y[:, torch.tensor(s_out, device=y.device)]
        (jac,) = torch.autograd.grad(kept.sum(), x)
    jac = obfuscate(jac.reshape(n, -1).to(torch.float64), frac, sigma, seed, flatten_all=False,
                    noise_generator=noise_generator, noise_mode=noise_mode)
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


def measure_layer(weight: torch.Tensor, x_in: torch.Tensor, act: torch.Tensor,
                  layer_fn: Callable[[torch.Tensor], torch.Tensor], condition: Condition, *,
                  layer_fn_feedback: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  noise_generator: torch.Generator | None = None, stream: int = 0,
                  weight_layout: str = "as_given") -> dict[str, float]:
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
        noise_generator: where the measurement noise comes from. ``None``: a fresh ``torch.Generator`` seeded
            with :func:`noise_seed` ``(condition.seed, stream)``. Draws happen in this order: weight
            (``weight.numel()`` normals), activations (``act.numel()``), Jacobian (``x_in.numel()``); nothing is
            drawn when ``condition.sigma == 0``.
        stream: caller-chosen noise stream (e.g. ``layer_index * 1000 + checkpoint_index``), used only when
            ``noise_generator`` is None.

    Returns:
        ``{name: value}`` for every name of :data:`ALL_OBS`, in that order, as Python floats.
        ``gradavg{raw,sq,abs}_id`` are the batch means of ``g``, ``g²`` and ``|g|`` from :func:`gradavg`.
    """
    if not isinstance(condition, Condition):
        raise ConfigError(f"condition must be a Condition, got {type(condition).__name__}")
    if weight_layout not in WEIGHT_LAYOUTS:
        raise UnknownNameError("weight_layout", weight_layout, WEIGHT_LAYOUTS)
    if act.ndim < 2 or x_in.ndim < 2 or act.shape[0] != x_in.shape[0]:
        raise ShapeError(f"x_in and act must have shapes (N, ...) with the same N, got {tuple(x_in.shape)} "
                         f"and {tuple(act.shape)}")
    _check_seed(stream, "stream")
    c = condition
    if noise_generator is None and c.sigma > 0:
        noise_generator = torch.Generator().manual_seed(noise_seed(c.seed, stream))
    w = weight.detach().to(torch.float64)
    if weight_layout == "torch":
        w = to_tf_layout(w)
    kw = {"noise_generator": noise_generator, "noise_mode": c.noise_mode}
    out = tensor_statistics(obfuscate(w, c.frac, c.sigma, c.seed, flatten_all=True, **kw), "weight",
                            c.weight_norm_mode)
    out.update(tensor_statistics(obfuscate(act.detach().to(torch.float64), c.frac, c.sigma, c.seed,
                                           flatten_all=False, **kw), "act"))
    fn = layer_fn if c.gradavg_mode == "forward" or layer_fn_feedback is None else layer_fn_feedback
    g = gradavg(fn, x_in, c.frac, c.sigma, c.seed, **kw)
    per_function = {"raw": g, "sq": g * g, "abs": g.abs()}
    for function in FUNCTIONS:
        out[obs_name("gradavg", function, "id")] = float(per_function[function].mean())
    return {name: out[name] for name in ALL_OBS}
