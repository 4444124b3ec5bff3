"""The full configs' pipelines and a camera looking along LiDAR +x, for the data-pipeline
tests; the GT-paste step set up on the generated data."""
import copy
import os.path as osp

import numpy as np

import plugin  # noqa: F401
from tests.helpers.repo import REPO

R50 = 'configs/cmt/cmt_voxel0100_r50-800x320_8xb4-cyclic-20e_nus-3d.py'
K = np.array([[400., 0, 400], [0, 400., 225], [0, 0, 1]])
LIDAR2CAM = np.array([[0., -1, 0, 0], [0, 0, -1, 0.5], [1, 0, 0, 0], [0, 0, 0, 1]])   # looks along LiDAR +x


def load_config(config):
    from mmengine.config import Config
    return Config.fromfile(osp.join(REPO, config))


def pipeline_step(pipeline, type_name):
    return next(t for t in pipeline if t['type'] == type_name)


def project_pinhole(lidar2img, pts):
    hom = np.concatenate([pts, np.ones((len(pts), 1))], 1) @ np.asarray(lidar2img).T
    return hom[:, :2] / hom[:, 2:3]


def paste_setup(config, synthetic_root):
    from mmengine.dataset import Compose

    from mmdet3d.registry import DATASETS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = load_config(config)
    root = synthetic_root + '/'
    pipeline = cfg.train_dataloader.dataset.dataset.pipeline
    paste = copy.deepcopy(pipeline_step(pipeline, 'ObjectSampleWithImages'))
    paste['db_sampler'].update(data_root=root, info_path=root + 'nuscenes_dbinfos_train.pkl')
    paste.update(img_info_path=root + 'nuscenes_infos_train.pkl')
    head = pipeline[:[t['type'] for t in pipeline].index('ObjectSampleWithImages')]
    ds = DATASETS.build(dict(type='NuScenesDataset', data_root=root, ann_file='nuscenes_infos_train.pkl',
                             metainfo=dict(classes=cfg.class_names, version='v1.0-mini'),
                             data_prefix=cfg.train_dataloader.dataset.dataset.data_prefix,
                             modality=dict(use_lidar=True, use_camera=True), test_mode=False,
                             box_type_3d='LiDAR', pipeline=[]))
    return cfg, paste, lambda index: Compose(head)(copy.deepcopy(ds.get_data_info(index)))
