"""FuTr-style camera <-> BEV fusion neck, memory-safe and calibrated.

After FUTR3D (Chen et al., "FUTR3D: A Unified Sensor Fusion Framework for 3D Detection",
CVPR Workshops 2023). A naive FuTr block lets every BEV token attend to the camera tokens: O(HW)
queries, so memory grows with the BEV grid and the batch until it runs out. Reversing the
direction fixes memory but leaves fusion global (one FiLM vector per batch, no geometry,
no camera identity). Here:

* camera -> BEV (`use_film`): each view is pooled to a small grid of camera tokens. Each
  token carries an embedding of its geometry, all read from lidar2img: the unit ray (LiDAR
  frame) through the centre of its pooling cell, and its camera's optical centre and
  viewing direction; so a token knows where it looks, whatever the rig. The camera tokens
  go through a transformer block (`CameraTokenBlock`: cross-attention to the (optionally
  average-pooled) BEV tokens, residual, LayerNorm, FFN, residual, LayerNorm; post-norm):
  cost O(V * T * HW / pool^2), never O(HW^2), never BEV-as-queries. Each camera's
  tokens, averaged, give its own FiLM (scale, shift) of the BEV channels; cameras are
  combined per BEV cell, `film_combine='gated'` by a learned gate times that camera's
  visibility of the cell, or `'sum'` (every camera on every cell). Scale and shift start at
  zero, so the neck starts as the identity on this path.
* BEV -> camera, spatial (`use_spatial`): each BEV cell centre, at a few heights, is
  projected with lidar2img (which already holds the image-augmentation matrices) into
  every view; the image features are sampled bilinearly where the point is in front of
  the camera and inside the image, averaged over the valid (view, height) samples and
  added to the BEV map through a projection. BEV is thus updated cell by cell.

All projections go through `plugin/models/utils/projection.py`, the one calibration
helper shared with CMT's embeddings and AQR.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet3d.registry import MODELS

from ..layers.camera_token_block import CameraTokenBlock
from ..utils.camera_geometry import CameraGeometry
from ..utils.grids import bev_cell_centres, cell_centres
from ..utils.image_sampling import sample_image_features
from ..utils.projection import pixel_rays, project_points


def project_bev_cells(geometry: CameraGeometry, bev_shape: Sequence[int], pc_range: Sequence[float],
                      heights: Sequence[float]) -> Tuple[Tensor, Tensor]:
    """Pixels uv [B, V, H * W * Z, 2] of the BEV cell centres at the Z heights in every view
    of the batch's cameras, and whether each view sees them (in front, inside the unpadded
    image) [B, V, H * W * Z]."""
    lidar2img = geometry.lidar2img
    centres = bev_cell_centres(bev_shape, pc_range, heights, lidar2img.device, lidar2img.dtype)
    uv, depth = project_points(centres.expand(lidar2img.shape[0], -1, -1), lidar2img)
    return uv, geometry.visible(uv, depth)


def spatial_camera_features(img_feats: Tensor, uv: Tensor, seen: Tensor, pad_shape: Sequence[int],
                            heights: int) -> Tensor:
    """Camera features at every BEV cell [B, C, H * W]: the mean over the (view, height)
    samples that see the cell centre (`project_bev_cells`); zeros for a cell no camera
    sees. One view at a time, so that the samples held at once are [B, C, H * W * Z]."""
    b, v, c = img_feats.shape[:3]
    total = img_feats.new_zeros(b, c, uv.shape[2] // heights)
    weight = seen.to(img_feats.dtype)
    for view in range(v):
        samples = sample_image_features(img_feats[:, view:view + 1], uv[:, view:view + 1], pad_shape)[:, 0]
        total = total + (samples * weight[:, view, None]).unflatten(2, (-1, heights)).sum(3)
    count = weight.unflatten(2, (-1, heights)).sum((1, 3))                                   # [B, HW]
    return total / count.clamp(min=1.0)[:, None]


@MODELS.register_module()
class FuTrFusionNeck(BaseModule):
    """See the module docstring. `fused = neck(bev [B, C, H, W], img_feats [B, V, C_img,
    h, w], geometry)` -> [B, C, H, W].

    Args:
        bev_channels: C of the BEV map.
        img_channels: C_img of the image maps.
        pc_range: point-cloud range (x_min, y_min, z_min, x_max, y_max, z_max): the BEV grid
            covers its x / y extent.
        embed_dims: width of the attention and of the sampled camera features.
        num_heads: heads of the camera -> BEV attention.
        ffn_channels: hidden width of the camera-token block's FFN (default 2 x embed_dims).
        cam_pool_size: (rows, cols) each view is pooled to: its camera tokens.
        bev_pool: average-pooling factor of the BEV keys / values (1 = none).
        heights: heights (metres, LiDAR frame) at which BEV cell centres are projected.
        use_film / use_spatial: the two paths, switchable for ablation.
        film_combine: 'gated' (learned gate x visibility per cell and camera) or 'sum'.
    """

    def __init__(self, bev_channels: int, img_channels: int, pc_range: Sequence[float],
                 embed_dims: int = 128, num_heads: int = 4, cam_pool_size: Tuple[int, int] = (8, 8),
                 bev_pool: int = 2, heights: Sequence[float] = (-1.0, 0.0, 1.0), use_film: bool = True,
                 use_spatial: bool = True, film_combine: str = 'gated', ffn_channels: Optional[int] = None,
                 init_cfg=None):
        super().__init__(init_cfg)
        if not (use_film or use_spatial):
            raise ValueError('FuTrFusionNeck: use_film and use_spatial are both False (nothing to fuse)')
        if film_combine not in ('gated', 'sum'):
            raise ValueError(f"FuTrFusionNeck.film_combine must be 'gated' or 'sum', got {film_combine!r}")
        if len(pc_range) != 6:
            raise ValueError(f'FuTrFusionNeck.pc_range must have 6 numbers, got {pc_range!r}')
        if int(bev_pool) < 1:
            raise ValueError(f'FuTrFusionNeck.bev_pool must be >= 1, got {bev_pool!r}')
        self.pc_range, self.heights = [float(r) for r in pc_range], [float(z) for z in heights]
        self.cam_pool_size, self.bev_pool = tuple(cam_pool_size), int(bev_pool)
        self.use_film, self.use_spatial, self.film_combine = use_film, use_spatial, film_combine
        if use_film:
            self.cam_proj = nn.Linear(img_channels, embed_dims)
            # a token's ray (3), its camera's normalised centre (3) and viewing direction (3)
            self.ray_embed = nn.Sequential(nn.Linear(9, embed_dims), nn.ReLU(inplace=True),
                                           nn.Linear(embed_dims, embed_dims))
            self.bev_proj = nn.Linear(bev_channels, embed_dims)
            self.bev_pos = nn.Sequential(nn.Linear(2, embed_dims), nn.ReLU(inplace=True),
                                         nn.Linear(embed_dims, embed_dims))
            self.token_block = CameraTokenBlock(embed_dims, num_heads, ffn_channels or 2 * embed_dims)
            self.film = nn.Linear(embed_dims, 2 * bev_channels)
            if film_combine == 'gated':
                self.gate = nn.Conv2d(bev_channels, 1, 1)
        if use_spatial:
            self.img_proj = nn.Conv2d(img_channels, embed_dims, 1)
            self.spatial_out = nn.Conv2d(embed_dims, bev_channels, 1)

    def init_weights(self):
        super().init_weights()
        if self.use_film:
            # zero FiLM: the camera -> BEV path starts as the identity
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, bev: Tensor, img_feats: Tensor, geometry: CameraGeometry) -> Tensor:
        """`geometry`: the batch's `CameraGeometry`."""
        if bev.dim() != 4 or img_feats.dim() != 5 or bev.shape[0] != img_feats.shape[0]:
            raise ValueError(f'FuTrFusionNeck expects bev [B, C, H, W] and img_feats [B, V, C, h, w], '
                             f'got {tuple(bev.shape)} and {tuple(img_feats.shape)}')
        b, c, h, w = bev.shape
        geometry = CameraGeometry.required(geometry, img_feats.shape[1], 'FuTrFusionNeck').to(dtype=bev.dtype)
        uv, seen = project_bev_cells(geometry, (h, w), self.pc_range, self.heights)
        out = bev
        if self.use_spatial:
            feats = self.img_proj(img_feats.flatten(0, 1)).unflatten(0, img_feats.shape[:2])
            sampled = spatial_camera_features(feats, uv, seen, geometry.input_shape, len(self.heights))
            out = out + self.spatial_out(sampled.view(b, -1, h, w))
        if self.use_film:
            # fraction of the heights at which each view sees each cell [B, V, HW]
            visibility = seen.to(bev.dtype).unflatten(2, (-1, len(self.heights))).mean(3)
            out = self._film(out, bev, img_feats, geometry, visibility)
        return out

    def token_geometry(self, geometry: CameraGeometry) -> Tensor:
        """[B, V, T, 9] per camera token: the unit ray (LiDAR frame) through the centre of its
        pooling cell (a pixel of the padded input image), then its camera's optical centre
        normalised to pc_range and its unit viewing direction."""
        lidar2img = geometry.lidar2img
        b, v = lidar2img.shape[:2]
        rows, cols = self.cam_pool_size
        height, width = geometry.input_shape
        uv = cell_centres(rows, cols, lidar2img.device, lidar2img.dtype, extent=(width, height))      # [T, 2]
        centre, axis = geometry.poses()
        rays = pixel_rays(uv.expand(b, v, -1, -1), lidar2img, centre)                            # [B, V, T, 3]
        lo, hi = lidar2img.new_tensor(self.pc_range[:3]), lidar2img.new_tensor(self.pc_range[3:])
        pose = torch.cat([(centre - lo) / (hi - lo), axis], -1)[:, :, None].expand(-1, -1, rows * cols, -1)
        return torch.cat([rays, pose], -1)

    def _film(self, out: Tensor, bev: Tensor, img_feats: Tensor, geometry: CameraGeometry,
              visibility: Tensor) -> Tensor:
        b, v = img_feats.shape[:2]
        # camera tokens: the pooled grid + the embedding of each token's ray and camera pose
        cam = F.adaptive_avg_pool2d(img_feats.flatten(0, 1), self.cam_pool_size).flatten(2).transpose(1, 2)
        cam = self.cam_proj(cam).unflatten(0, (b, v)) + self.ray_embed(self.token_geometry(geometry))  # [B, V, T, E]
        # BEV keys / values (pooled), with their normalised cell positions
        kv = F.avg_pool2d(bev, self.bev_pool) if self.bev_pool > 1 else bev
        hk, wk = kv.shape[-2:]
        kv = self.bev_proj(kv.flatten(2).transpose(1, 2)) + self.bev_pos(cell_centres(hk, wk, bev.device, bev.dtype))
        per_cam = self.token_block(cam.flatten(1, 2), kv).unflatten(1, (v, -1)).mean(2)   # [B, V, E]
        scale, shift = self.film(per_cam).chunk(2, -1)                                     # [B, V, C] each
        if self.film_combine == 'sum':
            return out * (1 + scale.sum(1)[..., None, None]) + shift.sum(1)[..., None, None]
        # each camera modulates the cells it sees, weighted by a learned per-cell gate;
        # summed over cameras by a matmul (never a [B, V, C, H, W] tensor)
        gate = torch.sigmoid(self.gate(bev)).flatten(2) * visibility                        # [B, V, HW]
        cell_scale = torch.einsum('bvn,bvc->bcn', gate, scale).view_as(out)
        cell_shift = torch.einsum('bvn,bvc->bcn', gate, shift).view_as(out)
        return out * (1 + cell_scale) + cell_shift
