"""What one task entry of an identify grid trains: data, objective loss, circuit, minibatches, task performance.

A grid's ``tasks`` entry is a dataset task (:data:`learnscope.datasets.TASKS`) with an optional objective,
``"digits:contrastive"`` (:func:`~learnscope.identify.objectives.split_task_entry`). :func:`training_task` loads
it as a :class:`TrainingTask`, which :func:`learnscope.identify.simulation.setup_training` and the ensemble path
share, so that every objective is trained and measured the same way everywhere:

=============== ========================== ===================================== ==========================
objective       circuit for an MLP / CNN   minibatch ``(x, y)`` of inputs ``x``  task performance (chance)
=============== ========================== ===================================== ==========================
classification  the architecture           labels                                test accuracy (1/classes)
regression      the architecture           teacher targets (MSE)                 test R² (0)
contrastive     encoder + projection head  two augmented views, ``y = None``      view retrieval (1/(2M−1))
                (:func:`contrastive_mlp`;  (NT-Xent, :mod:`~.augment`)            on M test inputs
                a CNN's dense layers are
                the head)
autoencoding    encoder → bottleneck →     ``y = x`` (reconstruction MSE)        test explained variance (0)
                linear reconstruction
=============== ========================== ===================================== ==========================

The autoencoder of an MLP architecture is its hidden layers, a ReLU bottleneck of :data:`AUTOENCODER_BOTTLENECK`
units and a linear read-out of the input (no mirrored decoder: measured in ``identify.objectives``, a mirrored
8-layer autoencoder is not learned by SGDM, FA or IA within the grid's training, a shallow decoder is by all
four); a CNN's autoencoder is its conv layers and dense hidden layer (the bottleneck) with the reconstruction as
the output layer. The contrastive projection is :data:`~learnscope.identify.objectives.DEFAULT_PROJECTION` wide.

Contrastive networks are evaluated on fixed views (one draw per task from
``rng.torch_generator(0, IDENTIFY_EVALUATION_VIEWS, split)``, the same for every network), of the first
:data:`CONTRASTIVE_TRAIN_EVALUATION` training inputs for the recorded training loss and of every test input for
the retrieval accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from learnscope import rng
from learnscope.circuits import Circuit
from learnscope.datasets import Task, load_task
from learnscope.identify.augment import two_views
from learnscope.identify.grid import circuit_for, hidden_sizes
from learnscope.identify.objectives import (
    DEFAULT_PROJECTION,
    autoencoder_mlp,
    check_task_entry,
    contrastive_mlp,
    explained_variance,
    objective_loss,
    view_retrieval_accuracy,
)
from learnscope.plasticity.rules import LossFn

__all__ = ["AUTOENCODER_BOTTLENECK", "CONTRASTIVE_TRAIN_EVALUATION", "PERFORMANCE_MEASURES", "Evaluation",
           "TrainingTask", "training_task"]

#: What "task performance" means per objective (the ``performance_measure`` of a network row).
PERFORMANCE_MEASURES: dict[str, str] = {"classification": "accuracy", "regression": "r2",
                                        "contrastive": "view_retrieval", "autoencoding": "explained_variance"}
#: Units of the autoencoders' bottleneck layer (the 64-pixel digits: a 4× compression).
AUTOENCODER_BOTTLENECK = 16
#: Training inputs whose evaluation views give a contrastive network's recorded training loss.
CONTRASTIVE_TRAIN_EVALUATION = 512


@dataclass(frozen=True)
class Evaluation:
    """Task performance of a network (or each member of an ensemble) at one checkpoint: tensors ``()`` or ``(E,)``.

    loss: the objective's loss on the training split (contrastive: on the evaluation views of its first inputs).
    train_accuracy, test_accuracy: classification accuracy (NaN for the other objectives).
    performance: the objective's measure on the test split (:data:`PERFORMANCE_MEASURES`).
    """

    loss: Tensor
    train_accuracy: Tensor
    test_accuracy: Tensor
    performance: Tensor


@dataclass(frozen=True)
class TrainingTask:
    """A loaded task entry (see the module docstring). ``data`` is the dataset split; ``eval_views`` the fixed
    ``(train, test)`` evaluation views of a contrastive task (``None`` otherwise)."""

    entry: str
    dataset: str
    objective: str
    data: Task
    loss_fn: LossFn
    eval_views: tuple[Tensor, Tensor] | None = None

    @property
    def performance_measure(self) -> str:
        return PERFORMANCE_MEASURES[self.objective]

    @property
    def chance(self) -> float:
        """The performance of a network that has learnt nothing: 1/classes, 1/(2M − 1) retrieval among the 2M
        test views, 0 for R² and explained variance."""
        if self.objective == "classification":
            return 1.0 / self.data.n_out
        if self.objective == "contrastive":
            return 1.0 / (self.eval_views[1].shape[0] - 1)
        return 0.0

    def circuit(self, architecture: str) -> Circuit:
        """The circuit ``architecture`` describes, with the output this objective needs."""
        shape, d_in = self.data.input_shape, math.prod(self.data.input_shape)
        sizes = hidden_sizes(architecture)
        if self.objective in ("classification", "regression"):
            return circuit_for(architecture, shape, self.data.n_out)
        if self.objective == "contrastive":
            if sizes is None:
                return circuit_for(architecture, shape, DEFAULT_PROJECTION)
            return contrastive_mlp(d_in, sizes, proj_dim=DEFAULT_PROJECTION)
        if sizes is None:
            return circuit_for(architecture, shape, d_in)
        return autoencoder_mlp(d_in, sizes, AUTOENCODER_BOTTLENECK, decoder=[])

    def batch(self, x: Tensor, y: Tensor, generator: torch.Generator | Sequence[torch.Generator]
              ) -> tuple[Tensor, Tensor | None]:
        """The minibatch the rule steps on for inputs ``x`` ``(B, *in)`` (or ``(E, B, *in)`` with one generator
        per member) and their targets ``y``: ``(x, y)``, ``(two views (…, 2B, *in), None)`` or ``(x, x)``."""
        if self.objective == "contrastive":
            if x.ndim == len(self.data.input_shape) + 1:
                return self._views(x[None], generator)[0], None
            return self._views(x, list(generator)), None
        if self.objective == "autoencoding":
            return x, x
        return x, y

    def _views(self, x: Tensor, generator) -> Tensor:
        flat = x.reshape(*x.shape[:2], -1)
        return two_views(flat, generator, self.dataset).reshape(x.shape[0], 2 * x.shape[1], *x.shape[2:])

    def evaluate(self, circuit: Circuit, params: Sequence[Tensor]) -> Evaluation:
        """Loss, accuracies and performance of ``params`` (one network, or an ensemble with a leading E axis)."""
        d = self.data
        nan = torch.tensor(float("nan"))
        with torch.no_grad():
            if self.objective == "contrastive":
                train_views, test_views = self.eval_views
                loss = self.loss_fn(circuit.forward(params, train_views), None)
                perf = view_retrieval_accuracy(circuit.forward(params, test_views))
                return Evaluation(loss, nan.expand(loss.shape), nan.expand(loss.shape), perf)
            out = circuit.forward(params, d.x_train)
            target = d.x_train if self.objective == "autoencoding" else d.y_train
            loss = self.loss_fn(out, target)
            test_out = circuit.forward(params, d.x_test)
            if self.objective == "classification":
                train_acc = (out.argmax(-1) == d.y_train).float().mean(-1)
                test_acc = (test_out.argmax(-1) == d.y_test).float().mean(-1)
                return Evaluation(loss, train_acc, test_acc, test_acc)
            single = test_out.ndim == 2
            test_target = d.x_test if self.objective == "autoencoding" else d.y_test
            perf = explained_variance(test_out[None] if single else test_out, test_target)
            perf = perf[0] if single else perf
            return Evaluation(loss, nan.expand(loss.shape), nan.expand(loss.shape), perf)


def training_task(entry: str, *, n_train: int, n_probe: int, image: bool = False) -> TrainingTask:
    """Load the task entry ``entry`` (``"digits"``, ``"mnist1d:contrastive"``, …) for training; ``image`` gives
    the inputs their image layout (for convolutional architectures)."""
    dataset, objective = check_task_entry(entry)
    data = load_task(dataset, n_train=n_train, n_probe=n_probe, image=image)
    task = TrainingTask(entry=entry, dataset=dataset, objective=objective, data=data,
                        loss_fn=objective_loss(objective))
    if objective != "contrastive":
        return task
    first = data.x_train[:CONTRASTIVE_TRAIN_EVALUATION]
    views = tuple(task._views(x[None], rng.torch_generator(0, rng.IDENTIFY_EVALUATION_VIEWS, split))[0]
                  for split, x in enumerate((first, data.x_test)))
    return TrainingTask(entry=entry, dataset=dataset, objective=objective, data=data, loss_fn=task.loss_fn,
                        eval_views=views)
