"""CMT's two position embeddings (Yan et al., ICCV 2023, Sec. 3.2).

* BEV: sine embedding of the normalised (x, y) of BEV grid-cell centres -> MLP.
* Camera ray: for every image-feature pixel, points at `depth_num` depths along its ray
  are lifted through inv(lidar2img), normalised by the point-cloud range and flattened
  (depth_num * 3 values) -> MLP. The same MLPs embed the queries: a query's BEV part
  from its reference point's (x, y), its camera part from the ray through its projection
  into each view that sees it (summed or averaged over those views; zero where no camera
  sees it).

The official CMT code (github.com/junjie18/CMT, `pos2embed` and `_rv_pe` of its head) uses
`num_feats = embed_dims` sine features per axis, concatenated (y, x), with the
wavelengths 1 + 2*floor(i/2)/F (its temperature is unused), and uniform depth bins
1 + i * (x_max - 1) / depth_num; `frequencies='cmt'`, `order='yx'` and `depth_bins='uniform'`
select those. The defaults of the classes below are CMT's.
"""
import math
from typing import Sequence

import torch
from torch import Tensor, nn

from .projection import lift_pixels, normalize_points


def sine_embedding(pos: Tensor, num_feats: int = 128, temperature: float = 10000.0,
                   frequencies: str = 'transformer') -> Tensor:
    """[..., n] in [0, 1] -> [..., n * num_feats]: (sin, cos) pairs of 2*pi*pos / t_i.

    frequencies='transformer': t_i = T^(2 floor(i/2) / F) (DETR); 'cmt': t_i = 1 + 2 floor(i/2) / F
    (the official CMT `pos2embed`)."""
    scale = 2 * math.pi
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=pos.device)
    exponent = 2 * torch.div(dim_t, 2, rounding_mode='floor') / num_feats
    if frequencies == 'transformer':
        dim_t = temperature ** exponent
    elif frequencies == 'cmt':
        dim_t = 1 + exponent
    else:
        raise ValueError(f"sine_embedding: frequencies must be 'transformer' or 'cmt', got {frequencies!r}")
    x = pos[..., None].float() * scale / dim_t                                    # [..., n, F]
    x = torch.stack([x[..., 0::2].sin(), x[..., 1::2].cos()], -1).flatten(-2)      # interleave
    return x.flatten(-2).to(pos.dtype)


def depth_bins(depth_num: int, depth_start: float, depth_max: float, mode: str = 'lid') -> Tensor:
    """Depths along a camera ray.

    'lid': linear-increasing bins from depth_start to depth_max (PETR's LID);
    'uniform': depth_start + i * (depth_max - depth_start) / depth_num, i < depth_num (the
    official CMT bins, with depth_start 1 and depth_max the range's x_max; the last bin
    stops one step short of depth_max)."""
    idx = torch.arange(depth_num, dtype=torch.float32)
    if mode == 'uniform':
        return depth_start + idx * (depth_max - depth_start) / depth_num
    if mode != 'lid':
        raise ValueError(f"depth bins mode must be 'lid' or 'uniform', got {mode!r}")
    step = (depth_max - depth_start) / (depth_num * (1 + depth_num))
    return depth_start + step * idx * (idx + 1)


class BEVPositionEmbedding(nn.Module):
    """Sine of normalised (x, y) -> Linear -> ReLU -> Linear.

    Args:
        embed_dims: output channels.
        num_feats: sine features per axis (CMT: embed_dims, so the MLP input is 2 * embed_dims).
        order: 'yx' (CMT: the y features first) or 'xy'.
        frequencies: see `sine_embedding` ('cmt' or 'transformer').
    """

    def __init__(self, embed_dims: int, num_feats: int = None, order: str = 'yx', frequencies: str = 'cmt'):
        super().__init__()
        if order not in ('xy', 'yx'):
            raise ValueError(f"BEVPositionEmbedding.order must be 'xy' or 'yx', got {order!r}")
        self.embed_dims, self.num_feats = embed_dims, num_feats or embed_dims
        self.order, self.frequencies = order, frequencies
        self.mlp = nn.Sequential(nn.Linear(2 * self.num_feats, embed_dims), nn.ReLU(inplace=True),
                                 nn.Linear(embed_dims, embed_dims))

    def forward(self, xy: Tensor) -> Tensor:
        """xy: [..., 2] in [0, 1] (x, y) -> [..., embed_dims]."""
        pos = xy[..., :2] if self.order == 'xy' else xy[..., [1, 0]]
        return self.mlp(sine_embedding(pos, self.num_feats, frequencies=self.frequencies))


class CameraRayEmbedding(nn.Module):
    """Lifted-ray coordinates (depth_num x 3, normalised) -> MLP -> embed_dims.

    bins: 'uniform' (CMT) or 'lid' (PETR), see `depth_bins`."""

    def __init__(self, embed_dims: int, pc_range: Sequence[float], depth_num: int = 64,
                 depth_start: float = 1.0, depth_max: float = None, bins: str = 'uniform'):
        super().__init__()
        self.pc_range = list(pc_range)
        if depth_max is None:
            # CMT's uniform bins end at the range's x_max; the LID bins reach the range's corner
            depth_max = pc_range[3] if bins == 'uniform' else \
                math.hypot(pc_range[3] - pc_range[0], pc_range[4] - pc_range[1]) / 2
        self.register_buffer('depths', depth_bins(depth_num, depth_start, depth_max, bins), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(depth_num * 3, embed_dims * 4), nn.ReLU(inplace=True),
                                 nn.Linear(embed_dims * 4, embed_dims))

    def ray_coords(self, uv: Tensor, lidar2img: Tensor) -> Tensor:
        """[B, V, N, 2] pixels -> [B, V, N, depth_num * 3] normalised ray points."""
        pts = lift_pixels(uv, self.depths, lidar2img)                   # [B, V, N, D, 3]
        return normalize_points(pts, self.pc_range).flatten(-2)

    def forward(self, uv: Tensor, lidar2img: Tensor) -> Tensor:
        return self.mlp(self.ray_coords(uv, lidar2img))
