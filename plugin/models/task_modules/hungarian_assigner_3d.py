"""One-to-one assignment of queries to 3D ground truth (DETR3D: Wang et al., CoRL 2021;
CMT: Yan et al., ICCV 2023).

Cost = focal classification cost (mmdet's FocalLossCost, weight 2.0 in CMT) + L1 on the
first 8 box codes (centre, log size, sin/cos; weight 0.25), each code scaled by
`code_weights` (CMT: 2 for x and y, 1 for the rest) as the regression loss weighs them,
minimised by the Hungarian algorithm (scipy's linear_sum_assignment). The cost is computed
in float32 whatever the autocast state: FocalLossCost's eps (1e-12) underflows in fp16.
"""
from typing import Optional, Sequence, Tuple

import torch
from mmengine.structures import InstanceData
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mmdet3d.registry import TASK_UTILS


@TASK_UTILS.register_module()
class BBox3DL1Cost:
    """L1 distance between box codes ([N, D] vs [M, D] -> [N, M]) times `weight`."""

    def __init__(self, weight: float = 0.25, code_dims: int = 8):
        self.weight, self.code_dims = weight, code_dims

    def __call__(self, pred_codes: Tensor, gt_codes: Tensor) -> Tensor:
        d = self.code_dims
        return torch.cdist(pred_codes[:, :d], gt_codes[:, :d], p=1) * self.weight


@TASK_UTILS.register_module()
class HungarianAssigner3D:
    """Returns, for each query, the index of its GT (-1: background)."""

    def __init__(self, cls_cost: dict = dict(type='mmdet.FocalLossCost', weight=2.0),
                 reg_cost: dict = dict(type='BBox3DL1Cost', weight=0.25),
                 code_weights: Optional[Sequence[float]] = None):
        self.cls_cost = TASK_UTILS.build(cls_cost)
        self.reg_cost = TASK_UTILS.build(reg_cost)
        self.code_weights = None if code_weights is None else torch.tensor(code_weights, dtype=torch.float32)

    @torch.no_grad()
    def assign(self, cls_logits: Tensor, box_codes: Tensor, gt_labels: Tensor,
               gt_codes: Tensor) -> Tuple[Tensor, Tensor]:
        """cls_logits [Q, C], box_codes [Q, D], gt_labels [M], gt_codes [M, D].

        Returns (assigned_gt [Q] long, -1 for background; cost matrix [Q, M]).
        """
        num_q = cls_logits.shape[0]
        assigned = cls_logits.new_full((num_q,), -1, dtype=torch.long)
        if gt_labels.numel() == 0:
            return assigned, cls_logits.new_zeros(num_q, 0)
        cls_logits, box_codes, gt_codes = cls_logits.float(), box_codes.float(), gt_codes.float()
        if self.code_weights is not None:
            w = self.code_weights.to(box_codes.device)[:box_codes.shape[1]]
            box_codes, gt_codes = box_codes * w, gt_codes * w
        with torch.autocast(box_codes.device.type, enabled=False):
            cost = self.cls_cost(InstanceData(scores=cls_logits), InstanceData(labels=gt_labels)) \
                + self.reg_cost(box_codes, gt_codes)
        cost = torch.nan_to_num(cost, nan=1e5, posinf=1e5, neginf=-1e5)
        rows, cols = linear_sum_assignment(cost.detach().cpu().double().numpy())
        assigned[torch.as_tensor(rows, device=assigned.device)] = torch.as_tensor(cols, device=assigned.device)
        return assigned, cost
