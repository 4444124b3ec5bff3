"""Sensor-failure transforms (#7): each removes exactly what it says, on generated samples."""
import numpy as np
import pytest

import plugin  # noqa: F401
from mmdet3d.registry import DATASETS, TRANSFORMS
from plugin.datasets.transforms import ComputeLidar2Img, lidar_aug_matrix

DATA_PREFIX = dict(pts='samples/LIDAR_TOP', sweeps='sweeps/LIDAR_TOP', CAM_FRONT='samples/CAM_FRONT',
                   CAM_FRONT_LEFT='samples/CAM_FRONT_LEFT', CAM_FRONT_RIGHT='samples/CAM_FRONT_RIGHT',
                   CAM_BACK='samples/CAM_BACK', CAM_BACK_LEFT='samples/CAM_BACK_LEFT',
                   CAM_BACK_RIGHT='samples/CAM_BACK_RIGHT')
LOAD_POINTS = dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=5)
LOAD_IMAGES = dict(type='LoadMultiViewImageFromFilesReduced', reduce=4, to_float32=True, num_views=6)


def _samples(root, pipeline, n=2):
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    dataset = DATASETS.build(dict(
        type='NuScenesDataset', data_root=root + '/', ann_file='nuscenes_infos_val.pkl', pipeline=pipeline,
        metainfo=dict(version='v1.0-mini'), modality=dict(use_lidar=True, use_camera=True),
        data_prefix=DATA_PREFIX, test_mode=True, box_type_3d='LiDAR'))
    return [dataset[i] for i in range(n)]


@pytest.fixture(scope='module')
def lidar_samples(synthetic_root):
    """Keyframe points only: column 4 is still the simulator's ring index."""
    return _samples(synthetic_root, [LOAD_POINTS])


@pytest.fixture(scope='module')
def camera_samples(synthetic_root):
    return _samples(synthetic_root, [LOAD_IMAGES, dict(type='MultiViewImageResizeCrop', final_size=(256, 144),
                                                       resize_lim=(0.94, 1.25), test_mode=True),
                                     dict(type='ComputeLidar2Img')])


def _apply(cfg, results):
    import copy
    return TRANSFORMS.build(cfg)(copy.deepcopy(results))


def test_lidar_drop_leaves_zero_points_with_the_same_columns(lidar_samples):
    out = _apply(dict(type='LiDARDrop'), lidar_samples[0])
    assert len(lidar_samples[0]['points']) > 1000
    assert out['points'].tensor.shape == (0, 5) and type(out['points']) is type(lidar_samples[0]['points'])


@pytest.mark.parametrize('ring_dim', [None, 4])
def test_beam_reduction_keeps_exactly_beams_0_8_16_24(lidar_samples, ring_dim):
    # the simulator's ring index (column 4) is the reference; ring_dim=None finds beams by elevation
    for sample in lidar_samples:
        ring = sample['points'].tensor[:, 4].numpy().round().astype(int)
        out = _apply(dict(type='LiDARBeamReduction', num_beams=4, total_beams=32, ring_dim=ring_dim), sample)
        kept = out['points'].tensor[:, 4].numpy().round().astype(int)
        assert set(np.unique(kept)) <= {0, 8, 16, 24}
        assert len(kept) == np.isin(ring, [0, 8, 16, 24]).sum() > 0


def test_beam_reduction_follows_augmented_points(lidar_samples):
    """After GlobalRotScaleTrans the elevation is measured in the original frame."""
    sample = dict(lidar_samples[0])
    sample['points'] = sample['points'].clone()
    ring = sample['points'].tensor[:, 4].numpy().round().astype(int)
    aug = TRANSFORMS.build(dict(type='GlobalRotScaleTrans', rot_range=[0.3, 0.3], scale_ratio_range=[1.1, 1.1],
                                translation_std=[0, 0, 0]))
    sample = aug(sample)
    assert not np.allclose(lidar_aug_matrix(sample), np.eye(4))
    out = _apply(dict(type='LiDARBeamReduction', num_beams=8), sample)
    assert len(out['points']) == np.isin(ring, np.arange(0, 32, 4)).sum()


def test_field_of_view_keeps_the_front_sector_in_the_ego_frame(lidar_samples):
    for sample in lidar_samples:
        out = _apply(dict(type='LiDARFieldOfView', half_angle=60.0), sample)
        rot = np.asarray(sample['lidar_points']['lidar2ego'])[:3, :3]
        def ego_azimuth(points):
            xyz = points.coord.numpy().astype(np.float64) @ rot.T
            return np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))
        everything = ego_azimuth(sample['points'])
        assert np.all(np.abs(ego_azimuth(out['points'])) <= 60.0 + 1e-6)
        assert len(out['points']) == (np.abs(everything) <= 60.0).sum()
        assert 0.2 < len(out['points']) / len(sample['points']) < 0.5   # about a third of a scan


def test_field_of_view_config_errors():
    with pytest.raises(ValueError, match='half_angle'):
        TRANSFORMS.build(dict(type='LiDARFieldOfView', half_angle=0))
    with pytest.raises(KeyError, match='lidar2ego'):
        TRANSFORMS.build(dict(type='LiDARFieldOfView'))(dict(points=np.zeros((3, 5)), token='abc'))


def test_camera_view_drop_blanks_only_the_named_views(camera_samples):
    sample = camera_samples[0]
    out = _apply(dict(type='CameraViewDrop', views=['CAM_FRONT', 3]), sample)
    front = list(sample['images']).index('CAM_FRONT')
    for v, (before, after) in enumerate(zip(sample['img'], out['img'])):
        if v in (front, 3):
            assert before.std() > 1 and not after.any()
        else:
            np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(out['lidar2img'], sample['lidar2img'])
    assert out['dropped_views'] == sorted({front, 3})
    everything = _apply(dict(type='CameraViewDrop', views='all'), sample)
    assert not any(img.any() for img in everything['img'])


def test_camera_view_drop_random_views_are_fixed_per_sample(camera_samples):
    cfg = dict(type='CameraViewDrop', num_views=3, seed=0)
    first = [_apply(cfg, s)['dropped_views'] for s in camera_samples]
    again = [_apply(cfg, s)['dropped_views'] for s in camera_samples]
    assert first == again and all(len(d) == 3 for d in first)
    with pytest.raises(ValueError, match='exactly one'):
        TRANSFORMS.build(dict(type='CameraViewDrop'))
    with pytest.raises(KeyError, match='CAM_NOSE'):
        _apply(dict(type='CameraViewDrop', views=['CAM_NOSE']), camera_samples[0])


def test_occlusion_patches_cover_the_recorded_fraction(camera_samples):
    sample = camera_samples[0]
    out = _apply(dict(type='ImageOcclusion', num_patches=(2, 2), patch_size=(0.2, 0.2), seed=3), sample)
    for v, (before, after) in enumerate(zip(sample['img'], out['img'])):
        changed = np.any(before != after, axis=-1) | ~np.any(after, axis=-1)
        blank = ~np.any(after, axis=-1)
        # every changed pixel is blank, and the blank area is the recorded fraction
        assert np.all(blank[changed])
        assert blank.mean() == pytest.approx(out['occluded_fraction'][v], abs=0.002)
        # two 20 % x 20 % patches: 4 % to 8 % of the view
        assert 0.035 < out['occluded_fraction'][v] < 0.081
    other = _apply(dict(type='ImageOcclusion', num_patches=(2, 2), patch_size=(0.2, 0.2), seed=3),
                   camera_samples[1])
    assert not np.allclose(other['occluded_fraction'], out['occluded_fraction'])


def _angle_deg(rot):
    return np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1)))


@pytest.mark.parametrize('augment', [False, True])
def test_calibration_noise_moves_each_camera_by_the_stated_amount(camera_samples, augment):
    sample = dict(camera_samples[0])
    if augment:   # LiDAR augmentation recorded before the noise: lidar2img must stay consistent
        sample['points'] = _samples_points(sample)
        sample = TRANSFORMS.build(dict(type='GlobalRotScaleTrans', rot_range=[0.4, 0.4],
                                       scale_ratio_range=[0.9, 0.9], translation_std=[0, 0, 0]))(sample)
        sample = ComputeLidar2Img()(sample)
    out = _apply(dict(type='CalibrationNoise', rotation_deg=1.5, translation_cm=7.0), sample)
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


def _samples_points(sample):
    from mmdet3d.structures import LiDARPoints
    return LiDARPoints(np.random.default_rng(0).normal(size=(50, 5)).astype(np.float32), points_dim=5)


def test_modality_dropout_drops_one_modality_never_both(camera_samples):
    sample = dict(camera_samples[0])
    sample['points'] = _samples_points(sample)
    only_lidar = _apply(dict(type='ModalityDropout', lidar_prob=1.0, camera_prob=0.0), sample)
    assert len(only_lidar['points']) == 0 and all(img.any() for img in only_lidar['img'])
    only_cam = _apply(dict(type='ModalityDropout', lidar_prob=0.0, camera_prob=1.0), sample)
    assert len(only_cam['points']) == 50 and not any(img.any() for img in only_cam['img'])
    np.random.seed(0)
    lidar = camera = 0
    for _ in range(300):
        out = _apply(dict(type='ModalityDropout', lidar_prob=0.3, camera_prob=0.3), sample)
        no_points, no_images = len(out['points']) == 0, not any(img.any() for img in out['img'])
        assert not (no_points and no_images)
        lidar, camera = lidar + no_points, camera + no_images
    assert 60 < lidar < 120 and 60 < camera < 120
    with pytest.raises(ValueError, match='sum <= 1'):
        TRANSFORMS.build(dict(type='ModalityDropout', lidar_prob=0.7, camera_prob=0.7))
