"""Position embeddings of the CMT head: camera rays and the sine embedding."""
import math

import numpy as np
import torch

import plugin  # noqa: F401
from plugin.models.utils import CameraRayEmbedding, depth_bins, sine_embedding
from tests.helpers.pinhole_cameras import pinhole_camera, stack_lidar2img

PC_RANGE = [-50.0, -50.0, -5.0, 50.0, 50.0, 3.0]


def test_camera_ray_embedding_inputs_are_normalised_ray_points():
    emb = CameraRayEmbedding(16, PC_RANGE, depth_num=8).double()
    l2i = stack_lidar2img([pinhole_camera(0)])
    uv = torch.tensor([[[[320.0, 180.0]]]], dtype=torch.float64)   # principal point: along +x
    coords = emb.ray_coords(uv, l2i).view(8, 3).numpy()
    d = emb.depths.numpy()
    expected = (np.stack([0.5 + d, np.full(8, 0.1), np.full(8, 1.6)], 1) - PC_RANGE[:3]) / \
        (np.array(PC_RANGE[3:]) - PC_RANGE[:3])
    np.testing.assert_allclose(coords, expected, atol=1e-9)
    assert emb(uv, l2i).shape == (1, 1, 1, 16)
    bins = depth_bins(64, 1.0, 60.0).numpy()
    assert bins[0] == 1.0 and np.all(np.diff(bins) > 0) and np.all(np.diff(bins, 2) > 0)


def test_sine_embedding_against_numpy():
    pos = torch.tensor([[0.25, 0.7]])
    out = sine_embedding(pos, num_feats=8).numpy()[0]
    ref = []
    for p in (0.25, 0.7):
        for i in range(8):
            x = 2 * math.pi * p / 10000 ** (2 * (i // 2) / 8)
            ref.append(math.sin(x) if i % 2 == 0 else math.cos(x))
    np.testing.assert_allclose(out, ref, atol=1e-6)
