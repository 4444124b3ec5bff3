"""BEV-sampled query content (CmtHead(query_content='bev')) and the training progress bar."""
import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import plugin  # noqa: F401
from plugin.engine import ProgressBarHook
from plugin.models.utils import sample_bev


def _numpy_bilinear(bev, x, y):
    """Reference: bilinear interpolation between cell centres, zero outside the canvas."""
    c, h, w = bev.shape
    px, py = x * w - 0.5, y * h - 0.5                     # continuous cell-centre coordinates
    x0, y0 = int(np.floor(px)), int(np.floor(py))
    out = np.zeros(c)
    for dx, dy in [(0, 0), (1, 0), (0, 1), (1, 1)]:
        xi, yi = x0 + dx, y0 + dy
        wt = (1 - abs(px - xi)) * (1 - abs(py - yi))
        if 0 <= xi < w and 0 <= yi < h:
            out += wt * bev[:, yi, xi]
    return out


def test_sample_bev_against_numpy_bilinear():
    rng = np.random.default_rng(0)
    bev = rng.normal(size=(2, 3, 5, 8))
    # a cell centre, a point between cells, the canvas edge, and an off-centre point
    xy = np.array([[[(2 + 0.5) / 8, (1 + 0.5) / 5], [3 / 8, 2 / 5], [0.01, 0.99], [0.37, 0.71]]] * 2)
    out = sample_bev(torch.tensor(bev), torch.tensor(xy)).numpy()
    assert out.shape == (2, 4, 3)
    np.testing.assert_allclose(out[1, 0], bev[1, :, 1, 2], atol=1e-12)      # rows are y, columns x
    for b in range(2):
        for n in range(4):
            np.testing.assert_allclose(out[b, n], _numpy_bilinear(bev[b], *xy[b, n]), atol=1e-12)


def _head(query_content, **kwargs):
    from mmdet3d.registry import MODELS
    attn = dict(type='BiasedMultiheadAttention', embed_dims=32, num_heads=2)
    layer = dict(type='PETRTransformerDecoderLayer', self_attn_cfg=attn, cross_attn_cfg=attn,
                 ffn_cfg=dict(embed_dims=32, feedforward_channels=64))
    classes = ['car', 'pedestrian']
    head = MODELS.build(dict(
        type='CmtHead', class_names=classes, tasks=[classes], pc_range=[-10, -10, -3, 10, 10, 1],
        in_channels_bev=16, in_channels_img=None, embed_dims=32, num_query=20, depth_num=4,
        transformer=dict(type='CmtTransformer', decoder=dict(type='PETRTransformerDecoder', num_layers=2,
                                                             layer_cfg=layer)),
        dn_cfg=None, query_content=query_content, **kwargs))
    head.init_weights()
    return head


def test_bev_query_content_reads_the_bev_map_at_the_reference_points():
    torch.manual_seed(0)
    head = _head('bev').eval()
    bev = torch.randn(1, 16, 6, 6)
    outs, _ = head(bev, None, [{}])
    assert outs[0]['cls'].shape == (2, 1, 20, 2) and torch.isfinite(outs[0]['codes']).all()
    # raising the BEV features in the cell under query 0's reference point changes its content
    ref = head.reference_points.weight[:, :2]
    grab = {}
    head.transformer.register_forward_pre_hook(lambda m, a: grab.setdefault('q', []).append(a[0].clone()))
    head(bev, None, [{}])
    cell = (ref[0] * 6).floor().long()
    bev2 = bev.clone()
    bev2[0, :, cell[1], cell[0]] += 5.0
    head(bev2, None, [{}])
    q1, q2 = grab['q']
    assert not torch.allclose(q1[0, 0], q2[0, 0])
    assert q1.abs().sum() > 0
    zeros = _head('zeros').eval()
    grab.clear()
    zeros.transformer.register_forward_pre_hook(lambda m, a: grab.setdefault('q', []).append(a[0].clone()))
    zeros(bev, None, [{}])
    assert grab['q'][0].abs().sum() == 0                  # CMT's own: no content


def test_bad_query_content_is_refused():
    with pytest.raises(ValueError, match='query_content'):
        _head('heatmap')


def test_progress_bar_hook_counts_iterations(monkeypatch):
    import plugin.engine.progress_bar_hook as mod
    err = io.StringIO()
    monkeypatch.setattr(mod.sys, 'stderr', err)
    hook = ProgressBarHook()
    runner = SimpleNamespace(max_iters=5, iter=1, epoch=0, val_loop=SimpleNamespace(dataloader=[0, 1, 2]))
    hook.before_train(runner)
    for i in range(4):
        hook.after_train_iter(runner, i, outputs=dict(loss=torch.tensor(1.5 - i * 0.1)))
    assert hook._bar.n == 5
    hook.before_val_epoch(runner)
    for i in range(3):
        hook.after_val_iter(runner, i)
    assert hook._eval is None                             # closed once every batch is done
    hook.after_train(runner)
    text = err.getvalue()
    assert '5/5' in text and 'loss=1.200' in text and 'val' in text


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
        loss = aux.loss(bev, [boxes], [labels])
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(loss) and loss.item() < 0.5 * first


def test_head_adds_the_heatmap_loss_when_configured():
    torch.manual_seed(0)
    head = _head('bev', aux_heatmap_cfg=dict()).train()      # an empty dict means "defaults"
    bev = torch.randn(1, 16, 6, 6)
    boxes = [torch.tensor([[1.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.1, 0.0, 0.0]])]
    labels = [torch.tensor([0])]
    outs, dn = head(bev, None, [{}], boxes, labels)
    losses = head.loss(outs, dn, boxes, labels, bev_feat=bev)
    assert 'loss_heatmap' in losses and torch.isfinite(losses['loss_heatmap'])
    assert 'loss_heatmap' not in _head('bev').loss(outs, dn, boxes, labels, bev_feat=bev)
