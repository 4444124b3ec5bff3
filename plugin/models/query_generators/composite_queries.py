"""Several query generators side by side: their queries concatenated in the listed order.

In a camera+LiDAR model, queries at the BEV heatmap's peaks and at the camera-centre
peaks coexist, so a sample whose point cloud shows nothing still gets queries where the
cameras see objects.
"""
from typing import Sequence

import torch
from mmengine.model import BaseModule
from torch import nn

from mmdet3d.registry import MODELS

from .query_inputs import QueryInputs, QuerySet


@MODELS.register_module()
class CompositeQueries(BaseModule):
    """Args:
        generators: generator configs; keys the head fills in (num_classes, embed_dims,
            pc_range) are passed on to each unless it sets them.
    """

    def __init__(self, generators: Sequence[dict], init_cfg=None, **shared):
        super().__init__(init_cfg)
        if not generators:
            raise ValueError('CompositeQueries.generators is empty')
        self.generators = nn.ModuleList([MODELS.build({**shared, **dict(g)}) for g in generators])
        self.num_query = sum(g.num_query for g in self.generators)

    def forward(self, inputs: QueryInputs) -> QuerySet:
        sets = [g(inputs) for g in self.generators]
        ref = torch.cat([s.ref for s in sets], 1)
        content = labels = scores = None
        if any(s.content is not None for s in sets):
            dims = next(s.content for s in sets if s.content is not None).shape[-1]
            content = torch.cat([s.content if s.content is not None else ref.new_zeros(*s.ref.shape[:2], dims)
                                 for s in sets], 1)
        if any(s.labels is not None for s in sets):   # a query without a peak: class -1, score 1
            labels = torch.cat([s.labels if s.labels is not None else s.ref.new_full(s.ref.shape[:2], -1).long()
                                for s in sets], 1)
            scores = torch.cat([s.scores if s.scores is not None else s.ref.new_ones(s.ref.shape[:2])
                                for s in sets], 1)
        return QuerySet(ref, content, labels, scores)
