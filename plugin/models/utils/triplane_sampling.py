"""Features of 3D points from a triplane (as in EG3D: Chan et al., "Efficient
Geometry-aware 3D Generative Adversarial Networks", CVPR 2022): bilinear samples
of the XY, XZ and YZ planes at the point's normalised coordinates, summed (or concatenated).

Plane layout, as `TriplaneGenerator` writes it: plane p has rows along axis PLANE_AXES[p][1]
and columns along axis PLANE_AXES[p][0] (XY: rows y, columns x, like the BEV canvas).
Coordinates are normalised to [0, 1] over the point-cloud range (`normalize_points`);
a plane cell's centre is at (i + 0.5) / size, as for the BEV cells. Points outside [0, 1]
read the nearest border cell.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

# (column axis, row axis) of the XY, XZ and YZ planes
PLANE_AXES: Tuple[Tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2))


def sample_triplane(planes: Tensor, points: Tensor, reduce: str = 'sum') -> Tensor:
    """planes [B, 3, C, H, W], points [B, N, 3] in [0, 1] -> [B, N, C] ('sum') or
    [B, N, 3 * C] ('concat', XY then XZ then YZ)."""
    if planes.dim() != 5 or planes.shape[1] != len(PLANE_AXES):
        raise ValueError(f'sample_triplane expects planes [B, 3, C, H, W], got {tuple(planes.shape)}')
    if reduce not in ('sum', 'concat'):
        raise ValueError(f"sample_triplane: reduce must be 'sum' or 'concat', got {reduce!r}")
    b, p, c, h, w = planes.shape
    n = points.shape[1]
    grid = torch.stack([points[..., list(axes)] for axes in PLANE_AXES], 1) * 2 - 1      # [B, 3, N, 2]
    feats = F.grid_sample(planes.flatten(0, 1), grid.flatten(0, 1)[:, :, None].to(planes.dtype),
                          mode='bilinear', padding_mode='border', align_corners=False)   # [B*3, C, N, 1]
    feats = feats.view(b, p, c, n).permute(0, 3, 1, 2)                                   # [B, N, 3, C]
    return feats.sum(2) if reduce == 'sum' else feats.flatten(2)
