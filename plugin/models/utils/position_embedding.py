"""CMT's two position embeddings (Yan et al., ICCV 2023, Sec. 3.2).

* BEV: sine embedding of the normalised (x, y) of BEV grid-cell centres -> MLP.
* Camera ray: for every image-feature pixel, points at `depth_num` depths along its ray
  are lifted through inv(lidar2img), normalised by the point-cloud range and flattened
  (depth_num * 3 values) -> MLP. The same MLPs embed the queries: a query's BEV part
  from its reference point's (x, y), its camera part from the ray through its projection
  into each view that sees it (averaged over those views; zero where no camera sees it).
"""
import math
from typing import Sequence

import torch
from torch import Tensor, nn

from .projection import lift_pixels, normalize_points


def sine_embedding(pos: Tensor, num_feats: int = 128, temperature: float = 10000.0) -> Tensor:
    """[..., n] in [0, 1] -> [..., n * num_feats]: (sin, cos) pairs of 2*pi*pos / T^(2i/F)."""
    scale = 2 * math.pi
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=pos.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode='floor') / num_feats)
    x = pos[..., None].float() * scale / dim_t                                    # [..., n, F]
    x = torch.stack([x[..., 0::2].sin(), x[..., 1::2].cos()], -1).flatten(-2)      # interleave
    return x.flatten(-2).to(pos.dtype)


def depth_bins(depth_num: int, depth_start: float, depth_max: float) -> Tensor:
    """Linear-increasing depth bins (LID, as in PETR/CMT) from depth_start to depth_max."""
    idx = torch.arange(depth_num, dtype=torch.float32)
    step = (depth_max - depth_start) / (depth_num * (1 + depth_num))
    return depth_start + step * idx * (idx + 1)


class BEVPositionEmbedding(nn.Module):
    """Sine of normalised (x, y) -> Linear -> ReLU -> Linear."""

    def __init__(self, embed_dims: int):
        super().__init__()
        self.embed_dims = embed_dims
        self.mlp = nn.Sequential(nn.Linear(embed_dims, embed_dims), nn.ReLU(inplace=True),
                                 nn.Linear(embed_dims, embed_dims))

    def forward(self, xy: Tensor) -> Tensor:
        """xy: [..., 2] in [0, 1] -> [..., embed_dims]."""
        return self.mlp(sine_embedding(xy, self.embed_dims // 2))


class CameraRayEmbedding(nn.Module):
    """Lifted-ray coordinates (depth_num x 3, normalised) -> MLP -> embed_dims."""

    def __init__(self, embed_dims: int, pc_range: Sequence[float], depth_num: int = 64,
                 depth_start: float = 1.0, depth_max: float = None):
        super().__init__()
        self.pc_range = list(pc_range)
        if depth_max is None:  # as far as the range reaches diagonally
            depth_max = math.hypot(pc_range[3] - pc_range[0], pc_range[4] - pc_range[1]) / 2
        self.register_buffer('depths', depth_bins(depth_num, depth_start, depth_max), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(depth_num * 3, embed_dims * 4), nn.ReLU(inplace=True),
                                 nn.Linear(embed_dims * 4, embed_dims))

    def ray_coords(self, uv: Tensor, lidar2img: Tensor) -> Tensor:
        """[B, V, N, 2] pixels -> [B, V, N, depth_num * 3] normalised ray points."""
        pts = lift_pixels(uv, self.depths, lidar2img)                   # [B, V, N, D, 3]
        return normalize_points(pts, self.pc_range).flatten(-2)

    def forward(self, uv: Tensor, lidar2img: Tensor) -> Tensor:
        return self.mlp(self.ray_coords(uv, lidar2img))
