"""GT-paste switched off by the hook reaches the paste inside the CBGS wrapper."""
import copy
from types import SimpleNamespace

import numpy as np

import plugin  # noqa: F401
from tests.helpers.official_pipeline import R50, paste_setup


# ---------------------------------------------------------------- GT-paste fade
def test_disable_object_sample_hook_reaches_the_paste_inside_cbgs(synthetic_root):
    """mmdet3d's hook unwraps CBGSDataset (not a BaseDataset) and finds ObjectSampleWithImages
    (an ObjectSample): pasting stops from epoch 15 on (the 16th of 20), and also when a run
    resumes at a later epoch (where mmdet3d's own hook would go on pasting)."""
    from mmengine.logging import MMLogger
    from torch.utils.data import DataLoader

    from mmdet3d.engine.hooks import DisableObjectSampleHook
    from mmdet3d.registry import DATASETS, HOOKS
    cfg, paste, _ = paste_setup(R50, synthetic_root)
    root = synthetic_root + '/'
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.dataset.update(data_root=root, metainfo=dict(classes=cfg.class_names, version='v1.0-mini'))
    for i, t in enumerate(ds_cfg.dataset.pipeline):
        if t['type'] == 'ObjectSampleWithImages':
            ds_cfg.dataset.pipeline[i] = paste
    dataset = DATASETS.build(ds_cfg)
    assert type(dataset).__name__ == 'CBGSDataset'
    transform = next(t for t in dataset.dataset.pipeline.transforms if type(t).__name__ == 'ObjectSampleWithImages')
    hook = HOOKS.build(cfg.custom_hooks[0])
    assert isinstance(hook, DisableObjectSampleHook)
    runner = SimpleNamespace(train_dataloader=DataLoader(dataset, batch_size=1, num_workers=0), model=object(),
                             logger=MMLogger.get_instance('test_official_pipeline'))
    counts = []
    for epoch in (0, 14, 15, 16):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        info = dataset.dataset.get_data_info(0)
        np.random.seed(epoch)
        results = dataset.dataset.pipeline.transforms[0](copy.deepcopy(info))
        for t in dataset.dataset.pipeline.transforms[1:]:
            before = len(results['gt_bboxes_3d']) if t is transform else None
            results = t(results)
            if t is transform:
                counts.append(len(results['gt_bboxes_3d']) - before)
                break
    assert transform.disabled
    assert counts[0] > 0 and counts[1] > 0 and counts[2:] == [0, 0]
    runner.epoch = 17                                   # a run resumed from the epoch-17 checkpoint
    transform.disabled = False
    DisableObjectSampleHook(disable_after_epoch=15).before_train_epoch(runner)
    assert not transform.disabled
    HOOKS.build(cfg.custom_hooks[0]).before_train_epoch(runner)
    assert transform.disabled
