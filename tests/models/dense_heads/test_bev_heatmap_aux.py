"""The auxiliary BEV class heatmap (`BEVHeatmapAux`, `CmtHead(aux_heatmap_cfg=...)`)."""
import torch

import plugin  # noqa: F401
from tests.helpers.small_heads import small_cmt_head


def test_aux_heatmap_targets_peak_at_box_centres_and_loss_falls():
    from plugin.models.dense_heads import BEVHeatmapAux
    torch.manual_seed(0)
    aux = BEVHeatmapAux(in_channels=8, num_classes=3, pc_range=[-10, -20, -3, 10, 20, 1])
    aux.init_weights()
    # 20 m x 40 m on a 10 (rows, y) x 5 (columns, x) map: 4 m cells
    boxes = torch.tensor([[-9.0, 17.0, 0, 4.0, 2.0, 1.5, 0.3],    # cell (x 0, y 9)
                          [5.0, -3.0, 0, 1.0, 1.0, 1.8, 0.0],     # cell (x 3, y 4)
                          [30.0, 0.0, 0, 4.0, 2.0, 1.5, 0.0]])    # outside: ignored
    labels = torch.tensor([0, 2, 1])
    heat = aux.targets([boxes], [labels], 10, 5)
    assert heat.shape == (1, 3, 10, 5)
    peaks = (heat == 1).nonzero().tolist()
    assert sorted(peaks) == [[0, 0, 9, 0], [0, 2, 4, 3]]
    assert heat[0, 1].sum() == 0
    assert 0 < heat[0, 0, 8, 0] < 1                          # a Gaussian, not a single cell
    bev = torch.randn(1, 8, 10, 5)
    opt = torch.optim.Adam(aux.parameters(), 1e-2)
    first = None
    for _ in range(30):
        loss = aux.loss(aux(bev), [boxes], [labels])
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(loss) and loss.item() < 0.5 * first


def test_head_adds_the_heatmap_loss_when_configured():
    torch.manual_seed(0)
    head = small_cmt_head('bev', aux_heatmap_cfg=dict()).train()      # an empty dict means "defaults"
    bev = torch.randn(1, 16, 6, 6)
    boxes = [torch.tensor([[1.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.1, 0.0, 0.0]])]
    labels = [torch.tensor([0])]
    calls = []
    head.aux_heatmap.register_forward_hook(lambda *_: calls.append(1))
    outs, dn = head(bev, None, boxes, labels)
    losses = head.loss(outs, dn, boxes, labels)
    assert 'loss_heatmap' in losses and torch.isfinite(losses['loss_heatmap'])
    # one heatmap per step: the loss takes the one the forward pass computed
    assert len(calls) == 1 and torch.equal(losses['loss_heatmap'],
                                           head.aux_heatmap.loss(outs[0]['dense_heatmap'], boxes, labels))
    losses['loss_heatmap'].backward()
    assert head.aux_heatmap.net[0].weight.grad.abs().sum() > 0
    # with CMT's learned queries the heatmap is a training loss only: inference does not compute it
    outs, _ = head.eval()(bev, None, [{}])
    assert len(calls) == 1 and 'dense_heatmap' not in outs[0]
    plain = small_cmt_head('bev').train()
    outs, dn = plain(bev, None, [{}], boxes, labels)
    assert 'dense_heatmap' not in outs[0] and 'loss_heatmap' not in plain.loss(outs, dn, boxes, labels)
