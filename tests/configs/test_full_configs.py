"""The full nuScenes configs (official CMT sizes) build and run one forward pass on CPU
(spconv's forward works on CPU), on a generated sample."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch

from plugin.models.query_generators import QueryInputs
from tests.helpers.repo import REPO

FULL = ['configs/cmt/cmt_voxel0100_r50-800x320_8xb4-cyclic-20e_nus-3d.py',
        'configs/cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py']
AQR = 'configs/aqr/cmt-aqr_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py'
NECKS = ['configs/futr/cmt-futr_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py',
         'configs/sparsebev/cmt-sparsebev_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py',
         'configs/sparsebev/cmt-futr-sparsebev_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py']
TRIPLANE = 'configs/triplane/cmt-triplane_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py'


@pytest.mark.parametrize('config', FULL + [AQR] + NECKS + [TRIPLANE])
def test_full_config_forward(config, synthetic_root):
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    from mmdet3d.registry import DATASETS, MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import plugin  # noqa: F401
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.model.img_backbone.init_cfg.allow_missing_file = True   # the configs' default is an error
    head = cfg.model.pts_bbox_head
    assert head.num_query == 900 and cfg.model.pts_bbox_head.transformer.decoder.num_layers == 6
    model = MODELS.build(cfg.model)
    assert (model.fusion_neck is None) == ('fusion_neck' not in cfg.model)
    assert (model.triplane is None) == ('triplane' not in cfg.model)
    if model.triplane is not None:   # the triplane generator's published sizes
        gen = model.triplane.generator
        assert (gen.internal_resolution, gen.triplane_resolution, gen.d_model, gen.head_dim, gen.num_heads,
                gen.output_channels) == (64, 128, 512, 64, 8, 80)
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
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


@pytest.mark.parametrize('config', FULL)
def test_full_config_gt_paste_works_on_converted_data(config, synthetic_root):
    """The configs' GT-paste (ObjectSampleWithImages) reads the converter's dbinfos and info file
    and adds objects, points and image patches."""
    from mmengine.config import Config
    from mmengine.dataset import Compose

    from mmdet3d.registry import DATASETS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import plugin  # noqa: F401
    cfg = Config.fromfile(osp.join(REPO, config))
    pipeline = cfg.train_dataloader.dataset.dataset.pipeline
    paste = next(t for t in pipeline if t['type'] == 'ObjectSampleWithImages')
    root = synthetic_root + '/'
    paste['db_sampler'].update(data_root=root, info_path=root + 'nuscenes_dbinfos_train.pkl')
    paste.update(img_info_path=root + 'nuscenes_infos_train.pkl')
    head = pipeline[:pipeline.index(paste)]
    ds_cfg = dict(type='NuScenesDataset', data_root=root, ann_file='nuscenes_infos_train.pkl',
                  metainfo=dict(classes=cfg.class_names, version='v1.0-mini'),
                  data_prefix=cfg.train_dataloader.dataset.dataset.data_prefix,
                  modality=dict(use_lidar=True, use_camera=True), test_mode=False, box_type_3d='LiDAR')
    info = DATASETS.build(dict(ds_cfg, pipeline=[])).get_data_info(0)
    np.random.seed(0)
    before, after = Compose(head)(copy.deepcopy(info)), Compose(head + [paste])(copy.deepcopy(info))
    n0, n1 = len(before['gt_bboxes_3d']), len(after['gt_bboxes_3d'])
    assert n1 > n0
    assert len(after['gt_labels_3d']) == n1 and len(after['points']) != len(before['points'])
    assert any((a != b).any() for a, b in zip(after['img'], before['img']))


@pytest.mark.parametrize('config', [FULL[0]])
def test_full_config_training_step(config, synthetic_root):
    """One training step of the R50 config through its whole train pipeline (GT-paste with
    image patches, modality masking, shared flip, GridMask) on a generated sample: the
    official losses (DN terms included) are finite and reach the head, the image backbone
    and the BEV backbone. spconv has no CPU backward, so the sparse encoder is frozen here."""
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    from mmdet3d.registry import DATASETS, MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import plugin  # noqa: F401
    cfg = Config.fromfile(osp.join(REPO, config))
    root = synthetic_root + '/'
    ds_cfg = cfg.train_dataloader.dataset.dataset
    ds_cfg.update(data_root=root, metainfo=dict(classes=cfg.class_names, version='v1.0-mini'))
    for t in ds_cfg.pipeline:
        if t['type'] == 'ObjectSampleWithImages':
            t['db_sampler'].update(data_root=root, info_path=root + 'nuscenes_dbinfos_train.pkl')
            t.update(img_info_path=root + 'nuscenes_infos_train.pkl')
        if t['type'] == 'ModalityDropout':       # keep both sensors for this step
            t.update(lidar_prob=0.0, camera_prob=0.0)
    np.random.seed(1)
    dataset = DATASETS.build(ds_cfg)
    model = MODELS.build(cfg.model)
    model.pts_middle_encoder.requires_grad_(False)
    model.train()
    data = model.data_preprocessor(pseudo_collate([dataset[0]]), training=True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert {'loss_cls', 'loss_bbox', 'dn_loss_cls', 'dn_loss_bbox', 'd4.loss_cls', 'd4.dn_loss_bbox'} <= set(losses)
    total = sum(v for v in losses.values())
    assert torch.isfinite(total)
    total.backward()
    for name in ('pts_bbox_head.task_heads.0.branches.cls.3.weight', 'pts_bbox_head.bev_proj.conv.weight',
                 'img_backbone.layer4.2.conv3.weight', 'pts_backbone.blocks.0.0.weight'):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_heatmap_queries_are_an_option_of_the_full_config():
    """TransFusion's query initialisation on the nuScenes recipe, by two --cfg-options."""
    from mmengine.config import Config

    from mmdet3d.registry import MODELS
    import plugin  # noqa: F401
    cfg = Config.fromfile(osp.join(REPO, 'configs/cmt/cmt_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py'))
    cfg.merge_from_dict({'model.pts_bbox_head.aux_heatmap_cfg.min_radius': 2,
                         'model.pts_bbox_head.query_generator.type': 'BEVHeatmapQueries'})
    head = MODELS.build(cfg.model.pts_bbox_head)
    head.init_weights()
    head.eval()
    bev = torch.randn(1, cfg.model.pts_bbox_head.in_channels_bev, 180, 180)
    ref, content = head.initial_queries(QueryInputs(1, head.dense_heatmap(bev)))[:2]
    labels = head.query_generator.peaks(head.dense_heatmap(bev))[1]
    assert ref.shape == (1, 900, 3) and content.shape == (1, 900, 256) and head.reference_points is None
    assert ((ref > 0) & (ref < 1)).all() and 0 <= labels.min() and labels.max() < 10
    # the strongest peak comes first, at its cell centre: x from the column, y from the row
    with torch.no_grad():
        logits = head.aux_heatmap(bev)
    logits[0, 3, 10, 100] = logits.max() + 5
    head.aux_heatmap.forward = lambda x: logits
    ref = head.initial_queries(QueryInputs(1, head.dense_heatmap(bev))).ref
    labels = head.query_generator.peaks(head.dense_heatmap(bev))[1]
    assert labels[0, 0] == 3 and torch.allclose(ref[0, 0, :2], torch.tensor([100.5 / 180, 10.5 / 180]))


DENSE = 'configs/cmt/cmt-camera-queries_voxel0075_vov-1600x640_8xb2-cyclic-20e_nus-3d.py'


def _sample_geometry(cfg, synthetic_root):
    """The camera geometry of generated val sample 0 after the config's test pipeline."""
    from mmengine.dataset import pseudo_collate

    from mmdet3d.registry import DATASETS
    from plugin.models.utils import CameraGeometry
    ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    ds_cfg.update(data_root=synthetic_root + '/', metainfo=dict(classes=cfg.class_names, version='v1.0-mini'))
    metas = [pseudo_collate([DATASETS.build(ds_cfg)[0]])['data_samples'][0].metainfo]
    w, h = cfg.image_size
    return CameraGeometry.from_metas(metas, input_shape=(h, w), num_views=len(metas[0]['lidar2img']))


def test_camera_queries_are_opt_in_on_the_full_config(synthetic_root):
    """The VoV recipe plus `img_centre_head` (camera-aware depth), camera queries and their
    depth hook, nothing else; the centre head runs forward and loss at the recipe's map size (256 channels,
    stride 16 of 1600 x 640) with the calibration of a generated sample after the recipe's
    own test pipeline, and the CMT head decodes 300 camera queries + 600 learned ones."""
    from mmengine.config import Config

    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import plugin  # noqa: F401
    dense = Config.fromfile(osp.join(REPO, DENSE))
    parent = Config.fromfile(osp.join(REPO, FULL[1])).to_dict()
    settings = dense.to_dict()
    head_cfg = settings['model'].pop('img_centre_head')
    generator = settings['model']['pts_bbox_head'].pop('query_generator')
    assert settings['model']['pts_bbox_head'].pop('learned_queries') == 600
    assert settings.pop('custom_hooks')[-1] == dict(type='UseGtDepthHook', stop_epoch=5)
    parent.pop('custom_hooks')
    assert generator == dict(type='CameraPeakQueries', in_channels=256)
    assert settings == parent and head_cfg['in_channels'] == 256 and head_cfg['num_classes'] == 10
    assert head_cfg['depth_focal'] == 1266.0
    head = MODELS.build(head_cfg)
    head.init_weights()
    geometry = _sample_geometry(dense, synthetic_root)
    w, h = dense.image_size
    boxes = torch.tensor([[12.0, 0.5, -1.0, 4.5, 1.9, 1.7, 0.2], [-15.0, 3.0, -1.0, 0.6, 0.6, 1.8, 0.0]])
    feats = torch.randn(1, 6, 256, h // 16, w // 16)
    outs = head(feats, geometry)
    assert outs['heatmap'].shape == (1, 6, 10, h // 16, w // 16)
    targets = head.targets([boxes], [torch.tensor([0, 7])], geometry, (h // 16, w // 16))
    assert targets.mask.sum() >= 2          # six surround views: each box is seen at least once
    losses = head.loss(outs, [boxes], [torch.tensor([0, 7])], geometry)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert head.shared[0].weight.grad.abs().sum() > 0
    # the depth options of the head, opt-in on the full config too: the ground-plane term
    # and depth targets around the centres
    options = MODELS.build(dict(head_cfg, ground_prior=True, depth_radius=1))
    options.init_weights()
    option_losses = options.loss(options(feats, geometry), [boxes], [torch.tensor([0, 7])], geometry)
    sum(option_losses.values()).backward()
    assert torch.isfinite(option_losses['loss_img_depth']) and options.ground_weight.grad.abs() > 0
    # the CMT head at a small size (2 decoder layers) with the recipe's query split
    head_cfg = dense.model.pts_bbox_head
    head_cfg.transformer.decoder.num_layers = 2
    cmt = MODELS.build(head_cfg)
    cmt.init_weights()
    cmt.train()
    bev = torch.randn(1, head_cfg.in_channels_bev, 180, 180)
    centres = dict(outs, targets=targets)
    boxes = torch.nn.functional.pad(boxes, (0, 2))                  # with (zero) velocities, as the recipe's
    outs_cmt, dn = cmt(bev, feats, [boxes], [torch.tensor([0, 7])], geometry=geometry, img_centre=centres)
    assert outs_cmt[0]['cls'].shape[:3] == (2, 1, dn.pad_size + 900)
    cmt_losses = cmt.loss(outs_cmt, dn, [boxes], [torch.tensor([0, 7])])
    sum(cmt_losses.values()).backward()
    assert cmt.query_generator.content_proj.weight.grad.abs().sum() > 0


def test_bev_and_camera_queries_side_by_side_on_the_full_config(synthetic_root):
    """The query layout of the synthetic masking recipes on the VoV recipe at a small size (2
    decoder layers): BEV heatmap peaks and camera-centre peaks in one `CompositeQueries`, the
    learned points after them, and TransFusion's rescoring of every peak query. With the
    LiDAR dropped (an all-zero BEV map) the losses stay finite and reach the camera queries'
    content; at inference every query's score factor lies in [0, 1], one for the learned points."""
    from mmengine.config import Config

    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    import plugin  # noqa: F401
    cfg = Config.fromfile(osp.join(REPO, DENSE))
    head_cfg = cfg.model.pts_bbox_head
    head_cfg.transformer.decoder.num_layers = 2
    head_cfg.update(learned_queries=300, query_score_prior=True, aux_heatmap_cfg=dict())
    head_cfg.query_generator = dict(type='CompositeQueries', generators=[
        dict(type='BEVHeatmapQueries', num_query=300), dict(type='CameraPeakQueries', num_query=300, in_channels=256)])
    cmt = MODELS.build(head_cfg)
    centre_head = MODELS.build(cfg.model.img_centre_head)
    for m in (cmt, centre_head):
        m.init_weights()
    geometry = _sample_geometry(cfg, synthetic_root)
    w, h = cfg.image_size
    feats = torch.randn(1, 6, 256, h // 16, w // 16)
    boxes = torch.tensor([[12.0, 0.5, -1.0, 4.5, 1.9, 1.7, 0.2, 0.0, 0.0], [-15.0, 3.0, -1.0, 0.6, 0.6, 1.8, 0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 7])
    centres = centre_head(feats, geometry)
    centres['targets'] = centre_head.targets([boxes[:, :7]], [labels], geometry, (h // 16, w // 16))
    bev = torch.zeros(1, head_cfg.in_channels_bev, 180, 180)          # the LiDAR dropped
    cmt.train()
    outs, dn = cmt(bev, feats, [boxes], [labels], geometry=geometry, img_centre=centres)
    assert outs[0]['cls'].shape[:3] == (2, 1, dn.pad_size + 900)
    losses = cmt.loss(outs, dn, [boxes], [labels])
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    camera = cmt.query_generator.generators[1]
    assert camera.content_proj.weight.grad.abs().sum() > 0
    cmt.eval()
    with torch.no_grad():
        queries = cmt.initial_queries(QueryInputs(1, cmt.dense_heatmap(bev), feats, centre_head(feats, geometry),
                                                  geometry))
    prior = cmt.score_prior(queries)
    assert prior.shape == (1, 900, 10) and ((prior >= 0) & (prior <= 1)).all()
    assert (prior[:, 600:] == 1).all() and (prior[:, :600].count_nonzero(-1) == 1).all()
