"""Named random streams (learnscope.rng): each recipe reproduces, bit for bit, the formula its caller used before the
streams had a home (written out here as the oracle, since stores, models and found functions written then must stay
reproducible); named streams are deterministic, distinct per (seed, purpose, index), and reject bad keys."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from learnscope import rng
from learnscope.errors import ConfigError

SEEDS = [0, 1, 7, 41, 12345, 2**31 - 1, 2**32 - 2]


def _draw(gen: torch.Generator) -> torch.Tensor:
    return torch.rand(8, generator=gen, dtype=torch.float64)


def _seed_sequence_torch(*keys: int) -> torch.Generator:
    """The first release's ``bias.search.seed_generator`` / ``identify.simulation._generator``."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


@pytest.mark.parametrize("seed", SEEDS)
def test_integer_purposes_reproduce_the_seed_sequence_generators(seed):
    for keys in [(0,), (3,), (2, 5, 1), (0, 0, 0, 0)]:
        assert torch.equal(_draw(rng.torch_generator(seed, *keys)), _draw(_seed_sequence_torch(seed, *keys)))
        assert torch.equal(_draw(rng.network_generator(seed, *keys)), _draw(_seed_sequence_torch(seed, *keys)))


@pytest.mark.parametrize("seed", [0, 3, 41])
def test_meta_streams_are_the_first_release_codes_with_a_stride_of_ten_per_function(seed):
    codes = (rng.META_INIT, rng.META_DATA, rng.META_LEARNER, rng.META_TARGET)
    assert codes == (0, 1, 2, 3) and rng.META_REFERENCE == 4
    for code in codes:
        for k in range(3):
            want = _draw(_seed_sequence_torch(seed, code + 10 * k))
            assert torch.equal(_draw(rng.meta_generator(seed, code, k)), want)
    assert torch.equal(_draw(rng.meta_generator(seed, rng.META_REFERENCE)), _draw(_seed_sequence_torch(seed, 4)))
    with pytest.raises(ConfigError, match="reference stream is shared"):
        rng.meta_generator(seed, rng.META_REFERENCE, 1)
    # every stream of a 3-function series is distinct
    draws = {tuple(_draw(rng.meta_generator(seed, c, k)).tolist()) for c in codes for k in range(3)}
    assert len(draws) == 12


@pytest.mark.parametrize("seed", SEEDS)
def test_identify_integer_seeds_reproduce_their_formulas(seed):
    for stream in (0, 1, 17, 2**20):
        want = int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])  # observables.noise_seed
        assert rng.noise_seed(seed, stream) == want
        assert isinstance(rng.noise_seed(seed, stream), int)
    for split in range(6):
        want = int(np.random.SeedSequence([seed, split]).generate_state(1)[0] % (2**31 - 1))  # split_seed_for
        assert rng.split_seed(seed, split) == want < 2**31 - 1


@pytest.mark.parametrize("cell", [("xor", "mlp_2x64", 32, 1.0, 0), ("mnist", "cnn", 128, 0.3, 4),
                                  ("digits", "mlp_1x128", 8, 3.0, 2)])
def test_hashed_rng_reproduces_the_lr_jitter_draw(cell):
    key = json.dumps(list(cell))
    words = np.frombuffer(hashlib.sha256(key.encode()).digest()[:16], dtype=np.uint32)
    want = np.random.default_rng(np.random.SeedSequence(words.tolist())).uniform(-1.0, 1.0)
    assert rng.hashed_numpy_rng(*cell).uniform(-1.0, 1.0) == want
    assert rng.hashed_numpy_rng(*cell[:-1], cell[-1] + 1).uniform(-1.0, 1.0) != want


@pytest.mark.parametrize("seed", [0, 5, 2**31])
def test_offset_generators_reproduce_the_plain_offsets(seed):
    assert rng.CONV1D_ORDER_OFFSET_OF_FIRST_RELEASE == 1 and rng.GRADAVG_OUTPUT_OFFSET_OF_ORIGINAL_CODE == 1
    assert torch.equal(_draw(rng.offset_torch_generator(seed)), _draw(torch.Generator().manual_seed(seed)))
    order = rng.offset_torch_generator(seed, rng.CONV1D_ORDER_OFFSET_OF_FIRST_RELEASE)
    assert torch.equal(_draw(order), _draw(torch.Generator().manual_seed(seed + 1)))


@pytest.mark.parametrize("seed", [0, 2, 9])
def test_numpy_code_one_is_the_first_release_default_rng(seed):
    assert rng.ZONAL_CENTRES == rng.RANDOM_BALANCED_LABELS == 1
    np.testing.assert_array_equal(rng.numpy_rng(seed, rng.ZONAL_CENTRES).random(6),
                                  np.random.default_rng([seed, 1]).random(6))


def test_string_purposes_enter_the_entropy_as_their_sha256_words():
    digest = hashlib.sha256(b"few_shot_tasks").digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    assert rng.entropy(3, "few_shot_tasks", 2) == [3, *words, 2]
    seq = rng.seed_sequence(3, "few_shot_tasks", 2)
    assert seq.entropy == np.random.SeedSequence([3, *words, 2]).entropy


def test_named_streams_are_deterministic_and_distinct():
    def key(*args) -> tuple:
        return tuple(_draw(rng.torch_generator(*args)).tolist())

    assert key(4, rng.FEW_SHOT_TASKS) == key(4, rng.FEW_SHOT_TASKS)
    variants = [(4, rng.FEW_SHOT_TASKS), (4, rng.FEW_SHOT_LEARNER), (5, rng.FEW_SHOT_TASKS),
                (4, rng.FEW_SHOT_TASKS, 0), (4, rng.FEW_SHOT_TASKS, 1), (1, "p", 2), (2, "p", 1)]
    assert len({key(*v) for v in variants}) == len(variants)
    assert rng.int_seed(4, "a") != rng.int_seed(4, "b")
    assert 0 <= rng.int_seed(4, "a", modulus=97) < 97
    a, b = rng.numpy_rng(1, "x").random(4), rng.numpy_rng(1, "x").random(4)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("args", [(-1, "p"), (True, "p"), (1.5, "p"), (0, ""), (0, -2), (0, "p", -1),
                                  (0, "p", 2.0), (0, None)])
def test_bad_keys_are_one_line_config_errors(args):
    with pytest.raises(ConfigError) as err:
        rng.torch_generator(*args)
    assert "\n" not in str(err.value)
