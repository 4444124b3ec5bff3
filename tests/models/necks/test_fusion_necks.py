"""FuTr and SparseBEV fusion necks on a hand-built camera rig: shapes, the
spatial path against an independent numpy pinhole projection, no NaN for cells no camera
sees or blank cameras, gradients to both inputs, the zero-initialised FiLM being the
identity, FuTr's camera tokens carrying their ray and pose, SparseBEV touching only its
kept cells, and its global FiLM."""
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

import plugin  # noqa: F401
from mmdet3d.registry import MODELS
from plugin.models.necks.futr_fusion_neck import project_bev_cells, spatial_camera_features
from plugin.models.utils import CameraGeometry
from plugin.models.utils.projection import camera_poses
from tests.helpers.camera_rig import BEV_C, IMG_C, IMG_H, IMG_W, STRIDE, geometry, metas, rig

PC_RANGE = [-20.0, -20.0, -3.0, 20.0, 20.0, 3.0]
HEIGHTS = (-1.0, 0.5)


def inputs(batch=2, views=3, bev=(10, 12), seed=0):
    g = torch.Generator().manual_seed(seed)
    bev_feat = torch.randn(batch, BEV_C, *bev, generator=g).requires_grad_()
    img = torch.randn(batch, views, IMG_C, IMG_H // STRIDE, IMG_W // STRIDE, generator=g).requires_grad_()
    return bev_feat, img


def build(type, **kw):  # noqa: A002 (the registry's key)
    init_default_scope('mmdet3d')
    neck = MODELS.build(dict(type=type, bev_channels=BEV_C, img_channels=IMG_C, pc_range=PC_RANGE,
                             embed_dims=8, heights=HEIGHTS, **kw))
    neck.init_weights()
    return neck


def numpy_visibility(bev_shape, yaws):
    """[V, H * W, Z] bool: cell centre at each height in front of view v and inside its image."""
    h, w = bev_shape
    out = np.zeros((len(yaws), h * w, len(HEIGHTS)), bool)
    mats = rig(yaws)
    for r in range(h):
        for c in range(w):
            x = PC_RANGE[0] + (c + 0.5) * (PC_RANGE[3] - PC_RANGE[0]) / w
            y = PC_RANGE[1] + (r + 0.5) * (PC_RANGE[4] - PC_RANGE[1]) / h
            for zi, z in enumerate(HEIGHTS):
                for v, m in enumerate(mats):
                    p = m @ np.array([x, y, z, 1.0])
                    if p[2] > 1e-2:
                        u, vv = p[0] / p[2], p[1] / p[2]
                        out[v, r * w + c, zi] = 0 <= u < IMG_W and 0 <= vv < IMG_H
    return out


def test_spatial_features_match_numpy_projection():
    """Each view's map is the constant (view + 1): a cell's sampled feature must be the mean
    of (view + 1) over the (view, height) pairs that see it, by an independent projection."""
    yaws = (0.0, 90.0, 180.0)
    bev_shape = (10, 12)
    img = torch.arange(1.0, 4.0).view(1, 3, 1, 1, 1).expand(2, 3, 5, IMG_H // STRIDE, IMG_W // STRIDE)
    lidar2img = torch.as_tensor(np.stack([m['lidar2img'] for m in metas(2, yaws)]), dtype=torch.float32)
    geometry = CameraGeometry.from_metas(metas(2, yaws))
    torch.testing.assert_close(geometry.lidar2img, lidar2img.float())
    uv, seen = project_bev_cells(geometry, bev_shape, PC_RANGE, HEIGHTS)
    got = spatial_camera_features(img, uv, seen, (IMG_H, IMG_W), len(HEIGHTS))          # [B, C, HW]
    vis = numpy_visibility(bev_shape, yaws)
    count = vis.sum((0, 2))
    want = (vis * np.arange(1, 4)[:, None, None]).sum((0, 2)) / np.maximum(count, 1)
    assert (count == 0).any() and (count > 0).any() and (vis.sum(2) > 0).sum(0).max() >= 2
    np.testing.assert_allclose(got[0, 0].numpy(), want, atol=1e-5)
    np.testing.assert_array_equal(seen[0].view(3, -1, len(HEIGHTS)).numpy(), vis)


def test_camera_poses_from_lidar2img():
    centre, axis = camera_poses(torch.tensor(rig((0.0, 90.0)), dtype=torch.float32)[None])
    torch.testing.assert_close(centre[0], torch.tensor([[1.0, 0.5, 1.5]] * 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(axis[0], torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), atol=1e-6, rtol=0)


@pytest.mark.parametrize('neck_cfg', [
    dict(type='FuTrFusionNeck', cam_pool_size=(2, 3), bev_pool=2, num_heads=2),
    dict(type='FuTrFusionNeck', cam_pool_size=(2, 3), bev_pool=1, num_heads=2, film_combine='sum'),
    dict(type='SparseBEVFusionNeck', keep_ratio=0.2, num_points=3),
], ids=['futr_gated', 'futr_sum', 'sparsebev'])
def test_shapes_gradients_and_no_nan(neck_cfg):
    neck = build(**neck_cfg)
    bev, img = inputs()
    out = neck(bev, img, geometry())
    assert out.shape == bev.shape and torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    assert bev.grad.abs().sum() > 0 and img.grad.abs().sum() > 0
    # blank cameras, and a rig whose single camera sees few cells: finite, cells unseen unchanged
    blank = neck(bev.detach(), torch.zeros_like(img[:, :1]), geometry(yaws=(0.0,)))
    assert torch.isfinite(blank).all()


def test_futr_film_starts_as_identity_and_learns():
    neck = build('FuTrFusionNeck', cam_pool_size=(2, 2), num_heads=2, use_spatial=False)
    bev, img = inputs()
    out = neck(bev, img, geometry())
    torch.testing.assert_close(out, bev, atol=0, rtol=0)
    out.sum().backward()
    assert neck.film.weight.grad.abs().sum() > 0
    with torch.no_grad():
        neck.film.weight.normal_(std=0.1)
    assert not torch.allclose(neck(bev, img, geometry()), bev)


def test_futr_gated_film_is_per_camera_and_spatial():
    """With the gate, a camera modulates only the cells it sees: a rig looking along +x
    leaves the cells behind it (x < camera) unchanged."""
    neck = build('FuTrFusionNeck', cam_pool_size=(2, 2), num_heads=2, use_spatial=False)
    with torch.no_grad():
        neck.film.weight.normal_(std=0.5)
        neck.film.bias.normal_(std=0.5)
    bev, img = inputs(views=1)
    out = neck(bev, img, geometry(yaws=(0.0,)))
    changed = (out - bev).abs().amax(1) > 1e-6                                            # [B, H, W]
    xs = PC_RANGE[0] + (torch.arange(12) + 0.5) * 40.0 / 12
    assert not changed[..., xs < 1.0].any() and changed[..., xs > 5.0].any()


def test_sparsebev_updates_only_kept_cells():
    neck = build('SparseBEVFusionNeck', keep_ratio=0.1, num_points=2)
    bev, img = inputs(bev=(10, 10))
    out = neck(bev, img, geometry())
    changed = ((out - bev).abs().amax(1) > 0).flatten(1).sum(1)
    assert changed.max() <= neck.num_kept(100) == 10 and changed.min() >= 1
    full = build('SparseBEVFusionNeck', keep_ratio=1.0, num_points=2)
    assert full.num_kept(100) == 100


@pytest.mark.parametrize('kw, key', [
    (dict(type='SparseBEVFusionNeck', keep_ratio=0.0), 'keep_ratio'),
    (dict(type='SparseBEVFusionNeck', keep_ratio=1.5), 'keep_ratio'),
    (dict(type='FuTrFusionNeck', film_combine='mean'), 'film_combine'),
    (dict(type='FuTrFusionNeck', use_film=False, use_spatial=False), 'use_film'),
])
def test_invalid_settings_name_the_key(kw, key):
    with pytest.raises(ValueError, match=key):
        build(**kw)


@pytest.mark.parametrize('name', ['SparseBEVFusionNeck', 'FuTrFusionNeck'])
def test_missing_calibration_is_a_clear_error(name):
    neck = build(name)
    bev, img = inputs()
    with pytest.raises(ValueError, match=f"{name} reads image features and needs the batch's camera geometry"):
        neck(bev, img, None)
    with pytest.raises(ValueError, match='has 1 views, the image features 3'):
        neck(bev, img, geometry(yaws=(0.0,)))


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_necks_projection_matches_devkit_under_augmentation(nusc, synthetic_root, seed):
    """GT box centres of a generated sample, projected by the necks' helper
    (`project_points` + `visible_mask`) with the pipeline's lidar2img after image resize /
    crop / flip and LiDAR rotation / scaling / flip, land where nuscenes-devkit's
    `view_points` (with the sample's calibrated_sensor / ego_pose records) puts them,
    mapped through the recorded image augmentation."""
    import os.path as osp
    import pickle

    from nuscenes.utils.geometry_utils import BoxVisibility, view_points

    from mmdet3d.registry import TRANSFORMS
    from mmdet3d.structures import LiDARPoints
    from plugin.models.utils.projection import project_points, visible_mask
    with open(osp.join(synthetic_root, 'nuscenes_infos_val.pkl'), 'rb') as f:
        info = pickle.load(f)['data_list'][seed]
    cams = list(info['images'])
    sample = nusc.get('sample', info['token'])
    _, boxes, _ = nusc.get_sample_data(sample['data']['LIDAR_TOP'])
    centres = np.stack([b.center for b in boxes])
    first = nusc.get('sample_data', sample['data'][cams[0]])
    img_h, img_w = first['height'], first['width']
    # the devkit's pixels (None where the centre is behind the camera)
    devkit = np.full((len(cams), len(boxes), 2), np.nan)
    for v, cam in enumerate(cams):
        for j, box in enumerate(boxes):
            _, cam_boxes, k = nusc.get_sample_data(sample['data'][cam], box_vis_level=BoxVisibility.NONE,
                                                   selected_anntokens=[box.token])
            c = cam_boxes[0].center
            if c[2] > 0.5:
                devkit[v, j] = view_points(c[:, None], k, normalize=True)[:2, 0]

    np.random.seed(seed)
    results = dict(img=[np.zeros((img_h, img_w, 3), np.uint8) for _ in cams],
                   cam2img=[np.asarray(info['images'][c]['cam2img']) for c in cams],
                   lidar2cam=[np.asarray(info['images'][c]['lidar2cam']) for c in cams],
                   points=LiDARPoints(np.concatenate([centres, np.zeros((len(centres), 2))], 1).astype(np.float32),
                                      points_dim=5))
    for t in [dict(type='MultiViewImageResizeCrop', final_size=(704, 256), resize_lim=(0.4, 0.5), flip_prob=0.5),
              dict(type='GlobalRotScaleTrans', rot_range=[-0.4, 0.4], scale_ratio_range=[0.9, 1.1],
                   translation_std=[0.5, 0.5, 0.2]),
              dict(type='LiDARRandomFlip3D', flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
              dict(type='ComputeLidar2Img')]:
        results = TRANSFORMS.build(t)(results)
    points = torch.as_tensor(results['points'].tensor.numpy()[:, :3], dtype=torch.float64)[None]
    assert not np.allclose(points[0].numpy(), centres)                                      # LiDAR moved
    lidar2img = torch.as_tensor(np.stack(results['lidar2img']), dtype=torch.float64)[None]
    uv, depth = project_points(points, lidar2img)
    seen = visible_mask(uv, depth, [results['img_shape']])[0]
    compared = 0
    for v in range(len(cams)):
        m = np.asarray(results['img_aug_matrix'][v])
        for j in range(len(boxes)):
            if np.isnan(devkit[v, j, 0]):
                continue
            expected = np.array([m[0, 0] * devkit[v, j, 0] + m[0, 2], m[1, 1] * devkit[v, j, 1] + m[1, 2]])
            np.testing.assert_allclose(uv[0, v, j].numpy(), expected, atol=1e-2, rtol=1e-5)  # float32 points
            inside = 0 <= expected[0] < results['img_shape'][1] and 0 <= expected[1] < results['img_shape'][0]
            assert bool(seen[v, j]) == inside
            compared += 1
    assert compared >= 5 and seen.any()


def _token_block_inputs(neck, bev, img, meta):
    """The camera tokens that enter FuTr's camera-token block."""
    seen = []
    handle = neck.token_block.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    neck(bev, img, meta)
    handle.remove()
    return seen[0]


def test_futr_token_embedding_follows_lidar2img_not_image_content():
    """A token = its pooled image feature + the embedding of its geometry: the embedding
    part is the same for any image content, and changes when the rig turns."""
    import torch.nn.functional as F
    neck = build('FuTrFusionNeck', cam_pool_size=(2, 3), num_heads=2, use_spatial=False)
    bev, img = inputs()
    other = torch.randn_like(img)

    def embedding(images, meta):
        tokens = _token_block_inputs(neck, bev, images, meta)
        pooled = F.adaptive_avg_pool2d(images.detach().flatten(0, 1), (2, 3)).flatten(2).transpose(1, 2)
        return tokens - neck.cam_proj(pooled).detach().unflatten(0, images.shape[:2]).flatten(1, 2)
    base = embedding(img, geometry())
    torch.testing.assert_close(embedding(other, geometry()), base, atol=1e-5, rtol=0)
    turned = embedding(img, geometry(yaws=(10.0, 100.0, 190.0)))
    assert (turned - base).abs().amax() > 1e-3


def test_futr_token_rays_point_through_the_pooling_cells():
    """The rays of a camera looking along +x: the centre column's rays have y = 0 (up to the
    rig's principal point), the left column looks to +y, the top row up (+z)."""
    neck = build('FuTrFusionNeck', cam_pool_size=(2, 3), num_heads=2, use_spatial=False)
    geometry = CameraGeometry.from_metas(metas(batch=1, yaws=(0.0,)), num_views=1)
    geo = neck.token_geometry(geometry)[0, 0]                                       # [T, 9]
    rays = geo[:, :3].view(2, 3, 3)
    torch.testing.assert_close(rays.norm(dim=-1), torch.ones(2, 3))
    assert (rays[..., 0] > 0).all()                                                  # all look forward
    assert (rays[:, 0, 1] > 0).all() and (rays[:, 2, 1] < 0).all()                  # left column: +y
    assert (rays[0, :, 2] > 0).all() and (rays[1, :, 2] < 0).all()                  # top row: up
    torch.testing.assert_close(rays[:, 1, 1], torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(geo[0, 6:], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6, rtol=0)


def test_sparsebev_global_film_starts_as_identity_and_learns():
    torch.manual_seed(0)
    plain = build('SparseBEVFusionNeck', num_points=2)
    film = build('SparseBEVFusionNeck', num_points=2, global_film=True)
    film.load_state_dict(plain.state_dict(), strict=False)
    bev, img = inputs()
    out = film(bev, img, geometry())
    torch.testing.assert_close(out, plain(bev, img, geometry()), atol=0, rtol=0)
    out.pow(2).mean().backward()
    assert film.film[-1].weight.grad.abs().sum() > 0
    opt = torch.optim.SGD(film.film.parameters(), lr=0.1)
    with torch.no_grad():
        before = float(film(bev, img, geometry()).pow(2).mean())
    for _ in range(3):
        opt.zero_grad()
        loss = film(bev, img, geometry()).pow(2).mean()
        loss.backward()
        opt.step()
    after = film(bev, img, geometry())
    assert float(after.pow(2).mean()) < before                      # the path learns what the loss asks
    # global: one (scale, shift) per channel for the whole map, driven by the images
    changed = film(bev, torch.randn_like(img), geometry()) - after
    assert changed.abs().amax() > 0
