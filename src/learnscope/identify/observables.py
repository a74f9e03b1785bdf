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
observed tensor's std), then a fixed random subset of units (:func:`unit_subset`, the same at every checkpoint):
a fraction ``frac`` or an absolute count ``units``.

Activity measurement models (issue 15; the pure functions live in :mod:`learnscope.identify.measurement`) are
further condition keys: ``activity_model = "poisson" | "calcium"`` (spike counts / ΔF/F from the rates),
``probes`` (a fixed subset of the probe stimuli shown in every session), ``matched = false`` (a different random
set of ``units`` in each session) and ``jitter`` (sessions fall at perturbed points of training; the simulator
records them there). Weights and layer-wise activity changes cannot be recorded in vivo: a condition with an
activity model, a probe subset or unmatched units has ``observables = "act"`` and stores NaN for every
``weight*`` and ``gradavg*`` statistic (the store's 45 columns stay; datasets of ``obs_class="act"`` load as
usual). :func:`activity_statistics` is the one code path from an activity array to the ``act*`` statistics, for
simulated and recorded activity alike.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from learnscope import rng
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.identify import measurement
from learnscope.validation import Interval, check_constraints, check_keys, check_positive_int, check_scalar

MEASURES: tuple[str, ...] = ("weight", "act")
FUNCTIONS: tuple[str, ...] = ("raw", "sq", "abs")
STATISTICS: tuple[str, ...] = ("norm", "mean", "median", "thirdquartile", "var", "skew", "kurtosis")
NOISE_MODES: tuple[str, ...] = ("absolute", "relative")
GRADAVG_MODES: tuple[str, ...] = ("forward", "as_original")
WEIGHT_NORM_MODES: tuple[str, ...] = ("rows", "frobenius")
WEIGHT_LAYOUTS: tuple[str, ...] = ("as_given", "torch")
ACTIVITY_MODELS: tuple[str, ...] = ("rate", "poisson", "calcium")
OBSERVABLE_SETS: tuple[str, ...] = ("all", "act")
SMALL_LAYER_POLICIES: tuple[str, ...] = ("error", "all")

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


#: Declared ranges of the numeric keys of a condition (checked by one loop, as the grid's [training] table).
CONDITION_CONSTRAINTS: dict[str, Interval] = {
    "units": Interval(int, 1, note="recorded units per layer, or leave it out"),
    "probes": Interval(int, 1, note="probe stimuli per session, or leave it out"),
    "rate_scale": Interval(float, 0, closed="neither", note="Hz per unit of activity"),
    "window": Interval(float, 0, closed="neither", note="seconds per probe presentation"),
    "tau": Interval(float, 0, closed="neither", note="calcium decay time constant in seconds"),
    "frames": Interval(int, 1, note="imaging frames per presentation"),
    "amplitude": Interval(float, 0, closed="neither", note="ΔF/F of one spike"),
    "photons": Interval(float, 0, closed="neither", note="expected photons per frame at rest"),
    "baseline_frames": Interval(int, 1, note="stimulus-free frames before the first presentation"),
    "jitter": Interval(float, 0, 1, note="in units of the checkpoint spacing; <= 1 keeps the sessions in order"),
}
#: The keys each activity model reads (a key of another model in a condition is an error).
MODEL_KEYS: dict[str, tuple[str, ...]] = {
    "rate": (),
    "poisson": ("rate_scale", "window"),
    "calcium": ("rate_scale", "window", "tau", "frames", "amplitude", "photons", "baseline_frames"),
}
#: Keys added for activity measurement (issue 15). A condition table leaves them out at their defaults, so the
#: tables (and the store.json grids) of conditions without them are those of earlier releases.
ACTIVITY_KEYS: tuple[str, ...] = ("units", "small_layers", "matched", "probes", "activity_model", "rate_scale",
                                  "window", "tau", "frames", "amplitude", "photons", "baseline_frames", "jitter",
                                  "observables")


@dataclass(frozen=True)
class Condition:
    """One measurement condition (identify-spec §4.4, §7.1 item 2; issue 15 item 3).

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
        units: an absolute number of recorded units per layer (synapses for weights, units for activations and
            gradavg's input / output units), instead of ``frac``; the same units at every checkpoint unless
            ``matched`` is false. ``None``: ``frac`` decides.
        small_layers: what ``units`` does with a tensor that has fewer units: ``"error"`` (the grid is refused
            before any work) or ``"all"`` (record every unit of it, exactly as without subsampling).
        matched: ``True`` (default): the same units in every session (a chronic recording); ``False``: each
            session (checkpoint) records a fresh random set of ``units`` (or ``frac``) units, different per
            network and layer (:func:`learnscope.identify.measurement.session_unit_subset`). Activity only.
        probes: the number of probe stimuli shown in a session, a random subset of the probe set that is the
            **same in every session and every network** (a fixed stimulus set); ``None``: all. Activity only.
        activity_model: ``"rate"`` (the activity itself, default), ``"poisson"`` (spike counts per presentation,
            statistics on counts / window in Hz) or ``"calcium"`` (ΔF/F per presentation); see
            :mod:`learnscope.identify.measurement`. Not ``"rate"``: activity only, and ``sigma`` must be 0 (the
            models have their own noise).
        rate_scale: Hz per unit of activity (rate = rate_scale · max(act, 0)); poisson and calcium.
        window: seconds per probe presentation; poisson and calcium.
        tau: calcium indicator decay in seconds; frames: imaging frames per presentation; amplitude: ΔF/F of one
            spike; photons: expected photons per frame at rest (shot noise); baseline_frames: stimulus-free frames
            that define F0. Calcium only.
        jitter: sessions fall at perturbed points of training: the checkpoint at nominal training fraction
            ``c/(C-1)`` is measured at ``clip(c/(C-1) + jitter·u/(C-1), 0, 1)``, ``u ~ U(-1/2, 1/2)`` drawn per
            network (:func:`learnscope.identify.measurement.jittered_fractions`), the nearest optimisation step;
            the stored ``checkpoint`` stays the ordinal index, ``step`` / ``training_fraction`` are the perturbed
            ones. Applies to whatever the condition observes.
        observables: ``"all"`` or ``"act"`` (weight and gradavg statistics stored as NaN). Derived when left
            out: ``"act"`` if the condition has an activity model, a probe subset or unmatched units (in vivo
            only activity is recorded), else ``"all"``; ``"all"`` with one of those is an error.
    """

    name: str = "clean"
    frac: float | None = None
    sigma: float = 0.0
    noise_mode: str = "absolute"
    seed: int = 0
    gradavg_mode: str = "forward"
    weight_norm_mode: str = "rows"
    units: int | None = None
    small_layers: str = "error"
    matched: bool = True
    probes: int | None = None
    activity_model: str = "rate"
    rate_scale: float = 50.0
    window: float = 0.5
    tau: float = 1.0
    frames: int = 4
    amplitude: float = 0.2
    photons: float = 200.0
    baseline_frames: int = 10
    jitter: float = 0.0
    observables: str | None = None

    def __post_init__(self) -> None:
        _check_frac(self.frac)
        _check_sigma(self.sigma)
        _check_seed(self.seed)
        where = f"condition {self.name!r}: "
        for key, choices in (("noise_mode", NOISE_MODES), ("gradavg_mode", GRADAVG_MODES),
                             ("weight_norm_mode", WEIGHT_NORM_MODES), ("small_layers", SMALL_LAYER_POLICIES),
                             ("activity_model", ACTIVITY_MODELS)):
            if getattr(self, key) not in choices:
                raise UnknownNameError(key, str(getattr(self, key)), choices)
        present = {k: getattr(self, k) for k in CONDITION_CONSTRAINTS if getattr(self, k) is not None}
        check_constraints(present, CONDITION_CONSTRAINTS, prefix=where)
        if not isinstance(self.matched, bool):
            raise ConfigError(f"{where}matched must be true or false, got {self.matched!r}")
        if self.units is not None and self.frac is not None:
            raise ConfigError(f"{where}give either units (a count) or frac (a fraction) of recorded units, not both")
        if not self.matched and self.units is None and self.frac is None:
            raise ConfigError(f"{where}matched = false needs units (or frac): the number of units found per session")
        if self.activity_model != "rate" and self.sigma > 0:
            raise ConfigError(f"{where}activity_model {self.activity_model!r} has its own noise; set sigma = 0")
        derived = "act" if self.activity_only else "all"
        if self.observables is None:
            object.__setattr__(self, "observables", derived)
        elif self.observables not in OBSERVABLE_SETS:
            raise UnknownNameError("observables", str(self.observables), OBSERVABLE_SETS)
        elif self.observables == "all" and derived == "act":
            raise ConfigError(f"{where}observables = \"all\" is impossible with an activity model, a probe subset or "
                              "unmatched units (weights and activity changes are not recorded); use \"act\"")

    @property
    def activity_only(self) -> bool:
        """Whether the condition models an in-vivo activity recording (activity model, probe subset or unmatched
        units), which observes activity statistics only."""
        return self.activity_model != "rate" or self.probes is not None or not self.matched

    @classmethod
    def from_table(cls, table: dict, where: str = "condition") -> Condition:
        """The condition of a ``[[conditions]]`` table: unknown keys -> :class:`UnknownNameError` (nearest key
        suggested), a key of another activity model (``tau`` without ``activity_model = "calcium"``) ->
        :class:`ConfigError`, then the dataclass's checks. One line each."""
        if not isinstance(table, dict):
            raise ConfigError(f"[{where}] must be a table")
        check_keys(table, [f.name for f in fields(cls)], f"key in [{where}]")
        model = table.get("activity_model", "rate")
        if model in MODEL_KEYS:
            stray = [k for ks in MODEL_KEYS.values() for k in ks if k in table and k not in MODEL_KEYS[model]]
            if stray:
                users = [m for m, ks in MODEL_KEYS.items() if stray[0] in ks]
                raise ConfigError(f"[{where}] {stray[0]} applies to activity_model {' / '.join(map(repr, users))}, "
                                  f"not {model!r}; remove it or set activity_model")
        if "small_layers" in table and "units" not in table:
            raise ConfigError(f"[{where}] small_layers applies to units; remove it or set units")
        return cls(**table)

    def table(self) -> dict:
        """The condition as a plain dict: every original key, and the activity keys (:data:`ACTIVITY_KEYS`) only
        where they differ from their defaults (``observables`` only where it differs from the derived value), so
        ``Condition(**c.table()) == c`` and conditions without activity keys keep their earlier tables."""
        out = asdict(self)
        for f in fields(self):
            if f.name not in ACTIVITY_KEYS:
                continue
            default = ("act" if self.activity_only else "all") if f.name == "observables" else f.default
            if out[f.name] == default:
                del out[f.name]
        return out


def is_original_model(table: dict) -> bool:
    """Whether a condition table (``store.json`` / :meth:`Condition.table`) uses only the original measurement
    model: Gaussian noise and a fixed ``frac`` of units, every observable recorded (no activity key away from its
    default). Missing keys count as defaults, so tables of earlier releases are original."""
    defaults = {f.name: f.default for f in fields(Condition)}
    changed = [k for k in ACTIVITY_KEYS if k != "observables" and k in table and table[k] != defaults[k]]
    return not changed and table.get("observables") in (None, "all")


def unit_count(n_units: int, frac: float | None = None, units: int | None = None,
               small_layers: str = "error") -> int:
    r"""The number of units recorded from a tensor of ``n_units`` units.

    ``units`` set: ``units``, or with ``units > n_units`` every unit (``small_layers="all"``) or a
    :class:`ConfigError` (``"error"``). Else ``frac`` set: :math:`\max(1, \lceil \mathrm{frac}\cdot U\rceil)`
    (``frac·U`` rounded to 9 decimals first, see :func:`unit_subset`). Else ``n_units``."""
    n_units = check_positive_int("n_units", n_units)
    if units is not None:
        units = check_scalar("units", units, int, low=1)
        if units > n_units:
            if small_layers == "error":
                raise ConfigError(f"units = {units} is more than the {n_units} units of the recorded tensor; lower "
                                  "units or set small_layers = \"all\" to record every unit of smaller layers")
            if small_layers not in SMALL_LAYER_POLICIES:
                raise UnknownNameError("small_layers", str(small_layers), SMALL_LAYER_POLICIES)
            return n_units
        return units
    if frac is not None:
        _check_frac(frac)
        return max(1, math.ceil(round(float(frac) * n_units, 9)))
    return n_units


def check_recordable(condition: Condition, where: str, *, act_units: int, in_units: int, synapses: int,
                     n_probe: int) -> None:
    """Raise a one-line :class:`ConfigError` naming ``where`` (a layer of a network) if ``condition`` asks for
    more units than the layer's recorded tensors have (``units`` with ``small_layers="error"``: its output units;
    with ``observables="all"`` also its input units and synapses) or more probes than the probe set."""
    c = condition
    if c.probes is not None and c.probes > n_probe:
        raise ConfigError(f"condition {c.name!r}: probes = {c.probes} but the probe set has {n_probe} stimuli "
                          "(training.n_probe); lower probes or raise n_probe")
    if c.units is None or c.small_layers == "all":
        return
    sizes = {"output units": act_units}
    if c.observables == "all":
        sizes |= {"input units": in_units, "synapses": synapses}
    for what, n in sizes.items():
        if c.units > n:
            raise ConfigError(f"condition {c.name!r}: units = {c.units} is more than the {n} {what} of {where}; "
                              "lower units or set small_layers = \"all\" to record every unit of smaller layers")


def _check_frac(frac: float | None) -> None:
    if frac is None:
        return
    check_scalar("frac", frac, float, 0.0, 1.0, closed="right", note="or None to keep every unit")


def _check_sigma(sigma: float) -> None:
    check_scalar("sigma", sigma, float, low=0.0)


def _check_seed(seed: int, name: str = "seed") -> None:
    check_scalar(name, seed, int, 0, _MAX_SEED)


def unit_subset(n_units: int, frac: float | None, seed: int, *, units: int | None = None,
                small_layers: str = "error") -> np.ndarray | None:
    r"""Indices of the units kept when recording a fraction ``frac`` (or an absolute count ``units``) of
    ``n_units`` units.

    .. math:: S = \mathrm{RandomState(seed).permutation}(U)[:k],\qquad k = \max(1, \lceil \mathrm{frac}\cdot U\rceil)

    or :math:`k` = ``units`` (see :func:`unit_count`), so ``units = k`` keeps exactly the units of a ``frac``
    with :math:`\lceil \mathrm{frac}\cdot U\rceil = k`. The subset depends only on ``(n_units, k, seed)``, so the
    same units are kept at every checkpoint (a chronic recording). ``frac·U`` is rounded to 9 decimals before the
    ceiling so that float noise does not add a unit (``0.07 * 100`` is ``7.000000000000001`` in floating point;
    this keeps 7 units, not 8).

    Returns:
        ``int64`` array of shape ``(k,)`` in permutation order (read-only, cached), or ``None`` if neither
        ``frac`` nor ``units`` is set, or ``units >= n_units`` (every unit, exactly as without subsampling).
    """
    n_units = check_positive_int("n_units", n_units)
    _check_frac(frac)
    _check_seed(seed)
    if frac is None and units is None:
        return None
    k = unit_count(n_units, frac, units, small_layers)
    if units is not None and k >= n_units:
        return None
    return _unit_subset(n_units, k, int(seed))


@functools.lru_cache(maxsize=256)
def _unit_subset(n_units: int, k: int, seed: int) -> np.ndarray:
    idx = np.random.RandomState(seed).permutation(n_units)[:k].astype(np.int64)
    idx.setflags(write=False)
    return idx


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
    _check_sigma(sigma)
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
    _check_seed(seed)
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


def activity_statistics(act: np.ndarray | torch.Tensor) -> dict[str, float] | dict[str, np.ndarray]:
    """The 21 ``act*`` statistics (3 functions × 7 statistics, :func:`tensor_statistics` with ``measure="act"``)
    of recorded activity: the one code path for simulated networks and for recordings.

    Args:
        act: ``(probes, units)``, one session: row ``p`` is the response of every recorded unit to probe
            stimulus ``p`` (rates, spike counts / window, ΔF/F, … as the caller measured them); or
            ``(checkpoints, probes, units)``, several sessions with the same number of probes and units (sessions
            with different unit counts: call once per session). numpy or torch, any real dtype (computed in
            float64). Non-finite values pass through to the statistics.

    Returns:
        ``{name: value}`` for the 21 ``act*`` names in :data:`ALL_OBS` order: Python floats for a 2-D input,
        float64 arrays of shape ``(checkpoints,)`` for a 3-D one. Each statistic is computed per probe over
        the units and then averaged over the probes (module docstring).
    """
    T = act.detach() if isinstance(act, torch.Tensor) else torch.from_numpy(np.asarray(act, dtype=np.float64))
    if T.ndim not in (2, 3) or T.shape[-1] == 0 or T.shape[-2] == 0:
        raise ShapeError(f"act must have shape (probes, units) or (checkpoints, probes, units) with probes, units "
                         f">= 1, got {tuple(T.shape)}")
    T = T.to(torch.float64)
    if T.ndim == 2:
        return tensor_statistics(T, "act")
    per_session = [tensor_statistics(T[c], "act") for c in range(T.shape[0])]
    names = [obs_name("act", f, s) for f in FUNCTIONS for s in STATISTICS]
    return {n: np.array([d[n] for d in per_session], dtype=np.float64) for n in names}


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
    _check_seed(stream, "stream")
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
