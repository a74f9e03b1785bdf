"""How much memory one meta-gradient through an unrolled learner needs, measured from its saved tensors.

The memory of a meta-gradient is dominated by the tensors autograd saves for the backward pass. For an unrolled
learner of T inner steps it is, with ``s`` the bytes saved per inner step, ``b`` the rest (drawing, readout, the
loss) and ``c`` the bytes of one carry (parameters plus trainer state of all B learners):

.. math::

    M_{full} = b + T s, \\quad
    M_{checkpointed} = b + \\lceil T/S \\rceil c + S s + 8Bk(T + S), \\quad
    M_{truncated} = b + K s + 8Bk(T + K), \\quad
    M_{implicit} = b + 2 s + 6 c,

(checkpointed: the carries at the segment boundaries plus one segment rebuilt in the backward pass, and the int64
minibatch indices ``(B, T, k)`` that a window's gather saves whole, beside a copy of the window's; implicit: the
graph of one gradient for the Hessian–vector products and the conjugate-gradient vectors). ``s`` and ``b`` are
measured, not modelled: :func:`estimate_peak_memory` runs the learner's full meta-gradient for 2 and 4 inner steps
on random data of the real sizes under a :class:`SavedTensorMeter` and fits the line. Against the measured saved
bytes of a whole run (tests/core/test_meta_gradient.py) the estimate is exact to 1 % for ``"full"`` and
``"truncated"`` and an overestimate by at most 1.6× for ``"checkpointed"`` (the readout's graph lives only in the
last segment's recomputation, but ``b`` counts it beside the longest segment); the process's
resident memory is larger by the autograd graph's own nodes, the allocator and the backward pass's temporaries
(measured side by side in ``benchmarks/bias_memory.py``).
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from learnscope.errors import ConfigError
from learnscope.learners.meta_gradient import default_segment

__all__ = ["MemoryEstimate", "SavedTensorMeter", "check_memory", "estimate_peak_memory", "format_bytes",
           "parse_bytes"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(n: float) -> str:
    """``1536 -> "1.5 KiB"``: binary units, three significant digits (whole bytes below 1 KiB)."""
    n = float(n)
    i = 0
    while abs(n) >= 1024 and i < len(_UNITS) - 1:
        n /= 1024
        i += 1
    return f"{int(n)} B" if i == 0 else f"{n:.3g} {_UNITS[i]}"


_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)(i?)([bB]?)\s*$")


def parse_bytes(text: str | int | float) -> int:
    """``"4GiB"``, ``"4G"``, ``"512 MB"``, ``"1e9"`` or a number -> bytes (K/M/G/T with or without ``i``: powers of
    1024 with ``i``, of 1000 without; a bare number is bytes). :class:`ConfigError` for anything else."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit, binary = float(text), "", ""
    else:
        match = _SIZE.match(str(text))
        if match is None:
            raise ConfigError(f"a memory size is a number with an optional unit (e.g. 4GiB, 512MB), got {text!r}")
        value, unit, binary = float(match.group(1)), match.group(2).upper(), match.group(3)
    out = value * (1024 if binary else 1000) ** " KMGT".index(unit) if unit else value
    if not math.isfinite(out) or out <= 0:
        raise ConfigError(f"a memory size must be positive, got {text!r}")
    return int(out)


# ---------------------------------------------------------------- measuring


class _Handle:
    __slots__ = ("meter", "key", "tensor")

    def __init__(self, meter: SavedTensorMeter, key: int, tensor: torch.Tensor):
        self.meter, self.key, self.tensor = meter, key, tensor

    def __del__(self) -> None:
        self.meter._release(self.key)


class SavedTensorMeter:
    """Count the bytes of the tensors autograd saves for backward, live and at their peak.

    ``with SavedTensorMeter() as meter: …`` installs ``torch.autograd.graph.saved_tensors_hooks``; every saved
    tensor is counted once per storage (``untyped_storage().nbytes()``: a view counts its whole storage; a storage
    saved by several nodes once) until the last node that saved it is freed. ``meter.peak`` is the largest live
    total (bytes), ``meter.live`` the current one.
    """

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self._count: dict[int, list[int]] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, t: torch.Tensor) -> _Handle:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        entry = self._count.get(key)
        if entry is None:
            self._count[key] = [1, storage.nbytes()]
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
        else:
            entry[0] += 1
        return _Handle(self, key, t)

    @staticmethod
    def _unpack(h: _Handle) -> torch.Tensor:
        return h.tensor

    def _release(self, key: int) -> None:
        entry = self._count.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self._count[key]

    def __enter__(self) -> SavedTensorMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)


def measure_meta_gradient(learner: Any, n_train: int, n_test: int, batch: int, dtype: torch.dtype, dim: int,
                          seed: int = 0) -> int:
    """Peak saved-tensor bytes of one ``fit_predict`` plus the backward pass of ``Σ pred·w`` w.r.t. ``y_train``
    (random data: inputs N(0, 1) of shape ``(batch, n, dim)``, labels N(0, 1) requiring grad)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n_train, dim, generator=g, dtype=dtype)
    y = torch.randn(batch, n_train, generator=g, dtype=dtype).requires_grad_(True)
    xt = torch.randn(batch, n_test, dim, generator=g, dtype=dtype)
    with torch.enable_grad(), SavedTensorMeter() as meter:
        pred = learner.fit_predict(x, y, xt, generator=torch.Generator().manual_seed(seed + 1))
        torch.autograd.grad(pred.sum(), y)
    return meter.peak


# ---------------------------------------------------------------- estimating


class MemoryEstimate(int):
    """Bytes (an ``int``) with what they are for: ``estimator``, ``steps`` and the estimate of every estimator
    this learner offers (``by_estimator``), for :func:`check_memory`'s message."""

    estimator: str
    steps: int | None
    by_estimator: dict[str, int]

    def __new__(cls, value: int, estimator: str, steps: int | None, by_estimator: dict[str, int]) -> MemoryEstimate:
        obj = super().__new__(cls, int(value))
        obj.estimator, obj.steps, obj.by_estimator = estimator, steps, dict(by_estimator)
        return obj


def _rebuilt(learner: Any, **changes: Any) -> Any:
    params = {**learner.get_params(), **changes}
    return type(learner)(**params)


def _input_dim(learner: Any, dim: int | None) -> int:
    if dim is not None:
        return int(dim)
    for attr in ("n_inputs",):
        if getattr(learner, attr, None):
            return int(getattr(learner, attr))
    circuits = getattr(learner, "_circuits", None)
    if circuits and len(circuits) == 1:
        return next(iter(circuits))
    raise ConfigError(f"{type(learner).__name__} takes its input dimension from the data: pass dim=… to "
                      "estimate_peak_memory")


def _carry_bytes(learner: Any, n_train: int, n_test: int, batch: int, dtype: torch.dtype, dim: int) -> int:
    """Bytes of one carry (parameters and trainer state of all ``batch`` learners), from one real draw."""
    from learnscope.learners.module_learner import ModuleLearner
    from learnscope.learners.trained import CircuitLearner, _members
    from learnscope.learners.unroll import prepare_unroll

    x = torch.zeros(batch, n_train, dim, dtype=dtype)
    xt = torch.zeros(batch, n_test, dim, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    if isinstance(learner, CircuitLearner):
        c = learner.circuit_for(dim)
        draw = c.draw if learner.init == "default" else _members(learner.init)
        u, _, _, xr, yr, _ = prepare_unroll(c, lambda graph: learner._trainer(c, graph), draw, x, x[..., 0], xt, g,
                                            1, learner.batch_size)
        carry = u.run(u.carry, xr, yr, 0, 1, False)  # after one update: the layout the checkpoints are saved in
    elif isinstance(learner, ModuleLearner):
        carry = learner.init_params(g, batch, dtype)
    else:
        return 0
    storages = {}
    for t in torch.utils._pytree.tree_leaves(carry):
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(storages.values())


def estimate_peak_memory(learner: Any, n_train: int, n_test: int, batch: int = 1,
                         dtype: torch.dtype = torch.float32, *, dim: int | None = None) -> MemoryEstimate:
    """Estimated peak bytes of the meta-gradient of one ``fit_predict`` call (``batch`` learners on ``n_train``
    training and ``n_test`` test points of dimension ``dim``) under the learner's own ``meta_gradient``.

    An unrolled learner (one with ``steps``) is probed for 2 and 4 inner steps (module doc: the saved bytes per
    step ``s`` and the rest ``b``) and its carry ``c`` is measured; any other learner is measured once. Returns a
    :class:`MemoryEstimate` (an int of bytes) with the estimate of every estimator in ``by_estimator``.
    """
    d = _input_dim(learner, dim)
    steps = getattr(learner, "steps", None)
    estimator = getattr(learner, "meta_gradient", "full")
    if steps is None:
        peak = measure_meta_gradient(learner, n_train, n_test, batch, dtype, d)
        return MemoryEstimate(peak, "full", None, {"full": peak})
    def per_step(estimator: str) -> tuple[float, float]:
        # "full" may run a whole-unroll reverse pass (the dense sgd path); "truncated" with K = T runs the
        # per-step autograd loop that checkpointed, truncated and implicit use
        p2, p4 = (measure_meta_gradient(_rebuilt(learner, steps=t, meta_gradient=estimator, segment=None,
                                                 truncate=t if estimator == "truncated" else None),
                                        n_train, n_test, batch, dtype, d) for t in (2, 4))
        per = max(0.0, (p4 - p2) / 2)
        return per, max(0.0, p2 - 2 * per)

    s_full, b_full = per_step("full")
    s, b = per_step("truncated") if "truncate" in learner.get_params() else (s_full, b_full)
    c = _carry_bytes(learner, n_train, n_test, batch, dtype, d)
    S = getattr(learner, "segment", None) or default_segment(steps)
    K = getattr(learner, "truncate", None) or steps
    # the minibatch indices (B, T, k) int64 are saved whole by a window's gather (a view keeps its storage)
    # (and a window's copy once more beside it)
    k = getattr(learner, "batch_size", None) or 0
    by = {
        "full": b_full + steps * s_full,
        "checkpointed": b + math.ceil(steps / S) * c + min(S, steps) * s + 8 * batch * k * (steps + min(S, steps)),
        "truncated": b + min(K, steps) * s + 8 * batch * k * (steps + min(K, steps)),
    }
    if getattr(learner, "cg_iters", None) is not None:
        by["implicit"] = b + 2 * s + 6 * c
    by = {k: int(v) for k, v in by.items()}
    return MemoryEstimate(by.get(estimator, by["full"]), estimator, steps, by)


def check_memory(estimate: int, limit: int | str, key: str = "meta_gradient") -> None:
    """Refuse (one-line :class:`ConfigError`) a meta-gradient whose estimated peak memory exceeds ``limit``
    (bytes, or a size string for :func:`parse_bytes`). A :class:`MemoryEstimate` names its estimator, its inner
    steps and the cheaper estimators in the message; ``key`` is the setting the user changes
    (``"search.meta_gradient"`` from a config)."""
    limit_b = parse_bytes(limit)
    if int(estimate) <= limit_b:
        return
    estimator = getattr(estimate, "estimator", "full")
    steps = getattr(estimate, "steps", None)
    what = f"estimator {estimator}" + (f", {steps:,} inner steps" if steps else "")
    hint = ""
    by = getattr(estimate, "by_estimator", {})
    if "checkpointed" in by and estimator != "checkpointed":
        hint = f': use {key} = "checkpointed" (about {format_bytes(by["checkpointed"])})'
        if by["checkpointed"] > limit_b:
            hint += ", fewer learners per step or fewer inner steps"
    elif estimator == "checkpointed":
        hint = f": use fewer learners per step, a smaller segment or {key} = \"truncated\""
    raise ConfigError(f"this run needs about {format_bytes(int(estimate))} for its meta-gradient ({what}); the limit "
                      f"is {format_bytes(limit_b)}{hint}")
