"""The modality-masking configs: their parents' training pipeline with the official masking
step, and camera-seeded queries instead of the learned ones; nothing else changes."""
import os.path as osp

import pytest

from tests.helpers.repo import REPO

SYN = 'configs/synthetic/{}_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py'
FULL = 'configs/cmt/cmt_voxel0100_r50-800x320_8xb4-cyclic-20e_nus-3d.py'


@pytest.mark.parametrize('child,parent', [('cmt-moddrop', 'cmt'), ('cmt-aqr-moddrop', 'cmt-aqr')])
def test_moddrop_config_adds_the_official_masking_and_camera_queries(child, parent):
    from mmengine.config import Config
    child_cfg = Config.fromfile(osp.join(REPO, SYN.format(child)))
    parent_cfg = Config.fromfile(osp.join(REPO, SYN.format(parent)))
    official = [t for t in Config.fromfile(osp.join(REPO, FULL)).train_pipeline if t['type'] == 'ModalityDropout']
    assert official == [dict(type='ModalityDropout', lidar_prob=0.25, camera_prob=0.25)]

    pipeline = child_cfg.train_dataloader.dataset.pipeline
    at = [t['type'] for t in pipeline].index('ModalityDropout')
    assert pipeline[at] == official[0] and pipeline[at + 1]['type'] == 'Pack3DDetInputs'
    assert pipeline[:at] + pipeline[at + 1:] == parent_cfg.train_dataloader.dataset.pipeline

    # the queries: the parent's BEV heatmap queries and as many camera peaks, no learned points
    head, parent_head = child_cfg.model.pts_bbox_head, parent_cfg.model.pts_bbox_head
    bev, cam = head.query_generator.generators
    assert head.query_generator.type == 'CompositeQueries' and parent_head.query_generator.type == bev['type']
    assert cam['type'] == 'CameraPeakQueries' and head.learned_queries == 0 < parent_head.learned_queries
    assert bev['num_query'] == cam['num_query'] == parent_head.num_query - parent_head.learned_queries
    assert head.num_query == bev['num_query'] + cam['num_query']
    assert head.query_score_prior and child_cfg.model.img_centre_head.type == 'ImageCentreHead'
    assert child_cfg.custom_hooks[-1]['type'] == 'UseGtDepthHook'

    def without_masking_and_queries(cfg):
        settings = cfg.to_dict()
        for key in ('train_pipeline', '_pack', '_depth_focal', 'custom_hooks'):
            settings.pop(key, None)
        settings['train_dataloader']['dataset'].pop('pipeline')
        settings['model'].pop('img_centre_head', None)
        for key in ('query_generator', 'num_query', 'learned_queries', 'query_score_prior'):
            settings['model']['pts_bbox_head'].pop(key, None)
        return settings
    assert without_masking_and_queries(child_cfg) == without_masking_and_queries(parent_cfg)
    assert child_cfg.custom_hooks[:-1] == parent_cfg.custom_hooks
