"""AQR weight generator: per-query LiDAR / camera weights in [-1, 1].

After MoME's Adaptive Query Router (Park et al., "MoME", CVPR 2025), made continuous.
MoME routes each query to one expert; here a query gets two
weights that `AttentionBiasGenerator` turns into an additive bias on the BEV / camera keys
around it in every decoder cross-attention.

Per query:
1. its reference point (normalised to `pc_range`) is located on the BEV grid (cell) and in
   the first camera that sees it (view, row, col on the feature map), through the one
   projection helper (`plugin/models/utils/projection.py`); a query no camera sees gets
   no camera window (MoME's fall-back to view 0, pixel (0, 0) is not reproduced);
2. one `PETRTransformerDecoderLayer` without self-attention (cross-attention, norm, FFN,
   norm) attends only to the keys of its local attention mask (LAM): a `window_sizes[0]`
   square on the BEV grid and a `window_sizes[1]` square in its view. The mask is a
   `LocalWindowMask` handed to the layer's cross-attention as its compact attention bias,
   so it runs `local_window_attention` (exact, never a dense [queries, keys] mask);
3. Linear(embed_dims, 2) + tanh gives (lidar_weight, camera_weight). The linear layer
   starts at zero, so a fresh model starts with no bias, i.e. as plain CMT.
"""
from typing import NamedTuple, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from aqr_attention import KeyGrid, LocalWindowMask, WindowSides, split_window_size
from mmdet3d.registry import MODELS

from ..layers.key_layout import KeyLayout
from ..utils.camera_geometry import CameraGeometry
from ..utils.grids import bev_cells, first_view_cells
from ..utils.projection import denormalize_points


class AQRWeights(NamedTuple):
    """What the AQR hands to the bias generator (all [B, Q, ...])."""
    lidar_weight: Tensor            # [B, Q] in [-1, 1]
    camera_weight: Tensor           # [B, Q] in [-1, 1]
    bev_center: Optional[Tensor]    # [B, Q, 2] long (row, col), None without BEV
    cam_center: Optional[Tensor]    # [B, Q, 3] long (view, row, col), view -1 = unseen


@MODELS.register_module()
class AQRWeightGenerator(BaseModule):
    """See the module docstring.

    Args:
        embed_dims: query / memory channels (the head's embed_dims).
        pc_range: point-cloud range, to turn normalised reference points into metres.
        window_sizes: (BEV window, camera window) of the LAM, odd ints (MoME: 5 and 15).
        window_sizes_m: (BEV, camera) windows in metres, each replacing its side in cells
            where not None (see `window_size.py` for the conversion).
        cam_reference_depth: depth (m) at which a camera window in metres is measured.
        num_heads: heads of the LAM cross-attention (4 by default).
        feedforward_channels: FFN hidden width (default 2 * embed_dims).
        dropout: dropout of the attention output and FFN.
        chunk_elements: memory budget (elements) of one block of the window attention.
    """

    def __init__(self, embed_dims: int, pc_range: Sequence[float],
                 window_sizes: Tuple[int, int] = (5, 15), num_heads: int = 4,
                 feedforward_channels: Optional[int] = None, dropout: float = 0.0,
                 chunk_elements: int = 1 << 19, window_sizes_m: Optional[Sequence[Optional[float]]] = None,
                 cam_reference_depth: float = 20.0, init_cfg=None):
        super().__init__(init_cfg)
        cells = split_window_size(tuple(window_sizes), 'aqr_cfg.router.window_sizes')
        metres = tuple(window_sizes_m) if window_sizes_m is not None else (None, None)
        if len(metres) != 2:
            raise ValueError(f'aqr_cfg.router.window_sizes_m must be a (bev, camera) pair, got {window_sizes_m!r}')
        key = 'aqr_cfg.router'
        self.sides = WindowSides.of(tuple(c if m is None else None for c, m in zip(cells, metres)), metres,
                                    cam_reference_depth, (f'{key}.window_sizes[0]', f'{key}.window_sizes[1]',
                                                          f'{key}.window_sizes_m[0]', f'{key}.window_sizes_m[1]'),
                                    f'{key}.cam_reference_depth')
        if embed_dims % num_heads:
            raise ValueError(f'aqr_cfg.router.num_heads={num_heads} does not divide embed_dims={embed_dims}')
        self.embed_dims, self.num_heads = embed_dims, num_heads
        self.pc_range = list(pc_range)
        self.chunk_elements = chunk_elements
        self.layer = MODELS.build(dict(
            type='PETRTransformerDecoderLayer', self_attn_cfg=None,
            cross_attn_cfg=dict(type='BiasedMultiheadAttention', embed_dims=embed_dims, num_heads=num_heads,
                                proj_drop=dropout),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=feedforward_channels or 2 * embed_dims,
                         ffn_drop=dropout)))
        self.weight_head = nn.Linear(embed_dims, 2)

    def init_weights(self):
        super().init_weights()
        nn.init.zeros_(self.weight_head.weight)
        nn.init.zeros_(self.weight_head.bias)

    @property
    def window_sizes(self) -> Optional[Tuple[int, int]]:
        """(BEV, camera) LAM sides in cells; None when a side is in metres (`window_cells`)."""
        return self.sides.in_cells

    def window_cells(self, layout: KeyLayout, geometry: Optional[CameraGeometry]) -> Tuple[int, int]:
        """(BEV, camera) LAM sides in cells for a batch of this layout and camera geometry."""
        return self.sides.cells(self.pc_range, layout.bev_shape, layout.cam_shape, geometry)

    def window_centres(self, ref: Tensor, layout: KeyLayout, geometry: Optional[CameraGeometry]
                       ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """BEV (row, col) and camera (view, row, col) of every reference point."""
        bev_center = bev_cells(ref, layout.bev_shape) if layout.bev_shape is not None else None
        cam_center = None
        if layout.cam_shape is not None and geometry is not None:
            cam_center = first_view_cells(denormalize_points(ref, self.pc_range), geometry.lidar2img,
                                          geometry.img_shape, geometry.input_shape, layout.cam_shape[1:])
        return bev_center, cam_center

    def forward(self, ref: Tensor, query: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor,
                key_padding_mask: Optional[Tensor], layout: KeyLayout,
                geometry: Optional[CameraGeometry]) -> AQRWeights:
        """ref [B, Q, 3] normalised; query/query_pos [B, Q, C]; memory/memory_pos [B, K, C]
        in the order of `layout` (the memory's `KeyLayout`); key_padding_mask [B, K] (True =
        padding) or None; geometry: the batch's `CameraGeometry` (None without cameras)."""
        if memory.shape[1] != layout.num_keys:
            raise ValueError(f'the memory has {memory.shape[1]} keys, its layout {layout} {layout.num_keys}')
        bev_center, cam_center = self.window_centres(ref, layout, geometry)
        parts = KeyGrid.of(*layout).window_parts(bev_center, cam_center, *self.window_cells(layout, geometry))
        x = self.layer(query, memory, memory, query_pos, memory_pos, key_padding_mask=key_padding_mask,
                       attn_bias=LocalWindowMask(parts, self.chunk_elements))
        weights = torch.tanh(self.weight_head(x))
        return AQRWeights(weights[..., 0], weights[..., 1], bev_center, cam_center)
