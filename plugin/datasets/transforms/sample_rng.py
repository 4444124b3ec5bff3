"""Per-sample random generators for test-time corruptions.

A robustness benchmark must corrupt sample X the same way in every run, for every model
and whatever the data loader's worker order, so the corruption of a sample is drawn from a
generator seeded by (seed, sample token). With `seed=None` the global numpy generator is
used instead (seeded by mmengine per worker), which is what train-time augmentation wants:
a different draw for the same sample in every epoch.
"""
import zlib
from typing import Optional

import numpy as np


def sample_rng(results: dict, seed: Optional[int]):
    """numpy Generator for this sample (seeded) or the global `np.random` module (seed None)."""
    if seed is None:
        return np.random
    key = results.get('token', results.get('sample_idx', results.get('lidar_path', '')))
    return np.random.default_rng([int(seed), zlib.crc32(str(key).encode())])


def integers(rng, low: int, high: int, size=None):
    """Integers in [low, high) under both APIs (Generator.integers / np.random.randint)."""
    if isinstance(rng, np.random.Generator):
        return rng.integers(low, high, size)
    return rng.randint(low, high, size)


def choice(rng, n: int, k: int) -> np.ndarray:
    """k distinct indices of range(n), sorted."""
    return np.sort(rng.choice(n, size=k, replace=False))
