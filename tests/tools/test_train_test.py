"""train.py -> test.py and dist_train.sh / dist_test.sh run through mmdet3d's Runner on
the generated data and print nuScenes metrics."""
import glob
import os.path as osp
import subprocess
import sys

import pytest

from tests.helpers.repo import REPO, run_tool
from tests.helpers.tiny_cmt import CONFIG, printed_metrics, tiny_options


@pytest.fixture(scope='module')
def tiny_checkpoint(synthetic_root, tmp_path_factory):
    """One epoch of the tiny config through tools/train.py (validation included)."""
    work = str(tmp_path_factory.mktemp('work'))
    proc = run_tool('tools/train.py', CONFIG, '--work-dir', work, '--cfg-options', 'train_cfg.max_epochs=1',
                    'train_cfg.val_interval=1', *tiny_options(synthetic_root))
    assert 'pred_instances_3d_NuScenes/NDS' in proc.stdout + proc.stderr
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.isfile(ckpt)
    return ckpt


def test_train_then_test_prints_nuscenes_metrics(synthetic_root, tiny_checkpoint, tmp_path):
    proc = run_tool('tools/test.py', CONFIG, tiny_checkpoint, '--work-dir', str(tmp_path), '--cfg-options',
                    *tiny_options(synthetic_root))
    metrics = printed_metrics(proc.stdout + proc.stderr)
    assert {'mAP', 'NDS', 'mATE', 'car_AP_dist_1.0'} <= set(metrics)


def test_dist_test_two_processes_merges_results(synthetic_root, tiny_checkpoint, tmp_path):
    """2 CPU processes split the val set; the merged metric equals the 1-process one."""
    single = run_tool('tools/test.py', CONFIG, tiny_checkpoint, '--work-dir', str(tmp_path / 's'),
                      '--cfg-options', *tiny_options(synthetic_root))
    single = printed_metrics(single.stdout + single.stderr)
    env = dict(__import__('os').environ, PORT='29534', PYTHON=sys.executable)
    proc = subprocess.run(['bash', 'tools/dist_test.sh', CONFIG, tiny_checkpoint, '2', '--work-dir',
                           str(tmp_path / 'd'), '--cfg-options', *tiny_options(synthetic_root)],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    merged = printed_metrics(proc.stdout + proc.stderr)
    assert merged and merged.keys() == single.keys()
    # the same predictions, up to float noise from a different thread count per process
    for key, value in single.items():
        assert float(merged[key]) == pytest.approx(float(value), abs=2e-3, nan_ok=True), key


def test_dist_train_two_cpu_processes(synthetic_root, tmp_path):
    work = str(tmp_path / 'dist')
    env = dict(__import__('os').environ, PORT='29533', PYTHON=sys.executable)
    proc = subprocess.run(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', work, '--cfg-options',
                           'train_cfg.max_epochs=1', 'train_cfg.val_interval=100', *tiny_options(synthetic_root)],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = open(glob.glob(osp.join(work, '*', '*.log'))[0]).read()
    assert 'backend: gloo' in log or "'backend': 'gloo'" in log or 'gloo' in log
    assert 'Epoch(train) [1]' in log and osp.isfile(osp.join(work, 'epoch_1.pth'))


def test_test_tool_refuses_a_checkpoint_that_does_not_fill_the_model(synthetic_root, tiny_checkpoint, tmp_path):
    """tools/test.py loads strictly: one key missing stops the run with the key named."""
    import torch
    ckpt = torch.load(tiny_checkpoint, map_location='cpu', weights_only=False)
    ckpt['state_dict'].pop('pts_bbox_head.reference_points.weight')
    partial = str(tmp_path / 'partial.pth')
    torch.save(ckpt, partial)
    proc = subprocess.run([sys.executable, 'tools/test.py', CONFIG, partial, '--work-dir', str(tmp_path),
                           '--cfg-options', *tiny_options(synthetic_root)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'pts_bbox_head.reference_points.weight' in proc.stdout + proc.stderr
    assert 'pred_instances_3d_NuScenes/NDS' not in proc.stdout + proc.stderr
