"""NMS-free decoding of set predictions (DETR3D: Wang et al., CoRL 2021, as in
CMT): top-k over queries x classes."""
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor

from mmdet3d.registry import TASK_UTILS

from .box3d_coding import decode_boxes


@TASK_UTILS.register_module()
class NMSFreeCoder:
    """Keeps the `max_num` best (query, class) pairs, inside `post_center_range`.

    Args:
        max_num: detections kept per sample.
        score_threshold: optional minimum score.
        post_center_range: (x_min, y_min, z_min, x_max, y_max, z_max) for box centres.
    """

    def __init__(self, max_num: int = 300, score_threshold: Optional[float] = None,
                 post_center_range: Optional[Sequence[float]] = None, num_classes: int = 10):
        self.max_num, self.score_threshold = max_num, score_threshold
        self.post_center_range = post_center_range
        self.num_classes = num_classes

    def decode_single(self, cls_logits: Tensor, box_codes: Tensor,
                      score_prior: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """cls_logits [Q, C], box_codes [Q, 10] -> boxes [K, 9], scores [K], labels [K].
        score_prior [Q, C] (optional) multiplies the class probabilities before the top-k
        (TransFusion's heatmap-score rescoring)."""
        num_cls = cls_logits.shape[1]
        probs = cls_logits.sigmoid()
        if score_prior is not None:
            if score_prior.shape != probs.shape:
                raise ValueError(f'NMSFreeCoder: score_prior {tuple(score_prior.shape)} does not match the '
                                 f'class logits {tuple(probs.shape)}')
            probs = probs * score_prior.to(probs.dtype)
        scores, idx = probs.flatten().topk(min(self.max_num, cls_logits.numel()))
        labels, query = idx % num_cls, torch.div(idx, num_cls, rounding_mode='floor')
        boxes = decode_boxes(box_codes[query])
        keep = torch.ones_like(scores, dtype=torch.bool)
        if self.score_threshold is not None:
            keep &= scores > self.score_threshold
        if self.post_center_range is not None:
            r = boxes.new_tensor(self.post_center_range)
            centre = boxes[:, :3].clone()
            centre[:, 2] = boxes[:, 2] + boxes[:, 5] / 2
            keep &= ((centre >= r[:3]) & (centre <= r[3:])).all(1)
        return dict(bboxes=boxes[keep], scores=scores[keep], labels=labels[keep])
