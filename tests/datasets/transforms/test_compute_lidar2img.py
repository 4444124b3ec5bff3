"""lidar2img stays right under image and LiDAR augmentation (known 3D points)."""
import numpy as np
import pytest

import plugin  # noqa: F401
from mmdet3d.registry import TRANSFORMS
from mmdet3d.structures import LiDARPoints


def _results(rng):
    k = np.array([[800., 0, 400], [0, 800., 225], [0, 0, 1]])
    lidar2cam = np.eye(4)
    lidar2cam[:3, :3] = [[0, -1, 0], [0, 0, -1], [1, 0, 0]]   # camera looking along LiDAR +x
    lidar2cam[:3, 3] = [0.1, 1.5, -0.5]
    pts = np.array([[12.0, 1.5, 0.3], [20.0, -4.0, 1.0], [8.0, 2.0, -0.5]])
    cloud = np.concatenate([pts, rng.uniform(-30, 30, (50, 3))])
    vv, uu = np.mgrid[0:450, 0:800].astype(np.float32)
    img = np.stack([uu, vv, np.zeros_like(uu)], -1)          # each pixel stores its (u, v)
    return dict(img=[img, img.copy()], cam2img=[k, k], lidar2cam=[lidar2cam, lidar2cam],
                points=LiDARPoints(np.concatenate([cloud, np.zeros((len(cloud), 2))], 1).astype(np.float32),
                                   points_dim=5),
                gt_bboxes_3d=None), pts


def _project(lidar2img, pts):
    hom = np.concatenate([pts, np.ones((len(pts), 1))], 1) @ lidar2img.T
    return hom[:, :2] / hom[:, 2:3]


@pytest.mark.parametrize('seed', [0, 1, 2, 3, 4, 5])
def test_known_points_project_to_the_same_image_content(seed):
    np.random.seed(seed)
    rng = np.random.default_rng(seed)
    res, pts = _results(rng)
    orig = TRANSFORMS.build(dict(type='ComputeLidar2Img'))(dict(res))['lidar2img'][0]
    uv_orig = _project(orig, pts)
    res.pop('gt_bboxes_3d')
    pipeline = [TRANSFORMS.build(t) for t in [
        dict(type='MultiViewImageResizeCrop', final_size=(352, 128), resize_lim=(0.9, 1.1), flip_prob=0.5),
        dict(type='GlobalRotScaleTrans', rot_range=[-0.4, 0.4], scale_ratio_range=[0.9, 1.1],
             translation_std=[0.5, 0.5, 0.2]),
        dict(type='LiDARRandomFlip3D', flip_ratio_bev_horizontal=0.5,
             flip_ratio_bev_vertical=0.5),
        dict(type='ComputeLidar2Img')]]
    out = res
    for t in pipeline:
        out = t(out)
    aug_pts = out['points'].tensor.numpy()[:3, :3]
    assert not np.allclose(aug_pts, pts)                     # the LiDAR really moved
    uv_new = _project(out['lidar2img'][0], aug_pts)
    # the same pixel, mapped through the image augmentation, is where the point lands now
    m = out['img_aug_matrix'][0]
    uvd = np.concatenate([uv_orig * 1.0, np.ones((3, 1))], 1)
    expected = (np.stack([m[0, 0] * uvd[:, 0] + m[0, 2], m[1, 1] * uvd[:, 1] + m[1, 2]], 1))
    np.testing.assert_allclose(uv_new, expected, atol=1e-4)
    # and the image content there is the original pixel's (resize + crop + flip done right)
    checked = 0
    for (u, v), (u0, v0) in zip(uv_new, uv_orig):
        if 2 <= u < 350 and 2 <= v < 126:
            stored = out['img'][0][int(v), int(u), :2]
            assert np.allclose(stored, [u0, v0], atol=4.0), (stored, u0, v0)
            checked += 1
    assert out['img'][0].shape == (128, 352, 3)
    assert out['img_shape'] == (128, 352)


def test_bevfusion_style_matrix_would_be_wrong():
    """A translation in column 3 is not a pixel shift for points at depth != 1."""
    shift = np.eye(4)
    shift[0, 3] = -50.0                                   # the trap
    right = np.eye(4)
    right[0, 2] = -50.0
    p = np.array([100.0 * 10, 50.0 * 10, 10.0, 1.0])     # pixel (100, 50) at depth 10
    wrong, good = shift @ p, right @ p
    assert wrong[0] / wrong[2] != pytest.approx(50.0)
    assert good[0] / good[2] == pytest.approx(50.0)


def test_unrecorded_2d_flip_is_refused():
    res, _ = _results(np.random.default_rng(0))
    res['flip'] = True
    with pytest.raises(ValueError, match='LiDARRandomFlip3D'):
        TRANSFORMS.build(dict(type='ComputeLidar2Img'))(res)
