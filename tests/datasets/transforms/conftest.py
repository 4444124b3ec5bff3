"""Generated samples loaded once per module for the transform tests."""
import pytest

import plugin  # noqa: F401
from mmdet3d.registry import DATASETS

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
