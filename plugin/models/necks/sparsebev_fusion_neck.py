"""SparseBEV-style fusion neck: only the top-k BEV cells sample the cameras.

After SparseBEV (Liu et al., ICCV 2023): sparse BEV -> camera sampling. A light scorer rates
every BEV cell; the top `keep_ratio` of them (default 10%) each predict a few sampling
points (learned x / y offsets in metres around the cell centre, at several heights),
project them through lidar2img into all views, sample the image features bilinearly
where a point is in front of the camera and inside the image, weight the points with
learned weights, average over the views that see them, and add the result to the cell.
Everything else passes through unchanged, so time and memory of the fusion scale with
the kept cells, not with the grid. The scorer's sigmoid gates each kept cell's update,
which is what trains the scorer (top-k itself has no gradient).

Sparse sampling is local: a cell learns only what its few sampling points see. With
`global_film=True` a global camera -> BEV path conditions every cell as well: each view's
image map is average-pooled to one vector, the views are averaged, and an MLP gives a
per-channel FiLM (scale, shift) of the whole BEV map (FiLM: Perez et al., AAAI 2018). Its
last layer starts at zero, so the path starts as the identity.
"""
from typing import Optional, Sequence

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet3d.registry import MODELS

from ..utils.camera_geometry import CameraGeometry
from ..utils.grids import bev_cell_centres
from ..utils.image_sampling import sample_image_features
from ..utils.projection import project_points


@MODELS.register_module()
class SparseBEVFusionNeck(BaseModule):
    """See the module docstring. `fused = neck(bev [B, C, H, W], img_feats [B, V, C_img,
    h, w], geometry)` -> [B, C, H, W].

    Args:
        bev_channels / img_channels: C and C_img.
        pc_range: point-cloud range; the BEV grid covers its x / y extent.
        embed_dims: width of the sampled camera features.
        keep_ratio: fraction of BEV cells that sample the cameras, in (0, 1].
        num_points: sampling points per cell and height.
        heights: heights (metres, LiDAR frame) of the sampling points.
        max_offset: largest x / y offset of a sampling point from its cell centre (metres);
            default: one cell.
        global_film: add the global camera -> BEV FiLM (see the module docstring).
    """

    def __init__(self, bev_channels: int, img_channels: int, pc_range: Sequence[float], embed_dims: int = 128,
                 keep_ratio: float = 0.1, num_points: int = 4, heights: Sequence[float] = (-1.0, 0.0, 1.0),
                 max_offset: Optional[float] = None, global_film: bool = False, init_cfg=None):
        super().__init__(init_cfg)
        if not 0.0 < float(keep_ratio) <= 1.0:
            raise ValueError(f'SparseBEVFusionNeck.keep_ratio must be in (0, 1], got {keep_ratio!r}')
        if len(pc_range) != 6:
            raise ValueError(f'SparseBEVFusionNeck.pc_range must have 6 numbers, got {pc_range!r}')
        if int(num_points) < 1 or not heights:
            raise ValueError('SparseBEVFusionNeck needs num_points >= 1 and at least one height')
        self.pc_range, self.heights = [float(r) for r in pc_range], [float(z) for z in heights]
        self.keep_ratio, self.num_points, self.max_offset = float(keep_ratio), int(num_points), max_offset
        points = self.num_points * len(self.heights)
        self.scorer = nn.Conv2d(bev_channels, 1, 3, padding=1)   # light: one output channel
        self.offsets = nn.Linear(bev_channels, points * 2)
        self.point_weights = nn.Linear(bev_channels, points)
        self.img_proj = nn.Conv2d(img_channels, embed_dims, 1)
        self.out_proj = nn.Sequential(nn.Linear(embed_dims, bev_channels), nn.LayerNorm(bev_channels))
        self.global_film = bool(global_film)
        if self.global_film:
            self.film = nn.Sequential(nn.Linear(img_channels, embed_dims), nn.ReLU(inplace=True),
                                      nn.Linear(embed_dims, 2 * bev_channels))

    def init_weights(self):
        super().init_weights()
        # the sampling points start spread evenly on a ring around the centre, at half range
        nn.init.zeros_(self.offsets.weight)
        angles = torch.arange(self.num_points) * (2 * torch.pi / self.num_points)
        ring = torch.stack([angles.cos(), angles.sin()], -1) * 0.5                          # [P, 2], in tanh units
        with torch.no_grad():
            self.offsets.bias.copy_(torch.atanh(ring).repeat(len(self.heights), 1).flatten())
        if self.global_film:
            # zero FiLM: the global path starts as the identity
            nn.init.zeros_(self.film[-1].weight)
            nn.init.zeros_(self.film[-1].bias)

    def num_kept(self, num_cells: int) -> int:
        return max(1, min(num_cells, int(round(self.keep_ratio * num_cells))))

    def forward(self, bev: Tensor, img_feats: Tensor, geometry: CameraGeometry) -> Tensor:
        """`geometry`: the batch's `CameraGeometry`."""
        if bev.dim() != 4 or img_feats.dim() != 5 or bev.shape[0] != img_feats.shape[0]:
            raise ValueError(f'SparseBEVFusionNeck expects bev [B, C, H, W] and img_feats [B, V, C, h, w], '
                             f'got {tuple(bev.shape)} and {tuple(img_feats.shape)}')
        b, c, h, w = bev.shape
        v = img_feats.shape[1]
        geometry = CameraGeometry.required(geometry, v, 'SparseBEVFusionNeck').to(dtype=bev.dtype)
        # keep the top-k cells
        score = self.scorer(bev).flatten(1)                                                  # [B, HW]
        k = self.num_kept(h * w)
        keep = score.topk(k, dim=1).indices                                                  # [B, k]
        flat = bev.flatten(2).transpose(1, 2)                                                # [B, HW, C]
        cells = torch.gather(flat, 1, keep[..., None].expand(-1, -1, c))                    # [B, k, C]
        # sampling points: cell centre + learned x / y offset, at every height
        z, p = len(self.heights), self.num_points
        centres = bev_cell_centres((h, w), self.pc_range, [0.0], bev.device, bev.dtype)       # [HW, 3]
        centres = centres[keep]                                                              # [B, k, 3]
        cell_size = bev.new_tensor([(self.pc_range[3] - self.pc_range[0]) / w,
                                    (self.pc_range[4] - self.pc_range[1]) / h])
        reach = cell_size if self.max_offset is None else bev.new_tensor([self.max_offset] * 2)
        offsets = torch.tanh(self.offsets(cells)).view(b, k, z, p, 2) * reach
        xy = centres[:, :, None, None, :2] + offsets
        zs = bev.new_tensor(self.heights).view(1, 1, z, 1, 1).expand(b, k, z, p, 1)
        points = torch.cat([xy, zs], -1).view(b, k * z * p, 3)
        uv, depth = project_points(points, geometry.lidar2img)                               # [B, V, N, 2]
        seen = geometry.visible(uv, depth).to(bev.dtype)                                     # [B, V, N]
        weights = torch.softmax(self.point_weights(cells), -1)                               # [B, k, Z*P]
        # weighted sum over points per view, then the mean over the views that see them
        feats = self.img_proj(img_feats.flatten(0, 1)).unflatten(0, (b, v))
        pad = geometry.input_shape
        total = feats.new_zeros(b, k, feats.shape[2])
        view_weight = feats.new_zeros(b, k)
        for view in range(v):   # one view at a time: [B, E, k * Z * P] samples at once
            samples = sample_image_features(feats[:, view:view + 1], uv[:, view:view + 1], pad)[:, 0]
            wv = weights * seen[:, view].view(b, k, z * p)
            total = total + torch.einsum('bkn,bekn->bke', wv, samples.view(b, -1, k, z * p))
            view_weight = view_weight + wv.sum(-1)
        fused = self.out_proj(total / view_weight.clamp(min=1e-6)[..., None])
        fused = fused * (view_weight > 0)[..., None].to(fused.dtype)                        # unseen: no update
        gate = torch.sigmoid(torch.gather(score, 1, keep))[..., None]
        # scatter the updates back; every other cell passes through unchanged
        update = torch.zeros_like(flat).scatter(1, keep[..., None].expand(-1, -1, c), gate * fused)
        out = bev + update.transpose(1, 2).view(b, c, h, w)
        if self.global_film:
            scale, shift = self.film(img_feats.mean((1, 3, 4))).chunk(2, -1)                 # [B, C] each
            out = out * (1 + scale[..., None, None]) + shift[..., None, None]
        return out
