"""Named random streams: every generator learnscope draws from is derived here, from ``(seed, purpose, index…)``.

A stream is the :class:`numpy.random.SeedSequence` of the entropy ``[seed, purpose, *index]`` (as equinox splits
keys explicitly, never drawing from global state). Two streams with different purposes or indices are
statistically independent, and a stream depends on nothing else — not on how many other seeds share a batch, nor
on what was drawn before — so a seed's result never depends on its company.

``purpose`` is either a string (new streams: its UTF-8 SHA-256, as four 32-bit words, enters the entropy) or an
integer code. The integer codes below are those of the releases that had no names for their streams; they are kept
so that found functions, stores and models written then are reproduced exactly.

* :func:`seed_sequence`, :func:`torch_generator`, :func:`numpy_rng`, :func:`int_seed`: the general forms.
* ``META_*`` and :func:`meta_generator`: the streams of one meta-learning run (``bias.search.meta_train``).
* ``FEW_SHOT_*``: the few-shot evaluation of a found function (``bias.measures``).
* :func:`network_generator`, :func:`noise_seed`, :func:`split_seed`, :func:`hashed_numpy_rng`,
  :func:`offset_torch_generator`: the recipes of the identify half, bit-for-bit those of its first release.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

from learnscope.errors import ConfigError
from learnscope.validation import check_scalar

__all__ = [
    "CONV1D_ORDER_OFFSET_OF_FIRST_RELEASE",
    "FEW_SHOT_LEARNER",
    "FEW_SHOT_TASKS",
    "GRADAVG_OUTPUT_OFFSET_OF_ORIGINAL_CODE",
    "IDENTIFY_EVALUATION_VIEWS",
    "IDENTIFY_TRAINING_VIEWS",
    "META_DATA",
    "META_ES_PERTURBATION",
    "META_INIT",
    "META_LEARNER",
    "META_REFERENCE",
    "META_TARGET",
    "RANDOM_BALANCED_LABELS",
    "SERIES_STREAM_STRIDE_OF_FIRST_RELEASE",
    "ZONAL_CENTRES",
    "entropy",
    "hashed_numpy_rng",
    "int_seed",
    "meta_generator",
    "network_generator",
    "noise_seed",
    "numpy_rng",
    "offset_torch_generator",
    "seed_sequence",
    "split_seed",
    "torch_generator",
]

Purpose = int | str

# ------------------------------------------------------------------------------------------ bias streams
#: Streams of one meta-learning run, for function k of a series at code + 10 k (:func:`meta_generator`).
#: The integer codes (and the stride of 10) are those of the first release's ``seed_generator(seed, stream)``.
META_INIT, META_DATA, META_LEARNER, META_TARGET, META_REFERENCE = range(5)
#: Function k of a series draws from ``code + 10 k``: the first release's offset, kept so series reproduce. The
#: reference set of the orthogonality constraint (``META_REFERENCE``) is one set for all functions (no stride).
SERIES_STREAM_STRIDE_OF_FIRST_RELEASE = 10
#: Few-shot evaluation of a found function: the tasks (inputs) and the learner's own randomness.
FEW_SHOT_TASKS = "few_shot_tasks"
#: The perturbations of ``search.meta_gradient = "es"`` (antithetic evolution strategies), per seed and step.
META_ES_PERTURBATION = "meta es perturbation"
FEW_SHOT_LEARNER = "few_shot_learner"
#: The augmented views of a contrastive network's minibatches (identify simulate), per network seed.
IDENTIFY_TRAINING_VIEWS = "identify training views"
#: The fixed views on which every contrastive network of a task is evaluated (one set per task and split).
IDENTIFY_EVALUATION_VIEWS = "identify evaluation views"
#: Integer code 1 of the first release's ``default_rng([seed, 1])``: the generic zonal centres of
#: ``bias.measures.harmonic_energy`` and the random balanced labellings of ``bias.measures.split_control_errors``.
ZONAL_CENTRES = 1
RANDOM_BALANCED_LABELS = 1
_KEY = "a key of a random stream"  # the hint in the message of a bad seed, purpose code, index or offset


# ------------------------------------------------------------------------------------------ general forms
def _purpose_words(purpose: str) -> list[int]:
    """A string purpose as entropy: the first 16 bytes of its UTF-8 SHA-256 as four little-endian 32-bit words."""
    digest = hashlib.sha256(purpose.encode("utf-8")).digest()[:16]
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def entropy(seed: int, purpose: Purpose, *index: int) -> list[int]:
    """The entropy ``[seed, purpose (code or four words), *index]`` of a stream (all integers >= 0)."""
    head = [check_scalar("seed", seed, int, low=0, note=_KEY)]
    if isinstance(purpose, str):
        if not purpose:
            raise ConfigError("the purpose of a random stream must be a non-empty string or an integer code")
        head += _purpose_words(purpose)
    else:
        head.append(check_scalar("purpose", purpose, int, low=0, note=_KEY))
    return head + [check_scalar("index", i, int, low=0, note=_KEY) for i in index]


def seed_sequence(seed: int, purpose: Purpose, *index: int) -> np.random.SeedSequence:
    """The :class:`numpy.random.SeedSequence` of stream ``(seed, purpose, *index)``."""
    return np.random.SeedSequence(entropy(seed, purpose, *index))


def torch_generator(seed: int, purpose: Purpose, *index: int) -> torch.Generator:
    """A CPU ``torch.Generator`` for stream ``(seed, purpose, *index)``.

    Seeded with the 64-bit integer ``w0 << 32 | w1`` of the first two 32-bit words of the stream's
    :meth:`~numpy.random.SeedSequence.generate_state` (the first release's ``seed_generator`` for integer codes).
    """
    state = seed_sequence(seed, purpose, *index).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def numpy_rng(seed: int, purpose: Purpose, *index: int) -> np.random.Generator:
    """A numpy ``Generator`` (PCG64) for stream ``(seed, purpose, *index)``: ``default_rng(seed_sequence(…))``."""
    return np.random.default_rng(seed_sequence(seed, purpose, *index))


def int_seed(seed: int, purpose: Purpose, *index: int, modulus: int | None = None) -> int:
    """An integer seed for a library that wants one (scikit-learn's ``random_state``, ``manual_seed``).

    The first 32-bit word of the stream's ``generate_state``, reduced modulo ``modulus`` when given
    (e.g. ``2**31 - 1`` for APIs that take a signed 32-bit seed).
    """
    word = int(seed_sequence(seed, purpose, *index).generate_state(1)[0])
    return word if modulus is None else word % int(modulus)


# ------------------------------------------------------------------------------------------ bias recipes
def meta_generator(seed: int, stream: int, function_index: int = 0) -> torch.Generator:
    """Stream ``stream`` (``META_INIT`` … ``META_TARGET``) of function ``function_index`` (0-based) of a series.

    ``torch_generator(seed, stream + 10 · function_index)``; ``META_REFERENCE`` takes no function index (one
    reference set for the whole series), exactly as the first release.
    """
    if stream == META_REFERENCE and function_index:
        raise ConfigError("the reference stream is shared by every function of a series; pass function_index=0")
    k = check_scalar("function_index", function_index, int, low=0, note=_KEY)
    return torch_generator(seed, stream + SERIES_STREAM_STRIDE_OF_FIRST_RELEASE * k)


# ------------------------------------------------------------------------------------------ identify recipes
def network_generator(seed: int, *keys: int) -> torch.Generator:
    """``identify.simulation``'s generator of ``(seed, *keys)``: initialisation ``(seed, 0)``, data order
    ``(seed, 1)``, measurement noise ``(condition seed, layer, checkpoint, condition)``. Identical to
    :func:`torch_generator` with the first key as the integer purpose."""
    if not keys:
        raise ConfigError("network_generator needs at least one key after the seed")
    return torch_generator(seed, *keys)


def noise_seed(seed: int, stream: int) -> int:
    """``identify.observables.noise_seed``: ``int(SeedSequence([seed, stream]).generate_state(1)[0])``."""
    return int_seed(seed, stream)


def split_seed(seed: int, split: int) -> int:
    """``identify.protocol.split_seed_for``: the classifier seed of outer split ``split``,
    ``SeedSequence([seed, split]).generate_state(1)[0] % (2**31 - 1)``."""
    return int_seed(seed, split, modulus=2**31 - 1)


def hashed_numpy_rng(*parts: object) -> np.random.Generator:
    """A numpy ``Generator`` keyed by JSON-able values (``identify.grid.lr_jitter``'s recipe).

    ``default_rng(SeedSequence(words))`` with ``words`` the first 16 bytes of the SHA-256 of
    ``json.dumps(list(parts))`` read as native 32-bit unsigned integers, as the first release computed them.
    """
    key = json.dumps(list(parts))
    words = np.frombuffer(hashlib.sha256(key.encode()).digest()[:16], dtype=np.uint32)
    return np.random.default_rng(np.random.SeedSequence(words.tolist()))


#: ``identify.classifiers.Conv1DClassifier``: the minibatch-order generator is seeded ``random_state + 1`` (the
#: initialisation one ``random_state``), an offset of the first release kept so trained models reproduce.
CONV1D_ORDER_OFFSET_OF_FIRST_RELEASE = 1
#: ``identify.observables.gradavg``: the kept output units use ``obs_seed + 1`` (input units ``obs_seed``), the
#: offset of the original paper code (Nayebi et al. 2020), kept so observables match it.
GRADAVG_OUTPUT_OFFSET_OF_ORIGINAL_CODE = 1


def offset_torch_generator(seed: int, offset: int = 0) -> torch.Generator:
    """``torch.Generator().manual_seed(seed + offset)``: the plain-offset recipe of the first release (use a named
    offset such as :data:`CONV1D_ORDER_OFFSET_OF_FIRST_RELEASE`; new code should use :func:`torch_generator`)."""
    seed = check_scalar("seed", seed, int, low=0, note=_KEY)
    offset = check_scalar("offset", offset, int, low=0, note=_KEY)
    return torch.Generator().manual_seed(seed + offset)
