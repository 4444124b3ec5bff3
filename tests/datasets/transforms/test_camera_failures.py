"""Camera failure transforms (dropped views, occlusion, calibration noise) change exactly
what they say, on generated samples."""
import numpy as np
import pytest

import plugin  # noqa: F401
from mmdet3d.registry import TRANSFORMS
from plugin.datasets.transforms import ComputeLidar2Img
from tests.helpers.transforms import apply_transform, random_points


def test_camera_view_drop_blanks_only_the_named_views(camera_samples):
    sample = camera_samples[0]
    out = apply_transform(dict(type='CameraViewDrop', views=['CAM_FRONT', 3]), sample)
    front = list(sample['images']).index('CAM_FRONT')
    for v, (before, after) in enumerate(zip(sample['img'], out['img'])):
        if v in (front, 3):
            assert before.std() > 1 and not after.any()
        else:
            np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(out['lidar2img'], sample['lidar2img'])
    assert out['dropped_views'] == sorted({front, 3})
    everything = apply_transform(dict(type='CameraViewDrop', views='all'), sample)
    assert not any(img.any() for img in everything['img'])


def test_camera_view_drop_random_views_are_fixed_per_sample(camera_samples):
    cfg = dict(type='CameraViewDrop', num_views=3, seed=0)
    first = [apply_transform(cfg, s)['dropped_views'] for s in camera_samples]
    again = [apply_transform(cfg, s)['dropped_views'] for s in camera_samples]
    assert first == again and all(len(d) == 3 for d in first)
    with pytest.raises(ValueError, match='exactly one'):
        TRANSFORMS.build(dict(type='CameraViewDrop'))
    with pytest.raises(KeyError, match='CAM_NOSE'):
        apply_transform(dict(type='CameraViewDrop', views=['CAM_NOSE']), camera_samples[0])


def test_occlusion_patches_cover_the_recorded_fraction(camera_samples):
    sample = camera_samples[0]
    out = apply_transform(dict(type='ImageOcclusion', num_patches=(2, 2), patch_size=(0.2, 0.2), seed=3), sample)
    for v, (before, after) in enumerate(zip(sample['img'], out['img'])):
        changed = np.any(before != after, axis=-1) | ~np.any(after, axis=-1)
        blank = ~np.any(after, axis=-1)
        # every changed pixel is blank, and the blank area is the recorded fraction
        assert np.all(blank[changed])
        assert blank.mean() == pytest.approx(out['occluded_fraction'][v], abs=0.002)
        # two 20 % x 20 % patches: 4 % to 8 % of the view
        assert 0.035 < out['occluded_fraction'][v] < 0.081
    other = apply_transform(dict(type='ImageOcclusion', num_patches=(2, 2), patch_size=(0.2, 0.2), seed=3),
                   camera_samples[1])
    assert not np.allclose(other['occluded_fraction'], out['occluded_fraction'])


def _angle_deg(rot):
    return np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1)))


@pytest.mark.parametrize('augment', [False, True])
def test_calibration_noise_moves_each_camera_by_the_stated_amount(camera_samples, augment):
    sample = dict(camera_samples[0])
    if augment:   # LiDAR augmentation recorded before the noise: lidar2img must stay consistent
        sample['points'] = random_points(sample)
        sample = TRANSFORMS.build(dict(type='GlobalRotScaleTrans', rot_range=[0.4, 0.4],
                                       scale_ratio_range=[0.9, 0.9], translation_std=[0, 0, 0]))(sample)
        sample = ComputeLidar2Img()(sample)
    out = apply_transform(dict(type='CalibrationNoise', rotation_deg=1.5, translation_cm=7.0), sample)
    before, after = np.asarray(sample['lidar2cam']), out['lidar2cam']
    for v in range(len(before)):
        cam2lidar_before, cam2lidar_after = np.linalg.inv(before[v]), np.linalg.inv(after[v])
        assert _angle_deg(cam2lidar_before[:3, :3].T @ cam2lidar_after[:3, :3]) == pytest.approx(1.5, abs=1e-3)  # float32 calibration
        moved = np.linalg.norm(cam2lidar_after[:3, 3] - cam2lidar_before[:3, 3])
        assert moved == pytest.approx(0.07, abs=1e-6)
    np.testing.assert_allclose(out['calib_noise']['rotation_deg'], 1.5)
    np.testing.assert_allclose(out['calib_noise']['translation_cm'], 7.0)
    # lidar2img equals a fresh ComputeLidar2Img on the noisy extrinsics
    fresh = ComputeLidar2Img()(dict(out))
    np.testing.assert_allclose(out['lidar2img'], fresh['lidar2img'], rtol=1e-9, atol=1e-6)
    assert not np.allclose(out['lidar2img'], sample['lidar2img'])
