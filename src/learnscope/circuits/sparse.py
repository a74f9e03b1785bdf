"""Fly mushroom body: a sparse, masked expansion layer with a linear readout (bias-spec §2 Fig 7, §5 items 6–8).

``n_inputs`` projection-neuron channels (glomeruli) feed ``n_hidden`` Kenyon cells; every Kenyon cell receives
**exactly** ``fan_in`` of the inputs, chosen by a *connectivity scheme* (a fresh mask per learner and call).
The network is

.. math::

    h = \\mathrm{ReLU}(x W_{\\mathrm{eff}} + b_1), \\qquad \\hat y = h W_2 + b_2, \\qquad
    W_{\\mathrm{eff}} = \\phi(V) \\odot M,

with ``M ∈ {0, 1}^{n_inputs × n_hidden}`` the mask and ``φ`` the identity, ``|·|`` (``positive="abs"``) or
``softplus`` (``positive="softplus"``). The mask and the positivity map sit **inside** the differentiable
computation, so a masked weight gets exactly zero gradient (``∂L/∂V = (∂L/∂W_eff) ⊙ M ⊙ φ'(V)``) and the
meta-gradient of a training run is the true derivative — unlike the authors' code, which zeroes masked updates
in place under ``no_grad`` (baseline-original bug 2) and applies ``|W|`` outside autograd (bias-spec §5 item 7).
Masked entries of ``V`` are also zero at initialisation (only ``fan_in`` weights per unit, bias-spec §5 item 6).

Connectivity schemes (bias-spec §2 Fig 7; ``probs`` overrides the defaults):

- ``"random"`` (notebook scheme 0): the ``fan_in`` inputs of a unit uniformly without replacement.
- ``"overconnected"`` (scheme 1): without replacement with weights ``p`` (default ``(0.6, 0.1, 0.1, 0.1, 0.1)``
  for 5 inputs, ``(0.7, 0.1, 0.1, 0.1)`` for 4): the first input is drawn with ``p``, the next from ``p``
  renormalised over the inputs not yet chosen, and so on.
- ``"grouped"`` (scheme 2): the first input uniformly; each further input with weights
  ``Σ_{i chosen} P[i, j]`` over the inputs ``j`` not yet chosen, where ``P`` is a conditional matrix
  (``probs``, ``n_inputs × n_inputs``, zero diagonal). The default for 5 inputs, groups ``G = {0, 1}``,
  ``N = {2, 3, 4}``: ``P[i, j] = 0.85`` for the other member of ``G``, ``0.05`` for ``j ∈ N`` when ``i ∈ G``;
  ``0.1`` for ``j ∈ G`` and ``0.4`` for the other members of ``N`` when ``i ∈ N``. For 4 inputs
  (``G = {0, 1}``, ``N = {2, 3}``) the notebook's 4-input variant. With ``fan_in = 2`` this is exactly the
  notebook's two-stage draw.
- ``"incidence"``: an empirical incidence matrix ``probs`` of shape ``(n_inputs, n_hidden)`` (non-negative
  weights; column k is unit k's preference over input types): unit k draws its ``fan_in`` inputs without
  replacement with weights ``probs[:, k]``, so a zero entry is never connected.
- a callable ``sampler(generator, ensemble, n_inputs, n_hidden, fan_in) -> mask (ensemble, n_inputs, n_hidden)``
  with exactly ``fan_in`` ones per column (checked).

Sampling without replacement uses ``torch.multinomial(replacement=False)``, whose draws have the distribution of
the sequential scheme above.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from learnscope.circuits.autograd import AutogradCircuit
from learnscope.circuits.base import LayerInfo, group_layers
from learnscope.circuits.protocol import (
    Fixed,
    LossFn,
    Members,
    Transport,
    check_member_inputs,
    default_uniform_init,
)
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.validation import check_positive_int

Sampler = Callable[[torch.Generator, int, int, int, int], Tensor]

SCHEMES = ("random", "overconnected", "grouped", "incidence")
#: the notebook's integer scheme codes
SCHEME_CODES = {0: "random", 1: "overconnected", 2: "grouped"}
POSITIVITY = ("abs", "softplus")


# ---------------------------------------------------------------- default scheme parameters


def default_overconnected(n_inputs: int) -> Tensor:
    """Scheme-1 weights: the notebook's ``(0.6, 0.1, 0.1, 0.1, 0.1)`` (5 inputs) or ``(0.7, 0.1, 0.1, 0.1)`` (4)."""
    if n_inputs == 5:
        return torch.tensor([0.6, 0.1, 0.1, 0.1, 0.1], dtype=torch.float64)
    if n_inputs == 4:
        return torch.tensor([0.7, 0.1, 0.1, 0.1], dtype=torch.float64)
    raise ConfigError(f"scheme 'overconnected' has defaults for 4 or 5 inputs only; pass probs (length {n_inputs})")


def default_grouped(n_inputs: int) -> Tensor:
    """Scheme-2 conditional matrix ``P[i, j]`` = weight of input j as the next input given input i (zero diagonal).

    5 inputs (``G = {0, 1}``, ``N = {2, 3, 4}``): rows ``i ∈ G`` are ``0.85`` on the other G member and ``0.05`` on
    each N member; rows ``i ∈ N`` are ``0.1`` on each G member and ``0.4`` on the other N members (the notebook's
    ``p2G = (0.85, 0.05, 0.05, 0.05)``, ``p2N = (0.1, 0.1, 0.4, 0.4)``). 4 inputs (``N = {2, 3}``): the notebook's
    ``p2G = (0.45, 0.45, 0.1)`` over the remaining inputs in index order and ``p2N = (0.33, 0.33, 0.34)``.
    """
    if n_inputs == 5:
        P = torch.tensor(
            [
                [0.0, 0.85, 0.05, 0.05, 0.05],
                [0.85, 0.0, 0.05, 0.05, 0.05],
                [0.1, 0.1, 0.0, 0.4, 0.4],
                [0.1, 0.1, 0.4, 0.0, 0.4],
                [0.1, 0.1, 0.4, 0.4, 0.0],
            ],
            dtype=torch.float64,
        )
        return P
    if n_inputs == 4:
        rows = []
        for i, p2 in enumerate([(0.45, 0.45, 0.1)] * 2 + [(0.33, 0.33, 0.34)] * 2):
            row = torch.zeros(4, dtype=torch.float64)
            row[[j for j in range(4) if j != i]] = torch.tensor(p2, dtype=torch.float64)
            rows.append(row)
        return torch.stack(rows)
    raise ConfigError(f"scheme 'grouped' has defaults for 4 or 5 inputs only; pass probs ({n_inputs}×{n_inputs})")


def _as_weights(name: str, probs: object, shape: tuple[int, ...]) -> Tensor:
    try:
        t = torch.as_tensor(probs, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"{name} must be an array of non-negative numbers of shape {shape}") from None
    if tuple(t.shape) != shape:
        raise ConfigError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise ConfigError(f"{name} must contain finite non-negative numbers")
    return t.clone()


# ---------------------------------------------------------------- samplers: (generator, E, d, K, k) -> mask (E, d, K)


def _indices_to_mask(idx: Tensor, ensemble: int, n_inputs: int, n_hidden: int) -> Tensor:
    """Chosen inputs ``idx (E·K, fan_in)`` -> 0/1 mask ``(E, n_inputs, n_hidden)`` (float64)."""
    m = torch.zeros(idx.shape[0], n_inputs, dtype=torch.float64).scatter_(1, idx, 1.0)
    return m.view(ensemble, n_hidden, n_inputs).transpose(1, 2).contiguous()


def _without_replacement(weights: Tensor, fan_in: int, generator: torch.Generator) -> Tensor:
    """Sequential weighted sampling without replacement per row of ``weights (R, d)`` -> indices ``(R, fan_in)``."""
    if bool(((weights > 0).sum(-1) < fan_in).any()):
        raise ConfigError(f"every hidden unit needs at least fan_in={fan_in} inputs with positive probability")
    return torch.multinomial(weights, fan_in, replacement=False, generator=generator)


def sample_weighted(weights: Tensor) -> Sampler:
    """Sampler drawing each unit's inputs without replacement with the same weights ``(n_inputs,)``."""

    def sampler(generator: torch.Generator, ensemble: int, n_inputs: int, n_hidden: int, fan_in: int) -> Tensor:
        w = weights.to(torch.float64).expand(ensemble * n_hidden, n_inputs)
        return _indices_to_mask(_without_replacement(w, fan_in, generator), ensemble, n_inputs, n_hidden)

    return sampler


def sample_grouped(conditional: Tensor) -> Sampler:
    """Sampler: first input uniform, each further one with weights ``Σ_{chosen i} P[i, j]`` over unchosen ``j``."""

    def sampler(generator: torch.Generator, ensemble: int, n_inputs: int, n_hidden: int, fan_in: int) -> Tensor:
        R = ensemble * n_hidden
        P = conditional.to(torch.float64)
        first = torch.multinomial(torch.ones(R, n_inputs, dtype=torch.float64), 1, generator=generator)
        chosen = torch.zeros(R, n_inputs, dtype=torch.float64).scatter_(1, first, 1.0)
        for _ in range(fan_in - 1):
            w = (chosen @ P) * (1 - chosen)
            if bool((w.sum(-1) <= 0).any()):
                raise ConfigError("the grouped conditional matrix leaves no input with positive probability")
            nxt = torch.multinomial(w, 1, generator=generator)
            chosen.scatter_(1, nxt, 1.0)
        return chosen.view(ensemble, n_hidden, n_inputs).transpose(1, 2).contiguous()

    return sampler


def sample_incidence(incidence: Tensor) -> Sampler:
    """Sampler for an empirical incidence matrix ``(n_inputs, n_hidden)``: unit k uses weights ``incidence[:, k]``."""

    def sampler(generator: torch.Generator, ensemble: int, n_inputs: int, n_hidden: int, fan_in: int) -> Tensor:
        w = incidence.to(torch.float64).t().repeat(ensemble, 1)  # (E·K, d), row e·K + k = unit k
        return _indices_to_mask(_without_replacement(w, fan_in, generator), ensemble, n_inputs, n_hidden)

    return sampler


def connection_probabilities(weights: Sequence[float] | Tensor, fan_in: int) -> Tensor:
    """Exact probability that each input is among ``fan_in`` draws without replacement with ``weights``.

    Enumerates every ordered draw sequence (``d!/(d−k)!`` of them; meant for the small ``d`` of a mushroom body):

    .. math::

        P(i \\in S) = \\sum_{(j_1..j_k) \\ni i} \\prod_{t=1}^{k}
        \\frac{w_{j_t}}{\\sum_{l \\notin \\{j_1..j_{t-1}\\}} w_l}

    e.g. ``(0.6, 0.1, 0.1, 0.1, 0.1)``, ``k = 2``: ``P(0 ∈ S) = 0.6 + 4·0.1·0.6/0.9 = 0.8667``.
    """
    w = [float(v) for v in torch.as_tensor(weights, dtype=torch.float64)]
    k = check_positive_int("fan_in", fan_in)
    out = [0.0] * len(w)

    def walk(prefix: list[int], prob: float) -> None:
        if len(prefix) == k:
            for i in prefix:
                out[i] += prob
            return
        rest = sum(w[j] for j in range(len(w)) if j not in prefix)
        for j in range(len(w)):
            if j not in prefix and w[j] > 0:
                walk(prefix + [j], prob * w[j] / rest)

    walk([], 1.0)
    return torch.tensor(out, dtype=torch.float64)


# ---------------------------------------------------------------- the circuit


class MushroomBody(AutogradCircuit):
    """Masked expansion ``Linear(n_inputs → n_hidden)`` (each unit exactly ``fan_in`` inputs) → ReLU → ``Linear(→ 1)``.

    Parameters
    ----------
    n_inputs : input channels d (Fig 7: 5).
    n_hidden : Kenyon cells K (Fig 7: 100).
    fan_in : inputs per hidden unit, ``1 ≤ fan_in ≤ n_inputs`` (Fig 7: 2).
    scheme : ``"random"``, ``"overconnected"``, ``"grouped"``, ``"incidence"`` (or the notebook codes 0, 1, 2),
        or a sampler callable (module doc).
    positive : ``False``; ``True`` / ``"abs"`` (``W_eff = |V| ⊙ M``); ``"softplus"`` (``softplus(V) ⊙ M``).
    probs : the scheme's weights: a length-``n_inputs`` vector (overconnected), an ``n_inputs × n_inputs``
        conditional matrix (grouped) or an ``n_inputs × n_hidden`` incidence matrix (incidence, required).

    The circuit protocol (:mod:`learnscope.circuits.protocol`): :meth:`draw` gives ``Members(params, fixed)`` with
    ``params = [V (E, d, K), b1 (E, K), W2 (E, K, 1), b2 (E, 1)]`` and ``fixed = {"mask": (E, d, K)}`` (one member
    per learner). Initialisation is PyTorch's ``nn.Linear`` default for the *dense* layers — ``U(±1/√n_inputs)``
    for V and b1, ``U(±1/√n_hidden)`` for W2 and b2 — then ``V ← V ⊙ M``; with ``"abs"`` the effective weight is
    ``|V|`` (the authors' ``|W|`` at init), with ``"softplus"`` ``V`` is set to ``softplus⁻¹(max(|U|, 1e-4))`` so
    the effective weights have the same distribution. The weight layers are ``fc1`` (``W_eff``, d → K) and
    ``fc2`` (K → 1); a transport of ``fc2`` (``(E, K, 1)``, feedback alignment's ``Bᵀ``) sends the readout error to
    the Kenyon cells. :meth:`loss_grads` of the mean squared error is hand-written (:meth:`mse_grads`).
    """

    name = "mushroom_body"
    fixed_keys = ("mask",)

    def __init__(
        self,
        n_inputs: int = 5,
        n_hidden: int = 100,
        fan_in: int = 2,
        scheme: str | int | Sampler = "random",
        positive: bool | str = False,
        probs: Sequence | Tensor | None = None,
    ):
        self.n_inputs = check_positive_int("n_inputs", n_inputs)
        self.n_hidden = check_positive_int("n_hidden", n_hidden)
        self.fan_in = check_positive_int("fan_in", fan_in)
        if fan_in > n_inputs:
            raise ConfigError(f"fan_in ({fan_in}) must not exceed n_inputs ({n_inputs})")
        if positive is True:
            positive = "abs"
        if positive is not False and positive not in POSITIVITY:
            raise UnknownNameError("positivity", str(positive), (*POSITIVITY, "False"))
        self.positive: str | bool = positive
        if isinstance(scheme, int) and not isinstance(scheme, bool):
            if scheme not in SCHEME_CODES:
                raise ConfigError(f"scheme code must be one of {sorted(SCHEME_CODES)}, got {scheme}")
            scheme = SCHEME_CODES[scheme]
        self.scheme = scheme
        self.probs: Tensor | None = None
        if callable(scheme):
            if probs is not None:
                raise ConfigError("probs is only used by the built-in schemes; a sampler callable takes none")
            self._sampler: Sampler = scheme
        elif scheme == "random":
            if probs is not None:
                raise ConfigError("scheme 'random' takes no probs; use 'overconnected' for weighted inputs")
            self._sampler = sample_weighted(torch.ones(n_inputs, dtype=torch.float64))
        elif scheme == "overconnected":
            p = default_overconnected(n_inputs) if probs is None else _as_weights("probs", probs, (n_inputs,))
            self.probs = p
            self._sampler = sample_weighted(p)
        elif scheme == "grouped":
            P = default_grouped(n_inputs) if probs is None else _as_weights("probs", probs, (n_inputs, n_inputs))
            self.probs = P
            self._sampler = sample_grouped(P)
        elif scheme == "incidence":
            if probs is None:
                raise ConfigError("scheme 'incidence' needs probs: an (n_inputs, n_hidden) incidence matrix")
            P = _as_weights("probs", probs, (n_inputs, n_hidden))
            if bool(((P > 0).sum(0) < fan_in).any()):
                raise ConfigError(f"every column of the incidence matrix needs ≥ fan_in={fan_in} positive entries")
            self.probs = P
            self._sampler = sample_incidence(P)
        else:
            raise UnknownNameError("connectivity scheme", str(scheme), SCHEMES)
        groups = group_layers(2)
        self.layers = [
            LayerInfo("fc1", "dense", 0, groups[0], (self.n_inputs, self.n_hidden)),
            LayerInfo("fc2", "dense", 1, groups[1], (self.n_hidden, 1)),
        ]
        self.n_out = 1
        self.in_shape = (self.n_inputs,)
    # -------------------------------------------------------------- draws
    def sample_mask(self, generator: torch.Generator, ensemble: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """A fresh 0/1 mask ``(ensemble, n_inputs, n_hidden)``, exactly ``fan_in`` ones per column."""
        if not isinstance(generator, torch.Generator):
            raise ConfigError("generator must be a torch.Generator (explicit seeding, no global RNG)")
        E = check_positive_int("ensemble", ensemble)
        M = self._sampler(generator, E, self.n_inputs, self.n_hidden, self.fan_in)
        want = (E, self.n_inputs, self.n_hidden)
        if not isinstance(M, Tensor) or tuple(M.shape) != want:
            got = tuple(M.shape) if isinstance(M, Tensor) else type(M).__name__
            raise ShapeError(f"the connectivity sampler must return a mask of shape {want}, got {got}")
        if not bool(((M == 0) | (M == 1)).all()) or not bool((M.sum(1) == self.fan_in).all()):
            raise ShapeError(f"the connectivity mask must be 0/1 with exactly fan_in={self.fan_in} ones per column")
        return M.to(dtype)

    def params_for_mask(self, generator: torch.Generator, mask: Tensor,
                        dtype: torch.dtype = torch.float32) -> list[Tensor]:
        """Draw ``[V, b1, W2, b2]`` for ``mask (E, d, K)`` (order V, b1, W2, b2; class doc for the distribution)."""
        E = mask.shape[0]
        d, K = self.n_inputs, self.n_hidden
        V, b1, W2, b2 = default_uniform_init([((d, K), d), ((K,), d), ((K, 1), K), ((1,), K)], generator, E, dtype)
        if self.positive == "softplus":
            a = V.abs().clamp_min(1e-4)
            V = a + torch.log(-torch.expm1(-a))  # softplus⁻¹(a) = log(eᵃ − 1), stable form
        return [V * mask.to(dtype), b1, W2, b2]

    def draw(self, generator: torch.Generator, ensemble: int, dtype: torch.dtype = torch.float32) -> Members:
        """Mask, then parameters of ``ensemble`` fresh learners from one generator: ``Members(params, {"mask"})``."""
        mask = self.sample_mask(generator, ensemble, dtype)
        return Members(self.params_for_mask(generator, mask, dtype), {"mask": mask})

    # -------------------------------------------------------------- forward / gradients
    def effective_weight(self, V: Tensor, mask: Tensor) -> Tensor:
        """``W_eff = φ(V) ⊙ M`` (differentiable; ``φ`` = identity, abs or softplus)."""
        if self.positive == "abs":
            V = V.abs()
        elif self.positive == "softplus":
            V = F.softplus(V)
        return V * mask

    def _check(self, params: Sequence[Tensor], x: Tensor, fixed: Fixed | None) -> tuple[Tensor, Tensor]:
        x = check_member_inputs(params, self.param_shapes(), x, self.n_inputs, "V, b1, W2, b2")
        E = x.shape[0]
        mask = self._fixed(fixed, E)["mask"]
        if tuple(mask.shape) != (E, self.n_inputs, self.n_hidden):
            raise ShapeError(f"mask must have shape {(E, self.n_inputs, self.n_hidden)}, got {tuple(mask.shape)}")
        return x, mask

    def features(self, params: Sequence[Tensor], x: Tensor, fixed: Fixed | None = None) -> Tensor:
        """Kenyon-cell activity ``h = ReLU(x W_eff + b1)`` of shape ``(E, N, K)``."""
        x, mask = self._check(params, x, fixed)
        V, b1 = params[0], params[1]
        return torch.relu(torch.baddbmm(b1.unsqueeze(1), x, self.effective_weight(V, mask)))

    def forward(self, params: Sequence[Tensor], x: Tensor, fixed: Fixed | None = None) -> Tensor:
        """Outputs ``(E, N, 1)`` for ``x (E, N, n_inputs)`` (or ``(N, n_inputs)`` shared by all members);
        ``fixed = {"mask": (E, d, K)}``."""
        return super().forward(params, x, fixed)

    def loss_grads(
        self,
        params: Sequence[Tensor],
        x: Tensor,
        y: Tensor,
        fixed: Fixed | None = None,
        *,
        transport: Transport = None,
        loss_fn: LossFn | None = None,
        create_graph: bool = False,
        with_loss: bool = True,
    ) -> tuple[list[Tensor], Tensor | None]:
        """The protocol's gradients: hand-written for the mean squared error (:meth:`mse_grads`; ordinary torch
        ops, so differentiable whenever the inputs carry a graph), autograd for any other ``loss_fn``."""
        if loss_fn is not None:
            return super().loss_grads(params, x, y, fixed, transport=transport, loss_fn=loss_fn,
                                      create_graph=create_graph, with_loss=with_loss)
        return self.mse_grads(params, x, y, fixed, transport=transport, with_loss=with_loss)

    def mse_grads(self, params: Sequence[Tensor], x: Tensor, y: Tensor, fixed: Fixed | None = None, *,
                  transport: Transport = None, with_loss: bool = True) -> tuple[list[Tensor], Tensor | None]:
        """Hand-written gradients of each member's ``mean_n (ŷ_n − y_n)²`` w.r.t. ``[V, b1, W2, b2]``, and the loss.

        x : ``(E, N, d)``; y : ``(E, N)``. With ``e = 2(ŷ − y)/N``, ``δ = (e Tᵀ) ⊙ 1[a > 0]`` (``T = W₂``, or
        ``transport[1]``): ``g_{W2} = hᵀe``, ``g_{b2} = Σ_n e``, ``g_V = (xᵀδ) ⊙ M ⊙ φ'(V)``, ``g_{b1} = Σ_n δ``.
        Ordinary torch ops only, so the result is differentiable (to any order) in x, y, T and the parameters.
        """
        x, mask = self._check(params, x, fixed)
        V, b1, W2, b2 = params
        T = self._transport(transport, 1)
        T = W2 if T is None else T
        h = torch.relu(torch.baddbmm(b1.unsqueeze(1), x, self.effective_weight(V, mask)))
        out = torch.baddbmm(b2.unsqueeze(1), h, W2)
        e = (out - y.unsqueeze(-1)) * (2.0 / x.shape[1])  # (E, N, 1)
        delta = (e * T.transpose(1, 2)) * (h > 0)  # (E, N, K)
        gV = torch.bmm(x.transpose(1, 2), delta) * mask
        if self.positive == "abs":
            gV = gV * torch.sign(V)
        elif self.positive == "softplus":
            gV = gV * torch.sigmoid(V)
        grads = [gV, delta.sum(1), torch.bmm(h.transpose(1, 2), e), e.sum(1)]
        return grads, (out.detach() - y.detach().unsqueeze(-1)).pow(2).mean((1, 2)) if with_loss else None

    def describe(self) -> dict[str, Any]:
        """JSON-able constructor arguments (a callable scheme is reported by its name and cannot be rebuilt)."""
        scheme = self.scheme if isinstance(self.scheme, str) else getattr(self.scheme, "__name__", "custom")
        return {
            "circuit": "mushroom_body",
            "n_inputs": self.n_inputs,
            "n_hidden": self.n_hidden,
            "fan_in": self.fan_in,
            "scheme": scheme,
            "positive": self.positive,
            "probs": None if self.probs is None or self.scheme in ("random",) else self.probs.tolist(),
        }

    def __repr__(self) -> str:
        return (
            f"MushroomBody(n_inputs={self.n_inputs}, n_hidden={self.n_hidden}, fan_in={self.fan_in}, "
            f"scheme={self.describe()['scheme']!r}, positive={self.positive!r})"
        )
