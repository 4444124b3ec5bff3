"""`ModalityDropout` drops one modality, never both."""
import numpy as np
import pytest

import plugin  # noqa: F401
from mmdet3d.registry import TRANSFORMS
from tests.helpers.transforms import apply_transform, random_points


def test_modality_dropout_drops_one_modality_never_both(camera_samples):
    sample = dict(camera_samples[0])
    sample['points'] = random_points(sample)
    only_lidar = apply_transform(dict(type='ModalityDropout', lidar_prob=1.0, camera_prob=0.0), sample)
    assert len(only_lidar['points']) == 0 and all(img.any() for img in only_lidar['img'])
    only_cam = apply_transform(dict(type='ModalityDropout', lidar_prob=0.0, camera_prob=1.0), sample)
    assert len(only_cam['points']) == 50 and not any(img.any() for img in only_cam['img'])
    np.random.seed(0)
    lidar = camera = 0
    for _ in range(300):
        out = apply_transform(dict(type='ModalityDropout', lidar_prob=0.3, camera_prob=0.3), sample)
        no_points, no_images = len(out['points']) == 0, not any(img.any() for img in out['img'])
        assert not (no_points and no_images)
        lidar, camera = lidar + no_points, camera + no_images
    assert 60 < lidar < 120 and 60 < camera < 120
    with pytest.raises(ValueError, match='sum <= 1'):
        TRANSFORMS.build(dict(type='ModalityDropout', lidar_prob=0.7, camera_prob=0.7))
