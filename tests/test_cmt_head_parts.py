"""Projection, position embeddings, query denoising, assigner and coder of the CMT head."""
import math

import numpy as np
import pytest
import torch

import plugin  # noqa: F401
from plugin.models.dense_heads import build_dn_queries
from plugin.models.task_modules import HungarianAssigner3D, NMSFreeCoder, decode_boxes, encode_boxes
from plugin.models.utils import (CameraRayEmbedding, depth_bins, lift_pixels, project_points,
                                 sine_embedding, visible_mask)

PC_RANGE = [-50.0, -50.0, -5.0, 50.0, 50.0, 3.0]


def _camera(yaw_deg, t=(0.5, 0.1, 1.6), f=500.0, cx=320.0, cy=180.0):
    """lidar2cam, K for a camera looking along yaw in the LiDAR frame (numpy)."""
    a = math.radians(yaw_deg)
    fwd = np.array([math.cos(a), math.sin(a), 0])
    right = np.array([math.sin(a), -math.cos(a), 0])
    down = np.array([0, 0, -1.])
    r = np.stack([right, down, fwd])                    # rows: camera axes in LiDAR coords
    lidar2cam = np.eye(4)
    lidar2cam[:3, :3] = r
    lidar2cam[:3, 3] = -r @ np.array(t)
    k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.]])
    return lidar2cam, k


def _lidar2img(cams):
    mats = []
    for l2c, k in cams:
        k4 = np.eye(4)
        k4[:3, :3] = k
        mats.append(k4 @ l2c)
    return torch.tensor(np.stack(mats)[None], dtype=torch.float64)


def test_projection_and_visibility_against_pinhole_model():
    cams = [_camera(0), _camera(90)]
    l2i = _lidar2img(cams)
    pts = np.array([[10.0, 1.0, 0.5], [-5.0, 0.0, 0.0], [3.0, 20.0, 1.0]])
    uv, depth = project_points(torch.tensor(pts[None]), l2i)
    for v, (l2c, k) in enumerate(cams):
        cam = (l2c[:3, :3] @ pts.T).T + l2c[:3, 3]
        ref = (k @ cam.T).T
        np.testing.assert_allclose(depth[0, v].numpy(), cam[:, 2], atol=1e-9)
        front = cam[:, 2] > 0
        np.testing.assert_allclose(uv[0, v, front].numpy(), ref[front, :2] / ref[front, 2:], atol=1e-6)
    seen = visible_mask(uv, depth, [(360, 640)])[0].numpy()
    assert seen[0].tolist() == [True, False, False]      # front camera sees the first point
    assert seen[1].tolist() == [False, False, True]      # the left one the third


def test_lifted_rays_match_inverse_pinhole_geometry():
    cams = [_camera(30), _camera(-120)]
    l2i = _lidar2img(cams)
    uv = torch.tensor([[[[100.0, 50.0], [600.0, 300.0]]] * 2], dtype=torch.float64)
    depths = torch.tensor([2.0, 7.5, 30.0], dtype=torch.float64)
    pts = lift_pixels(uv, depths, l2i)[0].numpy()          # [V, N, D, 3]
    for v, (l2c, k) in enumerate(cams):
        r, t = l2c[:3, :3], l2c[:3, 3]
        for n, (u, w) in enumerate(uv[0, v].numpy()):
            for j, d in enumerate(depths.numpy()):
                cam = d * np.linalg.inv(k) @ np.array([u, w, 1.0])   # point on the ray at depth d
                np.testing.assert_allclose(pts[v, n, j], r.T @ (cam - t), atol=1e-8)


def test_camera_ray_embedding_inputs_are_normalised_ray_points():
    emb = CameraRayEmbedding(16, PC_RANGE, depth_num=8).double()
    l2i = _lidar2img([_camera(0)])
    uv = torch.tensor([[[[320.0, 180.0]]]], dtype=torch.float64)   # principal point: along +x
    coords = emb.ray_coords(uv, l2i).view(8, 3).numpy()
    d = emb.depths.numpy()
    expected = (np.stack([0.5 + d, np.full(8, 0.1), np.full(8, 1.6)], 1) - PC_RANGE[:3]) / \
        (np.array(PC_RANGE[3:]) - PC_RANGE[:3])
    np.testing.assert_allclose(coords, expected, atol=1e-9)
    assert emb(uv, l2i).shape == (1, 1, 1, 16)
    bins = depth_bins(64, 1.0, 60.0).numpy()
    assert bins[0] == 1.0 and np.all(np.diff(bins) > 0) and np.all(np.diff(bins, 2) > 0)


def test_sine_embedding_against_numpy():
    pos = torch.tensor([[0.25, 0.7]])
    out = sine_embedding(pos, num_feats=8).numpy()[0]
    ref = []
    for p in (0.25, 0.7):
        for i in range(8):
            x = 2 * math.pi * p / 10000 ** (2 * (i // 2) / 8)
            ref.append(math.sin(x) if i % 2 == 0 else math.cos(x))
    np.testing.assert_allclose(out, ref, atol=1e-6)


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


def test_box_coding_round_trip():
    boxes = torch.tensor([[1., 2., -1., 4., 2., 1.5, 0.3, 0.5, -0.2], [-3., 0., -2., 0.5, 0.6, 1.8, -2.9, 0., 0.]])
    codes = encode_boxes(boxes)
    assert torch.allclose(codes[0, 2], torch.tensor(-0.25)) and torch.allclose(codes[0, 3], torch.tensor(math.log(4.)))
    torch.testing.assert_close(decode_boxes(codes), boxes)


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


def test_nms_free_coder_top_k_and_range():
    coder = NMSFreeCoder(max_num=2, post_center_range=[-10, -10, -5, 10, 10, 5])
    codes = encode_boxes(torch.tensor([[1., 1., -1., 4., 2., 1.5, 0.2, 0., 0.],
                                       [50., 0., -1., 4., 2., 1.5, 0., 0., 0.],
                                       [-2., 3., -1., 1., 1., 1., 0., 0., 0.]]))
    logits = torch.tensor([[3., -9.], [9., -9.], [-9., 1.]])
    out = coder.decode_single(logits, codes)
    # the best pair (query 1) is out of range; kept: query 0 class 0
    assert out['labels'].tolist() == [0] and out['bboxes'].shape == (1, 9)
    torch.testing.assert_close(out['bboxes'][0, :7], torch.tensor([1., 1., -1., 4., 2., 1.5, 0.2]))
    assert out['scores'][0] == pytest.approx(torch.sigmoid(torch.tensor(3.)).item())
