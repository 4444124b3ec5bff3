"""The dataset configs point at the converted info files."""
import os.path as osp

from tests.helpers.repo import REPO, SYNTHETIC_CONFIG


def test_dataset_configs():
    from mmengine.config import Config
    real = Config.fromfile(osp.join(REPO, 'configs/_base_/datasets/nus-3d-multimodal.py'))
    syn = Config.fromfile(SYNTHETIC_CONFIG)
    assert real.train_dataloader.dataset.data_root == 'data/nuscenes/'
    assert 'version' not in real.metainfo  # NuScenesDataset's default: v1.0-trainval
    assert syn.train_dataloader.dataset.data_root == 'data/synthetic_nuscenes/'
    assert syn.test_evaluator.ann_file == 'data/synthetic_nuscenes/nuscenes_infos_val.pkl'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert syn[loader].dataset.metainfo.version == 'v1.0-mini'
        assert syn[loader].dataset.metainfo.classes == real.class_names
        assert syn[loader].dataset.pipeline == real[loader].dataset.pipeline
    assert syn.custom_imports == dict(imports=['plugin'], allow_failed_imports=False)
