"""mmdet3d's converter (`tools/create_data.py`) on the generated data set: v2 info files,
the multimodal pipeline, lidar2img against the devkit, the trainval naming path."""
import json
import os.path as osp

import mmengine
import numpy as np
import pytest

from tests.helpers.repo import REPO, load_tool, run_tool


def test_converter_writes_v2_infos(synthetic_root, nusc):
    train = mmengine.load(osp.join(synthetic_root, 'nuscenes_infos_train.pkl'))
    val = mmengine.load(osp.join(synthetic_root, 'nuscenes_infos_val.pkl'))
    assert train['metainfo']['version'] == val['metainfo']['version'] == 'v1.0-mini'
    # 5 scenes -> 4 train + 1 val (scene names from the devkit's mini splits), 4 samples each
    assert len(train['data_list']) == 16 and len(val['data_list']) == 4
    assert not {i['token'] for i in train['data_list']} & {i['token'] for i in val['data_list']}
    info = val['data_list'][1]
    # the converter walks back through the 2 sweeps and the previous keyframe
    assert len(info['images']) == 6 and len(info['lidar_sweeps']) == 3
    assert len(info['instances']) == len(nusc.get('sample', info['token'])['anns'])
    assert osp.isfile(osp.join(synthetic_root, 'nuscenes_dbinfos_train.pkl'))


def test_multimodal_pipeline_loads(synthetic_cfg, nusc):
    from mmdet3d.registry import DATASETS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import plugin  # noqa: F401
    dataset = DATASETS.build(synthetic_cfg.train_dataloader.dataset)
    assert len(dataset) == 16
    packed = dataset[5]
    inputs, sample = packed['inputs'], packed['data_samples']
    points = inputs['points']
    assert points.shape[1] == 5 and len(points) > 20000  # keyframe + 2 sweeps
    assert inputs['img'].shape == (6, 3, 450, 800)
    meta = sample.metainfo
    lidar2img = np.asarray(meta['lidar2img'])
    assert lidar2img.shape == (6, 4, 4)
    for i in range(6):
        k = np.eye(4)
        k[:3, :3] = np.asarray(meta['cam2img'][i])[:3, :3]
        assert np.allclose(lidar2img[i], k @ np.asarray(meta['lidar2cam'][i]))
    assert len(sample.gt_instances_3d.bboxes_3d) > 5
    assert sample.gt_instances_3d.bboxes_3d.tensor.shape[1] == 9  # with velocity


def test_lidar2img_matches_devkit_projection(synthetic_cfg, nusc):
    """GT centres projected with the pipeline's lidar2img land where the devkit puts them."""
    from nuscenes.utils.geometry_utils import view_points
    from pyquaternion import Quaternion
    dataset = load_tool('tools/analysis/browse_dataset.py').build_browse_dataset(synthetic_cfg, 'val')
    res = dataset[2]
    sample = nusc.get('sample', res['token'])
    names = ['CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT', 'CAM_BACK_RIGHT']
    centres = res['gt_bboxes_3d'].gravity_center.numpy()
    compared = 0
    for i, cam in enumerate(names):
        ours = np.concatenate([centres, np.ones((len(centres), 1))], 1) @ np.asarray(res['lidar2img'][i]).T
        sd = nusc.get('sample_data', sample['data'][cam])
        cs = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
        pose = nusc.get('ego_pose', sd['ego_pose_token'])
        # the dataset keeps the annotations with LiDAR points, in the sample's order
        kept = [a for a in sample['anns'] if nusc.get('sample_annotation', a)['num_lidar_pts'] > 0]
        assert len(kept) == len(centres)
        for j, ann_tok in enumerate(kept):
            box = nusc.get_box(ann_tok)
            box.translate(-np.array(pose['translation']))
            box.rotate(Quaternion(pose['rotation']).inverse)
            box.translate(-np.array(cs['translation']))
            box.rotate(Quaternion(cs['rotation']).inverse)
            if box.center[2] < 1.0:
                continue
            ref = view_points(box.center[:, None], np.array(cs['camera_intrinsic']), True)[:2, 0]
            assert ours[j, 2] == pytest.approx(box.center[2], abs=1e-3)
            assert np.allclose(ours[j, :2] / ours[j, 2], ref, atol=1e-2)
            compared += 1
    assert compared > 5


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
