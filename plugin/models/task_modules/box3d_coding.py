"""CMT's box parameterisation (normalize_bbox / denormalize_bbox in the official code).

mmdet3d 1.x LiDAR box (x, y, z_bottom, l, w, h, yaw[, vx, vy]) <-> regression target
(cx, cy, cz_gravity, log l, log w, log h, sin yaw, cos yaw[, vx, vy]). Centres stay in
metres; sizes are logs so that a relative size error costs the same for a bus and a cone.
"""
import torch
from torch import Tensor


def encode_boxes(boxes: Tensor) -> Tensor:
    """[N, 7 or 9] LiDAR boxes (bottom centre) -> [N, 8 or 10] targets."""
    x, y, z, l, w, h, yaw = boxes[:, :7].unbind(-1)
    parts = [x, y, z + h / 2, l.clamp(min=1e-3).log(), w.clamp(min=1e-3).log(),
             h.clamp(min=1e-3).log(), yaw.sin(), yaw.cos()]
    if boxes.shape[1] > 7:
        parts += [boxes[:, 7], boxes[:, 8]]
    return torch.stack(parts, -1)


def decode_boxes(codes: Tensor) -> Tensor:
    """[..., 8 or 10] -> [..., 7 or 9] LiDAR boxes with bottom centres."""
    cx, cy, cz, ll, lw, lh, s, c = codes[..., :8].unbind(-1)
    l, w, h = ll.exp(), lw.exp(), lh.exp()
    parts = [cx, cy, cz - h / 2, l, w, h, torch.atan2(s, c)]
    if codes.shape[-1] > 8:
        parts += [codes[..., 8], codes[..., 9]]
    return torch.stack(parts, -1)
