"""A user's own ``torch.nn.Module`` as a learner: fresh parameters per batch element, plain unrolled GD."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import Tensor

from learnscope.circuits.protocol import default_uniform_init
from learnscope.errors import ConfigError, ShapeError
from learnscope.learners.base import GeneratorLike, LearnerBase, described, generator_blocks, validate_fit_inputs
from learnscope.learners.meta_gradient import Unrolled, make_meta_gradient, run_unrolled
from learnscope.learners.unroll import gather_rows
from learnscope.plasticity.rules import RULES
from learnscope.validation import check_positive, check_positive_int

PLAIN_GD = ("sgd", "backprop")


def check_batch_size(batch_size: object) -> int | None:
    """``None`` (full batch) or a positive int; :class:`ConfigError` otherwise."""
    return None if batch_size is None else check_positive_int("batch_size", batch_size)


def _fan_in(shape: tuple[int, ...]) -> int:
    """``nn.Linear`` / ``nn.ConvNd`` fan-in of a weight ``(out, in, *kernel)``: ``in · prod(kernel)``; 1-D: ``s[0]``."""
    if len(shape) >= 2:
        return shape[1] * math.prod(shape[2:])
    return shape[0] if shape else 1


def _join(*parts: Any) -> Any:
    return torch.cat(parts, dim=0) if isinstance(parts[0], Tensor) else parts[0]


class ModuleLearner(LearnerBase):
    """A user's ``torch.nn.Module`` as a learner: fresh parameters per batch element, plain unrolled GD.

    The module maps ``(N, d)`` inputs to ``(N,)`` or ``(N, 1)`` outputs. Each call draws, for every batch element,
    new values of all of the module's parameters — **never** touching the global RNG: the module's own
    ``reset_parameters`` would use it, so instead each parameter of shape s gets ``U(±1/√fan_in)`` from the explicit
    generators, with ``fan_in = s[1]·prod(s[2:])`` for ≥2-D tensors (PyTorch's Linear/Conv weights) and, for a 1-D
    ``<prefix>.bias``, the fan-in of ``<prefix>.weight`` when that exists (PyTorch's bias init), else ``s[0]``.
    That is exactly PyTorch's default for ``nn.Linear`` and ``nn.ConvNd``; pass ``init`` for anything else.
    Buffers are shared by all members and not trained.

    Training is ``steps`` updates of plain GD on the per-member MSE (full batch, or ``batch_size`` indices with
    replacement), computed with ``torch.func.vmap(torch.func.grad(·))`` over the members around
    ``torch.func.functional_call``. It stays differentiable in the labels (the func transforms compose with the
    outer autograd graph). A module has no weight layers the rules could address, so other learning rules need a
    library circuit (:class:`~learnscope.learners.trained.CircuitLearner`).

    Parameters
    ----------
    module : the network (its parameter *values* are ignored).
    rule : ``"backprop"`` / ``"sgd"`` only.
    steps, lr, batch_size : as in :class:`~learnscope.learners.trained.CircuitLearner`.
    init : ``None`` (the default above) or ``init(name, shape, generator, dtype) -> Tensor`` for one member.
    meta_gradient, segment, truncate : the meta-gradient estimator (``"full"``, ``"checkpointed"``,
        ``"truncated"``; see :class:`~learnscope.learners.trained.CircuitLearner`); ``"implicit"`` needs a weight
        decay this learner does not have.
    """

    name = "trained_module"
    stochastic = True

    def __init__(
        self,
        module: torch.nn.Module,
        rule: str = "backprop",
        steps: int = 200,
        lr: float = 0.025,
        batch_size: int | None = None,
        init: Callable[[str, tuple[int, ...], torch.Generator, torch.dtype], Tensor] | None = None,
        meta_gradient: str = "full",
        segment: int | None = None,
        truncate: int | None = None,
    ):
        if not isinstance(module, torch.nn.Module):
            raise ConfigError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if rule not in PLAIN_GD:
            near = "; use CircuitLearner with a library circuit for other rules" if rule in RULES else ""
            raise ConfigError(f"ModuleLearner(module) supports rule 'backprop' (plain GD) only, got {rule!r}{near}")
        if not list(module.parameters()):
            raise ConfigError("the module has no parameters to train")
        self.module = module
        self.rule = rule
        self.steps = check_positive_int("steps", steps)
        self.lr = check_positive("lr", lr)
        self.batch_size = check_batch_size(batch_size)
        if init is not None and not callable(init):
            raise ConfigError("init must be None or a callable init(name, shape, generator, dtype) -> Tensor")
        self.init = init
        if meta_gradient == "implicit":
            raise ConfigError("meta_gradient = 'implicit' needs a characterised fixed point (full-batch GD with weight "
                              "decay), which ModuleLearner does not train to; use 'checkpointed' or a CircuitLearner")
        self.meta_gradient, self.segment, self.truncate = meta_gradient, segment, truncate
        self._mg = make_meta_gradient(meta_gradient, self.steps, segment, truncate)

    def _custom(self, name: str, shape: tuple[int, ...], g: torch.Generator, size: int, dtype) -> Tensor:
        t = torch.stack([self.init(name, shape, g, dtype) for _ in range(size)])
        if tuple(t.shape) != (size, *shape):
            raise ShapeError(f"init returned shape {tuple(t.shape[1:])} for parameter {name!r} of shape {shape}")
        return t

    def init_params(
        self, generator: GeneratorLike, ensemble: int, dtype: torch.dtype = torch.float32
    ) -> dict[str, Tensor]:
        """Fresh parameters ``{name: (ensemble, *shape)}``; per block, drawn parameter by parameter in
        ``named_parameters()`` order (the block logic of :func:`~learnscope.learners.base.draw_normal`)."""
        named = [(k, tuple(p.shape)) for k, p in self.module.named_parameters()]
        shapes = dict(named)
        fans = {}
        for k, s in named:
            if len(s) == 1 and k.endswith("bias") and (k[: -len("bias")] + "weight") in shapes:
                fans[k] = _fan_in(shapes[k[: -len("bias")] + "weight"])
            else:
                fans[k] = _fan_in(s)
        blocks = []
        for g, size in generator_blocks(generator, ensemble):
            if self.init is None:
                drawn = default_uniform_init([(s, fans[k]) for k, s in named], g, size, dtype)
                blocks.append(dict(zip(shapes, drawn, strict=True)))
            else:
                blocks.append({k: self._custom(k, s, g, size, dtype) for k, s in named})
        return blocks[0] if len(blocks) == 1 else pytree.tree_map(_join, *blocks)

    def fit_predict(
        self,
        x_train: Tensor,
        y_train: Tensor,
        x_test: Tensor,
        *,
        generator: GeneratorLike = None,
    ) -> Tensor:
        """Train B fresh copies of the module (plain GD), predict ``x_test`` -> ``(B, m)``; differentiable in y."""
        validate_fit_inputs(x_train, y_train, x_test)
        B, n, _ = x_train.shape
        dtype, dev = x_train.dtype, x_train.device
        parts = []
        for g, size in generator_blocks(generator, B):
            p = self.init_params(g, size, dtype)
            idx = None
            if self.batch_size is not None:
                idx = torch.randint(n, (size, self.steps, self.batch_size), generator=g, device=g.device)
            parts.append((p, idx))
        params, idx = parts[0] if len(parts) == 1 else pytree.tree_map(_join, *parts)
        params = {k: v.to(dev) for k, v in params.items()}
        return self.train_from(params, x_train, y_train, x_test, idx)

    def train_from(
        self, params: dict[str, Tensor], x_train: Tensor, y_train: Tensor, x_test: Tensor, idx: Tensor | None = None
    ) -> Tensor:
        """Run the unrolled GD from given initial parameters ``{name: (B, *shape)}`` (minibatch indices
        ``idx (B, steps, batch_size)`` or None for full batch) and predict ``x_test`` -> ``(B, m)``."""
        from torch.func import functional_call, grad, vmap

        module = self.module
        buffers = {k: b.to(x_train.device) for k, b in module.named_buffers()}

        def out_fn(p: dict[str, Tensor], x: Tensor) -> Tensor:
            out = functional_call(module, (p, buffers), (x,))
            if out.numel() != x.shape[0]:
                raise ShapeError(f"the module must return one number per point, got output shape {tuple(out.shape)}")
            return out.reshape(x.shape[0])

        def loss_fn(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
            return (out_fn(p, x) - y).pow(2).mean()

        step_grad = vmap(grad(loss_fn))
        lr = self.lr

        def run(carry: dict[str, Tensor], xtr: Tensor, ytr: Tensor, t0: int, t1: int, graph: bool):
            if idx is not None:
                window = idx[:, t0:t1]
                xs, ys = gather_rows(xtr, window), gather_rows(ytr, window)
            for t in range(t1 - t0):
                xb, yb = (xtr, ytr) if idx is None else (xs[:, t], ys[:, t])
                g = step_grad(carry, xb, yb)
                carry = {k: torch.add(v, g[k], alpha=-lr) for k, v in carry.items()}
                if not graph:
                    carry = {k: v.detach() for k, v in carry.items()}
            return carry

        u = Unrolled(params, self.steps, run, lambda carry, xte: vmap(out_fn)(carry, xte))
        graph = torch.is_grad_enabled() and any(t.requires_grad for t in (x_train, y_train, x_test, *params.values()))
        return run_unrolled(u, x_train, y_train, x_test, self._mg, graph)[0]

    def _describe_param(self, key: str, value: Any) -> Any:
        """The module by its repr (a module cannot be rebuilt from a description); ``init`` None as "default"."""
        if key == "module":
            return repr(value)
        if key == "init" and value is None:
            return "default"
        return described(value)


#: deprecated alias of :class:`ModuleLearner` (the name before issue 12), kept for one release
Trained = ModuleLearner
