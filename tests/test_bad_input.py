"""Bad input (#7): each broken file, calibration, info file or config value fails with a
message that names the file, sample token or config key."""
import copy
import os.path as osp
import pickle
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

import plugin  # noqa: F401
from mmdet3d.registry import DATASETS
from plugin.datasets import InputError
from plugin.engine.config_check import ConfigError, check_config

CONFIG = osp.join(REPO, 'configs/synthetic/cmt_pillar080_r18-256x144_1xb2-10e_synthetic-nus-3d.py')


@pytest.fixture()
def broken_root(synthetic_root, tmp_path):
    """A private copy of the generated set's val infos and first sample's files; the rest
    are links to the shared set (the tests damage the copies only)."""
    root = tmp_path / 'nus'
    infos = pickle.load(open(osp.join(synthetic_root, 'nuscenes_infos_val.pkl'), 'rb'))
    first = infos['data_list'][0]
    own = {osp.join('samples/LIDAR_TOP', first['lidar_points']['lidar_path'])}
    own |= {osp.join('samples', cam, img['img_path']) for cam, img in first['images'].items()}
    for sub in ('samples', 'sweeps'):
        for src_dir, _, files in __import__('os').walk(osp.join(synthetic_root, sub)):
            rel_dir = osp.relpath(src_dir, synthetic_root)
            (root / rel_dir).mkdir(parents=True, exist_ok=True)
            for name in files:
                rel = osp.join(rel_dir, name)
                if rel in own:
                    shutil.copy(osp.join(synthetic_root, rel), root / rel)
                else:
                    (root / rel).symlink_to(osp.join(synthetic_root, rel))
    with open(root / 'nuscenes_infos_val.pkl', 'wb') as f:
        pickle.dump(infos, f)
    return root, infos


def _dataset(cfg, root, ann_file='nuscenes_infos_val.pkl', **overrides):
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    ds = dict(cfg.test_dataloader.dataset)
    ds.update(type='CheckedNuScenesDataset', data_root=str(root) + '/', ann_file=ann_file, **overrides)
    return DATASETS.build(ds)


@pytest.fixture(scope='module')
def cfg():
    from mmengine.config import Config
    return Config.fromfile(CONFIG)


def _first(infos, root):
    sample = infos['data_list'][0]
    return sample['token'], root / 'samples/LIDAR_TOP' / sample['lidar_points']['lidar_path'], \
        root / 'samples/CAM_FRONT' / sample['images']['CAM_FRONT']['img_path']


def test_good_data_loads(cfg, broken_root):
    root, infos = broken_root
    assert len(_dataset(cfg, root)[0]['inputs']['points']) > 1000


def test_truncated_point_file(cfg, broken_root):
    root, infos = broken_root
    token, points, _ = _first(infos, root)
    data = points.read_bytes()
    points.write_bytes(data[:len(data) // 2 + 6])
    with pytest.raises(InputError, match=rf'sample {token}: point file .*{re.escape(points.name)} is truncated'):
        _dataset(cfg, root)[0]


def test_missing_point_file(cfg, broken_root):
    root, infos = broken_root
    token, points, _ = _first(infos, root)
    points.unlink()
    with pytest.raises(FileNotFoundError, match=rf'sample {token}: point file .*{re.escape(points.name)} does not exist'):
        _dataset(cfg, root)[0]


def test_empty_point_file_is_a_normal_sample(cfg, broken_root):
    root, infos = broken_root
    _, points, _ = _first(infos, root)
    points.write_bytes(b'')
    # the sweeps still deliver points; the keyframe's own are none
    assert _dataset(cfg, root)[0]['inputs']['img'].shape[0] == 6


@pytest.mark.parametrize('damage, why', [('missing', 'does not exist'), ('corrupt', 'cannot be decoded'),
                                         ('empty', 'is empty')])
def test_bad_jpeg_names_the_file(cfg, broken_root, damage, why):
    root, infos = broken_root
    token, _, image = _first(infos, root)
    if damage == 'missing':
        image.unlink()
    elif damage == 'corrupt':
        image.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    else:
        image.write_bytes(b'')
    with pytest.raises(InputError, match=rf'sample {token}: image .*{re.escape(image.name)} {why}'):
        _dataset(cfg, root)[0]


@pytest.mark.parametrize('key, value, message', [
    ('cam2img', lambda m: np.where(np.eye(3, dtype=bool), np.nan, m), 'cam2img: contains NaN'),
    ('cam2img', lambda m: np.zeros_like(m), 'cam2img: singular matrix'),
    ('lidar2cam', lambda m: np.diag([1.0, 1.0, 0.0, 1.0]), 'lidar2cam: singular matrix'),
    ('lidar2cam', lambda m: np.diag([1.0, 1.0, -1.0, 1.0]), 'lidar2cam: the rotation block is not a rotation'),
])
def test_bad_calibration_fails_when_the_dataset_is_built(cfg, broken_root, key, value, message):
    root, infos = broken_root
    sample = infos['data_list'][2]
    cam = sample['images']['CAM_BACK_LEFT']
    cam[key] = value(np.asarray(cam[key], dtype=np.float64)).tolist()
    with open(root / 'bad.pkl', 'wb') as f:
        pickle.dump(infos, f)
    with pytest.raises(InputError, match=rf"sample {sample['token']}, camera CAM_BACK_LEFT: {message}"):
        _dataset(cfg, root, ann_file='bad.pkl')


def test_info_file_of_mmdet3d_0x(cfg, broken_root):
    root, infos = broken_root
    with open(root / 'old.pkl', 'wb') as f:
        pickle.dump(dict(infos=[{'token': 'abc'}], metadata=dict(version='v1.0-mini')), f)
    with pytest.raises(InputError, match=r'old\.pkl is an mmdet3d 0\.x info file.*update_infos_to_v2'):
        _dataset(cfg, root, ann_file='old.pkl')


def test_info_file_of_another_nuscenes_version(cfg, broken_root):
    root, _ = broken_root
    with pytest.raises(InputError, match=r"created from nuScenes v1\.0-mini, but the config sets "
                                         r"metainfo\.version='v1\.0-trainval'"):
        _dataset(cfg, root, metainfo=dict(classes=cfg.class_names, version='v1.0-trainval'))


def test_unknown_type_lists_close_names(cfg):
    bad = copy.deepcopy(cfg)
    bad.model.pts_bbox_head.type = 'CmtHaed'
    with pytest.raises(ConfigError, match=r"model\.pts_bbox_head\.type: 'CmtHaed' is not a registered type; "
                                          r"did you mean 'CmtHead'"):
        check_config(bad)
    bad = copy.deepcopy(cfg)
    bad.test_dataloader.dataset.pipeline[3].type = 'MultiViewImageResizeCorp'
    with pytest.raises(ConfigError, match=r"test_dataloader\.dataset\.pipeline\[3\]\.type: "
                                          r"'MultiViewImageResizeCorp'.*'MultiViewImageResizeCrop'"):
        check_config(bad)


@pytest.mark.parametrize('key, value, message', [
    ('optim_wrapper.optimizer.lr', -1e-3, 'must be a finite number > 0'),
    ('train_dataloader.batch_size', 0, 'must be an integer >= 1'),
    ('train_cfg.max_epochs', 2.5, 'must be an integer >= 1'),
    ('model.pts_bbox_head.num_query', 0, 'must be an integer >= 1'),
    ('model.pts_voxel_encoder.point_cloud_range', [51.2, -51.2, -5.0, -51.2, 51.2, 3.0],
     'every minimum must be below its maximum'),
    ('model.pts_voxel_encoder.voxel_size', [0.8, 0.0, 8.0], 'must be 3 finite sizes > 0'),
    ('train_pipeline.6.flip_ratio_bev_horizontal', 1.5, 'must be a probability'),
])
def test_invalid_numbers_name_the_key(cfg, key, value, message):
    import re
    bad = copy.deepcopy(cfg)
    bad.merge_from_dict({key: value}, allow_list_keys=True)
    shown = key.replace('.6.', '[6].')   # how the error writes a list index
    with pytest.raises(ConfigError, match=re.escape(shown) + ': ' + re.escape(message)):
        check_config(bad)


def test_every_shipped_config_passes_the_check():
    from glob import glob

    from mmengine.config import Config
    configs = sorted(glob(osp.join(REPO, 'configs/*/*.py')))
    assert len(configs) >= 12
    for path in configs:
        check_config(Config.fromfile(path))


def test_train_tool_reports_the_key_and_stops(tmp_path):
    proc = subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
                           'model.pts_bbox_head.transformer.decoder.layer_cfg.cross_attn_cfg.type=BiasedMultiheadAtention'],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert ("model.pts_bbox_head.transformer.decoder.layer_cfg.cross_attn_cfg.type: 'BiasedMultiheadAtention' "
            "is not a registered type; did you mean 'BiasedMultiheadAttention'") in proc.stderr
    assert 'Traceback' not in proc.stderr
