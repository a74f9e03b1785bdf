"""Training objectives of the identify grid beyond supervised classification (identify-spec §3.1, issue 14 item 1).

Every loss here is a pure function of ensemble-batched tensors with the convention of
:func:`learnscope.plasticity.rules.mse_loss`: the network output is ``(N, m)`` or ``(E, N, m)`` and the loss is
``()`` or ``(E,)``, one value per member, so each of them is a ``loss_fn(out, y)`` for
:meth:`learnscope.plasticity.rules.Rule.step` as it is: the rule takes ``e = ∂L/∂out`` by autograd and carries it
back with its transport (backprop, FA, IA, …). Losses that couple the rows of a minibatch (NT-Xent) are fine
there, because ``e`` is the gradient of the whole minibatch loss and the network maps rows independently.

Objectives (:data:`OBJECTIVES`):

- ``classification``: :func:`~learnscope.plasticity.rules.cross_entropy_loss` (today's grid);
- ``regression``: the teacher regression task with :func:`~learnscope.plasticity.rules.mse_loss` — nothing new,
  the grid already trains ``teacher_regression`` this way (:data:`regression_loss` is that function);
- ``contrastive``: SimCLR's NT-Xent (:func:`nt_xent_loss`) on two augmented views
  (:func:`learnscope.identify.augment.two_views`) through a projection head (:func:`contrastive_mlp`);
- ``autoencoding``: reconstruction MSE (:func:`reconstruction_loss`, ``y`` = the input) through a bottleneck
  (:func:`autoencoder_mlp`).

Task performance per objective: accuracy (classification), test MSE (regression), the NT-Xent and the
:func:`view_retrieval_accuracy` of test views and the :func:`linear_probe_accuracy` of the encoder's
representation (contrastive), :func:`explained_variance` of the reconstruction (autoencoding).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from learnscope.circuits.base import group_layers
from learnscope.circuits.mlp import MLP
from learnscope.datasets import TASKS
from learnscope.errors import ConfigError, ShapeError, UnknownNameError
from learnscope.identify.augment import VIEWS
from learnscope.plasticity.rules import LossFn, cross_entropy_loss, mse_loss
from learnscope.validation import check_positive_int, check_scalar

__all__ = [
    "DEFAULT_TEMPERATURE",
    "OBJECTIVES",
    "NTXent",
    "autoencoder_mlp",
    "contrastive_mlp",
    "explained_variance",
    "check_task_entry",
    "head_groups",
    "split_task_entry",
    "task_objective",
    "linear_probe_accuracy",
    "nt_xent_loss",
    "objective_loss",
    "reconstruction_loss",
    "regression_loss",
    "view_retrieval_accuracy",
]

OBJECTIVES: tuple[str, ...] = ("classification", "regression", "contrastive", "autoencoding")

#: NT-Xent temperature of the paper's SimCLR networks (identify-spec §3.1: the code default of
#: ``contrastive_loss.py`` is 1.0; the SimCLR paper itself uses 0.5 for CIFAR-10 and 0.1 at large batches).
DEFAULT_TEMPERATURE = 1.0

#: SimCLR's projection width (identify-spec §3.1: ``head_contrastive/nl_1`` is dense 128).
DEFAULT_PROJECTION = 128

regression_loss: LossFn = mse_loss
"""The regression objective's loss: :func:`~learnscope.plasticity.rules.mse_loss` itself (teacher targets)."""


#: The objective of a bare task name (its kind): every dataset task is a classification but the teacher regression.
_KIND_OBJECTIVE = {"teacher_regression": "regression"}


def split_task_entry(entry: str) -> tuple[str, str]:
    """``(dataset task, objective)`` of a grid task entry: ``"digits:contrastive"`` → ``("digits", "contrastive")``;
    a bare name is its kind (``"digits"`` → classification, ``"teacher_regression"`` → regression).

    Only checks the syntax and the objective's name; :func:`learnscope.identify.grid.parse_grid` checks the dataset
    name and whether the pair makes sense (a classification of a regression task, views of a task without any)."""
    if not isinstance(entry, str):
        raise ConfigError(f"a task entry must be a string such as 'digits' or 'digits:contrastive', got {entry!r}")
    dataset, sep, objective = entry.partition(":")
    if not sep:
        return entry, _KIND_OBJECTIVE.get(entry, "classification")
    if objective not in OBJECTIVES:
        raise UnknownNameError("objective", objective, OBJECTIVES)
    return dataset, objective


def check_task_entry(entry: object) -> tuple[str, str]:
    """``(dataset, objective)`` of a grid task entry, or a one-line error saying what to change.

    Refuses unknown datasets and objectives, a classification of the regression task, a regression of anything
    but the teacher regression task, and contrastive learning of a task without views (:data:`VIEWS`)."""
    dataset, objective = split_task_entry(entry)
    if dataset not in TASKS:
        raise UnknownNameError("task", dataset, TASKS)
    if objective == "regression" and dataset != "teacher_regression":
        raise ConfigError(f"task {entry!r}: only 'teacher_regression' has regression targets; use "
                          f"'{dataset}' (classification) or another objective ({', '.join(OBJECTIVES)})")
    if objective == "classification" and dataset == "teacher_regression":
        raise ConfigError(f"task {entry!r}: 'teacher_regression' has no classes; use 'teacher_regression' "
                          "(regression) or 'teacher_classification'")
    if objective == "contrastive" and dataset not in VIEWS:
        raise ConfigError(f"task {entry!r}: contrastive learning needs augmented views, which exist for "
                          f"{', '.join(VIEWS)} only (shifts of an image or signal); use one of them")
    return dataset, objective


def task_objective(entry: str) -> str:
    """The objective of a task entry as stored (``"digits"`` → classification, ``"digits:contrastive"`` →
    contrastive): what readers of stores written before the ``objective`` column use."""
    return split_task_entry(entry)[1]



# ---------------------------------------------------------------- contrastive


def nt_xent_loss(z: Tensor, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
    """SimCLR's normalised-temperature cross-entropy, per ensemble member.

    z : projections ``(2k, p)`` or ``(E, 2k, p)``; rows ``i`` and ``i + k`` are the two views of input ``i``
        (the layout of :func:`learnscope.identify.augment.two_views`), ``k ≥ 1``.
    temperature : τ > 0.

    With ``u_i = z_i / ‖z_i‖`` (rows of norm below 1e-12 are divided by 1e-12, as ``F.normalize``),
    ``s_ij = u_i·u_j / τ`` and the positive ``j(i) = (i + k) mod 2k``:

    .. math::

        L = \\frac{1}{2k} \\sum_{i=0}^{2k-1} \\Big[ -s_{i, j(i)} + \\log \\sum_{m \\ne i} e^{s_{im}} \\Big].

    Returns ``()`` or ``(E,)``. Reference values: ``log(2k − 1)`` when all rows point the same way (a collapsed
    representation); ``log(1 + 2(k − 1) e^{−1/τ})`` for views that coincide and are orthogonal across inputs;
    never below ``log(1 + 2(k − 1) e^{−2/τ})`` (reached at k = 2 by antipodal pairs).
    """
    if not isinstance(z, Tensor) or z.ndim not in (2, 3) or z.shape[-2] < 2 or z.shape[-2] % 2:
        got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ShapeError(f"z must have shape (2k, p) or (E, 2k, p) with an even number of rows >= 2, got {got}")
    tau = check_scalar("temperature", temperature, float, low=0.0, closed="neither")
    n = z.shape[-2]
    u = F.normalize(z, dim=-1, eps=1e-12)
    s = torch.matmul(u, u.transpose(-1, -2)) / tau
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    rows = torch.arange(n, device=z.device)
    positive = s[..., rows, (rows + n // 2) % n]
    return (torch.logsumexp(s.masked_fill(eye, -math.inf), dim=-1) - positive).mean(-1)


def view_retrieval_accuracy(z: Tensor) -> Tensor:
    """Fraction of the 2k views whose most cosine-similar other view is their partner, per member.

    z : ``(2k, p)`` or ``(E, 2k, p)`` in the row layout of :func:`nt_xent_loss`. Anchor ``i`` is correct when
    ``argmax_{m ≠ i} u_i·u_m = (i + k) mod 2k`` (ties go to the lowest index). Chance is ``1 / (2k − 1)``;
    the top-1 "accuracy" the NT-Xent logits are trained for. Returns ``()`` or ``(E,)``.
    """
    if not isinstance(z, Tensor) or z.ndim not in (2, 3) or z.shape[-2] < 2 or z.shape[-2] % 2:
        got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ShapeError(f"z must have shape (2k, p) or (E, 2k, p) with an even number of rows >= 2, got {got}")
    n = z.shape[-2]
    u = F.normalize(z, dim=-1, eps=1e-12)
    s = torch.matmul(u, u.transpose(-1, -2)).masked_fill(torch.eye(n, dtype=torch.bool, device=z.device), -math.inf)
    rows = torch.arange(n, device=z.device)
    return (s.argmax(-1) == (rows + n // 2) % n).to(z.dtype).mean(-1)


@dataclass(frozen=True)
class NTXent:
    """:func:`nt_xent_loss` as a ``loss_fn(out, y)`` for :meth:`~learnscope.plasticity.rules.Rule.step`.

    The minibatch ``x`` is the output of :func:`~learnscope.identify.augment.two_views` (``(E, 2k, *in_shape)``)
    and the pairing is the row layout, so there is no target: ``y`` must be ``None``. Picklable (joblib / dask).
    """

    temperature: float = DEFAULT_TEMPERATURE

    def __post_init__(self) -> None:
        check_scalar("temperature", self.temperature, float, low=0.0, closed="neither")

    def __call__(self, out: Tensor, y: None = None) -> Tensor:
        if y is not None:
            raise ShapeError("the contrastive loss has no target: pass y=None (rows i and i + k are the pairs)")
        return nt_xent_loss(out, self.temperature)


# ---------------------------------------------------------------- autoencoding


def reconstruction_loss(out: Tensor, x: Tensor) -> Tensor:
    """Mean squared reconstruction error per member: ``mean_{n,i} (out_{n,i} − x_{n,i})²``.

    out : decoder output ``(N, d)`` or ``(E, N, d)``. x : the input itself, ``(N, *in_shape)`` (shared by the
    members) or ``(E, N, *in_shape)``, with ``prod(in_shape) = d`` (image inputs are flattened).
    Returns ``()`` or ``(E,)``; :func:`~learnscope.plasticity.rules.mse_loss` of ``out`` against flat ``x``.
    """
    if not isinstance(out, Tensor) or out.ndim not in (2, 3):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ShapeError(f"out must have shape (N, d) or (E, N, d), got {got}")
    if not isinstance(x, Tensor):
        raise ShapeError(f"x must be the input tensor, got {type(x).__name__}")
    N, d = out.shape[-2], out.shape[-1]
    lead = out.shape[:-2]
    for shape in ((*lead, N), (N,)):
        if tuple(x.shape[:len(shape)]) == tuple(shape) and math.prod(x.shape[len(shape):]) == d and x.ndim > len(shape):
            return mse_loss(out, x.reshape(*shape, d))
    raise ShapeError(f"x must be the inputs (N, *in_shape) or (E, N, *in_shape) with {d} values each for the "
                     f"output {tuple(out.shape)}, got {tuple(x.shape)}")


def explained_variance(out: Tensor, x: Tensor) -> Tensor:
    """Fraction of the input variance the reconstruction explains, per member.

    out : ``(E, N, d)``; x : ``(N, *in_shape)`` or ``(E, N, *in_shape)`` (flattened to d).
    ``R² = 1 − Σ_{n,i} (out − x)² / Σ_{n,i} (x − x̄_i)²`` with the per-dimension mean ``x̄`` over the N rows:
    0 for the best constant reconstruction, 1 for a perfect one. Returns ``(E,)``.
    """
    if out.ndim != 3:
        raise ShapeError(f"out must have shape (E, N, d), got {tuple(out.shape)}")
    xf = _flat_like(out, x)
    err = (out - xf).pow(2).sum((-2, -1))
    var = (xf - xf.mean(-2, keepdim=True)).pow(2).sum((-2, -1))
    return 1 - err / var


def _flat_like(out: Tensor, x: Tensor) -> Tensor:
    E, N, d = out.shape
    if x.ndim >= 2 and x.shape[0] == N and math.prod(x.shape[1:]) == d:
        return x.reshape(1, N, d)
    if x.ndim >= 3 and x.shape[:2] == (E, N) and math.prod(x.shape[2:]) == d:
        return x.reshape(E, N, d)
    raise ShapeError(f"x must be (N, *in_shape) or (E, N, *in_shape) with {d} values each, got {tuple(x.shape)}")


# ---------------------------------------------------------------- architectures


def head_groups(n_encoder: int, n_head: int) -> list[str]:
    """Layer groups of an encoder followed by a projection head (identify-spec §3.3): the encoder's layers are
    grouped by :func:`~learnscope.circuits.base.group_layers` on their own, the head's layers are all ``deep``.

    >>> head_groups(4, 2)
    ['early', 'middle', 'deep', 'deep', 'deep', 'deep']
    """
    return group_layers(n_encoder) + ["deep"] * check_positive_int("n_head", n_head)


def _regroup(net: MLP, groups: Sequence[str]) -> MLP:
    net.layers = [dataclasses.replace(layer, group=g) for layer, g in zip(net.layers, groups, strict=True)]
    return net


def _hidden(hidden: Sequence[int]) -> list[int]:
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence) or not hidden:
        raise ConfigError(f"hidden must be a non-empty list of layer widths, got {hidden!r}")
    return [check_positive_int(f"hidden[{i}]", w) for i, w in enumerate(hidden)]


def contrastive_mlp(d_in: int, hidden: Sequence[int], *, head_width: int | None = None,
                    proj_dim: int = DEFAULT_PROJECTION) -> MLP:
    """Encoder + SimCLR projection head as one :class:`~learnscope.circuits.MLP`.

    ``MLP([d_in, *hidden, head_width, proj_dim])``: the encoder is the architecture's hidden layers (the
    supervised network minus its output layer, as SimCLR drops the base network's ``dense``); the head is
    ``nl_0`` (dense ``hidden[-1] → head_width``, ReLU; default width = the feature dimension ``hidden[-1]``) and
    ``nl_1`` (dense ``→ proj_dim``, linear; default 128), identify-spec §3.1 without the batch norms. The
    representation for a linear probe is the recorded output of layer ``len(hidden) − 1`` (the last encoder
    layer). Groups: :func:`head_groups` (``len(hidden)`` encoder layers, 2 head layers, all head layers deep).

    Note: the groups are set on ``net.layers`` after construction; ``net.describe()`` does not carry them, so a
    circuit rebuilt from its description has the plain MLP grouping.
    """
    hidden = _hidden(hidden)
    head_width = hidden[-1] if head_width is None else check_positive_int("head_width", head_width)
    net = MLP([check_positive_int("d_in", d_in), *hidden, head_width, check_positive_int("proj_dim", proj_dim)])
    return _regroup(net, head_groups(len(hidden), 2))


def autoencoder_mlp(d_in: int, hidden: Sequence[int], bottleneck: int, decoder: Sequence[int] | None = None) -> MLP:
    """Autoencoder ``MLP([d_in, *hidden, bottleneck, *decoder, d_in])`` (default ``decoder = reversed(hidden)``).

    Encoder: the ``hidden`` ReLU layers and the bottleneck layer (ReLU, ``bottleneck`` units); decoder: the
    ``decoder`` ReLU layers and a linear output of ``d_in`` values (the reconstruction of the flattened input).
    ``len(hidden) + len(decoder) + 2`` weight layers, grouped by depth with
    :func:`~learnscope.circuits.base.group_layers` (e.g. ``hidden = [64, 64, 64]`` mirrored: 8 layers, fc1–2
    early, fc3–4 middle — the bottleneck layer is fc4 —, the decoder fc5–8 deep).

    Depth matters for the rules (measured on digits, 15 epochs, tier-1 learning rates, see the module notes): the
    mirrored 8-layer net stays at the mean reconstruction under SGDM, FA and IA, the 4-layer ``hidden = [64]`` one
    is learned by all four rules.
    """
    hidden = _hidden(hidden)
    decoder = list(reversed(hidden)) if decoder is None else (_hidden(decoder) if len(decoder) else [])
    d_in = check_positive_int("d_in", d_in)
    return MLP([d_in, *hidden, check_positive_int("bottleneck", bottleneck), *decoder, d_in])


# ---------------------------------------------------------------- registry


def objective_loss(objective: str, *, temperature: float = DEFAULT_TEMPERATURE) -> LossFn:
    """The ``loss_fn(out, y)`` of an objective of :data:`OBJECTIVES` for :meth:`Rule.step`: cross-entropy on
    labels, MSE on regression targets, :class:`NTXent` (``y = None``), reconstruction MSE (``y = x``)."""
    if objective == "classification":
        return cross_entropy_loss
    if objective == "regression":
        return regression_loss
    if objective == "contrastive":
        return NTXent(temperature)
    if objective == "autoencoding":
        return reconstruction_loss
    raise UnknownNameError("objective", str(objective), OBJECTIVES)


# ---------------------------------------------------------------- evaluation


def linear_probe_accuracy(f_train: Tensor, y_train: Tensor, f_test: Tensor, y_test: Tensor, *,
                          ridge: float = 1.0, n_classes: int | None = None) -> Tensor:
    """Test accuracy of a ridge-regression linear probe on frozen features, per member.

    f_train : ``(E, N, d)`` features; y_train : integer labels ``(N,)`` or ``(E, N)``; f_test ``(E, M, d)``,
    y_test ``(M,)`` or ``(E, M)``. With centred features ``F``, one-hot targets ``Y`` (``C`` classes) and
    ``λ = ridge``: ``W = (FᵀF + λI)⁻¹ FᵀY_c``, prediction ``argmax_c (f − f̄) W + Ȳ`` — the predictions of
    scikit-learn's ``RidgeClassifier(alpha=λ)``. Returns ``(E,)`` accuracies in [0, 1].
    """
    if f_train.ndim != 3 or f_test.ndim != 3 or f_train.shape[0] != f_test.shape[0] \
            or f_train.shape[2] != f_test.shape[2]:
        raise ShapeError(f"features must be (E, N, d) and (E, M, d), got {tuple(f_train.shape)} and "
                         f"{tuple(f_test.shape)}")
    lam = check_scalar("ridge", ridge, float, low=0.0, closed="neither")
    E, _, d = f_train.shape
    C = int(max(int(y_train.max()), int(y_test.max())) + 1) if n_classes is None else n_classes
    Y = F.one_hot(y_train.long().expand(f_train.shape[:2]), C).to(f_train.dtype)
    mu, ybar = f_train.mean(-2, keepdim=True), Y.mean(-2, keepdim=True)
    Fc = f_train - mu
    A = Fc.transpose(-1, -2) @ Fc + lam * torch.eye(d, dtype=f_train.dtype, device=f_train.device)
    W = torch.linalg.solve(A, Fc.transpose(-1, -2) @ (Y - ybar))
    pred = ((f_test - mu) @ W + ybar).argmax(-1)
    return (pred == y_test.long().expand(pred.shape)).to(f_train.dtype).mean(-1)
