"""Credit transports: how the error at a layer's pre-activation is sent to the layer's input (identify-spec §2).

=============================  =====================================================================
transport                      backward matrix of weight layer l
=============================  =====================================================================
``backprop``                   ``W`` itself: ``δ_x = δ Wᵀ``
``feedback_alignment``         fixed random ``B`` (same distribution as W, independent draw): ``δ_x = δ B``
``information_alignment``      ``B`` learned by the local loss ``R_IA`` (:func:`ia_loss`, :func:`ia_feedback_grad`)
``sign_symmetry``              ``sign(W)``: ``δ_x = δ sign(W)ᵀ`` (nothing stored)
``kolen_pollack``              ``B`` updated like ``Wᵀ`` (``ΔB = ΔWᵀ``) plus decay on both (Akrout et al. 2019)
``direct_feedback_alignment``  none: hidden layer l receives ``δ_l = (e B_l) ⊙ f'(a_l)``, ``e = ∂L/∂output``
=============================  =====================================================================

Layouts (identify-spec §2.2): ``B`` is ``(out, in)`` for a dense layer with ``W (in, out)``, and has ``W``'s shape
``(c_out, c_in, kh, kw)`` for a conv layer; the circuit's *transport matrix* ``T`` (``W``'s shape) is ``Bᵀ``
(dense) or ``B`` (conv), see :func:`feedback_to_transport`. DFA matrices ``B_l`` are ``(n_out, units_l)`` for
the hidden layers (``None`` for the output layer). Every tensor may carry the parameters' leading ensemble axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from learnscope.circuits.base import Circuit, LayerInfo, uniform
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.plasticity.optimisers import scalar

TRANSPORTS = (
    "backprop",
    "feedback_alignment",
    "information_alignment",
    "sign_symmetry",
    "kolen_pollack",
    "direct_feedback_alignment",
)
#: transports that keep a per-layer backward matrix B in the rule state
STORED_FEEDBACK = ("feedback_alignment", "information_alignment", "kolen_pollack")
#: transports whose B is updated during learning
LEARNED_FEEDBACK = ("information_alignment", "kolen_pollack")


def check_transport(name: str) -> str:
    """Return ``name`` if it is a known transport, else raise :class:`UnknownNameError`."""
    if name not in TRANSPORTS:
        raise UnknownNameError("transport", name, TRANSPORTS)
    return name


def feedback_to_transport(layer: LayerInfo, B: Tensor) -> Tensor:
    """``B`` (spec layout) → the circuit's transport matrix ``T`` (W layout): ``Bᵀ`` dense, ``B`` conv."""
    return B.transpose(-1, -2) if layer.kind == "dense" else B


transport_to_feedback = feedback_to_transport  # the map is its own inverse


def init_feedback(
    transport: str, circuit: Circuit, params: Sequence[Tensor], generator: torch.Generator
) -> list[Tensor | None]:
    """Initial backward matrices of ``transport`` for ``circuit`` (one entry per weight layer).

    - FA / IA / KP: ``B_l ~ U(±1/√fan_in_l)`` of shape :attr:`LayerInfo.feedback_shape` — W's initial distribution,
      an independent draw (identify-spec §2.2), drawn in layer order after nothing else.
    - DFA: hidden layer l gets ``B_l ~ U(±1/√units_l)`` of shape ``(n_out, units_l)`` — the distribution of the
      forward weight ``W_{l+1}`` whose transpose it replaces; the output layer gets ``None``.
    - backprop / sign symmetry: all ``None``.

    Every tensor gets the parameters' ensemble axis (independent per member) and dtype.
    """
    check_transport(transport)
    E = circuit.ensemble_size(params)
    lead = () if E is None else (E,)
    dtype = params[0].dtype
    if transport in STORED_FEEDBACK:
        return [
            uniform((*lead, *layer.feedback_shape), 1.0 / math.sqrt(layer.fan_in), generator, dtype)
            for layer in circuit.layers
        ]
    if transport == "direct_feedback_alignment":
        if not circuit.supports_dfa:
            raise ConfigError(
                f"direct_feedback_alignment is not available for {type(circuit).__name__} (MLP only); "
                "choose another transport"
            )
        out: list[Tensor | None] = []
        for layer in circuit.layers[:-1]:
            units = circuit.output_units(layer.index)
            out.append(uniform((*lead, circuit.n_out, units), 1.0 / math.sqrt(units), generator, dtype))
        return out + [None]
    return [None] * circuit.n_layers


def transport_matrices(
    transport: str, circuit: Circuit, params: Sequence[Tensor], feedback: Sequence[Tensor | None]
) -> list[Tensor | None] | None:
    """The per-layer transport matrices ``T`` for :meth:`Circuit.backward` / :meth:`Circuit.forward`.

    ``None`` for backprop and DFA (DFA goes through ``feedback=``), ``[Bᵀ or B …]`` for FA / IA / KP,
    ``[sign(W) …]`` for sign symmetry.
    """
    check_transport(transport)
    if transport in STORED_FEEDBACK:
        return [feedback_to_transport(layer, B) for layer, B in zip(circuit.layers, feedback, strict=True)]
    if transport == "sign_symmetry":
        return [torch.sign(params[2 * layer.index]) for layer in circuit.layers]
    return None


# ---------------------------------------------------------------- information alignment (identify-spec §2.3)


def _ensemble(circuit: Circuit, index: int, x: Tensor, W: Tensor, b: Tensor, B: Tensor):
    layer = circuit.layers[index]
    squeeze = W.shape == layer.weight_shape
    if squeeze:
        x, W, b, B = x.unsqueeze(0), W.unsqueeze(0), b.unsqueeze(0), B.unsqueeze(0)
    d = 1 if layer.kind == "dense" else 3
    if x.ndim == d + 1:
        x = x.unsqueeze(0).expand(W.shape[0], *x.shape)
    if B.shape[1:] != layer.feedback_shape or W.shape[1:] != layer.weight_shape or x.ndim != d + 2:
        raise ShapeError(
            f"layer {layer.name}: W must be {layer.weight_shape} and B {layer.feedback_shape} "
            f"and x a batch of layer inputs (optionally all with an ensemble axis), "
            f"got {tuple(W.shape)}, {tuple(B.shape)}, {tuple(x.shape)}"
        )
    return squeeze, x, W, b, B


def _number(value: float, like: Tensor) -> Tensor | float:
    """``value`` as the operand torch makes of a Python scalar in an op with ``like`` (see
    :func:`~learnscope.plasticity.optimisers.scalar`)."""
    return scalar(value, like.dtype, like.device)


def _activity(r: Tensor) -> Tensor:
    """``c = E_n‖r_n‖²`` per member, shape ``(E,)`` (floored at the smallest normal number)."""
    return (r.pow(2).flatten(1).sum(1) / _number(r.shape[1], r)).clamp_min(torch.finfo(r.dtype).tiny)


IA_NORMALISE: tuple[str, ...] = ("none", "activity", "weight")


def ia_normalise_mode(normalise: bool | str) -> str:
    """The IA stabiliser mode: ``"none"`` (False, the original loss), ``"activity"`` (True) or ``"weight"``."""
    if normalise is True or normalise is False:
        return "activity" if normalise else "none"
    if normalise not in IA_NORMALISE:
        raise UnknownNameError("ia_normalise mode", str(normalise), (*IA_NORMALISE, "True", "False"))
    return str(normalise)


def _ia_scale(normalise: bool | str, r: Tensor, W: Tensor) -> Tensor | None:
    """The factor of the amplitude and null terms per member, ``(E,)``: None, ``1/c`` or ``‖W‖²/c``."""
    mode = ia_normalise_mode(normalise)
    if mode == "none":
        return None
    scale = 1.0 / _activity(r)
    return scale * W.pow(2).flatten(1).sum(1) if mode == "weight" else scale


def _per_member(v: Tensor, like: Tensor) -> Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


def ia_loss(
    circuit: Circuit,
    index: int,
    x: Tensor,
    W: Tensor,
    b: Tensor,
    B: Tensor,
    alpha: float,
    beta: float,
    gamma: float,
    normalise: bool | str = False,
) -> Tensor:
    """The information-alignment loss of one layer (identify-spec §2.3), per ensemble member.

    .. math::

        R_{IA} = \\frac{\\alpha R_{amp} + \\beta R_{null}}{c} + \\gamma R_{decay},\\quad
        R_{amp} = -\\sum_j \\mathbb E_n[r_{nj} s_{nj}],\\quad
        R_{null} = \\sum_i \\mathbb E_n[\\hat x_{ni}^2],\\quad R_{decay} = \\|W\\|^2 + \\|B\\|^2

    with ``r = lin(x, W) + b`` (forward projection, bias included), ``s = lin(x, T) + b`` (backward projection),
    ``x̂ = adj(r, T)`` (reconstruction: ``r B`` dense, ``conv_transpose2d(r, B)`` conv), sums over all non-batch
    axes, and ``c`` set by ``normalise`` (the stabiliser, see :func:`ia_feedback_grad`): ``"none"``/False ``c = 1``
    (the original code), ``"activity"``/True ``c = E_n‖r_n‖²``, ``"weight"`` ``c = E_n‖r_n‖² / ‖W‖²``.
    ``c`` does not depend on B.

    x : the layer input, ``(N, …)`` / ``(E, N, …)``; W, b : the layer's parameters; B : spec layout.
    Returns shape ``(E,)`` (ensemble) or ``()``.
    """
    squeeze, x, W, b, B = _ensemble(circuit, index, x, W, b, B)
    T = feedback_to_transport(circuit.layers[index], B)
    r = circuit.affine(index, x, W, b)
    N = r.shape[1]
    s = circuit.affine(index, x, T, b)
    xhat = circuit.linear_adjoint(index, r, T)
    local = alpha * (-(r * s).flatten(1).sum(1) / N) + beta * (xhat.pow(2).flatten(1).sum(1) / N)
    scale = _ia_scale(normalise, r, W)
    if scale is not None:
        local = local * scale
    out = local + gamma * (W.pow(2).flatten(1).sum(1) + B.pow(2).flatten(1).sum(1))
    return out.squeeze(0) if squeeze else out


def ia_feedback_grad(
    circuit: Circuit,
    index: int,
    x: Tensor,
    W: Tensor,
    b: Tensor,
    B: Tensor,
    alpha: float,
    beta: float,
    gamma: float,
    normalise: bool | str = False,
    pre: Tensor | None = None,
) -> Tensor:
    """``∂R_IA/∂B`` of :func:`ia_loss` in closed form (B layout), differentiable in x, W, b and B.

    Dense (``B (out, in)``, ``r = xW + b``, ``c = E_n‖r_n‖²`` or 1):

    .. math::

        \\frac{\\partial R_{IA}}{\\partial B} = \\frac{1}{c}\\Big(-\\alpha\\frac{r^\\top x}{N}
        + 2\\beta\\frac{r^\\top r B}{N}\\Big) + 2\\gamma B

    Conv: the same with ``rᵀx → ∂⟨conv(x, B), r⟩/∂B`` and ``rᵀrB → ∂⟨conv(x̂, B), r⟩/∂B``
    (``torch.nn.grad.conv2d_weight``). The input x and W are constants *of the IA loss* (only B is trained by it,
    spec §2.3) but are not detached, so a second-order run differentiates through this update.

    **Stabiliser** (``normalise``): amplitude and null terms are divided by the batch mean ``c = E_n‖r_n‖²``.
    Without it the fixed point of a linear layer, ``B* = (α/2)(β WᵀΣW + γI)⁻¹ WᵀΣ`` (Σ the input second moment),
    changes character with the activity scale: for small activity it is ``∝ WᵀΣ`` (aligned), for large activity
    it tends to ``(α/2β)(WᵀΣW)⁻¹WᵀΣ``, a left inverse of W that amplifies W's weak directions, while the null
    term's curvature ``2β λ_max(rᵀr/N)`` (largest at small batch) makes the B step overshoot. On inputs of scale 4
    (raw-pixel-like) both drive IA to diverge (8/8 runs, 3×256 MLP, batch 8–32) where FA and backprop train.
    With the normalisation the loss is invariant to the scale of ``r``: ``B* = (α/2)(β WᵀΣW/c + γI)⁻¹ WᵀΣ/c``,
    the null curvature is at most ``2β`` (heavy-ball on B is stable whenever ``η(2β + 2γ) < 2(1 + μ)``) and the
    amplitude pull is bounded by the weights, not the activity. Default off here, on in
    :class:`~learnscope.plasticity.Rule` (``ia_normalise``).

    ``normalise="weight"`` divides by ``c/‖W‖²`` instead: the amplitude and null terms then carry the units of
    ``‖W‖²`` like the decay term, so the pull ``≈ α WᵀΣ/s²`` (``s² = c/‖W‖²``) no longer shrinks as ``1/‖W‖²`` and, for
    ``α = 2γ`` and a small null term, the fixed point ``B*`` has the scale of ``Wᵀ`` in every layer whatever its
    width. With ``"activity"`` the fixed point scales as ``(α/2γ) Wᵀ/‖W‖²`` — for a 256×256 layer at PyTorch's
    init about 1/85 of W's scale — so a B strong enough to align within a short run either decays the backward
    signal or, at a larger α, overshoots. Measured on tier-1 MLPs (15 epochs, heavy-ball lr 0.05): with
    ``(α, β, γ) = (6e-3, 6e-3, 3e-3)`` and ``"weight"`` the hidden-layer angle between B and Wᵀ falls to 50–85°
    (FA: 85–90°) with no divergence.

    pre : optional precomputed ``r = lin(x, W) + b`` (the recorded pre-activation, same form as ``x``) to save
        one matrix product.
    """
    squeeze, x, W, b, B = _ensemble(circuit, index, x, W, b, B)
    if pre is not None and squeeze:
        pre = pre.unsqueeze(0)
    layer = circuit.layers[index]
    T = feedback_to_transport(layer, B)
    r = circuit.affine(index, x, W, b) if pre is None else pre
    N = r.shape[1]
    amp_T = circuit.linear_weight_grad(index, x, r)  # ∂⟨lin(x, T), r⟩/∂T
    xhat = circuit.linear_adjoint(index, r, T)
    null_T = circuit.linear_weight_grad(index, xhat, r)  # ∂⟨lin(x̂, T), r⟩/∂T = ½ N ∂R_null/∂T
    # the numbers as 0-dim tensors of the layer's dtype: the values torch makes of Python scalars, converted once
    g_T = amp_T * _number(-alpha / N, amp_T) + null_T * _number(2 * beta / N, null_T)
    scale = _ia_scale(normalise, r, W)
    if scale is not None:
        g_T = g_T * _per_member(scale, g_T)
    g = transport_to_feedback(layer, g_T) + B * _number(2 * gamma, B)
    return g.squeeze(0) if squeeze else g


def angle_between(B: Tensor, W: Tensor) -> Tensor:
    """Angle in degrees between ``vec(B)`` and ``vec(Wᵀ)`` (per ensemble member): the FA/IA alignment measure.

    A 2-D (or 3-D with an ensemble axis) ``W`` is a dense weight ``(in, out)`` and ``B`` is ``(out, in)``; a 4-D
    (5-D) ``W`` is a conv kernel and ``B`` has its shape (the "transpose" of a conv is the same kernel used in
    ``conv_transpose2d``). Returns ``()`` or ``(E,)``.

    .. math:: \\theta = \\arccos\\frac{\\langle B, W^\\top\\rangle}{\\|B\\|\\,\\|W^\\top\\|}
    """
    if W.ndim not in (2, 3, 4, 5):
        raise ShapeError(f"W must be a dense (in, out) or conv (c_out, c_in, kh, kw) weight, got {tuple(W.shape)}")
    Wt = W.transpose(-1, -2) if W.ndim in (2, 3) else W
    if B.shape != Wt.shape:
        raise ShapeError(
            f"B must have shape {tuple(Wt.shape)} to compare with W {tuple(W.shape)}, got {tuple(B.shape)}"
        )
    lead = 1 if W.ndim in (3, 5) else 0
    b = B.reshape(*B.shape[:lead], -1)
    w = Wt.reshape(*Wt.shape[:lead], -1)
    cos = (b * w).sum(-1) / (b.norm(dim=-1) * w.norm(dim=-1)).clamp_min(torch.finfo(b.dtype).tiny)
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))
