"""Query denoising (DN-DETR: Li et al., CVPR 2022, as used by CMT) for 3D
reference points.

Each ground-truth box gives `num_groups` noisy copies of its centre (noise up to
`box_noise_scale` x half its size per axis). Copies whose relative noise norm exceeds
`split` are trained as "no object" (label = num_classes), the others to recover their
box. The DN queries come first, then the matching queries; the self-attention mask
keeps the matching queries from seeing any DN query (they would read the answers) and
each DN group from seeing the other groups.
"""
from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor

from ..utils.projection import normalize_points


@dataclass
class DNMeta:
    pad_size: int              # number of DN queries (groups x max GT per sample)
    num_groups: int
    labels: Tensor             # [B, pad_size] long; num_classes = no object / padding
    classes: Tensor            # [B, pad_size] long: the GT class of every slot, far copies too
    box_targets: Tensor        # [B, pad_size, 9] GT boxes (LiDAR, bottom centre, velocity)
    valid: Tensor              # [B, pad_size] bool: a real (not padding) DN query


def build_dn_queries(gt_boxes: List[Tensor], gt_labels: List[Tensor], num_queries: int,
                     num_groups: int, pc_range, num_classes: int, box_noise_scale: float = 1.0,
                     split: float = 0.75, generator: torch.Generator = None):
    """Noisy reference points, the self-attention mask and the DN targets.

    Args:
        gt_boxes: per sample [M_i, 9] LiDAR boxes (x, y, z_bottom, l, w, h, yaw, vx, vy).
        gt_labels: per sample [M_i] labels.
        num_queries: matching queries appended after the DN ones.
    Returns:
        (dn_ref [B, pad, 3] normalised, attn_mask [pad + Q, pad + Q] bool, True = blocked,
         DNMeta) or (None, None, None) when the batch has no GT or num_groups is 0.
    """
    max_gt = max((len(b) for b in gt_boxes), default=0)
    if max_gt == 0 or num_groups <= 0:
        return None, None, None
    device = gt_boxes[0].device
    batch = len(gt_boxes)
    pad = num_groups * max_gt
    ref = torch.zeros(batch, pad, 3, device=device)
    labels = torch.full((batch, pad), num_classes, dtype=torch.long, device=device)
    classes = labels.clone()
    targets = torch.zeros(batch, pad, 9, device=device)
    valid = torch.zeros(batch, pad, dtype=torch.bool, device=device)
    for b, (boxes, lab) in enumerate(zip(gt_boxes, gt_labels)):
        m = len(boxes)
        if m == 0:
            continue
        boxes = boxes.to(device).float()
        centre = torch.cat([boxes[:, :2], boxes[:, 2:3] + boxes[:, 5:6] / 2], 1)  # gravity centre
        half = boxes[:, 3:6] / 2 * box_noise_scale
        noise = torch.rand(num_groups, m, 3, generator=generator, device='cpu').to(device) * 2 - 1
        noisy = centre[None] + noise * half[None]                                   # [G, m, 3]
        far = noise.norm(dim=-1) > split                                             # [G, m]
        slots = (torch.arange(num_groups, device=device)[:, None] * max_gt
                 + torch.arange(m, device=device)[None]).flatten()
        ref[b, slots] = normalize_points(noisy.reshape(-1, 3), pc_range).clamp(0, 1)
        labels[b, slots] = torch.where(far.flatten(), torch.full_like(slots, num_classes),
                                       lab.to(device).long().repeat(num_groups))
        classes[b, slots] = lab.to(device).long().repeat(num_groups)
        targets[b, slots] = boxes.repeat(num_groups, 1)
        valid[b, slots] = True
    total = pad + num_queries
    mask = torch.zeros(total, total, dtype=torch.bool, device=device)
    mask[pad:, :pad] = True                                  # matching queries never see DN
    for g in range(num_groups):
        lo, hi = g * max_gt, (g + 1) * max_gt
        mask[lo:hi, :lo] = True                              # nor does a group see the others
        mask[lo:hi, hi:pad] = True
    return ref, mask, DNMeta(pad, num_groups, labels, classes, targets, valid)
