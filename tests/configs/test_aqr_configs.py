"""The AQR configs and the window override by `--cfg-options`."""
import os.path as osp

import pytest

import plugin  # noqa: F401
from tests.helpers.repo import REPO


@pytest.mark.parametrize('config', ['configs/aqr/cmt-aqr_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py',
                                    'configs/synthetic/cmt-aqr_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py'])
def test_aqr_configs_and_window_override(config):
    from mmengine.config import Config

    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(REPO, config))
    assert cfg.model.pts_bbox_head.aqr_cfg.bias.window_size == 15
    cfg.merge_from_dict({'model.pts_bbox_head.aqr_cfg.bias.window_size': 5})
    head = MODELS.build(cfg.model.pts_bbox_head)
    assert head.attn_bias_generator.window_sizes == (5, 5)
    assert head.aqr.window_sizes == (5, 15) and head.aqr.num_heads == 4
    cfg.merge_from_dict({'model.pts_bbox_head.aqr_cfg.bias.window_size': 4})
    with pytest.raises(ValueError, match=r'aqr_cfg\.bias\.window_size'):
        MODELS.build(cfg.model.pts_bbox_head)
