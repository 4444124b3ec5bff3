"""Queries at the peaks of the LiDAR BEV class heatmap (TransFusion: Bai et al.,
"TransFusion: Robust LiDAR-Camera Fusion for 3D Object Detection with Transformers", CVPR
2022).

The k highest 3x3 local maxima of the head's auxiliary class heatmap (`BEVHeatmapAux`),
over all classes and cells, each become one query: its reference point at the peak's BEV
cell centre and at a learned height of the peak's class, its content an embedding of the
peak's class. Queries start where objects are in this sample, so none has to travel
across the map before it can be matched. The selection is not differentiable; the class
heights and embeddings are trained through the decoder.
"""
from typing import Sequence

import torch
from mmengine.model import BaseModule
from torch import nn

from mmdet3d.registry import MODELS

from ..utils.grids import local_maxima_topk
from .query_inputs import QueryInputs, QuerySet


@MODELS.register_module()
class BEVHeatmapQueries(BaseModule):
    """Args:
        num_query: peaks (queries) per sample.
        num_classes: heatmap channels (the head's classes).
        embed_dims: query content width.
        pc_range: the point-cloud range the BEV map covers (peaks are normalised to it).
    The head fills num_classes, embed_dims and pc_range in.
    """

    def __init__(self, num_query: int, num_classes: int, embed_dims: int, pc_range: Sequence[float],
                 init_cfg=None):
        super().__init__(init_cfg)
        self.num_query, self.pc_range = int(num_query), list(pc_range)
        self.class_embed = nn.Embedding(num_classes, embed_dims)
        self.class_height = nn.Embedding(num_classes, 1)

    def init_weights(self):
        super().init_weights()
        # zero: content from the BEV map alone, height mid-range, until training says otherwise
        nn.init.zeros_(self.class_embed.weight)
        nn.init.zeros_(self.class_height.weight)

    @torch.no_grad()
    def peaks(self, heatmap: torch.Tensor):
        """(x, y) [B, k, 2], class [B, k] and heatmap score [B, k] of the k =
        num_query highest 3x3 local maxima of the logits [B, C, H, W]; x, y are normalised
        cell centres (rows y, columns x)."""
        heat = heatmap.detach().sigmoid()
        b, c, h, w = heat.shape
        if self.num_query > c * h * w:
            raise ValueError(f'BEVHeatmapQueries: {self.num_query} queries exceed the {c} x {h} x {w} '
                             'heatmap entries')
        scores, index = local_maxima_topk(heat, self.num_query)                  # [B, k]
        labels, cell = index // (h * w), index % (h * w)
        xy = torch.stack([(cell % w + 0.5) / w, (cell // w + 0.5) / h], -1).float()   # not in half precision
        return xy, labels, scores

    def forward(self, inputs: QueryInputs) -> QuerySet:
        if inputs.bev_heatmap is None:
            raise ValueError('BEVHeatmapQueries needs the LiDAR BEV map and the head\'s auxiliary heatmap '
                             '(pts_bbox_head.aux_heatmap_cfg); a LiDAR failure is an empty point cloud, which '
                             'still gives one')
        xy, labels, scores = self.peaks(inputs.bev_heatmap)
        ref = torch.cat([xy, self.class_height(labels).sigmoid().to(xy.dtype)], -1)
        return QuerySet(ref, self.class_embed(labels), labels, scores)
