"""Measurement conditions (identify-spec §4.4; issue 15): what a condition records, and the checks of its values.

Measurement limits are a :class:`Condition`: additive Gaussian noise first (absolute σ, or σ times the observed
tensor's std), then a fixed random subset of units (:func:`~learnscope.identify.units.unit_subset`, the same at
every checkpoint): a fraction ``frac`` or an absolute count ``units``.

Activity measurement models (issue 15; the pure functions live in :mod:`learnscope.identify.measurement`) are
further condition keys: ``activity_model = "poisson" | "calcium"`` (spike counts / ΔF/F from the rates),
``probes`` (a fixed subset of the probe stimuli shown in every session), ``matched = false`` (a different random
set of ``units`` in each session) and ``jitter`` (sessions fall at perturbed points of training; the simulator
records them there). Weights and layer-wise activity changes cannot be recorded in vivo: a condition with an
activity model, a probe subset or unmatched units has ``observables = "act"`` and stores NaN for every
``weight*`` and ``gradavg*`` statistic (the store's 45 columns stay; datasets of ``obs_class="act"`` load as
usual). All re-exported by :mod:`learnscope.identify.observables`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from learnscope.errors import ConfigError, UnknownNameError
from learnscope.identify.obs_stats import WEIGHT_NORM_MODES
from learnscope.validation import Interval, check_constraints, check_keys, check_scalar

NOISE_MODES: tuple[str, ...] = ("absolute", "relative")
GRADAVG_MODES: tuple[str, ...] = ("forward", "as_original")
ACTIVITY_MODELS: tuple[str, ...] = ("rate", "poisson", "calcium")
OBSERVABLE_SETS: tuple[str, ...] = ("all", "act")
SMALL_LAYER_POLICIES: tuple[str, ...] = ("error", "all")

MAX_SEED = 2**32 - 2  # np.random.RandomState takes seeds < 2**32, and gradavg uses seed + 1


def check_frac(frac: float | None) -> None:
    """A :class:`ConfigError` unless ``frac`` is None or in ``(0, 1]``."""
    if frac is None:
        return
    check_scalar("frac", frac, float, 0.0, 1.0, closed="right", note="or None to keep every unit")


def check_sigma(sigma: float) -> None:
    """A :class:`ConfigError` unless ``sigma >= 0``."""
    check_scalar("sigma", sigma, float, low=0.0)


def check_seed(seed: int, name: str = "seed") -> None:
    """A :class:`ConfigError` unless ``seed`` is an integer in ``[0, MAX_SEED]``."""
    check_scalar(name, seed, int, 0, MAX_SEED)


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
        weight_norm_mode: ``"rows"`` (original) or ``"frobenius"``; see
            :func:`~learnscope.identify.obs_stats.tensor_statistics`.
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
        check_frac(self.frac)
        check_sigma(self.sigma)
        check_seed(self.seed)
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


def check_recordable(condition: Condition, where: str, *, act_units: int, in_units: int, synapses: int,
                     n_probe: int) -> None:
    """Raise a one-line :class:`ConfigError` naming ``where`` (a layer of a network) if ``condition`` asks for
    more units than the layer's recorded tensors have (``units`` with ``small_layers="error"``: its output units;
    with ``observables="all"`` also its input units and synapses) or more probes than the probe set."""
    c = condition
    check_probes(c, n_probe)
    if c.units is None or c.small_layers == "all":
        return
    sizes = {"output units": act_units}
    if c.observables == "all":
        sizes |= {"input units": in_units, "synapses": synapses}
    for what, n in sizes.items():
        if c.units > n:
            raise ConfigError(f"condition {c.name!r}: units = {c.units} is more than the {n} {what} of {where}; "
                              "lower units or set small_layers = \"all\" to record every unit of smaller layers")


def check_probes(condition: Condition, n_probe: int) -> None:
    """Raise a one-line :class:`ConfigError` if ``condition`` shows more probe stimuli (``probes``) than the probe
    set has (``n_probe``, the grid's ``training.n_probe``)."""
    c = condition
    if c.probes is not None and c.probes > n_probe:
        raise ConfigError(f"condition {c.name!r}: probes = {c.probes} but the probe set has {n_probe} stimuli "
                          "(training.n_probe); lower probes or raise n_probe")
