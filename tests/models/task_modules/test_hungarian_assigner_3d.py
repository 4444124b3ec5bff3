"""`HungarianAssigner3D` on a hand-made case."""
import torch

import plugin  # noqa: F401
from plugin.models.task_modules import HungarianAssigner3D, encode_boxes


def test_hungarian_assigner_on_hand_made_case():
    assigner = HungarianAssigner3D()
    gt_codes = encode_boxes(torch.tensor([[0., 0., 0., 4., 2., 1.5, 0., 0., 0.],
                                          [10., 10., 0., 1., 1., 1., 0., 0., 0.]]))
    gt_labels = torch.tensor([0, 1])
    codes = torch.stack([gt_codes[1] + 0.05, torch.zeros(10) + 50, gt_codes[0] - 0.05])
    logits = torch.tensor([[-5., 5.], [0., 0.], [5., -5.]])
    assigned, cost = assigner.assign(logits, codes, gt_labels, gt_codes)
    assert assigned.tolist() == [1, -1, 0] and cost.shape == (3, 2)
    none, _ = assigner.assign(logits, codes, torch.zeros(0, dtype=torch.long), torch.zeros(0, 10))
    assert (none == -1).all()
