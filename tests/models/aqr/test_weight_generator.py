"""`AQRWeightGenerator`: window centres against nuscenes-devkit geometry, the BEV cell
order, queries no camera sees, the LAM-restricted attention against a dense masked
reference, and its zero start."""
import math
import os.path as osp
import pickle

import numpy as np
import pytest
import torch

import plugin  # noqa: F401
from aqr_attention import LocalWindowBias
from plugin.models.aqr import AQRWeightGenerator
from plugin.models.utils import bev_cells, first_view_cells
from tests.helpers.aqr_inputs import PC_RANGE, aqr_inputs, front_camera


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


def test_unseen_queries_get_no_camera_window():
    pts = torch.tensor([[[10.0, 0.0, 0.0], [-10.0, 0.0, 0.0], [10.0, 30.0, 0.0]]])
    cells = first_view_cells(pts, front_camera(), [(32, 64)], (32, 64), (2, 4))
    assert cells[0, 0].tolist() == [0, 1, 2]          # centre pixel (32, 16) -> cell (1, 2)
    assert cells[0, 1, 0] == -1 and cells[0, 2, 0] == -1   # behind / outside the image
    lw, cw = torch.zeros(1, 3), torch.ones(1, 3)
    bias = LocalWindowBias((4, 4), (1, 2, 4), torch.zeros(1, 3, 2, dtype=torch.long), cells, lw, cw, 3)
    dense = bias.to_dense()[0]
    assert dense[0, 16:].sum() > 0 and dense[1:, 16:].abs().sum() == 0


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
    lam = aqr.layer.cross_attn
    qh = lam.q_proj(query + query_pos).view(b, nq, h, -1).transpose(1, 2)
    kh = lam.k_proj(memory + memory_pos).view(b, k, h, -1).transpose(1, 2)
    vh = lam.v_proj(memory).view(b, k, h, -1).transpose(1, 2)
    s = qh @ kh.transpose(-1, -2) / math.sqrt(c // h)
    s = s.masked_fill(~allowed[:, None], float('-inf'))
    p = torch.nan_to_num(torch.softmax(s, -1))
    attn = (p @ vh).transpose(1, 2).reshape(b, nq, c)
    x = aqr.layer.norms[0](query + lam.out_proj(attn))
    x = aqr.layer.norms[1](aqr.layer.ffn(x))
    return torch.tanh(aqr.weight_head(x)), allowed


@pytest.mark.parametrize('chunk_elements', [1, 1 << 19])
def test_lam_attention_equals_dense_masked_reference(chunk_elements):
    """Small budgets split the query groups down to single queries."""
    torch.manual_seed(0)
    aqr = AQRWeightGenerator(16, PC_RANGE, window_sizes=(3, 3), num_heads=4, chunk_elements=chunk_elements)
    aqr.init_weights()
    torch.nn.init.normal_(aqr.weight_head.weight)   # non-zero so the weights depend on the attention
    inputs = aqr_inputs()
    out = aqr(*inputs)
    ref_w, allowed = _dense_lam_reference(aqr, *inputs)
    assert allowed.any(-1).all() and not allowed.all()          # the mask restricts something
    torch.testing.assert_close(torch.stack([out.lidar_weight, out.camera_weight], -1), ref_w,
                               atol=1e-5, rtol=1e-5)
    assert (out.cam_center[..., 0] == -1).any() and (out.cam_center[..., 0] >= 0).any()
    g_out = torch.autograd.grad(out.lidar_weight.sum() + out.camera_weight.sum(), aqr.layer.cross_attn.k_proj.weight)[0]
    g_ref = torch.autograd.grad(ref_w.sum(), aqr.layer.cross_attn.k_proj.weight)[0]
    torch.testing.assert_close(g_out, g_ref, atol=1e-5, rtol=1e-4)


def test_fresh_aqr_gives_zero_weights_and_range():
    aqr = AQRWeightGenerator(16, PC_RANGE, num_heads=4)
    aqr.init_weights()
    out = aqr(*aqr_inputs())
    assert out.lidar_weight.abs().max() == 0 and out.camera_weight.abs().max() == 0
    torch.nn.init.normal_(aqr.weight_head.weight, std=10.0)
    out = aqr(*aqr_inputs())
    assert out.lidar_weight.abs().max() <= 1 and out.lidar_weight.abs().max() > 0.5
