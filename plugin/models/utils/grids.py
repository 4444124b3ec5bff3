"""Grids of cells: the BEV grid (cell of a point, centres of the cells), the camera feature
maps (the cell a point projects to), and the cell centres of any feature map.

Rows are y and columns x on the BEV grid, as in mmdet3d's scatter / sparse encoders and
CMT's BEV embedding; every grid is enumerated row-major.
"""
from typing import Sequence, Tuple

import torch
from torch import Tensor

from .projection import project_points, visible_mask


def cell_centres(rows: int, cols: int, device=None, dtype=torch.float32, offset: float = 0.5,
                 extent: Tuple[float, float] = (1.0, 1.0)) -> Tensor:
    """[rows * cols, 2] (x, y) = ((col + offset) * extent_x / cols, (row + offset) *
    extent_y / rows), row-major (the order of a flattened map, and of its keys): by default
    the normalised centres of a feature map's cells; with extent = an image's (width,
    height), the pixel of each cell (offset 0: its corner)."""
    ys = (torch.arange(rows, device=device, dtype=dtype) + offset) * extent[1] / rows
    xs = (torch.arange(cols, device=device, dtype=dtype) + offset) * extent[0] / cols
    y, x = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack([x, y], -1).reshape(-1, 2)


def bev_cells(ref: Tensor, bev_shape: Sequence[int]) -> Tensor:
    """(row, col) [B, N, 2] of the BEV cells holding normalised points ref [B, N, >= 2].

    Rows are y and columns x, as in mmdet3d's scatter / sparse encoders and CMT's BEV
    embedding; points outside the range clip to the border cell.
    """
    h, w = int(bev_shape[0]), int(bev_shape[1])
    col = (ref[..., 0] * w).floor().long().clamp(0, w - 1)
    row = (ref[..., 1] * h).floor().long().clamp(0, h - 1)
    return torch.stack([row, col], -1)


def first_view_cells(points: Tensor, lidar2img: Tensor, img_shapes: Sequence[Tuple[int, int]],
                     pad_shape: Sequence[int], feat_shape: Sequence[int]) -> Tensor:
    """(view, row, col) [B, N, 3] of LiDAR points on the camera feature maps.

    The view is the first one (lowest index) that sees the point (in front of it and inside
    its unpadded image); row/col index the h x w feature map of the padded input image of
    `pad_shape` (height, width). A point no camera sees gets view -1 (and row = col = 0):
    no fallback to an arbitrary view.
    """
    uv, depth = project_points(points, lidar2img)
    seen = visible_mask(uv, depth, img_shapes)                                # [B, V, N]
    num_views = seen.shape[1]
    order = torch.arange(num_views, 0, -1, device=seen.device).view(1, -1, 1)
    view = (seen * order).argmax(1)                                           # first seeing view
    any_seen = seen.any(1)
    pix = torch.gather(uv, 1, view[:, None, :, None].expand(-1, 1, -1, 2))[:, 0]   # [B, N, 2]
    h, w = int(feat_shape[0]), int(feat_shape[1])
    col = (pix[..., 0] * w / pad_shape[1]).floor().long().clamp(0, w - 1)
    row = (pix[..., 1] * h / pad_shape[0]).floor().long().clamp(0, h - 1)
    cells = torch.stack([view, row, col], -1)
    return torch.where(any_seen[..., None], cells, cells.new_tensor([-1, 0, 0]))


def bev_cell_centres(bev_shape: Sequence[int], pc_range: Sequence[float], heights: Sequence[float],
                     device=None, dtype=torch.float32) -> Tensor:
    """LiDAR-frame centres [H * W * Z, 3] of the BEV cells at the given heights (metres),
    cell-major (row-major over (row, col), then the heights): the inverse of `bev_cells`
    (rows are y, columns x)."""
    h, w = int(bev_shape[0]), int(bev_shape[1])
    lo = torch.tensor([float(pc_range[0]), float(pc_range[1])], device=device, dtype=dtype)
    hi = torch.tensor([float(pc_range[3]), float(pc_range[4])], device=device, dtype=dtype)
    xy = lo + cell_centres(h, w, device, dtype) * (hi - lo)                  # [H * W, 2]
    zs = torch.as_tensor(list(heights), device=device, dtype=dtype)
    return torch.cat([xy.repeat_interleave(zs.numel(), 0), zs.repeat(h * w)[:, None]], -1)


def local_maxima_topk(heat: Tensor, k: int):
    """The k highest 3x3 local maxima of heat [B, P, H, W] over all P planes and cells
    (CenterNet / TransFusion peak selection): `torch.topk` of the flattened [B, P*H*W]
    values (scores [B, k], flat indices [B, k]; index // (H*W) is the plane)."""
    peaks = heat * (heat == torch.nn.functional.max_pool2d(heat, 3, stride=1, padding=1))   # 0 off the maxima
    return peaks.flatten(1).topk(k, dim=1)


def view_peaks(heat: Tensor, k: int) -> Tuple[Tensor, Tensor, Tensor]:
    """The k highest 3x3 local maxima of per-view class heatmaps [B, V, K, h, w] (scores in
    [0, 1]) over all views, classes and cells: scores [B, k], class [B, k] and
    (view, row, col) [B, k, 3]."""
    b, v, c, h, w = heat.shape
    scores, idx = local_maxima_topk(heat.flatten(1, 2), k)
    plane, cell = idx // (h * w), idx % (h * w)
    return scores, plane % c, torch.stack([plane // c, cell // w, cell % w], -1)
