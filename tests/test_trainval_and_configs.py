"""The v1.0-trainval naming path of the generator + converter wrapper, and the configs."""
import json
import os.path as osp

import mmengine
from conftest import REPO, SYNTHETIC_CONFIG, run_tool


def test_trainval_set_converts_without_a_test_split(tmp_path):
    root = str(tmp_path)
    run_tool('tools/create_synthetic_nuscenes.py', '--out', root, '--version', 'v1.0-trainval',
             '--num-scenes', '12', '--samples-per-scene', '2', '--sweeps-per-sample', '1',
             '--image-size', '320', '180', '--lidar-azimuth-steps', '360', '--max-objects', '12')
    from nuscenes.utils.splits import create_splits_scenes
    names = {s['name'] for s in json.load(open(osp.join(root, 'v1.0-trainval', 'scene.json')))}
    splits = create_splits_scenes()
    assert len(names & set(splits['train'])) == 10 and len(names & set(splits['val'])) == 2
    # mmdet3d's create_data with --version v1.0 (trainval + test); no v1.0-test here
    run_tool('tools/create_data.py', 'nuscenes', '--root-path', root, '--out-dir', root,
             '--extra-tag', 'nuscenes', '--version', 'v1.0')
    train = mmengine.load(osp.join(root, 'nuscenes_infos_train.pkl'))
    val = mmengine.load(osp.join(root, 'nuscenes_infos_val.pkl'))
    assert train['metainfo']['version'] == 'v1.0-trainval'
    assert len(train['data_list']) == 20 and len(val['data_list']) == 4


def test_create_data_rejects_a_missing_root(tmp_path):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, 'tools/create_data.py', 'nuscenes', '--root-path',
                           str(tmp_path / 'nowhere'), '--version', 'v1.0-mini'],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0 and 'nowhere' in proc.stderr and 'is not a directory' in proc.stderr


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
