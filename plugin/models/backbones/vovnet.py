"""VoVNetV2 backbone (Lee & Park, CenterMask, CVPR 2020; "V-99-eSE" as used by DETR3D,
PETR and CMT): one-shot aggregation (OSA) blocks with an effective squeeze-excitation.

Each OSA block runs `layers_per_block` 3x3 convolutions in sequence, concatenates its
input with all their outputs, fuses them with a 1x1 convolution, re-weights the channels
with eSE and (after the first block of a stage) adds the block input. Stages 3-5 start
with a stride-2 max-pool. The layout follows the VoVNet of DD3D / CMT
(https://github.com/junjie18/CMT, `mmdet3d_plugin/models/backbones/vovnet.py`), so its
pretrained checkpoints load after `convert_official_vovnet_keys`; pretrained weights come
through `init_cfg` (`StrictPretrained` applies that conversion).
"""
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet3d.registry import MODELS

from .official_vovnet_keys import convert_official_vovnet_keys

# stem channels, per-stage conv channels, per-stage output channels, layers per block,
# blocks per stage
ARCH_SPECS = {
    'V-19-eSE': ([64, 64, 128], [128, 160, 192, 224], [256, 512, 768, 1024], 3, [1, 1, 1, 1]),
    'V-39-eSE': ([64, 64, 128], [128, 160, 192, 224], [256, 512, 768, 1024], 5, [1, 1, 2, 2]),
    'V-57-eSE': ([64, 64, 128], [128, 160, 192, 224], [256, 512, 768, 1024], 5, [1, 1, 4, 3]),
    'V-99-eSE': ([64, 64, 128], [128, 160, 192, 224], [256, 512, 768, 1024], 5, [1, 3, 9, 3]),
}


class EffectiveSE(nn.Module):
    """eSE: global average -> 1x1 conv (no reduction) -> hard sigmoid -> scale."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * F.hardsigmoid(self.fc(x.mean((2, 3), keepdim=True)))


class OSABlock(nn.Module):

    def __init__(self, in_ch: int, conv_ch: int, out_ch: int, num_layers: int, identity: bool,
                 norm_cfg: dict):
        super().__init__()
        self.layers = nn.ModuleList()
        ch = in_ch
        for _ in range(num_layers):
            self.layers.append(ConvModule(ch, conv_ch, 3, padding=1, bias=False, norm_cfg=norm_cfg))
            ch = conv_ch
        self.concat = ConvModule(in_ch + num_layers * conv_ch, out_ch, 1, bias=False, norm_cfg=norm_cfg)
        self.ese = EffectiveSE(out_ch)
        self.identity = identity

    def forward(self, x: Tensor) -> Tensor:
        outs, y = [x], x
        for layer in self.layers:
            y = layer(y)
            outs.append(y)
        y = self.ese(self.concat(torch.cat(outs, 1)))
        return y + x if self.identity else y


@MODELS.register_module()
class VoVNet(BaseModule):
    """Args:
        spec_name: one of ARCH_SPECS.
        out_features: names among 'stem', 'stage2'..'stage5' to return (strides 4..32).
        frozen_stages: as in the official VoVNet and mmdet's ResNet: -1 freezes nothing,
            0 the stem, k >= 1 the stem and stage2..stage(k+1).
        norm_eval: keep BatchNorm statistics frozen in training.
        init_cfg: e.g. `dict(type='StrictPretrained', checkpoint=PATH, prefix='img_backbone.')`
            for a checkpoint in the official naming.
    """

    def __init__(self, spec_name: str = 'V-99-eSE', input_ch: int = 3,
                 out_features: Sequence[str] = ('stage4', 'stage5'), frozen_stages: int = -1,
                 norm_eval: bool = True, norm_cfg: dict = dict(type='BN', requires_grad=True),
                 init_cfg=None):
        super().__init__(init_cfg)
        if spec_name not in ARCH_SPECS:
            raise KeyError(f'VoVNet spec_name {spec_name!r} is unknown; choose from {sorted(ARCH_SPECS)}')
        stem_ch, conv_ch, out_ch, layers, blocks = ARCH_SPECS[spec_name]
        self.out_features = list(out_features)
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval
        self.stem = nn.Sequential(
            ConvModule(input_ch, stem_ch[0], 3, stride=2, padding=1, bias=False, norm_cfg=norm_cfg),
            ConvModule(stem_ch[0], stem_ch[1], 3, stride=1, padding=1, bias=False, norm_cfg=norm_cfg),
            ConvModule(stem_ch[1], stem_ch[2], 3, stride=2, padding=1, bias=False, norm_cfg=norm_cfg))
        self.stages = nn.ModuleList()
        in_ch = stem_ch[2]
        for i in range(4):
            mods = [nn.MaxPool2d(3, 2, ceil_mode=True)] if i > 0 else []
            for b in range(blocks[i]):
                mods.append(OSABlock(in_ch, conv_ch[i], out_ch[i], layers, identity=b > 0, norm_cfg=norm_cfg))
                in_ch = out_ch[i]
            self.stages.append(nn.Sequential(*mods))
        self.out_channels = {f'stage{i + 2}': c for i, c in enumerate(out_ch)}

    @staticmethod
    def convert_pretrained_keys(state_dict: Dict) -> Dict:
        """Hook of `StrictPretrained`: official DD3D/CMT key names to this module's."""
        return convert_official_vovnet_keys(state_dict)

    def init_weights(self):
        super().init_weights()
        self._freeze()

    def _freeze(self):
        modules = [self.stem] + list(self.stages)
        for m in modules[:self.frozen_stages + 1]:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def forward(self, x: Tensor):
        outs = []
        x = self.stem(x)
        if 'stem' in self.out_features:
            outs.append(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if f'stage{i + 2}' in self.out_features:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self
