"""A front camera and random AQR inputs on a 102.4 m BEV range."""
import torch

import plugin  # noqa: F401
from plugin.models.layers.key_layout import KeyLayout
from plugin.models.utils import CameraGeometry

PC_RANGE = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]


def front_camera():
    """One camera at the origin looking along +x, 64x32 image."""
    l2c = torch.tensor([[0., -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    k = torch.tensor([[32., 0, 32, 0], [0, 32, 16, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    return (k @ l2c)[None, None]


def aqr_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    b, nq, c = 2, 9, 16
    bev_shape, cam_shape = (6, 5), (2, 3, 4)
    k = bev_shape[0] * bev_shape[1] + cam_shape[0] * cam_shape[1] * cam_shape[2]
    ref = torch.rand(b, nq, 3, generator=g)
    query, query_pos = torch.randn(b, nq, c, generator=g), torch.randn(b, nq, c, generator=g)
    memory, memory_pos = torch.randn(b, k, c, generator=g), torch.randn(b, k, c, generator=g)
    pad = torch.zeros(b, k, dtype=torch.bool)
    pad[1, -5:] = True
    # two cameras, looking along +x and -x
    front = front_camera()[0, 0]
    back = front @ torch.diag(torch.tensor([-1., -1, 1, 1]))
    lidar2img = torch.stack([front, back])[None].expand(b, -1, -1, -1)
    geometry = CameraGeometry(lidar2img, torch.tensor([[32.0, 64.0]] * b), (32, 64))
    return ref, query, query_pos, memory, memory_pos, pad, KeyLayout.of(bev_shape, cam_shape), geometry
