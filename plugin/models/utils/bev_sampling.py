"""Bilinear sampling of a BEV feature map at normalised (x, y) points.

Used to give decoder queries content from the LiDAR BEV map at their reference points
(`CmtHead(query_content='bev')`), the query initialisation of two-stage / TransFusion-style
heads instead of CMT's all-zero content. The BEV canvas is laid out rows = y, columns = x
(mmdet3d's PointPillarsScatter / sparse encoders), cell i covering [i / W, (i + 1) / W).
"""
import torch.nn.functional as F
from torch import Tensor


def sample_bev(bev: Tensor, xy: Tensor) -> Tensor:
    """bev [B, C, H, W], xy [B, N, 2] in [0, 1] -> [B, N, C] (zeros outside the map)."""
    grid = (xy * 2 - 1)[:, None].to(bev.dtype)                       # [B, 1, N, 2], (x, y) order
    out = F.grid_sample(bev, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
    return out[:, :, 0].transpose(1, 2)
