"""Turns AQR's per-query weights into the local-window attention bias.

AQR's second step (`AQRWeightGenerator`, after MoME's Adaptive Query Router: Park et al.,
CVPR 2025, is the first): the bias is
`bias_scale * lidar_weight` on the BEV keys within a `window_size` square around a query's
BEV cell, `bias_scale * camera_weight` on the camera keys within the square around its
pixel in the view that sees it, 0 elsewhere. The result is a compact `LocalWindowBias`
(never a dense [B, Q, K] tensor) that every decoder cross-attention applies exactly
through `local_bias_attention`.

Window size is the main ablation (5 / 15 / 25 cells at nuScenes' 0.6 m BEV cell):
`--cfg-options model.pts_bbox_head.attn_bias_cfg.window_size=5`.
"""
from typing import Optional, Sequence

import torch
from mmengine.model import BaseModule
from torch import nn

from mmdet3d.registry import MODELS

from .key_layout import KeyLayout
from .weight_generator import AQRWeights
from .window_bias import LocalWindowBias
from .window_size import check_window_size

KEY = 'model.pts_bbox_head.attn_bias_cfg'


@MODELS.register_module()
class AttentionBiasGenerator(BaseModule):
    """See the module docstring.

    Args:
        window_size: odd window side (in cells / feature pixels) for both modalities.
        bev_window_size, cam_window_size: optional per-modality overrides.
        bias_scale: the bias magnitude (initial value when learnable).
        learnable_scale: learn the scale, clamped to [0, max_scale].
        max_scale: upper clamp of a learnable scale (keeps exp(bias) well conditioned).
        chunk_elements: memory budget of one gathered window block in the exact attention.
    """

    def __init__(self, window_size: int = 15, bev_window_size: Optional[int] = None,
                 cam_window_size: Optional[int] = None, bias_scale: float = 1.0,
                 learnable_scale: bool = False, max_scale: float = 5.0,
                 chunk_elements: int = 1 << 19, init_cfg=None):
        super().__init__(init_cfg)
        window_size = check_window_size(window_size, f'{KEY}.window_size')
        self.bev_window = check_window_size(bev_window_size, f'{KEY}.bev_window_size') \
            if bev_window_size is not None else window_size
        self.cam_window = check_window_size(cam_window_size, f'{KEY}.cam_window_size') \
            if cam_window_size is not None else window_size
        if not isinstance(bias_scale, (int, float)) or isinstance(bias_scale, bool) or bias_scale < 0:
            raise ValueError(f'{KEY}.bias_scale must be a number >= 0, got {bias_scale!r}')
        if not isinstance(max_scale, (int, float)) or max_scale <= 0 or bias_scale > max_scale:
            raise ValueError(f'{KEY}.max_scale must be > 0 and >= bias_scale, got {max_scale!r}')
        self.max_scale = float(max_scale)
        if learnable_scale:
            self.bias_scale = nn.Parameter(torch.tensor(float(bias_scale)))
        else:
            self.register_buffer('bias_scale', torch.tensor(float(bias_scale)), persistent=False)
        self.chunk_elements = chunk_elements

    @property
    def window_sizes(self) -> Sequence[int]:
        return self.bev_window, self.cam_window

    def forward(self, weights: AQRWeights, layout: KeyLayout) -> LocalWindowBias:
        """weights from `AQRWeightGenerator`; layout: the memory's `KeyLayout`."""
        scale = self.bias_scale.clamp(0.0, self.max_scale)
        return LocalWindowBias.from_layout(layout, weights.bev_center, weights.cam_center, weights.lidar_weight,
                                           weights.camera_weight, (self.bev_window, self.cam_window), scale,
                                           chunk_elements=self.chunk_elements)
