"""`CmtHead`: BEV-sampled query content, and the AQR bias reaching every decoder
cross-attention."""
import pytest
import torch

import plugin  # noqa: F401
from aqr_attention import LocalWindowBias
from plugin.models.utils.camera_geometry import CameraGeometry
from tests.helpers.aqr_inputs import PC_RANGE, front_camera
from tests.helpers.small_heads import small_cmt_head


def _aqr_head(aqr=True, cross_attn_drop=0.0):
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    attn = dict(type='BiasedMultiheadAttention', embed_dims=32, num_heads=4)
    cross = dict(attn, attn_drop=cross_attn_drop)
    cfg = dict(type='CmtHead', class_names=['car', 'pedestrian'], tasks=[['car', 'pedestrian']],
               pc_range=PC_RANGE, in_channels_bev=8, in_channels_img=8, embed_dims=32, num_query=12,
               depth_num=4, dn_cfg=None,
               transformer=dict(type='CmtTransformer', decoder=dict(
                   type='PETRTransformerDecoder', num_layers=2,
                   layer_cfg=dict(type='PETRTransformerDecoderLayer', self_attn_cfg=attn, cross_attn_cfg=cross,
                                  ffn_cfg=dict(embed_dims=32, feedforward_channels=64)))))
    if aqr:
        cfg.update(aqr_cfg=dict(router=dict(window_sizes=(3, 3), num_heads=4), bias=dict(window_size=3)))
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def _aqr_head_inputs():
    g = torch.Generator().manual_seed(1)
    bev = torch.randn(1, 8, 6, 6, generator=g)
    img = torch.randn(1, 2, 8, 2, 4, generator=g)
    front = front_camera()[0, 0]
    back = front @ torch.diag(torch.tensor([-1., -1, 1, 1]))
    metas = [dict(lidar2img=torch.stack([front, back]).numpy(), img_shape=(32, 64), input_shape=(32, 64))]
    return bev, img, CameraGeometry.from_metas(metas)


def test_aqr_head_refuses_cross_attention_dropout_at_build():
    """The exact bias routes have no attention dropout: a config asking for it fails at
    build, naming the key, instead of training without it."""
    with pytest.raises(ValueError, match=r'cross_attn_cfg\.attn_drop=0'):
        _aqr_head(cross_attn_drop=0.1)
    _aqr_head(aqr=False, cross_attn_drop=0.1)       # plain CMT keeps SDPA's dropout


def test_head_bias_reaches_every_cross_attention_and_starts_as_cmt():
    torch.manual_seed(0)
    head = _aqr_head()
    plain = _aqr_head(aqr=False)
    plain.load_state_dict(head.state_dict(), strict=False)
    bev, img, geometry = _aqr_head_inputs()
    seen = []
    for layer in head.transformer.decoder.layers:
        layer.cross_attn.register_forward_pre_hook(
            lambda m, args, kwargs: seen.append(kwargs.get('attn_bias')), with_kwargs=True)
    outs, _ = head(bev, img, geometry=geometry)
    assert len(seen) == 2 and all(isinstance(b, LocalWindowBias) for b in seen)
    ref, _ = plain(bev, img, geometry=geometry)
    # zero-initialised weight head: no bias at the start, exactly CMT
    torch.testing.assert_close(outs[0]['cls'], ref[0]['cls'], atol=1e-5, rtol=1e-5)
    # once the AQR speaks, the output changes and the AQR gets gradients from the detector loss
    torch.nn.init.normal_(head.aqr.weight_head.weight, std=1.0)
    outs, _ = head(bev, img, geometry=geometry)
    assert not torch.allclose(outs[0]['cls'], ref[0]['cls'], atol=1e-4)
    (outs[0]['cls'].sum() + outs[0]['codes'].sum()).backward()
    assert head.aqr.layer.cross_attn.k_proj.weight.grad.abs().sum() > 0
    assert head.aqr.weight_head.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(o).all() for o in (outs[0]['cls'], outs[0]['codes']))


def test_aqr_is_one_key_with_a_router_and_a_bias():
    """aqr_cfg takes router=dict(...) and bias=dict(...); any other entry (such as the
    router's own options one level too high) is an error naming the key."""
    from mmdet3d.registry import MODELS
    with pytest.raises(ValueError, match=r"pts_bbox_head.aqr_cfg takes router=dict\(...\) and bias=dict\(...\), got "
                                         r"\['window_sizes'\]"):
        MODELS.build(dict(type='CmtHead', class_names=['car'], tasks=[['car']], pc_range=PC_RANGE,
                          aqr_cfg=dict(window_sizes=(5, 5), bias=dict(window_size=5)),
                          transformer=dict(type='CmtTransformer', decoder=dict(
                              type='PETRTransformerDecoder', num_layers=1, layer_cfg=dict(
                                  type='PETRTransformerDecoderLayer',
                                  self_attn_cfg=dict(type='BiasedMultiheadAttention', embed_dims=256, num_heads=8),
                                  cross_attn_cfg=dict(type='BiasedMultiheadAttention', embed_dims=256, num_heads=8),
                                  ffn_cfg=dict(embed_dims=256, feedforward_channels=512))))))


def test_bev_query_content_reads_the_bev_map_at_the_reference_points():
    torch.manual_seed(0)
    head = small_cmt_head('bev').eval()
    bev = torch.randn(1, 16, 6, 6)
    outs, _ = head(bev, None)
    assert outs[0]['cls'].shape == (2, 1, 20, 2) and torch.isfinite(outs[0]['codes']).all()
    # raising the BEV features in the cell under query 0's reference point changes its content
    ref = head.reference_points.weight[:, :2]
    grab = {}
    head.transformer.register_forward_pre_hook(lambda m, a: grab.setdefault('q', []).append(a[0].clone()))
    head(bev, None)
    cell = (ref[0] * 6).floor().long()
    bev2 = bev.clone()
    bev2[0, :, cell[1], cell[0]] += 5.0
    head(bev2, None)
    q1, q2 = grab['q']
    assert not torch.allclose(q1[0, 0], q2[0, 0])
    assert q1.abs().sum() > 0
    zeros = small_cmt_head('zeros').eval()
    grab.clear()
    zeros.transformer.register_forward_pre_hook(lambda m, a: grab.setdefault('q', []).append(a[0].clone()))
    zeros(bev, None, [{}])
    assert grab['q'][0].abs().sum() == 0                  # CMT's own: no content


def test_bad_query_content_is_refused():
    with pytest.raises(ValueError, match='query_content'):
        small_cmt_head('heatmap')
