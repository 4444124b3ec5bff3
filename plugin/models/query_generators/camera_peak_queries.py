"""Queries at the peaks of the camera-centre heatmaps, lifted along their pixel rays.

The camera counterpart of TransFusion's BEV heatmap queries, after the 2D-detection-seeded
3D queries of Far3D (Jiang et al., "Far3D: Expanding the Horizon for Surround-view 3D
Object Detection", AAAI 2024) and MV2D (Wang et al., ICCV 2023): the k highest 3x3 local
maxima of `ImageCentreHead`'s class heatmaps, over all views, classes and cells, each
become one query. Its pixel is the peak cell's corner plus the predicted sub-cell offset,
lifted along that pixel's ray to the predicted depth of the 3D centre; its content is the
image feature at the peak (through a linear layer) plus an embedding of the peak's class.

Early in training the predicted depths are noise; with `use_gt_depth` (switched by
`UseGtDepthHook`, as Far3D's hook of the same name), a peak on a cell that holds a
ground-truth centre takes that centre's depth and offset instead, so the decoder learns
from queries that start on the objects. Selection and lifting are not differentiable;
the content is (into the camera features).
"""
from typing import Sequence

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet3d.registry import MODELS

from ..utils.grids import view_peaks
from ..utils.projection import normalize_points
from .query_inputs import QueryInputs, QuerySet


def lift_to_points(uv: Tensor, depth: Tensor, lidar2img: Tensor) -> Tensor:
    """LiDAR-frame points [N, 3] at `depth` [N] (metres along the optical axis) on the rays
    through pixels uv [N, 2] of cameras lidar2img [N, 4, 4] (one per point)."""
    d = depth.double()[:, None]
    pix = torch.cat([uv.double() * d, d, torch.ones_like(d)], -1)                 # (u d, v d, d, 1)
    return torch.linalg.solve(lidar2img.double(), pix[..., None])[:, :3, 0]


@MODELS.register_module()
class CameraPeakQueries(BaseModule):
    """Args:
        num_query: peaks (queries) per sample, over all views.
        in_channels: channels of the camera feature maps (the content is read from them).
        num_classes / embed_dims / pc_range: filled in by the head.
        use_gt_depth: start with ground-truth depths in training (see the module docstring);
            `UseGtDepthHook` switches it per epoch.
    """

    def __init__(self, num_query: int, in_channels: int, num_classes: int, embed_dims: int,
                 pc_range: Sequence[float], use_gt_depth: bool = False, init_cfg=None):
        super().__init__(init_cfg)
        self.num_query, self.pc_range, self.use_gt_depth = int(num_query), list(pc_range), bool(use_gt_depth)
        self.content_proj = nn.Linear(in_channels, embed_dims)
        self.class_embed = nn.Embedding(num_classes, embed_dims)

    def init_weights(self):
        super().init_weights()
        nn.init.zeros_(self.class_embed.weight)

    @torch.no_grad()
    def peaks(self, heatmap_logits: Tensor):
        """class [B, k], (view, row, col) [B, k, 3] and heatmap score [B, k] of
        the k = num_query highest 3x3 local maxima of the logits [B, V, K, h, w] over all
        views, classes and cells."""
        b, v, c, h, w = heatmap_logits.shape
        if self.num_query > v * c * h * w:
            raise ValueError(f'CameraPeakQueries: {self.num_query} queries exceed the {v} x {c} x {h} x {w} '
                             'camera heatmap entries')
        scores, labels, where = view_peaks(heatmap_logits.detach().float().sigmoid(), self.num_query)
        return labels, where, scores

    @torch.no_grad()
    def lift(self, where: Tensor, centre: dict, inputs: QueryInputs) -> Tensor:
        """Normalised reference points [B, k, 3] of the peaks `where` (view, row, col) [B, k, 3]."""
        geometry = inputs.geometry
        b, k = where.shape[:2]
        h, w = centre['log_depth'].shape[-2:]
        bi = torch.arange(b, device=where.device)[:, None].expand(b, k)
        view, row, col = where.unbind(-1)
        offset = centre['offset'].float()[bi, view, :, row, col]                      # [B, k, 2] cells
        depth = centre['log_depth'].float()[bi, view, row, col].exp()                 # [B, k]
        targets = centre.get('targets')
        if self.training and self.use_gt_depth:
            if targets is None:
                raise ValueError('CameraPeakQueries.use_gt_depth needs the centre targets of the batch '
                                 "(ImageCentreHead.targets, passed as img_centre['targets'] in training)")
            hit = targets.mask[bi, view, row, col]
            depth = torch.where(hit, targets.depth[bi, view, row, col], depth)
            offset = torch.where(hit[..., None], targets.offset.permute(0, 1, 3, 4, 2)[bi, view, row, col], offset)
        stride = offset.new_tensor([geometry.input_shape[1] / w, geometry.input_shape[0] / h])
        uv = (torch.stack([col, row], -1).to(offset.dtype) + offset) * stride
        points = lift_to_points(uv.flatten(0, 1), depth.flatten(), geometry.lidar2img[bi, view].flatten(0, 1))
        return normalize_points(points.float().view(b, k, 3), self.pc_range).clamp(0, 1)

    def forward(self, inputs: QueryInputs) -> QuerySet:
        centre = inputs.img_centre
        if centre is None or inputs.img_feats is None or inputs.geometry is None:
            raise ValueError('CameraPeakQueries needs camera feature maps and the outputs of '
                             'model.img_centre_head (ImageCentreHead)')
        labels, where, scores = self.peaks(centre['heatmap'])
        ref = self.lift(where, centre, inputs)
        b, k = labels.shape
        bi = torch.arange(b, device=labels.device)[:, None].expand(b, k)
        feats = inputs.img_feats[bi, where[..., 0], :, where[..., 1], where[..., 2]]   # [B, k, C]
        return QuerySet(ref, self.content_proj(feats) + self.class_embed(labels).to(feats.dtype), labels, scores)
