"""Triplane neck (triplane after MoReMouse / EG3D): builds the scene context from
the BEV and image features, runs `TriplaneGenerator`, and fuses the XY plane into the BEV
map before the head. The head samples all three planes at its queries' reference points
(`CmtHead(triplane_cfg=...)`).

Context tokens (`context_dim` wide, the generator's):
* BEV: the map average-pooled to `bev_tokens` cells -> linear, plus an MLP of the
  normalised cell centre and a learned modality embedding;
* cameras: each view's map pooled to `cam_tokens` -> linear, plus an MLP of the token's
  position in the image and of the camera's pose (optical centre normalised by the
  point-cloud range, and viewing direction, both read from lidar2img alone, so image
  augmentations do not move them), plus a modality embedding.
Either modality may be absent (LiDAR-only / camera-only); the triplane then comes from
the other. XY fusion: the XY plane resized to the BEV grid (same point-cloud range, rows
y, columns x) -> zero-initialised 1x1 conv -> added, so at initialisation the BEV map is
unchanged (`fuse_bev=False` switches it off for ablation).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet3d.registry import MODELS

from ..utils.camera_geometry import CameraGeometry
from ..utils.grids import cell_centres


def _mlp(in_dims: int, out_dims: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dims, out_dims), nn.ReLU(inplace=True), nn.Linear(out_dims, out_dims))


@MODELS.register_module()
class TriplaneNeck(BaseModule):
    """(bev [B, C, H, W] | None, img_feats [B, V, C', h, w] | None, metas) -> (bev, planes
    [B, 3, C_t, T, T]). See the module docstring.

    Args:
        generator: the `TriplaneGenerator` config (its `context_dim` sets the token width).
        pc_range: point-cloud range (normalises the camera centres).
        bev_channels / img_channels: input widths; None when the model has no such input.
        bev_tokens / cam_tokens: (rows, cols) pooled grid of BEV / per-view context tokens.
        fuse_bev: add the XY plane into the BEV map.
    """

    def __init__(self,
                 generator: dict,
                 pc_range: Sequence[float],
                 bev_channels: Optional[int] = None,
                 img_channels: Optional[int] = None,
                 bev_tokens: Sequence[int] = (16, 16),
                 cam_tokens: Sequence[int] = (4, 8),
                 fuse_bev: bool = True,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if not bev_channels and not img_channels:
            raise ValueError('TriplaneNeck needs bev_channels or img_channels (the context comes from them)')
        if fuse_bev and not bev_channels:
            raise ValueError('TriplaneNeck: fuse_bev=True needs bev_channels (there is no BEV map to fuse into)')
        self.generator = MODELS.build(generator)
        ctx, planes = self.generator.context_dim, self.generator.output_channels
        self.pc_range = [float(r) for r in pc_range]
        self.bev_tokens, self.cam_tokens = tuple(bev_tokens), tuple(cam_tokens)
        self.modality_embed = nn.Parameter(torch.zeros(2, ctx))
        self.bev_in = self.bev_pos = self.cam_in = self.cam_pos = self.bev_fuse = None
        if bev_channels:
            self.bev_in, self.bev_pos = nn.Linear(bev_channels, ctx), _mlp(2, ctx)
        if img_channels:
            # token (u, v) in the image + camera centre (3) + viewing direction (3)
            self.cam_in, self.cam_pos = nn.Linear(img_channels, ctx), _mlp(8, ctx)
        if fuse_bev:
            self.bev_fuse = nn.Conv2d(planes, bev_channels, 1)

    def init_weights(self):
        super().init_weights()
        self.generator.init_weights()
        nn.init.normal_(self.modality_embed, std=0.02)
        if self.bev_fuse is not None:
            # zero fusion: adding the neck leaves the BEV map unchanged at step 0
            nn.init.zeros_(self.bev_fuse.weight)
            nn.init.zeros_(self.bev_fuse.bias)

    def context(self, bev: Optional[Tensor], img_feats: Optional[Tensor],
                geometry: Optional[CameraGeometry] = None) -> Tensor:
        """Context tokens [B, N_bev + V * N_cam, context_dim]."""
        tokens = []
        if bev is not None and self.bev_in is not None:
            pooled = F.adaptive_avg_pool2d(bev, self.bev_tokens).flatten(2).transpose(1, 2)
            pos = cell_centres(*self.bev_tokens, bev.device, bev.dtype)
            tokens.append(self.bev_in(pooled) + self.bev_pos(pos) + self.modality_embed[0])
        if img_feats is not None and self.cam_in is not None:
            b, v = img_feats.shape[:2]
            centre, axis = CameraGeometry.required(geometry, v, 'TriplaneNeck').poses()
            lo, hi = centre.new_tensor(self.pc_range[:3]), centre.new_tensor(self.pc_range[3:6])
            pose = torch.cat([(centre - lo) / (hi - lo), axis], -1).to(img_feats.dtype)           # [B, V, 6]
            uv = cell_centres(*self.cam_tokens, img_feats.device, img_feats.dtype)               # [T, 2]
            pos = torch.cat([uv.expand(b, v, -1, -1), pose[:, :, None].expand(-1, -1, uv.shape[0], -1)], -1)
            pooled = F.adaptive_avg_pool2d(img_feats.flatten(0, 1), self.cam_tokens).flatten(2).transpose(1, 2)
            cam = self.cam_in(pooled).unflatten(0, (b, v)) + self.cam_pos(pos) + self.modality_embed[1]
            tokens.append(cam.flatten(1, 2))
        if not tokens:
            raise ValueError('TriplaneNeck got neither a BEV map nor image features')
        return torch.cat(tokens, 1)

    def forward(self, bev: Optional[Tensor], img_feats: Optional[Tensor],
                geometry: Optional[CameraGeometry] = None) -> Tuple[Optional[Tensor], Tensor]:
        """`geometry`: the batch's `CameraGeometry` (needed with image features)."""
        planes = self.generator(self.context(bev, img_feats, geometry))
        if bev is not None and self.bev_fuse is not None:
            xy = F.interpolate(planes[:, 0], size=bev.shape[-2:], mode='bilinear', align_corners=False)
            bev = bev + self.bev_fuse(xy.to(bev.dtype))
        return bev, planes
