"""The full nuScenes configs (official CMT sizes) build and run one forward pass on CPU
(spconv's forward works on CPU), on a generated sample."""
import os.path as osp

import pytest
import torch
from conftest import REPO

FULL = ['configs/cmt/cmt_voxel0100_r50-800x320_8xb2-cyclic-20e_nus-3d.py',
        'configs/cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py']


@pytest.mark.parametrize('config', FULL)
def test_full_config_forward(config, synthetic_root):
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmdet3d.registry import DATASETS, MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import plugin  # noqa: F401
    cfg = Config.fromfile(osp.join(REPO, config))
    head = cfg.model.pts_bbox_head
    assert head.num_query == 900 and cfg.model.pts_bbox_head.transformer.decoder.num_layers == 6
    model = MODELS.build(cfg.model)
    with pytest.warns(UserWarning, match='not found'):   # no pretrained weights here
        model.init_weights()
    model.eval()
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.update(data_root=synthetic_root + '/', metainfo=dict(classes=cfg.class_names, version='v1.0-mini'))
    sample = DATASETS.build(ds_cfg)[0]
    w, h = cfg.image_size
    assert sample['inputs']['img'].shape == (6, 3, h, w)
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate([sample]), training=False)
        out = model.predict(data['inputs'], data['data_samples'])
    pred = out[0].pred_instances_3d
    assert pred.bboxes_3d.tensor.shape == (300, 9) and torch.isfinite(pred.bboxes_3d.tensor).all()
    assert pred.scores_3d.shape == (300,) and int(pred.labels_3d.max()) < 10
