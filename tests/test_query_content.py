"""BEV-sampled query content (`CmtHead(query_content='bev')`)."""

import pytest
import torch

import plugin  # noqa: F401


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
