"""Spiking learner: a current-based LIF hidden layer with a leaky-integrator readout (bias-spec §3.1, stack.md §3).

Dynamics (``dt`` in ms, ``α = e^{−dt/τ_syn}``, ``β = e^{−dt/τ_mem}``, ``β_out = e^{−dt/τ_out}``, threshold θ),
for ``t = 0 … T−1`` with ``I[0] = V[0] = z[0] = 0``:

.. math::

    S[t] = \\Theta(V[t] - \\theta), \\quad
    I[t+1] = \\alpha I[t] + c[t], \\quad
    V[t+1] = (\\beta V[t] + I[t])\\,(1 - S[t]), \\quad
    z[t+1] = \\beta_{out} z[t] + S[t],

    \\hat y = \\Big(\\frac1T \\sum_{t=1}^{T} z[t]\\Big) W_2 + b_2,

i.e. the readout ``U[t+1] = β_out U[t] + S[t] W₂`` averaged over time (by linearity ``U[t] = z[t] W₂``, so ``W₂`` is
applied once). The input current ``c[t]`` is

- ``encoding="current"`` (default): constant ``c = g_in (x W_1 + b_1)`` at every step, ``W_1 (d, N_h)``;
- ``encoding="rate"``: ON/OFF Poisson-like inputs, 2 per coordinate with spike probability
  ``r_max·dt·[±x_i]₊`` per bin (Bernoulli, from the uniform per-point ``noise`` of ``draw_per_point``), and
  ``c[t] = g_in (s_in[t] W_1 + b_1)`` with ``W_1 (2d, N_h)``. Gradients flow to the weights, not through the
  encoding.

**Spike.** ``S = sg(v) + (Θ(v) − sg(v)).detach()`` with ``v = V − θ``: the value is the Heaviside step, the
derivative is the surrogate ``sg'``, and every derivative of every order is that of the smooth ``sg`` — so the
unrolled training (``create_graph=True``) has a well-defined second derivative. It is made of ordinary torch ops,
so it works under ``torch.func.vmap`` / ``grad`` (no custom ``autograd.Function``). Surrogates (slope κ):

- ``"fast_sigmoid"`` (SuperSpike): ``sg(v) = v / (1 + κ|v|)``, ``sg'(v) = 1 / (1 + κ|v|)²``;
- ``"sigmoid"``: ``sg(v) = (4/κ) σ(κ v)``, ``sg'(v) = 4 σ(κv)(1 − σ(κv))`` (peak 1, like the fast sigmoid).

``smooth=True`` replaces the spike by the soft spike ``g(v)`` — ``σ(κv)`` or ``½(1 + κv/(1 + κ|v|))`` — in the
forward pass too (a rate-like network): a smooth map whose training run can be checked against finite
differences (bias-spec §3.1 check (i)); the Heaviside network itself is piecewise constant in the labels' effect
on spike times, so finite differences of it are not meaningful.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from learnscope.circuits.autograd import AutogradCircuit
from learnscope.circuits.base import LayerInfo, group_layers
from learnscope.circuits.protocol import Fixed, check_member_inputs
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.validation import check_positive, check_positive_int

SURROGATES = ("fast_sigmoid", "sigmoid")
ENCODINGS = ("current", "rate")
READOUTS = ("mean", "last")


def soft_spike(v: Tensor, surrogate: str = "fast_sigmoid", slope: float = 10.0) -> Tensor:
    """The smooth spike ``g(v) ∈ (0, 1)``: ``σ(κv)`` (sigmoid) or ``½(1 + κv/(1 + κ|v|))`` (fast sigmoid)."""
    if surrogate == "sigmoid":
        return torch.sigmoid(slope * v)
    if surrogate == "fast_sigmoid":
        return 0.5 * (1 + slope * v / (1 + slope * v.abs()))
    raise UnknownNameError("surrogate", surrogate, SURROGATES)


def surrogate(v: Tensor, kind: str = "fast_sigmoid", slope: float = 10.0) -> Tensor:
    """``sg(v)`` whose derivative is the surrogate: ``1/(1+κ|v|)²`` (fast sigmoid) or ``4σ(κv)(1−σ(κv))``."""
    if kind == "sigmoid":
        return (4.0 / slope) * torch.sigmoid(slope * v)
    if kind == "fast_sigmoid":
        return v / (1 + slope * v.abs())
    raise UnknownNameError("surrogate", kind, SURROGATES)


def spike(v: Tensor, kind: str = "fast_sigmoid", slope: float = 10.0, smooth: bool = False) -> Tensor:
    """Spike of ``v = V − θ``: value ``Θ(v)`` (1 for v > 0, else 0), derivative ``sg'(v)``; ``smooth``: ``g(v)``."""
    if smooth:
        return soft_spike(v, kind, slope)
    sg = surrogate(v, kind, slope)
    return sg + ((v > 0).to(v.dtype) - sg).detach()


class SpikingLIF(AutogradCircuit):
    """Current-based LIF layer of ``n_hidden`` neurons with a time-averaged leaky readout (module doc).

    Parameters
    ----------
    n_inputs : input dimension d (3 on the sphere).
    n_hidden : LIF neurons N_h (bias-spec §3.1: 20; try 100).
    t_sim : simulated steps T (20–50 keeps unrolled training affordable).
    dt, tau_syn, tau_mem : ms (1, 5, 10).
    tau_out : readout time constant in ms (default ``tau_mem``).
    threshold : θ (1).
    encoding : ``"current"`` (default) or ``"rate"``.
    max_rate : Hz, the rate code's r_max (100).
    input_gain : g_in, the input current per unit of ``x W_1 + b_1`` (default 0.2: with the default
        initialisation the currents then spread over the graded range between silence and the maximal rate
        of one spike every two steps — larger gains saturate most neurons).
    surrogate, slope : spike surrogate and κ (module doc).
    smooth : soft spikes in the forward pass (for finite-difference checks).
    readout : ``"mean"`` (time average of U over t = 1..T, default) or ``"last"`` (U[T]).
    detach_reset : stop gradients through the reset factor ``(1 − S)`` (a common SNN choice; default False).

    The circuit protocol (:mod:`learnscope.circuits.protocol`): :meth:`draw` gives the parameters
    ``[W1 (E, d_in, N_h), b1 (E, N_h), W2 (E, N_h, 1), b2 (E, 1)]`` with ``d_in = d`` (current) or ``2d`` (rate),
    init ``U(±1/√fan_in)`` (PyTorch's Linear default), and no per-member fixed randomness; the rate code's input
    noise is per input row, :meth:`draw_per_point` ``{"noise": (E, N, T, 2d)}``. The weight layers are ``fc1``
    (input → LIF currents) and ``fc2`` (time-averaged readout); a transport of ``fc2`` (``(E, N_h, 1)``, feedback
    alignment's ``Bᵀ``) sends the readout error into the spiking layer, through which it travels back in time by
    the surrogate derivative (BPTT, :meth:`loss_grads`).
    """

    name = "lif"

    def __init__(
        self,
        n_inputs: int = 3,
        n_hidden: int = 20,
        t_sim: int = 30,
        dt: float = 1.0,
        tau_syn: float = 5.0,
        tau_mem: float = 10.0,
        tau_out: float | None = None,
        threshold: float = 1.0,
        encoding: str = "current",
        max_rate: float = 100.0,
        input_gain: float = 0.2,
        surrogate: str = "fast_sigmoid",
        slope: float = 10.0,
        smooth: bool = False,
        readout: str = "mean",
        detach_reset: bool = False,
    ):
        self.n_inputs = check_positive_int("n_inputs", n_inputs)
        self.n_hidden = check_positive_int("n_hidden", n_hidden)
        self.t_sim = check_positive_int("t_sim", t_sim)
        self.dt = check_positive("dt", dt)
        self.tau_syn = check_positive("tau_syn", tau_syn)
        self.tau_mem = check_positive("tau_mem", tau_mem)
        self.tau_out = self.tau_mem if tau_out is None else check_positive("tau_out", tau_out)
        self.threshold = check_positive("threshold", threshold)
        if encoding not in ENCODINGS:
            raise UnknownNameError("encoding", encoding, ENCODINGS)
        self.encoding = encoding
        self.max_rate = check_positive("max_rate", max_rate)
        if self.max_rate * self.dt / 1000 > 1:
            raise ConfigError(f"max_rate·dt = {self.max_rate * self.dt / 1000:g} spikes per bin; must be ≤ 1")
        self.input_gain = check_positive("input_gain", input_gain)
        if surrogate not in SURROGATES:
            raise UnknownNameError("surrogate", surrogate, SURROGATES)
        self.surrogate = surrogate
        self.slope = check_positive("slope", slope)
        self.smooth = bool(smooth)
        if readout not in READOUTS:
            raise UnknownNameError("readout", readout, READOUTS)
        self.readout = readout
        self.detach_reset = bool(detach_reset)
        groups = group_layers(2)
        self.layers = [
            LayerInfo("fc1", "dense", 0, groups[0], (self.d_in, self.n_hidden)),
            LayerInfo("fc2", "dense", 1, groups[1], (self.n_hidden, 1)),
        ]
        self.n_out = 1
        self.in_shape = (self.n_inputs,)

    # -------------------------------------------------------------- shapes and draws
    @property
    def fixed_keys(self) -> tuple[str, ...]:
        """``("noise",)`` for the rate code (its Bernoulli input spikes), else ``()``."""
        return ("noise",) if self.encoding == "rate" else ()

    @property
    def d_in(self) -> int:
        """Input channels of W1: d (current) or 2d (ON/OFF rate code)."""
        return self.n_inputs * (2 if self.encoding == "rate" else 1)

    def draw_per_point(self, generator: torch.Generator, ensemble: int, n_points: int,
                       dtype: torch.dtype = torch.float32) -> Fixed:
        """The rate code's U[0, 1) noise ``{"noise": (E, n_points, T, 2d)}`` (one ``torch.rand``); ``{}`` for
        the current code (nothing drawn)."""
        if self.encoding != "rate":
            return {}
        return {"noise": torch.rand((ensemble, n_points, self.t_sim, self.d_in), generator=generator, dtype=dtype)}

    # -------------------------------------------------------------- simulation
    def _currents(self, params: Sequence[Tensor], x: Tensor, fixed: Fixed | None) -> Tensor:
        W1, b1 = params[0], params[1]
        E, N, _ = x.shape
        fixed = self._fixed(fixed, E)
        if self.encoding == "current":
            return self.input_gain * torch.baddbmm(b1.unsqueeze(1), x, W1)  # (E, N, H), constant in time
        noise = fixed["noise"]
        if tuple(noise.shape) != (E, N, self.t_sim, self.d_in):
            raise ShapeError(f"the rate code needs fixed['noise'] of shape {(E, N, self.t_sim, self.d_in)} (one row "
                             f"per input row), got {tuple(noise.shape)}")
        p = torch.cat([x, -x], dim=-1).clamp_min(0) * (self.max_rate * self.dt / 1000)  # (E, N, 2d)
        s_in = (noise < p.unsqueeze(2)).to(x.dtype).reshape(E, N * self.t_sim, self.d_in)
        c = torch.baddbmm(b1.unsqueeze(1), s_in, W1)
        return self.input_gain * c.reshape(E, N, self.t_sim, self.n_hidden)

    def _check(self, params: Sequence[Tensor], x: Tensor) -> Tensor:
        return check_member_inputs(params, self.param_shapes(), x, self.n_inputs, "W1, b1, W2, b2")

    def readout_weights(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """Weights ``w_s`` with readout features ``Σ_s w_s S[s]`` (``s = 0 … T−1``), shape ``(T,)``.

        ``z[t] = Σ_{s<t} β_out^{t−1−s} S[s]``, so ``mean_{t=1..T} z[t]`` has
        ``w_s = (1 − β_out^{T−s}) / (T(1 − β_out))`` and ``z[T]`` has ``w_s = β_out^{T−1−s}``.
        """
        T = self.t_sim
        b = math.exp(-self.dt / self.tau_out)
        s = torch.arange(T, dtype=torch.float64)
        if self.readout == "last":
            w = b ** (T - 1 - s)
        else:
            w = (1 - b ** (T - s)) / (T * (1 - b))
        return w.to(dtype)

    def spikes(self, params: Sequence[Tensor], x: Tensor, fixed: Fixed | None = None) -> Tensor:
        """Hidden spike trains ``S (T, E, N, H)`` (values 0/1; soft spikes if ``smooth``)."""
        x = self._check(params, x)
        c = self._currents(params, x, fixed)
        alpha = math.exp(-self.dt / self.tau_syn)
        beta = math.exp(-self.dt / self.tau_mem)
        zero = torch.zeros(*x.shape[:2], self.n_hidden, dtype=x.dtype, device=x.device)
        I, V = zero, zero
        out = []
        for t in range(self.t_sim):
            S = spike(V - self.threshold, self.surrogate, self.slope, self.smooth)
            ct = c if c.ndim == 3 else c[:, :, t]
            keep = 1 - (S.detach() if self.detach_reset else S)
            I, V = alpha * I + ct, (beta * V + I) * keep
            out.append(S)
        return torch.stack(out)

    def hidden_trace(self, params: Sequence[Tensor], x: Tensor, fixed: Fixed | None = None) -> tuple[Tensor, Tensor]:
        """Run the LIF layer: ``(readout features (E, N, H), spike counts (E, N, H))``.

        The features are ``mean_{t=1..T} z[t]`` (``readout="mean"``) or ``z[T]`` (``"last"``), computed as
        ``Σ_s w_s S[s]`` (:meth:`readout_weights`); the spike counts are ``Σ_t S[t]`` (values, for diagnostics).
        """
        S = self.spikes(params, x, fixed)
        feats = torch.tensordot(self.readout_weights(S.dtype).to(S.device), S, dims=1)
        return feats, S.detach().sum(0)

    def features(self, params: Sequence[Tensor], x: Tensor, fixed: Fixed | None = None) -> Tensor:
        """The readout features ``(E, N, H)`` of :meth:`hidden_trace`."""
        return self.hidden_trace(params, x, fixed)[0]

    def forward(self, params: Sequence[Tensor], x: Tensor, fixed: Fixed | None = None) -> Tensor:
        """Outputs ``(E, N, 1)`` for ``x (E, N, d)`` (or ``(N, d)`` shared by the members); ``fixed`` holds the
        rate code's ``"noise"`` for the rows of x."""
        return super().forward(params, x, fixed)

    def describe(self) -> dict[str, Any]:
        """JSON-able constructor arguments."""
        return {
            "circuit": "lif",
            "n_inputs": self.n_inputs,
            "n_hidden": self.n_hidden,
            "t_sim": self.t_sim,
            "dt": self.dt,
            "tau_syn": self.tau_syn,
            "tau_mem": self.tau_mem,
            "tau_out": self.tau_out,
            "threshold": self.threshold,
            "encoding": self.encoding,
            "max_rate": self.max_rate,
            "input_gain": self.input_gain,
            "surrogate": self.surrogate,
            "slope": self.slope,
            "smooth": self.smooth,
            "readout": self.readout,
            "detach_reset": self.detach_reset,
        }

    def __repr__(self) -> str:
        return (
            f"SpikingLIF(n_inputs={self.n_inputs}, n_hidden={self.n_hidden}, t_sim={self.t_sim}, "
            f"encoding={self.encoding!r}, surrogate={self.surrogate!r}, smooth={self.smooth})"
        )
