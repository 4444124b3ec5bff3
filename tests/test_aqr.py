"""AQR: window centres against nuscenes-devkit geometry, unseen queries, the
LAM-restricted attention against a dense masked reference, the bias generator's checks,
and the wiring into CmtHead and the configs."""
import math
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from conftest import REPO

import plugin  # noqa: F401
from plugin.models.layers import AQRWeightGenerator, AttentionBiasGenerator, KeyLayout, LocalWindowBias
from plugin.models.utils import CameraGeometry, bev_cells, first_view_cells

PC_RANGE = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]


def test_window_centres_match_devkit_projection(nusc, synthetic_root):
    """first_view_cells on our lidar2img == devkit's view_points with the sample's own
    calibrated_sensor / ego_pose records, for every GT box centre of a generated sample."""
    from nuscenes.utils.geometry_utils import BoxVisibility, view_points
    with open(osp.join(synthetic_root, 'nuscenes_infos_val.pkl'), 'rb') as f:
        info = pickle.load(f)['data_list'][0]
    cams = list(info['images'])
    lidar2img = []
    for cam in cams:
        k4 = np.eye(4)
        k4[:3, :3] = np.asarray(info['images'][cam]['cam2img'])[:3, :3]
        lidar2img.append(k4 @ np.asarray(info['images'][cam]['lidar2cam']))
    lidar2img = torch.tensor(np.stack(lidar2img)[None], dtype=torch.float64)
    sample = nusc.get('sample', info['token'])
    _, boxes, _ = nusc.get_sample_data(sample['data']['LIDAR_TOP'])
    centres = torch.tensor(np.stack([b.center for b in boxes])[None], dtype=torch.float64)
    first = nusc.get('sample_data', sample['data'][cams[0]])
    img_h, img_w = first['height'], first['width']
    feat = (img_h // 16, img_w // 16)
    cells = first_view_cells(centres, lidar2img, [(img_h, img_w)], (img_h, img_w), feat)[0]

    expected = []
    for box in boxes:
        found = [-1, 0, 0]
        for v, cam in enumerate(cams):
            _, cam_boxes, k = nusc.get_sample_data(sample['data'][cam], box_vis_level=BoxVisibility.NONE,
                                                   selected_anntokens=[box.token])
            c = cam_boxes[0].center
            uv = view_points(c[:, None], k, normalize=True)[:2, 0]
            if c[2] > 1e-2 and 0 <= uv[0] < img_w and 0 <= uv[1] < img_h:
                found = [v, int(uv[1] * feat[0] / img_h), int(uv[0] * feat[1] / img_w)]
                break
        expected.append(found)
    assert len(expected) >= 5
    assert cells.tolist() == expected
    assert any(e[0] == -1 for e in expected) or len({e[0] for e in expected}) > 1


def test_bev_cells_rows_are_y_columns_x():
    ref = torch.tensor([[[0.0, 0.0, 0.5], [0.999, 0.0, 0.5], [0.0, 0.999, 0.5], [0.51, 0.26, 0.5],
                         [1.5, -0.2, 0.5]]])
    assert bev_cells(ref, (8, 4))[0].tolist() == [[0, 0], [0, 3], [7, 0], [2, 2], [0, 3]]


def _front_camera():
    """One camera at the origin looking along +x, 64x32 image."""
    l2c = torch.tensor([[0., -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    k = torch.tensor([[32., 0, 32, 0], [0, 32, 16, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    return (k @ l2c)[None, None]


def test_unseen_queries_get_no_camera_window():
    pts = torch.tensor([[[10.0, 0.0, 0.0], [-10.0, 0.0, 0.0], [10.0, 30.0, 0.0]]])
    cells = first_view_cells(pts, _front_camera(), [(32, 64)], (32, 64), (2, 4))
    assert cells[0, 0].tolist() == [0, 1, 2]          # centre pixel (32, 16) -> cell (1, 2)
    assert cells[0, 1, 0] == -1 and cells[0, 2, 0] == -1   # behind / outside the image
    lw, cw = torch.zeros(1, 3), torch.ones(1, 3)
    bias = LocalWindowBias((4, 4), (1, 2, 4), torch.zeros(1, 3, 2, dtype=torch.long), cells, lw, cw, 3)
    dense = bias.to_dense()[0]
    assert dense[0, 16:].sum() > 0 and dense[1:, 16:].abs().sum() == 0


def _aqr_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    b, nq, c = 2, 9, 16
    bev_shape, cam_shape = (6, 5), (2, 3, 4)
    k = bev_shape[0] * bev_shape[1] + cam_shape[0] * cam_shape[1] * cam_shape[2]
    ref = torch.rand(b, nq, 3, generator=g)
    query, query_pos = torch.randn(b, nq, c, generator=g), torch.randn(b, nq, c, generator=g)
    memory, memory_pos = torch.randn(b, k, c, generator=g), torch.randn(b, k, c, generator=g)
    pad = torch.zeros(b, k, dtype=torch.bool)
    pad[1, -5:] = True
    # two cameras, looking along +x and -x
    front = _front_camera()[0, 0]
    back = front @ torch.diag(torch.tensor([-1., -1, 1, 1]))
    lidar2img = torch.stack([front, back])[None].expand(b, -1, -1, -1)
    geometry = CameraGeometry(lidar2img, torch.tensor([[32.0, 64.0]] * b), (32, 64))
    return ref, query, query_pos, memory, memory_pos, pad, KeyLayout.of(bev_shape, cam_shape), geometry


def _dense_lam_reference(aqr, ref, query, query_pos, memory, memory_pos, pad, layout, geometry):
    """The same layer with a dense boolean LAM built by explicit loops from the definition."""
    bev_c, cam_c = aqr.window_centres(ref, layout, geometry)
    bev_shape, cam_shape = layout
    b, nq, c = query.shape
    k = memory.shape[1]
    allowed = torch.zeros(b, nq, k, dtype=torch.bool)
    hb, wb = bev_shape
    v_, hc, wc = cam_shape
    rb, rc = aqr.window_sizes[0] // 2, aqr.window_sizes[1] // 2
    for i in range(b):
        for q in range(nq):
            for key in range(k):
                if key < hb * wb:
                    r, col = divmod(key, wb)
                    ok = abs(r - bev_c[i, q, 0]) <= rb and abs(col - bev_c[i, q, 1]) <= rb
                else:
                    view, rest = divmod(key - hb * wb, hc * wc)
                    r, col = divmod(rest, wc)
                    ok = (view == cam_c[i, q, 0] and abs(r - cam_c[i, q, 1]) <= rc
                          and abs(col - cam_c[i, q, 2]) <= rc)
                allowed[i, q, key] = bool(ok) and not pad[i, key]
    h = aqr.num_heads
    qh = aqr.q_proj(query + query_pos).view(b, nq, h, -1).transpose(1, 2)
    kh = aqr.k_proj(memory + memory_pos).view(b, k, h, -1).transpose(1, 2)
    vh = aqr.v_proj(memory).view(b, k, h, -1).transpose(1, 2)
    s = qh @ kh.transpose(-1, -2) / math.sqrt(c // h)
    s = s.masked_fill(~allowed[:, None], float('-inf'))
    p = torch.nan_to_num(torch.softmax(s, -1))
    attn = (p @ vh).transpose(1, 2).reshape(b, nq, c)
    x = aqr.norms[0](query + aqr.out_proj(attn))
    x = aqr.norms[1](aqr.ffn(x))
    return torch.tanh(aqr.weight_head(x)), allowed


@pytest.mark.parametrize('chunk_elements', [1, 1 << 19])
def test_lam_attention_equals_dense_masked_reference(chunk_elements):
    """Small budgets split the query groups down to single queries."""
    torch.manual_seed(0)
    aqr = AQRWeightGenerator(16, PC_RANGE, window_sizes=(3, 3), num_heads=4, chunk_elements=chunk_elements)
    aqr.init_weights()
    torch.nn.init.normal_(aqr.weight_head.weight)   # non-zero so the weights depend on the attention
    inputs = _aqr_inputs()
    out = aqr(*inputs)
    ref_w, allowed = _dense_lam_reference(aqr, *inputs)
    assert allowed.any(-1).all() and not allowed.all()          # the mask restricts something
    torch.testing.assert_close(torch.stack([out.lidar_weight, out.camera_weight], -1), ref_w,
                               atol=1e-5, rtol=1e-5)
    assert (out.cam_center[..., 0] == -1).any() and (out.cam_center[..., 0] >= 0).any()
    g_out = torch.autograd.grad(out.lidar_weight.sum() + out.camera_weight.sum(), aqr.k_proj.weight)[0]
    g_ref = torch.autograd.grad(ref_w.sum(), aqr.k_proj.weight)[0]
    torch.testing.assert_close(g_out, g_ref, atol=1e-5, rtol=1e-4)


def test_fresh_aqr_gives_zero_weights_and_range():
    aqr = AQRWeightGenerator(16, PC_RANGE, num_heads=4)
    aqr.init_weights()
    out = aqr(*_aqr_inputs())
    assert out.lidar_weight.abs().max() == 0 and out.camera_weight.abs().max() == 0
    torch.nn.init.normal_(aqr.weight_head.weight, std=10.0)
    out = aqr(*_aqr_inputs())
    assert out.lidar_weight.abs().max() <= 1 and out.lidar_weight.abs().max() > 0.5


@pytest.mark.parametrize('bad', [4, 0, -3, 2.5, True, '5'])
def test_invalid_window_sizes_fail_at_build_naming_the_key(bad):
    with pytest.raises(ValueError, match=r'attn_bias_cfg\.window_size'):
        AttentionBiasGenerator(window_size=bad)
    with pytest.raises(ValueError, match=r'aqr_cfg\.window_sizes'):
        AQRWeightGenerator(16, PC_RANGE, window_sizes=(5, bad))


def test_bias_generator_scale_and_windows():
    gen = AttentionBiasGenerator(window_size=5, cam_window_size=3, bias_scale=2.0, learnable_scale=True,
                                 max_scale=3.0)
    assert isinstance(gen.bias_scale, torch.nn.Parameter) and gen.window_sizes == (5, 3)
    layout = _aqr_inputs()[6]
    aqr = AQRWeightGenerator(16, PC_RANGE, num_heads=4)
    w = aqr(*_aqr_inputs())
    with torch.no_grad():
        gen.bias_scale.fill_(10.0)                                  # clamped to max_scale
    bias = gen(w._replace(lidar_weight=torch.ones_like(w.lidar_weight)), layout)
    assert (bias.bev_window, bias.cam_window) == (5, 3)
    assert float(bias.to_dense().detach().max()) == pytest.approx(3.0)
    with pytest.raises(ValueError, match='bias_scale'):
        AttentionBiasGenerator(bias_scale=-1.0)


def _head(aqr=True, cross_attn_drop=0.0):
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
        cfg.update(aqr_cfg=dict(window_sizes=(3, 3), num_heads=4), attn_bias_cfg=dict(window_size=3))
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def _head_inputs():
    g = torch.Generator().manual_seed(1)
    bev = torch.randn(1, 8, 6, 6, generator=g)
    img = torch.randn(1, 2, 8, 2, 4, generator=g)
    front = _front_camera()[0, 0]
    back = front @ torch.diag(torch.tensor([-1., -1, 1, 1]))
    metas = [dict(lidar2img=torch.stack([front, back]).numpy(), img_shape=(32, 64), input_shape=(32, 64))]
    return bev, img, metas


def test_aqr_head_refuses_cross_attention_dropout_at_build():
    """The exact bias routes have no attention dropout: a config asking for it fails at
    build, naming the key, instead of training without it."""
    with pytest.raises(ValueError, match=r'cross_attn_cfg\.attn_drop=0'):
        _head(cross_attn_drop=0.1)
    _head(aqr=False, cross_attn_drop=0.1)       # plain CMT keeps SDPA's dropout


def test_head_bias_reaches_every_cross_attention_and_starts_as_cmt():
    torch.manual_seed(0)
    head = _head()
    plain = _head(aqr=False)
    plain.load_state_dict(head.state_dict(), strict=False)
    bev, img, metas = _head_inputs()
    seen = []
    for layer in head.transformer.decoder.layers:
        layer.cross_attn.register_forward_pre_hook(
            lambda m, args, kwargs: seen.append(kwargs.get('attn_bias')), with_kwargs=True)
    outs, _ = head(bev, img, metas)
    assert len(seen) == 2 and all(isinstance(b, LocalWindowBias) for b in seen)
    ref, _ = plain(bev, img, metas)
    # zero-initialised weight head: no bias at the start, exactly CMT
    torch.testing.assert_close(outs[0]['cls'], ref[0]['cls'], atol=1e-5, rtol=1e-5)
    # once the AQR speaks, the output changes and the AQR gets gradients from the detector loss
    torch.nn.init.normal_(head.aqr.weight_head.weight, std=1.0)
    outs, _ = head(bev, img, metas)
    assert not torch.allclose(outs[0]['cls'], ref[0]['cls'], atol=1e-4)
    (outs[0]['cls'].sum() + outs[0]['codes'].sum()).backward()
    assert head.aqr.k_proj.weight.grad.abs().sum() > 0 and head.aqr.weight_head.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(o).all() for o in (outs[0]['cls'], outs[0]['codes']))


def test_head_needs_both_aqr_and_bias_cfg():
    from mmdet3d.registry import MODELS
    with pytest.raises(ValueError, match='aqr_cfg and pts_bbox_head.attn_bias_cfg go together'):
        MODELS.build(dict(type='CmtHead', class_names=['car'], tasks=[['car']], pc_range=PC_RANGE,
                          attn_bias_cfg=dict(window_size=5),
                          transformer=dict(type='CmtTransformer', decoder=dict(
                              type='PETRTransformerDecoder', num_layers=1, layer_cfg=dict(
                                  type='PETRTransformerDecoderLayer',
                                  self_attn_cfg=dict(type='BiasedMultiheadAttention', embed_dims=256, num_heads=8),
                                  cross_attn_cfg=dict(type='BiasedMultiheadAttention', embed_dims=256, num_heads=8),
                                  ffn_cfg=dict(embed_dims=256, feedforward_channels=512))))))


@pytest.mark.parametrize('config', ['configs/aqr/cmt-aqr_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py',
                                    'configs/synthetic/cmt-aqr_pillar080_r18-256x144_1xb2-10e_synthetic-nus-3d.py'])
def test_aqr_configs_and_window_override(config):
    from mmengine.config import Config
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(REPO, config))
    assert cfg.model.pts_bbox_head.attn_bias_cfg.window_size == 15
    cfg.merge_from_dict({'model.pts_bbox_head.attn_bias_cfg.window_size': 5})
    head = MODELS.build(cfg.model.pts_bbox_head)
    assert head.attn_bias_generator.window_sizes == (5, 5)
    assert head.aqr.window_sizes == (5, 15) and head.aqr.num_heads == 4
    cfg.merge_from_dict({'model.pts_bbox_head.attn_bias_cfg.window_size': 4})
    with pytest.raises(ValueError, match=r'attn_bias_cfg\.window_size'):
        MODELS.build(cfg.model.pts_bbox_head)
