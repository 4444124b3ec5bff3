"""`sample_bev`: bilinear sampling of the BEV map against numpy."""
import numpy as np
import torch

import plugin  # noqa: F401
from plugin.models.utils import sample_bev


def _numpy_bilinear(bev, x, y):
    """Reference: bilinear interpolation between cell centres, zero outside the canvas."""
    c, h, w = bev.shape
    px, py = x * w - 0.5, y * h - 0.5                     # continuous cell-centre coordinates
    x0, y0 = int(np.floor(px)), int(np.floor(py))
    out = np.zeros(c)
    for dx, dy in [(0, 0), (1, 0), (0, 1), (1, 1)]:
        xi, yi = x0 + dx, y0 + dy
        wt = (1 - abs(px - xi)) * (1 - abs(py - yi))
        if 0 <= xi < w and 0 <= yi < h:
            out += wt * bev[:, yi, xi]
    return out


def test_sample_bev_against_numpy_bilinear():
    rng = np.random.default_rng(0)
    bev = rng.normal(size=(2, 3, 5, 8))
    # a cell centre, a point between cells, the canvas edge, and an off-centre point
    xy = np.array([[[(2 + 0.5) / 8, (1 + 0.5) / 5], [3 / 8, 2 / 5], [0.01, 0.99], [0.37, 0.71]]] * 2)
    out = sample_bev(torch.tensor(bev), torch.tensor(xy)).numpy()
    assert out.shape == (2, 4, 3)
    np.testing.assert_allclose(out[1, 0], bev[1, :, 1, 2], atol=1e-12)      # rows are y, columns x
    for b in range(2):
        for n in range(4):
            np.testing.assert_allclose(out[b, n], _numpy_bilinear(bev[b], *xy[b, n]), atol=1e-12)
