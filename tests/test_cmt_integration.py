"""CMT end to end on the generated data: a fixed batch is overfitted, and
train.py -> test.py / dist_train.sh run through mmdet3d's Runner with nuScenes metrics."""
import glob
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO, run_tool

CONFIG = osp.join(REPO, 'configs/synthetic/cmt_pillar080_r18-256x144_1xb2-10e_synthetic-nus-3d.py')


def tiny_options(root):
    root = root.rstrip('/') + '/'
    return [f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}', f'val_evaluator.data_root={root}',
            f'val_evaluator.ann_file={root}nuscenes_infos_val.pkl', f'test_evaluator.data_root={root}',
            f'test_evaluator.ann_file={root}nuscenes_infos_val.pkl',
            'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
            'model.pts_bbox_head.num_query=60', 'model.pts_bbox_head.transformer.decoder.num_layers=2',
            'default_hooks.logger.interval=2', 'default_hooks.checkpoint.interval=1']


def tiny_cfg(root, config=CONFIG):
    """`config` with the tiny options above, pointed at the generated set `root`."""
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(config)
    opts = {}
    for kv in tiny_options(root):
        k, v = kv.split('=', 1)
        opts[k] = DictAction._parse_iterable(v) if not v.endswith('/') and '/' not in v else v
    cfg.merge_from_dict(opts)
    return cfg


def fit_fixed_batch(cfg, steps, autocast_dtype=None, after_backward=None):
    """Builds cfg.model without DN (deterministic targets), trains it with AdamW 1e-3 on
    the first training sample for `steps` steps (under CPU autocast to `autocast_dtype`
    if given) and returns the loss history; `after_backward(model, step)` may inspect
    gradients."""
    from mmdet3d.registry import DATASETS, MODELS
    from mmdet3d.utils import register_all_modules
    from mmengine.dataset import pseudo_collate
    register_all_modules(init_default_scope=True)
    import plugin  # noqa: F401
    torch.manual_seed(0)
    cfg.model.pts_bbox_head.dn_cfg = None
    model = MODELS.build(cfg.model)
    model.init_weights()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = model.data_preprocessor(pseudo_collate([dataset[0]]), training=True)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    history = []
    for step in range(steps):
        with torch.autocast('cpu', dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            losses = model.loss(batch['inputs'], batch['data_samples'])
        loss = sum(losses.values())
        assert torch.isfinite(loss)
        optim.zero_grad()
        loss.backward()
        if after_backward is not None:
            after_backward(model, step)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 35)
        optim.step()
        history.append(float(loss.detach()))
    return history


def test_tiny_model_overfits_a_fixed_batch(synthetic_root):
    history = fit_fixed_batch(tiny_cfg(synthetic_root), 60)
    assert min(history[-5:]) < 0.6 * history[0], history


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


def _metrics(text):
    """{name: value} of the NuScenes metric line mmengine prints."""
    import re
    return dict(re.findall(r'pred_instances_3d_NuScenes/([\w.]+): (-?[\d.]+|nan)', text))


def test_train_then_test_prints_nuscenes_metrics(synthetic_root, tiny_checkpoint, tmp_path):
    proc = run_tool('tools/test.py', CONFIG, tiny_checkpoint, '--work-dir', str(tmp_path), '--cfg-options',
                    *tiny_options(synthetic_root))
    metrics = _metrics(proc.stdout + proc.stderr)
    assert {'mAP', 'NDS', 'mATE', 'car_AP_dist_1.0'} <= set(metrics)


def test_dist_test_two_processes_merges_results(synthetic_root, tiny_checkpoint, tmp_path):
    """2 CPU processes split the val set; the merged metric equals the 1-process one."""
    single = run_tool('tools/test.py', CONFIG, tiny_checkpoint, '--work-dir', str(tmp_path / 's'),
                      '--cfg-options', *tiny_options(synthetic_root))
    single = _metrics(single.stdout + single.stderr)
    env = dict(__import__('os').environ, PORT='29534', PYTHON=sys.executable)
    proc = subprocess.run(['bash', 'tools/dist_test.sh', CONFIG, tiny_checkpoint, '2', '--work-dir',
                           str(tmp_path / 'd'), '--cfg-options', *tiny_options(synthetic_root)],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    merged = _metrics(proc.stdout + proc.stderr)
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
