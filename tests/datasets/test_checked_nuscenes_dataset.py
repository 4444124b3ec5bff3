"""Bad data fails with a message naming the file or the sample token; an empty point
cloud is a normal sample."""
import os.path as osp
import pickle
import re
import shutil

import numpy as np
import pytest

import plugin  # noqa: F401
from mmdet3d.registry import DATASETS
from plugin.datasets import InputError


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


def _dataset(synthetic_cmt_cfg, root, ann_file='nuscenes_infos_val.pkl', **overrides):
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    ds = dict(synthetic_cmt_cfg.test_dataloader.dataset)
    ds.update(type='CheckedNuScenesDataset', data_root=str(root) + '/', ann_file=ann_file, **overrides)
    return DATASETS.build(ds)


def _first(infos, root):
    sample = infos['data_list'][0]
    return sample['token'], root / 'samples/LIDAR_TOP' / sample['lidar_points']['lidar_path'], \
        root / 'samples/CAM_FRONT' / sample['images']['CAM_FRONT']['img_path']


def test_good_data_loads(synthetic_cmt_cfg, broken_root):
    root, infos = broken_root
    assert len(_dataset(synthetic_cmt_cfg, root)[0]['inputs']['points']) > 1000


def test_truncated_point_file(synthetic_cmt_cfg, broken_root):
    root, infos = broken_root
    token, points, _ = _first(infos, root)
    data = points.read_bytes()
    points.write_bytes(data[:len(data) // 2 + 6])
    with pytest.raises(InputError, match=rf'sample {token}: point file .*{re.escape(points.name)} is truncated'):
        _dataset(synthetic_cmt_cfg, root)[0]


def test_missing_point_file(synthetic_cmt_cfg, broken_root):
    root, infos = broken_root
    token, points, _ = _first(infos, root)
    points.unlink()
    with pytest.raises(FileNotFoundError, match=rf'sample {token}: point file .*{re.escape(points.name)} does not exist'):
        _dataset(synthetic_cmt_cfg, root)[0]


def test_empty_point_file_is_a_normal_sample(synthetic_cmt_cfg, broken_root):
    root, infos = broken_root
    _, points, _ = _first(infos, root)
    points.write_bytes(b'')
    # the sweeps still deliver points; the keyframe's own are none
    assert _dataset(synthetic_cmt_cfg, root)[0]['inputs']['img'].shape[0] == 6


@pytest.mark.parametrize('damage, why', [('missing', 'does not exist'), ('corrupt', 'cannot be decoded'),
                                         ('empty', 'is empty')])
def test_bad_jpeg_names_the_file(synthetic_cmt_cfg, broken_root, damage, why):
    root, infos = broken_root
    token, _, image = _first(infos, root)
    if damage == 'missing':
        image.unlink()
    elif damage == 'corrupt':
        image.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    else:
        image.write_bytes(b'')
    with pytest.raises(InputError, match=rf'sample {token}: image .*{re.escape(image.name)} {why}'):
        _dataset(synthetic_cmt_cfg, root)[0]


@pytest.mark.parametrize('key, value, message', [
    ('cam2img', lambda m: np.where(np.eye(3, dtype=bool), np.nan, m), 'cam2img: contains NaN'),
    ('cam2img', lambda m: np.zeros_like(m), 'cam2img: singular matrix'),
    ('lidar2cam', lambda m: np.diag([1.0, 1.0, 0.0, 1.0]), 'lidar2cam: singular matrix'),
    ('lidar2cam', lambda m: np.diag([1.0, 1.0, -1.0, 1.0]), 'lidar2cam: the rotation block is not a rotation'),
])
def test_bad_calibration_fails_when_the_dataset_is_built(synthetic_cmt_cfg, broken_root, key, value, message):
    root, infos = broken_root
    sample = infos['data_list'][2]
    cam = sample['images']['CAM_BACK_LEFT']
    cam[key] = value(np.asarray(cam[key], dtype=np.float64)).tolist()
    with open(root / 'bad.pkl', 'wb') as f:
        pickle.dump(infos, f)
    with pytest.raises(InputError, match=rf"sample {sample['token']}, camera CAM_BACK_LEFT: {message}"):
        _dataset(synthetic_cmt_cfg, root, ann_file='bad.pkl')


def test_info_file_of_mmdet3d_0x(synthetic_cmt_cfg, broken_root):
    root, infos = broken_root
    with open(root / 'old.pkl', 'wb') as f:
        pickle.dump(dict(infos=[{'token': 'abc'}], metadata=dict(version='v1.0-mini')), f)
    with pytest.raises(InputError, match=r'old\.pkl is an mmdet3d 0\.x info file.*update_infos_to_v2'):
        _dataset(synthetic_cmt_cfg, root, ann_file='old.pkl')


def test_info_file_of_another_nuscenes_version(synthetic_cmt_cfg, broken_root):
    root, _ = broken_root
    with pytest.raises(InputError, match=r"created from nuScenes v1\.0-mini, but the config sets "
                                         r"metainfo\.version='v1\.0-trainval'"):
        _dataset(synthetic_cmt_cfg, root, metainfo=dict(classes=synthetic_cmt_cfg.class_names, version='v1.0-trainval'))
