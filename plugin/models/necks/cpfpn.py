"""CPFPN: the light ("cheap") FPN of PETR (Liu et al., ECCV 2022) and CMT (Yan et al.,
ICCV 2023; github.com/junjie18/CMT).

Like mmdet's FPN (1x1 laterals, top-down nearest upsampling and addition) but with a 3x3
output convolution only on the finest level, the one the CMT head reads (stride 16 for
ResNet/VoVNet C4+C5); the coarser outputs are the summed laterals.
"""
from typing import List, Sequence

import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet3d.registry import MODELS


@MODELS.register_module()
class CPFPN(BaseModule):

    def __init__(self, in_channels: Sequence[int], out_channels: int, num_outs: int = None,
                 norm_cfg: dict = None, init_cfg=dict(type='Xavier', layer='Conv2d', distribution='uniform')):
        super().__init__(init_cfg)
        self.num_outs = num_outs or len(in_channels)
        self.lateral_convs = nn.ModuleList(
            [ConvModule(c, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None) for c in in_channels])
        self.fpn_conv = ConvModule(out_channels, out_channels, 3, padding=1, norm_cfg=norm_cfg, act_cfg=None)

    def forward(self, inputs: Sequence[Tensor]) -> List[Tensor]:
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[2:],
                                                              mode='nearest')
        return [self.fpn_conv(laterals[0])] + laterals[1:self.num_outs]
