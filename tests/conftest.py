"""Shared fixtures: a test seed (any seed must pass) and small torch models."""

from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture
def seed() -> int:
    """The test seed; CI may rotate it with NETSTRUCT_TEST_SEED (every seed must pass)."""
    return int(os.environ.get("NETSTRUCT_TEST_SEED", "0"))


@pytest.fixture
def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)
