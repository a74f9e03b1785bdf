"""Fixtures shared by the test files."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


@pytest.fixture
def gen() -> Callable[[int], torch.Generator]:
    """A factory of seeded generators: ``gen(seed)`` is a fresh ``torch.Generator().manual_seed(seed)`` on the CPU.

    Every call returns a new generator, so ``gen(5)`` twice gives the same stream twice (how a test repeats a
    draw exactly) and no test touches the global RNG.
    """

    def make(seed: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    return make
