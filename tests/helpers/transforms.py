"""Applying a registered transform to a copy of a sample; random LiDAR points."""
import numpy as np

import plugin  # noqa: F401
from mmdet3d.registry import TRANSFORMS


def apply_transform(cfg, results):
    import copy
    return TRANSFORMS.build(cfg)(copy.deepcopy(results))


def random_points(sample):
    from mmdet3d.structures import LiDARPoints
    return LiDARPoints(np.random.default_rng(0).normal(size=(50, 5)).astype(np.float32), points_dim=5)
