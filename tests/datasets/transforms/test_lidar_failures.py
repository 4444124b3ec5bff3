"""LiDAR failure transforms remove exactly what they say, on generated samples."""
import numpy as np
import pytest

import plugin  # noqa: F401
from mmdet3d.registry import TRANSFORMS
from plugin.datasets.transforms import lidar_aug_matrix
from tests.helpers.transforms import apply_transform


def test_lidar_drop_leaves_zero_points_with_the_same_columns(lidar_samples):
    out = apply_transform(dict(type='LiDARDrop'), lidar_samples[0])
    assert len(lidar_samples[0]['points']) > 1000
    assert out['points'].tensor.shape == (0, 5) and type(out['points']) is type(lidar_samples[0]['points'])


@pytest.mark.parametrize('ring_dim', [None, 4])
def test_beam_reduction_keeps_exactly_beams_0_8_16_24(lidar_samples, ring_dim):
    # the simulator's ring index (column 4) is the reference; ring_dim=None finds beams by elevation
    for sample in lidar_samples:
        ring = sample['points'].tensor[:, 4].numpy().round().astype(int)
        out = apply_transform(dict(type='LiDARBeamReduction', num_beams=4, total_beams=32, ring_dim=ring_dim), sample)
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
    out = apply_transform(dict(type='LiDARBeamReduction', num_beams=8), sample)
    assert len(out['points']) == np.isin(ring, np.arange(0, 32, 4)).sum()


def test_field_of_view_keeps_the_front_sector_in_the_ego_frame(lidar_samples):
    for sample in lidar_samples:
        out = apply_transform(dict(type='LiDARFieldOfView', half_angle=60.0), sample)
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
