"""Triplane upsampler (MoReMouse / EG3D pattern): attention runs on the
coarse internal grid (64 x 64 per plane), and this convolutional stage lifts each plane
to the output grid (128 x 128) while reducing the channels (512 -> 80).

1x1 conv (reduce) -> bilinear resize to the output grid -> 3x3 conv (refine) -> 1x1 conv
(output). Resizing before a convolution avoids the checkerboard of strided transposed
convolutions; the reduction comes first so the 3x3 conv runs at the narrow width.
"""
import math

import torch.nn.functional as F
from torch import Tensor, nn

from mmdet3d.registry import MODELS


@MODELS.register_module()
class TriplaneUpsampler(nn.Module):
    """[N, in_channels, r, r] -> [N, out_channels, out_resolution, out_resolution]."""

    def __init__(self, in_channels: int, out_channels: int, out_resolution: int, mid_channels: int = 128,
                 norm_groups: int = 32):
        super().__init__()
        groups = math.gcd(norm_groups, mid_channels)
        self.out_resolution = int(out_resolution)
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 1), nn.GroupNorm(groups, mid_channels),
                                    nn.GELU())
        self.refine = nn.Sequential(nn.Conv2d(mid_channels, mid_channels, 3, padding=1),
                                    nn.GroupNorm(groups, mid_channels), nn.GELU())
        self.out = nn.Conv2d(mid_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.reduce(x)
        if tuple(x.shape[-2:]) != (self.out_resolution, self.out_resolution):
            x = F.interpolate(x, size=(self.out_resolution, self.out_resolution), mode='bilinear',
                              align_corners=False)
        return self.out(self.refine(x))
