"""Auxiliary class-heatmap loss on the LiDAR BEV map (Gaussian targets as in
CenterPoint: Yin et al., "Center-based 3D Object Detection and Tracking", CVPR 2021).

CMT's BEV features are otherwise trained only through the sparse set-prediction losses of
the few matched queries; a dense per-cell heatmap loss (CenterPoint, Yin et al. CVPR 2021;
used as an auxiliary in TransFusion / BEVFusion) supervises every cell from the first
iteration, which is what makes short schedules learn (see the synthetic configs). Unless
the head takes its queries from the heatmap (`CmtHead(query_init='heatmap')`, TransFusion),
nothing of it is used at inference, so the detector's outputs stay CMT's.
"""
from typing import List, Sequence

import torch
from mmengine.model import BaseModule, bias_init_with_prob
from torch import Tensor, nn

from mmdet3d.models.utils import clip_sigmoid, draw_heatmap_gaussian, gaussian_radius
from mmdet3d.registry import MODELS


@MODELS.register_module()
class BEVHeatmapAux(BaseModule):
    """3x3 conv -> BN -> ReLU -> 1x1 conv to one heatmap per class, Gaussian focal loss.

    Args:
        in_channels: channels of the BEV map handed to the CMT head.
        feat_channels: channels of the 3x3 conv.
        num_classes: heatmap channels (the head's class_names).
        pc_range: point-cloud range; the BEV map is assumed to cover its x/y extent.
        min_radius / min_overlap: Gaussian radius as in CenterPoint's train_cfg.
        loss: heatmap loss config.
    """

    def __init__(self, in_channels: int, num_classes: int, pc_range: Sequence[float],
                 feat_channels: int = 64, min_radius: int = 2, min_overlap: float = 0.1,
                 loss: dict = dict(type='mmdet.GaussianFocalLoss', reduction='mean', loss_weight=1.0),
                 init_cfg=None):
        super().__init__(init_cfg)
        self.num_classes, self.pc_range = num_classes, list(pc_range)
        self.min_radius, self.min_overlap = min_radius, min_overlap
        self.net = nn.Sequential(nn.Conv2d(in_channels, feat_channels, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(feat_channels), nn.ReLU(inplace=True),
                                 nn.Conv2d(feat_channels, num_classes, 1))
        self.loss_fn = MODELS.build(loss)

    def init_weights(self):
        super().init_weights()
        nn.init.constant_(self.net[-1].bias, bias_init_with_prob(0.1))

    def forward(self, bev_feat: Tensor) -> Tensor:
        """Heatmap logits [B, num_classes, H, W] (rows y, columns x, as the BEV map)."""
        return self.net(bev_feat)

    @torch.no_grad()
    def targets(self, gt_boxes: List[Tensor], gt_labels: List[Tensor], h: int, w: int) -> Tensor:
        """[B, num_classes, h, w] Gaussian peaks at the box centres (rows y, columns x)."""
        x0, y0, _, x1, y1, _ = self.pc_range
        cell_x, cell_y = (x1 - x0) / w, (y1 - y0) / h
        device = gt_boxes[0].device if gt_boxes else 'cpu'
        heat = torch.zeros(len(gt_boxes), self.num_classes, h, w, device=device)
        for b, (boxes, labels) in enumerate(zip(gt_boxes, gt_labels)):
            for box, label in zip(boxes.tolist(), labels.tolist()):
                if not 0 <= label < self.num_classes:
                    continue
                length, width = box[3] / cell_x, box[4] / cell_y
                if length <= 0 or width <= 0:
                    continue
                cx, cy = (box[0] - x0) / cell_x, (box[1] - y0) / cell_y
                if not (0 <= cx < w and 0 <= cy < h):
                    continue
                radius = gaussian_radius((torch.tensor(width), torch.tensor(length)), self.min_overlap)
                radius = max(self.min_radius, int(radius))
                draw_heatmap_gaussian(heat[b, label], torch.tensor([int(cx), int(cy)]), radius)
        return heat

    def loss(self, logits: Tensor, gt_boxes: List[Tensor], gt_labels: List[Tensor]) -> Tensor:
        """Gaussian focal loss of `logits` (this module's output) against the boxes' heatmaps."""
        pred = clip_sigmoid(logits.clone())     # mmdet3d's clip_sigmoid works in place; keep the caller's logits
        target = self.targets(gt_boxes, gt_labels, *pred.shape[-2:]).to(pred.dtype)
        num_pos = target.eq(1).float().sum().clamp(min=1)
        return self.loss_fn(pred, target, avg_factor=num_pos)
