"""Query denoising (`build_dn_queries`): the DN queries and the attention mask."""
import torch

import plugin  # noqa: F401
from plugin.models.dense_heads import build_dn_queries

PC_RANGE = [-50.0, -50.0, -5.0, 50.0, 50.0, 3.0]


def test_dn_queries_and_mask_structure():
    boxes = [torch.tensor([[10., 0., -1., 4., 2., 1.5, 0.3, 1., 0.], [-20., 5., -1., 1., 1., 1.8, 0., 0., 0.]]),
             torch.tensor([[0., 30., -1., 10., 3., 3., 1., 0., 0.]])]
    labels = [torch.tensor([0, 7]), torch.tensor([3])]
    g = torch.Generator().manual_seed(0)
    ref, mask, dn = build_dn_queries(boxes, labels, num_queries=5, num_groups=3, pc_range=PC_RANGE,
                                     num_classes=10, generator=g)
    assert ref.shape == (2, 6, 3) and mask.shape == (11, 11) and dn.pad_size == 6
    assert mask[6:, :6].all() and not mask[6:, 6:].any() and not mask[:6, 6:].any()
    for grp in range(3):
        block = mask[grp * 2:(grp + 1) * 2, :6]
        own = torch.zeros(6, dtype=torch.bool)
        own[grp * 2:(grp + 1) * 2] = True
        assert (block == ~own).all()
    # sample 1 has one GT: its second slot in each group is padding
    assert dn.valid[1].tolist() == [True, False] * 3 and dn.valid[0].all()
    # noisy centres stay within half a box size of the GT gravity centre
    centre = ref[0, 0] * (torch.tensor(PC_RANGE[3:]) - torch.tensor(PC_RANGE[:3])) + torch.tensor(PC_RANGE[:3])
    assert (centre - torch.tensor([10., 0., -0.25])).abs().le(torch.tensor([2., 1., 0.75]) + 1e-5).all()
    assert set(dn.labels[0].tolist()) <= {0, 7, 10}
    assert build_dn_queries([torch.zeros(0, 9)], [torch.zeros(0)], 5, 3, PC_RANGE, 10)[0] is None
