"""Bad config values fail before training, naming the config key; every shipped config
passes the check."""
import copy
import os.path as osp
import subprocess
import sys

import pytest

import plugin  # noqa: F401
from plugin.engine.config_check import ConfigError, check_config
from tests.helpers.repo import REPO
from tests.helpers.tiny_cmt import CONFIG


def test_unknown_type_lists_close_names(synthetic_cmt_cfg):
    bad = copy.deepcopy(synthetic_cmt_cfg)
    bad.model.pts_bbox_head.type = 'CmtHaed'
    with pytest.raises(ConfigError, match=r"model\.pts_bbox_head\.type: 'CmtHaed' is not a registered type; "
                                          r"did you mean 'CmtHead'"):
        check_config(bad)
    bad = copy.deepcopy(synthetic_cmt_cfg)
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
def test_invalid_numbers_name_the_key(synthetic_cmt_cfg, key, value, message):
    import re
    bad = copy.deepcopy(synthetic_cmt_cfg)
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
