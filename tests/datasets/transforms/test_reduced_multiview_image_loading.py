"""JPEG decoding at reduced resolution keeps lidar2img exact (LoadMultiViewImageFromFilesReduced)."""
import cv2
import numpy as np
import pytest

import plugin  # noqa: F401
from mmdet3d.registry import DATASETS
from plugin.datasets.transforms import reduction_matrix


def _dataset(synthetic_root, loader, final_size=(256, 144)):
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    pipeline = [loader,
                dict(type='MultiViewImageResizeCrop', final_size=final_size, resize_lim=(0.94, 1.25),
                     test_mode=True),
                dict(type='ComputeLidar2Img')]
    return DATASETS.build(dict(
        type='NuScenesDataset', data_root=synthetic_root + '/', ann_file='nuscenes_infos_val.pkl',
        pipeline=pipeline, metainfo=dict(version='v1.0-mini'), modality=dict(use_lidar=False, use_camera=True),
        data_prefix=dict(pts='samples/LIDAR_TOP', sweeps='sweeps/LIDAR_TOP', CAM_FRONT='samples/CAM_FRONT',
                         CAM_FRONT_LEFT='samples/CAM_FRONT_LEFT', CAM_FRONT_RIGHT='samples/CAM_FRONT_RIGHT',
                         CAM_BACK='samples/CAM_BACK', CAM_BACK_LEFT='samples/CAM_BACK_LEFT',
                         CAM_BACK_RIGHT='samples/CAM_BACK_RIGHT'),
        test_mode=True, box_type_3d='LiDAR'))


def test_reduction_matrix_maps_pixel_centres():
    # full-resolution pixels 0..3 average into reduced pixel 0, whose centre is full u = 1.5
    m = reduction_matrix(4)
    u = np.array([1.5, 5.5, 0.0])                       # centres of reduced pixels 0 and 1, a corner
    d = 2.0
    out = (m @ np.stack([u * d, u * d, np.full(3, d), np.ones(3)]))[:2] / d
    np.testing.assert_allclose(out[0], [0.0, 1.0, -0.375])


@pytest.mark.parametrize('reduce', [2, 4])
def test_reduced_decoding_gives_the_same_view_and_projection(synthetic_root, reduce):
    common = dict(to_float32=True, num_views=6)
    full = _dataset(synthetic_root, dict(type='LoadMultiViewImageFromFiles', **common))[0]
    red = _dataset(synthetic_root, dict(type='LoadMultiViewImageFromFilesReduced', reduce=reduce, **common))[0]
    h, w = full['ori_shape']
    assert red['ori_shape'] == (-(-h // reduce), -(-w // reduce))   # libjpeg rounds up
    assert red['img_shape'] == full['img_shape'] == (144, 256)
    np.testing.assert_allclose(red['cam2img'], full['cam2img'])   # the file's calibration is untouched
    # the same 3D points land at the same place in the final images
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(-40, 40, (200, 2)), rng.uniform(-2, 3, (200, 1)), np.ones((200, 1))], 1)
    for v in range(6):
        a, b = pts @ full['lidar2img'][v].T, pts @ red['lidar2img'][v].T
        front = a[:, 2] > 1
        uv_a, uv_b = a[front, :2] / a[front, 2:3], b[front, :2] / b[front, 2:3]
        # (< 1 px: MultiViewImageResizeCrop's matrix ignores cv2.resize's half-pixel centre
        # offset, which differs by 0.5 * (scale - 1) px between the two resize scales)
        assert np.abs(uv_a - uv_b).max() < 1.0
        # and the pictures agree (both are the scene at the same final scale)
        diff = np.abs(cv2.GaussianBlur(full['img'][v], (5, 5), 0) - cv2.GaussianBlur(red['img'][v], (5, 5), 0))
        assert diff.mean() < 6.0, (v, diff.mean())


def test_bad_reduction_is_refused():
    from mmdet3d.registry import TRANSFORMS
    with pytest.raises(ValueError, match='reduce'):
        TRANSFORMS.build(dict(type='LoadMultiViewImageFromFilesReduced', reduce=3))
