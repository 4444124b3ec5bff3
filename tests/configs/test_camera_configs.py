"""The camera-only synthetic config: no points anywhere, no LiDAR branch, learned queries;
it builds, runs a batch of the generated data and lowers its loss on a fixed batch."""
import os.path as osp

import pytest
import torch

from tests.helpers.repo import REPO
from tests.helpers.tiny_cmt import fit_fixed_batch, tiny_cfg

CAMERA = osp.join(REPO, 'configs/synthetic/cmt-camera_r18-256x144_1xb2-12e_synthetic-nus-3d.py')
FUSION = osp.join(REPO, 'configs/synthetic/cmt_pillar080_r18-256x144_1xb2-12e_synthetic-nus-3d.py')
POINT_STEPS = {'LoadPointsFromFile', 'LoadPointsFromMultiSweeps', 'PointsRangeFilter', 'PointShuffle',
               'GlobalRotScaleTrans'}


def test_no_points_and_no_lidar_branch():
    from mmengine.config import Config
    cfg, fusion = Config.fromfile(CAMERA), Config.fromfile(FUSION)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[loader].dataset
        assert dataset.modality == dict(use_lidar=False, use_camera=True)
        assert not POINT_STEPS & {t['type'] for t in dataset.pipeline}
        assert 'points' not in dataset.pipeline[-1]['keys']
    # everything else of the fusion pipeline, in its order
    kept = [t['type'] for t in fusion.train_pipeline if t['type'] not in POINT_STEPS]
    assert [t['type'] for t in cfg.train_pipeline] == kept
    model = cfg.model
    assert model.pts_backbone is None and model.pts_voxel_encoder is None and not model.data_preprocessor.voxel
    head = model.pts_bbox_head
    assert (head.query_generator, head.query_content, head.aux_heatmap_cfg) == (None, 'zeros', None)


@pytest.fixture(scope='module')
def camera_cfg(synthetic_root):
    return tiny_cfg(synthetic_root, CAMERA)


def test_builds_without_lidar_modules_and_predicts(camera_cfg):
    from mmengine.dataset import pseudo_collate

    import plugin  # noqa: F401
    from mmdet3d.registry import DATASETS, MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    torch.manual_seed(0)
    model = MODELS.build(camera_cfg.model)
    model.init_weights()
    assert not model.with_pts_backbone and model.pts_bbox_head.learned_queries == 60
    sample = DATASETS.build(camera_cfg.val_dataloader.dataset)[0]
    assert 'points' not in sample['inputs']
    batch = model.data_preprocessor(pseudo_collate([sample]), training=False)
    model.eval()
    with torch.no_grad():
        out = model.predict(batch['inputs'], batch['data_samples'])
    boxes = out[0].pred_instances_3d
    assert len(boxes.scores_3d) > 0 and torch.isfinite(boxes.bboxes_3d.tensor).all()


def test_lowers_its_loss_on_a_fixed_batch(camera_cfg):
    history = fit_fixed_batch(camera_cfg, 40)
    assert min(history[-5:]) < 0.7 * history[0], history


DENSE = osp.join(REPO, 'configs/synthetic/cmt-camera-dense_r18-256x144_1xb2-12e_synthetic-nus-3d.py')


def test_the_dense_arm_adds_image_losses_only(synthetic_root):
    """The dense config is the camera config plus `img_centre_head`; its training step
    returns the head's three losses, finite, with targets on the generated views."""
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    import plugin  # noqa: F401
    from mmdet3d.registry import DATASETS, MODELS
    from mmdet3d.utils import register_all_modules
    dense, camera = Config.fromfile(DENSE).to_dict(), Config.fromfile(CAMERA).to_dict()
    head = dense['model'].pop('img_centre_head')
    assert dense == camera and head['type'] == 'ImageCentreHead' and head['num_classes'] == 10
    register_all_modules(init_default_scope=True)
    cfg = tiny_cfg(synthetic_root, DENSE)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    batch = model.data_preprocessor(pseudo_collate([DATASETS.build(cfg.train_dataloader.dataset)[i]
                                                    for i in range(2)]), training=True)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    for key in ('loss_img_heatmap', 'loss_img_offset', 'loss_img_depth'):
        assert torch.isfinite(losses[key]) and float(losses[key]) > 0, key


FRAMED = osp.join(REPO, 'configs/synthetic/cmt-camera-dense_r18-384x96_1xb2-12e_synthetic-nus-3d.py')


def test_the_framed_arm_changes_only_the_crop():
    """384 x 96 around the horizon with flips (training), the same crop without flips
    (testing); everything else is the dense arm's."""
    from mmengine.config import Config
    framed, dense = Config.fromfile(FRAMED), Config.fromfile(DENSE)
    for loader, test_mode in (('train_dataloader', False), ('val_dataloader', True), ('test_dataloader', True)):
        pipe, ref = framed[loader].dataset.pipeline, dense[loader].dataset.pipeline
        at = [t['type'] for t in pipe].index('MultiViewImageResizeCrop')
        crop = pipe[at]
        assert tuple(crop['final_size']) == (384, 96) and crop['bot_pct_lim'] == (0.18, 0.26)
        assert crop['flip_prob'] == (0.0 if test_mode else 0.5) and crop.get('test_mode', False) == test_mode
        assert pipe[:at] + pipe[at + 1:] == ref[:at] + ref[at + 1:]
    assert framed.model == dense.model and tuple(framed.image_size) == (384, 96)


QUERIES = osp.join(REPO, 'configs/synthetic/cmt-camera-queries_r18-384x96_1xb2-12e_synthetic-nus-3d.py')


def test_the_query_arm_adds_camera_queries_and_their_depth_hook_only():
    """The framed dense arm plus `CameraPeakQueries` (150 of 200 queries) and
    `UseGtDepthHook` for the first half of the schedule."""
    from mmengine.config import Config
    queries, framed = Config.fromfile(QUERIES).to_dict(), Config.fromfile(FRAMED).to_dict()
    head, parent_head = queries['model'].pop('pts_bbox_head'), framed['model'].pop('pts_bbox_head')
    assert head.pop('query_generator') == dict(type='CameraPeakQueries', in_channels=128)
    assert head.pop('learned_queries') == 50 and parent_head.pop('learned_queries') is None
    parent_head.pop('query_generator')
    assert head == parent_head and head['num_query'] == 200
    assert queries.pop('custom_hooks') == framed.pop('custom_hooks') + [dict(type='UseGtDepthHook', stop_epoch=6)]
    assert queries == framed


@pytest.fixture(scope='module')
def queries_cfg(synthetic_root):
    return tiny_cfg(synthetic_root, QUERIES)


def test_the_query_arm_trains_its_camera_queries(queries_cfg):
    """A training step with ground-truth depths: the camera queries sit on the rays of the
    centre head's peaks and their content trains the camera features; the loss falls on a
    fixed batch."""
    seen = []

    def after_backward(model, step):
        gen = model.pts_bbox_head.query_generator
        seen.append((gen.num_query, float(gen.content_proj.weight.grad.abs().sum())))

    history = fit_fixed_batch(queries_cfg, 30, after_backward=after_backward)
    assert seen[0][0] == 10 and all(g > 0 for _, g in seen)     # tiny config: 60 queries, 50 learned
    assert min(history[-5:]) < 0.7 * history[0], history


RESCORED = osp.join(REPO, 'configs/synthetic/cmt-camera-rescored_r18-384x96_1xb2-12e_synthetic-nus-3d.py')


def test_the_rescored_arm_puts_every_query_at_a_peak_and_rescores_it():
    from mmengine.config import Config
    rescored, queries = Config.fromfile(RESCORED).to_dict(), Config.fromfile(QUERIES).to_dict()
    head, parent_head = rescored['model'].pop('pts_bbox_head'), queries['model'].pop('pts_bbox_head')
    assert head.pop('learned_queries') == 0 and parent_head.pop('learned_queries') == 50
    assert head.pop('query_score_prior') is True and 'query_score_prior' not in parent_head
    assert head == parent_head and rescored == queries


def test_the_recipe_doubles_the_schedule_makes_the_depth_camera_aware_and_weighs_it_3x():
    from mmengine.config import Config
    recipe = Config.fromfile(RESCORED.replace('-12e_', '-24e_')).to_dict()
    rescored = Config.fromfile(RESCORED).to_dict()
    centre_head = recipe['model']['img_centre_head']
    assert centre_head.pop('depth_focal') == 333.0
    assert centre_head.pop('loss_depth') == dict(type='mmdet.L1Loss', loss_weight=3.0)
    assert centre_head == rescored['model']['img_centre_head']
    assert recipe['train_cfg']['max_epochs'] == 24 and recipe['custom_hooks'][-1] == dict(type='UseGtDepthHook',
                                                                                          stop_epoch=12)
    cosine = recipe['param_scheduler'][1]
    assert cosine['T_max'] == cosine['end'] == 24 and recipe['param_scheduler'][0] == rescored['param_scheduler'][0]
    for key in ('train_cfg', 'custom_hooks', 'param_scheduler', 'max_epochs'):
        recipe.pop(key), rescored.pop(key)
    assert recipe == rescored
