"""Turns AQR's per-query weights into the local-window attention bias.

AQR's second step (`AQRWeightGenerator`, after MoME's Adaptive Query Router: Park et al.,
CVPR 2025, is the first): the bias is
`bias_scale * lidar_weight` on the BEV keys within a `window_size` square around a query's
BEV cell, `bias_scale * camera_weight` on the camera keys within the square around its
pixel in the view that sees it, 0 elsewhere. The result is a compact `LocalWindowBias`
(never a dense [B, Q, K] tensor) that every decoder cross-attention applies exactly
through `local_bias_attention`.

Window size is the main ablation (5 / 15 / 25 cells at nuScenes' 0.6 m BEV cell):
`--cfg-options model.pts_bbox_head.aqr_cfg.bias.window_size=5`, or in metres, the same on
any grid: `aqr_cfg.bias.window_size_m=3.0` (`window_size.py` defines the conversion).
"""
from typing import Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import nn

from aqr_attention import LocalWindowBias, WindowSides
from mmdet3d.registry import MODELS

from ..layers.key_layout import KeyLayout
from ..utils.camera_geometry import CameraGeometry
from .weight_generator import AQRWeights

KEY = 'model.pts_bbox_head.aqr_cfg.bias'


@MODELS.register_module()
class AttentionBiasGenerator(BaseModule):
    """See the module docstring.

    Args:
        window_size: odd window side (in cells / feature pixels) for both modalities
            (15 when no side is given in cells or in metres).
        bev_window_size, cam_window_size: optional per-modality overrides.
        window_size_m, bev_window_size_m, cam_window_size_m: the same in metres; a side in
            metres replaces the side in cells (see `window_size.py` for the conversion).
        cam_reference_depth: depth (m) at which a camera window in metres is measured.
        pc_range: point-cloud range (the head sets it): the BEV cell size of metre windows.
        bias_scale: the bias magnitude (initial value when learnable).
        learnable_scale: learn the scale, clamped to [0, max_scale].
        max_scale: upper clamp of a learnable scale (keeps exp(bias) well conditioned).
        chunk_elements: memory budget of one gathered window block in the exact attention.
    """

    def __init__(self, window_size: Optional[int] = None, bev_window_size: Optional[int] = None,
                 cam_window_size: Optional[int] = None, window_size_m: Optional[float] = None,
                 bev_window_size_m: Optional[float] = None, cam_window_size_m: Optional[float] = None,
                 cam_reference_depth: float = 20.0, pc_range: Optional[Sequence[float]] = None,
                 bias_scale: float = 1.0, learnable_scale: bool = False, max_scale: float = 5.0,
                 chunk_elements: int = 1 << 19, init_cfg=None):
        super().__init__(init_cfg)
        if window_size is None and window_size_m is None:
            window_size = 15
        bev_m = bev_window_size_m if bev_window_size_m is not None else window_size_m
        cam_m = cam_window_size_m if cam_window_size_m is not None else window_size_m
        cells = (bev_window_size if bev_window_size is not None else None if bev_m is not None else window_size,
                 cam_window_size if cam_window_size is not None else None if cam_m is not None else window_size)
        metre_keys = (f'{KEY}.bev_window_size_m' if bev_window_size_m is not None else f'{KEY}.window_size_m',
                      f'{KEY}.cam_window_size_m' if cam_window_size_m is not None else f'{KEY}.window_size_m')
        cell_keys = (f'{KEY}.bev_window_size' if bev_window_size is not None else f'{KEY}.window_size',
                     f'{KEY}.cam_window_size' if cam_window_size is not None else f'{KEY}.window_size')
        self.sides = WindowSides.of(cells, (bev_m, cam_m), cam_reference_depth, (*cell_keys, *metre_keys),
                                    f'{KEY}.cam_reference_depth')
        if self.sides.bev_in_metres and (pc_range is None or len(pc_range) != 6):
            raise ValueError(f'{KEY}: a BEV window in metres needs pc_range (6 numbers), got {pc_range!r}')
        self.pc_range = None if pc_range is None else [float(r) for r in pc_range]
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
    def window_sizes(self) -> Optional[Tuple[int, int]]:
        """(BEV, camera) sides in cells; None when a side is in metres (known per batch,
        `window_cells`)."""
        return self.sides.in_cells

    def window_cells(self, layout: KeyLayout, geometry: Optional[CameraGeometry] = None) -> Tuple[int, int]:
        """(BEV, camera) sides in cells for a batch of this layout and camera geometry."""
        return self.sides.cells(self.pc_range, layout.bev_shape, layout.cam_shape, geometry)

    def forward(self, weights: AQRWeights, layout: KeyLayout,
                geometry: Optional[CameraGeometry] = None) -> LocalWindowBias:
        """weights from `AQRWeightGenerator`; layout: the memory's `KeyLayout`; geometry: the
        batch's `CameraGeometry` (needed by a camera window in metres)."""
        scale = self.bias_scale.clamp(0.0, self.max_scale)
        return LocalWindowBias.from_layout(layout, weights.bev_center, weights.cam_center, weights.lidar_weight,
                                           weights.camera_weight, self.window_cells(layout, geometry), scale,
                                           chunk_elements=self.chunk_elements)
