"""The modality-masking configs change only the training pipeline of their parents."""
import os.path as osp

import pytest

from tests.helpers.repo import REPO

SYN = 'configs/synthetic/{}_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py'
FULL = 'configs/cmt/cmt_voxel0100_r50-800x320_8xb4-cyclic-20e_nus-3d.py'


@pytest.mark.parametrize('child,parent', [('cmt-moddrop', 'cmt'), ('cmt-aqr-moddrop', 'cmt-aqr')])
def test_moddrop_config_adds_the_official_masking_before_packing(child, parent):
    from mmengine.config import Config
    child_cfg = Config.fromfile(osp.join(REPO, SYN.format(child)))
    parent_cfg = Config.fromfile(osp.join(REPO, SYN.format(parent)))
    official = [t for t in Config.fromfile(osp.join(REPO, FULL)).train_pipeline if t['type'] == 'ModalityDropout']
    assert official == [dict(type='ModalityDropout', lidar_prob=0.25, camera_prob=0.25)]

    pipeline = child_cfg.train_dataloader.dataset.pipeline
    at = [t['type'] for t in pipeline].index('ModalityDropout')
    assert pipeline[at] == official[0] and pipeline[at + 1]['type'] == 'Pack3DDetInputs'
    assert pipeline[:at] + pipeline[at + 1:] == parent_cfg.train_dataloader.dataset.pipeline

    def without_train_pipeline(cfg):
        settings = cfg.to_dict()
        for key in ('train_pipeline', '_pack'):
            settings.pop(key, None)
        settings['train_dataloader']['dataset'].pop('pipeline')
        return settings
    assert without_train_pipeline(child_cfg) == without_train_pipeline(parent_cfg)
