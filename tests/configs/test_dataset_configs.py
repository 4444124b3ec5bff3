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
    # the CPU configs' dataset: the same set, the CPU pipelines; the demo reads them unchanged
    cpu = Config.fromfile(osp.join(REPO, 'configs/_base_/datasets/synthetic-nus-3d-cpu.py'))
    demo = Config.fromfile(osp.join(REPO, 'configs/synthetic/cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cpu[loader].dataset.data_root == syn[loader].dataset.data_root
        assert cpu[loader].dataset.metainfo == syn[loader].dataset.metainfo
        assert demo[loader].dataset.pipeline == cpu[loader].dataset.pipeline
        steps = {t['type']: t for t in cpu[loader].dataset.pipeline}
        assert steps['LoadMultiViewImageFromFilesReduced']['reduce'] == 4
        assert steps['LoadPointsFromMultiSweeps']['sweeps_num'] == 9
        assert steps['MultiViewImageResizeCrop']['final_size'] == cpu.image_size == (256, 144)
        assert steps['PointsRangeFilter']['point_cloud_range'] == cpu.point_cloud_range
    assert demo.model.pts_bbox_head.pc_range == cpu.point_cloud_range
    assert syn.custom_imports == dict(imports=['plugin'], allow_failed_imports=False)
