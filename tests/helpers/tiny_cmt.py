"""A tiny synthetic CMT config for tests that train, and a fixed-batch training loop."""
import copy
import os.path as osp

import torch

from tests.helpers.repo import REPO

CONFIG = osp.join(REPO, 'configs/synthetic/cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py')


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


def save_tiny_checkpoint(root, path, **extra):
    """Saves the tiny model's initial weights (seed 0) as a checkpoint `path`, with the
    `extra` top-level entries (e.g. mmengine's message hub); returns `path`."""
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg(root).model)
    model.init_weights()
    torch.save(dict(meta=dict(), state_dict=model.state_dict(), **extra), path)
    return path


def fit_fixed_batch(cfg, steps, autocast_dtype=None, after_backward=None):
    """Builds cfg.model without DN (deterministic targets), trains it with AdamW 1e-3 on
    the first training sample for `steps` steps (under CPU autocast to `autocast_dtype`
    if given) and returns the loss history; `after_backward(model, step)` may inspect
    gradients."""
    from mmengine.dataset import pseudo_collate

    from mmdet3d.registry import DATASETS, MODELS
    from mmdet3d.utils import register_all_modules
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
            # a fresh copy each step: mmdet3d's PillarFeatureNet (legacy=True) rewrites the
            # voxels' xyz in place, so the same tensors fed twice are not the same batch
            losses = model.loss(copy.deepcopy(batch['inputs']), batch['data_samples'])
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


def printed_metrics(text):
    """{name: value} of the NuScenes metric line mmengine prints."""
    import re
    return dict(re.findall(r'pred_instances_3d_NuScenes/([\w.]+): (-?[\d.]+|nan)', text))
