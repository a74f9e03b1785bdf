"""The names of the observables (identify-spec §4.1) and the paper's observable classes.

``obs_name(measure, function, statistic) = f"{measure}{function}_{statistic}"`` with measures ``weight``, ``act``
(and the special ``gradavg``), functions ``raw`` (T), ``sq`` (T²), ``abs`` (|T|) and statistics ``norm, mean,
median, thirdquartile, var, skew, kurtosis`` (``id`` for ``gradavg``).

:data:`ALL_OBS` order (the spec does not fix one; this is the nested order of the constants): measure-major over
:data:`MEASURES`, then :data:`FUNCTIONS`, then :data:`STATISTICS`, i.e. ``weightraw_norm, weightraw_mean, …,
weightabs_kurtosis, actraw_norm, …, actabs_kurtosis`` (42 names), then ``gradavgraw_id, gradavgsq_id,
gradavgabs_id``. :data:`ADMISSIBLE_OBS` is the 24-name list of §4.1 in the original's order. All re-exported by
:mod:`learnscope.identify.observables`.
"""

from __future__ import annotations

from learnscope.errors import UnknownNameError

MEASURES: tuple[str, ...] = ("weight", "act")
FUNCTIONS: tuple[str, ...] = ("raw", "sq", "abs")
STATISTICS: tuple[str, ...] = ("norm", "mean", "median", "thirdquartile", "var", "skew", "kurtosis")


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
